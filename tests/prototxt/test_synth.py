"""Synthetic weights: exact round trip through a real caffemodel, OpenCV loads it, Caffe's filler rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from google.protobuf import text_format
from helpers_files import net_text, opencv_net, write_net

from posebridge.errors import PosebridgeError
from posebridge.prototxt import caffe_pb2, load_graph, match_weights, read_weights
from posebridge.prototxt.synth import caffemodel_bytes, fill, synthesize, write_caffemodel
from posebridge.prototxt.weights import parse_weights

INPUT = {"data": (1, 4, 8, 8)}

# Every learnable layer type except Bias (OpenCV has no Bias layer): grouped convolution,
# BatchNorm + Scale with bias in place, PReLU per channel and shared, grouped deconvolution,
# InnerProduct transposed and not.
LEARNABLE_LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 6 group: 2 kernel_size: 3 pad: 1
    weight_filler { type: "msra" } bias_filler { type: "constant" value: 0.2 } } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "conv1" top: "conv1" }
layer { name: "deconv1" type: "Deconvolution" bottom: "conv1" top: "up"
  convolution_param { num_output: 6 group: 6 kernel_size: 4 stride: 2 pad: 1 bias_term: false
    weight_filler { type: "bilinear" } } }
layer { name: "prelu2" type: "PReLU" bottom: "up" top: "up" prelu_param { channel_shared: true } }
layer { name: "pool1" type: "Pooling" bottom: "up" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "fc1" type: "InnerProduct" bottom: "pool1" top: "fc1"
  inner_product_param { num_output: 7 transpose: true
    weight_filler { type: "xavier" } bias_filler { type: "uniform" min: -1 max: 1 } } }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
  inner_product_param { num_output: 3
    weight_filler { type: "positive_unitball" } bias_filler { type: "gaussian" std: 0.5 } } }
"""
BIAS_LAYER = """
layer { name: "bias1" type: "Bias" bottom: "fc2" top: "biased" bias_param { filler { type: "constant" value: -0.5 } } }
"""
EXPECTED_SHAPES = {
    "conv1": [(6, 2, 3, 3), (6,)],
    "bn1": [(6,), (6,), (1,)],
    "scale1": [(6,), (6,)],
    "prelu1": [(6,)],
    "deconv1": [(6, 1, 4, 4)],
    "prelu2": [(1,)],
    "fc1": [(6 * 8 * 8, 7), (7,)],
    "fc2": [(3, 7), (3,)],
    "bias1": [(3,)],
}


@pytest.fixture
def full_net(tmp_path):
    return load_graph(write_net(tmp_path, LEARNABLE_LAYERS + BIAS_LAYER, INPUT, stem="full"))


def _filler(text: str) -> caffe_pb2.FillerParameter:
    return text_format.Parse(text, caffe_pb2.FillerParameter())


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("init", ["he", "caffe"])
def test_synth_then_read_gives_identical_arrays(full_net, tmp_path, init: str) -> None:
    blobs = synthesize(full_net, seed=7, init=init)
    assert {name: [a.shape for a in arrays] for name, arrays in blobs.items()} == EXPECTED_SHAPES
    path = tmp_path / "full.caffemodel"
    write_caffemodel(path, full_net, blobs)

    weights = read_weights(path)
    assert weights.format == "V2"
    assert weights.net_name == "full"
    for name, arrays in blobs.items():
        read = weights.blobs[name]
        assert len(read) == len(arrays), name
        for got, want in zip(read, arrays):
            assert got.dtype == np.float32 and got.shape == want.shape, name
            assert np.array_equal(got, want), name
    # layers without blobs are stored with none
    assert weights.blobs["pool1"] == [] and weights.blobs["input"] == []
    matched = match_weights(full_net, weights)
    assert matched.ignored == []
    assert set(matched.blobs) == set(EXPECTED_SHAPES)


def test_synth_is_deterministic_per_seed(full_net) -> None:
    first = caffemodel_bytes(full_net, synthesize(full_net, seed=1))
    assert caffemodel_bytes(full_net, synthesize(full_net, seed=1)) == first
    assert caffemodel_bytes(full_net, synthesize(full_net, seed=2)) != first


def test_synth_caffemodel_carries_the_net_definition(full_net) -> None:
    data = caffemodel_bytes(full_net, synthesize(full_net, seed=0))
    net = caffe_pb2.NetParameter.FromString(data)
    assert [layer.name for layer in net.layer] == [node.name for node in sorted(full_net.nodes, key=lambda n: n.index)]
    assert net.layer[1].convolution_param.group == 2
    assert [list(b.shape.dim) for b in net.layer[1].blobs] == [[6, 2, 3, 3], [6]]


