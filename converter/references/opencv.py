"""OpenCV dnn as a reference: its own Caffe importer, every layer kept visible.

Fusion and Winograd are turned off and the plain OpenCV backend runs on the CPU, so each layer
computes on its own (a convolution's output is not merged with the ReLU after it).
``net.forward(names)`` returns the first output of each named layer.

OpenCV indexes outputs by ITS layer names. Its Caffe importer (4.x) names a layer with exactly
one top that is not in place after that top, and keeps the Caffe layer name otherwise; older
versions always keep the layer name. :func:`opencv_layer_names` maps each graph layer to the
OpenCV name, checking the layer type, and leaves out layers OpenCV does not keep.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from posebridge.converter.references.base import ReferenceOutputs
from posebridge.errors import ParityError
from posebridge.prototxt.graph import Graph, Node

#: Why a graph layer has no OpenCV counterpart, by case.
SKIP_INPUT = "net input: the same array is fed to both sides"
SKIP_NO_TOP = "writes no blob"
SKIP_NOT_IN_OPENCV = "OpenCV dnn keeps no layer of this name (folded or dropped by its importer)"


def _candidates(node: Node) -> list[str]:
    """OpenCV names this layer may carry, most likely first."""
    names = []
    if len(node.caffe_tops) == 1 and not node.in_place:
        names.append(node.caffe_tops[0])
    names.append(node.name)
    names.extend(node.caffe_tops[:1])
    return list(dict.fromkeys(names))


def opencv_layer_names(graph: Graph, opencv_types: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Map graph layers to OpenCV layer names: ``(found, skipped)`` keyed by graph layer name.

    ``opencv_types`` maps every OpenCV layer name to its type. A candidate whose type equals the
    Caffe type wins; otherwise the first candidate OpenCV has; no OpenCV layer is used twice.
    """
    found: dict[str, str] = {}
    skipped: dict[str, str] = {}
    used: set[str] = set()
    for node in graph.nodes:
        if node.type == "Input":
            skipped[node.name] = SKIP_INPUT
            continue
        if not node.tops:
            skipped[node.name] = SKIP_NO_TOP
            continue
        present = [name for name in _candidates(node) if name in opencv_types and name not in used]
        same_type = [name for name in present if opencv_types[name] == node.type]
        choice = (same_type or present or [None])[0]
        if choice is None:
            skipped[node.name] = SKIP_NOT_IN_OPENCV
            continue
        found[node.name] = choice
        used.add(choice)
    return found, skipped


def _read_net(prototxt: Path, caffemodel: Path):
    import cv2

    try:
        proto_bytes = np.frombuffer(prototxt.read_bytes(), dtype=np.uint8)
        model_bytes = np.frombuffer(caffemodel.read_bytes(), dtype=np.uint8)
    except OSError as error:
        raise ParityError(f"cannot read the model for OpenCV dnn: {error}", file=str(prototxt)) from None
    try:
        net = cv2.dnn.readNetFromCaffe(proto_bytes, model_bytes)
    except cv2.error as error:
        raise ParityError(f"OpenCV dnn cannot import this net: {str(error).strip()}", file=str(prototxt)) from None
    net.enableFusion(False)
    if hasattr(net, "enableWinograd"):
        net.enableWinograd(False)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def run_opencv(graph: Graph, prototxt: str | os.PathLike, caffemodel: str | os.PathLike,
               runs: Iterable[Mapping[str, np.ndarray]]) -> Iterator[ReferenceOutputs]:
    """Run the net with OpenCV dnn once per input set (keyed by Caffe input blob name, float32).

    The net is imported once; results are yielded one run at a time (each can be large). Each result holds the first top of every graph layer OpenCV keeps,
    keyed by graph layer name. Raises :class:`ParityError` when OpenCV cannot import or run it.
    """
    import cv2

    net = _read_net(Path(prototxt), Path(caffemodel))
    opencv_types = {name: net.getLayer(net.getLayerId(name)).type for name in net.getLayerNames()}
    found, skipped = opencv_layer_names(graph, opencv_types)
    if not found:
        raise ParityError("OpenCV dnn keeps none of the net's layers; nothing to compare", file=graph.source)
    aliases = {layer: name for layer, name in found.items() if layer != name}
    notes = [f"OpenCV names {len(aliases)} layer(s) after their top blob; matched by top and type"] if aliases else []
    requested = list(found.values())
    for inputs in runs:
        try:
            for name, array in inputs.items():
                net.setInput(np.ascontiguousarray(array, dtype=np.float32), name)
            outputs = net.forward(requested)
        except cv2.error as error:
            raise ParityError(f"OpenCV dnn failed to run the net: {str(error).strip()}", file=graph.source) from None
        by_opencv_name = dict(zip(requested, outputs))
        layers = {layer: np.asarray(by_opencv_name[name], dtype=np.float32) for layer, name in found.items()}
        yield ReferenceOutputs(label=f"OpenCV {cv2.__version__} dnn", layers=layers, skipped=dict(skipped),
                               aliases=aliases, notes=notes)
