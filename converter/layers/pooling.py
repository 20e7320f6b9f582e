"""Pooling (MAX, AVE, global) with Caffe's exact output size, window clipping and AVE divisor.

Caffe (PoolingLayer::Reshape / Forward_cpu), per spatial axis of size ``n`` with kernel ``k``,
stride ``s``, pad ``p`` (p < k):

* output size ``ceil((n + 2p - k) / s) + 1`` (``floor`` with round_mode FLOOR); then, when
  ``p > 0``, a last window starting at or beyond ``n + p`` (in the right padding) is dropped;
* window ``j`` starts at ``j*s - p``; MAX takes the max over the part inside the input (starting
  from -FLT_MAX); AVE sums the part inside the input and divides by the window clipped to the
  PADDED input: ``min(start + k, n + p) - start`` per axis, multiplied over the two axes.

Implementation, with no shape arithmetic in Python (exports to ONNX with dynamic H, W): pad
left by ``p`` and right by a constant ``r``, then pool with no padding and floor rounding,
which yields ``floor((n + p + r - k) / s) + 1`` windows, all inside the padded tensor. The
constant ``r`` that gives Caffe's count is (derivation in ``right_padding``):

* CEIL, p > 0: ``r = min(k - 1, p + s - 1)``;  CEIL, p = 0: ``r = s - 1``;  FLOOR: ``r = p``.

MAX pads with -FLT_MAX (so a window that lies wholly outside the input gives -FLT_MAX, as in
Caffe; this happens only with p = 0 and s > k). AVE pads with zeros and divides by the
Caffe divisor, computed per axis by pooling a 1-D mask (1 on [-p, n+p), 0 beyond), minus the
distance by which a window starts beyond ``n + p`` (Caffe's divisor goes to zero or below
there: 0/0 gives NaN, 0/negative gives -0, exactly as Caffe computes it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError
from posebridge.prototxt import caffe_pb2

PoolingParameter = caffe_pb2.PoolingParameter
# Caffe initialises MAX outputs to -FLT_MAX and only overwrites them with larger inputs.
MAX_PAD_VALUE = float(-np.finfo(np.float32).max)
SUPPORTED_METHODS = {PoolingParameter.MAX: "MAX", PoolingParameter.AVE: "AVE"}
SPATIAL_RANK = 4


def right_padding(kernel: int, stride: int, pad: int, ceil_mode: bool, drop_last: bool | None = None) -> int:
    """The constant right pad ``r`` that makes floor pooling of [p | input | r] give Caffe's count.

    Caffe's CEIL count is ``min(O0, ceil((n + p) / s))`` when the last-window drop is active
    (O0 = ceil((n+2p-k)/s) + 1; the drop removes exactly the windows starting at or beyond
    n + p, and at most one exists), and O0 otherwise. Caffe activates the drop on BOTH axes
    whenever either is padded (``if (pad_h_ || pad_w_)`` in PoolingLayer::Reshape):
    ``drop_last`` says so (default: this axis's own pad). With left pad p, floor pooling over
    n + p + r gives ``floor((n + p + r - k) / s) + 1``, which equals O0 for r = p + s - 1 and
    ceil((n + p) / s) for r = k - 1; a min of such floors is the floor at the smaller r.
    FLOOR: O = floor((n + 2p - k) / s) + 1 (never dropped, as p < k), so r = p.
    """
    if not ceil_mode:
        return pad
    if not (bool(pad) if drop_last is None else drop_last):
        return stride - 1
    return min(kernel - 1, pad + stride - 1)


@dataclass(frozen=True)
class AxisGeometry:
    """One spatial axis of a pooling: kernel, stride, left pad and right pad (all constant)."""

    kernel: int
    stride: int
    pad: int
    right: int

    @property
    def may_start_beyond(self) -> bool:
        """True when a window can start at or beyond n + p (only p = 0, ceil and s > k)."""
        return self.right > self.pad and self.pad == 0 and self.stride > self.kernel


def _axis_divisor(ones: torch.Tensor, axis: AxisGeometry, dim: int) -> torch.Tensor:
    """Caffe's per-axis AVE divisor ``min(start + k, n + p) - start`` for every window.

    ``ones`` is a [1, 1, n, 1] (dim 2) or [1, 1, 1, n] (dim 3) tensor of ones.
    """
    def pad_axis(t: torch.Tensor, before: int, after: int, value: float) -> torch.Tensor:
        pads = (before, after, 0, 0) if dim == 3 else (0, 0, before, after)
        return F.pad(t, pads, value=value) if before or after else t

    kernel = (axis.kernel, 1) if dim == 2 else (1, axis.kernel)
    stride = (axis.stride, 1) if dim == 2 else (1, axis.stride)
    inside = pad_axis(pad_axis(ones, axis.pad, axis.pad, 1.0), 0, axis.right - axis.pad, 0.0)
    counts = torch.round(F.avg_pool2d(inside, kernel, stride) * axis.kernel)
    if axis.may_start_beyond:
        # Caffe's divisor for a window starting at j*s >= n is n - j*s (zero or negative): subtract
        # the distance of its start beyond n, read off an increasing ramp at the window's start.
        beyond = 1.0 - inside
        ramp = torch.cumsum(beyond, dim=dim) - beyond
        first = -F.max_pool2d(-ramp, kernel, stride)  # the ramp is increasing: its min is at the start
        counts = counts - first
    return counts


def _lowest(dtype: torch.dtype) -> float:
    """Caffe's -FLT_MAX start value, or the lowest finite value of a narrower float type."""
    return MAX_PAD_VALUE if dtype in (torch.float32, torch.float64) else float(torch.finfo(dtype).min)


class CaffePooling(nn.Module):
    """MAX or AVE pooling over [N, C, H, W] with Caffe's sizes; no shape baked in."""

    def __init__(self, method: str, height: AxisGeometry, width: AxisGeometry) -> None:
        super().__init__()
        self.method = method
        self.height = height
        self.width = width
        self._plain_max = self._plain_max_rule()

    def extra_repr(self) -> str:
        h, w = self.height, self.width
        return (f"method={self.method}, kernel=({h.kernel}, {w.kernel}), stride=({h.stride}, {w.stride}), "
                f"pad=({h.pad}, {w.pad}), right_pad=({h.right}, {w.right})")

    def plain_max_form(self) -> tuple[bool] | None:
        """``(ceil_mode,)`` when this MAX pooling equals ``F.max_pool2d`` without padding, else None."""
        return self._plain_max

    def _plain_max_rule(self) -> tuple[bool] | None:
        """See :meth:`plain_max_form` (computed once: the geometry is fixed).

        That holds when there is no left pad, every stride is at most its kernel and the right
        pad only rounds up (``stride - 1``, Caffe's ceil) or is absent, alike on both axes: then
        every window starts inside the input, so Caffe's window (clipped to the input) and
        PyTorch's ``ceil_mode`` window are the same. This form skips the padded copy (one pass
        over the input; in ONNX a ``Pad`` node before ``MaxPool``).
        """
        h, w = self.height, self.width
        if self.method != "MAX" or h.pad or w.pad or h.stride > h.kernel or w.stride > w.kernel:
            return None
        ceil_h, ceil_w = h.right > 0, w.right > 0
        if ceil_h != ceil_w or h.right not in (0, h.stride - 1) or w.right not in (0, w.stride - 1):
            return None
        return (ceil_h,)

    def _padded(self, x: torch.Tensor, value: float) -> torch.Tensor:
        h, w = self.height, self.width
        pads = (w.pad, w.right, h.pad, h.right)
        return F.pad(x, pads, value=value) if any(pads) else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = (self.height.kernel, self.width.kernel)
        stride = (self.height.stride, self.width.stride)
        if self.method == "MAX":
            plain = self.plain_max_form()
            # torch.export (dynamic sizes) would guard on ceil_mode's size rule; it keeps the padded form.
            if plain is not None and not torch.compiler.is_compiling():
                return F.max_pool2d(x, kernel, stride, ceil_mode=plain[0])
            return F.max_pool2d(self._padded(x, _lowest(x.dtype)), kernel, stride)
        window_mean = F.avg_pool2d(self._padded(x, 0.0), kernel, stride)  # window sum / (kh * kw)
        divisor_h = _axis_divisor(torch.ones_like(x[:1, :1, :, :1]), self.height, dim=2)
        divisor_w = _axis_divisor(torch.ones_like(x[:1, :1, :1, :]), self.width, dim=3)
        return window_mean * (float(kernel[0] * kernel[1]) / (divisor_h * divisor_w))


class GlobalPooling(nn.Module):
    """Caffe global pooling: one value per channel, [N, C, 1, 1]."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.method = method

    def extra_repr(self) -> str:
        return f"method={self.method}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "MAX":
            return torch.clamp_min(torch.amax(x, dim=(2, 3), keepdim=True), _lowest(x.dtype))
        return torch.mean(x, dim=(2, 3), keepdim=True)


def _check(spec: LayerSpec, ok: bool, message: str) -> None:
    if not ok:
        raise ShapeError(message, file=spec.source or None, layer=spec.name)


def _pair(spec: LayerSpec, params: PoolingParameter, name: str) -> tuple[int, int]:
    """Caffe's rule for pad and stride: ``<name>`` for both axes, or both ``<name>_h`` and ``<name>_w``."""
    has_single = params.HasField(name)
    has_h, has_w = params.HasField(f"{name}_h"), params.HasField(f"{name}_w")
    _check(spec, (not has_single and has_h and has_w) or (not has_h and not has_w),
           f"give {name} or both {name}_h and {name}_w (Caffe refuses other combinations)")
    if has_h:
        return int(getattr(params, f"{name}_h")), int(getattr(params, f"{name}_w"))
    value = int(getattr(params, name))
    return value, value


@register("Pooling")
def convert_pooling(spec: LayerSpec) -> nn.Module:
    """CaffePooling / GlobalPooling; STOCHASTIC and the MAX mask top are unsupported."""
    params = spec.layer.pooling_param
    if params.pool not in SUPPORTED_METHODS:
        name = PoolingParameter.PoolMethod.Name(params.pool)
        raise spec.unsupported(f"pool method {name} is not supported (it samples at random in training and "
                               "weights by activation at test; only MAX and AVE convert)")
    method = SUPPORTED_METHODS[params.pool]
    if len(spec.layer.top) > 1:
        raise spec.unsupported("a second top (the MAX pooling index mask) is not supported")
    if spec.input_shapes and len(spec.input_shapes[0]) != SPATIAL_RANK:
        raise spec.unsupported(f"bottom has {len(spec.input_shapes[0])} axes; Caffe pools 4-D (N, C, H, W) blobs")
    has_kernel = params.HasField("kernel_size") or params.HasField("kernel_h") or params.HasField("kernel_w")
    pad = _pair(spec, params, "pad")
    stride = _pair(spec, params, "stride")
    if params.global_pooling:
        _check(spec, not has_kernel, "global_pooling with a kernel size given (Caffe refuses it)")
        _check(spec, pad == (0, 0) and stride == (1, 1), "global_pooling needs pad 0 and stride 1 (Caffe refuses it)")
        return GlobalPooling(method)
    _check(spec, params.HasField("kernel_size") != (params.HasField("kernel_h") and params.HasField("kernel_w")),
           "give kernel_size or both kernel_h and kernel_w (not both, not neither)")
    if params.HasField("kernel_size"):
        kernel = (int(params.kernel_size), int(params.kernel_size))
    else:
        kernel = (int(params.kernel_h), int(params.kernel_w))
    _check(spec, min(kernel) > 0 and min(stride) > 0, f"kernel {kernel} and stride {stride} must be positive")
    _check(spec, pad[0] < kernel[0] and pad[1] < kernel[1], f"pad {pad} must be smaller than the kernel {kernel}")
    ceil_mode = params.round_mode == PoolingParameter.CEIL
    drop_last = any(pad)  # Caffe: ``if (pad_h_ || pad_w_)`` drops on both axes
    axes = [AxisGeometry(kernel[i], stride[i], pad[i],
                         right_padding(kernel[i], stride[i], pad[i], ceil_mode, drop_last)) for i in range(2)]
    return CaffePooling(method, axes[0], axes[1])
