"""Pieces shared by every OpenPose net: the VGG-19 front end and the CPM refinement stage.

OpenPose keeps VGG-19's 3x3 convolutions in order (conv1_1, conv1_2, conv2_1, ...) up to a
per-net count, and only its first three 2x2 max-pools, so the features have stride 8.
"""

from __future__ import annotations

from collections.abc import Callable

from posebridge.zoo.builder import ConvStyle, NetBuilder

#: VGG-19's conv blocks: (channels, convs per block).
VGG19_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))
VGG_KERNEL = 3
#: Blocks followed by a 2x2/2 max-pool (the net's output stride is 2**3 = 8).
POOLED_BLOCKS = (1, 2, 3)

#: A CPM stage branch: (kernel, channels) per conv; channels None is the output (no activation).
BranchLayers = tuple[tuple[int, int | None], ...]
#: CPM refinement stage (Wei et al. 2016, kept by OpenPose's COCO/MPI/hand/face nets):
#: five 7x7 convs, a 1x1 conv, then the 1x1 output conv.
REFINE_LAYERS: BranchLayers = ((7, 128),) * 5 + ((1, 128), (1, None))

#: Appends the activation of a conv whose top blob is given; returns the blob.
Activation = Callable[[NetBuilder, str], str]
#: Names the pool after a VGG block (1-based).
PoolName = Callable[[int], str]


def relu_renamed(builder: NetBuilder, conv_top: str) -> str:
    """In-place ReLU named after its conv with 'conv' -> 'relu' (conv4_3_CPM -> relu4_3_CPM)."""
    return builder.relu(conv_top.replace("conv", "relu", 1), conv_top)


def prelu_renamed(builder: NetBuilder, conv_top: str) -> str:
    """In-place PReLU named after its conv with 'conv' -> 'prelu' (Mconv1_stage0_L2_0 -> Mprelu1_...)."""
    return builder.prelu(conv_top.replace("conv", "prelu", 1), conv_top)


def vgg_trunk(builder: NetBuilder, bottom: str, conv_count: int, activation: Activation,
              pool_name: PoolName, style: ConvStyle | None = None) -> str:
    """The first ``conv_count`` VGG-19 convs (each with ``activation``) and the pools between.

    Input [N, 3, H, W]; output [N, C, ceil(H/8), ceil(W/8)] when a pooled block is complete.
    """
    total = sum(count for _, count in VGG19_BLOCKS)
    if not 0 < conv_count <= total:
        raise ValueError(f"VGG-19 has {total} convs; asked for {conv_count}")
    blob, remaining = bottom, conv_count
    for block, (channels, count) in enumerate(VGG19_BLOCKS, start=1):
        for index in range(1, min(count, remaining) + 1):
            blob = builder.conv(f"conv{block}_{index}", blob, channels, VGG_KERNEL, style=style)
            activation(builder, blob)
        remaining -= count
        if remaining <= 0:
            break
        if block in POOLED_BLOCKS:
            blob = builder.pool(pool_name(block), blob)
    return blob
