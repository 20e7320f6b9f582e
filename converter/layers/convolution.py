"""Convolution and Deconvolution, with Caffe's geometry rules.

Caffe's convolution is a cross-correlation over 2 spatial axes with symmetric zero padding,
grouped (``group``), dilated and strided, exactly as ``nn.Conv2d``; output size
``(in + 2p - (d(k-1)+1)) // s + 1``. Deconvolution is the transposed operation with weights
stored [C_in, C_out/group, kh, kw] (``nn.ConvTranspose2d``'s layout), output size
``s(in-1) + d(k-1)+1 - 2p``, which ``nn.ConvTranspose2d`` gives with ``output_padding=0``.

Each spatial parameter is either ``<name>_h``/``<name>_w`` or the repeated ``<name>`` given
once (all axes) or once per axis (BaseConvolutionLayer::LayerSetUp); dilation has no _h/_w.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init  # no random initialisation: the Caffe weights overwrite it

from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError, WeightsError
from posebridge.prototxt import caffe_pb2

SPATIAL_AXES = 2
# Defaults of the repeated spatial fields when none is given (kernel_size has none: required).
SPATIAL_DEFAULTS = {"stride": 1, "pad": 0, "dilation": 1}
# Channel axis: Caffe allows any; only the N, C, H, W layout (axis 1, or -3 of a 4-D blob) converts.
SUPPORTED_CHANNEL_AXIS = 1


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, stride, pad, dilation of one (de)convolution, each (h, w)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]
    dilation: tuple[int, int]


def _pair(spec: LayerSpec, params: caffe_pb2.ConvolutionParameter, name: str) -> tuple[int, int]:
    """One spatial parameter as (h, w), with Caffe's _h/_w-or-repeated rule."""
    h_field, w_field = f"{name}_h", f"{name}_w"
    has_hw = (h_field in params.DESCRIPTOR.fields_by_name
              and (params.HasField(h_field) or params.HasField(w_field)))
    repeated = list(getattr(params, "kernel_size" if name == "kernel" else name))
    if has_hw:
        if repeated:
            raise ShapeError(f"{name} is given both as {name}_h/{name}_w and as a repeated value "
                             f"{repeated}; Caffe allows one or the other", file=spec.source or None, layer=spec.name)
        return int(getattr(params, h_field)), int(getattr(params, w_field))
    if not repeated:
        if name not in SPATIAL_DEFAULTS:
            raise ShapeError("kernel_size (or kernel_h and kernel_w) is required",
                             file=spec.source or None, layer=spec.name)
        return SPATIAL_DEFAULTS[name], SPATIAL_DEFAULTS[name]
    if len(repeated) == 1:
        return int(repeated[0]), int(repeated[0])
    if len(repeated) == SPATIAL_AXES:
        return int(repeated[0]), int(repeated[1])
    raise spec.unsupported(f"{name} has {len(repeated)} values; only {SPATIAL_AXES}-D (N, C, H, W) "
                           "convolution is supported")


def conv_geometry(spec: LayerSpec) -> ConvGeometry:
    """The (h, w) kernel, stride, pad and dilation of a Convolution or Deconvolution layer."""
    params = spec.layer.convolution_param
    geometry = ConvGeometry(kernel=_pair(spec, params, "kernel"), stride=_pair(spec, params, "stride"),
                            pad=_pair(spec, params, "pad"), dilation=_pair(spec, params, "dilation"))
    for what in ("kernel", "stride", "dilation"):
        if min(getattr(geometry, what)) <= 0:
            raise ShapeError(f"{what} {getattr(geometry, what)} must be positive",
                             file=spec.source or None, layer=spec.name)
    return geometry


def _check_layout(spec: LayerSpec) -> None:
    params = spec.layer.convolution_param
    rank = len(spec.input_shapes[0]) if spec.input_shapes else SPATIAL_AXES + 2
    if rank != SPATIAL_AXES + 2:
        raise spec.unsupported(f"bottom has {rank} axes; only 4-D (N, C, H, W) convolution is supported")
    axis = params.axis + rank if params.axis < 0 else params.axis
    if axis != SUPPORTED_CHANNEL_AXIS:
        raise spec.unsupported(f"axis {params.axis}: only channel axis {SUPPORTED_CHANNEL_AXIS} is supported")
    if params.num_output <= 0:
        raise ShapeError("num_output must be positive", file=spec.source or None, layer=spec.name)
    if params.group <= 0 or params.num_output % params.group:
        raise ShapeError(f"num_output {params.num_output} is not a multiple of group {params.group}",
                         file=spec.source or None, layer=spec.name)


