"""Render a :class:`NetAnalysis` as one self-contained HTML page, Markdown or JSON.

All three render the same document (:func:`build_document`). The HTML inlines its stylesheet,
its script, the vendored dagre layout engine and the data, so it opens from disk with no
network access.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from posebridge.errors import FileAccessError
from posebridge.prototxt.analysis import NetAnalysis
from posebridge.tools.report.document import build_document, table_order
from posebridge.tools.report.formatting import FILTERS
from posebridge.tools.report.graph_view import build_graph_view

FORMATS = ("html", "md", "json")
_HERE = Path(__file__).resolve().parent
_ASSETS = {"css": "report.css", "script": "report.js", "dagre": "vendor/dagre.min.js"}
_CATEGORIES = "categories.json"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_HERE)),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(FILTERS)
    env.filters["md"] = markdown_cell
    return env


def _asset(relative: str) -> str:
    path = _HERE / relative
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FileAccessError(f"report asset missing ({error.strerror}); reinstall posebridge",
                               file=str(path)) from None
    if "</script" in text.lower() or "<!--" in text:
        raise FileAccessError("asset contains '</script' or '<!--' and cannot be inlined", file=str(path))
    return text


def categories() -> dict[str, dict[str, str]]:
    """Category -> ``{"fill", "stroke", "label"}`` (the graph's colours)."""
    return json.loads(_asset(_CATEGORIES))["categories"]


def script_json(data: Any) -> str:
    """JSON safe inside an HTML ``<script>`` element (every ``<`` escaped as ``\\u003c``)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def markdown_cell(value: Any) -> str:
    """Text safe in a Markdown table cell (pipes escaped, newlines as spaces)."""
    return str(value).replace("|", "\\|").replace("\n", " ")


def render_json(document: dict[str, Any]) -> str:
    """The document as indented JSON (layers in topological order, groups with subtotals)."""
    return json.dumps(document, indent=2, allow_nan=False) + "\n"


def render_markdown(document: dict[str, Any]) -> str:
    """The same tables as Markdown: summary, subtotals, per-layer table, weight statistics."""
    return _environment().get_template("report.md.j2").render(doc=document, rows=document["layers"], table=table_order(document))


def render_html(document: dict[str, Any], graph_view: dict[str, Any]) -> str:
    """One self-contained HTML page: the graph (laid out in the browser by dagre) and the tables."""
    palette = categories()
    used = {n["category"] for n in graph_view["nodes"]} | {"group"}
    data = {"graph": graph_view, "layers": document["layers"], "categories": palette}
    return _environment().get_template("report.html.j2").render(
        doc=document, rows=document["layers"], table=table_order(document), palette=palette,
        legend=[(name, entry) for name, entry in palette.items() if name in used and name != "group"],
        css=_asset(_ASSETS["css"]), script=_asset(_ASSETS["script"]), dagre=_asset(_ASSETS["dagre"]),
        data_json=script_json(data), has_weights=document["net"]["weights"] is not None,
    )


def render_report(analysis: NetAnalysis, fmt: str = "html") -> str:
    """The report of ``analysis`` in ``fmt`` (one of :data:`FORMATS`)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown report format {fmt!r}; expected one of {', '.join(FORMATS)}")
    document = build_document(analysis)
    if fmt == "json":
        return render_json(document)
    if fmt == "md":
        return render_markdown(document)
    return render_html(document, build_graph_view(analysis))
