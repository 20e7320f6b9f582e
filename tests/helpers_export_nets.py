"""Small Caffe nets for the ONNX export tests, one per converter layer family, with synthetic weights.

Each net takes one input ``data`` (N, 3, H, W) and runs at any H, W >= 16: every layer's output
size follows the input size (no InnerProduct before a global pooling, Crop against a blob of
the same net). ``family_net(name)`` gives a Graph and its He-initialised blobs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from google.protobuf import text_format

from posebridge.prototxt import Graph, graph_from_net
from posebridge.prototxt.synth import synthesize, write_caffemodel
from helpers_caffe import make_net

INPUT_SHAPE = (1, 3, 32, 32)

_CONVOLUTION_POOLING = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool_max" type: "Pooling" bottom: "conv1" top: "pool_max"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool_ave" type: "Pooling" bottom: "pool_max" top: "pool_ave"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "pool_nopad" type: "Pooling" bottom: "conv1" top: "pool_nopad"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "pool_ave" top: "deconv"
  convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "conv_dilated" type: "Convolution" bottom: "deconv" top: "conv_dilated"
  convolution_param { num_output: 4 kernel_size: 3 pad: 2 dilation: 2 group: 2 } }
layer { name: "crop" type: "Crop" bottom: "conv_dilated" bottom: "pool_max" top: "crop"
  crop_param { axis: 2 offset: 1 } }
layer { name: "concat" type: "Concat" bottom: "crop" bottom: "pool_max" top: "concat" }
layer { name: "conv_strided" type: "Convolution" bottom: "concat" top: "conv_strided"
  convolution_param { num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 } }
"""

_ACTIVATIONS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "prelu" type: "PReLU" bottom: "conv1" top: "prelu" }
layer { name: "prelu_shared" type: "PReLU" bottom: "conv1" top: "prelu_shared" prelu_param { channel_shared: true } }
layer { name: "elu" type: "ELU" bottom: "conv1" top: "elu" elu_param { alpha: 0.7 } }
layer { name: "sigmoid" type: "Sigmoid" bottom: "conv1" top: "sigmoid" }
layer { name: "tanh" type: "TanH" bottom: "conv1" top: "tanh" }
layer { name: "absval" type: "AbsVal" bottom: "conv1" top: "absval" }
layer { name: "power" type: "Power" bottom: "absval" top: "power" power_param { power: 2 scale: 0.5 shift: 1 } }
layer { name: "log" type: "Log" bottom: "power" top: "log" log_param { base: 2 scale: 1.5 shift: 0.25 } }
layer { name: "exp" type: "Exp" bottom: "tanh" top: "exp" exp_param { scale: 0.5 } }
layer { name: "bnll" type: "BNLL" bottom: "conv1" top: "bnll" }
layer { name: "threshold" type: "Threshold" bottom: "conv1" top: "threshold" threshold_param { threshold: 0.1 } }
layer { name: "clip" type: "Clip" bottom: "conv1" top: "clip" clip_param { min: -0.5 max: 0.7 } }
layer { name: "swish" type: "Swish" bottom: "conv1" top: "swish" swish_param { beta: 1.5 } }
layer { name: "dropout" type: "Dropout" bottom: "conv1" top: "dropout" }
layer { name: "relu_leaky" type: "ReLU" bottom: "dropout" top: "relu_leaky" relu_param { negative_slope: 0.1 } }
layer { name: "concat" type: "Concat"
  bottom: "prelu" bottom: "prelu_shared" bottom: "elu" bottom: "sigmoid" bottom: "log" bottom: "exp"
  bottom: "bnll" bottom: "threshold" bottom: "clip" bottom: "swish" bottom: "relu_leaky" top: "concat" }
"""

_NORMALIZATION = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "conv1" top: "bn" batch_norm_param { use_global_stats: true } }
layer { name: "scale" type: "Scale" bottom: "bn" top: "scale" scale_param { bias_term: true } }
layer { name: "bias" type: "Bias" bottom: "scale" top: "bias" }
layer { name: "lrn_across" type: "LRN" bottom: "bias" top: "lrn_across" lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 } }
layer { name: "lrn_within" type: "LRN" bottom: "bias" top: "lrn_within"
  lrn_param { local_size: 3 alpha: 0.5 beta: 0.75 norm_region: WITHIN_CHANNEL } }
layer { name: "softmax" type: "Softmax" bottom: "lrn_across" top: "softmax" }
layer { name: "softmax_h" type: "Softmax" bottom: "lrn_within" top: "softmax_h" softmax_param { axis: 2 } }
layer { name: "concat" type: "Concat" bottom: "softmax" bottom: "softmax_h" top: "concat" }
"""

_SHAPE_AND_TENSOR = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "split" type: "Split" bottom: "conv1" top: "split_a" top: "split_b" }
layer { name: "slice" type: "Slice" bottom: "split_a" top: "slice_a" top: "slice_b" top: "slice_c"
  slice_param { axis: 1 slice_point: 2 slice_point: 4 } }
layer { name: "slice_h" type: "Slice" bottom: "split_b" top: "top_rows" top: "rest_rows"
  slice_param { axis: 2 slice_point: 3 } }
layer { name: "silence" type: "Silence" bottom: "top_rows" }
layer { name: "sum" type: "Eltwise" bottom: "slice_a" bottom: "slice_c" top: "sum"
  eltwise_param { operation: SUM coeff: 0.5 coeff: -2 } }
