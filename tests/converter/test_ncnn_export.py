"""ncnn export: every writer against the converted net at odd sizes and batch 2; refusals; files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_caffe import make_net
from posebridge.converter.ncnn_export import (
    CHECK_SIZES,
    MAGIC,
    NcnnNet,
    SUPPORTED_LAYERS,
    TOLERANCE,
    check_against_torch,
    export_ncnn,
    ncnn_model,
)
from posebridge.converter.network import CaffeNet
from posebridge.errors import ExportError, ParityError, UnsupportedLayerError
from posebridge.prototxt import graph_from_net
from posebridge.prototxt.synth import synthesize

pytest.importorskip("ncnn", reason="the ncnn package is not installed")

#: (height, width) at batch 2; none a multiple of 2, 3 or 8, so pooling edges and strides show.
ODD_SIZES = ((37, 53), (41, 29))

# Each writer with the Caffe details that matter: pads 0/1/2, stride 2, dilation, no bias, leaky
# ReLU, PReLU per channel and shared, MAX pooling CEIL with and without pad and FLOOR, AVE
# without pad, Concat (one bottom twice), Dropout, a Caffe Split, blobs read by several layers (ncnn Split),
# a fused ReLU.
_EVERY_WRITER = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool_ceil_pad" type: "Pooling" bottom: "conv1" top: "pool_ceil_pad"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "conv_wide" type: "Convolution" bottom: "pool_ceil_pad" top: "conv_wide"
  convolution_param { num_output: 8 kernel_size: 5 pad: 2 bias_term: false } }
layer { name: "leaky" type: "ReLU" bottom: "conv_wide" top: "conv_wide" relu_param { negative_slope: 0.1 } }
layer { name: "conv_dilated" type: "Convolution" bottom: "pool_ceil_pad" top: "conv_dilated"
  convolution_param { num_output: 8 kernel_size: 3 pad: 2 dilation: 2 } }
layer { name: "prelu" type: "PReLU" bottom: "conv_dilated" top: "conv_dilated" }
layer { name: "drop" type: "Dropout" bottom: "conv_wide" top: "drop" }
layer { name: "split" type: "Split" bottom: "drop" top: "copy_a" top: "copy_b" }
layer { name: "concat" type: "Concat" bottom: "conv_dilated" bottom: "copy_a" bottom: "conv_dilated" bottom: "copy_b"
  top: "concat" }
layer { name: "pool_ceil" type: "Pooling" bottom: "concat" top: "pool_ceil"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "pool_floor" type: "Pooling" bottom: "pool_ceil" top: "pool_floor"
  pooling_param { pool: MAX kernel_size: 2 stride: 1 round_mode: FLOOR } }
layer { name: "conv_valid" type: "Convolution" bottom: "pool_floor" top: "conv_valid"
  convolution_param { num_output: 8 kernel_size: 1 } }
layer { name: "prelu_shared" type: "PReLU" bottom: "conv_valid" top: "conv_valid" prelu_param { channel_shared: true } }
layer { name: "conv_strided" type: "Convolution" bottom: "conv_valid" top: "conv_strided"
  convolution_param { num_output: 6 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 } }
layer { name: "pool_ave" type: "Pooling" bottom: "conv_strided" top: "pool_ave"
  pooling_param { pool: AVE kernel_size: 2 stride: 1 round_mode: FLOOR } }
layer { name: "conv_out" type: "Convolution" bottom: "pool_ave" top: "conv_out"
  convolution_param { num_output: 5 kernel_size: 3 pad: 1 } }
"""


def _net(layers: str, seed: int = 0, size: tuple[int, int] = (32, 32)) -> CaffeNet:
    graph = graph_from_net(make_net(layers, {"data": (1, 3, *size)}, name="ncnn_test"), source="ncnn_test.prototxt")
    return CaffeNet(graph, synthesize(graph, seed=seed, init="he"))


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


