"""Skeleton definitions as data: OpenPose's part tables, limb tables, PAF channels and colours.

Every table is copied from OpenPose 1.7 (CMU-Perceptual-Computing-Lab/openpose):

- part names, ``POSE_BODY_PART_PAIRS``, ``POSE_MAP_INDEX`` and the default thresholds:
  ``src/openpose/pose/poseParameters.cpp`` (``getPoseDefault*``), ``POSE_MAX_PEOPLE = 127``:
  ``include/openpose/pose/poseParameters.hpp``;
- render pairs and colours: ``include/openpose/pose/poseParametersRender.hpp``;
- hand and face: ``include/openpose/hand/handParameters.hpp``, ``face/faceParameters.hpp``.

Indices in ``limbs`` / ``render_limbs`` are part indices (0-based, background excluded);
``paf_channels`` are (x, y) channel indices counted from the first PAF channel of the net output
(the net output is ``heatmap_count`` heatmaps, background last, then ``paf_count`` PAF channels).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from posebridge.errors import PosebridgeError

#: OpenPose's cap on peaks per part (and people), ``POSE_MAX_PEOPLE`` in poseParameters.hpp.
POSE_MAX_PEOPLE = 127
#: ``HAND_MAX_PEAKS`` in handParameters.hpp.
HAND_MAX_PEAKS = 64
#: Output stride of every OpenPose net (``POSE_CCN_DECREASE_FACTOR`` / ``getPoseNetDecreaseFactor``).
NET_STRIDE = 8


@dataclass(frozen=True)
class AssemblerDefaults:
    """OpenPose's default post-processing thresholds for one model (non-"maximize positives").

    nms_threshold: minimum heatmap value of a peak. inter_threshold: minimum PAF.unit-vector
    dot product for a sample to count. inter_min_above_threshold: fraction of samples that must
    count. min_subset_cnt / min_subset_score: final filter on a person's part count and mean
    score. max_peaks: peaks kept per part.
    """

    nms_threshold: float = 0.05
    inter_threshold: float = 0.05
    inter_min_above_threshold: float = 0.95
    min_subset_cnt: int = 3
    min_subset_score: float = 0.4
    max_peaks: int = POSE_MAX_PEOPLE


@dataclass(frozen=True)
class Skeleton:
    """One keypoint layout: names, limb tables, PAF channel map, render tables, defaults."""

    name: str
    part_names: tuple[str, ...]
    limbs: tuple[tuple[int, int], ...]
    paf_channels: tuple[tuple[int, int], ...]
    render_limbs: tuple[tuple[int, int], ...]
    colors: tuple[tuple[int, int, int], ...]
    defaults: AssemblerDefaults = field(default_factory=AssemblerDefaults)
    has_background: bool = True

    def __post_init__(self) -> None:
        parts = len(self.part_names)
        if len(self.limbs) != len(self.paf_channels):
            raise PosebridgeError(
                f"skeleton {self.name}: {len(self.limbs)} limbs but {len(self.paf_channels)} PAF pairs")
        for pair in (*self.limbs, *self.render_limbs):
            if not all(0 <= index < parts for index in pair):
                raise PosebridgeError(f"skeleton {self.name}: limb {pair} outside 0..{parts - 1}")
        channels = sorted(c for xy in self.paf_channels for c in xy)
        if channels != list(range(2 * len(self.limbs))):
            raise PosebridgeError(f"skeleton {self.name}: PAF channels are not a permutation of 0..{2 * len(self.limbs) - 1}")

    @property
    def part_count(self) -> int:
        """K, the number of body parts (background excluded)."""
        return len(self.part_names)

    @property
    def heatmap_count(self) -> int:
        """Heatmap channels of the net output: K parts plus the background channel."""
        return self.part_count + (1 if self.has_background else 0)

    @property
    def paf_count(self) -> int:
        """PAF channels of the net output: an (x, y) pair per limb."""
        return 2 * len(self.limbs)

    @property
    def channel_count(self) -> int:
        """All channels of the net output (heatmaps then PAFs)."""
        return self.heatmap_count + self.paf_count

    def part_index(self, part_name: str) -> int:
        """Index of a part by its OpenPose name."""
        try:
            return self.part_names.index(part_name)
        except ValueError:
            raise PosebridgeError(f"skeleton {self.name}: no part named {part_name!r}") from None


def _pairs(flat: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(a0, b0, a1, b1, ...) -> ((a0, b0), (a1, b1), ...), as OpenPose writes its tables."""
    if len(flat) % 2:
        raise PosebridgeError(f"odd-length pair table of {len(flat)} values")
    return tuple((flat[i], flat[i + 1]) for i in range(0, len(flat), 2))


def _rgb(flat: tuple[int, ...]) -> tuple[tuple[int, int, int], ...]:
    return tuple((flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3))


