"""The multi-person body nets: COCO/MPI (two parallel branches) and BODY_25 (PAF stages first).

Both start with VGG-19's first 10 convs (conv1_1 .. conv4_2) and two CPM convs
(conv4_3_CPM 256, conv4_4_CPM 128): the stride-8 features F that every stage sees again.

COCO/MPI (CVPR 2017): stage 1 and each refinement stage t have two branches run side by side,
L1 (PAFs) and L2 (heatmaps); stage t+1 reads concat(L1_t, L2_t, F). Layers of the two branches
are interleaved depth by depth, as in the released files.

BODY_25 (OpenPose 1.4): PAF stages (L2) run first, each a chain of 5 dense blocks (three 3x3
convs, their outputs concatenated) and two 1x1 convs; then heatmap stages (L1) read F, the
previous heatmaps and the last PAFs. PReLU from conv4_2 on.
"""

from __future__ import annotations

from collections.abc import Callable

from posebridge.prototxt import caffe_pb2
from posebridge.zoo import styles
from posebridge.zoo.builder import ConvStyle, NetBuilder
from posebridge.zoo.spec import ZooEntry
from posebridge.zoo.trunk import (
    REFINE_LAYERS,
    Activation,
    BranchLayers,
    prelu_renamed,
    relu_renamed,
    vgg_trunk,
)

IMAGE = "image"
OUTPUT = "net_output"
#: COCO/MPI's final Concat keeps the 6-stage net's name in the 4-stage MPI net too.
TWO_BRANCH_OUTPUT_LAYER = "concat_stage7"
#: conv1_1 .. conv4_2.
BODY_VGG_CONVS = 10
#: The CPM convs that turn VGG features into F: (name, channels), 3x3 each.
CPM_FEATURES: tuple[tuple[str, int], ...] = (("conv4_3_CPM", 256), ("conv4_4_CPM", 128))
CPM_KERNEL = 3

#: Stage 1 of each COCO/MPI branch (refinement stages use trunk.REFINE_LAYERS).
STAGE1_LAYERS: BranchLayers = ((3, 128), (3, 128), (3, 128), (1, 512), (1, None))
PAF_BRANCH, HEATMAP_BRANCH = "L1", "L2"

#: BODY_25 dense stages: 5 blocks of 3 chained 3x3 convs; (block width, 1x1 head width).
DENSE_BLOCKS = 5
CONVS_PER_BLOCK = 3
DENSE_KERNEL = 3
FIRST_STAGE_WIDTHS = (96, 256)
LATER_STAGE_WIDTHS = (128, 512)
#: BODY_25 branch names: L2 holds the PAFs, L1 the heatmaps (the reverse of COCO/MPI).
BODY_25_PAF, BODY_25_HEATMAP = "L2", "L1"
#: VGG convs followed by a PReLU in BODY_25 (the others keep VGG's ReLU; the CPM convs use PReLU).
BODY_25_PRELU_VGG = frozenset({"conv4_2"})


def _pool_stage1(block: int) -> str:
    return f"pool{block}_stage1"


def _cpm_features(builder: NetBuilder, bottom: str, activation: Activation, style: ConvStyle | None) -> str:
    blob = bottom
    for name, channels in CPM_FEATURES:
        blob = builder.conv(name, blob, channels, CPM_KERNEL, style=style)
        activation(builder, blob)
    return blob


def _two_branch_stage(builder: NetBuilder, bottom: str, layers: BranchLayers, name: Callable[[int, str], str],
                      outputs: dict[str, int], style: ConvStyle) -> dict[str, str]:
    """Both branches of one stage from ``bottom``, interleaved layer by layer; returns each branch's output."""
    tops = dict.fromkeys(outputs, bottom)
    for depth, (kernel, channels) in enumerate(layers, start=1):
        for branch, branch_outputs in outputs.items():
            conv = builder.conv(name(depth, branch), tops[branch], channels or branch_outputs, kernel, style=style)
            if channels is not None:
                relu_renamed(builder, conv)
            tops[branch] = conv
    return tops


