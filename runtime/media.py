"""Inputs as OpenPose reads them: one image, a folder of images, or a video file.

Each yields ``(name, frame)``: ``frame`` is uint8 (H, W, 3) BGR; ``name`` is what OpenPose
names the frame (its outputs are ``<name>_keypoints.json``, ``<name>_rendered.png``):

- an image: its file name without the extension (``getFileNameNoExtension``);
- a folder: its images, sorted by path (``getFilesOnDirectory`` sorts), extensions matched
  without regard to case; OpenPose's list (``imageDirectoryReader.cpp``) plus ``EXTRA_IMAGE_EXTENSIONS``;
- a video: ``<video name>_<frame index, 12 digits>`` (``VideoReader::getNextFrameName``:
  the name plus ``CAP_PROP_POS_FRAMES`` before the read, zero-padded to 12).

Images are decoded like OpenPose's ``loadImage(path, IMREAD_COLOR)``: grayscale becomes three
equal channels, alpha is dropped, 16-bit becomes 8-bit, EXIF orientation is applied. A file
that is empty, unreadable or not decodable raises :class:`InputMediaError` naming it;
``iter_media(..., on_error=...)`` reports such a file and goes on with the next one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from posebridge.errors import FileAccessError, InputMediaError
from posebridge.limits import DEFAULT_LIMITS
from posebridge.prototxt.budget import limit
from posebridge.runtime.image_header import image_size

#: ``getImagePathsOnDirectory`` in OpenPose 1.7 (imageDirectoryReader.cpp).
OPENPOSE_IMAGE_EXTENSIONS = frozenset({"bmp", "dib", "pbm", "pgm", "ppm", "sr", "ras", "jpg", "jpeg", "png"})
#: Formats OpenCV also decodes that posebridge accepts in folders (OpenPose skips them).
EXTRA_IMAGE_EXTENSIONS = frozenset({"jpe", "tif", "tiff", "webp"})
IMAGE_EXTENSIONS = OPENPOSE_IMAGE_EXTENSIONS | EXTRA_IMAGE_EXTENSIONS
#: Digits of the frame index in a video frame's name (``toFixedLengthString(..., 12)``).
FRAME_INDEX_DIGITS = 12
#: Bytes of an image file searched for its header (JPEG's frame size may follow large EXIF data).
HEADER_BYTES = 1 << 20
#: Frames a video may fall short of its container's count before it is reported as cut short
#: (the count is an estimate in some containers): this many, or 1% of the count if more.
VIDEO_COUNT_SLACK = 1

Frame = tuple[str, np.ndarray]
ErrorHandler = Callable[[InputMediaError], None]


def is_image_path(path: str | os.PathLike) -> bool:
    """Whether the file name has an image extension (case-insensitive)."""
    return Path(path).suffix[1:].lower() in IMAGE_EXTENSIONS


def frame_name(path: str | os.PathLike, index: int | None = None) -> str:
    """OpenPose's name of an image (``stem``) or of video frame ``index`` (``stem_%012d``)."""
    stem = Path(path).stem
    return stem if index is None else f"{stem}_{index:0{FRAME_INDEX_DIGITS}d}"


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files directly inside ``folder``, sorted by path as OpenPose sorts them."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        raise FileAccessError(f"cannot list folder: {exc.strerror or exc}", file=str(folder)) from exc
    return sorted((p for p in entries if p.is_file() and is_image_path(p)), key=lambda p: str(p))


