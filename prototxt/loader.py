"""The public entry points of the reader: a prototxt (or a caffemodel's net) to a Graph, and
caffemodel weights matched onto that graph by layer name, as Caffe's CopyTrainedLayersFrom does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import DecodeError

from posebridge.errors import (CaffemodelFormatError, GraphError, LimitExceededError, PrototxtSyntaxError, ShapeError,
                               WeightsError)
from posebridge.limits import DEFAULT_LIMITS, Limits
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.budget import check_activation_shape, check_binary_layer_count, check_layer_count
from posebridge.prototxt.files import read_file_bytes
from posebridge.prototxt.graph import Graph, Shape, build_graph
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.shapes import expected_blob_shapes, infer_shapes
from posebridge.prototxt.text_reader import ParsedPrototxt, parse_prototxt_text
from posebridge.prototxt.upgrade import filter_phase, layer_included, make_state, upgrade_net
from posebridge.prototxt.weights import Weights, read_weights

#: Prefix naming a built-in architecture instead of a file (``zoo:coco``).
ZOO_PREFIX = "zoo:"

#: Input size used to derive weight shapes when the prototxt's placeholder (1x1) is too small.
PROBE_SIZE = (368, 368)


def prototxt_file(path: str | os.PathLike) -> Path:
    """A real file for a prototxt argument: ``zoo:NAME`` is written out (cached) by posebridge.zoo.

    For tools that hand the file to another reader (OpenCV dnn, pycaffe).
    """
    source = os.fspath(path)
    if source.startswith(ZOO_PREFIX):
        from posebridge import zoo

        return Path(zoo.resolve(source))
    return Path(source)


def _included(layer, state: caffe_pb2.NetState) -> bool:
    try:
        return layer_included(layer, state)
    except GraphError:
        return True  # filter_phase reports the bad rule with its context


def _raw_texts(parsed: ParsedPrototxt, state: caffe_pb2.NetState) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Raw text and unknown fields of the layers in ``state``, keyed by layer name.

    Only layers the phase rules keep are recorded: train/test prototxts often give one name to
    a TRAIN and a TEST layer, and each graph must carry its own layer's text.
    """
    texts: dict[str, str] = {}
    unknown: dict[str, list[str]] = {}
    entries = {"layer": [e for e in parsed.layer_texts if e.field == "layer"],
               "layers": [e for e in parsed.layer_texts if e.field == "layers"]}
    for layer, entry in zip(parsed.net.layer, entries["layer"]):
        if not _included(layer, state):
            continue
        texts[layer.name] = entry.text
        if entry.unknown_fields:
            unknown[layer.name] = entry.unknown_fields
    for layer, entry in zip(parsed.net.layers, entries["layers"]):
        if not _included(layer, state):
            continue
        name = layer.name or layer.layer.name
        texts[name] = entry.text
        if entry.unknown_fields:
            unknown[name] = entry.unknown_fields
    return texts, unknown


