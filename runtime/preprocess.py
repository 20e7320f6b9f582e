"""OpenPose's preprocessing and its inverse, with OpenPose's own arithmetic.

Forward: net input size per scale, the resize anchored at the top-left with zero padding
right/bottom, BGR kept, ``v/256 - 0.5``. Inverse: net maps resized (cubic) to the largest net
input and averaged over scales; keypoints at that resolution mapped to image pixels.

Rules from OpenPose 1.7 (CMU-Perceptual-Computing-Lab/openpose):

- ``core/scaleAndSizeExtractor.cpp``: net input size per scale;
- ``utilities/openCv.cpp``: ``resizeGetScaleFactor`` ((target-1)/(initial-1), the smaller of x
  and y), ``resizeFixedAspectRatio`` (``warpAffine`` with ``[[s,0,0],[0,s,0]]``, ``INTER_CUBIC``
  when ``s > 1`` else ``INTER_AREA``, which ``warpAffine`` runs as ``INTER_LINEAR``; constant
  border 0), ``uCharCvMatToFloatPtr`` (``v/256 - 0.5``);
- ``net/resizeAndMergeBase.cpp`` (``resizeAndMergeCpu``): each channel resized on its own with
  ``cv::resize`` ``INTER_CUBIC`` to the net input size of scale 0, summed, divided by the count;
- ``pose/poseExtractorCaffe.cpp``: ``mScaleNetToOutput`` and the NMS offset ``0.5/scale``.

Sizes are (width, height) tuples throughout, as OpenPose's ``Point<int>{x, y}``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import cv2
import numpy as np

from posebridge.errors import LimitExceededError, PosebridgeError, ShapeError

#: Net input sides must be multiples of this (``scaleAndSizeExtractor.cpp``).
NET_INPUT_MULTIPLE = 16
DEFAULT_NET_RESOLUTION = "-1x368"
DEFAULT_SCALE_NUMBER = 1
DEFAULT_SCALE_GAP = 0.25
#: ``uCharCvMatToFloatPtr`` normalisation 1 ("VGG"): v / 256 - 0.5.
NORMALIZE_DIVISOR = np.float32(256.0)
NORMALIZE_SHIFT = np.float32(0.5)
#: Smallest net input side posebridge accepts (OpenPose itself would truncate to 1 pixel).
MIN_NET_SIDE = NET_INPUT_MULTIPLE
#: Largest net input posebridge builds (w*h); a very elongated image with "-1x368" can ask for more.
MAX_NET_INPUT_PIXELS = 8192 * 8192
#: Tolerance when deciding which padded pixels still hold image content.
_CONTENT_EPS = 1e-6

Size = tuple[int, int]
_RESOLUTION_RE = re.compile(r"^\s*(-?\d+)\s*x\s*(-?\d+)\s*$", re.IGNORECASE)


def _int_round(value: float) -> int:
    """OpenPose's ``intRound``: ``int(a + 0.5f)``, truncation toward zero."""
    return int(value + 0.5)


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator as a C++ double division (x/0 gives inf or nan)."""
    if denominator == 0:
        return math.inf if numerator > 0 else (-math.inf if numerator < 0 else math.nan)
    return numerator / denominator


def parse_net_resolution(text: str) -> Size:
    """Parse ``"WxH"`` (e.g. ``"-1x368"``, ``"656x368"``) into (width, height).

    A side <= 0 means "from the aspect ratio"; only one side may be <= 0; positive sides must be
    multiples of 16. Raises :class:`PosebridgeError` naming the value otherwise.
    """
    match = _RESOLUTION_RE.match(str(text))
    if not match:
        raise PosebridgeError(f"net_resolution {text!r}: expected WIDTHxHEIGHT such as '-1x368'")
    width, height = int(match.group(1)), int(match.group(2))
    if width <= 0 and height <= 0:
        raise PosebridgeError(f"net_resolution {text!r}: only one side may be <= 0 (-1 = from aspect ratio)")
    for side in (width, height):
        if side > 0 and side % NET_INPUT_MULTIPLE:
            raise PosebridgeError(f"net_resolution {text!r}: {side} is not a multiple of {NET_INPUT_MULTIPLE}")
    return width, height


def resize_scale_factor(initial_size: Size, target_size: Size) -> float:
    """OpenPose's ``resizeGetScaleFactor``: min((tw-1)/(iw-1), (th-1)/(ih-1)), as a double."""
    ratio_width = _ratio(target_size[0] - 1, initial_size[0] - 1)
    ratio_height = _ratio(target_size[1] - 1, initial_size[1] - 1)
    return ratio_width if ratio_width < ratio_height else ratio_height


