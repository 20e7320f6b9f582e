"""Legacy-format Caffe fixtures (V0, V1, legacy inputs) with their V2 equivalents, for tests.

Each ``*_TEXT`` is a prototxt; ``parse_net`` turns one into a ``NetParameter``. The V0, V1 and
V2 nets below describe the same small network: input 1x3x8x8 -> conv(4, 3x3, pad 1) -> ReLU
(in place) -> max pool 2x2/2 -> inner product(10) -> softmax.
"""

from __future__ import annotations

from google.protobuf import text_format

from posebridge.prototxt import caffe_pb2

TINY_V2_TEXT = """
name: "tiny"
layer { name: "input" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer {
  name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param {
    num_output: 4 pad: 1 kernel_size: 3 stride: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.1 }
  }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 10 bias_term: false } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""

TINY_V1_TEXT = """
name: "tiny"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param {
    num_output: 4 pad: 1 kernel_size: 3 stride: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.1 }
  }
}
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool1" top: "fc" inner_product_param { num_output: 10 bias_term: false } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
"""

# V0: the conv padding is a separate "padding" layer, folded into conv1 by the upgrade.
TINY_V0_TEXT = """
name: "tiny"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
layers {
  layer {
    name: "conv1" type: "conv" num_output: 4 kernelsize: 3 stride: 1
    weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0.1 }
    blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  }
  bottom: "pad1" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: MAX kernelsize: 2 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 10 biasterm: false } bottom: "pool1" top: "fc" }
layers { layer { name: "prob" type: "softmax" } bottom: "fc" top: "prob" }
"""

# Two inputs declared three ways; all must give the same Input layer.
TWO_INPUTS_BODY = """
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "ab" }
"""
TWO_INPUTS_DIM_TEXT = (
    'input: "a" input: "b" input_dim: 1 input_dim: 2 input_dim: 5 input_dim: 7 '
    "input_dim: 1 input_dim: 3 input_dim: 5 input_dim: 7" + TWO_INPUTS_BODY
)
TWO_INPUTS_SHAPE_TEXT = (
    'input: "a" input: "b" input_shape { dim: 1 dim: 2 dim: 5 dim: 7 } '
    "input_shape { dim: 1 dim: 3 dim: 5 dim: 7 }" + TWO_INPUTS_BODY
)
TWO_INPUTS_V2_TEXT = (
    'layer { name: "input" type: "Input" top: "a" top: "b" '
    "input_param { shape { dim: 1 dim: 2 dim: 5 dim: 7 } shape { dim: 1 dim: 3 dim: 5 dim: 7 } } }" + TWO_INPUTS_BODY
)


def parse_net(text: str) -> caffe_pb2.NetParameter:
    """A NetParameter from prototxt text (protobuf's own text_format)."""
    return text_format.Parse(text, caffe_pb2.NetParameter())


def blob(values: list[float], shape: list[int] | None = None, legacy_nchw: list[int] | None = None) -> caffe_pb2.BlobProto:
    """A BlobProto with ``values``, shaped by ``shape`` or by the legacy num/channels/height/width."""
    proto = caffe_pb2.BlobProto(data=values)
    if shape is not None:
        proto.shape.dim.extend(shape)
    if legacy_nchw is not None:
        proto.num, proto.channels, proto.height, proto.width = legacy_nchw
    return proto
