"""The small nets whose every layer output is recorded from real Caffe (tools/make_goldens.py).

Each net exercises one layer family's tricky parameters at batch 2 (batch != channels) and odd
spatial sizes (not multiples of any stride). Data only: the prototxt text of the layers after
the Input layer, the input shapes, the input range, and BatchNorm's stored scale factors
(the one weight value that is a parameter rather than a random draw).

Not covered: Clip and Swish (brocolli-caffe, the Caffe built by tools/build_pycaffe.sh, predates
them and aborts on those types).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

#: Types that real Caffe cannot run here (see the module docstring).
NOT_IN_REFERENCE_CAFFE = ("Clip", "Swish")


@dataclass(frozen=True)
class GoldenNet:
    """One golden net. ``layers`` is prototxt text of ``layer { ... }`` entries after the Input layer."""

    name: str
    description: str
    inputs: Mapping[str, Sequence[int]]
    layers: str
    input_range: tuple[float, float] = (-1.5, 1.5)
    batchnorm_factors: Mapping[str, float] = field(default_factory=dict)

    def prototxt(self) -> str:
        """The complete prototxt text: net name, one Input layer named "input", then the layers."""
        tops = "".join(f'  top: "{blob}"\n' for blob in self.inputs)
        shapes = "".join("    shape {" + "".join(f" dim: {int(d)}" for d in shape) + " }\n"
                         for shape in self.inputs.values())
        return (f'name: "{self.name}"\nlayer {{\n  name: "input"\n  type: "Input"\n{tops}'
                f"  input_param {{\n{shapes}  }}\n}}\n{self.layers.strip()}\n")


CONVOLUTION = GoldenNet(
    name="convolution",
    description="Convolution: group, depthwise, dilation, stride, pad_h != pad_w, kernel_h != kernel_w, "
                "repeated kernel/stride/pad fields, no bias; an in-place ReLU",
    inputs={"data": (2, 6, 13, 11)},
    layers="""