def two_branch_net(entry: ZooEntry) -> caffe_pb2.NetParameter:
    """COCO / MPI: ``entry.heatmap_stages`` stages of parallel PAF (L1) and heatmap (L2) branches."""
    if entry.paf_stages != entry.heatmap_stages:
        raise ValueError(f"{entry.name}: a two-branch net runs both branches in every stage")
    builder = NetBuilder(entry.net_name)
    image = builder.legacy_input(IMAGE, entry.input_dims)
    trunk = vgg_trunk(builder, image, BODY_VGG_CONVS, relu_renamed, _pool_stage1, styles.POSE_TRUNK)
    features = _cpm_features(builder, trunk, relu_renamed, styles.POSE_TRUNK)
    outputs = {PAF_BRANCH: entry.pafs, HEATMAP_BRANCH: entry.heatmaps}
    tops = _two_branch_stage(builder, features, STAGE1_LAYERS, lambda d, b: f"conv5_{d}_CPM_{b}",
                             outputs, styles.POSE_TRUNK)
    for stage in range(2, entry.heatmap_stages + 1):
        stage_input = builder.concat(f"concat_stage{stage}", [tops[PAF_BRANCH], tops[HEATMAP_BRANCH], features])
        tops = _two_branch_stage(builder, stage_input, REFINE_LAYERS,
                                 lambda d, b, s=stage: f"Mconv{d}_stage{s}_{b}", outputs, styles.POSE_STAGE)
    builder.concat(TWO_BRANCH_OUTPUT_LAYER, [tops[HEATMAP_BRANCH], tops[PAF_BRANCH]], top=OUTPUT)
    return builder.build()


def _body_25_trunk_activation(builder: NetBuilder, conv_top: str) -> str:
    activation = prelu_renamed if conv_top in BODY_25_PRELU_VGG else relu_renamed
    return activation(builder, conv_top)


def _dense_stage(builder: NetBuilder, bottom: str, stage: int, branch: str, outputs: int) -> str:
    """One BODY_25 stage: 5 dense blocks, a 1x1 head with PReLU and a 1x1 output conv."""
    block_width, head_width = FIRST_STAGE_WIDTHS if stage == 0 else LATER_STAGE_WIDTHS
    blob = bottom
    for block in range(1, DENSE_BLOCKS + 1):
        parts: list[str] = []
        for index in range(CONVS_PER_BLOCK):
            conv = builder.conv(f"Mconv{block}_stage{stage}_{branch}_{index}", parts[-1] if parts else blob,
                                block_width, DENSE_KERNEL)
            parts.append(prelu_renamed(builder, conv))
        blob = builder.concat(f"Mconv{block}_stage{stage}_{branch}_concat", parts)
    head = builder.conv(f"Mconv{DENSE_BLOCKS + 1}_stage{stage}_{branch}", blob, head_width, 1)
    prelu_renamed(builder, head)
    return builder.conv(f"Mconv{DENSE_BLOCKS + 2}_stage{stage}_{branch}", head, outputs, 1)


def body_25_net(entry: ZooEntry) -> caffe_pb2.NetParameter:
    """BODY_25: ``entry.paf_stages`` PAF stages, then ``entry.heatmap_stages`` heatmap stages."""
    builder = NetBuilder(entry.net_name, styles.BODY_25)
    image = builder.legacy_input(IMAGE, entry.input_dims)
    trunk = vgg_trunk(builder, image, BODY_VGG_CONVS, _body_25_trunk_activation, _pool_stage1)
    features = _cpm_features(builder, trunk, prelu_renamed, None)
    pafs = features
    for stage in range(entry.paf_stages):
        stage_input = features if stage == 0 else builder.concat(
            f"concat_stage{stage}_{BODY_25_PAF}", [features, pafs])
        pafs = _dense_stage(builder, stage_input, stage, BODY_25_PAF, entry.pafs)
    heatmaps: str | None = None
    for stage in range(entry.heatmap_stages):
        inputs = [features] + ([heatmaps] if heatmaps else []) + [pafs]
        stage_input = builder.concat(f"concat_stage{stage}_{BODY_25_HEATMAP}", inputs)
        heatmaps = _dense_stage(builder, stage_input, stage, BODY_25_HEATMAP, entry.heatmaps)
    builder.concat(OUTPUT, [heatmaps, pafs])
    return builder.build()
