"""The table of built-in nets and the functions that name, build, describe and print them."""

from __future__ import annotations

from google.protobuf import text_format

from posebridge.errors import FileAccessError
from posebridge.prototxt import caffe_pb2
from posebridge.zoo.body import body_25_net, two_branch_net
from posebridge.zoo.hand_face import face_net, hand_net
from posebridge.zoo.spec import ZooEntry

#: Written before a name to stand for a built-in net wherever a prototxt path is accepted.
ZOO_PREFIX = "zoo:"

#: OpenPose's placeholder input shape (N, C, H, W); the real size is set at run time.
PLACEHOLDER_INPUT = (1, 3, 1, 1)
BODY_25_PLACEHOLDER_INPUT = (1, 3, 16, 16)

_MPI = dict(family="body", layout="two-branch", parts=15, heatmaps=16, pafs=28,
            input_dims=PLACEHOLDER_INPUT, weights="pose/mpi/pose_iter_160000.caffemodel",
            weights_md5="2ca0990c7562bd7ae03f3f54afa96e00", builder=two_branch_net)

#: Facts from OpenPose 1.7 (models/getModels.sh, CMakeLists.txt MD5s, the released prototxts).
ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(name="coco", title="COCO", family="body", layout="two-branch", parts=18, heatmaps=19, pafs=38,
             paf_stages=6, heatmap_stages=6, input_dims=PLACEHOLDER_INPUT,
             weights="pose/coco/pose_iter_440000.caffemodel", weights_md5="5156d31f670511fce9b4e28b403f2939",
             official_prototxt="pose/coco/pose_deploy_linevec.prototxt", builder=two_branch_net),
    ZooEntry(name="mpi", title="MPI", paf_stages=6, heatmap_stages=6,
             official_prototxt="pose/mpi/pose_deploy_linevec.prototxt", **_MPI),
    ZooEntry(name="mpi_4_stages", title="MPI 4 stages", paf_stages=4, heatmap_stages=4,
             official_prototxt="pose/mpi/pose_deploy_linevec_faster_4_stages.prototxt", **_MPI),
    ZooEntry(name="body_25", title="BODY_25", family="body", layout="paf-first", parts=25, heatmaps=26, pafs=52,
             paf_stages=4, heatmap_stages=2, input_dims=BODY_25_PLACEHOLDER_INPUT,
             weights="pose/body_25/pose_iter_584000.caffemodel", weights_md5="78287b57cf85fa89c03f1393d368e5b7",
             official_prototxt="pose/body_25/pose_deploy.prototxt", builder=body_25_net),
    ZooEntry(name="hand", title="hand", family="hand", layout="cpm", parts=21, heatmaps=22, pafs=0,
             paf_stages=0, heatmap_stages=6, input_dims=PLACEHOLDER_INPUT,
             weights="hand/pose_iter_102000.caffemodel", weights_md5="a82cfc3fea7c62f159e11bd3674c1531",
             official_prototxt="hand/pose_deploy.prototxt", builder=hand_net),
    ZooEntry(name="face", title="face", family="face", layout="cpm", parts=70, heatmaps=71, pafs=0,
             paf_stages=0, heatmap_stages=6, input_dims=PLACEHOLDER_INPUT,
             weights="face/pose_iter_116000.caffemodel", weights_md5="e747180d728fa4e4418c465828384333",
             official_prototxt="face/pose_deploy.prototxt", builder=face_net),
)
_BY_NAME: dict[str, ZooEntry] = {entry.name: entry for entry in ENTRIES}


class UnknownZooNetError(FileAccessError):
    """A ``zoo:NAME`` (or zoo name) that is not one of the built-in nets."""


def names() -> tuple[str, ...]:
    """The built-in nets' names, in table order."""
    return tuple(_BY_NAME)


def entry(name: str) -> ZooEntry:
    """The table entry for ``name`` (case-insensitive; a leading ``zoo:`` is allowed)."""
    key = name.strip()
    key = key[len(ZOO_PREFIX):] if key.lower().startswith(ZOO_PREFIX) else key
    key = key.lower().replace("-", "_")
    found = _BY_NAME.get(key)
    if found is None:
        raise UnknownZooNetError(f"no built-in net '{name}'; known: {', '.join(names())}",
                                 file=name if name.startswith(ZOO_PREFIX) else f"{ZOO_PREFIX}{name}")
    return found


def build(name: str) -> caffe_pb2.NetParameter:
    """The net as a fresh Caffe NetParameter (legacy ``input: "image"`` + placeholder ``input_dim``)."""
    chosen = entry(name)
    return chosen.builder(chosen)


_LAYOUTS = {
    "two-branch": lambda e: f"{e.heatmap_stages} stages of parallel PAF (L1) and heatmap (L2) branches",
    "paf-first": lambda e: f"{e.paf_stages} PAF stages then {e.heatmap_stages} heatmap stages (PReLU, dense blocks)",
    "cpm": lambda e: f"{e.heatmap_stages} CPM heatmap stages",
}


def describe(name: str) -> str:
    """One line: family, parts, stages, output channels, official weights file and its MD5."""
    e = entry(name)
    label = e.title if e.title.lower() == e.family else f"{e.title} {e.family}"
    maps = f"{e.heatmaps} heatmaps + {e.pafs} PAFs" if e.pafs else f"{e.heatmaps} heatmaps"
    return (f"{label}, {e.parts} parts, {_LAYOUTS[e.layout](e)}, {e.output_channels} output channels "
            f"({maps}); weights {e.weights_file} MD5 {e.weights_md5}")


def prototxt_text(name: str) -> str:
    """The net as prototxt text, after a comment header naming the official weights."""
    e = entry(name)
    header = (f"# OpenPose {e.title} net, built by posebridge.zoo ('{ZOO_PREFIX}{e.name}') from the published\n"
              f"# architecture; layer names match OpenPose's {e.official_prototxt}.\n"
              f"# Official weights: models/{e.weights} (MD5 {e.weights_md5}).\n")
    return header + text_format.MessageToString(build(e.name))
