"""A batch run survives bad inputs: it reports each, goes on, and exits 1 with a summary.

The net is a tiny stand-in with COCO's 57 output channels at stride 8 (synthetic weights from
``posebridge synth``), run with ``--skeleton COCO --net-resolution -1x64`` so each frame takes
milliseconds.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from posebridge.errors import InputMediaError
from posebridge.runtime.media import iter_media, max_image_pixels, read_image
from posebridge.tools.cli import main

TINY_BODY_NET = """name: "tiny_body"
input: "image"
input_dim: 1
input_dim: 3
input_dim: 1
input_dim: 1
layer { name: "conv1" type: "Convolution" bottom: "image" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool2" type: "Pooling" bottom: "pool1" top: "pool2" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "pool3" type: "Pooling" bottom: "pool2" top: "pool3" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "net_output" type: "Convolution" bottom: "pool3" top: "net_output" convolution_param { num_output: 57 kernel_size: 1 } }
"""
GOOD_IMAGES = ("good", "gray", "rgba", "deep16", "gray16")
BAD_IMAGES = {  # name -> a fragment of the reason reported for it
    "corrupt": "not a decodable image",
    "cut": "not a decodable image",
    "empty": "empty file (0 bytes)",
    "one_pixel": "1x1 is too small",
    "huge": "20000x20000 (400000000 pixels), over the limit",
    "strip": "exceeds",
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tiny_body")
    prototxt = folder / "tiny.prototxt"
    prototxt.write_text(TINY_BODY_NET)
    caffemodel = folder / "tiny.caffemodel"
    assert main(["synth", str(prototxt), "-o", str(caffemodel)]) == 0
    return prototxt, caffemodel


def _run(model, inputs, out: Path, *extra: str) -> int:
    prototxt, caffemodel = model
    return main(["run", str(caffemodel), *map(str, inputs), "--prototxt", str(prototxt), "--skeleton", "COCO",
                 "--net-resolution", "-1x64", "--write-json", str(out), *extra])


def _photo(size=(120, 90), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 2)


def huge_png(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of width x height (all black), a few kilobytes per 10^8 pixels."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    pieces = [compressor.compress(row * 1000) for _ in range(height // 1000)]
    pieces.append(compressor.compress(row * (height % 1000)) + compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(pieces)) + chunk(b"IEND", b"")


def write_batch_folder(folder: Path) -> None:
    folder.mkdir()
    photo = _photo()
    cv2.imwrite(str(folder / "good.png"), photo)
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), np.dstack([photo, np.full(photo.shape[:2], 128, np.uint8)]))
    cv2.imwrite(str(folder / "deep16.png"), photo.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "gray16.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257)
    jpeg = cv2.imencode(".jpg", photo)[1].tobytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[:2] + b"\x00" * 64 + jpeg[66:])
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "one_pixel.png"), photo[:1, :1])
    (folder / "huge.png").write_bytes(huge_png(20000, 20000))
    cv2.imwrite(str(folder / "strip.png"), np.zeros((2, 40000, 3), np.uint8))  # 20000:1 -> a 640000x64 net input
    (folder / "notes.txt").write_text("not an image: ignored")


def test_a_folder_run_continues_past_every_bad_image(model, tmp_path, capsys):
    folder = tmp_path / "inputs"
    write_batch_folder(folder)
    out = tmp_path / "json"
    assert _run(model, [folder], out) == 1
    err = capsys.readouterr().err
    assert f"{len(BAD_IMAGES)} input(s) failed" in err and "Traceback" not in err
    summary = err[err.index("input(s) failed"):]
    for name, reason in BAD_IMAGES.items():
        line = next(line for line in summary.splitlines() if name in line)
        assert reason in line, line
    assert "refused before decoding" in summary
    written = sorted(p.name for p in out.iterdir())
    assert written == sorted(f"{name}_keypoints.json" for name in GOOD_IMAGES)
    for path in out.iterdir():
        assert json.loads(path.read_text())["version"] == 1.3


def test_grayscale_rgba_and_16_bit_images_become_8_bit_bgr(tmp_path):
    folder = tmp_path / "inputs"
    write_batch_folder(folder)
    frames = dict(iter_media(folder, on_error=lambda error: None))
    reference = frames["good"]
    for name in GOOD_IMAGES:
        assert frames[name].dtype == np.uint8 and frames[name].shape == reference.shape
    assert np.array_equal(frames["rgba"], reference) and np.array_equal(frames["deep16"], reference)
    assert np.array_equal(frames["gray"][..., 0], frames["gray"][..., 2])


def test_a_huge_image_is_refused_without_decoding_it(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png(20000, 20000))
    assert path.stat().st_size < 200_000 and max_image_pixels() < 20000 * 20000
    with pytest.raises(InputMediaError, match="refused before decoding"):
        read_image(path)
    script = textwrap.dedent(f"""
        import resource
        from posebridge.errors import InputMediaError
        from posebridge.runtime.media import read_image
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            read_image({str(path)!r})
        except InputMediaError:
            pass
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) < 64 * 1024  # KiB; decoding would take 1.2 GB of BGR


def _video(path: Path, frames: int = 20, size=(96, 64)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert writer.isOpened()
    for index in range(frames):
        writer.write(_photo(size, seed=index))
    writer.release()
    return path


def test_a_whole_video_runs_clean(model, tmp_path, capsys):
    video = _video(tmp_path / "clip.avi")
    out = tmp_path / "json"
    assert _run(model, [video], out) == 0
    assert len(list(out.glob("clip_*_keypoints.json"))) == 20
    assert "failed" not in capsys.readouterr().err


def test_a_video_that_ends_early_gives_its_frames_then_an_error(model, tmp_path, capsys):
    data = _video(tmp_path / "full.avi").read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    out = tmp_path / "json"
    assert _run(model, [cut, tmp_path / "full.avi"], out) == 1
    err = capsys.readouterr().err
    assert "1 input(s) failed" in err and "cut.avi" in err and "video ended after" in err
    read = len(list(out.glob("cut_*_keypoints.json")))
    assert 1 <= read < 20 and f"ended after {read} of the 20 frames" in err
    assert len(list(out.glob("full_*_keypoints.json"))) == 20  # the run went on to the next input


def test_bad_options_are_a_user_error_not_a_per_frame_failure(model, tmp_path, capsys):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), _photo())
    prototxt, caffemodel = model
    code = main(["run", str(caffemodel), str(image), "--prototxt", str(prototxt), "--skeleton", "COCO",
                 "--net-resolution", "-1x8", "--scale-number", "2"])
    assert code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- atomic outputs


def test_an_interrupted_run_leaves_no_partial_json(model, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    for index in range(5):
        cv2.imwrite(str(folder / f"img{index}.png"), _photo(seed=index))
    out = tmp_path / "json"
    coco = tmp_path / "coco.json"
    original = Path.write_text
    writes = []

    def write_then_die(self, text, *args, **kwargs):
        writes.append(self)
        if len(writes) == 3:  # the third JSON: half its text reaches the disk, then ^C
            original(self, text[: len(text) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return original(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_then_die)
    assert _run(model, [folder], out, "--write-coco", str(coco)) == 130
    monkeypatch.undo()
    assert "interrupted" in capsys.readouterr().err
    files = sorted(p.name for p in out.iterdir())
    assert files == ["img0_keypoints.json", "img1_keypoints.json"]  # whole files only, no .part
    for name in files:
        json.loads((out / name).read_text())
    assert not coco.exists() and not list(tmp_path.glob(".*.part"))