layer { name: "conv_group" type: "Convolution" bottom: "data" top: "conv_group"
  convolution_param { num_output: 4 group: 2 kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "conv_dilated" type: "Convolution" bottom: "data" top: "conv_dilated"
  convolution_param { num_output: 3 kernel_size: 3 dilation: 2 pad: 1 } }
layer { name: "conv_rect" type: "Convolution" bottom: "data" top: "conv_rect"
  convolution_param { num_output: 5 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0
                      bias_term: false } }
layer { name: "conv_repeated" type: "Convolution" bottom: "data" top: "conv_repeated"
  convolution_param { num_output: 2 kernel_size: 3 kernel_size: 1 stride: 1 stride: 2 pad: 2 pad: 0 } }
layer { name: "conv_dil_stride" type: "Convolution" bottom: "data" top: "conv_dil_stride"
  convolution_param { num_output: 6 group: 3 kernel_size: 3 dilation: 3 stride: 3 pad: 2 } }
layer { name: "conv_depthwise" type: "Convolution" bottom: "data" top: "conv_depthwise"
  convolution_param { num_output: 12 group: 6 kernel_size: 3 pad: 1 } }
layer { name: "relu_depthwise" type: "ReLU" bottom: "conv_depthwise" top: "conv_depthwise" }
layer { name: "conv_1x1" type: "Convolution" bottom: "conv_depthwise" top: "conv_1x1"
  convolution_param { num_output: 3 kernel_size: 1 } }
""")

DECONVOLUTION = GoldenNet(
    name="deconvolution",
    description="Deconvolution: stride and pad, group, kernel_h/w and stride_h/w, dilation, no bias",
    inputs={"data": (2, 4, 7, 5)},
    layers="""
layer { name: "deconv_s2" type: "Deconvolution" bottom: "data" top: "deconv_s2"
  convolution_param { num_output: 3 kernel_size: 4 stride: 2 pad: 1 } }
layer { name: "deconv_group" type: "Deconvolution" bottom: "data" top: "deconv_group"
  convolution_param { num_output: 6 group: 2 kernel_size: 3 stride: 2 bias_term: false } }
layer { name: "deconv_rect" type: "Deconvolution" bottom: "data" top: "deconv_rect"
  convolution_param { num_output: 2 kernel_h: 3 kernel_w: 2 stride_h: 3 stride_w: 2 pad_h: 1 pad_w: 0 } }
layer { name: "deconv_dilated" type: "Deconvolution" bottom: "data" top: "deconv_dilated"
  convolution_param { num_output: 2 group: 2 kernel_size: 3 dilation: 2 pad: 1 stride: 1 } }
""")

INNER_PRODUCT = GoldenNet(
    name="inner_product",
    description="InnerProduct: axis 1 (flattening C*H*W), axis 2, axis -1, transpose, no bias",
    inputs={"data": (2, 3, 5, 7)},
    layers="""
layer { name: "ip_axis1" type: "InnerProduct" bottom: "data" top: "ip_axis1"
  inner_product_param { num_output: 4 } }
layer { name: "ip_axis2" type: "InnerProduct" bottom: "data" top: "ip_axis2"
  inner_product_param { num_output: 6 axis: 2 } }
layer { name: "ip_last_axis" type: "InnerProduct" bottom: "data" top: "ip_last_axis"
  inner_product_param { num_output: 3 axis: -1 } }
layer { name: "ip_transpose" type: "InnerProduct" bottom: "data" top: "ip_transpose"
  inner_product_param { num_output: 5 transpose: true bias_term: false } }
layer { name: "ip_transpose_axis2" type: "InnerProduct" bottom: "data" top: "ip_transpose_axis2"
  inner_product_param { num_output: 2 axis: 2 transpose: true } }
""")

POOLING = GoldenNet(
    name="pooling",
    description="Pooling MAX/AVE: sizes rounding up at a partial last window, padding, a last window "
                "starting in the padding (dropped), AVE divisor counting padding, kernel/stride/pad h != w, "
                "the drop applied to an unpadded axis when the other axis is padded, global pooling, "
                "default stride",
    inputs={"data": (2, 3, 13, 11)},
    layers="""
layer { name: "max_ceil" type: "Pooling" bottom: "data" top: "max_ceil"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "ave_ceil" type: "Pooling" bottom: "data" top: "ave_ceil"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "max_pad" type: "Pooling" bottom: "data" top: "max_pad"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "ave_pad" type: "Pooling" bottom: "data" top: "ave_pad"
  pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "max_drop" type: "Pooling" bottom: "data" top: "max_drop"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "ave_drop" type: "Pooling" bottom: "data" top: "ave_drop"
  pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }
layer { name: "ave_k4s3p2" type: "Pooling" bottom: "data" top: "ave_k4s3p2"
  pooling_param { pool: AVE kernel_size: 4 stride: 3 pad: 2 } }
layer { name: "ave_rect" type: "Pooling" bottom: "data" top: "ave_rect"
  pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 1 pad_w: 0 } }
layer { name: "max_rect" type: "Pooling" bottom: "data" top: "max_rect"
  pooling_param { pool: MAX kernel_h: 2 kernel_w: 4 stride_h: 3 stride_w: 2 pad_h: 1 pad_w: 2 } }
layer { name: "ave_pad_h_only" type: "Pooling" bottom: "data" top: "ave_pad_h_only"
  pooling_param { pool: AVE kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 4 pad_h: 1 pad_w: 0 } }
layer { name: "max_pad_w_only" type: "Pooling" bottom: "data" top: "max_pad_w_only"
  pooling_param { pool: MAX kernel_h: 2 kernel_w: 3 stride_h: 5 stride_w: 2 pad_h: 0 pad_w: 1 } }
layer { name: "max_stride1" type: "Pooling" bottom: "data" top: "max_stride1"
  pooling_param { pool: MAX kernel_size: 2 } }
layer { name: "global_max" type: "Pooling" bottom: "data" top: "global_max"
  pooling_param { pool: MAX global_pooling: true } }
layer { name: "global_ave" type: "Pooling" bottom: "data" top: "global_ave"
  pooling_param { pool: AVE global_pooling: true } }
