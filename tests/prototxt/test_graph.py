"""The graph: blob versions for in-place layers, topological order, outputs, inputs, fork layers."""

from __future__ import annotations

import re

import pytest
from helpers_files import training_prototxt, write_net

from posebridge.errors import GraphError
from posebridge.prototxt import caffe_pb2, load_graph
from posebridge.prototxt.graph import Graph

CHAIN = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "relu2" type: "ReLU" bottom: "pool1" top: "pool1" }
"""


def _layers(graph: Graph) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    return [(node.name, node.bottoms, node.tops) for node in graph.nodes]


def test_in_place_layers_get_their_own_blob_versions(tmp_path) -> None:
    graph = load_graph(write_net(tmp_path, CHAIN))
    assert _layers(graph) == [
        ("input", (), ("data",)),
        ("conv1", ("data",), ("conv1",)),
        ("bn1", ("conv1",), ("conv1@bn1",)),
        ("scale1", ("conv1@bn1",), ("conv1@scale1",)),
        ("relu1", ("conv1@scale1",), ("conv1@relu1",)),
        ("pool1", ("conv1@relu1",), ("pool1",)),
        ("relu2", ("pool1",), ("pool1@relu2",)),
    ]
    relu1 = graph.node("relu1")
    assert relu1.in_place and relu1.caffe_bottoms == ("conv1",) and relu1.caffe_tops == ("conv1",)
    assert not graph.node("conv1").in_place
    assert graph.caffe_blob["conv1@scale1"] == "conv1"
    assert graph.producer["conv1@relu1"] == "relu1" and graph.producer["conv1"] == "conv1"
    assert graph.outputs == ("pool1@relu2",)
    assert [node.name for node in graph.consumers("conv1@bn1")] == ["scale1"]
    assert [node.index for node in graph.nodes] == list(range(7))


def test_node_parameters_and_categories(tmp_path) -> None:
    graph = load_graph(write_net(tmp_path, CHAIN))
    conv = graph.node("conv1")
    assert isinstance(conv.params, caffe_pb2.ConvolutionParameter) and conv.params.num_output == 4
    assert graph.node("relu1").category == "activation" and graph.node("pool1").category == "pool"
    assert graph.node("bn1").known and not graph.node("bn1").opaque
    with pytest.raises(KeyError):
        graph.node("nope")


def test_layers_out_of_file_order_are_sorted_topologically(tmp_path) -> None:
    text = """
    layer { name: "head" type: "Concat" bottom: "a" bottom: "b" top: "out" }
    layer { name: "make_b" type: "Convolution" bottom: "a" top: "b" convolution_param { num_output: 2 kernel_size: 1 } }
    layer { name: "relu_b" type: "ReLU" bottom: "b" top: "b" }
    layer { name: "make_a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 3 kernel_size: 1 } }
    layer { name: "side" type: "ReLU" bottom: "data" top: "side" }
    """
    graph = load_graph(write_net(tmp_path, text))
    order = [node.name for node in graph.nodes]
    assert order == ["input", "make_a", "make_b", "head", "relu_b", "side"]
    for position, node in enumerate(graph.nodes):
        for bottom in node.bottoms:
            assert order.index(graph.producer[bottom]) < position, (node.name, bottom)
    # a consumer written before an in-place layer in the file reads the version before it
    assert graph.node("head").bottoms == ("a", "b")
    assert graph.node("relu_b").bottoms == ("b",) and graph.node("relu_b").tops == ("b@relu_b",)
    assert graph.node("head").index == 1 and graph.node("make_a").index == 4
    assert set(graph.outputs) == {"out", "b@relu_b", "side"}


def test_in_place_layer_before_its_producer_is_an_error(tmp_path) -> None:
    text = """
    layer { name: "relu_b" type: "ReLU" bottom: "b" top: "b" }
    layer { name: "make_b" type: "ReLU" bottom: "data" top: "b" }
    """
    path = write_net(tmp_path, text)
    with pytest.raises(GraphError) as info:
        load_graph(path)
    assert str(path) in str(info.value) and "layer 'relu_b'" in str(info.value)


def test_independent_layers_keep_file_order(tmp_path) -> None:
    text = "".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "data" top: "r{i}" }}\n' for i in (3, 1, 2))
    graph = load_graph(write_net(tmp_path, text))
    assert [node.name for node in graph.nodes] == ["input", "r3", "r1", "r2"]
    assert graph.outputs == ("r3", "r1", "r2")


def test_outputs_are_the_unconsumed_blob_versions(tmp_path) -> None:
    text = """
    layer { name: "split" type: "Slice" bottom: "data" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 1 } }
    layer { name: "relu" type: "ReLU" bottom: "s1" top: "s1" }
    layer { name: "silence" type: "Silence" bottom: "s2" }
    """
    graph = load_graph(write_net(tmp_path, text))
    assert graph.outputs == ("s1@relu",)
    assert graph.node("silence").tops == ()


_BODY = """
layer { name: "conv" type: "Convolution" bottom: "a" top: "c" convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "cat" type: "Concat" bottom: "c" bottom: "b" top: "out" }
"""
_INPUT_FORMS = {
    "input_dim": 'input: "a" input_dim: 1 input_dim: 3 input_dim: 9 input_dim: 9\n'
                 'input: "b" input_dim: 1 input_dim: 5 input_dim: 7 input_dim: 7\n',
    "input_shape": 'input: "a" input_shape { dim: 1 dim: 3 dim: 9 dim: 9 }\n'
                   'input: "b" input_shape { dim: 1 dim: 5 dim: 7 dim: 7 }\n',
    "input_layer": 'layer { name: "input" type: "Input" top: "a" top: "b" input_param { '
                   "shape { dim: 1 dim: 3 dim: 9 dim: 9 } shape { dim: 1 dim: 5 dim: 7 dim: 7 } } }\n",
}


def test_three_input_forms_give_the_same_graph(tmp_path) -> None:
    graphs = {}
    for form, header in _INPUT_FORMS.items():
        path = tmp_path / f"{form}.prototxt"
        path.write_text('name: "two"\n' + header + _BODY)
        graphs[form] = load_graph(path)
    reference = graphs["input_layer"]
    assert reference.inputs == {"a": (1, 3, 9, 9), "b": (1, 5, 7, 7)}
    assert reference.outputs == ("out",)
    for form, graph in graphs.items():
        assert graph.nodes == reference.nodes, form  # Node equality: names, types, blob versions, order
        assert graph.nodes[0].layer == reference.nodes[0].layer, form  # the same Input layer proto
        assert (graph.inputs, graph.outputs, graph.caffe_blob, graph.producer) == (
            reference.inputs, reference.outputs, reference.caffe_blob, reference.producer), form
        assert graph.warnings == [], form


def test_input_shapes_override_size_and_batch(tmp_path) -> None:
    path = tmp_path / "in.prototxt"
    path.write_text(_INPUT_FORMS["input_dim"] + _BODY)
    graph = load_graph(path)
    assert graph.input_shapes() == graph.inputs
    assert graph.input_shapes((20, 30), batch=2) == {"a": (2, 3, 20, 30), "b": (2, 5, 20, 30)}
    assert graph.inputs == {"a": (1, 3, 9, 9), "b": (1, 5, 7, 7)}  # not mutated


# ----------------------------------------------------------------------------- CMU training prototxt


def test_training_prototxt_loads_with_its_fork_layer_opaque() -> None:
    path = training_prototxt()
    text = path.read_text()
    names_in_file = re.findall(r'layer\s*\{\s*name:\s*"([^"]+)"', text)
    assert len(names_in_file) == len(re.findall(r"^layer\s*\{", text, flags=re.MULTILINE))
    graph = load_graph(path)
    assert sorted(node.name for node in graph.nodes) == sorted(names_in_file)
    assert len(graph) == len(names_in_file) > 100

    data = graph.node("data")
    assert data.type == "CPMData" and data.opaque and not data.known
    assert data.unknown_fields == ("cpm_transform_param",)
    assert "cpm_transform_param" in data.raw_text and data.raw_text.startswith("layer {")
    assert data.raw_text.rstrip().endswith("}")
    assert data.tops == ("data", "label")
    assert len(graph.warnings) == 1
    (warning,) = graph.warnings
    assert str(path) in warning and "'data'" in warning and "CPMData" in warning
    # the rest are standard layers, known and not opaque
    assert [node.name for node in graph.nodes if node.opaque] == ["data"]
    assert graph.node("conv1_1").raw_text is not None and "cpm" not in graph.node("conv1_1").raw_text


def test_training_prototxt_loads_in_both_phases() -> None:
    path = training_prototxt()
    assert len(load_graph(path, phase="TRAIN")) == len(load_graph(path, phase="TEST"))
