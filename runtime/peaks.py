"""Peak finding as OpenPose's CPU NMS (openpose: src/openpose/net/nmsBase.cpp, nmsCpu).

Per part channel of an (H, W) map, a pixel is a peak when its value is above the threshold and:

- inside (1 < x < W-2 and 1 < y < H-2): it is strictly greater than all 8 neighbours;
- on the first inner ring (x in {1, W-2} or y in {1, H-2}, which also takes in the outer-border
  pixels whose other coordinate is on that ring): it is greater than *or equal to* each of its
  neighbours that lie inside the map (OpenPose relaxes the test there because of resize
  artefacts);
- anywhere else on the outer border: never.

Peaks are taken in row-major order (y, then x) and at most ``max_peaks`` per part are kept
(POSE_MAX_PEOPLE = 127). Each is refined to the score-weighted centroid of the positive values
in the 7x7 window around it (clipped to the map), plus ``offset``; its score is the map value at
the integer peak.

Implementation: the channels are stacked vertically and a superset of the peaks is found on an
8-bit monotone quantisation (OpenCV, a few cheap passes); the exact float32 rule then runs on
those candidates only. The map's frame is checked separately (see _candidates).
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime.skeletons import POSE_MAX_PEOPLE

#: Half size of the refinement window (nmsAccuratePeakPosition: dWidth = dHeight = 3, i.e. 7x7).
REFINE_RADIUS = 3

_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_KERNEL_3X3 = np.ones((3, 3), np.uint8)
#: Maps smaller than this on a side are checked pixel by pixel (no stacking, no dilation).
_SMALL = 4
#: More 8-bit candidates than this (flat maps) and the float32 dilation is used instead.
_MAX_QUANTISED_CANDIDATES = 20000


_WORKSPACE = threading.local()


def _buffer(name: str, shape: tuple[int, int], dtype: type = np.uint8) -> np.ndarray:
    """A reusable work array of this thread (fresh large arrays cost page faults on every call)."""
    buffers = getattr(_WORKSPACE, "buffers", None)
    if buffers is None:
        buffers = _WORKSPACE.buffers = {}
    array = buffers.get(name)
    if array is None or array.shape != shape or array.dtype != dtype:
        array = buffers[name] = np.empty(shape, dtype=dtype)
    return array


def _candidates_dilated(stacked: np.ndarray, threshold: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(rows, xs) of the stacked (C*H, W) map where value > threshold and value >= its 3x3 max,
    in float32 (the fallback of _candidates)."""
    dilated = cv2.dilate(stacked, _KERNEL_3X3)
    mask = cv2.compare(stacked, dilated, cv2.CMP_GE)
    cv2.bitwise_and(mask, cv2.compare(stacked, float(threshold), cv2.CMP_GT), dst=mask)
    rows = np.flatnonzero(cv2.reduce(mask, 1, cv2.REDUCE_MAX).ravel())
    sub_y, xs = np.nonzero(mask[rows])
    return rows[sub_y], xs


