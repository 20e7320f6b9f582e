"""Element-wise activations (Caffe NeuronLayers), each with BVLC Caffe's formula and parameters.

| Caffe     | output                                                    | parameters                   |
|-----------|-----------------------------------------------------------|------------------------------|
| ReLU      | max(x, 0) + negative_slope * min(x, 0)                    | negative_slope (0)           |
| PReLU     | max(x, 0) + a_c * min(x, 0), a per channel (axis 1)       | channel_shared: one a        |
| ELU       | max(x, 0) + alpha * (exp(min(x, 0)) - 1)                  | alpha (1)                    |
| Sigmoid   | 1 / (1 + exp(-x))                                         |                              |
| TanH      | tanh(x)                                                   |                              |
| AbsVal    | abs(x)                                                    |                              |
| Power     | (shift + scale * x) ^ power; constant if power*scale == 0 | power (1), scale (1), shift  |
| Exp       | base ^ (shift + scale * x), base -1 meaning e              | base (-1), scale (1), shift  |
| Log       | log_base(shift + scale * x), base -1 meaning e             | base (-1), scale (1), shift  |
| BNLL      | log(1 + exp(x)), computed without overflow                |                              |
| Threshold | 1 where x > threshold, else 0                             | threshold (0)                |
| Clip      | max(min, min(x, max))                                     | min, max (required)          |
| Swish     | x * sigmoid(beta * x)                                     | beta (1)                     |
| Dropout   | x (the TEST phase copies its input)                       |                              |

Caffe's scalar pre-computations (ln(base), base^shift, 1/ln(base)) are done in float32, as
Caffe's ``Dtype`` is, so the same constants multiply the data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError, WeightsError

# Caffe's sentinel for "natural base" in Exp and Log.
NATURAL_BASE = -1.0
# PReLU works over axis 1 (channels) of a blob of at least 2 axes.
PRELU_MIN_AXES = 2


def _f32(value: float) -> float:
    """``value`` rounded to float32 (Caffe's Dtype), as a Python float."""
    return float(np.float32(value))


def _scalar_module(spec: LayerSpec, module: nn.Module) -> nn.Module:
    if len(spec.layer.bottom) != 1 or len(spec.layer.top) != 1:
        raise ShapeError(f"{spec.type} takes one bottom and one top, got {len(spec.layer.bottom)} and "
                         f"{len(spec.layer.top)}", file=spec.source or None, layer=spec.name)
    return module


class AbsVal(nn.Module):
    """|x|."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.abs(x)


class CaffeELU(nn.Module):
    """Caffe's ELU: max(x, 0) + alpha * (exp(min(x, 0)) - 1)."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x) + self.alpha * (torch.exp(torch.clamp_max(x, 0.0)) - 1.0)


class Power(nn.Module):
    """(shift + scale * x) ^ power, skipping the identity steps as Caffe does.

    ``constant`` is set when power * scale == 0: Caffe then fills the output with it.
    """

    def __init__(self, power: float, scale: float, shift: float, constant: float | None) -> None:
        super().__init__()
        self.power, self.scale, self.shift, self.constant = power, scale, shift, constant

    def extra_repr(self) -> str:
        return f"power={self.power}, scale={self.scale}, shift={self.shift}, constant={self.constant}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return torch.full_like(x, self.constant)
        y = x * self.scale if self.scale != 1 else x
        y = y + self.shift if self.shift != 0 else y
        return torch.pow(y, self.power) if self.power != 1 else y


class Exp(nn.Module):
    """outer * exp(inner * x): inner = ln(base) * scale, outer = base ^ shift (float32 constants)."""

    def __init__(self, inner_scale: float, outer_scale: float) -> None:
        super().__init__()
        self.inner_scale, self.outer_scale = inner_scale, outer_scale

    def extra_repr(self) -> str:
        return f"inner_scale={self.inner_scale}, outer_scale={self.outer_scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.exp(x * self.inner_scale if self.inner_scale != 1 else x)
        return y * self.outer_scale if self.outer_scale != 1 else y


class Log(nn.Module):
    """log(scale * x + shift) * base_scale, base_scale = 1 / ln(base) (float32 constants)."""

    def __init__(self, scale: float, shift: float, base_scale: float) -> None:
        super().__init__()
        self.scale, self.shift, self.base_scale = scale, shift, base_scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}, shift={self.shift}, base_scale={self.base_scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.scale if self.scale != 1 else x
        y = torch.log(y + self.shift if self.shift != 0 else y)
        return y * self.base_scale if self.base_scale != 1 else y


class BNLL(nn.Module):
    """log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)) (Caffe's two branches in one)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.softplus(x)


class Threshold(nn.Module):
    """1.0 where x > threshold, 0.0 elsewhere (and for NaN)."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Clip(nn.Module):
    """max(min, min(x, max)): upper bound first, so min wins when min > max (as in Caffe)."""

    def __init__(self, minimum: float, maximum: float) -> None:
        super().__init__()
        self.minimum, self.maximum = minimum, maximum

    def extra_repr(self) -> str:
        return f"min={self.minimum}, max={self.maximum}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp_min(torch.clamp_max(x, self.maximum), self.minimum)


class Swish(nn.Module):
    """x * sigmoid(beta * x)."""

    def __init__(self, beta: float) -> None:
        super().__init__()
        self.beta = beta

    def extra_repr(self) -> str:
        return f"beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x * self.beta if self.beta != 1 else x)


class CaffePReLU(nn.Module):
    """max(x, 0) + a * min(x, 0) with a [C] (or [1] shared) slope over axis 1 of any >= 2-D blob."""

    def __init__(self, slopes: np.ndarray) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.from_numpy(np.ascontiguousarray(slopes, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.weight)


@register("ReLU")
def convert_relu(spec: LayerSpec) -> nn.Module:
    """nn.ReLU, or nn.LeakyReLU(negative_slope) when the slope is not 0."""
    slope = _f32(spec.layer.relu_param.negative_slope)
    return _scalar_module(spec, nn.ReLU() if slope == 0 else nn.LeakyReLU(slope))


@register("PReLU")
def convert_prelu(spec: LayerSpec) -> nn.Module:
    """Slopes blob [C], or one value when channel_shared."""
    shared = spec.layer.prelu_param.channel_shared
    if spec.input_shapes and len(spec.input_shapes[0]) < PRELU_MIN_AXES:
        raise ShapeError(f"PReLU needs a bottom of at least {PRELU_MIN_AXES} axes, got {list(spec.input_shapes[0])}",
                         file=spec.source or None, layer=spec.name)
    if len(spec.blobs) != 1:
        raise WeightsError(f"expected 1 blob (slopes), got {len(spec.blobs)}", file=spec.source or None,
                           layer=spec.name)
    slopes = np.asarray(spec.blobs[0], dtype=np.float32).reshape(-1)
    if shared and slopes.size != 1:
        raise WeightsError(f"channel_shared PReLU needs 1 slope, got {slopes.size}", file=spec.source or None,
                           layer=spec.name)
    if not shared and spec.input_shapes and slopes.size != spec.input_shapes[0][1]:
        raise WeightsError(f"{slopes.size} slopes for {spec.input_shapes[0][1]} channels",
                           file=spec.source or None, layer=spec.name)
    return _scalar_module(spec, CaffePReLU(slopes))


@register("ELU")
def convert_elu(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, CaffeELU(_f32(spec.layer.elu_param.alpha)))


@register("Sigmoid")
def convert_sigmoid(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, nn.Sigmoid())


@register("TanH")
def convert_tanh(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, nn.Tanh())


@register("AbsVal")
def convert_absval(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, AbsVal())


@register("Power")
def convert_power(spec: LayerSpec) -> nn.Module:
    p = spec.layer.power_param
    power, scale, shift = _f32(p.power), _f32(p.scale), _f32(p.shift)
    constant = None
    if power * scale == 0:
        with np.errstate(all="ignore"):
            constant = 1.0 if power == 0 else float(np.float32(np.power(np.float64(shift), np.float64(power))))
    return _scalar_module(spec, Power(power, scale, shift, constant))


def _log_base(spec: LayerSpec, base: float) -> float:
    """ln(base) in float32; 1 for Caffe's natural-base sentinel -1. Caffe refuses base <= 0."""
    if base == NATURAL_BASE:
        return 1.0
    if not base > 0:
        raise ShapeError(f"base {base} must be strictly positive (or -1 for e)", file=spec.source or None,
                         layer=spec.name)
    value = _f32(math.log(base))
    if value == 0 or not math.isfinite(value):
        raise ShapeError(f"base {base} has log {value}; Caffe refuses it", file=spec.source or None, layer=spec.name)
    return value


@register("Exp")
def convert_exp(spec: LayerSpec) -> nn.Module:
    p = spec.layer.exp_param
    base, scale, shift = _f32(p.base), _f32(p.scale), _f32(p.shift)
    inner = _f32(_log_base(spec, base) * scale)
    if shift == 0:
        outer = 1.0
    elif base != NATURAL_BASE:
        outer = _f32(math.pow(base, shift))
    else:
        outer = _f32(math.exp(shift))
    return _scalar_module(spec, Exp(inner, outer))


@register("Log")
def convert_log(spec: LayerSpec) -> nn.Module:
    p = spec.layer.log_param
    base = _f32(p.base)
    base_scale = _f32(1.0 / _log_base(spec, base))
    return _scalar_module(spec, Log(_f32(p.scale), _f32(p.shift), base_scale))


@register("BNLL")
def convert_bnll(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, BNLL())


@register("Threshold")
def convert_threshold(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, Threshold(_f32(spec.layer.threshold_param.threshold)))


@register("Clip")
def convert_clip(spec: LayerSpec) -> nn.Module:
    p = spec.layer.clip_param
    missing = [name for name in ("min", "max") if not p.HasField(name)]
    if missing:
        raise ShapeError(f"clip_param needs {' and '.join(missing)} (required in Caffe)", file=spec.source or None,
                         layer=spec.name)
    return _scalar_module(spec, Clip(_f32(p.min), _f32(p.max)))


@register("Swish")
def convert_swish(spec: LayerSpec) -> nn.Module:
    return _scalar_module(spec, Swish(_f32(spec.layer.swish_param.beta)))


@register("Dropout")
def convert_dropout(spec: LayerSpec) -> nn.Module:
    """Identity: Caffe's Dropout scales at training time, so the TEST phase is a plain copy."""
    return _scalar_module(spec, nn.Identity())
