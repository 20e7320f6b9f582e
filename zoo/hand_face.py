"""The single-person hand and face nets: CPM (Wei et al. 2016) on a longer VGG-19 front end.

VGG-19 up to conv5_2 (14 convs, 3 pools: stride 8), conv5_3_CPM (128) as the features F,
stage 1 (conv6_1_CPM 512, conv6_2_CPM -> maps), then stages 2..T each reading concat(maps, F).
The last stage writes ``net_output`` directly (no final Concat). The two released files share
the architecture and differ in layer names (and initial fillers), kept here as data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from posebridge.prototxt import caffe_pb2
from posebridge.zoo import styles
from posebridge.zoo.builder import ConvStyle, NetBuilder
from posebridge.zoo.spec import ZooEntry
from posebridge.zoo.trunk import REFINE_LAYERS, BranchLayers, vgg_trunk

IMAGE = "image"
OUTPUT = "net_output"
#: conv1_1 .. conv5_2.
CPM_VGG_CONVS = 14
FEATURES = ("conv5_3_CPM", 128, 3)
#: Stage 1 after the features: conv6_1_CPM 1x1 512, conv6_2_CPM 1x1 -> maps.
STAGE1_LAYERS: BranchLayers = ((1, 512), (1, None))
STAGE1_NAMES = ("conv6_1_CPM", "conv6_2_CPM")


@dataclass(frozen=True)
class CpmVariant:
    """How one released CPM net names its non-conv layers, and its training-side conv fields."""

    vgg_activation: Callable[[str], str]
    pool: Callable[[int], str]
    cpm_activation: Callable[[str], str]
    stage_activation: Callable[[int, int], str]
    stage_input: Callable[[int], str]
    vgg_style: ConvStyle
    cpm_style: ConvStyle
    stage_style: ConvStyle


#: The hand net's ReLUs keep names from CMU's training net (e.g. relu5_4_stage1_3, Mrelu1_2_stage2_1).
HAND = CpmVariant(
    vgg_activation=lambda conv: conv.replace("conv", "relu", 1),
    pool=lambda block: f"pool{block}_stage1",
    cpm_activation={"conv5_3_CPM": "relu5_4_stage1_3", "conv6_1_CPM": "relu6_4_stage1_1"}.__getitem__,
    stage_activation=lambda stage, depth: f"Mrelu1_{depth + 1}_stage{stage}_{depth}",
    stage_input=lambda stage: f"concat_stage{stage}",
    vgg_style=styles.HAND_VGG, cpm_style=styles.HAND_CPM, stage_style=styles.HAND_STAGE,
)

#: The face net names each ReLU '<conv>_re' and each stage input 'features_in_stage_<t>'.
FACE = CpmVariant(
    vgg_activation=lambda conv: f"{conv}_re",
    pool=lambda block: f"pool{block}",
    cpm_activation=lambda conv: f"{conv}_re",
    stage_activation=lambda stage, depth: f"Mconv{depth}_stage{stage}_re",
    stage_input=lambda stage: f"features_in_stage_{stage}",
    vgg_style=styles.FACE_VGG, cpm_style=styles.FACE_CPM, stage_style=styles.FACE_STAGE,
)


def cpm_net(entry: ZooEntry, variant: CpmVariant) -> caffe_pb2.NetParameter:
    """A CPM heatmap net with ``entry.heatmap_stages`` stages and ``entry.heatmaps`` output maps."""
    builder = NetBuilder(entry.net_name)
    image = builder.legacy_input(IMAGE, entry.input_dims)
    trunk = vgg_trunk(builder, image, CPM_VGG_CONVS,
                      lambda b, conv: b.relu(variant.vgg_activation(conv), conv), variant.pool, variant.vgg_style)
    name, channels, kernel = FEATURES
    features = builder.conv(name, trunk, channels, kernel, style=variant.cpm_style)
    builder.relu(variant.cpm_activation(features), features)

    maps = features
    for (kernel, channels), name in zip(STAGE1_LAYERS, STAGE1_NAMES):
        last = entry.heatmap_stages == 1 and channels is None
        maps = builder.conv(name, maps, channels or entry.heatmaps, kernel, style=variant.cpm_style,
                            top=OUTPUT if last else None)
        if channels is not None:
            builder.relu(variant.cpm_activation(maps), maps)
    for stage in range(2, entry.heatmap_stages + 1):
        maps = builder.concat(variant.stage_input(stage), [maps, features])
        for depth, (kernel, channels) in enumerate(REFINE_LAYERS, start=1):
            last = stage == entry.heatmap_stages and channels is None
            maps = builder.conv(f"Mconv{depth}_stage{stage}", maps, channels or entry.heatmaps, kernel,
                                style=variant.stage_style, top=OUTPUT if last else None)
            if channels is not None:
                builder.relu(variant.stage_activation(stage, depth), maps)
    return builder.build()


def hand_net(entry: ZooEntry) -> caffe_pb2.NetParameter:
    """The hand net (22 maps: 21 keypoints + background)."""
    return cpm_net(entry, HAND)


def face_net(entry: ZooEntry) -> caffe_pb2.NetParameter:
    """The face net (71 maps: 70 keypoints + background)."""
    return cpm_net(entry, FACE)
