"""Golden ``.npz`` files: a net's input and every layer's output, written once, compared later.

Keys (``np.savez``, read back with ``allow_pickle=False``):

* ``input:<blob>``: each net input (float32); a plain ``input`` is accepted for one-input nets;
* ``layer:<layer name>``: the first top that layer wrote (float32);
* ``meta``: optional 0-d string holding JSON (who wrote it: reference, seed, prototxt, ...).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from posebridge.atomic import write_bytes_atomic
from posebridge.converter.references.base import ReferenceOutputs
from posebridge.errors import FileAccessError, ParityError
from posebridge.prototxt.graph import Graph

INPUT_KEY = "input"
INPUT_PREFIX = "input:"
LAYER_PREFIX = "layer:"
META_KEY = "meta"
FORMAT_NAME = "posebridge-golden"
FORMAT_VERSION = 1
SKIP_INPUT = "net input: taken from the golden file"
SKIP_NOT_IN_FILE = "not in the golden file"


@dataclass
class Golden:
    """A golden file's contents: inputs by Caffe blob name, outputs by layer name, metadata."""

    inputs: dict[str, np.ndarray]
    layers: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""


def golden_bytes(inputs: Mapping[str, np.ndarray], layers: Mapping[str, np.ndarray],
                 meta: Mapping[str, Any] | None = None) -> bytes:
    """The ``.npz`` bytes (compressed) of a golden file."""
    arrays = {f"{INPUT_PREFIX}{name}": np.ascontiguousarray(a, dtype=np.float32) for name, a in inputs.items()}
    arrays.update({f"{LAYER_PREFIX}{name}": np.ascontiguousarray(a, dtype=np.float32) for name, a in layers.items()})
    full_meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, **(meta or {})}
    arrays[META_KEY] = np.array(json.dumps(full_meta, sort_keys=True))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def save_golden(path: str | os.PathLike, inputs: Mapping[str, np.ndarray], layers: Mapping[str, np.ndarray],
                meta: Mapping[str, Any] | None = None) -> Path:
    """Write a golden file atomically; returns its path."""
    write_bytes_atomic(path, golden_bytes(inputs, layers, meta))
    return Path(path)


def load_golden(path: str | os.PathLike) -> Golden:
    """Read a golden file. Raises FileAccessError (missing) or ParityError (not a golden file)."""
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise FileAccessError("golden file not found", file=source)
    inputs: dict[str, np.ndarray] = {}
    layers: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    try:
        with np.load(source, allow_pickle=False) as data:
            for key in data.files:
                if key == META_KEY:
                    meta = json.loads(str(data[key]))
                elif key == INPUT_KEY:
                    inputs[""] = np.asarray(data[key], dtype=np.float32)
                elif key.startswith(INPUT_PREFIX):
                    inputs[key[len(INPUT_PREFIX):]] = np.asarray(data[key], dtype=np.float32)
                elif key.startswith(LAYER_PREFIX):
                    layers[key[len(LAYER_PREFIX):]] = np.asarray(data[key], dtype=np.float32)
    except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise ParityError(f"not a readable golden .npz file: {error}", file=source) from None
    if not inputs:
        raise ParityError(f"golden file has no '{INPUT_KEY}' or '{INPUT_PREFIX}<blob>' array", file=source)
    if not layers:
        raise ParityError(f"golden file has no '{LAYER_PREFIX}<layer>' arrays", file=source)
    return Golden(inputs=inputs, layers=layers, meta=meta, source=source)


def bind_inputs(golden: Golden, graph: Graph) -> dict[str, np.ndarray]:
    """The golden inputs keyed by the net's input blob names (a bare ``input`` fits a one-input net)."""
    names = list(graph.inputs)
    if "" in golden.inputs:
        if len(names) != 1 or len(golden.inputs) != 1:
            raise ParityError(f"golden file has a bare '{INPUT_KEY}' array but the net has inputs {names}; "
                              f"name them '{INPUT_PREFIX}<blob>'", file=golden.source)
        return {names[0]: golden.inputs[""]}
    missing = [name for name in names if name not in golden.inputs]
    if missing:
        raise ParityError(f"golden file lacks inputs {missing} (has {sorted(golden.inputs)})", file=golden.source)
    return {name: golden.inputs[name] for name in names}


def golden_reference(golden: Golden, graph: Graph) -> ReferenceOutputs:
    """The golden layers as reference outputs for ``graph``; layers the net lacks become a note."""
    names = {node.name for node in graph.nodes}
    matched = {name: array for name, array in golden.layers.items() if name in names}
    if not matched:
        raise ParityError(f"none of the golden file's {len(golden.layers)} layers is in the net "
                          f"({graph.source})", file=golden.source)
    skipped = {}
    for node in graph.nodes:
        if node.type == "Input":
            skipped[node.name] = SKIP_INPUT
            matched.pop(node.name, None)
        elif node.name not in matched:
            skipped[node.name] = SKIP_NOT_IN_FILE
    extra = sorted(set(golden.layers) - names)
    notes = [f"golden layers not in the net (ignored): {', '.join(extra)}"] if extra else []
    written_by = golden.meta.get("reference", "unknown reference")
    label = f"golden {Path(golden.source).name} (from {written_by})"
    return ReferenceOutputs(label=label, layers=matched, skipped=skipped, notes=notes)
