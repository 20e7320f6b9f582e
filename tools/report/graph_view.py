"""The graph as drawn: visible nodes (in-place layers folded into their producer), labelled edges,
and the OpenPose groups as nested clusters. The browser lays this out with dagre.
"""

from __future__ import annotations

from typing import Any

from posebridge.prototxt.analysis import NetAnalysis
from posebridge.tools.report.formatting import edge_shape_text, shape_text

#: Groups never drawn as a cluster (layers outside the OpenPose structure float freely).
UNCLUSTERED_GROUPS = frozenset({"other"})


def short_label(label: str, parent_label: str | None) -> str:
    """A branch's title inside its stage's box: ``Stage 2 · L1 (PAFs)`` -> ``L1 (PAFs)``."""
    prefix = f"{parent_label} · " if parent_label else None
    return label[len(prefix):] if prefix and label.startswith(prefix) else label


def build_graph_view(analysis: NetAnalysis) -> dict[str, Any]:
    """``{"nodes": [...], "edges": [...], "clusters": [...]}`` for the report's script.

    A node: ``id`` (the layer name), ``type``, ``category``, ``cluster``, ``folded`` (the in-place
    layers drawn inside it, in order, with their types), ``shape`` (its last output's shape).
    An edge: ``source``, ``target``, ``label`` (blob shape at the analysed size, batch 1 omitted),
    ``blob`` (the Caffe blob name). A cluster: ``id``, ``label``, ``short_label`` (without its parent's), ``parent`` and its subtotals
    (``layers``, ``params``, ``macs``).
    """
    rows = {row.name: row for row in analysis.layers}
    drawn_as = {row.name: row.folded_into or row.name for row in analysis.layers}  # in-place -> host
    shape_of: dict[str, Any] = {}
    for node in analysis.graph.nodes:
        for top, shape in zip(node.tops, rows[node.name].output_shapes):
            shape_of[top] = shape
    labels = {g.name: g.label for g in analysis.groups}
    clusters = [{"id": g.name, "label": g.label, "short_label": short_label(g.label, labels.get(g.parent)),
                 "parent": g.parent, "layers": g.totals.layers, "params": g.totals.params, "macs": g.totals.macs}
                for g in analysis.groups if g.name not in UNCLUSTERED_GROUPS and g.totals.layers]
    clustered = {c["id"] for c in clusters}

    nodes: dict[str, dict[str, Any]] = {}
    for row in analysis.layers:
        if row.folded_into:
            continue
        nodes[row.name] = {
            "id": row.name, "type": row.type, "category": row.category,
            "cluster": row.group if row.group in clustered else None, "folded": [],
            "shape": shape_text(row.output_shapes[-1]) if row.output_shapes else "-", "opaque": row.opaque,
            "flagged": bool(row.flags),
        }
    for row in analysis.layers:
        if row.folded_into and row.folded_into in nodes:
            host = nodes[row.folded_into]
            host["folded"].append({"name": row.name, "type": row.type})
            host["flagged"] = host["flagged"] or bool(row.flags)

    edges: list[dict[str, str]] = []
    seen: set[tuple[str, str, str]] = set()
    for node in analysis.graph.nodes:
        target = drawn_as[node.name]
        for bottom in node.bottoms:
            producer = analysis.graph.producer.get(bottom)
            if producer is None:
                continue
            source = drawn_as[producer]
            if source == target:
                continue  # an in-place layer reading its host's blob
            label = edge_shape_text(shape_of.get(bottom))
            key = (source, target, label)
            if key in seen:
                continue
            seen.add(key)
            edges.append({"source": source, "target": target, "label": label,
                          "blob": analysis.graph.caffe_blob.get(bottom, bottom)})
    return {"nodes": list(nodes.values()), "edges": edges, "clusters": clusters}
