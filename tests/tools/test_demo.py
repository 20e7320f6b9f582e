"""posebridge demo (quick form): every stage runs and writes its output."""

from __future__ import annotations

import json

import cv2
import onnx

from posebridge.converter.onnx_metadata import read_onnx_metadata
from posebridge.tools.demo import SAMPLE_IMAGE, closing_text, run_demo


def test_demo_runs_every_stage(tmp_path):
    lines = []
    result = run_demo(tmp_path / "demo", quick=True, log=lines.append)
    assert [line.split("]")[0] for line in lines] == ["[synth", "[convert", "[parity", "[onnx", "[run", "[report"]
    assert result.parity_ok
    files = result.files
    assert set(files) == {"prototxt", "caffemodel", "safetensors", "parity", "onnx", "json", "rendered", "report"}
    assert all(path.is_file() and path.stat().st_size > 0 for path in files.values())
    assert json.loads(files["parity"].read_text())["ok"] is True
    onnx.checker.check_model(str(files["onnx"]))
    assert read_onnx_metadata(files["onnx"])["model_family"] == "COCO"
    document = json.loads(files["json"].read_text())
    assert document["version"] == 1.3 and len(document["people"]) == result.people
    assert cv2.imread(str(files["rendered"])).shape == cv2.imread(str(SAMPLE_IMAGE)).shape
    assert "<svg" in files["report"].read_text() or "dagre" in files["report"].read_text()
    text = closing_text(result)
    assert "SYNTHETIC" in text and "posebridge convert zoo:coco pose_iter_440000.caffemodel" in text
    assert not list((tmp_path / "demo").glob("*.part"))