def test_every_writer_matches_the_converted_net_at_odd_sizes_and_batch_2():
    net = _net(_EVERY_WRITER)
    model = ncnn_model(net)
    kinds = {line.split()[0] for line in model.param.splitlines()[2:]}
    assert {"Convolution", "ReLU", "PReLU", "Pooling", "Concat", "Split", "Input"} <= kinds
    assert "Dropout" not in kinds and " split " not in model.param  # identities are written as nothing
    assert " relu1 " not in model.param  # fused into conv1 (activation 9=1)
    opened = NcnnNet(model, threads=1)
    for index, (height, width) in enumerate(ODD_SIZES):
        x = np.random.default_rng(index).uniform(-0.5, 0.5, (2, 3, height, width)).astype(np.float32)
        with torch.inference_mode():
            expected = net(torch.from_numpy(x)).numpy()
        actual = opened.run(x)
        assert actual.shape == expected.shape
        assert _relative(actual, expected) < TOLERANCE
        assert not np.array_equal(actual[0], actual[1])  # the two batch items are run separately


def test_param_text_counts_its_layers_and_blobs():
    model = ncnn_model(_net(_EVERY_WRITER))
    lines = model.param.splitlines()
    assert lines[0] == str(MAGIC)
    layers, blobs = map(int, lines[1].split())
    body = [line.split() for line in lines[2:]]
    assert layers == len(body) == model.layer_count
    names = set()
    for fields in body:
        bottoms, tops = int(fields[2]), int(fields[3])
        names.update(fields[4:4 + bottoms + tops])
    assert blobs == len(names)
    produced = [name for fields in body for name in fields[4 + int(fields[2]):4 + int(fields[2]) + int(fields[3])]]
    assert len(produced) == len(set(produced))  # every blob written once
    consumed = [name for fields in body for name in fields[4:4 + int(fields[2])]]
    assert len(consumed) == len(set(consumed))  # shared blobs are read through Split copies


@pytest.mark.parametrize("name", ["body_25", "coco", "hand"])
def test_official_architectures_match_the_converted_net(name):
    from posebridge import zoo

    graph = zoo.graph(f"zoo:{name}")
    net = CaffeNet(graph, synthesize(graph, seed=3, init="he"))
    error = check_against_torch(net, NcnnNet(ncnn_model(net)), ((72, 104),), batch=2)
    assert error < TOLERANCE


@pytest.mark.parametrize(("layers", "layer", "message"), [
    ('layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
     'pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }', "pool", "AVE with padding"),
    ('layer { name: "grouped" type: "Convolution" bottom: "data" top: "grouped" '
     'convolution_param { num_output: 6 kernel_size: 3 group: 3 } }', "grouped", "group 3"),
    ('layer { name: "soft" type: "Softmax" bottom: "data" top: "soft" }', "soft", "no ncnn writer"),
    ('layer { name: "cat" type: "Concat" bottom: "data" bottom: "data" top: "cat" concat_param { axis: 2 } }',
     "cat", "axis 2"),
    ('layer { name: "sparse" type: "Pooling" bottom: "data" top: "sparse" '
     'pooling_param { pool: MAX kernel_size: 1 stride: 3 } }', "sparse", "stride > kernel"),
])
def test_layers_without_caffe_exact_ncnn_form_are_refused_by_name(layers, layer, message):
    with pytest.raises(UnsupportedLayerError, match=message) as caught:
        ncnn_model(_net(layers))
    assert caught.value.layer == layer and "ncnn_test.prototxt" in str(caught.value)


def test_supported_layers_are_listed_from_the_writers():
    assert set(SUPPORTED_LAYERS) == {"Input", "Dropout", "Split", "Convolution", "ReLU", "PReLU", "Pooling", "Concat"}


def test_export_writes_both_files_and_they_load(tmp_path):
    import ncnn

    net = _net(_EVERY_WRITER)
    error = export_ncnn(net, tmp_path / "model.param")
    assert 0 <= error < TOLERANCE
    loaded = ncnn.Net()
    assert loaded.load_param(str(tmp_path / "model.param")) == 0
    assert loaded.load_model(str(tmp_path / "model.bin")) == 0
    model = ncnn_model(net)
    assert (tmp_path / "model.bin").read_bytes() == model.weights
    assert (tmp_path / "model.param").read_text() == model.param
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.param"]


