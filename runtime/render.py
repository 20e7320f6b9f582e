"""Drawing people as OpenPose's CPU renderer draws them; heatmap and PAF overlays; saving images.

Skeleton drawing follows OpenPose 1.7 ``utilities/keypoint.cpp`` (``renderKeypointsCpu``) as
called by ``pose/renderPose.cpp``, ``face/renderFace.cpp`` and ``hand/renderHand.cpp``, per person:

- box of the parts with score > 0.1; a person whose box has zero area is not drawn;
- ``ratioAreas = min(1, max(box_w / W, box_h / H))``;
  ``thicknessRatio = max(intRound(sqrt(W*H) * circleRatio * ratioAreas), 2)``;
  circle thickness ``thicknessRatio`` (1 when ``ratioAreas <= 0.05``), radius ``thicknessRatio/2``,
  line thickness ``max(1, intRound(thicknessRatio * lineRatio))``;
- lines first (render pairs, both ends above the render threshold, colour of the second part),
  then circles (colour of the part); ``cv::line``/``cv::circle`` with 8-connected lines,
  points rounded with ``intRound``; opaque, over the image (``alpha`` imitates the GPU
  renderer's blending instead, ``POSE_DEFAULT_ALPHA_KEYPOINT = 0.6``).

Ratios and thresholds (``RenderStyle``): pose 1/75, 0.75, 0.05 (``--render_threshold``); face
1/75, 0.334, 0.4; hand 1/50, 0.75, 0.2. Colours come from the skeleton tables (RGB).

Heatmaps are drawn with a colour map and PAFs with hue = direction, brightness = magnitude,
blended over the image with ``POSE_DEFAULT_ALPHA_HEAT_MAP = 0.7``. Saved images use OpenPose's
``saveImage`` defaults: JPEG quality 100, PNG compression 9; names ``<name>_rendered.<format>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from posebridge.atomic import write_bytes_atomic
from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import FACE, HAND, Skeleton


@dataclass(frozen=True)
class RenderStyle:
    """Size rules of one kind of keypoints: circle ratio, line/circle ratio, render threshold."""

    circle_ratio: float
    line_ratio: float
    threshold: float


POSE_STYLE = RenderStyle(circle_ratio=1 / 75, line_ratio=0.75, threshold=0.05)
FACE_STYLE = RenderStyle(circle_ratio=1 / 75, line_ratio=0.334, threshold=0.4)
HAND_STYLE = RenderStyle(circle_ratio=1 / 50, line_ratio=0.75, threshold=0.2)
#: Parts above this score define a person's box (``thresholdRectangle`` in keypoint.cpp).
BOX_THRESHOLD = 0.1
#: Below this ``ratioAreas`` circles are drawn 1 pixel thick.
SMALL_PERSON_RATIO = 0.05
MIN_THICKNESS_RATIO = 2
LINE_TYPE = cv2.LINE_8
POSE_ALPHA_KEYPOINT = 0.6
POSE_ALPHA_HEAT_MAP = 0.7
HEATMAP_COLORMAP = cv2.COLORMAP_JET
RENDERED_SUFFIX = "_rendered"
#: OpenPose's ``saveImage`` defaults.
JPEG_QUALITY = 100
PNG_COMPRESSION = 9
ENCODE_PARAMS: dict[str, list[int]] = {
    ".jpg": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
    ".jpe": [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY], ".png": [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION],
}

KeypointSet = Sequence[Person] | np.ndarray | Sequence[np.ndarray | None] | None


def _f32(value: float) -> np.float32:
    return np.float32(value)


def _int_round_f32(value: float) -> int:
    """``intRound`` on a float: ``int(a + 0.5f)`` in float32, truncated toward zero."""
    return int(np.float32(value) + np.float32(0.5))


def _keypoint_array(people: KeypointSet, parts: int) -> np.ndarray:
    """Persons / (P, K, 3) array / list of (K, 3) or None -> float32 (P, K, 3)."""
    if people is None:
        return np.zeros((0, parts, 3), np.float32)
    if isinstance(people, np.ndarray):
        array = people.astype(np.float32, copy=False)
        if array.size == 0:
            return np.zeros((0, parts, 3), np.float32)
    else:
        rows = [np.zeros((parts, 3), np.float32) if p is None else
                (p.keypoints if isinstance(p, Person) else np.asarray(p)) for p in people]
        array = np.stack([np.asarray(r, np.float32) for r in rows]) if rows else np.zeros((0, parts, 3), np.float32)
    if array.ndim != 3 or array.shape[1:] != (parts, 3):
        raise ShapeError(f"keypoints must be (people, {parts}, 3), got shape {array.shape}")
    return array


def person_box(keypoints: np.ndarray, threshold: float = BOX_THRESHOLD) -> tuple[float, float, float, float]:
    """OpenPose's ``getKeypointsRectangle``: (x, y, w, h) of the parts with score > threshold.

    As OpenPose, the maxima start at 0 and the minima at FLT_MAX; no such part gives zeros.
    """
    min_x = min_y = np.finfo(np.float32).max
    max_x = max_y = np.float32(0.0)
    for x, y, score in np.asarray(keypoints, np.float32):
        if score > _f32(threshold):
            max_x, min_x = max(max_x, x), min(min_x, x)
            max_y, min_y = max(max_y, y), min(min_y, y)
    if max_x >= min_x and max_y >= min_y:
        return float(min_x), float(min_y), float(max_x - min_x), float(max_y - min_y)
    return 0.0, 0.0, 0.0, 0.0


@dataclass(frozen=True)
class PersonSizes:
    """Pixel sizes of one person's drawing."""

    thickness_ratio: int
    circle_thickness: int
    line_thickness: int
    radius: int


