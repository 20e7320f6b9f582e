"""Reading images, folders and videos as OpenPose does; bad files raise InputMediaError."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from posebridge.errors import FileAccessError, InputMediaError
from posebridge.runtime import media


def _image(height: int = 30, width: int = 41, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write(path: Path, array: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), array), path
    return path


def _write_video(path: Path, frames: list[np.ndarray]) -> Path:
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (width, height))
    if not writer.isOpened():
        pytest.skip("OpenCV build cannot write MJPG/AVI here")
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_png_round_trip(tmp_path):
    image = _image()
    loaded = media.read_image(_write(tmp_path / "a.png", image))
    assert loaded.dtype == np.uint8 and np.array_equal(loaded, image)


def test_grayscale_becomes_three_equal_channels(tmp_path):
    gray = _image()[:, :, 0]
    loaded = media.read_image(_write(tmp_path / "g.png", gray))
    assert loaded.shape == gray.shape + (3,)
    for channel in range(3):
        assert np.array_equal(loaded[:, :, channel], gray)


def test_rgba_drops_alpha(tmp_path):
    bgra = np.dstack([_image(), np.full((30, 41), 7, np.uint8)])
    loaded = media.read_image(_write(tmp_path / "rgba.png", bgra))
    assert np.array_equal(loaded, bgra[:, :, :3])


def test_sixteen_bit_keeps_high_byte(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (20, 25, 3), dtype=np.uint16)
    loaded = media.read_image(_write(tmp_path / "deep.png", values))
    assert loaded.dtype == np.uint8
    assert np.array_equal(loaded, (values >> 8).astype(np.uint8))
    gray16 = values[:, :, 1]
    loaded_gray = media.read_image(_write(tmp_path / "deep_gray.png", gray16))
    assert np.array_equal(loaded_gray[:, :, 2], (gray16 >> 8).astype(np.uint8))


def test_to_bgr8_arrays():
    assert media.to_bgr8(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert media.to_bgr8(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    assert np.array_equal(media.to_bgr8(np.full((2, 2, 3), 0.5, np.float32)), np.full((2, 2, 3), 128, np.uint8))
    with pytest.raises(InputMediaError):
        media.to_bgr8(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(InputMediaError):
        media.to_bgr8(np.zeros((4, 5, 3), np.int64))


def test_corrupt_and_empty_files_name_the_file(tmp_path):
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff" + os.urandom(200))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    for path in (corrupt, empty):
        with pytest.raises(InputMediaError) as info:
            media.read_image(path)
        assert path.name in str(info.value) and info.value.file == str(path)
    with pytest.raises(InputMediaError, match="0 bytes"):
        media.read_image(empty)
    with pytest.raises(InputMediaError, match="cannot read"):     # an OS error while reading
        media.read_image(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = _write(tmp_path / "locked.png", _image())
    path.chmod(0)
    try:
        with pytest.raises(InputMediaError, match="locked.png"):
            media.read_image(path)
    finally:
        path.chmod(0o644)


def test_folder_sorted_filtered_case_insensitive(tmp_path):
    names = ["b.png", "A.JPG", "c10.bmp", "c2.jpeg", "z.tiff"]
    for index, name in enumerate(names):
        _write(tmp_path / name, _image(seed=index))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "inner.png", _image())
    listed = [p.name for p in media.list_images(tmp_path)]
    assert listed == sorted(names)          # byte order: "A.JPG" < "b.png" < "c10" < "c2" < "z"
    frames = list(media.iter_media(tmp_path))
    assert [name for name, _ in frames] == ["A", "b", "c10", "c2", "z"]
    assert np.array_equal(frames[1][1], _image(seed=0))          # b.png


def test_folder_continues_past_bad_files_with_handler(tmp_path):
    _write(tmp_path / "1.png", _image(seed=1))
    (tmp_path / "2.png").write_bytes(b"")
    (tmp_path / "3.jpg").write_bytes(b"garbage" * 10)
    _write(tmp_path / "4.png", _image(seed=4))
    with pytest.raises(InputMediaError, match="2.png"):
        list(media.iter_media(tmp_path))
    errors: list[InputMediaError] = []
    names = [name for name, _ in media.iter_media(tmp_path, on_error=errors.append)]
    assert names == ["1", "4"]
    assert [Path(e.file).name for e in errors] == ["2.png", "3.jpg"]


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(InputMediaError, match="no images"):
        list(media.iter_media(tmp_path))
    with pytest.raises(FileAccessError, match="nope"):
        list(media.iter_media(tmp_path / "nope.png"))


def test_single_image_name_keeps_inner_dots(tmp_path):
    path = _write(tmp_path / "COCO_val2014_000000000192.v2.png", _image())
    ((name, frame),) = list(media.iter_media(path))
    assert name == "COCO_val2014_000000000192.v2" and frame.shape == (30, 41, 3)


def test_video_frames_named_like_openpose(tmp_path):
    frames = [np.full((48, 64, 3), value, np.uint8) for value in (0, 100, 200)]
    path = _write_video(tmp_path / "clip.avi", frames)
    out = list(media.iter_media(path))
    assert [name for name, _ in out] == ["clip_000000000000", "clip_000000000001", "clip_000000000002"]
    for (_, frame), expected in zip(out, frames):
        assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8
        assert abs(float(frame.mean()) - float(expected.mean())) < 4       # MJPG is lossy
    assert media.media_length(path) == 3
    assert media.input_kind(path) == "video"


def test_mixed_inputs_in_order(tmp_path):
    image = _write(tmp_path / "still.png", _image())
    video = _write_video(tmp_path / "v.avi", [np.zeros((16, 16, 3), np.uint8)] * 2)
    names = [name for name, _ in media.iter_media([video, image])]
    assert names == ["v_000000000000", "v_000000000001", "still"]


def test_bad_videos(tmp_path):
    garbage = tmp_path / "movie.mp4"
    garbage.write_bytes(os.urandom(4096))
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(InputMediaError) as info:
            list(media.iter_media(path))
        assert path.name in str(info.value)
    errors: list[InputMediaError] = []
    assert list(media.iter_media([garbage, empty], on_error=errors.append)) == []
    assert len(errors) == 2


def test_frame_name():
    assert media.frame_name("/x/y/video.mp4", 12) == "video_000000000012"
    assert media.frame_name("/x/y/img.jpeg") == "img"
