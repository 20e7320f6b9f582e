"""Layer knowledge as data: categories, parameter fields and blob names per Caffe layer type.

The table lives in ``layer_types.json`` beside this module (Netron's caffe-metadata style);
this module only loads and queries it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

_TABLE_PATH = Path(__file__).with_name("layer_types.json")


@dataclass(frozen=True)
class LayerType:
    """What posebridge knows of one Caffe layer type."""

    name: str
    category: str
    param_field: str | None
    blob_names: tuple[str, ...]
    in_place: bool


@lru_cache(maxsize=1)
def _table() -> dict[str, LayerType]:
    data = json.loads(_TABLE_PATH.read_text(encoding="utf-8"))["types"]
    return {
        name: LayerType(
            name=name,
            category=entry["category"],
            param_field=entry["param"],
            blob_names=tuple(entry["blobs"]),
            in_place=bool(entry.get("in_place", False)),
        )
        for name, entry in data.items()
    }


def known_types() -> tuple[str, ...]:
    """Every layer type in the table, sorted."""
    return tuple(sorted(_table()))


def layer_type(name: str) -> LayerType | None:
    """The table entry for ``name``, or None for a type posebridge does not know."""
    return _table().get(name)


def category_of(name: str) -> str:
    """The category of a layer type; ``"opaque"`` for unknown types."""
    entry = _table().get(name)
    return entry.category if entry else "opaque"


def layer_params(layer, type_name: str):
    """The type-specific parameter message of a LayerParameter (e.g. ``convolution_param``), or None."""
    entry = _table().get(type_name)
    if entry is None or entry.param_field is None:
        return None
    return getattr(layer, entry.param_field)