def graph_from_net(
    net: caffe_pb2.NetParameter,
    *,
    source: str = "",
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    raw_texts: dict[str, str] | None = None,
    unknown_fields: dict[str, list[str]] | None = None,
    warnings: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Graph:
    """Upgrade (V0/V1, legacy inputs), filter by phase and build the graph of a NetParameter.

    The layer count and the declared input shapes are checked against ``limits``.
    """
    check_layer_count(len(net.layer) + len(net.layers), limits, source=source)
    upgraded, notes = upgrade_net(net, source=source)
    filtered, removed = filter_phase(upgraded, phase=phase, level=level, stages=stages, source=source)
    if len(filtered.layer) > limits.max_layers:
        raise LimitExceededError(f"the net has {len(filtered.layer)} layers, over the limit of {limits.max_layers}",
                                 file=source)
    all_warnings = list(warnings)
    unknown_fields = unknown_fields or {}
    for layer in filtered.layer:
        reasons = []
        if layer.type == "Python":
            reasons.append("Python layer, never executed by posebridge")
        elif layer_type(layer.type) is None:
            reasons.append(f"unknown type '{layer.type}'")
        if layer.name in unknown_fields:
            reasons.append(f"fields outside the Caffe schema ({', '.join(unknown_fields[layer.name])})")
        if reasons:
            all_warnings.append(f"{source}: layer '{layer.name}': {'; '.join(reasons)}: kept as an opaque layer "
                                f"with its raw text")
    graph = build_graph(filtered, source=source, raw_texts=raw_texts, unknown_fields=unknown_fields,
                        warnings=all_warnings, removed_layers=removed, upgrade_notes=notes)
    for name, shape in graph.inputs.items():
        check_activation_shape(shape, limits, what=f"input '{name}'", file=source or None)
    return graph


def _looks_binary(data: bytes) -> bool:
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start < 4096 - 4  # a cut multi-byte character at the end is still text
    return b"\x00" in data[:4096]


def load_graph(
    path: str | os.PathLike,
    *,
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Graph:
    """Read a prototxt (or the net stored in a binary caffemodel) into a :class:`Graph`.

    ``zoo:NAME`` (e.g. ``zoo:coco``) names a built-in OpenPose architecture instead of a file.

    The net is upgraded to V2 as Caffe's upgrade_proto does and filtered for ``phase``
    (TEST by default), ``level`` and ``stages`` as Caffe's Net::FilterNet does.
    """
    source = os.fspath(path)
    if source.startswith(ZOO_PREFIX):  # a built-in architecture: posebridge.zoo
        from posebridge import zoo

        return graph_from_net(zoo.build(source), source=source, phase=phase, level=level, stages=stages,
                              limits=limits)
    data = read_file_bytes(path, what="model file", max_bytes=max(limits.max_prototxt_bytes,
                                                                  limits.max_caffemodel_bytes))
    return graph_from_bytes(data, source=source, phase=phase, level=level, stages=stages, limits=limits)


def graph_from_bytes(
    data: bytes,
    *,
    source: str = "<bytes>",
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    limits: Limits = DEFAULT_LIMITS,
) -> Graph:
    """:func:`load_graph` on the bytes of a model file: prototxt text or a binary net."""
    if _looks_binary(data):
        check_binary_layer_count(data, limits, source=source)
        net = caffe_pb2.NetParameter()
        try:
            net.ParseFromString(data)
        except (DecodeError, RecursionError, ValueError) as error:
            raise CaffemodelFormatError(f"not a valid binary net (truncated or corrupt): {error}",
                                        file=source) from None
        if not net.layer and not net.layers:
            raise CaffemodelFormatError("no layers found: neither prototxt text nor a caffemodel", file=source)
        return graph_from_net(net, source=source, phase=phase, level=level, stages=stages, limits=limits)
    if len(data) > limits.max_prototxt_bytes:
        raise LimitExceededError(f"prototxt is {len(data)} bytes, over the limit of {limits.max_prototxt_bytes}",
                                 file=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PrototxtSyntaxError(f"not UTF-8 text (byte {error.start}) and not a binary net", file=source) from None
    parsed = parse_prototxt_text(text, source=source, limits=limits)
    texts, unknown = _raw_texts(parsed, make_state(phase, level, stages))
    return graph_from_net(parsed.net, source=source, phase=phase, level=level, stages=stages,
                          raw_texts=texts, unknown_fields=unknown, warnings=parsed.warnings, limits=limits)


@dataclass
class MatchedWeights:
    """The caffemodel's blobs for each graph layer that has learnable blobs.

    ``ignored`` lists caffemodel layers that the net lacks (training layers, extra stages).
    """

    blobs: dict[str, list[np.ndarray]]
    ignored: list[str] = field(default_factory=list)
    source: str = ""


def shapes_for_weights(graph: Graph, input_shapes: dict[str, Shape] | None) -> tuple[dict, bool]:
    """Blob shapes to derive weight shapes from; the bool says whether spatial sizes are real."""
    if input_shapes is not None:
        return infer_shapes(graph, input_shapes), True
    try:
        return infer_shapes(graph), True
    except ShapeError:
        return infer_shapes(graph, graph.input_shapes(PROBE_SIZE)), False


def _fit(array: np.ndarray, expected: Shape, legacy: bool) -> np.ndarray | None:
    if tuple(array.shape) == tuple(expected):
        return array
    if legacy and array.size == int(np.prod(expected, dtype=np.int64)):
        strip = lambda s: tuple(s)[next((i for i, d in enumerate(s) if d != 1), len(s)):]  # noqa: E731
        if strip(array.shape) == strip(expected):
            return array.reshape(expected)
    return None


def match_weights(graph: Graph, weights: Weights, *, input_shapes: dict[str, Shape] | None = None) -> MatchedWeights:
    """Match caffemodel blobs to the graph's layers by name; check count and shape of each.

    Raises :class:`WeightsError` naming the layer, the expected and the found shape when a
    learnable layer's blobs are missing, too few/many, or of the wrong shape.
    """
    shapes, spatial_known = shapes_for_weights(graph, input_shapes)
    matched: dict[str, list[np.ndarray]] = {}
    names = {node.name for node in graph.nodes}
    for node in graph.nodes:
        entry = layer_type(node.type)
        if entry is None or not entry.blob_names:
            continue
        expected = expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms])
        if expected is not None and not expected:
            continue
        found = weights.blobs.get(node.name)
        if found is None:
            raise WeightsError(
                f"no weights in the caffemodel for this {node.type} layer (expected blobs of shapes "
                f"{[list(s) for s in expected] if expected else 'unknown'})",
                file=weights.source, layer=node.name)
        if expected is None:
            matched[node.name] = list(found)
            continue
        if len(found) != len(expected):
            raise WeightsError(
                f"expected {len(expected)} blobs of shapes {[list(s) for s in expected]}, the caffemodel has "
                f"{len(found)} of shapes {[list(a.shape) for a in found]}", file=weights.source, layer=node.name)
        legacy = weights.legacy_shaped.get(node.name, [False] * len(found))
        fitted = []
        for i, (array, shape) in enumerate(zip(found, expected)):
            if node.type == "InnerProduct" and i == 0 and not spatial_known:
                out_axis = 1 if node.layer.inner_product_param.transpose else 0
                if array.ndim >= 2 and array.shape[-2 + out_axis] == shape[out_axis]:
                    shape = tuple(array.shape[-2:])
            result = _fit(array, shape, legacy[i] if i < len(legacy) else False)
            if result is None:
                blob_name = entry.blob_names[i] if i < len(entry.blob_names) else f"blob {i}"
                raise WeightsError(
                    f"{blob_name} blob has shape {list(array.shape)}, expected {list(shape)}",
                    file=weights.source, layer=node.name)
            fitted.append(result)
        matched[node.name] = fitted
    ignored = [name for name in weights.blobs if name not in names]
    return MatchedWeights(blobs=matched, ignored=ignored, source=weights.source)


def load_weights(graph: Graph, caffemodel: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> MatchedWeights:
    """Read a caffemodel and match its blobs onto ``graph``.

    When the file is smaller than the weights the net implies, a failure to read or match it
    says so: the file looks truncated (see :mod:`posebridge.prototxt.integrity`).
    """
    from posebridge.prototxt.integrity import caffemodel_truncation

    try:
        return match_weights(graph, read_weights(caffemodel, limits=limits))
    except (CaffemodelFormatError, WeightsError) as error:
        hint = caffemodel_truncation(graph, caffemodel)
        if hint is None:
            raise
        raise type(error)(f"{error.detail}; {hint}", file=error.file, layer=error.layer) from None
