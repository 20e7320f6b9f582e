"""Numpy references for the tensor, shape and normalization layer families, from Caffe's C++.

Each function follows the loop structure of the BVLC caffe layer it mirrors
(``src/caffe/layers/<name>_layer.cpp``): blobs are flat row-major arrays indexed with Caffe's
``count(start, end)`` products, in float32 where Caffe computes in float32. Nothing here uses
torch, so a shared mistake between these and the converter modules is unlikely.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

F32 = np.float32


def count(shape: Sequence[int], start: int = 0, end: int | None = None) -> int:
    """Caffe's Blob::count(start, end): the product of shape[start:end]."""
    return int(np.prod(shape[start:end], dtype=np.int64))


def canonical(axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex."""
    assert -num_axes <= axis < num_axes, (axis, num_axes)
    return axis + num_axes if axis < 0 else axis


# ---- tensor family -------------------------------------------------------------------------

def concat(bottoms: Sequence[np.ndarray], axis: int) -> np.ndarray:
    """ConcatLayer::Forward_cpu: per outer index, copy each bottom's block at its axis offset."""
    shape = list(bottoms[0].shape)
    num_concats = count(shape, 0, axis)
    inner = count(shape, axis + 1)
    top_axis = sum(b.shape[axis] for b in bottoms)
    top = np.empty(num_concats * top_axis * inner, dtype=bottoms[0].dtype)
    offset = 0
    for bottom in bottoms:
        flat = bottom.ravel()
        size = bottom.shape[axis]
        for n in range(num_concats):
            block = flat[n * size * inner:(n + 1) * size * inner]
            start = (n * top_axis + offset) * inner
            top[start:start + size * inner] = block
        offset += size
    shape[axis] = top_axis
    return top.reshape(shape)


def slice_(bottom: np.ndarray, axis: int, points: Sequence[int], tops: int) -> list[np.ndarray]:
    """SliceLayer::Reshape/Forward_cpu: sizes from the slice points (or an even split), then copy."""
    size = bottom.shape[axis]
    if points:
        edges = [0, *points, size]
        sizes = [b - a for a, b in zip(edges, edges[1:])]
    else:
        assert size % tops == 0
        sizes = [size // tops] * tops
    num_slices = count(bottom.shape, 0, axis)
    inner = count(bottom.shape, axis + 1)
    flat = bottom.ravel()
    result = []
    offset = 0
    for piece in sizes:
        top = np.empty(num_slices * piece * inner, dtype=bottom.dtype)
        for n in range(num_slices):
            start = (n * size + offset) * inner
            top[n * piece * inner:(n + 1) * piece * inner] = flat[start:start + piece * inner]
        shape = list(bottom.shape)
        shape[axis] = piece
        result.append(top.reshape(shape))
        offset += piece
    return result


def eltwise(operation: str, bottoms: Sequence[np.ndarray], coefficients: Sequence[float] = ()) -> np.ndarray:
    """EltwiseLayer::Forward_cpu (SUM via axpy in bottom order; PROD; MAX with strict '>')."""
    if operation == "SUM":
        coefficients = list(coefficients) or [1.0] * len(bottoms)
        top = np.zeros(bottoms[0].shape, dtype=F32)
        for coefficient, bottom in zip(coefficients, bottoms):
            top = (top + F32(coefficient) * bottom).astype(F32)
        return top
    if operation == "PROD":
        top = (bottoms[0] * bottoms[1]).astype(F32)
        for bottom in bottoms[2:]:
            top = (top * bottom).astype(F32)
        return top
    assert operation == "MAX"
    a, b = bottoms[0].ravel(), bottoms[1].ravel()
    top = np.empty_like(a)
    for i in range(a.size):
        top[i] = a[i] if a[i] > b[i] else b[i]
    for bottom in bottoms[2:]:
        flat = bottom.ravel()
        for i in range(flat.size):
            if flat[i] > top[i]:
                top[i] = flat[i]
    return top.reshape(bottoms[0].shape)


# ---- shape family --------------------------------------------------------------------------

def flatten(bottom: np.ndarray, axis: int = 1, end_axis: int = -1) -> np.ndarray:
    """FlattenLayer::Reshape: axes start..end merged (data shared, so a pure reshape)."""
    start = canonical(axis, bottom.ndim)
    end = canonical(end_axis, bottom.ndim)
    shape = [*bottom.shape[:start], count(bottom.shape, start, end + 1), *bottom.shape[end + 1:]]
    return bottom.reshape(shape)


def reshape_shape(bottom_shape: Sequence[int], dims: Sequence[int], axis: int = 0, num_axes: int = -1) -> list[int]:
    """ReshapeLayer::Reshape's top shape (0 copies bottom axis start+i, -1 inferred)."""
    rank = len(bottom_shape)
    start = axis if axis >= 0 else rank + axis + 1
    end = rank if num_axes == -1 else start + num_axes
    top = [*bottom_shape[:start], *dims, *bottom_shape[end:]]
    copied = [i for i, d in enumerate(dims) if d == 0]
    inferred = [i for i, d in enumerate(dims) if d == -1]
    for i in copied:
        top[start + i] = bottom_shape[start + i]
    if inferred:
        explicit = count([d for d in dims if d not in (0, -1)]) * count(bottom_shape, 0, start) \
            * count(bottom_shape, end) * count([bottom_shape[start + i] for i in copied])
        total = count(bottom_shape)
        assert total % explicit == 0
        top[start + inferred[0]] = total // explicit
    assert count(top) == count(bottom_shape)
    return top


def reshape(bottom: np.ndarray, dims: Sequence[int], axis: int = 0, num_axes: int = -1) -> np.ndarray:
    return bottom.reshape(reshape_shape(bottom.shape, dims, axis, num_axes))


def crop(bottom: np.ndarray, reference_shape: Sequence[int], axis: int = 2,
         offsets: Sequence[int] = ()) -> np.ndarray:
    """CropLayer::Reshape + crop_copy: axes >= axis take the reference's size from the offset."""
    rank = bottom.ndim
    start = canonical(axis, rank)
    top_shape = list(bottom.shape)
    offset = [0] * rank
    for i in range(start, rank):
        top_shape[i] = reference_shape[i]
        if len(offsets) == 1:
            offset[i] = offsets[0]
        elif len(offsets) > 1:
            offset[i] = offsets[i - start]
        assert bottom.shape[i] - offset[i] >= reference_shape[i]
    top = np.empty(top_shape, dtype=bottom.dtype)
    for index in np.ndindex(*top_shape[:-1]):
        source = tuple(i + o for i, o in zip(index, offset))
        top[index] = bottom[source][offset[-1]:offset[-1] + top_shape[-1]]
    return top


def argmax(bottom: np.ndarray, top_k: int = 1, out_max_val: bool = False, axis: int | None = None) -> np.ndarray:
    """ArgMaxLayer::Forward_cpu: partial sort of (value, index) pairs with std::greater."""
    flat = bottom.ravel()
    if axis is not None:
        axis = canonical(axis, bottom.ndim)
        dim = bottom.shape[axis]
        axis_dist = count(bottom.shape, axis) // dim
        top_shape = list(bottom.shape)
        top_shape[axis] = top_k
    else:
        dim = count(bottom.shape, 1)
        axis_dist = 1
        top_shape = [1] * max(3, bottom.ndim)
        top_shape[0] = bottom.shape[0]
        top_shape[2] = top_k
        if out_max_val:
            top_shape[1] = 2
    top = np.zeros(count(top_shape), dtype=F32)
    num = flat.size // dim
    for i in range(num):
        pairs = [(float(flat[(i // axis_dist * dim + j) * axis_dist + i % axis_dist]), j) for j in range(dim)]
        pairs.sort(reverse=True)  # std::greater<pair>: value first, then index, both descending
        for j in range(top_k):
            value, index = pairs[j]
            if out_max_val and axis is None:
                top[2 * i * top_k + j] = index
                top[2 * i * top_k + top_k + j] = value
            else:
                top[(i // axis_dist * top_k + j) * axis_dist + i % axis_dist] = value if out_max_val else index
    return top.reshape(top_shape)


# ---- normalization family ------------------------------------------------------------------

def batch_norm(bottom: np.ndarray, mean: np.ndarray, variance: np.ndarray, scale_factor: float,
               eps: float = 1e-5, use_global_stats: bool = True) -> np.ndarray:
    """BatchNormLayer::Forward_cpu in float32 (stored statistics scaled by 1/s, or batch ones)."""
    channels = 1 if bottom.ndim == 1 else bottom.shape[1]
    num = bottom.shape[0]
    spatial = bottom.size // (num * channels)
    x = bottom.reshape(num, channels, spatial).astype(F32)
    if use_global_stats:
        s = F32(scale_factor)
        factor = F32(0) if s == 0 else F32(1) / s
        mean_c = (mean.astype(F32) * factor).astype(F32)
        var_c = (variance.astype(F32) * factor).astype(F32)
    else:
        mean_c = (x.astype(np.float64).sum(axis=(0, 2)) / (num * spatial)).astype(F32)
        centered = x - mean_c[None, :, None]
        var_c = ((centered.astype(np.float64) ** 2).sum(axis=(0, 2)) / (num * spatial)).astype(F32)
    std = np.sqrt((var_c + F32(eps)).astype(F32)).astype(F32)
    top = (x - mean_c[None, :, None]) / std[None, :, None]
    return top.astype(F32).reshape(bottom.shape)


def scale(bottom: np.ndarray, factors: np.ndarray, axis: int = 1, bias: np.ndarray | None = None) -> np.ndarray:
    """ScaleLayer::Forward_cpu: outer x scale_dim x inner loops, then BiasLayer when bias_term."""
    start = 0 if factors.ndim == 0 else canonical(axis, bottom.ndim)
    for i in range(factors.ndim):
        assert bottom.shape[start + i] == factors.shape[i]
    outer = count(bottom.shape, 0, start)
    scale_dim = factors.size
    inner = count(bottom.shape, start + factors.ndim)
    x = bottom.reshape(outer, scale_dim, inner)
    top = (x * factors.reshape(1, scale_dim, 1).astype(F32)).astype(F32).reshape(bottom.shape)
    return top if bias is None else add_bias(top, bias, axis)


def add_bias(bottom: np.ndarray, values: np.ndarray, axis: int = 1) -> np.ndarray:
    """BiasLayer::Forward_cpu: outer x bias_dim x inner loops."""
    start = 0 if values.ndim == 0 else canonical(axis, bottom.ndim)
    for i in range(values.ndim):
        assert bottom.shape[start + i] == values.shape[i]
    outer = count(bottom.shape, 0, start)
    bias_dim = values.size
    inner = count(bottom.shape, start + values.ndim)
    x = bottom.reshape(outer, bias_dim, inner)
    return (x + values.reshape(1, bias_dim, 1).astype(F32)).astype(F32).reshape(bottom.shape)


def lrn_across_channels(bottom: np.ndarray, size: int = 5, alpha: float = 1.0, beta: float = 0.75,
                        k: float = 1.0) -> np.ndarray:
    """LRNLayer::CrossChannelForward_cpu: running window sum of padded squares, float32."""
    num, channels, height, width = bottom.shape
    pre_pad = (size - 1) // 2
    alpha_over_size = F32(alpha) / F32(size)
    top = np.empty_like(bottom, dtype=F32)
    for n in range(num):
        padded = np.zeros((channels + size - 1, height, width), dtype=F32)
        padded[pre_pad:pre_pad + channels] = (bottom[n] * bottom[n]).astype(F32)
        scale_data = np.empty((channels, height, width), dtype=F32)
        scale_data[0] = F32(k)
        for c in range(size):
            scale_data[0] = (scale_data[0] + alpha_over_size * padded[c]).astype(F32)
        for c in range(1, channels):
            scale_data[c] = scale_data[c - 1]
            scale_data[c] = (scale_data[c] + alpha_over_size * padded[c + size - 1]).astype(F32)
            scale_data[c] = (scale_data[c] - alpha_over_size * padded[c - 1]).astype(F32)
        top[n] = (np.power(scale_data, F32(-beta)) * bottom[n]).astype(F32)
    return top


def ave_pool(bottom: np.ndarray, kernel: int, stride: int, pad: int) -> np.ndarray:
    """PoolingLayer AVE forward (square kernel): windows clipped to [-pad, size + pad) for the
    divisor, then to the image for the sum; output size rounds up, dropping a last window that
    would start in the padding."""
    num, channels, height, width = bottom.shape

    def pooled(size: int) -> int:
        out = int(np.ceil((size + 2 * pad - kernel) / stride)) + 1
        if pad and (out - 1) * stride >= size + pad:
            out -= 1
        return out

    out_h, out_w = pooled(height), pooled(width)
    top = np.zeros((num, channels, out_h, out_w), dtype=F32)
    for ph in range(out_h):
        for pw in range(out_w):
            hstart, wstart = ph * stride - pad, pw * stride - pad
            hend, wend = min(hstart + kernel, height + pad), min(wstart + kernel, width + pad)
            pool_size = (hend - hstart) * (wend - wstart)
            hstart, wstart = max(hstart, 0), max(wstart, 0)
            hend, wend = min(hend, height), min(wend, width)
            window = bottom[:, :, hstart:hend, wstart:wend].astype(np.float64).sum(axis=(2, 3))
            top[:, :, ph, pw] = (window / pool_size).astype(F32)
    return top


def lrn_within_channel(bottom: np.ndarray, size: int = 5, alpha: float = 1.0, beta: float = 0.75) -> np.ndarray:
    """LRNLayer::WithinChannelForward: square -> AVE pool(size, stride 1, pad (size-1)/2) ->
    power(shift 1, scale alpha, power -beta) -> product with the bottom. (No k.)"""
    squares = (bottom * bottom).astype(F32)
    pooled = ave_pool(squares, size, 1, (size - 1) // 2)
    assert pooled.shape == bottom.shape
    denominator = (F32(1) + F32(alpha) * pooled).astype(F32)
    return (bottom * np.power(denominator, F32(-beta))).astype(F32)


def softmax(bottom: np.ndarray, axis: int = 1) -> np.ndarray:
    """SoftmaxLayer::Forward_cpu: per (outer, inner), subtract the channel max, exp, normalise."""
    axis = canonical(axis, bottom.ndim)
    outer = count(bottom.shape, 0, axis)
    channels = bottom.shape[axis]
    inner = count(bottom.shape, axis + 1)
    x = bottom.reshape(outer, channels, inner).astype(np.float64)
    shifted = x - x.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=1, keepdims=True)).astype(F32).reshape(bottom.shape)
