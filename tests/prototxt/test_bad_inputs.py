"""Each bad input gives its own exception type and a message naming the file (and layer, where one applies)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers_files import synth_caffemodel_bytes, write_net

from posebridge.errors import (
    CaffemodelFormatError,
    FileAccessError,
    ForbiddenLayerError,
    GraphError,
    PosebridgeError,
    PrototxtSyntaxError,
    ShapeError,
    UnsupportedLayerError,
    WeightsError,
)
from posebridge.prototxt import caffe_pb2, infer_shapes, load_graph, load_weights, match_weights, read_weights
from posebridge.prototxt.text_reader import read_prototxt
from posebridge.prototxt.weights import parse_weights

TINY = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" convolution_param { num_output: 2 kernel_size: 1 } }
"""


def _raises(error: type[PosebridgeError], call, *args, **kwargs) -> str:
    """Call, check the exact exception type, return its message."""
    with pytest.raises(PosebridgeError) as info:
        call(*args, **kwargs)
    assert type(info.value) is error, f"{type(info.value).__name__}: {info.value}"
    return str(info.value)


@pytest.fixture
def tiny(tmp_path) -> tuple[Path, bytes]:
    prototxt = write_net(tmp_path, TINY, stem="tiny")
    return prototxt, synth_caffemodel_bytes(load_graph(prototxt), seed=0)


# ----------------------------------------------------------------------------- files


@pytest.mark.parametrize("reader", [load_graph, read_weights, read_prototxt], ids=["load_graph", "read_weights", "read_prototxt"])
def test_missing_file(tmp_path, reader) -> None:
    path = tmp_path / "absent.bin"
    message = _raises(FileAccessError, reader, path)
    assert str(path) in message and "not found" in message


@pytest.mark.parametrize("reader", [load_graph, read_weights, read_prototxt], ids=["load_graph", "read_weights", "read_prototxt"])
def test_empty_file(tmp_path, reader) -> None:
    path = tmp_path / "empty.caffemodel"
    path.write_bytes(b"")
    message = _raises(FileAccessError, reader, path)
    assert str(path) in message and "empty" in message


def test_folder_instead_of_a_file(tmp_path) -> None:
    message = _raises(FileAccessError, read_weights, tmp_path)
    assert str(tmp_path) in message and "folder" in message


# ----------------------------------------------------------------------------- caffemodels


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_caffemodel(tmp_path, tiny, cut: float) -> None:
    _, data = tiny
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(data[: int(len(data) * cut)])
    message = _raises(CaffemodelFormatError, read_weights, path)
    assert str(path) in message and "truncated" in message
    # the message says how far reading got: after a named layer, or before the first one
    assert "after layer '" in message or "before the first layer" in message
    # the same file read as a net (its definition) fails with the same type
    assert str(path) in _raises(CaffemodelFormatError, load_graph, path)


def test_truncated_caffemodel_names_the_last_good_layer(tmp_path, tiny) -> None:
    _, data = tiny
    net = caffe_pb2.NetParameter.FromString(data)
    # cut inside conv2's blobs: everything up to relu1 is intact
    head = b"".join(caffe_pb2.NetParameter(layer=[layer]).SerializeToString() for layer in net.layer[:3])
    tail = caffe_pb2.NetParameter(layer=[net.layer[3]]).SerializeToString()
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(head + tail[:-3])
    message = _raises(CaffemodelFormatError, read_weights, path)
    assert "after layer 'relu1'" in message


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_bytes_caffemodel(tmp_path, seed: int) -> None:
    path = tmp_path / "noise.caffemodel"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    assert str(path) in _raises(CaffemodelFormatError, read_weights, path)
    assert str(path) in _raises(CaffemodelFormatError, load_graph, path)


def test_prototxt_given_as_caffemodel(tiny) -> None:
    prototxt, _ = tiny
    message = _raises(CaffemodelFormatError, read_weights, prototxt)
    assert str(prototxt) in message and "looks like prototxt text" in message


def test_blob_with_wrong_value_count_is_a_format_error() -> None:
    net = caffe_pb2.NetParameter()
    layer = net.layer.add(name="conv1", type="Convolution")
    layer.blobs.add(data=[1.0, 2.0, 3.0]).shape.dim.extend([2, 2])
    message = _raises(CaffemodelFormatError, parse_weights, net.SerializeToString(), source="odd.caffemodel")
    assert "odd.caffemodel" in message and "[2, 2]" in message


# ----------------------------------------------------------------------------- prototxt and graph


def test_prototxt_syntax_error(tmp_path) -> None:
    path = tmp_path / "syntax.prototxt"
    path.write_text('name: "n"\nlayer {\n  name: "a"\n  type "ReLU"\n}\n')
    message = _raises(PrototxtSyntaxError, load_graph, path)
    assert message.startswith(f"{path}:4:8: ")


def test_bottom_no_layer_produces(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "lost" type: "ReLU" bottom: "ghost" top: "y" }\n')
    message = _raises(GraphError, load_graph, path)
    assert str(path) in message and "layer 'lost'" in message and "'ghost'" in message


def test_cycle(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "a" type: "Eltwise" bottom: "data" bottom: "yb" top: "ya" }\n'
                               'layer { name: "b" type: "ReLU" bottom: "ya" top: "yb" }\n')
    message = _raises(GraphError, load_graph, path)
    assert str(path) in message and "cycle" in message and "a, b" in message


def test_layer_reading_its_own_output_is_a_cycle(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "loop" type: "Eltwise" bottom: "data" bottom: "y" top: "y" }\n')
    message = _raises(GraphError, load_graph, path)
    assert str(path) in message and "layer 'loop'" in message and "cycle" in message


