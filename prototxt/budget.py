"""Resource checks run before posebridge builds anything a model file asks for.

A model file states sizes: blob shapes, Input shapes, layer counts, text that a pure-Python
parser must walk. Each check here compares such a stated size with a limit *before* the
memory or the time is spent, and raises :class:`LimitExceededError` (or :class:`ShapeError`
for a negative dimension) naming the file, the layer and the value.

Limits come from :class:`posebridge.limits.Limits`. Three budgets are not (yet) fields of it;
they are read from the environment here and picked up from ``Limits`` as soon as it has a
field of the same name:

========================  ===============================  =========  ==========================
field                     environment variable             default    bounds
========================  ===============================  =========  ==========================
max_prototxt_fields       POSEBRIDGE_MAX_PROTOTXT_FIELDS   250 000    ``:``/``{``/``<`` marks
max_prototxt_lines        POSEBRIDGE_MAX_PROTOTXT_LINES    500 000    lines of prototxt text
max_image_pixels          POSEBRIDGE_MAX_IMAGE_PIXELS      8192**2    decoded image w*h
========================  ===============================  =========  ==========================

The official OpenPose prototxts have about 2 400 marks and 1 300 lines; text_format parses
roughly 20 000 marks a second, so the default bounds a hostile prototxt to seconds.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from posebridge.errors import CaffemodelFormatError, LimitExceededError, ShapeError
from posebridge.limits import Limits
from posebridge.prototxt import wire

#: Bytes per value of a float32 blob (Caffe's storage and posebridge's compute type).
FLOAT32_BYTES = 4
#: Top-level fields of a NetParameter that hold layers: ``layers`` (V0/V1) and ``layer`` (V2).
_BINARY_LAYER_FIELDS = (2, 100)
#: V0 nets write ``layers { layer { ... } }``: one layer can match the layer pattern twice.
_TEXT_LAYER_MATCHES_PER_LAYER = 2
_LAYER_ENTRY = re.compile(r"\blayers?\s*:?\s*[{<]")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


DEFAULT_MAX_PROTOTXT_FIELDS = _env_int("POSEBRIDGE_MAX_PROTOTXT_FIELDS", 250_000)
DEFAULT_MAX_PROTOTXT_LINES = _env_int("POSEBRIDGE_MAX_PROTOTXT_LINES", 500_000)
DEFAULT_MAX_IMAGE_PIXELS = _env_int("POSEBRIDGE_MAX_IMAGE_PIXELS", 8192 * 8192)


def limit(limits: Limits, name: str) -> int:
    """``limits.<name>``, or this module's default for the budgets Limits does not hold yet."""
    defaults = {"max_prototxt_fields": DEFAULT_MAX_PROTOTXT_FIELDS,
                "max_prototxt_lines": DEFAULT_MAX_PROTOTXT_LINES,
                "max_image_pixels": DEFAULT_MAX_IMAGE_PIXELS}
    value = getattr(limits, name, None)
    return int(value) if value is not None else defaults[name]


def shape_elements(shape: Sequence[int]) -> int:
    """Number of values in a blob of ``shape`` (exact: Python integers do not overflow)."""
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def _check_dims(shape: Sequence[int], what: str, file: str | None, layer: str | None, *,
                allow_empty: bool = True) -> None:
    if any(int(d) < 0 for d in shape):
        raise ShapeError(f"{what} has a negative dimension: {list(shape)}", file=file, layer=layer)
    if not allow_empty and any(int(d) == 0 for d in shape):
        raise ShapeError(f"{what} is empty: shape {list(shape)} has a zero dimension", file=file, layer=layer)


def check_activation_shape(shape: Sequence[int], limits: Limits, *, what: str = "blob",
                           file: str | None = None, layer: str | None = None) -> int:
    """Element count of an activation (an Input or a layer output); raises when over budget.

    The budget is ``limits.max_activation_bytes`` for one float32 blob. A zero dimension (an
    empty blob, e.g. from ``num_output: 0``) is a ShapeError: no layer can compute with it.
    """
    _check_dims(shape, what, file, layer, allow_empty=False)
    count = shape_elements(shape)
    if count * FLOAT32_BYTES > limits.max_activation_bytes:
        raise LimitExceededError(
            f"{what} of shape {list(shape)} holds {count} values ({count * FLOAT32_BYTES} bytes as float32), "
            f"over the limit of {limits.max_activation_bytes} bytes per blob", file=file, layer=layer)
    return count


def check_weight_shape(shape: Sequence[int], limits: Limits, *, what: str = "weight blob",
                       file: str | None = None, layer: str | None = None) -> int:
    """Element count of a learnable blob the net's parameters imply; raises when over budget."""
    _check_dims(shape, what, file, layer)
    count = shape_elements(shape)
    if shape_elements([max(int(d), 1) for d in shape]) > limits.max_blob_elements:  # a 0 cannot hide the rest
        raise LimitExceededError(
            f"{what} of shape {list(shape)} holds {count} values, over the limit of "
            f"{limits.max_blob_elements} values per blob", file=file, layer=layer)
    return count


def check_prototxt_text(text: str, limits: Limits, *, source: str = "<text>") -> None:
    """Bound the work of parsing ``text``: layer entries, field marks and lines, counted in C.

    The counts are upper bounds (marks in comments and strings count too), taken before
    text_format walks the text in Python.
    """
    fields = text.count(":") + text.count("{") + text.count("<")
    max_fields = limit(limits, "max_prototxt_fields")
    if fields > max_fields:
        raise LimitExceededError(f"prototxt has {fields} field marks (':', '{{', '<'), over the limit of "
                                 f"{max_fields}", file=source)
    lines = text.count("\n") + 1
    max_lines = limit(limits, "max_prototxt_lines")
    if lines > max_lines:
        raise LimitExceededError(f"prototxt has {lines} lines, over the limit of {max_lines}", file=source)
    entries = sum(1 for _ in _LAYER_ENTRY.finditer(text))
    if entries > _TEXT_LAYER_MATCHES_PER_LAYER * limits.max_layers:
        raise LimitExceededError(f"prototxt has {entries} layer blocks, more than a net within the limit of "
                                 f"{limits.max_layers} layers can have", file=source)


def check_layer_count(count: int, limits: Limits, *, source: str = "") -> None:
    """Raise when a net has more layers than ``limits.max_layers``."""
    if count > limits.max_layers:
        raise LimitExceededError(f"the net has {count} layers, over the limit of {limits.max_layers}",
                                 file=source or None)


def check_binary_layer_count(data: bytes, limits: Limits, *, source: str = "") -> int:
    """Count the layers of a binary NetParameter by walking its top level, before protobuf parses it.

    Stops as soon as the count passes ``limits.max_layers`` (an empty layer costs 3 bytes, so a
    4 GB file could otherwise ask protobuf for a billion messages). Malformed bytes raise
    :class:`CaffemodelFormatError`.
    """
    buf = memoryview(data)
    count = 0
    try:
        for number, wire_type, _, _ in wire.iter_fields(buf, 0, len(buf)):
            if number in _BINARY_LAYER_FIELDS and wire_type == wire.LENGTH_DELIMITED:
                count += 1
                if count > limits.max_layers:
                    raise LimitExceededError(f"the net has more than {limits.max_layers} layers",
                                             file=source or None)
    except wire.WireError as error:
        raise CaffemodelFormatError(f"not a valid binary net (truncated or corrupt): {error}",
                                    file=source or None) from None
    return count
