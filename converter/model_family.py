"""Which OpenPose model a converted net is: by its caffemodel's MD5, else by its structure.

The official weights are recognised by the MD5s that OpenPose publishes (openpose:
CMakeLists.txt; held by :mod:`posebridge.zoo`). Any other weights (fine-tuned, synthetic) are
recognised by the net's shape: the heatmap and PAF channel counts of the final Concat (heatmaps
first) and the stage layout, compared with the zoo's nets (57 = 19 + 38 two-branch -> COCO,
44 = 16 + 28 -> MPI, 78 = 26 + 52 PAF-first -> BODY_25, 22 heatmaps only -> hand, 71 -> face).

Every family shares OpenPose's input convention (openpose: utilities/openCv.cpp,
``uCharCvMatToFloatPtr`` normalisation 1, used by the body, hand and face extractors): BGR,
``v/256 - 0.5``, output maps at stride 8.
"""

from __future__ import annotations

from dataclasses import dataclass

from posebridge.prototxt.files import file_md5  # noqa: F401 (re-exported)
from posebridge.prototxt.structure import OpenPoseStructure
from posebridge.zoo import ENTRIES

UNKNOWN = "unknown"
FAMILIES = ("COCO", "MPI", "BODY_25", "hand", "face", UNKNOWN)

#: zoo net -> family (the zoo holds the MD5s, channel counts and stage layouts).
ZOO_FAMILY = {"coco": "COCO", "mpi": "MPI", "mpi_4_stages": "MPI", "body_25": "BODY_25",
              "hand": "hand", "face": "face"}

#: family -> skeleton name in posebridge.runtime.skeletons.
SKELETON = {"COCO": "COCO", "MPI": "MPI", "BODY_25": "BODY_25", "hand": "HAND", "face": "FACE"}
#: OpenPose's 4-stage MPI net (same weights as MPI) has its own skeleton defaults.
MPI_4_STAGES = 4
MPI_4_STAGES_SKELETON = "MPI_4_layers"

# Stage layouts (the zoo's names): every stage has both branches; PAF-only stages then
# heatmap-only stages; heatmap-only stages (CPM).
TWO_BRANCH, PAF_FIRST, CPM = "two-branch", "paf-first", "cpm"

# How a family was recognised.
BY_MD5, BY_STRUCTURE, NOT_RECOGNISED = "caffemodel_md5", "structure", "none"



@dataclass(frozen=True)
class InputConvention:
    """How an image becomes the net input, and the stride of the output maps."""

    layout: str = "NCHW"
    channel_order: str = "BGR"
    normalisation: str = "v/256 - 0.5"
    scale: float = 1.0 / 256.0
    shift: float = -0.5
    stride: int = 8


OPENPOSE_INPUT = InputConvention()


@dataclass(frozen=True)
class ModelFamily:
    """A recognised net: family, evidence, skeleton, and its output channel ranges.

    ``heatmaps`` and ``pafs`` are [start, stop) channel ranges of the concatenated output
    (heatmaps first, background map included); None when the net has no such maps or they are
    not known.
    """

    name: str
    evidence: str
    skeleton: str | None
    layout: str | None
    stages: int
    heatmaps: tuple[int, int] | None
    pafs: tuple[int, int] | None

    @property
    def input_convention(self) -> InputConvention | None:
        """OpenPose's input convention for a recognised family, None for unknown nets."""
        return OPENPOSE_INPUT if self.name != UNKNOWN else None

    @property
    def output_channels(self) -> int | None:
        """Heatmap + PAF channels, when known."""
        if self.heatmaps is None:
            return None
        return (self.pafs or self.heatmaps)[1]

    def channels_json(self) -> dict[str, list[int] | None]:
        """``{"heatmaps": [0, 19], "pafs": [19, 57]}`` (None where absent)."""
        return {"heatmaps": list(self.heatmaps) if self.heatmaps else None,
                "pafs": list(self.pafs) if self.pafs else None}


def family_by_md5(md5: str | None) -> str | None:
    """The family of official weights with this MD5, or None."""
    if not md5:
        return None
    for zoo_entry in ENTRIES:
        if zoo_entry.weights_md5 == md5.lower():
            return ZOO_FAMILY[zoo_entry.name]
    return None


def stage_layout(structure: OpenPoseStructure | None) -> str | None:
    """``two-branch``, ``paf-first`` or ``cpm`` from the stages' branch roles; None otherwise."""
    if structure is None or not structure.stages:
        return None
    roles = [frozenset(b.role for b in stage.branches) for stage in structure.stages]
    both, pafs, heatmaps = frozenset({"pafs", "heatmaps"}), frozenset({"pafs"}), frozenset({"heatmaps"})
    if all(r == both for r in roles):
        return TWO_BRANCH
    if all(r == heatmaps for r in roles):
        return CPM
    first_heatmap = next((i for i, r in enumerate(roles) if r != pafs), len(roles))
    if 0 < first_heatmap < len(roles) and all(r == heatmaps for r in roles[first_heatmap:]):
        return PAF_FIRST
    return None


def family_by_structure(structure: OpenPoseStructure | None) -> str | None:
    """The family whose channel counts and stage layout the structure has, or None."""
    if structure is None or structure.heatmap_channels is None:
        return None
    signature = (structure.heatmap_channels, structure.paf_channels or 0, stage_layout(structure))
    for zoo_entry in ENTRIES:
        if (zoo_entry.heatmaps, zoo_entry.pafs, zoo_entry.layout) == signature:
            return ZOO_FAMILY[zoo_entry.name]
    return None


def _channel_ranges(structure: OpenPoseStructure | None) -> tuple[tuple[int, int] | None, tuple[int, int] | None]:
    if structure is None or structure.heatmap_channels is None:
        return None, None
    heat = structure.heatmap_channels
    heatmaps = (0, heat)
    pafs = (heat, heat + structure.paf_channels) if structure.paf_channels else None
    return heatmaps, pafs


def _official_ranges(family: str) -> tuple[tuple[int, int], tuple[int, int] | None]:
    zoo_entry = next(e for e in ENTRIES if ZOO_FAMILY[e.name] == family)
    pafs = (zoo_entry.heatmaps, zoo_entry.output_channels) if zoo_entry.pafs else None
    return (0, zoo_entry.heatmaps), pafs


def recognise(structure: OpenPoseStructure | None, caffemodel_md5: str | None = None) -> ModelFamily:
    """The family of a net from its caffemodel's MD5 (official weights) or else its structure."""
    stages = len(structure.stages) if structure else 0
    heatmaps, pafs = _channel_ranges(structure)
    name = family_by_md5(caffemodel_md5)
    evidence = BY_MD5
    if name is not None:
        if heatmaps is None:  # the structure was not found: take the official layout
            heatmaps, pafs = _official_ranges(name)
    else:
        name = family_by_structure(structure)
        evidence = BY_STRUCTURE
    if name is None:
        if pafs is None:  # a Concat-and-stages shape without PAFs says nothing about the outputs
            return ModelFamily(UNKNOWN, NOT_RECOGNISED, None, None, 0, None, None)
        return ModelFamily(UNKNOWN, NOT_RECOGNISED, None, stage_layout(structure), stages, heatmaps, pafs)
    skeleton = SKELETON[name]
    if name == "MPI" and stages == MPI_4_STAGES:
        skeleton = MPI_4_STAGES_SKELETON
    return ModelFamily(name, evidence, skeleton, stage_layout(structure), stages, heatmaps, pafs)
