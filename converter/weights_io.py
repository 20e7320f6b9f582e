"""Converted weights on disk as safetensors (no pickle anywhere), and back into a CaffeNet.

The file holds the module's state_dict (names like ``features.conv1_1.weight``) and, as
safetensors metadata, the posebridge version and the Caffe net's name, so a file is never
loaded onto the wrong architecture silently: load_state_dict is strict and names the
mismatching tensors.
"""

from __future__ import annotations

import os

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from posebridge import __version__
from posebridge.atomic import atomic_path
from posebridge.converter.network import CaffeNet
from posebridge.errors import FileAccessError, WeightsError
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.loader import shapes_for_weights
from posebridge.prototxt.shapes import expected_blob_shapes


def save_safetensors(model: CaffeNet, path: str | os.PathLike, *, metadata: dict[str, str] | None = None) -> None:
    """Write ``model``'s state_dict as a safetensors file, atomically."""
    tensors = {name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
    meta = {"format": "pt", "producer": f"posebridge {__version__}", "net": model.graph_name or ""}
    meta.update(metadata or {})
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def placeholder_blobs(graph: Graph) -> dict[str, list[np.ndarray]]:
    """Zero blobs of the shapes the graph implies (a skeleton to load a state_dict into)."""
    shapes, _ = shapes_for_weights(graph, None)
    blobs = {}
    for node in graph.nodes:
        entry = layer_type(node.type)
        if entry is None or not entry.blob_names:
            continue
        expected = expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms])
        if expected:
            blobs[node.name] = [np.zeros(s, dtype=np.float32) for s in expected]
    return blobs


def load_safetensors(graph: Graph, path: str | os.PathLike) -> CaffeNet:
    """A CaffeNet for ``graph`` with the weights of a safetensors file written by save_safetensors."""
    source = os.fspath(path)
    if not os.path.exists(source):
        raise FileAccessError("safetensors file not found", file=source)
    try:
        tensors = load_file(source)
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightsError(f"not a readable safetensors file: {error}", file=source) from None
    model = CaffeNet(graph, placeholder_blobs(graph))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise WeightsError(f"weights do not fit the net '{graph.source}': missing {missing[:5]}"
                           f"{' ...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}"
                           f"{' ...' if len(unexpected) > 5 else ''}", file=source)
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise WeightsError(f"tensor '{name}' has shape {list(tensor.shape)}, the net expects "
                               f"{list(expected[name].shape)}", file=source)
    with torch.no_grad():
        model.load_state_dict(tensors, strict=True)
    return model
