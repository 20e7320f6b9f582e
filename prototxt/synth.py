"""Synthetic weights: every learnable blob of a net filled, written as a real binary caffemodel.

Two initialisations:

* ``caffe``: the prototxt's own fillers (constant, gaussian, xavier, msra, uniform,
  positive_unitball, bilinear), as Caffe would initialise the net.
* ``he``: variance-preserving (He et al.) so that activations stay of order 1 through deep
  nets; parity tests use it, since near-zero activations would hide errors.

The file is written by hand in the protobuf wire format (layer definitions via protobuf, float
data as packed little-endian bytes), so a 200 MB model takes a second, not a minute.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from posebridge.atomic import write_bytes_atomic
from posebridge.errors import FileAccessError, PosebridgeError
from posebridge.prototxt import caffe_pb2, wire
from posebridge.prototxt.graph import Graph, Node, Shape
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.loader import shapes_for_weights
from posebridge.prototxt.shapes import expected_blob_shapes

INITS = ("caffe", "he")


def fill(filler: caffe_pb2.FillerParameter, shape: Shape, rng: np.random.Generator) -> np.ndarray:
    """Fill a blob of ``shape`` as Caffe's filler of that type does (float32)."""
    count = int(np.prod(shape, dtype=np.int64)) if shape else 1
    num = shape[0] if shape else 1
    fan_in = count // num if num else count
    fan_out = count // shape[1] if len(shape) > 1 and shape[1] else count
    kind = filler.type
    if kind == "constant":
        data = np.full(shape, filler.value, dtype=np.float32)
    elif kind == "uniform":
        data = rng.uniform(filler.min, filler.max, size=shape)
    elif kind == "gaussian":
        data = rng.normal(filler.mean, filler.std, size=shape)
        if filler.sparse >= 0 and len(shape) >= 1:  # Caffe: kept with probability sparse / shape[0]
            keep = rng.random(size=shape) < filler.sparse / shape[0]
            data = data * keep
    elif kind == "positive_unitball":
        data = rng.uniform(0.0, 1.0, size=shape).reshape(num, -1)
        data = (data / data.sum(axis=1, keepdims=True)).reshape(shape)
    elif kind in ("xavier", "msra"):
        norm = filler.variance_norm
        n = {caffe_pb2.FillerParameter.FAN_IN: fan_in, caffe_pb2.FillerParameter.FAN_OUT: fan_out,
             caffe_pb2.FillerParameter.AVERAGE: (fan_in + fan_out) / 2.0}[norm]
        if kind == "xavier":
            scale = math.sqrt(3.0 / n)
            data = rng.uniform(-scale, scale, size=shape)
        else:
            data = rng.normal(0.0, math.sqrt(2.0 / n), size=shape)
    elif kind == "bilinear":
        if len(shape) != 4 or shape[2] != shape[3]:
            raise PosebridgeError(f"bilinear filler needs a square 4-D blob, got {list(shape)}")
        f = math.ceil(shape[3] / 2.0)
        c = (2 * f - 1 - f % 2) / (2.0 * f)
        y, x = np.meshgrid(np.arange(shape[2]), np.arange(shape[3]), indexing="ij")
        kernel = (1 - np.abs(x / f - c)) * (1 - np.abs(y / f - c))
        data = np.broadcast_to(kernel, shape)
    else:
        raise PosebridgeError(f"unknown filler type '{kind}'")
    return np.ascontiguousarray(data, dtype=np.float32)


def _he_blobs(node: Node, shapes: list[Shape], rng: np.random.Generator) -> list[np.ndarray]:
    """Variance-preserving blobs for one layer."""
    out = []
    if node.type in ("Convolution", "Deconvolution", "InnerProduct", "Embed"):
        weight = shapes[0]
        if node.type == "Deconvolution":
            p = node.layer.convolution_param
            stride = (list(p.stride) or [1])[0] if not p.HasField("stride_h") else p.stride_h
            fan_in = weight[1] * int(np.prod(weight[2:])) / max(stride, 1) ** 2
        elif node.type == "InnerProduct" and node.layer.inner_product_param.transpose:
            fan_in = weight[0]
        else:
            fan_in = int(np.prod(weight[1:])) if len(weight) > 1 else weight[0]
        out.append(rng.normal(0.0, math.sqrt(2.0 / max(fan_in, 1)), size=weight))
        out.extend(rng.normal(0.0, 0.05, size=s) for s in shapes[1:])
    elif node.type == "PReLU":
        out.append(rng.uniform(0.05, 0.3, size=shapes[0]))
    elif node.type == "BatchNorm":
        out.append(rng.normal(0.0, 0.1, size=shapes[0]))
        out.append(rng.uniform(0.5, 1.5, size=shapes[1]))
        out.append(np.ones(shapes[2]))
    elif node.type == "Scale":
        out.append(rng.uniform(0.5, 1.5, size=shapes[0]))
        out.extend(rng.normal(0.0, 0.1, size=s) for s in shapes[1:])
    else:
        out.extend(rng.normal(0.0, 0.1, size=s) for s in shapes)
    return [np.ascontiguousarray(a, dtype=np.float32) for a in out]