def _candidates(stacked: np.ndarray, threshold: np.float32) -> tuple[np.ndarray, np.ndarray]:
    """(rows, xs) of a superset of the peaks of the stacked (C*H, W) map, away from its edges.

    1. Only rows whose maximum exceeds the threshold can hold a peak: those rows and the rows
       next to them are gathered (an active row keeps its true upper and lower neighbours).
    2. They go through a monotone 8-bit quantisation q (convertScaleAbs on a range made
       non-negative), so value >= every neighbour implies q >= every neighbour, and value >
       threshold implies q >= q(threshold).
    3. Candidates: q >= max(3x3 maximum of q, q(threshold)), a few cheap 8-bit passes.
    Too many candidates (flat 8-bit plateaus) fall back to the exact float32 dilation.
    """
    total_rows, width = stacked.shape
    row_max = cv2.reduce(stacked, 1, cv2.REDUCE_MAX).ravel()
    active = np.flatnonzero(row_max > threshold)
    if not len(active):
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    kept = np.zeros(total_rows + 2, dtype=bool)
    kept[active] = kept[active + 1] = kept[active + 2] = True
    gathered = np.flatnonzero(kept[1:-1])
    rows_used = len(gathered)
    if rows_used < 3:
        return _candidates_dilated(stacked, threshold)
    compact = np.take(stacked, gathered, axis=0, out=_buffer("rows", stacked.shape, np.float32)[:rows_used],
                      mode="clip")  # "clip": no buffered copy (the indices are valid)
    high = float(row_max[active].max())
    low = float(cv2.reduce(compact, 1, cv2.REDUCE_MIN).min())
    alpha = 254.0 / (high - low) if high > low else 1.0
    beta = 0.5 - low * alpha
    quantised = cv2.convertScaleAbs(compact, dst=_buffer("quantised", stacked.shape)[:rows_used], alpha=alpha, beta=beta)
    q_threshold = int(cv2.convertScaleAbs(np.full((1, 1), threshold, np.float32), alpha=alpha, beta=beta)[0, 0])
    horizontal = cv2.max(quantised[:, :-2], quantised[:, 2:],
                         dst=_buffer("horizontal", (total_rows, width - 2))[:rows_used])
    cv2.max(horizontal, quantised[:, 1:-1], dst=horizontal)
    local_max = cv2.max(horizontal[:-2], horizontal[2:], dst=_buffer("local_max", (total_rows, width - 2))[:rows_used - 2])
    cv2.max(local_max, horizontal[1:-1], dst=local_max)
    cv2.max(local_max, q_threshold, dst=local_max)  # q >= max(3x3 max, q(threshold)): both tests at once
    mask = cv2.compare(quantised[1:-1, 1:-1], local_max, cv2.CMP_GE,
                       dst=_buffer("mask", (total_rows, width - 2))[:rows_used - 2])
    if cv2.countNonZero(mask) > _MAX_QUANTISED_CANDIDATES:
        return _candidates_dilated(stacked, threshold)
    rows = np.flatnonzero(cv2.reduce(mask, 1, cv2.REDUCE_MAX).ravel())
    sub_y, xs = np.nonzero(mask[rows])
    return gathered[rows[sub_y] + 1], xs + 1