# --- COCO (18 parts) -------------------------------------------------------------------------
_COCO_PARTS = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)
_COCO_PAIRS = (1, 2, 1, 5, 2, 3, 3, 4, 5, 6, 6, 7, 1, 8, 8, 9, 9, 10, 1, 11, 11, 12, 12, 13,
               1, 0, 0, 14, 14, 16, 0, 15, 15, 17, 2, 16, 5, 17)
_COCO_MAP_INDEX = (12, 13, 20, 21, 14, 15, 16, 17, 22, 23, 24, 25, 0, 1, 2, 3, 4, 5, 6, 7,
                   8, 9, 10, 11, 28, 29, 30, 31, 34, 35, 32, 33, 36, 37, 18, 19, 26, 27)
_COCO_PAIRS_RENDER = (1, 2, 1, 5, 2, 3, 3, 4, 5, 6, 6, 7, 1, 8, 8, 9, 9, 10, 1, 11, 11, 12,
                      12, 13, 1, 0, 0, 14, 14, 16, 0, 15, 15, 17)
_COCO_COLORS = (
    255, 0, 85, 255, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255, 0,
    0, 255, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255, 0, 0, 255,
    255, 0, 170, 170, 0, 255, 255, 0, 255, 85, 0, 255,
)

# --- MPI (15 parts) --------------------------------------------------------------------------
_MPI_PARTS = (
    "Head", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "Chest",
)
# POSE_BODY_PART_PAIRS for MPI is POSE_MPI_PAIRS_RENDER_GPU (same table for both uses).
_MPI_PAIRS = (0, 1, 1, 2, 2, 3, 3, 4, 1, 5, 5, 6, 6, 7, 1, 14, 14, 8, 8, 9, 9, 10, 14, 11,
              11, 12, 12, 13)
_MPI_MAP_INDEX = tuple(range(28))
_MPI_COLORS = (
    255, 0, 85, 255, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255, 0,
    43, 255, 0, 0, 255, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255,
    0, 0, 255,
)

# --- BODY_25 (25 parts) ----------------------------------------------------------------------
_BODY_25_PARTS = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "MidHip", "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar",
    "LEar", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
)
_BODY_25_PAIRS = (1, 8, 1, 2, 1, 5, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 10, 11, 8, 12,
                  12, 13, 13, 14, 1, 0, 0, 15, 15, 17, 0, 16, 16, 18, 2, 17, 5, 18,
                  14, 19, 19, 20, 14, 21, 11, 22, 22, 23, 11, 24)
_BODY_25_MAP_INDEX = (0, 1, 14, 15, 22, 23, 16, 17, 18, 19, 24, 25, 26, 27, 6, 7, 2, 3, 4, 5,
                      8, 9, 10, 11, 12, 13, 30, 31, 32, 33, 36, 37, 34, 35, 38, 39, 20, 21,
                      28, 29, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51)
_BODY_25_PAIRS_RENDER = (1, 8, 1, 2, 1, 5, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9, 9, 10, 10, 11, 8, 12,
                         12, 13, 13, 14, 1, 0, 0, 15, 15, 17, 0, 16, 16, 18, 14, 19, 19, 20,
                         14, 21, 11, 22, 22, 23, 11, 24)
_BODY_25_COLORS = (
    255, 0, 85, 255, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255, 0,
    0, 255, 0, 255, 0, 0, 0, 255, 85, 0, 255, 170, 0, 255, 255, 0, 170, 255, 0, 85, 255,
    0, 0, 255, 255, 0, 170, 170, 0, 255, 255, 0, 255, 85, 0, 255, 0, 0, 255, 0, 0, 255,
    0, 0, 255, 0, 255, 255, 0, 255, 255, 0, 255, 255,
)

# --- Hand (21 points) ------------------------------------------------------------------------
_FINGERS = (("Thumb", ("1CMC", "2Knuckles", "3IP", "4FingerTip")),
            ("Index", ("1Knuckles", "2PIP", "3DIP", "4FingerTip")),
            ("Middle", ("1Knuckles", "2PIP", "3DIP", "4FingerTip")),
            ("Ring", ("1Knuckles", "2PIP", "3DIP", "4FingerTip")),
            ("Pinky", ("1Knuckles", "2PIP", "3DIP", "4FingerTip")))
_HAND_PARTS = ("Wrist",) + tuple(finger + joint for finger, joints in _FINGERS for joint in joints)
_HAND_PAIRS_RENDER = (0, 1, 1, 2, 2, 3, 3, 4, 0, 5, 5, 6, 6, 7, 7, 8, 0, 9, 9, 10, 10, 11,
                      11, 12, 0, 13, 13, 14, 14, 15, 15, 16, 0, 17, 17, 18, 18, 19, 19, 20)
