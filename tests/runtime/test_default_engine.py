"""The default fp32 engine: ncnn for nets of 3x3 convolutions, torch otherwise; the ncnn backend itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from helpers_nets import write_net
from posebridge.converter.network import CaffeNet
from posebridge.errors import ParityError, PosebridgeError
from posebridge.prototxt import caffe_pb2, graph_from_net
from posebridge.prototxt.synth import synthesize
from posebridge.runtime import default_engine
from posebridge.runtime.backends import NcnnBackend, TorchBackend, open_backend
from posebridge.runtime.default_engine import NCNN_MIN_SHARE, default_fp32_backend, winograd_share

pytest.importorskip("ncnn", reason="the ncnn package is not installed")

_HEADER = 'name: "{name}"\ninput: "image"\ninput_dim: 1\ninput_dim: 3\ninput_dim: 1\ninput_dim: 1\n'
#: Only 3x3 stride-1 convolutions (share 1): ncnn's kind of net.
THREE_BY_THREE = _HEADER.format(name="threes") + """
layer { name: "c1" type: "Convolution" bottom: "image" top: "c1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "a2" type: "PReLU" bottom: "c2" top: "c2" }
"""
#: A 3x3 then a 7x7 convolution; MACs per output pixel 3*8*9 and 8*5*49.
WITH_SEVEN = _HEADER.format(name="sevens") + """
layer { name: "c1" type: "Convolution" bottom: "image" top: "c1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" convolution_param { num_output: 5 kernel_size: 7 pad: 3 } }
"""
#: Share 1, but a Sigmoid, which ncnn export does not write.
WITH_SIGMOID = THREE_BY_THREE.replace('name: "threes"', 'name: "sigmoid"') + """
layer { name: "s" type: "Sigmoid" bottom: "c2" top: "s" }
"""


def _break_first_bias(monkeypatch) -> None:
    """Make every ncnn model written from THREE_BY_THREE carry a wrong first bias (5.0)."""
    from posebridge.converter import ncnn_export

    original = ncnn_export.ncnn_model

    def wrong_bias(net):
        model = original(net)
        weights = bytearray(model.weights)
        first_bias = 4 + 8 * 3 * 9 * 4  # tag, then conv c1's 8x3x3x3 float32 weights
        weights[first_bias:first_bias + 4] = np.float32(5.0).tobytes()
        model.weights = bytes(weights)
        return model

    monkeypatch.setattr(ncnn_export, "ncnn_model", wrong_bias)


def _graph(text: str):
    return graph_from_net(text_format.Parse(text, caffe_pb2.NetParameter()), source="test.prototxt")


def _converted(text: str) -> CaffeNet:
    graph = _graph(text)
    return CaffeNet(graph, synthesize(graph, seed=1, init="he"))


def test_share_counts_multiply_adds_per_kernel():
    assert winograd_share(_graph(THREE_BY_THREE)) == 1.0
    three, seven = 3 * 8 * 9, 8 * 5 * 49  # same output size for both ("same" padding)
    assert winograd_share(_graph(WITH_SEVEN)) == pytest.approx(three / (three + seven), rel=1e-12)


@pytest.fixture(autouse=True)
def without_native_kernel(monkeypatch):
    """These tests are about the choice between ncnn and torch without the native Winograd kernel."""
    monkeypatch.setattr(default_engine, "native_available", lambda: False)


@pytest.mark.parametrize(("name", "engine"), [("body_25", "ncnn"), ("coco", "torch"), ("hand", "torch")])
def test_official_architectures_get_the_engine_measured_faster(name, engine):
    from posebridge import zoo

    graph = zoo.graph(f"zoo:{name}")
    assert (winograd_share(graph) >= NCNN_MIN_SHARE) == (engine == "ncnn")
    assert default_fp32_backend(graph) == engine


def test_with_the_native_kernel_every_net_runs_on_torch(tmp_path, monkeypatch):
    monkeypatch.setattr(default_engine, "native_available", lambda: True)
    threes = write_net(tmp_path, THREE_BY_THREE, "threes")
    assert default_fp32_backend(_graph(THREE_BY_THREE)) == "torch"
    assert isinstance(open_backend(threes[1], prototxt=threes[0]), TorchBackend)
    assert isinstance(open_backend(threes[1], prototxt=threes[0], backend="ncnn"), NcnnBackend)  # still on request


def test_open_backend_picks_ncnn_for_3x3_nets_and_torch_otherwise(tmp_path, monkeypatch):
    threes = write_net(tmp_path, THREE_BY_THREE, "threes")
    sevens = write_net(tmp_path, WITH_SEVEN, "sevens")
    sigmoid = write_net(tmp_path, WITH_SIGMOID, "sigmoid")
    assert isinstance(open_backend(threes[1], prototxt=threes[0]), NcnnBackend)
    assert isinstance(open_backend(sevens[1], prototxt=sevens[0]), TorchBackend)
    assert isinstance(open_backend(sigmoid[1], prototxt=sigmoid[0]), TorchBackend)  # no ncnn writer: torch
    assert isinstance(open_backend(threes[1], prototxt=threes[0], backend="torch"), TorchBackend)
    assert isinstance(open_backend(threes[1], prototxt=threes[0], winograd=False), TorchBackend)
    assert isinstance(open_backend(threes[1], prototxt=threes[0], precision="bf16"), TorchBackend)
    assert isinstance(open_backend(sevens[1], prototxt=sevens[0], backend="ncnn"), NcnnBackend)
    monkeypatch.setattr(default_engine, "ncnn_available", lambda: False)
    assert isinstance(open_backend(threes[1], prototxt=threes[0]), TorchBackend)


def test_impossible_ncnn_requests_are_refused(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, THREE_BY_THREE, "threes")
    with pytest.raises(PosebridgeError, match="torch backend option"):
        open_backend(caffemodel, prototxt=prototxt, backend="ncnn", winograd=False)
    with pytest.raises(PosebridgeError, match="precision bf16 runs on the torch backend"):
        open_backend(caffemodel, prototxt=prototxt, backend="ncnn", precision="bf16")
    sigmoid = write_net(tmp_path, WITH_SIGMOID, "sigmoid")
    with pytest.raises(PosebridgeError, match="Sigmoid has no ncnn writer"):
        open_backend(sigmoid[1], prototxt=sigmoid[0], backend="ncnn")


def test_ncnn_backend_gives_the_converted_nets_maps_for_a_batch():
    net = _converted(THREE_BY_THREE)
    backend = NcnnBackend(net, family=None)
    batch = np.random.default_rng(2).uniform(-0.5, 0.5, (3, 3, 43, 61)).astype(np.float32)
    with torch.inference_mode():
        expected = net(torch.from_numpy(batch)).numpy()
    actual = backend.infer(batch)
    assert actual.shape == expected.shape == (3, 6, 22, 31)  # Caffe rounds pooling up
    assert actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= 1e-5 * np.abs(expected).max()


def test_ncnn_backend_refuses_a_net_that_ncnn_computes_differently(monkeypatch):
    _break_first_bias(monkeypatch)
    with pytest.raises(ParityError, match="ncnn differs from PyTorch"):
        NcnnBackend(_converted(THREE_BY_THREE), family=None)


def test_safetensors_weights_get_the_same_choice_and_the_same_maps(tmp_path):
    from posebridge.converter.api import convert
    from posebridge.converter.weights_io import save_safetensors

    prototxt, caffemodel = write_net(tmp_path, THREE_BY_THREE, "threes")
    save_safetensors(convert(prototxt, caffemodel), tmp_path / "threes.safetensors")
    from_caffe = open_backend(caffemodel, prototxt=prototxt)
    from_safetensors = open_backend(tmp_path / "threes.safetensors", prototxt=prototxt)
    assert isinstance(from_caffe, NcnnBackend) and isinstance(from_safetensors, NcnnBackend)
    assert isinstance(open_backend(tmp_path / "threes.safetensors", prototxt=prototxt, backend="torch"), TorchBackend)
    batch = np.random.default_rng(5).uniform(-0.5, 0.5, (2, 3, 35, 47)).astype(np.float32)
    np.testing.assert_array_equal(from_caffe.infer(batch), from_safetensors.infer(batch))


def test_the_default_falls_back_to_torch_and_says_why(tmp_path, monkeypatch):
    threes = write_net(tmp_path, THREE_BY_THREE, "threes")
    sigmoid = write_net(tmp_path, WITH_SIGMOID, "sigmoid")
    heard = []
    assert isinstance(open_backend(sigmoid[1], prototxt=sigmoid[0], log=heard.append), TorchBackend)
    assert len(heard) == 1 and "Sigmoid has no ncnn writer" in heard[0]
    _break_first_bias(monkeypatch)
    assert isinstance(open_backend(threes[1], prototxt=threes[0], log=heard.append), TorchBackend)
    assert len(heard) == 2 and heard[1].startswith("running on torch instead of ncnn: ncnn differs from PyTorch")
    with pytest.raises(ParityError):  # asked for by name: no silent fallback
        open_backend(threes[1], prototxt=threes[0], backend="ncnn")