@pytest.mark.parametrize("init", ["he", "caffe"])
def test_opencv_reads_synth_caffemodel(tmp_path, init: str) -> None:
    prototxt = write_net(tmp_path, LEARNABLE_LAYERS, INPUT, stem="cv")
    graph = load_graph(prototxt)
    blobs = synthesize(graph, seed=3, init=init)
    model = tmp_path / "cv.caffemodel"
    write_caffemodel(model, graph, blobs)

    net = opencv_net(prototxt, model.read_bytes())
    for name, arrays in blobs.items():
        layer_id = net.getLayerId(name)
        for i, array in enumerate(arrays):
            # OpenCV keeps each blob's values in Caffe's order (it may add a trailing axis of 1)
            assert np.array_equal(net.getParam(layer_id, i).ravel(), array.ravel()), f"{name} blob {i}"
    net.setInput(np.random.default_rng(0).normal(size=INPUT["data"]).astype(np.float32))
    output = net.forward()
    assert output.shape == (1, 3) and np.all(np.isfinite(output))


# ----------------------------------------------------------------------------- caffe init


def test_caffe_init_follows_the_prototxt_fillers(full_net) -> None:
    blobs = synthesize(full_net, seed=0, init="caffe")
    assert np.all(blobs["conv1"][1] == np.float32(0.2))
    one_d = np.array([0.25, 0.75, 0.75, 0.25], dtype=np.float32)
    assert np.array_equal(blobs["deconv1"][0], np.broadcast_to(np.outer(one_d, one_d), (6, 1, 4, 4)))
    assert np.allclose(blobs["fc2"][0].sum(axis=1), 1.0, atol=1e-6) and np.all(blobs["fc2"][0] > 0)
    assert np.all(np.abs(blobs["fc1"][1]) <= 1.0)
    assert np.all(blobs["bias1"][0] == np.float32(-0.5))
    # defaults: PReLU 0.25, Scale 1 and bias 0, BatchNorm statistics 0
    assert np.all(blobs["prelu1"][0] == np.float32(0.25)) and np.all(blobs["prelu2"][0] == np.float32(0.25))
    assert np.all(blobs["scale1"][0] == 1.0) and np.all(blobs["scale1"][1] == 0.0)
    assert all(np.all(a == 0) for a in blobs["bn1"])


def test_constant_filler_is_exact() -> None:
    data = fill(_filler('type: "constant" value: 0.7'), (3, 4, 2), np.random.default_rng(0))
    assert data.dtype == np.float32 and data.shape == (3, 4, 2)
    assert np.all(data == np.float32(0.7))


def test_bilinear_filler_matches_hand_computed_kernel() -> None:
    # kernel 4 (upsampling factor 2): f = 2, c = 3/4, weights 1 - |x/f - c| = .25 .75 .75 .25
    data = fill(_filler('type: "bilinear"'), (2, 3, 4, 4), np.random.default_rng(0))
    row = [0.25, 0.75, 0.75, 0.25]
    kernel = [[a * b for b in row] for a in row]
    for n in range(2):
        for c in range(3):
            assert data[n, c].tolist() == kernel


def test_bilinear_filler_needs_a_square_4d_blob() -> None:
    with pytest.raises(PosebridgeError, match="square 4-D"):
        fill(_filler('type: "bilinear"'), (2, 3, 4, 3), np.random.default_rng(0))


SHAPE = (64, 32, 3, 3)
FAN_IN, FAN_OUT = 32 * 9, 64 * 9


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", FAN_IN), ("FAN_OUT", FAN_OUT), ("AVERAGE", (FAN_IN + FAN_OUT) / 2)])
def test_xavier_variance(norm: str, n: float) -> None:
    data = fill(_filler(f'type: "xavier" variance_norm: {norm}'), SHAPE, np.random.default_rng(0))
    bound = math.sqrt(3.0 / n)
    assert np.all(np.abs(data) <= bound * (1 + 1e-6))
    assert float(data.var()) == pytest.approx(1.0 / n, rel=0.03)
    assert abs(float(data.mean())) < 0.05 * bound