# HAND_COLORS_RENDER lists 24 colours; parts 0..20 use the first 21 (OpenPose indexes them modulo).
_HAND_COLORS = (
    179, 0, 0, 204, 0, 0, 230, 0, 0, 255, 0, 0, 143, 179, 0, 163, 204, 0, 184, 230, 0,
    204, 255, 0, 0, 179, 71, 0, 204, 82, 0, 230, 92, 0, 255, 102, 0, 71, 179, 0, 82, 204,
    0, 92, 230, 0, 102, 255, 143, 0, 179, 163, 0, 204, 184, 0, 230, 204, 0, 255, 179, 179, 179,
)

# --- Face (70 points, iBUG 68 + 2 pupils) ----------------------------------------------------
_FACE_GROUPS = (("Contour", 17), ("RBrow", 5), ("LBrow", 5), ("NoseBridge", 4), ("NoseBottom", 5),
                ("REye", 6), ("LEye", 6), ("MouthOuter", 12), ("MouthInner", 8), ("Pupil", 2))
_FACE_PARTS = tuple(f"{group}{i}" for group, count in _FACE_GROUPS for i in range(count))
_FACE_PAIRS_RENDER = (
    0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13, 14, 14, 15, 15, 16, 17, 18, 18, 19, 19, 20, 20, 21, 22, 23, 23, 24, 24, 25, 25, 26,
    27, 28, 28, 29, 29, 30, 31, 32, 32, 33, 33, 34, 34, 35, 36, 37, 37, 38, 38, 39, 39, 40,
    40, 41, 41, 36, 42, 43, 43, 44, 44, 45, 45, 46, 46, 47, 47, 42, 48, 49, 49, 50, 50, 51,
    51, 52, 52, 53, 53, 54, 54, 55, 55, 56, 56, 57, 57, 58, 58, 59, 59, 48, 60, 61, 61, 62,
    62, 63, 63, 64, 64, 65, 65, 66, 66, 67, 67, 60,
)


COCO = Skeleton(
    name="COCO", part_names=_COCO_PARTS, limbs=_pairs(_COCO_PAIRS),
    paf_channels=_pairs(_COCO_MAP_INDEX), render_limbs=_pairs(_COCO_PAIRS_RENDER),
    colors=_rgb(_COCO_COLORS), defaults=AssemblerDefaults(),
)
MPI = Skeleton(
    name="MPI", part_names=_MPI_PARTS, limbs=_pairs(_MPI_PAIRS),
    paf_channels=_pairs(_MPI_MAP_INDEX), render_limbs=_pairs(_MPI_PAIRS),
    colors=_rgb(_MPI_COLORS), defaults=AssemblerDefaults(nms_threshold=0.6, inter_threshold=0.01),
)
#: The 4-stage MPI net (pose_deploy_linevec_faster_4_stages): same tables, NMS threshold 0.3.
MPI_4_LAYERS = Skeleton(
    name="MPI_4_layers", part_names=_MPI_PARTS, limbs=_pairs(_MPI_PAIRS),
    paf_channels=_pairs(_MPI_MAP_INDEX), render_limbs=_pairs(_MPI_PAIRS),
    colors=_rgb(_MPI_COLORS), defaults=AssemblerDefaults(nms_threshold=0.3, inter_threshold=0.01),
)
BODY_25 = Skeleton(
    name="BODY_25", part_names=_BODY_25_PARTS, limbs=_pairs(_BODY_25_PAIRS),
    paf_channels=_pairs(_BODY_25_MAP_INDEX), render_limbs=_pairs(_BODY_25_PAIRS_RENDER),
    colors=_rgb(_BODY_25_COLORS), defaults=AssemblerDefaults(),
)
#: Hand: a single-person heatmap net (21 parts + background, no PAFs).
HAND = Skeleton(
    name="HAND", part_names=_HAND_PARTS, limbs=(), paf_channels=(),
    render_limbs=_pairs(_HAND_PAIRS_RENDER), colors=_rgb(_HAND_COLORS),
    defaults=AssemblerDefaults(nms_threshold=0.1, max_peaks=HAND_MAX_PEAKS),
)
#: Face: a single-person heatmap net (70 parts + background, no PAFs), all parts drawn white.
FACE = Skeleton(
    name="FACE", part_names=_FACE_PARTS, limbs=(), paf_channels=(),
    render_limbs=_pairs(_FACE_PAIRS_RENDER), colors=((255, 255, 255),) * len(_FACE_PARTS),
    defaults=AssemblerDefaults(nms_threshold=0.1, max_peaks=1),
)

SKELETONS: dict[str, Skeleton] = {
    s.name: s for s in (COCO, MPI, MPI_4_LAYERS, BODY_25, HAND, FACE)
}


def get_skeleton(name: str) -> Skeleton:
    """A skeleton by name, case-insensitive ("COCO", "MPI", "MPI_4_layers", "BODY_25", "HAND", "FACE")."""
    for key, skeleton in SKELETONS.items():
        if key.lower() == name.lower():
            return skeleton
    raise PosebridgeError(f"unknown skeleton {name!r}; known: {', '.join(SKELETONS)}")
