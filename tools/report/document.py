"""A :class:`NetAnalysis` as one plain, JSON-ready document: the single source of every format.

The HTML, Markdown and JSON reports all render this dict, so their tables hold the same numbers.
Shapes are lists (``None`` when unknown), receptive-field numbers ints (floats only after a
fractional deconvolution stride).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posebridge.prototxt.analysis import BlobStats, LayerAnalysis, NetAnalysis, Totals, fraction_value

DOCUMENT_FORMAT = "posebridge-report"
DOCUMENT_VERSION = 1


def totals_dict(totals: Totals) -> dict[str, int]:
    """Totals as a dict (``unknown_*`` count layers whose value is unknown, shown as ``?``)."""
    return {
        "layers": totals.layers, "params": totals.params, "macs": totals.macs,
        "activation_bytes": totals.activation_bytes, "unknown_params": totals.unknown_params,
        "unknown_macs": totals.unknown_macs, "unknown_activation": totals.unknown_activation,
    }


def blob_stats_dict(stats: BlobStats) -> dict[str, Any]:
    """One blob's statistics."""
    return {
        "blob": stats.name, "shape": list(stats.shape), "count": stats.count, "mean": stats.mean,
        "std": stats.std, "min": stats.min, "max": stats.max, "zero_fraction": stats.zero_fraction,
        "nan_count": stats.nan_count, "inf_count": stats.inf_count, "flags": list(stats.flags),
    }


def layer_dict(row: LayerAnalysis) -> dict[str, Any]:
    """One table row."""
    rf = row.receptive_field
    return {
        "index": row.index, "name": row.name, "type": row.type, "category": row.category, "group": row.group,
        "bottoms": list(row.bottoms), "tops": list(row.tops),
        "output_shapes": [None if s is None else list(s) for s in row.output_shapes],
        "params": row.params, "macs": row.macs, "activation_bytes": row.activation_bytes,
        "rf_size": None if rf is None else [fraction_value(v) for v in rf.size],
        "rf_stride": None if rf is None else [fraction_value(v) for v in rf.stride],
        "in_place": row.in_place, "folded_into": row.folded_into, "opaque": row.opaque,
        "settings": dict(row.settings), "raw_text": row.raw_text,
        "weights": None if row.weights is None else [blob_stats_dict(s) for s in row.weights],
        "flags": list(row.flags),
    }


def sections(analysis: NetAnalysis) -> list[dict[str, Any]]:
    """The table in display order: one section per group (tree order), each with its rows' indices.

    A stage's own section comes before its branches and carries the stage subtotal; ``depth`` is
    0 for top-level groups and 1 for branches. A net without OpenPose structure has one section
    with ``group`` None.
    """
    if not analysis.groups:
        return [{"group": None, "label": "All layers", "parent": None, "depth": 0,
                 "rows": [row.index for row in analysis.layers], "totals": totals_dict(analysis.totals)}]
    result = []
    for group in analysis.groups:
        result.append({
            "group": group.name, "label": group.label, "parent": group.parent,
            "depth": 0 if group.parent is None else 1,
            "rows": [row.index for row in analysis.layers if row.group == group.name],
            "totals": totals_dict(group.totals),
        })
    return result


def structure_dict(analysis: NetAnalysis) -> dict[str, Any] | None:
    """The detected OpenPose structure: features end, stages and their branches."""
    structure = analysis.structure
    if structure is None:
        return None
    graph = analysis.graph
    return {
        "features_blob": graph.caffe_blob.get(structure.features_blob, structure.features_blob),
        "features_layer": graph.producer.get(structure.features_blob),
        "heatmap_channels": structure.heatmap_channels, "paf_channels": structure.paf_channels,
        "stages": [{"index": stage.index, "input_layer": stage.input_layer,
                    "branches": [{"name": b.name, "role": b.role, "output_channels": b.output_channels,
                                  "layers": len(b.layers)} for b in stage.branches]}
                   for stage in structure.stages],
    }


def build_document(analysis: NetAnalysis) -> dict[str, Any]:
    """The report document: net summary, layers, groups with subtotals, totals and warnings."""
    graph = analysis.graph
    flagged = [{"layer": row.name, "flags": list(row.flags)} for row in analysis.layers if row.flags]
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "net": {
            "name": graph.name, "title": graph.name or Path(graph.source).name or "(unnamed net)",
            "source": graph.source, "layers": len(graph.nodes),
            "inputs": {name: list(shape) for name, shape in analysis.input_shapes.items()},
            "input_note": analysis.input_note,
            "outputs": [graph.caffe_blob.get(o, o) for o in graph.outputs],
            "weights": analysis.weights_source,
            "structure": structure_dict(analysis),
        },
        "totals": totals_dict(analysis.totals),
        "groups": [{"name": g.name, "label": g.label, "parent": g.parent, "layers": list(g.layers),
                    "totals": totals_dict(g.totals)} for g in analysis.groups],
        "sections": sections(analysis),
        "layers": [layer_dict(row) for row in analysis.layers],
        "flagged": flagged,
        "warnings": list(analysis.warnings),
    }


def table_order(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The layer table in display order, as entries of three kinds.

    ``{"kind": "group", "section": ...}`` opens a group, ``{"kind": "row", "row": index}`` is one
    layer, ``{"kind": "subtotal", "section": ...}`` closes a group with its subtotal. A stage's
    branches sit inside it, so a stage subtotal follows its branches' subtotals. A net without
    groups has only rows.
    """
    sections_list = document["sections"]
    if len(sections_list) == 1 and sections_list[0]["group"] is None:
        return [{"kind": "row", "row": i} for i in sections_list[0]["rows"]]
    children: dict[str, list[dict[str, Any]]] = {}
    for section in sections_list:
        if section["parent"] is not None:
            children.setdefault(section["parent"], []).append(section)
    entries: list[dict[str, Any]] = []

    def emit(section: dict[str, Any]) -> None:
        entries.append({"kind": "group", "section": section})
        entries.extend({"kind": "row", "row": i} for i in section["rows"])
        for child in children.get(section["group"], []):
            emit(child)
        entries.append({"kind": "subtotal", "section": section})

    for section in sections_list:
        if section["parent"] is None:
            emit(section)
    return entries
