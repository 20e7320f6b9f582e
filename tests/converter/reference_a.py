"""Numpy references for layer family A, written from BVLC Caffe's C++ (src/caffe/layers/*.cpp).

Independent of torch: plain loops over output positions (vectorised over batch and channels),
float64 accumulation where Caffe's BLAS order does not matter, float32 arithmetic where Caffe's
float rounding is part of the result (scalar pre-computations of Exp/Log/Power).
Spatial parameters are (h, w) pairs.
"""

from __future__ import annotations

import math

import numpy as np

FLT_MAX = np.float32(np.finfo(np.float32).max)
Pair = tuple[int, int]


# --- Convolution / Deconvolution (im2col + gemm, col2im) -------------------------------------

def convolution(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, kernel: Pair, stride: Pair,
                pad: Pair, dilation: Pair, group: int) -> np.ndarray:
    """Caffe ConvolutionLayer::Forward_cpu. x [N, C, H, W], weight [O, C/group, kh, kw]."""
    n, c, h, w = x.shape
    o = weight.shape[0]
    ext = [dilation[i] * (kernel[i] - 1) + 1 for i in range(2)]
    out_h = (h + 2 * pad[0] - ext[0]) // stride[0] + 1
    out_w = (w + 2 * pad[1] - ext[1]) // stride[1] + 1
    padded = np.zeros((n, c, h + 2 * pad[0], w + 2 * pad[1]), dtype=np.float64)
    padded[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    out = np.zeros((n, o, out_h, out_w), dtype=np.float64)
    cin_g, cout_g = c // group, o // group
    for g in range(group):
        xs = padded[:, g * cin_g:(g + 1) * cin_g]
        ws = weight[g * cout_g:(g + 1) * cout_g].astype(np.float64)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                y0, x0 = i * dilation[0], j * dilation[1]
                window = xs[:, :, y0:y0 + stride[0] * (out_h - 1) + 1:stride[0],
                            x0:x0 + stride[1] * (out_w - 1) + 1:stride[1]]
                out[:, g * cout_g:(g + 1) * cout_g] += np.einsum("ncyx,oc->noyx", window, ws[:, :, i, j])
    if bias is not None:
        out += bias.astype(np.float64).reshape(1, -1, 1, 1)
    return out.astype(np.float32)


def deconvolution(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, kernel: Pair, stride: Pair,
                  pad: Pair, dilation: Pair, group: int) -> np.ndarray:
    """Caffe DeconvolutionLayer::Forward_cpu (gemm then col2im). weight [C, O/group, kh, kw]."""
    n, c, h, w = x.shape
    cout_g = weight.shape[1]
    o = cout_g * group
    full_h = stride[0] * (h - 1) + dilation[0] * (kernel[0] - 1) + 1
    full_w = stride[1] * (w - 1) + dilation[1] * (kernel[1] - 1) + 1
    full = np.zeros((n, o, full_h, full_w), dtype=np.float64)
    cin_g = c // group
    for g in range(group):
        xs = x[:, g * cin_g:(g + 1) * cin_g].astype(np.float64)
        ws = weight[g * cin_g:(g + 1) * cin_g].astype(np.float64)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                y0, x0 = i * dilation[0], j * dilation[1]
                full[:, g * cout_g:(g + 1) * cout_g, y0:y0 + stride[0] * (h - 1) + 1:stride[0],
                     x0:x0 + stride[1] * (w - 1) + 1:stride[1]] += np.einsum("ncyx,co->noyx", xs, ws[:, :, i, j])
    # col2im writes only the positions inside the (unpadded) output.
    out = full[:, :, pad[0]:full_h - pad[0], pad[1]:full_w - pad[1]]
    if bias is not None:
        out = out + bias.astype(np.float64).reshape(1, -1, 1, 1)
    return out.astype(np.float32)


# --- InnerProduct ------------------------------------------------------------------------------

def inner_product(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, axis: int,
                  transpose: bool) -> np.ndarray:
    """Caffe InnerProductLayer: M x K times K x N (weight [N, K], or [K, N] when transpose)."""
    axis = axis + x.ndim if axis < 0 else axis
    m = int(np.prod(x.shape[:axis], dtype=np.int64))
    flat = x.reshape(m, -1).astype(np.float64)
    w = weight.astype(np.float64)
    out = flat @ (w if transpose else w.T)
    if bias is not None:
        out += bias.astype(np.float64).reshape(1, -1)
    return out.reshape(*x.shape[:axis], out.shape[1]).astype(np.float32)


# --- Pooling -------------------------------------------------------------------------------------

def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True,
                any_pad: bool | None = None) -> int:
    """PoolingLayer::Reshape: float ceil/floor of (size + 2p - k) / s, + 1, then the padding drop,
    which Caffe applies on both axes when either is padded (``pad_h_ || pad_w_``)."""
    ratio = np.float32(size + 2 * pad - kernel) / np.float32(stride)
    out = int(math.ceil(ratio) if ceil_mode else math.floor(ratio)) + 1
    if (bool(pad) if any_pad is None else any_pad) and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def pooling(x: np.ndarray, method: str, kernel: Pair, stride: Pair, pad: Pair, ceil_mode: bool = True,
            global_pooling: bool = False) -> np.ndarray:
    """PoolingLayer::Forward_cpu for MAX and AVE on x [N, C, H, W]."""
    n, c, h, w = x.shape
    if global_pooling:
        kernel, stride, pad = (h, w), (1, 1), (0, 0)
    any_pad = bool(pad[0] or pad[1])
    out_h = pooled_size(h, kernel[0], stride[0], pad[0], ceil_mode, any_pad)
    out_w = pooled_size(w, kernel[1], stride[1], pad[1], ceil_mode, any_pad)
    out = np.zeros((n, c, out_h, out_w), dtype=np.float32)
    for ph in range(out_h):
        for pw in range(out_w):
            hstart, wstart = ph * stride[0] - pad[0], pw * stride[1] - pad[1]
            if method == "MAX":
                hend, wend = min(hstart + kernel[0], h), min(wstart + kernel[1], w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                best = np.full((n, c), -FLT_MAX, dtype=np.float32)
                for yy in range(hstart, hend):
                    for xx in range(wstart, wend):
                        value = x[:, :, yy, xx]
                        best = np.where(value > best, value, best)
                out[:, :, ph, pw] = best
            elif method == "AVE":
                hend, wend = min(hstart + kernel[0], h + pad[0]), min(wstart + kernel[1], w + pad[1])
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                hend, wend = min(hend, h), min(wend, w)
                total = np.zeros((n, c), dtype=np.float64)
                for yy in range(hstart, hend):
                    for xx in range(wstart, wend):
                        total += x[:, :, yy, xx]
                with np.errstate(divide="ignore", invalid="ignore"):
                    out[:, :, ph, pw] = (total / pool_size).astype(np.float32)
            else:
                raise ValueError(method)
    return out


# --- Activations (NeuronLayers) ---------------------------------------------------------------

def relu(x: np.ndarray, negative_slope: float = 0.0) -> np.ndarray:
    """ReLULayer: max(x, 0) + negative_slope * min(x, 0)."""
    slope = np.float32(negative_slope)
    return (np.maximum(x, 0) + slope * np.minimum(x, 0)).astype(np.float32)


def prelu(x: np.ndarray, slopes: np.ndarray, channel_shared: bool) -> np.ndarray:
    """PReLULayer: channel c = (i / count(2)) % C (/ C when shared); max(x,0) + a_c min(x,0)."""
    flat = x.reshape(-1)
    dim = int(np.prod(x.shape[2:], dtype=np.int64))
    channels = x.shape[1]
    div_factor = channels if channel_shared else 1
    slopes = np.asarray(slopes, dtype=np.float32).reshape(-1)
    index = (np.arange(flat.size) // dim) % channels // div_factor
    out = np.maximum(flat, 0) + slopes[index] * np.minimum(flat, 0)
    return out.reshape(x.shape).astype(np.float32)


def elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """ELULayer: max(x, 0) + alpha * (exp(min(x, 0)) - 1)."""
    xd = x.astype(np.float64)
    return (np.maximum(xd, 0) + alpha * (np.exp(np.minimum(xd, 0)) - 1)).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """SigmoidLayer: 0.5 * tanh(0.5 x) + 0.5 (= 1 / (1 + exp(-x)))."""
    return (0.5 * np.tanh(0.5 * x.astype(np.float64)) + 0.5).astype(np.float32)


def tanh(x: np.ndarray) -> np.ndarray:
    """TanHLayer."""
    return np.tanh(x.astype(np.float64)).astype(np.float32)


def absval(x: np.ndarray) -> np.ndarray:
    """AbsValLayer."""
    return np.abs(x)


def power(x: np.ndarray, power_: float = 1.0, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """PowerLayer: (shift + scale x)^power; constant when power * scale == 0."""
    p, a, b = np.float32(power_), np.float32(scale), np.float32(shift)
    if p * a == 0:
        value = np.float32(1) if p == 0 else np.float32(np.power(np.float64(b), np.float64(p)))
        return np.full_like(x, value)
    y = x.astype(np.float32)
    if a != 1:
        y = (y * a).astype(np.float32)
    if b != 0:
        y = (y + b).astype(np.float32)
    if p != 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.power(y.astype(np.float64), np.float64(p)).astype(np.float32)
    return y


def exp(x: np.ndarray, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """ExpLayer: outer * exp(inner x), inner = ln(base) scale, outer = base^shift (e^shift for -1)."""
    base32, scale32, shift32 = np.float32(base), np.float32(scale), np.float32(shift)
    log_base = np.float32(1) if base32 == -1 else np.float32(np.log(np.float64(base32)))
    inner = np.float32(log_base * scale32)
    if shift32 == 0:
        outer = np.float32(1)
    elif base32 != -1:
        outer = np.float32(np.power(np.float64(base32), np.float64(shift32)))
    else:
        outer = np.float32(np.exp(np.float64(shift32)))
    y = x.astype(np.float32) if inner == 1 else (x * inner).astype(np.float32)
    with np.errstate(over="ignore"):
        y = np.exp(y.astype(np.float64)).astype(np.float32)
        if outer != 1:
            y = (y * outer).astype(np.float32)
    return y


def log(x: np.ndarray, base: float = -1.0, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    """LogLayer: log(scale x + shift) / ln(base) (natural log for base -1)."""
    base32, scale32, shift32 = np.float32(base), np.float32(scale), np.float32(shift)
    log_base = np.float32(1) if base32 == -1 else np.float32(np.log(np.float64(base32)))
    base_scale = np.float32(np.float32(1) / log_base)
    y = x.astype(np.float32)
    if scale32 != 1:
        y = (y * scale32).astype(np.float32)
    if shift32 != 0:
        y = (y + shift32).astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = np.log(y.astype(np.float64)).astype(np.float32)
    if base_scale != 1:
        y = (y * base_scale).astype(np.float32)
    return y


def bnll(x: np.ndarray) -> np.ndarray:
    """BNLLLayer: x > 0 ? x + log(1 + exp(-x)) : log(1 + exp(x)), in double as Caffe's `1.` does."""
    xd = x.astype(np.float64)
    with np.errstate(over="ignore"):
        out = np.where(xd > 0, xd + np.log(1.0 + np.exp(-np.abs(xd))), np.log(1.0 + np.exp(np.minimum(xd, 0))))
    return out.astype(np.float32)


def threshold(x: np.ndarray, threshold_: float = 0.0) -> np.ndarray:
    """ThresholdLayer: 1 where x > threshold, else 0."""
    return (x > np.float32(threshold_)).astype(np.float32)


def clip(x: np.ndarray, minimum: float, maximum: float) -> np.ndarray:
    """ClipLayer: std::max(min, std::min(x, max))."""
    return np.maximum(np.float32(minimum), np.minimum(x, np.float32(maximum))).astype(np.float32)


def swish(x: np.ndarray, beta: float = 1.0) -> np.ndarray:
    """SwishLayer: x * sigmoid(beta x)."""
    return (x.astype(np.float64) * sigmoid((x * np.float32(beta)).astype(np.float32)).astype(np.float64)
            ).astype(np.float32)


def dropout(x: np.ndarray) -> np.ndarray:
    """DropoutLayer in the TEST phase: a copy."""
    return x.copy()