def base_net_size(image_size: Size, net_resolution: Size | str) -> Size:
    """Net input size of scale 1 for an image: a side <= 0 follows the aspect ratio.

    ``16 * intRound(h * W / (float)H / 16.f)`` in float32, as OpenPose computes it.
    """
    if isinstance(net_resolution, str):
        net_resolution = parse_net_resolution(net_resolution)
    width, height = net_resolution
    image_width, image_height = image_size
    if image_width <= 0 or image_height <= 0:
        raise ShapeError(f"image size {image_width}x{image_height} is empty")
    if width > 0 and height > 0:
        return width, height
    if width <= 0 and height <= 0:
        raise PosebridgeError(f"net_resolution {width}x{height}: only one side may be <= 0")
    multiple = np.float32(NET_INPUT_MULTIPLE)
    if width <= 0:
        ratio = np.float32(height * image_width) / np.float32(image_height) / multiple
        width = NET_INPUT_MULTIPLE * int(ratio + np.float32(0.5))
    else:
        ratio = np.float32(width * image_height) / np.float32(image_width) / multiple
        height = NET_INPUT_MULTIPLE * int(ratio + np.float32(0.5))
    return width, height


@dataclass(frozen=True)
class ScaleSpec:
    """One scale: ``scale`` maps image pixels to net-input pixels; ``net_size`` is (w, h)."""

    scale: float
    net_size: Size
    relative_scale: float


