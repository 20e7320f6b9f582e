"""The typed graph every posebridge room reads: nodes in topological order, unique blob versions.

Caffe lets a layer write its output over its input (``top == bottom``, in place). The graph gives
every written blob its own version name, so each layer's output can be named and compared:
the first write of blob ``b`` keeps the name ``b``; a later in-place write by layer ``L`` is named
``b@L``. Caffe layer names and Caffe blob names are kept alongside.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from google.protobuf.message import Message

from posebridge.errors import ForbiddenLayerError, GraphError, UnsupportedLayerError
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.layer_types import category_of, layer_params, layer_type

Shape = tuple[int, ...]


@dataclass(frozen=True)
class Node:
    """One Caffe layer in the graph.

    ``bottoms``/``tops`` are blob version names (unique in the graph); ``caffe_bottoms`` and
    ``caffe_tops`` are the names written in the prototxt.
    """

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    caffe_bottoms: tuple[str, ...]
    caffe_tops: tuple[str, ...]
    layer: caffe_pb2.LayerParameter = field(repr=False, compare=False)
    index: int = 0
    in_place: bool = False
    raw_text: str | None = field(default=None, repr=False, compare=False)
    unknown_fields: tuple[str, ...] = ()

    @property
    def known(self) -> bool:
        """True when posebridge knows this layer type."""
        return layer_type(self.type) is not None

    @property
    def opaque(self) -> bool:
        """True for an unknown type or a layer carrying fields outside the schema."""
        return not self.known or bool(self.unknown_fields)

    @property
    def category(self) -> str:
        """The layer's category from the layer table (``opaque`` when unknown)."""
        return category_of(self.type)

    @property
    def params(self) -> Message | None:
        """The type-specific parameter message (e.g. ``convolution_param``), or None."""
        return layer_params(self.layer, self.type)


@dataclass
class Graph:
    """A Caffe net as a graph. ``nodes`` are in topological order (file order where free)."""

    name: str
    source: str
    nodes: tuple[Node, ...]
    inputs: dict[str, Shape]
    outputs: tuple[str, ...]
    caffe_blob: dict[str, str]
    producer: dict[str, str]
    warnings: list[str] = field(default_factory=list)
    removed_layers: tuple[str, ...] = ()
    upgrade_notes: list[str] = field(default_factory=list)
    net: caffe_pb2.NetParameter | None = field(default=None, repr=False)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def node(self, name: str) -> Node:
        """The node of the Caffe layer called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def consumers(self, blob: str) -> list[Node]:
        """Nodes reading blob version ``blob``."""
        return [node for node in self.nodes if blob in node.bottoms]

    def input_shapes(self, size: tuple[int, int] | None = None, batch: int | None = None) -> dict[str, Shape]:
        """Input shapes with the placeholder height/width (and batch) replaced where given."""
        shapes = {}
        for name, shape in self.inputs.items():
            new = list(shape)
            if size is not None and len(new) == 4:
                new[2], new[3] = int(size[0]), int(size[1])
            if batch is not None and new:
                new[0] = int(batch)
            shapes[name] = tuple(new)
        return shapes

    def check_supported(self) -> None:
        """Raise when a layer is forbidden (Python) or of a type posebridge does not know."""
        for node in self.nodes:
            if node.type == "Python":
                raise ForbiddenLayerError(
                    "Python layers run arbitrary code from the model file and are never executed",
                    file=self.source, layer=node.name)
            if not node.known:
                raise UnsupportedLayerError(
                    f"unknown layer type '{node.type}'", file=self.source, layer=node.name)


def _is_in_place(layer: caffe_pb2.LayerParameter, top_index: int) -> bool:
    """Caffe's rule (Net::AppendTop): top i is in place when bottom i has the same name."""
    return top_index < len(layer.bottom) and layer.bottom[top_index] == layer.top[top_index]


def _input_shapes_of(layer: caffe_pb2.LayerParameter, source: str) -> dict[str, Shape]:
    shapes_param = list(layer.input_param.shape)
    result: dict[str, Shape] = {}
    for i, top in enumerate(layer.top):
        if not shapes_param:
            raise GraphError(f"Input layer declares no shape for '{top}'", file=source, layer=layer.name)
        if len(shapes_param) > 1 and i >= len(shapes_param):
            raise GraphError(f"Input layer has {len(shapes_param)} shapes for {len(layer.top)} tops",
                             file=source, layer=layer.name)
        shape = shapes_param[i] if len(shapes_param) > 1 else shapes_param[0]
        result[top] = tuple(int(d) for d in shape.dim)
    return result


