"""Test helpers for the reader: official files (or a skip), tiny nets as text, model bytes, OpenCV shapes.

* :func:`official_prototxt` / :func:`training_prototxt`: a shared OpenPose file, or ``pytest.skip``.
* :func:`net_text` / :func:`write_net`: a prototxt with one ``Input`` layer, then the given layers.
* :func:`zero_caffemodel_bytes` / :func:`synth_caffemodel_bytes`: caffemodel bytes for a graph
  (cached per official net, so each full-size model is built at most once per test session).
* :func:`opencv_net` / :func:`opencv_layer_shapes`: OpenCV dnn's own output shape of every layer.
* :func:`encode_*`: hand-written protobuf wire bytes (unpacked floats) for the weights tests.

Owned by the "reader tests" engineer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from posebridge.prototxt import load_graph
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.loader import shapes_for_weights
from posebridge.prototxt.shapes import expected_blob_shapes
from posebridge.prototxt.synth import caffemodel_bytes, synthesize
from posebridge.prototxt.wire import FIXED32, LENGTH_DELIMITED, encode_length_delimited, encode_varint
from posebridge.shared_data import OFFICIAL_PROTOTXTS, TRAINING_PROTOTXT, shared_path

Shape = tuple[int, ...]


# ----------------------------------------------------------------------------- shared files


def official_prototxt(key: str) -> Path:
    """The official OpenPose prototxt ``key`` (see OFFICIAL_PROTOTXTS) from ../shared; without it,
    the identical built-in architecture ``zoo:key`` written to a file, so a clone without ../shared
    still tests every net (tests/zoo checks that the two are equal whenever ../shared is present)."""
    path = shared_path(OFFICIAL_PROTOTXTS[key])
    if path is None:
        from posebridge import zoo

        return zoo.resolve(f"zoo:{key}")
    return path


def training_prototxt() -> Path:
    """CMU's training prototxt (a fork with CPMData), or skip the test."""
    path = shared_path(TRAINING_PROTOTXT)
    if path is None:
        pytest.skip(f"shared OpenPose file {TRAINING_PROTOTXT} is absent "
                    "(set POSEBRIDGE_SHARED or place ../shared beside the checkout)")
    return path


# ----------------------------------------------------------------------------- tiny nets


def input_text(shapes: Mapping[str, Sequence[int]], name: str = "input") -> str:
    """One ``Input`` layer whose tops are the keys of ``shapes``."""
    tops = "".join(f' top: "{top}"' for top in shapes)
    dims = " ".join("shape {" + "".join(f" dim: {int(d)}" for d in shape) + " }" for shape in shapes.values())
    return f'layer {{ name: "{name}" type: "Input"{tops} input_param {{ {dims} }} }}\n'


def net_text(layers: str, shapes: Mapping[str, Sequence[int]] | None = None, name: str = "test") -> str:
    """Prototxt text: ``name``, an Input layer for ``shapes`` (default data 1x3x8x8), then ``layers``."""
    shapes = {"data": (1, 3, 8, 8)} if shapes is None else shapes
    return f'name: "{name}"\n' + input_text(shapes) + layers


def write_net(folder: Path, layers: str, shapes: Mapping[str, Sequence[int]] | None = None,
              stem: str = "net") -> Path:
    """Write :func:`net_text` to ``folder/stem.prototxt`` and return the path."""
    path = Path(folder) / f"{stem}.prototxt"
    path.write_text(net_text(layers, shapes, name=stem), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- model bytes


def zero_blobs(graph: Graph) -> dict[str, list[np.ndarray]]:
    """Zero-filled float32 blobs of the shapes the graph's layers expect."""
    shapes, _ = shapes_for_weights(graph, None)
    blobs = {}
    for node in graph.nodes:
        expected = expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms])
        if expected:
            blobs[node.name] = [np.zeros(shape, dtype=np.float32) for shape in expected]
    return blobs


def zero_caffemodel_bytes(graph: Graph) -> bytes:
    """A caffemodel for ``graph`` with every learnable blob present and zero."""
    return caffemodel_bytes(graph, zero_blobs(graph))


@lru_cache(maxsize=2)
def official_zero_caffemodel(key: str) -> bytes:
    """Zero-weight caffemodel bytes of official net ``key`` (cached: built once per session)."""
    return zero_caffemodel_bytes(load_graph(official_prototxt(key)))


@lru_cache(maxsize=1)
def official_synth_caffemodel(key: str, init: str = "he", seed: int = 0) -> bytes:
    """Synthesised caffemodel bytes of official net ``key`` (cached: built once per session)."""
    graph = load_graph(official_prototxt(key))
    return caffemodel_bytes(graph, synthesize(graph, seed=seed, init=init))


def synth_caffemodel_bytes(graph: Graph, init: str = "he", seed: int = 0) -> bytes:
    """Caffemodel bytes with synthesised weights for a (small) graph."""
    return caffemodel_bytes(graph, synthesize(graph, seed=seed, init=init))


# ----------------------------------------------------------------------------- OpenCV dnn


def opencv_net(prototxt: Path, model: bytes):
    """``cv2.dnn.readNetFromCaffe`` on a prototxt file and caffemodel bytes (plain CPU backend)."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(np.frombuffer(Path(prototxt).read_bytes(), dtype=np.uint8),
                                   np.frombuffer(model, dtype=np.uint8))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def opencv_layer_shapes(net, input_shape: Sequence[int]) -> dict[str, list[Shape]]:
    """Every OpenCV layer's output shapes (one per top) for one input shape, keyed by layer name."""
    ids, _, outputs = net.getLayersShapes([int(d) for d in input_shape])
    by_id = {int(layer_id): [tuple(int(d) for d in shape) for shape in shapes]
             for layer_id, shapes in zip(np.asarray(ids).ravel(), outputs)}
    return {name: by_id[net.getLayerId(name)] for name in net.getLayerNames()}


# ----------------------------------------------------------------------------- wire bytes


def encode_varint_field(number: int, value: int) -> bytes:
    """A VARINT field (key, value)."""
    return encode_varint(number << 3) + encode_varint(value)


def encode_unpacked_floats(number: int, values: np.ndarray) -> bytes:
    """A repeated float field written unpacked: one FIXED32 key + value per element."""
    key = encode_varint((number << 3) | FIXED32)
    return b"".join(key + np.float32(v).astype("<f4").tobytes() for v in np.asarray(values).ravel())


def encode_message(number: int, payload: bytes) -> bytes:
    """A LENGTH_DELIMITED (sub-message) field."""
    assert LENGTH_DELIMITED == 2
    return encode_length_delimited(number, payload)