def to_bgr8(image: np.ndarray, *, source: str | None = None) -> np.ndarray:
    """Any decoded image array -> uint8 (H, W, 3) BGR.

    Gray (H, W) or (H, W, 1) is repeated into three channels; BGRA drops alpha; uint16 keeps the
    high byte (``v >> 8``, as OpenCV's 16->8 bit decode); float in [0, 1] is scaled by 255.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.size == 0:
        raise InputMediaError(f"unsupported image shape {array.shape}", file=source)
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        array = np.clip(np.rint(array * 255.0), 0, 255).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise InputMediaError(f"unsupported pixel type {array.dtype}", file=source)
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.shape[2] == 4:
        return np.ascontiguousarray(array[:, :, :3])
    return np.ascontiguousarray(array)


def max_image_pixels() -> int:
    """Largest width*height decoded (``POSEBRIDGE_MAX_IMAGE_PIXELS``, default 8192*8192)."""
    return limit(DEFAULT_LIMITS, "max_image_pixels")


def check_image_size(size: tuple[int, int] | None, *, source: str | None = None) -> None:
    """Raise InputMediaError for an image or video frame over :func:`max_image_pixels`, before decoding.

    Such images are refused, not downscaled: decoding one is the allocation to avoid.
    """
    if size is None:
        return
    width, height = size
    if width * height > max_image_pixels():
        raise InputMediaError(
            f"image is {width}x{height} ({width * height} pixels), over the limit of {max_image_pixels()} pixels: "
            "refused before decoding (downscale it first, or raise POSEBRIDGE_MAX_IMAGE_PIXELS)", file=source)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file to uint8 (H, W, 3) BGR, as ``cv::imread(path, IMREAD_COLOR)``.

    Raises :class:`InputMediaError` naming the file when it is empty, unreadable, not an image, or
    larger than :func:`max_image_pixels` (read from the header, before decoding).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputMediaError(f"cannot read image: {exc.strerror or exc}", file=str(path)) from exc
    if data.size == 0:
        raise InputMediaError("empty file (0 bytes)", file=str(path))
    check_image_size(image_size(data[:HEADER_BYTES].tobytes()), source=str(path))
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise InputMediaError(f"not a decodable image ({data.size} bytes)", file=str(path))
    return to_bgr8(image, source=str(path))


def iter_video(path: str | os.PathLike) -> Iterator[Frame]:
    """The frames of a video file, in order, named ``<stem>_000000000000``, ``..._000000000001``...

    Raises :class:`InputMediaError` naming the file when it is empty, cannot be opened, has frames
    over :func:`max_image_pixels` or holds no decodable frame. Decoding stops at the first frame
    OpenCV cannot read; when that is well before the count the container states (a file cut
    short), the frames read so far are yielded and then InputMediaError says so.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputMediaError(f"cannot read video: {exc.strerror or exc}", file=str(path)) from exc
    if size == 0:
        raise InputMediaError("empty file (0 bytes)", file=str(path))
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputMediaError("cannot be opened as an image or a video", file=str(path))
        size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        check_image_size(size if min(size) > 0 else None, source=str(path))
        stated = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok or frame is None:
                break
            yield frame_name(path, index), to_bgr8(frame, source=str(path))
            index += 1
        if index == 0:
            raise InputMediaError("no decodable video frame", file=str(path))
        if stated - index > max(VIDEO_COUNT_SLACK, stated // 100):
            raise InputMediaError(f"video ended after {index} of the {stated} frames its container states "
                                  f"(truncated or damaged); the {index} frames before were read", file=str(path))
    finally:
        capture.release()


def input_kind(path: str | os.PathLike) -> str:
    """``"folder"``, ``"image"`` or ``"video"`` (any other file is tried as a video)."""
    path = Path(path)
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise FileAccessError("input does not exist", file=str(path))
    return "image" if is_image_path(path) else "video"


def media_length(path: str | os.PathLike) -> int | None:
    """Frames one input will yield: images in a folder, 1 for an image, the video's frame count
    as its container reports it (None when unknown). For progress bars; not exact for videos."""
    kind = input_kind(path)
    if kind == "folder":
        return len(list_images(path))
    if kind == "image":
        return 1
    capture = cv2.VideoCapture(str(path))
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()
    return count if count > 0 else None


def _frames_of(path: Path, on_error: ErrorHandler | None) -> Iterator[Frame]:
    kind = input_kind(path)
    if kind == "video":
        yield from iter_video(path)
        return
    if kind == "image":
        yield frame_name(path), read_image(path)
        return
    images = list_images(path)
    if not images:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InputMediaError(f"no images ({extensions}) in folder", file=str(path))
    for image_path in images:
        try:
            image = read_image(image_path)
        except InputMediaError as error:
            if on_error is None:
                raise
            on_error(error)
            continue
        yield frame_name(image_path), image


def iter_media(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    on_error: ErrorHandler | None = None,
) -> Iterator[Frame]:
    """``(name, uint8 BGR frame)`` for each image, folder image or video frame, in order.

    ``inputs``: one path or several. A path that does not exist raises :class:`FileAccessError`.
    A bad file raises :class:`InputMediaError`; with ``on_error`` the error is passed to it
    instead and iteration continues with the next file (a video stops at its first bad frame).
    """
    paths = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    for path in paths:
        try:
            yield from _frames_of(Path(path), on_error)
        except InputMediaError as error:
            if on_error is None:
                raise
            on_error(error)