def _weights(spec: LayerSpec, expected_weight: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The weight (and bias when bias_term) blobs, checked against Caffe's expected shapes."""
    params = spec.layer.convolution_param
    wanted = 1 + int(params.bias_term)
    if len(spec.blobs) != wanted:
        raise WeightsError(f"expected {wanted} blobs (bias_term {params.bias_term}), got {len(spec.blobs)}",
                           file=spec.source or None, layer=spec.name)
    weight = np.asarray(spec.blobs[0], dtype=np.float32)
    if tuple(weight.shape) != tuple(expected_weight):
        raise WeightsError(f"weight shape {list(weight.shape)} != expected {list(expected_weight)}",
                           file=spec.source or None, layer=spec.name)
    bias = None
    if params.bias_term:
        bias = np.asarray(spec.blobs[1], dtype=np.float32).reshape(-1)
        if bias.shape[0] != params.num_output:
            raise WeightsError(f"bias has {bias.shape[0]} values, expected num_output {params.num_output}",
                               file=spec.source or None, layer=spec.name)
    return weight, bias


def _input_channels(spec: LayerSpec, weight_axis: int, per_group: bool) -> int:
    """C_in from the bottom's shape, or from the weight blob when the shape is unknown."""
    if spec.input_shapes:
        return int(spec.input_shapes[0][SUPPORTED_CHANNEL_AXIS])
    if not spec.blobs:
        raise WeightsError("no weights and no bottom shape to size the layer",
                           file=spec.source or None, layer=spec.name)
    channels = int(np.shape(spec.blobs[0])[weight_axis])
    return channels * spec.layer.convolution_param.group if per_group else channels


def _load(module: nn.Module, weight: np.ndarray, bias: np.ndarray | None) -> nn.Module:
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(weight))
        if bias is not None:
            module.bias.copy_(torch.from_numpy(bias))
    return module


class SharedWeights(nn.Module):
    """One module applied to each of several bottoms (Caffe's multi-bottom convolution)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.inner(bottom) for bottom in bottoms)


def _per_bottom(spec: LayerSpec, module: nn.Module) -> nn.Module:
    tops = len(spec.layer.top)
    if tops != max(1, len(spec.layer.bottom)):
        raise ShapeError(f"{len(spec.layer.bottom)} bottoms but {tops} tops", file=spec.source or None, layer=spec.name)
    return module if tops == 1 else SharedWeights(module)


@register("Convolution")
def convert_convolution(spec: LayerSpec) -> nn.Module:
    """nn.Conv2d with Caffe's weights [C_out, C_in/group, kh, kw]; one per bottom if several."""
    _check_layout(spec)
    params = spec.layer.convolution_param
    geometry = conv_geometry(spec)
    channels = _input_channels(spec, weight_axis=1, per_group=True)
    if channels % params.group:
        raise ShapeError(f"{channels} input channels are not a multiple of group {params.group}",
                         file=spec.source or None, layer=spec.name)
    weight, bias = _weights(spec, (params.num_output, channels // params.group, *geometry.kernel))
    conv = skip_init(nn.Conv2d, channels, params.num_output, geometry.kernel, stride=geometry.stride, padding=geometry.pad,
                     dilation=geometry.dilation, groups=params.group, bias=params.bias_term)
    return _per_bottom(spec, _load(conv, weight, bias))


@register("Deconvolution")
def convert_deconvolution(spec: LayerSpec) -> nn.Module:
    """nn.ConvTranspose2d with Caffe's weights [C_in, C_out/group, kh, kw]; output_padding 0."""
    _check_layout(spec)
    params = spec.layer.convolution_param
    geometry = conv_geometry(spec)
    channels = _input_channels(spec, weight_axis=0, per_group=False)
    if channels % params.group:
        raise ShapeError(f"{channels} input channels are not a multiple of group {params.group}",
                         file=spec.source or None, layer=spec.name)
    weight, bias = _weights(spec, (channels, params.num_output // params.group, *geometry.kernel))
    deconv = skip_init(nn.ConvTranspose2d, channels, params.num_output, geometry.kernel, stride=geometry.stride,
                                padding=geometry.pad, output_padding=0, groups=params.group,
                                bias=params.bias_term, dilation=geometry.dilation)
    return _per_bottom(spec, _load(deconv, weight, bias))