def test_two_layers_writing_the_same_top(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "first" type: "ReLU" bottom: "data" top: "y" }\n'
                               'layer { name: "second" type: "Sigmoid" bottom: "data" top: "y" }\n')
    message = _raises(GraphError, load_graph, path)
    assert str(path) in message and "layer 'second'" in message and "'first'" in message and "'y'" in message


def test_two_layers_with_one_name(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "twin" type: "ReLU" bottom: "data" top: "y" }\n'
                               'layer { name: "twin" type: "ReLU" bottom: "y" top: "z" }\n')
    message = _raises(GraphError, load_graph, path)
    assert str(path) in message and "layer 'twin'" in message


def test_unknown_layer_type_when_support_is_checked(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "odd" type: "Teleport" bottom: "data" top: "y" }\n')
    graph = load_graph(path)  # loading keeps it opaque
    message = _raises(UnsupportedLayerError, graph.check_supported)
    assert str(path) in message and "layer 'odd'" in message and "'Teleport'" in message


def test_python_layer_is_forbidden(tmp_path) -> None:
    path = write_net(tmp_path, 'layer { name: "py" type: "Python" bottom: "data" top: "y" '
                               'python_param { module: "evil" layer: "Run" } }\n')
    graph = load_graph(path)
    assert any("layer 'py'" in w and "Python" in w for w in graph.warnings)
    message = _raises(ForbiddenLayerError, graph.check_supported)
    assert str(path) in message and "layer 'py'" in message


# ----------------------------------------------------------------------------- weights


def _with_blobs(data: bytes, layer_name: str, arrays: list[np.ndarray]) -> bytes:
    net = caffe_pb2.NetParameter.FromString(data)
    for layer in net.layer:
        if layer.name == layer_name:
            del layer.blobs[:]
            for array in arrays:
                blob = layer.blobs.add(data=array.ravel().tolist())
                blob.shape.dim.extend(array.shape)
    return net.SerializeToString()


def test_weight_blob_of_the_wrong_shape(tmp_path, tiny) -> None:
    prototxt, data = tiny
    path = tmp_path / "wrong.caffemodel"
    path.write_bytes(_with_blobs(data, "conv2", [np.zeros((2, 4, 3, 3), np.float32), np.zeros(2, np.float32)]))
    message = _raises(WeightsError, load_weights, load_graph(prototxt), path)
    assert str(path) in message and "layer 'conv2'" in message
    assert "[2, 4, 3, 3]" in message and "expected [2, 4, 1, 1]" in message


def test_missing_bias_blob(tmp_path, tiny) -> None:
    prototxt, data = tiny
    path = tmp_path / "nobias.caffemodel"
    path.write_bytes(_with_blobs(data, "conv1", [np.zeros((4, 3, 3, 3), np.float32)]))
    message = _raises(WeightsError, load_weights, load_graph(prototxt), path)
    assert str(path) in message and "layer 'conv1'" in message
    assert "expected 2 blobs" in message and "[4, 3, 3, 3], [4]" in message and "has 1" in message


def test_layer_missing_from_the_caffemodel(tmp_path, tiny) -> None:
    prototxt, data = tiny
    net = caffe_pb2.NetParameter.FromString(data)
    del net.layer[3]  # conv2
    weights = parse_weights(net.SerializeToString(), source="short.caffemodel")
    message = _raises(WeightsError, match_weights, load_graph(prototxt), weights)
    assert "short.caffemodel" in message and "layer 'conv2'" in message and "[2, 4, 1, 1]" in message


# ----------------------------------------------------------------------------- malformed layers


_FOUR_D = 'layer { name: "in" type: "Input" top: "a" top: "v" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } shape { dim: 2 dim: 5 } } }\n'


@pytest.mark.parametrize(("text", "error", "layer", "fragment"), [
    ('layer { name: "in" type: "Input" top: "a" top: "b" top: "c" input_param { shape { dim: 1 } shape { dim: 2 } } }',
     GraphError, "in", "2 shapes for 3 tops"),
    (_FOUR_D + 'layer { name: "cat" type: "Concat" top: "y" }', ShapeError, "cat", "at least one bottom"),
    (_FOUR_D + 'layer { name: "sum" type: "Eltwise" top: "y" }', ShapeError, "sum", "at least one bottom"),
    (_FOUR_D + 'layer { name: "s" type: "Slice" bottom: "a" }', ShapeError, "s", "no tops"),
    (_FOUR_D + 'layer { name: "crop" type: "Crop" bottom: "a" bottom: "a" top: "y" crop_param { axis: 1 offset: 0 offset: 0 } }',
     ShapeError, "crop", "2 crop offsets for the 3 axes"),
    (_FOUR_D + 'layer { name: "crop" type: "Crop" bottom: "a" bottom: "v" top: "y" }', ShapeError, "crop", "differ in rank"),
], ids=["input-shapes", "concat-no-bottom", "eltwise-no-bottom", "slice-no-top", "crop-offsets", "crop-ranks"])
def test_malformed_layers_give_clean_errors(tmp_path, text: str, error: type[PosebridgeError], layer: str,
                                            fragment: str) -> None:
    path = tmp_path / "malformed.prototxt"
    path.write_text(text + "\n")

    def load_and_infer():
        graph = load_graph(path)
        return infer_shapes(graph)

    message = _raises(error, load_and_infer)
    assert str(path) in message and f"layer '{layer}'" in message and fragment in message
