"""Normalization layers: BatchNorm, Scale, Bias, LRN and Softmax, with Caffe's exact rules.

Rules (BVLC caffe ``src/caffe/layers/{batch_norm,scale,bias,lrn,softmax}_layer.cpp``):

* BatchNorm, with the stored statistics (``use_global_stats``, the default at inference):
  ``f = 0 if s == 0 else 1 / s`` for the stored scale factor ``s`` (blob 2); then
  ``y = (x - f * mean) / sqrt(f * variance + eps)`` per channel (axis 1). With
  ``use_global_stats: false`` Caffe normalizes by the batch's own mean and biased variance over
  every axis but 1, even at inference; that is reproduced too.
* Scale: ``y = x * s (+ b)`` with ``s`` (a learned blob, or bottom 1) lined up with the
  bottom's axes from ``axis`` on; a scalar ``s`` (0 axes) applies everywhere. The learned blob's
  own shape says how many axes it spans (``num_axes`` only sized it at training time). With
  ``bias_term`` the bias blob follows the scale blob (or is the only blob when ``s`` is bottom 1).
* Bias: ``y = x + b`` with the same alignment rules.
* LRN ACROSS_CHANNELS: ``y = x * (k + alpha / n * sum of x^2 over the n channels centred on
  the channel, zero-padded)^-beta``. WITHIN_CHANNEL: Caffe chains Power (square), AVE pooling
  (kernel n, stride 1, pad (n-1)/2, padding counted, so the divisor is always n^2) and Power
  ``(1 + alpha * avg)^-beta``: ``k`` is NOT used there. ``n`` must be odd; the bottom 4-D.
* Softmax along ``axis`` (default 1).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posebridge.converter.layers._axes import broadcast_from, canonical_axis, tracing
from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError, WeightsError
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.layer_types import layer_type

_NORM_REGIONS = {value: name for name, value in caffe_pb2.LRNParameter.NormRegion.items()}
_CHANNEL_AXIS = 1
_LRN_AXES = 4


def _blob_names(type_name: str) -> tuple[str, ...]:
    entry = layer_type(type_name)
    return entry.blob_names if entry else ()


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))


def _aligned(values: torch.Tensor, axis: int, x: torch.Tensor, layer: str, what: str) -> torch.Tensor:
    """``values`` broadcastable against ``x`` from ``axis`` on (a scalar anywhere), checked as Caffe
    checks: the spanned axes must equal ``values``' shape exactly (no silent broadcasting)."""
    if values.dim() == 0:
        return values
    start = canonical_axis(axis, x.dim(), layer)
    if start + values.dim() > x.dim():
        raise ShapeError(f"{what} of shape {tuple(values.shape)} extends past a {x.dim()}-D bottom from axis {start}",
                         layer=layer)
    if not tracing():
        spanned = tuple(x.shape[start:start + values.dim()])
        if spanned != tuple(values.shape):
            raise ShapeError(f"{what} of shape {tuple(values.shape)} does not match bottom axes {start}.. of shape "
                             f"{tuple(x.shape)}", layer=layer)
    return broadcast_from(values, start, x.dim())


class BatchNorm(nn.Module):
    """forward(x) -> (x - mean) / sqrt(variance + eps) per channel (axis 1), Caffe's statistics."""

    def __init__(self, mean: np.ndarray, variance: np.ndarray, scale_factor: np.ndarray, eps: float,
                 use_global_stats: bool, layer: str) -> None:
        super().__init__()
        self.register_buffer("mean", _tensor(mean))
        self.register_buffer("variance", _tensor(variance))
        self.register_buffer("scale_factor", _tensor(scale_factor))
        self.eps = eps
        self.use_global_stats = use_global_stats
        self.layer = layer

    def extra_repr(self) -> str:
        return f"channels={self.mean.numel()}, eps={self.eps}, use_global_stats={self.use_global_stats}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_global_stats:
            stored = self.scale_factor.reshape(-1)[0]
            factor = torch.where(stored == 0, torch.zeros_like(stored), torch.reciprocal(stored))
            mean = broadcast_from(self.mean * factor, _CHANNEL_AXIS, x.dim())
            variance = broadcast_from(self.variance * factor, _CHANNEL_AXIS, x.dim())
        else:
            reduced = [0, *range(2, x.dim())]
            mean = x.mean(dim=reduced, keepdim=True)
            variance = ((x - mean) * (x - mean)).mean(dim=reduced, keepdim=True)
        return (x - mean) / torch.sqrt(variance + self.eps)


class Scale(nn.Module):
    """forward(x[, scale]) -> x * scale (+ bias), scale/bias aligned from ``axis`` on."""

    def __init__(self, axis: int, scale: np.ndarray | None, bias: np.ndarray | None, layer: str) -> None:
        super().__init__()
        self.axis = axis
        self.layer = layer
        self.scale = nn.Parameter(_tensor(scale)) if scale is not None else None
        self.bias = nn.Parameter(_tensor(bias)) if bias is not None else None

    def extra_repr(self) -> str:
        scale = "bottom 1" if self.scale is None else tuple(self.scale.shape)
        bias = None if self.bias is None else tuple(self.bias.shape)
        return f"axis={self.axis}, scale={scale}, bias={bias}"

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        if scale is None:
            scale = self.scale
        if scale is None:
            raise ShapeError("Scale without a learned scale needs the scale as a second bottom", layer=self.layer)
        result = x * _aligned(scale, self.axis, x, self.layer, "scale")
        if self.bias is not None:
            result = result + _aligned(self.bias, self.axis, x, self.layer, "bias")
        return result