def test_a_failed_check_writes_nothing_and_keeps_old_files(tmp_path, monkeypatch):
    from posebridge.converter import ncnn_export

    net = _net(_EVERY_WRITER)
    (tmp_path / "model.param").write_text("old")
    original = ncnn_export.ncnn_model

    def corrupted(model_net):
        model = original(model_net)
        weights = bytearray(model.weights)
        weights[4:8] = np.float32(3.0).tobytes()  # first weight of conv1, after its tag
        model.weights = bytes(weights)
        return model

    monkeypatch.setattr(ncnn_export, "ncnn_model", corrupted)
    with pytest.raises(ExportError, match=r"ncnn differs from PyTorch by .* at input 57x91"):
        export_ncnn(net, tmp_path / "model.param", check_sizes=CHECK_SIZES)
    assert (tmp_path / "model.param").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.param"]


def test_check_raises_the_asked_error_type():
    net = _net(_EVERY_WRITER)
    model = ncnn_model(net)
    weights = bytearray(model.weights)
    weights[4:8] = np.float32(3.0).tobytes()
    model.weights = bytes(weights)
    with pytest.raises(ParityError, match="ncnn differs"):
        check_against_torch(net, NcnnNet(model), ((33, 35),), batch=1, error_type=ParityError)


def test_convert_command_exports_ncnn_and_refuses_bad_requests(tmp_path, capsys):
    from helpers_nets import TINY_OPENPOSE, write_net
    from posebridge.tools.cli import main

    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE, "tiny")
    target = tmp_path / "out" / "tiny.param"
    assert main(["convert", str(prototxt), str(caffemodel), "--ncnn", str(target), "--check-sizes", "33x29,40x52"]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "tiny.bin (ncnn; max relative error" in out and "33x29, 40x52" in out
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.bin", "tiny.param"]

    assert main(["convert", str(prototxt), str(caffemodel), "--ncnn", str(tmp_path / "tiny.ncnn")]) == 2
    err = capsys.readouterr().err
    assert "ends in .param" in err and "Traceback" not in err
    assert not (tmp_path / "tiny.ncnn").exists()

    sigmoid = write_net(tmp_path, TINY_OPENPOSE.replace(
        'layer { name: "net_output"', 'layer { name: "sig" type: "Sigmoid" bottom: "s2_L2b" top: "s2_L2b" }\n'
        'layer { name: "net_output"'), "sigmoid")
    refused = tmp_path / "refused.param"
    assert main(["convert", str(sigmoid[0]), str(sigmoid[1]), "--ncnn", str(refused)]) == 2
    err = capsys.readouterr().err
    assert "layer 'sig'" in err and "Sigmoid has no ncnn writer" in err and "Traceback" not in err
    assert not refused.exists() and not (tmp_path / "refused.bin").exists()


def test_names_ncnn_cannot_read_are_replaced_by_tokens():
    long_name = "x" * 230
    layers = f"""
layer {{ name: "conv one" type: "Convolution" bottom: "data" top: "my blob"
  convolution_param {{ num_output: 4 kernel_size: 3 pad: 1 }} }}
layer {{ name: "relu" type: "ReLU" bottom: "my blob" top: "my blob" }}
layer {{ name: "{long_name}" type: "Convolution" bottom: "my blob" top: "{long_name}"
  convolution_param {{ num_output: 3 kernel_size: 3 }} }}
layer {{ name: "cat" type: "Concat" bottom: "{long_name}" bottom: "{long_name}" top: "out#1" }}
"""
    net = _net(layers)
    model = ncnn_model(net)
    assert "my blob" not in model.param and long_name not in model.param and "out#1" not in model.param
    for line in model.param.splitlines()[2:]:
        fields = line.split()
        assert len(fields) == 4 + int(fields[2]) + int(fields[3]) + sum("=" in f for f in fields)
    error = check_against_torch(net, NcnnNet(model), ((29, 31),), batch=2)
    assert error < TOLERANCE


@pytest.mark.parametrize("slope", [1.2345678e-05, -7.25, 2.5e-12, 0.1])
def test_float_params_survive_ncnns_15_character_reader(slope):
    layers = f"""
layer {{ name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param {{ num_output: 4 kernel_size: 3 }} }}
layer {{ name: "leaky" type: "ReLU" bottom: "c1" top: "c1" relu_param {{ negative_slope: {slope!r} }} }}
layer {{ name: "c2" type: "Convolution" bottom: "c1" top: "c2" convolution_param {{ num_output: 2 kernel_size: 1 }} }}
"""
    net = _net(layers)
    assert check_against_torch(net, NcnnNet(ncnn_model(net)), ((21, 23),), batch=2) < TOLERANCE
