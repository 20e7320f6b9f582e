"""The OpenPose structure of a graph, found from its shape rather than from layer names.

OpenPose nets are a feature extractor F followed by refinement stages. Every stage after the
first starts with a Concat that takes F (and the previous stage's outputs); so F is the blob
that the most Concat layers read. Within a stage, each connected chain of layers is a branch;
a branch's role (PAF or heatmap) follows from its output channel count, compared with the
net's final Concat, which puts heatmaps first and PAFs second. COCO and MPI have two branches
per stage (L1 = PAFs, L2 = heatmaps); BODY_25 has PAF-only stages then heatmap-only stages.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from posebridge.errors import ShapeError
from posebridge.prototxt.graph import Graph, Node
from posebridge.prototxt.shapes import infer_shapes

PROBE_SIZE = (368, 368)
BRANCH_NAMES = {"pafs": "L1", "heatmaps": "L2"}


@dataclass(frozen=True)
class Branch:
    """One branch of a stage: its layers (topological order), role and output channels."""

    name: str  # "L1" (PAFs), "L2" (heatmaps), or "B<k>" when the role is unknown
    role: str  # "pafs", "heatmaps" or "unknown"
    layers: tuple[str, ...]
    output_channels: int | None


@dataclass(frozen=True)
class Stage:
    """A refinement stage: the Concat that feeds it (None for stage 1) and its branches."""

    index: int  # 1-based
    input_layer: str | None
    branches: tuple[Branch, ...]


@dataclass(frozen=True)
class OpenPoseStructure:
    """Features F, stages 1..T, and the layers after the last stage (the output Concat)."""

    features_blob: str
    features: tuple[str, ...]
    stages: tuple[Stage, ...]
    output: tuple[str, ...]
    heatmap_channels: int | None
    paf_channels: int | None

    def groups(self) -> dict[str, str]:
        """Layer name -> group name (``features``, ``stage2``, ``stage2_L1``, ``output``)."""
        result = {name: "features" for name in self.features}
        for stage in self.stages:
            if stage.input_layer:
                result[stage.input_layer] = f"stage{stage.index}"
            for branch in stage.branches:
                for name in branch.layers:
                    result[name] = f"stage{stage.index}_{branch.name}"
        result.update({name: "output" for name in self.output})
        return result


def _ancestors(graph: Graph, blob: str) -> set[str]:
    by_top = {top: node for node in graph.nodes for top in node.tops}
    seen: set[str] = set()
    stack = [blob]
    while stack:
        node = by_top.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(node.bottoms)
    return seen


def _components(nodes: list[Node], exclude_blobs: set[str]) -> list[list[Node]]:
    """Connected components of ``nodes`` linked by shared blobs (ignoring ``exclude_blobs``)."""
    parent = list(range(len(nodes)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, node in enumerate(nodes):
        for blob in (*node.bottoms, *node.tops):
            if blob in exclude_blobs:
                continue
            if blob in owner:
                parent[find(i)] = find(owner[blob])
            else:
                owner[blob] = i
    groups: dict[int, list[Node]] = {}
    for i, node in enumerate(nodes):
        groups.setdefault(find(i), []).append(node)
    return list(groups.values())


def detect_structure(graph: Graph) -> OpenPoseStructure | None:
    """The OpenPose structure of ``graph``, or None when the graph does not have that shape."""
    concats = [node for node in graph.nodes if node.type == "Concat"]
    counts = Counter(b for node in concats for b in node.bottoms)
    if not counts:
        return None
    most = max(counts.values())
    candidates = [blob for blob, n in counts.items() if n == most]
    features_blob = max(candidates, key=lambda blob: _feeds_count(graph, blob, concats))
    if features_blob in graph.inputs:
        return None
    try:
        shapes = infer_shapes(graph, graph.input_shapes(PROBE_SIZE))
    except ShapeError:
        shapes = {}

    features = _ancestors(graph, features_blob)
    stage_inputs = [node for node in concats if features_blob in node.bottoms]
    order = {node.name: i for i, node in enumerate(graph.nodes)}
    after = [node for node in graph.nodes if node.name not in features]

    # The output: the final Concat that joins the last stages' maps, and anything after it.
    by_top = {top: node for node in graph.nodes for top in node.tops}
    final = by_top.get(graph.outputs[0]) if graph.outputs else None
    output_nodes: list[Node] = []
    if final is not None and final.type == "Concat" and final not in stage_inputs:
        output_names = _descendants(graph, final)
        output_nodes = [n for n in graph.nodes if n.name in output_names]
    heat_c = paf_c = None
    if final is not None and final.type == "Concat" and len(final.bottoms) == 2:
        heat_c, paf_c = (_channels(shapes, b) for b in final.bottoms)
    elif final is not None and graph.outputs:
        heat_c = _channels(shapes, graph.outputs[0])

    boundaries = [None, *stage_inputs]
    stages = []
    output_names = {n.name for n in output_nodes}
    body = [n for n in after if n.name not in output_names]
    for index, start in enumerate(boundaries, start=1):
        begin = -1 if start is None else order[start.name]
        end = order[boundaries[index].name] if index < len(boundaries) else len(graph.nodes)
        members = [n for n in body if begin < order[n.name] < end and (start is None or n is not start)]
        if not members:
            continue
        exclude = {features_blob} | (set(start.tops) if start is not None else set())
        branches = []
        for k, component in enumerate(_components(members, exclude), start=1):
            out = _branch_output(component)
            channels = _channels(shapes, out) if out else None
            role = "unknown"
            if channels is not None and channels == heat_c and heat_c != paf_c:
                role = "heatmaps"
            elif channels is not None and channels == paf_c and heat_c != paf_c:
                role = "pafs"
            branches.append(Branch(name=BRANCH_NAMES.get(role, f"B{k}"), role=role,
                                   layers=tuple(n.name for n in component), output_channels=channels))
        branches.sort(key=lambda b: b.name)
        stages.append(Stage(index=len(stages) + 1, input_layer=start.name if start is not None else None,
                            branches=tuple(branches)))
    if len(stages) < 2:
        return None
    return OpenPoseStructure(
        features_blob=features_blob,
        features=tuple(n.name for n in graph.nodes if n.name in features),
        stages=tuple(stages), output=tuple(n.name for n in output_nodes),
        heatmap_channels=heat_c, paf_channels=paf_c)


def _feeds_count(graph: Graph, blob: str, concats: list[Node]) -> int:
    """How many other Concat bottoms are computed from ``blob`` (F feeds every branch)."""
    producer_of = {top: node.name for node in graph.nodes for top in node.tops}
    count = 0
    for node in concats:
        for bottom in node.bottoms:
            if bottom != blob and producer_of.get(blob) in _ancestors(graph, bottom):
                count += 1
    return count


def _descendants(graph: Graph, start: Node) -> set[str]:
    seen = {start.name}
    blobs = set(start.tops)
    for node in graph.nodes:
        if node.name not in seen and blobs & set(node.bottoms):
            seen.add(node.name)
            blobs |= set(node.tops)
    return seen


def _branch_output(component: list[Node]) -> str | None:
    inside = {b for n in component for b in n.bottoms}
    outs = [t for n in component for t in n.tops if t not in inside]
    return outs[-1] if outs else None


def _channels(shapes: dict, blob: str) -> int | None:
    shape = shapes.get(blob)
    return int(shape[1]) if shape is not None and len(shape) > 1 else None