@functools.lru_cache(maxsize=32)
def _frame_ring_pixels(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the pixels on the map's outer frame that the ring rule may make peaks."""
    frame = {(y, x) for y in (0, height - 1) for x in range(width)}
    frame |= {(y, x) for x in (0, width - 1) for y in range(height)}
    ring = sorted((y, x) for y, x in frame if x in (1, width - 2) or y in (1, height - 2))
    return (np.array([p[0] for p in ring], dtype=np.int64), np.array([p[1] for p in ring], dtype=np.int64))


def _exact_peak_test(maps: np.ndarray, c: np.ndarray, y: np.ndarray, x: np.ndarray,
                     threshold: np.float32) -> np.ndarray:
    """OpenPose's per-pixel rule evaluated exactly on the given pixels; (n,) bool."""
    _, height, width = maps.shape
    flat = maps.reshape(-1)
    base = c * (height * width)
    value = flat[base + y * width + x]
    inside = (1 < x) & (x < width - 2) & (1 < y) & (y < height - 2)
    ring = ~inside & ((x == 1) | (x == width - 2) | (y == 1) | (y == height - 2))
    keep = (value > threshold) & (inside | ring)
    for dy, dx in _NEIGHBOURS:
        ny, nx = y + dy, x + dx
        available = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        index = base + np.minimum(np.maximum(ny, 0), height - 1) * width + np.minimum(np.maximum(nx, 0), width - 1)
        neighbour = np.where(available, flat[index], threshold)
        keep &= np.where(inside, value > neighbour, value >= neighbour)
    return keep


def _refine(maps: np.ndarray, c: np.ndarray, y: np.ndarray, x: np.ndarray, offset: tuple[float, float],
            radius: int) -> np.ndarray:
    """(n, 3) float32: score-weighted centroid of the positive values in the window, + offset; score."""
    _, height, width = maps.shape
    flat = maps.reshape(-1)
    steps = np.arange(-radius, radius + 1)
    ys = y[:, None] + steps[None, :]
    xs = x[:, None] + steps[None, :]
    valid = (((ys >= 0) & (ys < height))[:, :, None]) & (((xs >= 0) & (xs < width))[:, None, :])
    rows = (c * (height * width))[:, None] + np.minimum(np.maximum(ys, 0), height - 1) * width
    window = flat[rows[:, :, None] + np.minimum(np.maximum(xs, 0), width - 1)[:, None, :]]
    weights = np.where(valid & (window > 0), window, np.float32(0)).astype(np.float64)
    total = weights.sum(axis=(1, 2))
    centroid_x = (weights.sum(axis=1) * xs).sum(axis=1) / total
    centroid_y = (weights.sum(axis=2) * ys).sum(axis=1) / total
    out = np.empty((len(c), 3), dtype=np.float32)
    out[:, 0] = centroid_x.astype(np.float32) + np.float32(offset[0])
    out[:, 1] = centroid_y.astype(np.float32) + np.float32(offset[1])
    out[:, 2] = flat[c * (height * width) + y * width + x]
    return out


def find_peaks(heatmaps: np.ndarray, threshold: float, *, max_peaks: int = POSE_MAX_PEOPLE,
               offset: float | tuple[float, float] = 0.0, refine_radius: int = REFINE_RADIUS) -> list[np.ndarray]:
    """OpenPose's NMS on part maps.

    heatmaps: (K, H, W) part channels (pass the background channel only if you want its peaks).
    threshold: a peak's value must exceed it (compared in float32, as OpenPose does).
    offset: added to the refined x, y (OpenPose adds 0.5 / scaleNetToOutput).
    Returns K arrays of shape (n_k, 3) float32: x, y (map pixels) and score, row-major order.
    """
    maps = np.ascontiguousarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3 or min(maps.shape) == 0:
        raise ShapeError(f"find_peaks: expected non-empty (K, H, W) maps, got shape {maps.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise PosebridgeError(f"find_peaks: threshold {threshold} outside [0, 1] (OpenPose's nmsCpu refuses it)")
    if max_peaks < 0:
        raise ShapeError(f"find_peaks: max_peaks must be >= 0, got {max_peaks}")
    offset_xy = (float(offset), float(offset)) if np.isscalar(offset) else (float(offset[0]), float(offset[1]))
    channels, height, width = maps.shape
    threshold32 = np.float32(threshold)

    if height < _SMALL or width < _SMALL:
        c, y, xs = np.nonzero(maps > threshold32)
    else:
        rows, xs = _candidates(maps.reshape(channels * height, width), threshold32)
        c, y = np.divmod(rows, height)
        # Rows 0 and H-1 saw the neighbouring channel through the stacking and the 8-bit pass
        # skips columns 0 and W-1: the frame is checked on its own.
        inner = (y != 0) & (y != height - 1)
        frame_y, frame_x = _frame_ring_pixels(height, width)
        frame = (np.arange(channels)[:, None] * height + frame_y[None, :]) * width + frame_x[None, :]
        linear = np.concatenate([(c[inner] * height + y[inner]) * width + xs[inner], frame.ravel()])
        c, rest = np.divmod(np.unique(linear), height * width)  # sorted: channel, y, x
        y, xs = np.divmod(rest, width)
    keep = _exact_peak_test(maps, c, y, xs, threshold32)
    c, y, xs = c[keep], y[keep], xs[keep]
    # At most max_peaks per channel, the first ones in scan order.
    starts = np.searchsorted(c, np.arange(channels))
    rank = np.arange(len(c)) - starts[c]
    capped = rank < max_peaks
    c, y, xs = c[capped], y[capped], xs[capped]

    refined = _refine(maps, c, y, xs, offset_xy, refine_radius) if len(c) else np.zeros((0, 3), np.float32)
    bounds = np.searchsorted(c, np.arange(channels + 1))
    return [refined[bounds[k]:bounds[k + 1]] for k in range(channels)]