def _fillers(node: Node) -> list[caffe_pb2.FillerParameter]:
    layer = node.layer
    if node.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        return [p.weight_filler, p.bias_filler]
    if node.type == "InnerProduct":
        p = layer.inner_product_param
        return [p.weight_filler, p.bias_filler]
    if node.type == "Embed":
        return [layer.embed_param.weight_filler, layer.embed_param.bias_filler]
    if node.type == "PReLU":
        if layer.prelu_param.HasField("filler"):
            return [layer.prelu_param.filler]
        return [caffe_pb2.FillerParameter(type="constant", value=0.25)]
    if node.type == "Scale":
        p = layer.scale_param
        scale = p.filler if p.HasField("filler") else caffe_pb2.FillerParameter(type="constant", value=1.0)
        return [scale, p.bias_filler]
    if node.type == "Bias":
        return [layer.bias_param.filler]
    return []


def synthesize(graph: Graph, *, seed: int = 0, init: str = "he",
               input_shapes: Mapping[str, Shape] | None = None) -> dict[str, list[np.ndarray]]:
    """Blobs for every learnable layer of ``graph``, keyed by layer name (float32)."""
    if init not in INITS:
        raise PosebridgeError(f"unknown init '{init}'; choose one of {', '.join(INITS)}")
    shapes, _ = shapes_for_weights(graph, dict(input_shapes) if input_shapes else None)
    rng = np.random.default_rng(seed)
    result: dict[str, list[np.ndarray]] = {}
    for node in graph.nodes:
        entry = layer_type(node.type)
        if entry is None or not entry.blob_names:
            continue
        expected = expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms])
        if expected is None:
            raise PosebridgeError("cannot derive the shapes of this layer's blobs (an input shape is unknown)",
                                  file=graph.source, layer=node.name)
        if not expected:
            continue
        if init == "he":
            result[node.name] = _he_blobs(node, expected, rng)
        elif node.type == "BatchNorm":
            result[node.name] = [np.zeros(s, dtype=np.float32) for s in expected]
        else:
            result[node.name] = [fill(f, s, rng) for f, s in zip(_fillers(node), expected)]
    return result


def _encode_blob(array: np.ndarray) -> bytes:
    dims = b"".join(wire.encode_varint(int(d)) for d in array.shape)
    shape = wire.encode_length_delimited(1, dims)
    data = wire.encode_length_delimited(5, np.ascontiguousarray(array, dtype="<f4").tobytes())
    return wire.encode_length_delimited(7, shape) + data


def caffemodel_bytes(graph: Graph, blobs: Mapping[str, list[np.ndarray]]) -> bytes:
    """A V2 binary caffemodel: every graph layer's definition, with ``blobs`` where given."""
    parts = []
    if graph.name:
        parts.append(wire.encode_length_delimited(1, graph.name.encode("utf-8")))
    for node in sorted(graph.nodes, key=lambda n: n.index):
        definition = caffe_pb2.LayerParameter()
        definition.CopyFrom(node.layer)
        del definition.blobs[:]
        payload = definition.SerializeToString()
        payload += b"".join(wire.encode_length_delimited(7, _encode_blob(a)) for a in blobs.get(node.name, ()))
        parts.append(wire.encode_length_delimited(100, payload))
    return b"".join(parts)


def write_caffemodel(path: str | os.PathLike, graph: Graph, blobs: Mapping[str, list[np.ndarray]]) -> None:
    """Write ``blobs`` for ``graph`` as a binary caffemodel, atomically.

    An unwritable target (a folder, a missing permission) raises FileAccessError naming it.
    """
    data = caffemodel_bytes(graph, blobs)
    if os.path.isdir(path):
        raise FileAccessError("output is a folder; expected a caffemodel file path", file=os.fspath(path))
    try:
        write_bytes_atomic(path, data)
    except OSError as error:
        raise FileAccessError(f"cannot write caffemodel: {error.strerror or error}", file=os.fspath(path)) from None