def net_input_sizes(
    image_size: Size,
    *,
    net_resolution: Size | str = DEFAULT_NET_RESOLUTION,
    scale_number: int = DEFAULT_SCALE_NUMBER,
    scale_gap: float = DEFAULT_SCALE_GAP,
) -> list[ScaleSpec]:
    """Per-scale net input sizes and image->net scale factors, as ``ScaleAndSizeExtractor::extract``.

    Scale i is ``1 - i*scale_gap``; its side is ``intRound(base * scale) / 16 * 16`` clamped to
    [1, base]; its factor is ``resizeGetScaleFactor(image_size, net_size)``.
    """
    if scale_number < 1:
        raise PosebridgeError(f"scale_number {scale_number}: there must be at least 1 scale")
    if not scale_gap > 0:
        raise PosebridgeError(f"scale_gap {scale_gap}: the gap between scales must be > 0")
    base_width, base_height = base_net_size(image_size, net_resolution)
    specs: list[ScaleSpec] = []
    for index in range(scale_number):
        relative = 1.0 - index * scale_gap
        if relative < 0.0 or relative > 1.0:
            raise PosebridgeError(
                f"scale {index} = 1 - {index}*{scale_gap} = {relative}: all scales must be in [0, 1]")
        width = min(max(_int_round(base_width * relative) // 16 * 16, 1), base_width)
        height = min(max(_int_round(base_height * relative) // 16 * 16, 1), base_height)
        if width < MIN_NET_SIDE or height < MIN_NET_SIDE:
            raise PosebridgeError(
                f"scale {index} ({relative}) gives a {width}x{height} net input; "
                f"sides under {MIN_NET_SIDE} cannot run (raise net_resolution or lower scale_number)")
        if width * height > MAX_NET_INPUT_PIXELS:
            raise LimitExceededError(
                f"net input {width}x{height} for a {image_size[0]}x{image_size[1]} image exceeds "
                f"{MAX_NET_INPUT_PIXELS} pixels (set both sides of net_resolution)")
        specs.append(ScaleSpec(resize_scale_factor(image_size, (width, height)), (width, height), relative))
    return specs


def resize_fixed_aspect_ratio(image: np.ndarray, scale: float, target_size: Size) -> np.ndarray:
    """OpenPose's ``resizeFixedAspectRatio``: scale about the top-left corner, pad with 0.

    ``cv2.warpAffine`` with ``[[s,0,0],[0,s,0]]``; cubic when enlarging, ``INTER_AREA`` otherwise
    (which ``warpAffine`` runs as bilinear). Unchanged copy when ``s == 1`` and sizes agree.
    """
    height, width = image.shape[:2]
    if scale == 1.0 and (width, height) == tuple(target_size):
        return image.copy()
    matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=np.float64)
    interpolation = cv2.INTER_CUBIC if scale > 1.0 else cv2.INTER_AREA
    return cv2.warpAffine(image, matrix, (int(target_size[0]), int(target_size[1])),
                          flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))


def normalize_to_tensor(image_bgr: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3) BGR -> float32 (1, 3, h, w), ``v/256 - 0.5`` (exact in float32)."""
    planes = np.ascontiguousarray(image_bgr.transpose(2, 0, 1)).astype(np.float32)
    return (planes / NORMALIZE_DIVISOR - NORMALIZE_SHIFT)[np.newaxis]


def content_size(image_size: Size, scale: float, net_size: Size) -> Size:
    """(w, h) of the top-left block of net-input pixels whose source lies inside the image.

    Net pixel x samples image x/scale; it holds image content while x <= (W-1)*scale.
    """
    width = min(net_size[0], int(math.floor((image_size[0] - 1) * scale + _CONTENT_EPS)) + 1)
    height = min(net_size[1], int(math.floor((image_size[1] - 1) * scale + _CONTENT_EPS)) + 1)
    return max(width, 1), max(height, 1)


@dataclass(frozen=True)
class ScaleInput:
    """One scale's net input.

    tensor: float32 (1, 3, h, w), BGR, ``v/256 - 0.5`` (padding is -0.5).
    scale: image pixel -> net-input pixel factor (OpenPose's ``scaleInputToNetInputs[i]``).
    net_size: (w, h) of the tensor. valid_size: (w, h) of the top-left block holding image
    content; the rest (right and bottom) is padding.
    """

    tensor: np.ndarray
    scale: float
    net_size: Size
    valid_size: Size

    @property
    def padding(self) -> Size:
        """(right, bottom) padding in net-input pixels."""
        return self.net_size[0] - self.valid_size[0], self.net_size[1] - self.valid_size[1]


def _check_image(image_bgr: np.ndarray) -> None:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8:
        raise ShapeError(f"image must be a uint8 numpy array, got {getattr(image_bgr, 'dtype', type(image_bgr))}")
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ShapeError(f"image must be (H, W, 3) BGR, got shape {image_bgr.shape}")
    if image_bgr.shape[0] < 2 or image_bgr.shape[1] < 2:
        raise ShapeError(f"image {image_bgr.shape[1]}x{image_bgr.shape[0]} is too small (OpenPose's "
                         "scale factor (n-1)/(size-1) needs at least 2x2 pixels)")


def check_input_image(
    image_bgr: np.ndarray,
    *,
    net_resolution: Size | str = DEFAULT_NET_RESOLUTION,
    scale_number: int = DEFAULT_SCALE_NUMBER,
    scale_gap: float = DEFAULT_SCALE_GAP,
) -> None:
    """Raise (ShapeError, LimitExceededError, PosebridgeError) when :func:`prepare_inputs` would
    refuse this image: not uint8 BGR, smaller than 2x2, or net inputs too small or too large for
    its aspect ratio. Costs no allocation: a batch runner calls it per frame to skip bad ones."""
    _check_image(image_bgr)
    net_input_sizes((image_bgr.shape[1], image_bgr.shape[0]), net_resolution=net_resolution,
                    scale_number=scale_number, scale_gap=scale_gap)


def prepare_inputs(
    image_bgr: np.ndarray,
    *,
    net_resolution: Size | str = DEFAULT_NET_RESOLUTION,
    scale_number: int = DEFAULT_SCALE_NUMBER,
    scale_gap: float = DEFAULT_SCALE_GAP,
) -> list[ScaleInput]:
    """The net inputs of one uint8 (H, W, 3) BGR image, one per scale (largest first)."""
    _check_image(image_bgr)
    image_size = (image_bgr.shape[1], image_bgr.shape[0])
    inputs = []
    for spec in net_input_sizes(image_size, net_resolution=net_resolution,
                                scale_number=scale_number, scale_gap=scale_gap):
        resized = resize_fixed_aspect_ratio(image_bgr, spec.scale, spec.net_size)
        inputs.append(ScaleInput(normalize_to_tensor(resized), spec.scale, spec.net_size,
                                 content_size(image_size, spec.scale, spec.net_size)))
    return inputs


def _as_maps(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps)
    if maps.ndim == 4 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim != 3:
        raise ShapeError(f"maps must be (C, h, w) or (1, C, h, w), got shape {maps.shape}")
    return np.ascontiguousarray(maps, dtype=np.float32)


def scale_net_to_output(image_size: Size, net_size: Size) -> float:
    """OpenPose's ``mScaleNetToOutput`` (a float32 value): net-input pixels -> image pixels.

    ``s = resizeGetScaleFactor(image, net)``; ``net' = intRound(s * image)``;
    result ``(float) resizeGetScaleFactor(net', image)``. ``net_size`` is scale 0's.
    """
    scale = resize_scale_factor(image_size, net_size)
    scaled = (_int_round(scale * image_size[0]), _int_round(scale * image_size[1]))
    return float(np.float32(resize_scale_factor(scaled, image_size)))


def nms_offset(scale_to_output: float) -> float:
    """The offset OpenPose 1.7 adds to each NMS peak: ``float(0.5 / double(scale))``."""
    return float(np.float32(0.5 / float(scale_to_output)))


def keypoints_to_image(keypoints: np.ndarray, scale_to_output: float, *, add_nms_offset: bool = True) -> np.ndarray:
    """Keypoints at the merged-map resolution -> image pixels, as OpenPose 1.7 computes them.

    ``keypoints``: (..., 2) x, y or (..., 3) x, y, score, float. x and y are the NMS centroids in
    pixels of the maps given to the peak finder (net input size of scale 0), without offset.
    Each becomes ``(x + offset) * s`` in float32 (NMS adds ``offset = 0.5/s``, the connector
    multiplies by ``s = scale_to_output``), i.e. about ``x*s + 0.5``. With a score column, rows
    whose score is <= 0 (missing parts, 0, 0, 0) stay 0, 0, 0. Returns a float32 copy.
    """
    points = np.array(keypoints, dtype=np.float32, copy=True)
    if points.ndim < 1 or points.shape[-1] not in (2, 3):
        raise ShapeError(f"keypoints must end in 2 (x, y) or 3 (x, y, score) columns, got shape {points.shape}")
    scale = np.float32(scale_to_output)
    offset = np.float32(nms_offset(scale_to_output) if add_nms_offset else 0.0)
    mapped = (points[..., :2] + offset) * scale
    if points.shape[-1] == 3:
        found = points[..., 2] > 0
        points[..., :2] = np.where(found[..., np.newaxis], mapped, np.float32(0.0))
    else:
        points[..., :2] = mapped
    return points


def maps_to_image(maps: np.ndarray, image_size: Size, scale: float) -> np.ndarray:
    """(C, h, w) maps at net-input resolution -> (C, H, W) float32 on the image's pixel grid.

    Image pixel (x, y) takes the map's value at (x*scale, y*scale) (the exact inverse of the
    preprocessing warp; ``scale`` is scale 0's image->net factor), sampled with cubic
    interpolation. Used to draw heatmaps and PAFs over the image.
    """
    maps = _as_maps(maps)
    width, height = int(image_size[0]), int(image_size[1])
    matrix = np.array([[scale, 0.0, 0.0], [0.0, scale, 0.0]], dtype=np.float64)
    flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
    out = np.empty((maps.shape[0], height, width), dtype=np.float32)
    for channel in range(maps.shape[0]):
        cv2.warpAffine(maps[channel], matrix, (width, height), dst=out[channel], flags=flags,
                       borderMode=cv2.BORDER_REPLICATE)
    return out
