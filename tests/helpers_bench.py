"""A small OpenPose-shaped net for the tuned runtime, int8 and bench tests.

Features with a 3x3 conv and ReLU, a MAX pool with Caffe's ceil rounding (odd sizes pad), a
PReLU, a conv whose output feeds a ReLU *and* a Concat (so its ReLU must not be fused), two
stages joined by Concats, and a final Concat, like the OpenPose prototxts.
"""

from __future__ import annotations

from pathlib import Path

from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import synthesize, write_caffemodel

SMALL_NET = """
name: "small_openpose"
input: "image"
input_dim: 1
input_dim: 3
input_dim: 16
input_dim: 16
layer { name: "conv1" type: "Convolution" bottom: "image" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "prelu2" type: "PReLU" bottom: "conv2" top: "conv2" }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "feat" type: "Convolution" bottom: "pool2" top: "feat" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "s1_L1" type: "Convolution" bottom: "feat" top: "s1_L1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "s1_L2" type: "Convolution" bottom: "feat" top: "s1_L2" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "feat_relu" type: "ReLU" bottom: "feat" top: "feat_relu" }
layer { name: "concat_stage2" type: "Concat" bottom: "s1_L1" bottom: "s1_L2" bottom: "feat" bottom: "feat_relu" top: "concat_stage2" }
layer { name: "s2_a" type: "Convolution" bottom: "concat_stage2" top: "s2_a" convolution_param { num_output: 6 kernel_size: 5 pad: 2 } }
layer { name: "s2_relu" type: "ReLU" bottom: "s2_a" top: "s2_a" }
layer { name: "s2_L1" type: "Convolution" bottom: "s2_a" top: "s2_L1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "s2_L2" type: "Convolution" bottom: "s2_a" top: "s2_L2" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "net_output" type: "Concat" bottom: "s2_L2" bottom: "s2_L1" top: "net_output" }
"""
#: ReLUs that read a convolution's output and nothing else does (relu1, s2_relu); feat_relu is not one.
FUSABLE_RELUS = 2


def small_graph(folder: Path):
    """The small net's Graph (prototxt written into ``folder``)."""
    prototxt = Path(folder) / "small.prototxt"
    prototxt.write_text(SMALL_NET, encoding="utf-8")
    return load_graph(prototxt)


def small_net(folder: Path, seed: int = 0):
    """The converted small net (He-initialised synthetic weights)."""
    from posebridge.converter.network import CaffeNet

    graph = small_graph(folder)
    return CaffeNet(graph, synthesize(graph, seed=seed, init="he"))


def write_small_net(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """The small net's prototxt and caffemodel in ``folder``."""
    graph = small_graph(folder)
    caffemodel = Path(folder) / "small.caffemodel"
    write_caffemodel(caffemodel, graph, synthesize(graph, seed=seed, init="he"))
    return Path(folder) / "small.prototxt", caffemodel