layer { name: "prod" type: "Eltwise" bottom: "sum" bottom: "slice_c" top: "prod" eltwise_param { operation: PROD } }
layer { name: "max" type: "Eltwise" bottom: "prod" bottom: "slice_a" top: "max" eltwise_param { operation: MAX } }
layer { name: "reshape" type: "Reshape" bottom: "slice_b" top: "reshape"
  reshape_param { shape { dim: 0 dim: 0 dim: -1 } } }
layer { name: "reshape_axis" type: "Reshape" bottom: "reshape" top: "reshape_axis"
  reshape_param { shape { dim: 1 dim: -1 } axis: 1 num_axes: 1 } }
layer { name: "argmax" type: "ArgMax" bottom: "reshape" top: "argmax" argmax_param { axis: 1 } }
layer { name: "argmax_values" type: "ArgMax" bottom: "reshape_axis" top: "argmax_values"
  argmax_param { axis: 2 top_k: 2 out_max_val: true } }
layer { name: "flatten" type: "Flatten" bottom: "max" top: "flatten" }
layer { name: "global" type: "Pooling" bottom: "rest_rows" top: "global" pooling_param { pool: AVE global_pooling: true } }
layer { name: "fc" type: "InnerProduct" bottom: "global" top: "fc" inner_product_param { num_output: 5 } }
"""

#: name -> prototxt text of the layers after the Input layer.
FAMILY_NETS: dict[str, str] = {
    "convolution_pooling": _CONVOLUTION_POOLING,
    "activations": _ACTIVATIONS,
    "normalization": _NORMALIZATION,
    "shape_tensor": _SHAPE_AND_TENSOR,
}


def family_graph(name: str) -> Graph:
    """The family net ``name`` as a Graph (input ``data``, placeholder size INPUT_SHAPE)."""
    return graph_from_net(make_net(FAMILY_NETS[name], {"data": INPUT_SHAPE}, name=name), source=f"{name}.prototxt")


def write_family_net(folder: Path, name: str, seed: int = 0) -> tuple[Path, Path]:
    """Write the family net as ``<name>.prototxt`` and He-initialised ``<name>.caffemodel``."""
    graph, blobs = family_net(name, seed)
    prototxt = Path(folder) / f"{name}.prototxt"
    caffemodel = Path(folder) / f"{name}.caffemodel"
    net = make_net(FAMILY_NETS[name], {"data": INPUT_SHAPE}, name=name)
    prototxt.write_text(text_format.MessageToString(net), encoding="utf-8")
    write_caffemodel(caffemodel, graph, blobs)
    return prototxt, caffemodel


def family_net(name: str, seed: int = 0) -> tuple[Graph, dict[str, list[np.ndarray]]]:
    """The family net and He-initialised blobs for its learnable layers."""
    graph = family_graph(name)
    return graph, synthesize(graph, seed=seed, init="he")


def _conv(name: str, bottom: str, channels: int, kernel: int, relu: bool = True) -> str:
    text = (f'layer {{ name: "{name}" type: "Convolution" bottom: "{bottom}" top: "{name}"\n'
            f'  convolution_param {{ num_output: {channels} kernel_size: {kernel} pad: {kernel // 2} }} }}\n')
    if relu:
        text += f'layer {{ name: "relu_{name}" type: "ReLU" bottom: "{name}" top: "{name}" }}\n'
    return text


def two_branch_text(heatmaps: int = 19, pafs: int = 38, stages: int = 3, width: int = 8) -> str:
    """A miniature COCO-shaped net: stride-8 features F, ``stages`` stages of a PAF branch (L1)
    and a heatmap branch (L2), each stage after the first reading concat(L1, L2, F); the output
    is concat(heatmaps, PAFs) named ``net_output``. Narrow convs, so it exports in a second."""
    text = _conv("conv1", "image", width, 3)
    bottom = "conv1"
    for index in range(1, 4):
        text += (f'layer {{ name: "pool{index}" type: "Pooling" bottom: "{bottom}" top: "pool{index}"\n'
                 '  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n')
        bottom = f"pool{index}"
    text += _conv("features", bottom, width, 3)
    stage_input = "features"
    for stage in range(1, stages + 1):
        outputs = []
        for branch, channels in (("L1", pafs), ("L2", heatmaps)):
            hidden = f"conv1_stage{stage}_{branch}"
            text += _conv(hidden, stage_input, width, 3 if stage == 1 else 5)
            out = f"conv2_stage{stage}_{branch}"
            text += _conv(out, hidden, channels, 1, relu=False)
            outputs.append(out)
        if stage < stages:
            stage_input = f"concat_stage{stage + 1}"
            bottoms = "".join(f' bottom: "{b}"' for b in (*outputs, "features"))
            text += f'layer {{ name: "{stage_input}" type: "Concat"{bottoms} top: "{stage_input}" }}\n'
    text += (f'layer {{ name: "concat_stage{stages + 1}" type: "Concat" bottom: "{outputs[1]}" '
             f'bottom: "{outputs[0]}" top: "net_output" }}\n')
    return text


def mini_coco(seed: int = 0) -> tuple[Graph, dict[str, list[np.ndarray]]]:
    """The miniature COCO-shaped net (input ``image``, 19 + 38 output channels) and its blobs."""
    net = make_net(two_branch_text(), {"image": (1, 3, 1, 1)}, name="mini_coco")
    graph = graph_from_net(net, source="mini_coco.prototxt")
    return graph, synthesize(graph, seed=seed, init="he")
