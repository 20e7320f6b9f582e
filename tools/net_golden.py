"""Golden files that carry their own net: posebridge's golden ``.npz`` plus the prototxt and weights.

A superset of :mod:`posebridge.converter.references.golden` (``load_golden`` and ``posebridge
parity --reference FILE.npz`` read these files unchanged; they ignore the extra keys):

* ``input:<blob>``: each net input (float32), as in the base format;
* ``layer:<layer>``: the first top that layer wrote (float32), as in the base format; for a layer
  that rewrites its bottom in place, the blob right after that layer ran;
* ``meta``: 0-d JSON string, as in the base format (``format``/``version`` of the base format,
  plus ``reference``, ``seed``, ``net``, ``tops`` = {layer: [Caffe top names]}, ...);
* extra ``prototxt``: 0-d string, the complete prototxt text the reference ran (Input layer included);
* extra ``top:<layer>:<i>``: top ``i >= 1`` of a layer with several tops (Slice, Split, ...);
* extra ``weight:<layer>:<i>``: learnable blob ``i`` of a layer, float32 in Caffe's shape;
* extra ``caffemodel`` (optional): uint8 array, the binary caffemodel the reference itself wrote
  with these weights (pycaffe's ``Net.save``), so readers can be tested on Caffe's own bytes.

Layer names may contain ``:``; the index is what follows the LAST ``:``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posebridge.atomic import write_bytes_atomic
from posebridge.converter.references.golden import (FORMAT_NAME, FORMAT_VERSION, INPUT_PREFIX, LAYER_PREFIX,
                                                    META_KEY, load_golden)
from posebridge.errors import ParityError

PROTOTXT_KEY = "prototxt"
CAFFEMODEL_KEY = "caffemodel"
TOP_PREFIX = "top:"
WEIGHT_PREFIX = "weight:"


@dataclass
class NetGolden:
    """A golden net: its prototxt text, inputs by blob name, weights and every top by layer name."""

    prototxt: str
    inputs: dict[str, np.ndarray]
    weights: dict[str, list[np.ndarray]]
    tops: dict[str, list[np.ndarray]]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    caffemodel: bytes | None = None

    @property
    def name(self) -> str:
        return str(self.meta.get("net", Path(self.source).stem))


def _f32(array: np.ndarray) -> np.ndarray:
    """float32, C order, rank kept (np.ascontiguousarray would turn a 0-d blob into shape (1,))."""
    return np.array(array, dtype=np.float32, order="C")


def net_golden_bytes(prototxt: str, inputs: Mapping[str, np.ndarray], weights: Mapping[str, Sequence[np.ndarray]],
                     tops: Mapping[str, Sequence[np.ndarray]], meta: Mapping[str, Any] | None = None,
                     caffemodel: bytes | None = None) -> bytes:
    """The compressed ``.npz`` bytes of a golden net (``tops[layer]`` in the layer's top order)."""
    arrays: dict[str, np.ndarray] = {f"{INPUT_PREFIX}{name}": _f32(a) for name, a in inputs.items()}
    for layer, values in tops.items():
        for index, value in enumerate(values):
            key = f"{LAYER_PREFIX}{layer}" if index == 0 else f"{TOP_PREFIX}{layer}:{index}"
            arrays[key] = _f32(value)
    for layer, blobs in weights.items():
        for index, blob in enumerate(blobs):
            arrays[f"{WEIGHT_PREFIX}{layer}:{index}"] = _f32(blob)
    full_meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **(meta or {})}
    arrays[META_KEY] = np.array(json.dumps(full_meta, sort_keys=True))
    arrays[PROTOTXT_KEY] = np.array(prototxt)
    if caffemodel is not None:
        arrays[CAFFEMODEL_KEY] = np.frombuffer(caffemodel, dtype=np.uint8)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_net_golden(path: str | os.PathLike, prototxt: str, inputs: Mapping[str, np.ndarray],
                    weights: Mapping[str, Sequence[np.ndarray]], tops: Mapping[str, Sequence[np.ndarray]],
                    meta: Mapping[str, Any] | None = None, caffemodel: bytes | None = None) -> Path:
    """Write a golden net atomically; returns its path."""
    write_bytes_atomic(path, net_golden_bytes(prototxt, inputs, weights, tops, meta, caffemodel))
    return Path(path)


def _indexed(key: str, prefix: str, source: str) -> tuple[str, int]:
    layer, _, index = key[len(prefix):].rpartition(":")
    if not layer or not index.isdigit():
        raise ParityError(f"golden key '{key}' is not '{prefix}<layer>:<index>'", file=source)
    return layer, int(index)


def _ordered(parts: dict[str, dict[int, np.ndarray]], what: str, source: str) -> dict[str, list[np.ndarray]]:
    result = {}
    for layer, by_index in parts.items():
        if sorted(by_index) != list(range(len(by_index))):
            raise ParityError(f"golden {what} of layer '{layer}' have indices {sorted(by_index)}, not 0..n-1",
                              file=source)
        result[layer] = [by_index[i] for i in range(len(by_index))]
    return result


def load_net_golden(path: str | os.PathLike) -> NetGolden:
    """Read a golden net. Raises FileAccessError (missing) or ParityError (not a golden net)."""
    base = load_golden(path)  # validates the base format and reads inputs, first tops and meta
    source = base.source
    weights: dict[str, dict[int, np.ndarray]] = {}
    tops: dict[str, dict[int, np.ndarray]] = {name: {0: value} for name, value in base.layers.items()}
    with np.load(source, allow_pickle=False) as data:
        if PROTOTXT_KEY not in data.files:
            raise ParityError(f"golden file has no '{PROTOTXT_KEY}' text: not a golden net", file=source)
        prototxt = str(data[PROTOTXT_KEY])
        caffemodel = data[CAFFEMODEL_KEY].astype(np.uint8).tobytes() if CAFFEMODEL_KEY in data.files else None
        for key in data.files:
            if key.startswith(WEIGHT_PREFIX):
                layer, index = _indexed(key, WEIGHT_PREFIX, source)
                weights.setdefault(layer, {})[index] = np.asarray(data[key], dtype=np.float32)
            elif key.startswith(TOP_PREFIX):
                layer, index = _indexed(key, TOP_PREFIX, source)
                if index == 0:
                    raise ParityError(f"golden key '{key}': top 0 is stored as '{LAYER_PREFIX}{layer}'", file=source)
                tops.setdefault(layer, {})[index] = np.asarray(data[key], dtype=np.float32)
    return NetGolden(prototxt=prototxt, inputs=base.inputs, weights=_ordered(weights, "weights", source),
                     tops=_ordered(tops, "tops", source), meta=base.meta, source=source, caffemodel=caffemodel)