def build_graph(
    net: caffe_pb2.NetParameter,
    *,
    source: str = "",
    raw_texts: Mapping[str, str] | None = None,
    unknown_fields: Mapping[str, Sequence[str]] | None = None,
    warnings: Sequence[str] = (),
    removed_layers: Sequence[str] = (),
    upgrade_notes: Sequence[str] = (),
) -> Graph:
    """Build a :class:`Graph` from an upgraded (V2, phase-filtered) NetParameter.

    ``raw_texts``/``unknown_fields`` are keyed by layer name.
    Raises :class:`GraphError` for a bottom no layer produces, a cycle, or two layers writing
    the same top other than in place.
    """
    raw_texts = raw_texts or {}
    unknown_fields = unknown_fields or {}
    layers = list(net.layer)

    seen_names: set[str] = set()
    for layer in layers:
        if layer.name in seen_names:
            raise GraphError("two layers have this name", file=source, layer=layer.name)
        seen_names.add(layer.name)

    # First pass: who first writes each Caffe blob (not in place).
    first_writer: dict[str, int] = {}
    for index, layer in enumerate(layers):
        for t, top in enumerate(layer.top):
            if _is_in_place(layer, t):
                continue
            if top in first_writer:
                other = layers[first_writer[top]].name
                raise GraphError(
                    f"top '{top}' is also written by layer '{other}' (only in-place layers may rewrite a blob)",
                    file=source, layer=layer.name)
            first_writer[top] = index

    # Second pass: resolve versions in file order.
    latest: dict[str, str] = {}
    caffe_blob: dict[str, str] = {}
    producer: dict[str, str] = {}
    inputs: dict[str, Shape] = {}
    resolved: list[tuple[int, tuple[str, ...], tuple[str, ...], bool]] = []
    for index, layer in enumerate(layers):
        bottoms = []
        for bottom in layer.bottom:
            if bottom in latest:
                bottoms.append(latest[bottom])
            elif bottom in first_writer:
                bottoms.append(bottom)  # produced later in the file: ordering decides (or a cycle)
            else:
                raise GraphError(f"bottom '{bottom}' is produced by no layer", file=source, layer=layer.name)
        tops = []
        in_place = False
        for t, top in enumerate(layer.top):
            if _is_in_place(layer, t):
                if top not in latest:
                    raise GraphError(
                        f"in-place top '{top}' has no earlier producer", file=source, layer=layer.name)
                version = f"{top}@{layer.name}"
                in_place = True
            else:
                version = top
            latest[top] = version
            caffe_blob[version] = top
            producer[version] = layer.name
            tops.append(version)
        if layer.type == "Input":
            inputs.update(_input_shapes_of(layer, source))
        resolved.append((index, tuple(bottoms), tuple(tops), in_place))

    order = _topological_order(layers, resolved, producer, source)

    nodes = []
    for index in order:
        _, bottoms, tops, in_place = resolved[index]
        layer = layers[index]
        nodes.append(Node(
            name=layer.name, type=layer.type, bottoms=bottoms, tops=tops,
            caffe_bottoms=tuple(layer.bottom), caffe_tops=tuple(layer.top), layer=layer,
            index=index, in_place=in_place, raw_text=raw_texts.get(layer.name),
            unknown_fields=tuple(unknown_fields.get(layer.name, ())),
        ))

    consumed = {bottom for node in nodes for bottom in node.bottoms}
    outputs = tuple(version for node in nodes for version in node.tops if version not in consumed)
    return Graph(
        name=net.name, source=source, nodes=tuple(nodes), inputs=inputs, outputs=outputs,
        caffe_blob=caffe_blob, producer=producer, warnings=list(warnings),
        removed_layers=tuple(removed_layers), upgrade_notes=list(upgrade_notes), net=net,
    )


def _topological_order(layers, resolved, producer, source: str) -> list[int]:
    """Kahn's algorithm, taking the earliest layer in file order whenever several are ready."""
    import heapq

    index_of = {layer.name: i for i, layer in enumerate(layers)}
    deps: list[set[int]] = []
    for index, bottoms, _, _ in resolved:
        deps.append({index_of[producer[b]] for b in bottoms})  # a layer reading its own top is a cycle
    dependents: list[list[int]] = [[] for _ in layers]
    for index, dep in enumerate(deps):
        for d in dep:
            dependents[d].append(index)
    remaining = [len(dep) for dep in deps]
    ready = [i for i, n in enumerate(remaining) if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for nxt in dependents[index]:
            remaining[nxt] -= 1
            if remaining[nxt] == 0:
                heapq.heappush(ready, nxt)
    if len(order) != len(layers):
        stuck = [layers[i].name for i, n in enumerate(remaining) if n > 0]
        raise GraphError(f"the layers form a cycle: {', '.join(stuck)}", file=source, layer=stuck[0])
    return order
