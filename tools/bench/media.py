"""Synthetic benchmark media: a folder of JPEG images and a short video, made from a photo.

Frames are windows of the runtime's bundled photo (resized to the frame width), panned down by a
few pixels per frame, so every frame differs and decodes like a real one.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from posebridge.errors import InputMediaError

BUNDLED_PHOTO = Path(__file__).resolve().parents[2] / "runtime" / "data" / "astronaut.jpg"
VIDEO_CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
VIDEO_FPS = 25
JPEG_QUALITY = 92


def bundled_photo() -> np.ndarray:
    """The runtime's bundled photo, uint8 BGR."""
    image = cv2.imread(str(BUNDLED_PHOTO), cv2.IMREAD_COLOR)
    if image is None:
        raise InputMediaError("the bundled photo cannot be read", file=str(BUNDLED_PHOTO))
    return image


def frames(count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` uint8 BGR frames of ``size`` (w, h): windows of the photo panning down."""
    width, height = size
    photo = bundled_photo()
    scaled_height = max(height + count, int(round(photo.shape[0] * width / photo.shape[1])))
    scaled = cv2.resize(photo, (width, scaled_height), interpolation=cv2.INTER_AREA)
    step = max(1, (scaled_height - height) // max(count, 1))
    return [np.ascontiguousarray(scaled[i * step: i * step + height]) for i in range(count)]


def write_image_folder(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """``count`` JPEG images of ``size`` (w, h) in ``folder``; their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("frame_*.jpg"):
        stale.unlink()
    paths = []
    for index, frame in enumerate(frames(count, size)):
        path = folder / f"frame_{index:04d}.jpg"
        if not cv2.imwrite(str(path), frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
            raise InputMediaError("cannot write a benchmark image", file=str(path))
        paths.append(path)
    return paths


def write_video(stem: Path, count: int, size: tuple[int, int]) -> Path:
    """A ``count``-frame video of ``size`` (w, h): MPEG-4 part 2 (.mp4), else Motion JPEG (.avi)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    pictures = frames(count, size)
    for fourcc, suffix in VIDEO_CODECS:
        path = stem.with_suffix(suffix)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), VIDEO_FPS, size)
        if not writer.isOpened():
            continue
        for picture in pictures:
            writer.write(picture)
        writer.release()
        if path.is_file() and path.stat().st_size > 0:
            return path
    raise InputMediaError("OpenCV can write no video codec here (tried mp4v and MJPG)", file=str(stem))
