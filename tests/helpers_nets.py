"""Small nets as prototxt text, written to files with synthetic weights, for converter tests."""

from __future__ import annotations

from pathlib import Path

from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import synthesize, write_caffemodel

#: A small two-branch, two-stage net with OpenPose's shape: features F, stage 1 with an L1
#: (PAF-like, 4 channels) and an L2 (heatmap-like, 3 channels) branch, a stage-2 Concat of
#: both branches with F, and the final Concat of heatmaps then PAFs.
TINY_OPENPOSE = """
name: "tiny_openpose"
input: "image"
input_dim: 1
input_dim: 3
input_dim: 1
input_dim: 1
layer { name: "conv1" type: "Convolution" bottom: "image" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "s1_L1" type: "Convolution" bottom: "conv2" top: "s1_L1" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "s1_L2" type: "Convolution" bottom: "conv2" top: "s1_L2" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "concat_stage2" type: "Concat" bottom: "s1_L1" bottom: "s1_L2" bottom: "conv2" top: "concat_stage2" }
layer { name: "s2_L1a" type: "Convolution" bottom: "concat_stage2" top: "s2_L1a" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "s2_relu_L1" type: "ReLU" bottom: "s2_L1a" top: "s2_L1a" }
layer { name: "s2_L1b" type: "Convolution" bottom: "s2_L1a" top: "s2_L1b" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "s2_L2a" type: "Convolution" bottom: "concat_stage2" top: "s2_L2a" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "s2_relu_L2" type: "ReLU" bottom: "s2_L2a" top: "s2_L2a" }
layer { name: "s2_L2b" type: "Convolution" bottom: "s2_L2a" top: "s2_L2b" convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "net_output" type: "Concat" bottom: "s2_L2b" bottom: "s2_L1b" top: "net_output" }
"""


def write_net(folder: Path, text: str, stem: str = "net", seed: int = 0) -> tuple[Path, Path]:
    """Write ``text`` as a prototxt and a caffemodel with He-initialised synthetic weights."""
    prototxt = Path(folder) / f"{stem}.prototxt"
    prototxt.write_text(text, encoding="utf-8")
    graph = load_graph(prototxt)
    caffemodel = Path(folder) / f"{stem}.caffemodel"
    write_caffemodel(caffemodel, graph, synthesize(graph, seed=seed))
    return prototxt, caffemodel