@pytest.mark.parametrize(("norm", "n"), [("FAN_IN", FAN_IN), ("FAN_OUT", FAN_OUT), ("AVERAGE", (FAN_IN + FAN_OUT) / 2)])
def test_msra_variance(norm: str, n: float) -> None:
    data = fill(_filler(f'type: "msra" variance_norm: {norm}'), SHAPE, np.random.default_rng(0))
    assert float(data.var()) == pytest.approx(2.0 / n, rel=0.03)
    assert abs(float(data.mean())) < 0.05 * math.sqrt(2.0 / n)


def test_gaussian_and_uniform_fillers() -> None:
    rng = np.random.default_rng(0)
    gauss = fill(_filler('type: "gaussian" mean: 1.5 std: 0.2'), (200, 500), rng)
    assert float(gauss.mean()) == pytest.approx(1.5, abs=0.01)
    assert float(gauss.std()) == pytest.approx(0.2, rel=0.02)
    uniform = fill(_filler('type: "uniform" min: -3 max: 1'), (200, 500), rng)
    assert uniform.min() >= -3 and uniform.max() <= 1
    assert float(uniform.mean()) == pytest.approx(-1.0, abs=0.02)


def test_gaussian_sparse_keeps_sparse_over_num_outputs() -> None:
    # Caffe: each value is kept with probability sparse / shape[0] (the number of outputs)
    data = fill(_filler('type: "gaussian" std: 1 sparse: 5'), (10, 4000), np.random.default_rng(0))
    assert float(np.mean(data != 0)) == pytest.approx(0.5, abs=0.02)


def test_positive_unitball_rows_sum_to_one() -> None:
    data = fill(_filler('type: "positive_unitball"'), (5, 3, 2, 2), np.random.default_rng(0))
    assert np.all(data > 0)
    assert np.allclose(data.reshape(5, -1).sum(axis=1), 1.0, atol=1e-6)


def test_unknown_filler_and_init_are_errors(full_net) -> None:
    with pytest.raises(PosebridgeError, match="unknown filler type 'nope'"):
        fill(_filler('type: "nope"'), (2, 2), np.random.default_rng(0))
    with pytest.raises(PosebridgeError, match="unknown init 'glorot'"):
        synthesize(full_net, init="glorot")


# ----------------------------------------------------------------------------- he init


def test_he_init_preserves_variance_through_a_deep_stack(tmp_path) -> None:
    depth = 12
    layers = "".join(
        f'layer {{ name: "c{i}" type: "Convolution" bottom: "{"data" if i == 0 else f"c{i - 1}"}" top: "c{i}" '
        f'convolution_param {{ num_output: 16 kernel_size: 3 pad: 1 weight_filler {{ type: "gaussian" std: 0.01 }} }} }}\n'
        f'layer {{ name: "r{i}" type: "ReLU" bottom: "c{i}" top: "c{i}" }}\n'
        for i in range(depth))
    prototxt = write_net(tmp_path, layers, {"data": (1, 16, 24, 24)}, stem="deep")
    graph = load_graph(prototxt)
    x = np.random.default_rng(0).normal(size=(1, 16, 24, 24)).astype(np.float32)
    stds = {}
    for init in ("he", "caffe"):
        net = opencv_net(prototxt, caffemodel_bytes(graph, synthesize(graph, seed=0, init=init)))
        net.setInput(x)
        stds[init] = float(net.forward().std())
    assert 0.1 < stds["he"] < 10.0
    assert stds["caffe"] < 1e-3  # the prototxt's own std 0.01 shrinks activations: the reason he exists


def test_synth_needs_known_input_shapes(tmp_path) -> None:
    text = net_text('layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param { num_output: 2 } }\n',
                    {"data": (1, 3, 4, 4)})
    text = text.replace('layer { name: "fc"', 'layer { name: "src" type: "MysteryData" top: "x" }\nlayer { name: "fc"')
    path = tmp_path / "mystery.prototxt"
    path.write_text(text)
    graph = load_graph(path)
    with pytest.raises(PosebridgeError) as info:
        synthesize(graph)
    assert str(path) in str(info.value) and "layer 'fc'" in str(info.value)


def test_parse_weights_of_synth_bytes_without_a_file(full_net) -> None:
    data = caffemodel_bytes(full_net, synthesize(full_net, seed=0))
    weights = parse_weights(data, source="mem.caffemodel")
    assert weights.source == "mem.caffemodel"
    assert weights.total_parameters == sum(int(np.prod(s)) for shapes in EXPECTED_SHAPES.values() for s in shapes)