def person_sizes(keypoints: np.ndarray, image_size: tuple[int, int], style: RenderStyle) -> PersonSizes | None:
    """Circle/line sizes for one person on a (W, H) image; None when OpenPose skips the person."""
    width, height = image_size
    _, _, box_w, box_h = person_box(keypoints)
    if not np.float32(box_w) * np.float32(box_h) > 0:
        return None
    ratio_areas = min(_f32(1.0), max(_f32(box_w) / _f32(width), _f32(box_h) / _f32(height)))
    raw = math.sqrt(width * height) * float(_f32(style.circle_ratio)) * float(ratio_areas)
    thickness_ratio = max(int(raw + 0.5), MIN_THICKNESS_RATIO)
    circle = max(1, thickness_ratio if ratio_areas > _f32(SMALL_PERSON_RATIO) else -1)
    line = max(1, _int_round_f32(_f32(thickness_ratio) * _f32(style.line_ratio)))
    return PersonSizes(thickness_ratio, circle, line, thickness_ratio // 2)


def _bgr(color: tuple[int, int, int]) -> tuple[int, int, int]:
    red, green, blue = color
    return int(blue), int(green), int(red)


def _draw_keypoints(canvas: np.ndarray, masks: np.ndarray | None, keypoints: np.ndarray,
                    skeleton: Skeleton, style: RenderStyle, threshold: float) -> None:
    """``renderKeypointsCpu`` for all people of ``keypoints`` (P, K, 3) onto ``canvas`` in place."""
    height, width = canvas.shape[:2]
    colors = skeleton.colors
    limit = _f32(threshold)
    for person in keypoints:
        sizes = person_sizes(person, (width, height), style)
        if sizes is None:
            continue
        points = [(_int_round_f32(x), _int_round_f32(y)) for x, y, _ in person]
        visible = person[:, 2] > limit
        for part_a, part_b in skeleton.render_limbs:
            if visible[part_a] and visible[part_b]:
                color = _bgr(colors[part_b % len(colors)])
                cv2.line(canvas, points[part_a], points[part_b], color, sizes.line_thickness, LINE_TYPE)
                if masks is not None:
                    cv2.line(masks, points[part_a], points[part_b], 255, sizes.line_thickness, LINE_TYPE)
        for part, point in enumerate(points):
            if visible[part]:
                color = _bgr(colors[part % len(colors)])
                cv2.circle(canvas, point, sizes.radius, color, sizes.circle_thickness, LINE_TYPE)
                if masks is not None:
                    cv2.circle(masks, point, sizes.radius, 255, sizes.circle_thickness, LINE_TYPE)


def _check_image(image_bgr: np.ndarray) -> None:
    if not isinstance(image_bgr, np.ndarray) or image_bgr.dtype != np.uint8 or image_bgr.ndim != 3 \
            or image_bgr.shape[2] != 3:
        raise ShapeError(f"image must be uint8 (H, W, 3) BGR, got {getattr(image_bgr, 'shape', type(image_bgr))}")


def render_keypoints(image_bgr: np.ndarray, keypoints: KeypointSet, skeleton: Skeleton, *,
                     style: RenderStyle = POSE_STYLE, threshold: float | None = None,
                     alpha: float | None = None) -> np.ndarray:
    """Draw each person's keypoints (Persons or (P, K, 3) in image pixels); returns a new image.

    ``alpha`` None draws opaque (OpenPose's CPU renderer); a value blends the drawing into the
    image (``alpha * colour + (1 - alpha) * image`` on drawn pixels, like the GPU renderer).
    """
    _check_image(image_bgr)
    array = _keypoint_array(keypoints, skeleton.part_count)
    limit = style.threshold if threshold is None else threshold
    if alpha is None:
        canvas = image_bgr.copy()
        _draw_keypoints(canvas, None, array, skeleton, style, limit)
        return canvas
    drawn = image_bgr.copy()
    mask = np.zeros(image_bgr.shape[:2], np.uint8)
    _draw_keypoints(drawn, mask, array, skeleton, style, limit)
    mixed = cv2.addWeighted(drawn, float(alpha), image_bgr, 1.0 - float(alpha), 0.0)
    out = image_bgr.copy()
    out[mask > 0] = mixed[mask > 0]
    return out


def render_pose(image_bgr: np.ndarray, people: KeypointSet, skeleton: Skeleton, *,
                face: KeypointSet = None, hand_left: KeypointSet = None, hand_right: KeypointSet = None,
                threshold: float | None = None, alpha: float | None = None,
                blend_original: bool = True) -> np.ndarray:
    """The rendered frame: body, then faces, then left and right hands, as OpenPose orders them.

    ``blend_original=False`` draws on black (OpenPose's ``--disable_blending``).
    """
    _check_image(image_bgr)
    canvas = image_bgr if blend_original else np.zeros_like(image_bgr)
    canvas = render_keypoints(canvas, people, skeleton, style=POSE_STYLE, threshold=threshold, alpha=alpha)
    if face is not None:
        canvas = render_keypoints(canvas, face, FACE, style=FACE_STYLE, alpha=alpha)
    for hand in (hand_left, hand_right):
        if hand is not None:
            canvas = render_keypoints(canvas, hand, HAND, style=HAND_STYLE, alpha=alpha)
    return canvas


# --- heatmaps and PAFs ---------------------------------------------------------------------------

def _check_map(image_bgr: np.ndarray, plane: np.ndarray, what: str) -> None:
    _check_image(image_bgr)
    if plane.shape != image_bgr.shape[:2]:
        raise ShapeError(f"{what} of shape {plane.shape} does not match the image {image_bgr.shape[:2]} "
                         "(map it onto the image first, preprocess.maps_to_image)")


def heatmap_colors(heatmap: np.ndarray) -> np.ndarray:
    """(H, W) float map, clipped to [0, 1] -> uint8 BGR through the colour map (0 blue, 1 red)."""
    levels = np.rint(np.clip(np.asarray(heatmap, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.applyColorMap(levels, HEATMAP_COLORMAP)


def paf_colors(paf_x: np.ndarray, paf_y: np.ndarray) -> np.ndarray:
    """A vector field -> uint8 BGR: hue = direction (+x red, +y 90 degrees on), value = |v| clipped to 1."""
    vx, vy = np.asarray(paf_x, np.float32), np.asarray(paf_y, np.float32)
    angle = np.degrees(np.arctan2(vy, vx)) % 360.0
    hsv = np.empty(vx.shape + (3,), np.uint8)
    hsv[..., 0] = (np.rint(angle / 2.0) % 180).astype(np.uint8)
    hsv[..., 1] = 255
    hsv[..., 2] = np.rint(np.clip(np.hypot(vx, vy), 0.0, 1.0) * 255.0).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)


def blend(image_bgr: np.ndarray, overlay_bgr: np.ndarray, alpha: float) -> np.ndarray:
    """``alpha * overlay + (1 - alpha) * image``, rounded to uint8."""
    return cv2.addWeighted(overlay_bgr, float(alpha), image_bgr, 1.0 - float(alpha), 0.0)


def render_heatmap(image_bgr: np.ndarray, heatmap: np.ndarray, *, alpha: float = POSE_ALPHA_HEAT_MAP) -> np.ndarray:
    """One (H, W) heatmap on the image's grid, or (K, H, W) combined by their maximum, over the image."""
    plane = np.asarray(heatmap, np.float32)
    if plane.ndim == 3:
        plane = plane.max(axis=0)
    _check_map(image_bgr, plane, "heatmap")
    return blend(image_bgr, heatmap_colors(plane), alpha)


def render_pafs(image_bgr: np.ndarray, pafs: np.ndarray, skeleton: Skeleton | None = None, *,
                limb: int | None = None, alpha: float = POSE_ALPHA_HEAT_MAP) -> np.ndarray:
    """PAFs on the image's grid over the image.

    ``pafs``: (2, H, W) one field (x, y), or (2L, H, W) all PAF channels of ``skeleton`` (channel
    pairs from ``skeleton.paf_channels``); then ``limb`` picks one limb, else each pixel shows
    the limb with the longest vector.
    """
    fields = np.asarray(pafs, np.float32)
    if fields.ndim != 3:
        raise ShapeError(f"pafs must be (channels, H, W), got shape {fields.shape}")
    if skeleton is None:
        if fields.shape[0] != 2:
            raise ShapeError(f"without a skeleton pafs must be one (2, H, W) field, got {fields.shape}")
        pairs = [(0, 1)]
    else:
        if fields.shape[0] != skeleton.paf_count:
            raise ShapeError(f"{skeleton.name} has {skeleton.paf_count} PAF channels, got {fields.shape[0]}")
        pairs = list(skeleton.paf_channels) if limb is None else [skeleton.paf_channels[limb]]
    xs = np.stack([fields[cx] for cx, _ in pairs])
    ys = np.stack([fields[cy] for _, cy in pairs])
    strongest = np.argmax(xs * xs + ys * ys, axis=0)[np.newaxis]
    paf_x = np.take_along_axis(xs, strongest, axis=0)[0]
    paf_y = np.take_along_axis(ys, strongest, axis=0)[0]
    _check_map(image_bgr, paf_x, "PAF")
    return blend(image_bgr, paf_colors(paf_x, paf_y), alpha)


# --- saving ---------------------------------------------------------------------------------------

def rendered_file_name(name: str, image_format: str = "png") -> str:
    """``<name>_rendered.<format>``, OpenPose's ``--write_images`` file name."""
    return f"{name}{RENDERED_SUFFIX}.{image_format.lstrip('.')}"


def encode_image(image_bgr: np.ndarray, extension: str) -> bytes:
    """Encode to ``extension`` (".png", ".jpg", ...) with OpenPose's quality settings."""
    _check_image(image_bgr)
    extension = "." + extension.lstrip(".").lower()
    params = ENCODE_PARAMS.get(extension, [])
    try:
        ok, data = cv2.imencode(extension, image_bgr, params)
    except cv2.error as exc:
        raise PosebridgeError(f"cannot encode an image as {extension!r}: {exc.msg if hasattr(exc, 'msg') else exc}") from exc
    if not ok:
        raise PosebridgeError(f"cannot encode an image as {extension!r}")
    return data.tobytes()


def save_image(path: str | os.PathLike, image_bgr: np.ndarray) -> Path:
    """Write ``image_bgr`` to ``path`` atomically, in the format of its extension (PNG, JPEG...)."""
    path = Path(path)
    if not path.suffix:
        raise PosebridgeError("image file name has no extension (.png, .jpg)", file=str(path))
    try:
        data = encode_image(image_bgr, path.suffix)
    except PosebridgeError as exc:
        raise PosebridgeError(exc.detail, file=str(path)) from exc
    write_bytes_atomic(path, data)
    return path
