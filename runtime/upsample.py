"""Resize net output maps back to the net input size, as OpenPose's CPU resizeAndMerge does.

openpose: src/openpose/net/resizeAndMergeBase.cpp (resizeAndMergeCpu): every channel goes through
``cv::resize(source, target, {targetWidth, targetHeight}, 0, 0, INTER_CUBIC)`` in float32, the
target being the first scale's net input size (net output x ``NET_STRIDE``); with several scales
each scale's maps are resized to that same target, summed in scale order and divided by the
number of scales.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posebridge.errors import ShapeError
from posebridge.runtime.skeletons import NET_STRIDE

def _as_nchw(maps: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(maps)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ShapeError(f"{what}: expected (N, C, h, w) or (C, h, w) maps, got shape {array.shape}")
    return array.astype(np.float32, copy=False)


def resize_maps(maps: np.ndarray, size: tuple[int, int], *, out: np.ndarray | None = None) -> np.ndarray:
    """Cubic resize of (N, C, h, w) or (C, h, w) maps to size (H, W); float32, same rank as given.

    One cv2.resize call per channel, as OpenPose makes them: OpenCV's multi-channel path
    rounds differently (about 1e-6), which could move a peak on a plateau.
    out: an optional C-contiguous float32 (N, C, H, W) array to write into (saves the page
    faults of a fresh large array on every frame).
    """
    array = _as_nchw(maps, "resize_maps")
    height, width = size
    if height <= 0 or width <= 0:
        raise ShapeError(f"resize_maps: target size {size} must be positive")
    batch, channels = array.shape[:2]
    if out is None:
        out = np.empty((batch, channels, height, width), dtype=np.float32)
    elif out.shape != (batch, channels, height, width) or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise ShapeError(f"resize_maps: out must be a C-contiguous float32 array of shape "
                         f"{(batch, channels, height, width)}, got {out.dtype} {out.shape}")
    for n in range(batch):
        for c in range(channels):
            cv2.resize(array[n, c], (width, height), dst=out[n, c], interpolation=cv2.INTER_CUBIC)
    return out if np.ndim(maps) == 4 else out[0]


def upsample_net_output(maps: np.ndarray, stride: int = NET_STRIDE, *, out: np.ndarray | None = None) -> np.ndarray:
    """Net output (N, C, h, w) -> (N, C, h*stride, w*stride) float32, cubic (OpenPose's x8);
    out as in resize_maps (always 4-D)."""
    array = _as_nchw(maps, "upsample_net_output")
    height, width = array.shape[-2:]
    out = resize_maps(array, (height * stride, width * stride), out=out)
    return out if np.ndim(maps) == 4 else out[0]


def average_scales(scale_maps: Sequence[np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
    """OpenPose's multi-scale merge: each scale's (N, C, h_i, w_i) maps resized (cubic) to size
    (default: the first scale's maps x NET_STRIDE), summed in order in float32, divided by the
    number of scales. One scale is a plain resize."""
    if not scale_maps:
        raise ShapeError("average_scales: no maps given")
    first = _as_nchw(scale_maps[0], "average_scales")
    if size is None:
        size = (first.shape[-2] * NET_STRIDE, first.shape[-1] * NET_STRIDE)
    total = resize_maps(first, size)
    for maps in scale_maps[1:]:
        array = _as_nchw(maps, "average_scales")
        if array.shape[:2] != first.shape[:2]:
            raise ShapeError(f"average_scales: scale maps of shape {array.shape} do not match {first.shape}")
        total += resize_maps(array, size)
    if len(scale_maps) > 1:
        total /= np.float32(len(scale_maps))
    return total if np.ndim(scale_maps[0]) == 4 else total[0]