layer { name: "max_after_max" type: "Pooling" bottom: "max_pad" top: "max_after_max"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
""")

ACTIVATIONS = GoldenNet(
    name="activations",
    description="ReLU (negative_slope), PReLU shared/per-channel, ELU, Sigmoid, TanH, AbsVal, Power "
                "(incl. the power-or-scale-0 and power-1 special cases), Exp, Log (bases), BNLL, Threshold, "
                "Dropout; an in-place chain conv -> ReLU -> TanH -> Dropout",
    inputs={"data": (2, 3, 9, 7)},
    layers="""
layer { name: "relu" type: "ReLU" bottom: "data" top: "relu" }
layer { name: "relu_leaky" type: "ReLU" bottom: "data" top: "relu_leaky" relu_param { negative_slope: 0.1 } }
layer { name: "prelu_channel" type: "PReLU" bottom: "data" top: "prelu_channel" }
layer { name: "prelu_shared" type: "PReLU" bottom: "data" top: "prelu_shared" prelu_param { channel_shared: true } }
layer { name: "elu" type: "ELU" bottom: "data" top: "elu" elu_param { alpha: 0.5 } }
layer { name: "elu_default" type: "ELU" bottom: "data" top: "elu_default" }
layer { name: "sigmoid" type: "Sigmoid" bottom: "data" top: "sigmoid" }
layer { name: "tanh" type: "TanH" bottom: "data" top: "tanh" }
layer { name: "absval" type: "AbsVal" bottom: "data" top: "absval" }
layer { name: "power_square" type: "Power" bottom: "data" top: "power_square"
  power_param { power: 2 scale: 0.5 shift: 0.25 } }
layer { name: "power_cube" type: "Power" bottom: "data" top: "power_cube"
  power_param { power: 3 scale: -1.5 shift: 0.1 } }
layer { name: "power_linear" type: "Power" bottom: "data" top: "power_linear"
  power_param { power: 1 scale: 2 shift: -1 } }
layer { name: "power_scale0" type: "Power" bottom: "data" top: "power_scale0"
  power_param { power: 2 scale: 0 shift: 0.7 } }
layer { name: "power_sqrt" type: "Power" bottom: "data" top: "power_sqrt"
  power_param { power: 0.5 scale: 0.5 shift: 1 } }
layer { name: "exp" type: "Exp" bottom: "data" top: "exp" }
layer { name: "exp_base2" type: "Exp" bottom: "data" top: "exp_base2" exp_param { base: 2 scale: 0.5 shift: -0.3 } }
layer { name: "log" type: "Log" bottom: "data" top: "log" log_param { shift: 2 } }
layer { name: "log_base10" type: "Log" bottom: "data" top: "log_base10"
  log_param { base: 10 scale: 0.5 shift: 1.5 } }
layer { name: "bnll" type: "BNLL" bottom: "data" top: "bnll" }
layer { name: "threshold" type: "Threshold" bottom: "data" top: "threshold" threshold_param { threshold: 0.2 } }
layer { name: "dropout" type: "Dropout" bottom: "data" top: "dropout" dropout_param { dropout_ratio: 0.3 } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "relu_inplace" type: "ReLU" bottom: "conv" top: "conv" relu_param { negative_slope: 0.2 } }
layer { name: "tanh_inplace" type: "TanH" bottom: "conv" top: "conv" }
layer { name: "dropout_inplace" type: "Dropout" bottom: "conv" top: "conv" }
layer { name: "prelu_inplace" type: "PReLU" bottom: "conv" top: "conv" }
""")

TENSOR = GoldenNet(
    name="tensor",
    description="Split, Slice (slice points, equal split over the batch, legacy slice_dim), Concat (axis 1, "
                "axis 2, legacy concat_dim), Eltwise SUM with coefficients / plain SUM / PROD / MAX, Silence",
    inputs={"data": (2, 4, 7, 5)},
    layers="""
layer { name: "split" type: "Split" bottom: "data" top: "split_a" top: "split_b" }
layer { name: "slice_channels" type: "Slice" bottom: "split_a" top: "slice_c0" top: "slice_c1" top: "slice_c2"
  slice_param { axis: 1 slice_point: 1 slice_point: 3 } }
layer { name: "slice_batch" type: "Slice" bottom: "data" top: "slice_n0" top: "slice_n1" slice_param { axis: 0 } }
layer { name: "slice_legacy" type: "Slice" bottom: "data" top: "slice_h0" top: "slice_h1"
  slice_param { slice_dim: 2 slice_point: 3 } }
layer { name: "concat_channels" type: "Concat" bottom: "slice_c0" bottom: "slice_c2" bottom: "split_b"
  top: "concat_channels" }
layer { name: "concat_height" type: "Concat" bottom: "slice_h1" bottom: "slice_h0" bottom: "slice_h1"
  top: "concat_height" concat_param { axis: 2 } }
layer { name: "concat_legacy" type: "Concat" bottom: "slice_n1" bottom: "slice_n0" top: "concat_legacy"
  concat_param { concat_dim: 3 } }
layer { name: "eltwise_sum_coeff" type: "Eltwise" bottom: "split_a" bottom: "split_b" bottom: "data"
  top: "eltwise_sum_coeff" eltwise_param { operation: SUM coeff: 0.5 coeff: -2 coeff: 1.25 } }
layer { name: "eltwise_sum" type: "Eltwise" bottom: "slice_n0" bottom: "slice_n1" top: "eltwise_sum" }
layer { name: "eltwise_prod" type: "Eltwise" bottom: "data" bottom: "split_b" bottom: "eltwise_sum_coeff"
  top: "eltwise_prod" eltwise_param { operation: PROD } }
layer { name: "eltwise_max" type: "Eltwise" bottom: "slice_h0" bottom: "slice_h0" top: "eltwise_max"
  eltwise_param { operation: MAX } }
layer { name: "eltwise_max3" type: "Eltwise" bottom: "data" bottom: "eltwise_sum_coeff" bottom: "eltwise_prod"
  top: "eltwise_max3" eltwise_param { operation: MAX } }
layer { name: "silence" type: "Silence" bottom: "slice_c1" }
""")

SHAPE = GoldenNet(
    name="shape",
    description="Flatten (axis, end_axis), Reshape (0 and -1 dims, axis/num_axes, appended/inserted axes), Softmax over axes 1, 2, "
                "-1, Crop (axis 2 and 1, one and several offsets), ArgMax (axis, top_k, out_max_val, "
                "flattened)",
    inputs={"data": (2, 3, 9, 7)},
    layers="""
layer { name: "flatten" type: "Flatten" bottom: "data" top: "flatten" }
layer { name: "flatten_axis2" type: "Flatten" bottom: "data" top: "flatten_axis2" flatten_param { axis: 2 } }
layer { name: "flatten_range" type: "Flatten" bottom: "data" top: "flatten_range"
  flatten_param { axis: 1 end_axis: 2 } }
layer { name: "reshape" type: "Reshape" bottom: "data" top: "reshape"
  reshape_param { shape { dim: 0 dim: -1 dim: 7 } } }
layer { name: "reshape_span" type: "Reshape" bottom: "data" top: "reshape_span"
  reshape_param { shape { dim: 9 dim: -1 dim: 3 } axis: 1 num_axes: 2 } }
layer { name: "reshape_rest" type: "Reshape" bottom: "data" top: "reshape_rest"
  reshape_param { shape { dim: -1 } axis: 2 } }
layer { name: "reshape_append" type: "Reshape" bottom: "data" top: "reshape_append"
  reshape_param { shape { dim: 1 } axis: -1 } }
layer { name: "reshape_insert" type: "Reshape" bottom: "data" top: "reshape_insert"
  reshape_param { shape { dim: 1 } axis: 1 num_axes: 0 } }
layer { name: "softmax" type: "Softmax" bottom: "data" top: "softmax" }
layer { name: "softmax_axis2" type: "Softmax" bottom: "data" top: "softmax_axis2" softmax_param { axis: 2 } }
layer { name: "softmax_last" type: "Softmax" bottom: "data" top: "softmax_last" softmax_param { axis: -1 } }
layer { name: "conv_ref" type: "Convolution" bottom: "data" top: "conv_ref"
  convolution_param { num_output: 2 kernel_size: 5 } }
layer { name: "crop" type: "Crop" bottom: "data" bottom: "conv_ref" top: "crop" crop_param { offset: 2 } }
layer { name: "crop_hw" type: "Crop" bottom: "data" bottom: "conv_ref" top: "crop_hw"
  crop_param { axis: 2 offset: 1 offset: 2 } }
layer { name: "crop_chw" type: "Crop" bottom: "data" bottom: "conv_ref" top: "crop_chw"
  crop_param { axis: 1 offset: 1 offset: 2 offset: 3 } }
layer { name: "argmax_channels" type: "ArgMax" bottom: "data" top: "argmax_channels" argmax_param { axis: 1 } }
layer { name: "argmax_top2_values" type: "ArgMax" bottom: "data" top: "argmax_top2_values"
  argmax_param { axis: 1 top_k: 2 out_max_val: true } }
layer { name: "argmax_width_top3" type: "ArgMax" bottom: "data" top: "argmax_width_top3"
  argmax_param { axis: 3 top_k: 3 } }
layer { name: "argmax_flat" type: "ArgMax" bottom: "data" top: "argmax_flat" argmax_param { top_k: 3 out_max_val: true } }
layer { name: "argmax_flat_index" type: "ArgMax" bottom: "data" top: "argmax_flat_index" }
""")

NORMALIZATION = GoldenNet(
    name="normalization",
    description="BatchNorm with stored scale factor 0.5, 0 and 2.5 and eps; Scale/Bias learned over axis 1, "
                "axes 2-3, a scalar, and from a second bottom; LRN ACROSS_CHANNELS (size 5 and 3, more "
                "channels than size) and WITHIN_CHANNEL (k is ignored there)",
    inputs={"data": (2, 3, 9, 7), "gain": (2, 3), "offset": (3, 9)},
    batchnorm_factors={"bn_half": 0.5, "bn_zero": 0.0, "bn_default": 2.5},
    layers="""
layer { name: "bn_half" type: "BatchNorm" bottom: "data" top: "bn_half"
  batch_norm_param { use_global_stats: true eps: 0.001 } }
layer { name: "bn_zero" type: "BatchNorm" bottom: "data" top: "bn_zero" batch_norm_param { eps: 0.01 } }
layer { name: "bn_default" type: "BatchNorm" bottom: "data" top: "bn_default" }
layer { name: "scale_channels" type: "Scale" bottom: "bn_half" top: "scale_channels" scale_param { bias_term: true } }
layer { name: "scale_hw" type: "Scale" bottom: "data" top: "scale_hw" scale_param { axis: 2 num_axes: -1 } }
layer { name: "scale_scalar" type: "Scale" bottom: "data" top: "scale_scalar"
  scale_param { num_axes: 0 bias_term: true } }
layer { name: "scale_bottom" type: "Scale" bottom: "data" bottom: "gain" top: "scale_bottom"
  scale_param { axis: 0 bias_term: true } }
layer { name: "bias_channels" type: "Bias" bottom: "data" top: "bias_channels" }
layer { name: "bias_bottom" type: "Bias" bottom: "data" bottom: "offset" top: "bias_bottom" bias_param { axis: 1 } }
layer { name: "bias_hw" type: "Bias" bottom: "data" top: "bias_hw" bias_param { axis: 2 num_axes: 2 } }
layer { name: "bn_inplace" type: "BatchNorm" bottom: "bias_hw" top: "bias_hw" batch_norm_param { eps: 0.001 } }
layer { name: "scale_inplace" type: "Scale" bottom: "bias_hw" top: "bias_hw" scale_param { bias_term: true } }
layer { name: "lrn_across" type: "LRN" bottom: "data" top: "lrn_across"
  lrn_param { local_size: 5 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "conv7" type: "Convolution" bottom: "data" top: "conv7" convolution_param { num_output: 7 kernel_size: 1 } }
layer { name: "lrn_across7" type: "LRN" bottom: "conv7" top: "lrn_across7"
  lrn_param { local_size: 3 alpha: 1 beta: 0.5 k: 1 } }
layer { name: "lrn_within" type: "LRN" bottom: "data" top: "lrn_within"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 beta: 0.75 k: 2 } }
layer { name: "lrn_within5" type: "LRN" bottom: "conv7" top: "lrn_within5"
  lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 alpha: 2 beta: 0.6 } }
""")

#: Every golden net, in the order files are written.
GOLDEN_NETS: tuple[GoldenNet, ...] = (CONVOLUTION, DECONVOLUTION, INNER_PRODUCT, POOLING, ACTIVATIONS, TENSOR,
                                      SHAPE, NORMALIZATION)


def golden_net(name: str) -> GoldenNet:
    """The golden net called ``name`` (KeyError listing the names otherwise)."""
    for net in GOLDEN_NETS:
        if net.name == name:
            return net
    raise KeyError(f"no golden net '{name}'; known: {', '.join(n.name for n in GOLDEN_NETS)}")
