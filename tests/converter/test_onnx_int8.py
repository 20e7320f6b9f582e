"""int8 quantisation of an exported net, and the int8 model cache behind run --precision int8."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from helpers_bench import small_net, write_small_net
from posebridge.converter.onnx_export import export_onnx
from posebridge.converter.onnx_int8 import INT8, INT8_ERROR, default_calibration, quantize_int8, relative_error
from posebridge.converter.onnx_metadata import read_onnx_metadata
from posebridge.errors import ExportError

CALIBRATION_SIZE = (40, 56)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8")
    path = folder / "small.onnx"
    export_onnx(small_net(folder), path)
    return path


def _calibration(count=3, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.5, 0.5, (1, 3, *CALIBRATION_SIZE)).astype(np.float32) for _ in range(count)]


def _run(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_quantised_model_runs_close_to_fp32_with_every_conv_in_int8(exported, tmp_path):
    target = tmp_path / "small.int8.onnx"
    report = quantize_int8(exported, target, _calibration())
    model = onnx.load(target)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert report.quantized_nodes == len(convs) > 0
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    assert all(producers.get(n.input[1]) == "DequantizeLinear" for n in convs)  # int8 weights
    metadata = read_onnx_metadata(target)
    assert metadata["precision"] == INT8 and math.isclose(float(metadata[INT8_ERROR]), report.max_relative_error)
    assert "export_check" in metadata  # the fp32 export's metadata is kept
    x = np.random.default_rng(9).uniform(-0.5, 0.5, (2, 3, 48, 64)).astype(np.float32)
    expected, actual = _run(exported, x), _run(target, x)
    assert actual.shape == expected.shape
    error = relative_error(actual, expected)
    assert 0 < error < 0.2


def test_no_calibration_input_is_an_error(exported, tmp_path):
    with pytest.raises(ExportError, match="calibration"):
        quantize_int8(exported, tmp_path / "x.onnx", [])
    assert not (tmp_path / "x.onnx").exists()


def test_default_calibration_is_photos_and_noise_in_openpose_range():
    inputs = default_calibration((64,))
    assert len(inputs) == 4  # photo, mirrored photo, two noise inputs
    assert all(x.dtype == np.float32 and x.shape[:2] == (1, 3) and x.shape[2] == 64 for x in inputs)
    assert all(-0.5 <= x.min() and x.max() < 0.5 for x in inputs)
    np.testing.assert_array_equal(inputs[0][..., ::-1], inputs[1])


def test_int8_cache_makes_the_model_once_and_again_when_the_weights_change(tmp_path, monkeypatch):
    from posebridge.converter import onnx_int8
    from posebridge.runtime import int8_cache

    prototxt, caffemodel = write_small_net(tmp_path)
    original = onnx_int8.quantize_int8
    calls = []

    def quantize(source, target, calibration=None):
        calls.append(target)
        return original(source, target, _calibration(1))

    monkeypatch.setattr(onnx_int8, "quantize_int8", quantize)
    cache = tmp_path / "cache"
    first = int8_cache.int8_model(caffemodel, prototxt, folder=cache)
    again = int8_cache.int8_model(caffemodel, prototxt, folder=cache)
    assert first == again and first.is_file() and len(calls) == 1
    assert read_onnx_metadata(first)["precision"] == INT8
    write_small_net(tmp_path, seed=5)  # new weights, same file name
    changed = int8_cache.int8_model(caffemodel, prototxt, folder=cache)
    assert changed != first and len(calls) == 2
