"""The six official OpenPose nets: every layer's output shape equals OpenCV dnn's, at two sizes.

OpenCV's Caffe importer needs the convolution blobs to report shapes, so each net gets a
zero-weight caffemodel built from our own expected blob shapes (which OpenCV then checks too).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from helpers_files import (
    official_prototxt,
    official_synth_caffemodel,
    official_zero_caffemodel,
    opencv_layer_shapes,
    opencv_net,
)

from posebridge.prototxt import infer_shapes, load_graph, match_weights
from posebridge.prototxt.weights import parse_weights
from posebridge.shared_data import OFFICIAL_PROTOTXTS

SIZES = [(368, 368), (300, 457)]
CASES = [(key, size) for key in sorted(OFFICIAL_PROTOTXTS) for size in SIZES]
FINAL_OUTPUT = {"coco": (1, 57, 46, 46), "body_25": (1, 78, 46, 46)}


@lru_cache(maxsize=1)
def _opencv_net_of(key: str):
    return opencv_net(official_prototxt(key), official_zero_caffemodel(key))


@pytest.mark.parametrize("key", sorted(OFFICIAL_PROTOTXTS))
def test_official_prototxt_loads_as_a_clean_graph(key: str) -> None:
    graph = load_graph(official_prototxt(key))
    assert graph.warnings == []
    assert list(graph.inputs) == ["image"]
    assert len(graph.outputs) == 1
    graph.check_supported()
    assert all(node.known and not node.opaque for node in graph.nodes)
    # every blob version is written by exactly one layer
    tops = [top for node in graph.nodes for top in node.tops]
    assert len(tops) == len(set(tops))


@pytest.mark.parametrize(("key", "size"), CASES, ids=[f"{k}-{h}x{w}" for k, (h, w) in CASES])
def test_every_layer_shape_equals_opencv(key: str, size: tuple[int, int]) -> None:
    graph = load_graph(official_prototxt(key))
    input_shape = graph.input_shapes(size)["image"]
    assert input_shape == (1, 3, *size)
    ours = infer_shapes(graph, graph.input_shapes(size))
    theirs = opencv_layer_shapes(_opencv_net_of(key), input_shape)

    by_name = {node.name: node for node in graph.nodes}
    by_top = {node.caffe_tops[0]: node for node in graph.nodes if len(node.caffe_tops) == 1}
    compared = set()
    for cv_name, cv_shapes in theirs.items():
        # OpenCV names a layer after its top when the prototxt's top differs from the layer name at the end
        node = by_name.get(cv_name) or by_top.get(cv_name)
        assert node is not None, f"OpenCV layer '{cv_name}' has no counterpart in the graph"
        assert [ours[top] for top in node.tops] == cv_shapes, f"layer '{node.name}'"
        compared.add(node.name)
    assert compared == {node.name for node in graph.nodes if node.type != "Input"}
    if key in FINAL_OUTPUT and size == (368, 368):
        assert ours[graph.outputs[0]] == FINAL_OUTPUT[key]


@pytest.mark.parametrize("key", sorted(FINAL_OUTPUT))
def test_final_output_shape_at_368(key: str) -> None:
    graph = load_graph(official_prototxt(key))
    (output,) = graph.outputs
    assert graph.caffe_blob[output] == "net_output"
    assert infer_shapes(graph, graph.input_shapes((368, 368)))[output] == FINAL_OUTPUT[key]


def test_mpi_four_stage_net_loads_six_stage_weights() -> None:
    six = load_graph(official_prototxt("mpi"))
    four = load_graph(official_prototxt("mpi_4_stages"))
    weights = parse_weights(official_zero_caffemodel("mpi"), source="mpi_6_stages.caffemodel")

    matched = match_weights(four, weights)
    learnable = {node.name for node in four.nodes if node.type == "Convolution"}
    assert set(matched.blobs) == learnable
    extra = [node.name for node in six.nodes if node.name not in {n.name for n in four.nodes}]
    assert extra and all(("stage5" in name or "stage6" in name) for name in extra)
    # the ignored list holds exactly the six-stage layers that carry blobs and the four-stage net lacks
    assert matched.ignored == [name for name in extra if name in weights.blobs]
    assert matched.ignored and all(name in weights.blobs for name in matched.ignored)
    for name, arrays in matched.blobs.items():
        assert [a.shape for a in arrays] == [a.shape for a in weights.blobs[name]]


def test_he_weights_keep_coco_activations_of_order_one() -> None:
    net = opencv_net(official_prototxt("coco"), official_synth_caffemodel("coco", "he", 0))
    image = np.random.default_rng(1).uniform(-0.5, 0.5, size=(1, 3, 96, 128)).astype(np.float32)
    net.setInput(image)
    output = net.forward()
    assert output.shape == (1, 57, 12, 16)
    assert np.all(np.isfinite(output))
    assert 0.1 < float(output.std()) < 10.0
