"""Number and shape formatting shared by the HTML and Markdown reports (jinja2 filters)."""

from __future__ import annotations

from collections.abc import Sequence

UNKNOWN = "?"
_COUNT_UNITS = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))
_BYTE_UNITS = ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB"))


def human_count(value: int | None, digits: int = 2) -> str:
    """``52311446`` -> ``52.31 M``; ``None`` -> ``?``; below 1000 the exact number."""
    if value is None:
        return UNKNOWN
    for scale, unit in _COUNT_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.{digits}f} {unit}"
    return str(value)


def human_bytes(value: int | None) -> str:
    """``258761408`` -> ``246.8 MiB``; ``None`` -> ``?``."""
    if value is None:
        return UNKNOWN
    for scale, unit in _BYTE_UNITS:
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value} B"


def exact_count(value: int | None) -> str:
    """``52311446`` -> ``52,311,446``; ``None`` -> ``?``."""
    return UNKNOWN if value is None else f"{value:,}"


def shape_text(shape: Sequence[int] | None) -> str:
    """``(1, 64, 368, 368)`` -> ``1x64x368x368``; ``None`` -> ``?``; a scalar (``()``) -> ``scalar``."""
    if shape is None:
        return UNKNOWN
    if len(shape) == 0:
        return "scalar"
    return "x".join(str(d) for d in shape)


def shapes_text(shapes: Sequence[Sequence[int] | None]) -> str:
    """Several tops' shapes, comma separated; ``-`` when the layer has no top."""
    return ", ".join(shape_text(s) for s in shapes) if shapes else "-"


def edge_shape_text(shape: Sequence[int] | None) -> str:
    """An edge label: the shape without a leading batch of 1 (``64x368x368``)."""
    if shape is None:
        return UNKNOWN
    dims = list(shape)
    if len(dims) > 1 and dims[0] == 1:
        dims = dims[1:]
    return shape_text(dims)


def pair_text(pair: Sequence[int | float] | None) -> str:
    """A receptive-field (h, w) pair: ``212`` when square, ``212x180`` when not, ``?`` unknown."""
    if pair is None:
        return UNKNOWN
    h, w = (_number(v) for v in pair)
    return h if h == w else f"{h}x{w}"


def stat_text(value: float | None) -> str:
    """A weight statistic with 4 significant digits; ``-`` when there is no finite value."""
    return "-" if value is None else f"{value:.4g}"


def percent_text(value: float | None) -> str:
    """A fraction as a percentage with one decimal."""
    return "-" if value is None else f"{100 * value:.1f}%"


def element_count(shape: Sequence[int] | None) -> int | str:
    """Number of elements of a shape (sort key); ``""`` when unknown."""
    if shape is None:
        return ""
    count = 1
    for d in shape:
        count *= int(d)
    return count


def total_text(value: int, unknown: int, kind: str = "count") -> str:
    """A sum over layers, saying how many layers could not be counted.

    ``52.31 M``; ``52.31 M + ? (1 layer unknown)``; ``? (92 layers unknown)`` when none was known.
    ``kind`` is ``count`` or ``bytes``.
    """
    text = human_bytes(value) if kind == "bytes" else human_count(value)
    if not unknown:
        return text
    layers = f"{unknown} layer{'s' if unknown != 1 else ''} unknown"
    return f"? ({layers})" if value == 0 else f"{text} + ? ({layers})"


def _number(value: int | float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.3g}"


FILTERS = {
    "count": human_count, "bytes": human_bytes, "exact": exact_count, "shape": shape_text,
    "shapes": shapes_text, "pair": pair_text, "stat": stat_text, "percent": percent_text,
    "total": total_text, "elements": element_count,
}
