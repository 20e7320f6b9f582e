"""What posebridge writes into an exported ONNX model's ``metadata_props``, and reading it back.

Keys (values are strings; those in :data:`JSON_KEYS` hold JSON):

| key                       | value                                                            |
|---------------------------|------------------------------------------------------------------|
| posebridge_version        | posebridge's version                                             |
| prototxt, prototxt_md5    | the source net's file name (or ``zoo:NAME``) and its MD5         |
| caffemodel, caffemodel_md5| the weights' file name and MD5 (absent when not given)           |
| model_family              | COCO, MPI, BODY_25, hand, face or unknown                        |
| family_evidence           | caffemodel_md5, structure or none                                |
| skeleton                  | posebridge.runtime skeleton name (absent for unknown nets)       |
| stages, stage_layout      | refinement stage count; two-branch, paf-first or cpm             |
| channels                  | JSON ``{"heatmaps": [0, 19], "pafs": [19, 57]}`` of the Caffe output |
| outputs                   | JSON list: each ONNX output's name and the channel ranges it holds |
| input                     | JSON: name, layout, channel order, normalisation, stride          |
| precision                 | fp32 or fp16                                                     |
| fp16_max_relative_error   | measured fp16 vs fp32 error (fp16 exports only)                  |
| export_check              | JSON: sizes, batch, tolerance and errors of the self-check       |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

import onnx

from posebridge.errors import ExportError, FileAccessError

VERSION = "posebridge_version"
PROTOTXT, PROTOTXT_MD5 = "prototxt", "prototxt_md5"
CAFFEMODEL, CAFFEMODEL_MD5 = "caffemodel", "caffemodel_md5"
FAMILY, FAMILY_EVIDENCE, SKELETON = "model_family", "family_evidence", "skeleton"
STAGES, STAGE_LAYOUT = "stages", "stage_layout"
CHANNELS, OUTPUTS, INPUT = "channels", "outputs", "input"
PRECISION, FP16_ERROR = "precision", "fp16_max_relative_error"
EXPORT_CHECK = "export_check"

JSON_KEYS = frozenset({CHANNELS, OUTPUTS, INPUT, EXPORT_CHECK})
INT_KEYS = frozenset({STAGES})
FLOAT_KEYS = frozenset({FP16_ERROR})


def encode(values: Mapping[str, Any]) -> dict[str, str]:
    """Metadata values as strings: JSON for :data:`JSON_KEYS`, ``repr`` for floats, str otherwise."""
    encoded = {}
    for key, value in values.items():
        if value is None:
            continue
        if key in JSON_KEYS:
            encoded[key] = json.dumps(value, sort_keys=True)
        elif isinstance(value, float):
            encoded[key] = repr(value)
        else:
            encoded[key] = str(value)
    return encoded


def set_metadata(model: onnx.ModelProto, values: Mapping[str, Any]) -> None:
    """Set (replace) ``values`` in ``model.metadata_props``; other keys are kept."""
    encoded = encode(values)
    kept = [(p.key, p.value) for p in model.metadata_props if p.key not in encoded]
    del model.metadata_props[:]
    for key, value in [*kept, *encoded.items()]:
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def decode(props: Mapping[str, str], source: str = "") -> dict[str, Any]:
    """Metadata strings back to values (JSON keys parsed, numbers converted)."""
    result: dict[str, Any] = {}
    for key, value in props.items():
        try:
            if key in JSON_KEYS:
                result[key] = json.loads(value)
            elif key in INT_KEYS:
                result[key] = int(value)
            elif key in FLOAT_KEYS:
                result[key] = float(value)
            else:
                result[key] = value
        except ValueError as error:
            raise ExportError(f"metadata '{key}' has an unreadable value {value!r}: {error}", file=source or None)
    return result


def read_onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of an ONNX file, decoded: e.g. ``{"model_family": "COCO", "skeleton": "COCO",
    "channels": {"heatmaps": [0, 19], "pafs": [19, 57]}, ...}``. The weights are not loaded
    into memory beyond what the protobuf parser needs; files from other tools give their own
    keys as strings.
    """
    try:
        model = onnx.load(os.fspath(path), load_external_data=False)
    except FileNotFoundError as error:
        raise FileAccessError("no such ONNX file", file=str(path)) from error
    except Exception as error:  # onnx raises DecodeError and others for files that are not ONNX
        raise FileAccessError(f"cannot read as an ONNX model: {error}", file=str(path)) from error
    return decode({p.key: p.value for p in model.metadata_props}, source=str(path))