class Bias(nn.Module):
    """forward(x[, bias]) -> x + bias, bias aligned from ``axis`` on."""

    def __init__(self, axis: int, bias: np.ndarray | None, layer: str) -> None:
        super().__init__()
        self.axis = axis
        self.layer = layer
        self.bias = nn.Parameter(_tensor(bias)) if bias is not None else None

    def extra_repr(self) -> str:
        bias = "bottom 1" if self.bias is None else tuple(self.bias.shape)
        return f"axis={self.axis}, bias={bias}"

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        if bias is None:
            bias = self.bias
        if bias is None:
            raise ShapeError("Bias without a learned bias needs the bias as a second bottom", layer=self.layer)
        return x + _aligned(bias, self.axis, x, self.layer, "bias")


class LRN(nn.Module):
    """forward(x) -> local response normalization of a 4-D x (N, C, H, W), Caffe's formulas."""

    def __init__(self, region: str, size: int, alpha: float, beta: float, k: float, layer: str) -> None:
        super().__init__()
        self.region = region
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.layer = layer

    def extra_repr(self) -> str:
        return f"{self.region}, local_size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != _LRN_AXES:
            raise ShapeError(f"LRN needs a 4-D bottom (N, C, H, W), got {x.dim()}-D", layer=self.layer)
        half = (self.size - 1) // 2
        squares = x * x
        if self.region == "ACROSS_CHANNELS":
            # Mean over the zero-padded channel window = sum / local_size (padded explicitly: the
            # window may be wider than the channels).
            padded = F.pad(squares.unsqueeze(1), (0, 0, 0, 0, half, half))
            window_mean = F.avg_pool3d(padded, (self.size, 1, 1), stride=1).squeeze(1)
            denominator = self.k + self.alpha * window_mean
        else:
            window_mean = F.avg_pool2d(squares, self.size, stride=1, padding=half, count_include_pad=True)
            denominator = 1.0 + self.alpha * window_mean
        return x * torch.pow(denominator, -self.beta)


class Softmax(nn.Module):
    """forward(x) -> softmax of x along ``axis``."""

    def __init__(self, axis: int, layer: str) -> None:
        super().__init__()
        self.axis = axis
        self.layer = layer

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=canonical_axis(self.axis, x.dim(), self.layer))


def _need_blobs(spec: LayerSpec, count: int, why: str) -> None:
    if len(spec.blobs) != count:
        raise WeightsError(f"{spec.type} {why} needs {count} blob(s), got {len(spec.blobs)}",
                           file=spec.source or None, layer=spec.name)


@register("BatchNorm")
def convert_batch_norm(spec: LayerSpec) -> nn.Module:
    params = spec.layer.batch_norm_param
    names = _blob_names("BatchNorm")
    _need_blobs(spec, len(names), f"({', '.join(names)})")
    mean, variance, scale_factor = spec.blobs
    if mean.size != variance.size or scale_factor.size != 1:
        raise WeightsError(f"BatchNorm blobs of shapes {[b.shape for b in spec.blobs]}: mean and variance must match "
                           "and the scale factor must hold one value", file=spec.source or None, layer=spec.name)
    # Caffe's default at inference (TEST phase) is to use the stored statistics.
    use_global_stats = params.use_global_stats if params.HasField("use_global_stats") else True
    return BatchNorm(mean.reshape(-1), variance.reshape(-1), scale_factor.reshape(-1), float(params.eps),
                     bool(use_global_stats), spec.name)


@register("Scale")
def convert_scale(spec: LayerSpec) -> nn.Module:
    params = spec.layer.scale_param
    scale_from_bottom = len(spec.layer.bottom) > 1
    expected = (0 if scale_from_bottom else 1) + (1 if params.bias_term else 0)
    _need_blobs(spec, expected, f"with {len(spec.layer.bottom)} bottom(s) and bias_term={params.bias_term}")
    blobs = list(spec.blobs)
    scale = None if scale_from_bottom else blobs.pop(0)
    bias = blobs.pop(0) if params.bias_term else None
    return Scale(int(params.axis), scale, bias, spec.name)


@register("Bias")
def convert_bias(spec: LayerSpec) -> nn.Module:
    params = spec.layer.bias_param
    bias_from_bottom = len(spec.layer.bottom) > 1
    _need_blobs(spec, 0 if bias_from_bottom else 1, f"with {len(spec.layer.bottom)} bottom(s)")
    return Bias(int(params.axis), None if bias_from_bottom else spec.blobs[0], spec.name)


@register("LRN")
def convert_lrn(spec: LayerSpec) -> nn.Module:
    params = spec.layer.lrn_param
    if params.local_size % 2 != 1:
        raise spec.unsupported(f"local_size {params.local_size}: Caffe's LRN supports only odd sizes")
    region = _NORM_REGIONS[params.norm_region]
    return LRN(region, int(params.local_size), float(params.alpha), float(params.beta), float(params.k), spec.name)


@register("Softmax")
def convert_softmax(spec: LayerSpec) -> nn.Module:
    return Softmax(int(spec.layer.softmax_param.axis), spec.name)
