"""Per-layer analysis of a Caffe net as data: parameters, MACs, activation memory, receptive field,
per-group subtotals and (with a caffemodel) weight statistics. Reports render this; nothing here
formats text.

Conventions (all numbers are per forward pass at the analysed input size, batch included):

* **params**: values of the layer's learnable blobs (the caffemodel's when given, else the shapes
  the layer's parameters imply). BatchNorm's stored mean/variance/scale factor count too.
* **MACs**: multiply-accumulates of Convolution (``out elements * C_in/group * kh * kw``),
  Deconvolution (``in elements * C_out/group * kh * kw``) and InnerProduct (``rows * K * N``).
  Dilation changes the output size, not the taps per output. Biases, activations, pooling,
  elementwise and tensor layers count 0 (see :data:`MAC_COUNTED_TYPES`).
* **activation memory**: bytes of a layer's tops as float32. Totals count each top once and
  skip in-place tops (they reuse their bottom's memory, as in Caffe).
* **receptive field**: size and stride (jump) in input pixels, per axis (h, w), of one element of
  the layer's first top, the maximum over all paths from a net input or data source.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from posebridge.errors import ShapeError
from posebridge.prototxt.graph import Graph, Node, Shape
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.loader import MatchedWeights
from posebridge.prototxt.shapes import conv_geometry, expected_blob_shapes, infer_shapes, pool_geometry
from posebridge.prototxt.structure import OpenPoseStructure, detect_structure

BYTES_PER_VALUE = 4  # activations are float32
#: Input size used when the prototxt only declares a placeholder (OpenPose's 1x1 or 16x16).
DEFAULT_INPUT_SIZE = (368, 368)
#: Declared inputs with a side up to this are placeholders (OpenPose declares 1x1 or 16x16).
PLACEHOLDER_MAX_SIDE = 16
MAC_COUNTED_TYPES = ("Convolution", "Deconvolution", "InnerProduct")
#: Layer types whose output channels equal their (first) bottom's, for the channel-only fallback.
CHANNEL_PRESERVING_CATEGORIES = ("activation", "dropout", "normalization", "pool")
CHANNEL_PRESERVING_TYPES = ("Eltwise", "Split", "Crop")
#: Layer types that read every spatial position of a 4-D bottom (receptive field = whole bottom).
GLOBAL_TYPES = ("InnerProduct",)
#: LayerParameter fields never shown as settings (structure, training-only bookkeeping).
HIDDEN_LAYER_FIELDS = frozenset({"name", "type", "bottom", "top", "blobs", "phase", "include", "exclude",
                                 "param", "propagate_down"})
GROUP_OTHER = "other"
#: Defaults of repeated fields, which protobuf cannot declare (caffe.proto states them in comments).
REPEATED_FIELD_DEFAULTS = {
    "caffe.ConvolutionParameter.pad": 0,
    "caffe.ConvolutionParameter.stride": 1,
    "caffe.ConvolutionParameter.dilation": 1,
}

RFStride = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class ReceptiveField:
    """Receptive field of one output element: ``size`` and ``stride`` in input pixels, each (h, w)."""

    size: tuple[Fraction, Fraction]
    stride: RFStride


@dataclass(frozen=True)
class BlobStats:
    """Statistics of one learnable blob (over its finite values); ``flags`` name anything suspicious."""

    name: str
    shape: Shape
    count: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    zero_fraction: float
    nan_count: int
    inf_count: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class LayerAnalysis:
    """One layer's numbers. ``None`` means unknowable (e.g. shapes after an opaque data layer)."""

    index: int  # topological position
    name: str
    type: str
    category: str
    group: str | None
    bottoms: tuple[str, ...]  # Caffe blob names
    tops: tuple[str, ...]  # Caffe blob names
    output_shapes: tuple[Shape | None, ...]
    params: int | None
    macs: int | None
    activation_bytes: int | None
    receptive_field: ReceptiveField | None
    in_place: bool
    folded_into: str | None  # the visible layer an in-place layer is drawn inside
    opaque: bool
    settings: dict[str, str]  # non-default parameter values, "field.sub" -> text
    raw_text: str | None
    weights: tuple[BlobStats, ...] | None
    flags: tuple[str, ...]

    @property
    def counts_memory(self) -> bool:
        """False for in-place layers, whose tops reuse their bottom's memory."""
        return not self.in_place


@dataclass(frozen=True)
class Totals:
    """Sums over a set of layers; ``unknown_*`` count layers whose value could not be known."""

    layers: int
    params: int
    macs: int
    activation_bytes: int
    unknown_params: int
    unknown_macs: int
    unknown_activation: int

    @staticmethod
    def of(rows: Iterable[LayerAnalysis]) -> Totals:
        rows = list(rows)
        memory_rows = [r for r in rows if r.counts_memory]
        return Totals(
            layers=len(rows),
            params=sum(r.params for r in rows if r.params is not None),
            macs=sum(r.macs for r in rows if r.macs is not None),
            activation_bytes=sum(r.activation_bytes for r in memory_rows if r.activation_bytes is not None),
            unknown_params=sum(r.params is None for r in rows),
            unknown_macs=sum(r.macs is None for r in rows),
            unknown_activation=sum(r.activation_bytes is None for r in memory_rows),
        )


@dataclass(frozen=True)
class GroupAnalysis:
    """A group of the OpenPose structure. ``layers`` are its direct members; ``totals`` include children."""

    name: str  # "features", "stage2", "stage2_L1", "output", "other"
    label: str
    parent: str | None
    layers: tuple[str, ...]
    totals: Totals


@dataclass
class NetAnalysis:
    """The whole analysis of one net at one input size."""

    graph: Graph
    input_shapes: dict[str, Shape]
    input_note: str | None
    layers: tuple[LayerAnalysis, ...]
    groups: tuple[GroupAnalysis, ...]
    totals: Totals
    structure: OpenPoseStructure | None
    weights_source: str | None
    warnings: list[str] = field(default_factory=list)

    def layer(self, name: str) -> LayerAnalysis:
        """The row of the layer called ``name``."""
        for row in self.layers:
            if row.name == name:
                return row
        raise KeyError(name)


# --- counting ---------------------------------------------------------------------------------

def _product(values: Iterable[int]) -> int:
    result = 1
    for value in values:
        result *= int(value)
    return result


def layer_macs(node: Node, bottoms: list[Shape | None], tops: list[Shape | None]) -> int | None:
    """Multiply-accumulates of one layer (see the module docstring); None when shapes are unknown."""
    if node.type not in MAC_COUNTED_TYPES:
        return 0
    if not bottoms or bottoms[0] is None or not tops or tops[0] is None:
        return None
    if node.type == "InnerProduct":
        p = node.layer.inner_product_param
        shape = bottoms[0]
        axis = p.axis + len(shape) if p.axis < 0 else p.axis
        return _product(shape[:axis]) * _product(shape[axis:]) * p.num_output * len(bottoms)
    p = node.layer.convolution_param
    group = max(p.group, 1)
    kh, kw = conv_geometry(node)["kernel"]
    total = 0
    for bottom, top in zip(bottoms, tops):
        if bottom is None or top is None:
            return None
        if node.type == "Convolution":
            total += _product(top) * (bottom[1] // group) * kh * kw
        else:
            total += _product(bottom) * (top[1] // group) * kh * kw
    return total


def _channel_hints(graph: Graph, shapes: Mapping[str, Shape | None]) -> dict[str, int]:
    """Channels (axis 1) of blobs whose full shape is unknown, where the layers still fix them."""
    channels: dict[str, int] = {b: int(s[1]) for b, s in shapes.items() if s is not None and len(s) > 1}
    for node in graph.nodes:
        if all(t in channels for t in node.tops):
            continue
        entry = layer_type(node.type)
        found: list[int | None] = [None] * len(node.tops)
        first = channels.get(node.bottoms[0]) if node.bottoms else None
        if node.type in ("Convolution", "Deconvolution"):
            found = [node.layer.convolution_param.num_output] * len(node.tops)
        elif node.type == "InnerProduct" and node.layer.inner_product_param.axis == 1:
            found = [node.layer.inner_product_param.num_output]
        elif entry is not None and (entry.category in CHANNEL_PRESERVING_CATEGORIES
                                    or node.type in CHANNEL_PRESERVING_TYPES):
            found = [first] * len(node.tops)
        elif node.type == "Concat":
            p = node.layer.concat_param
            axis = p.concat_dim if p.HasField("concat_dim") else p.axis
            parts = [channels.get(b) for b in node.bottoms]
            if axis == 1 and all(c is not None for c in parts):
                found = [sum(parts)]
        elif node.type == "Slice":
            p = node.layer.slice_param
            axis = p.slice_dim if p.HasField("slice_dim") else p.axis
            points = list(p.slice_point)
            if axis == 1 and len(points) == len(node.tops) - 1:
                edges = [0, *points, first]
                found = [None if b is None else b - a for a, b in zip(edges, edges[1:])]
        for top, value in zip(node.tops, found):
            if value is not None and top not in channels:
                channels[top] = int(value)
    return channels


def layer_params(node: Node, bottoms: list[Shape | None], channels: Mapping[str, int],
                 weights: MatchedWeights | None) -> int | None:
    """Learnable values of one layer: the caffemodel's blobs, else the implied blob shapes."""
    entry = layer_type(node.type)
    if weights is not None and node.name in weights.blobs:
        return sum(int(a.size) for a in weights.blobs[node.name])
    if entry is None:
        return None  # a type posebridge does not know: its blobs are unknown
    if not entry.blob_names:
        return 0
    expected = expected_blob_shapes(node, bottoms)
    if expected is None and node.bottoms and node.bottoms[0] in channels and node.type in (
            "Convolution", "Deconvolution", "PReLU", "BatchNorm"):
        # Spatial size unknown but channels known: these layers' blobs depend on channels only.
        stand_in = (1, channels[node.bottoms[0]], 1, 1)
        expected = expected_blob_shapes(node, [stand_in, *bottoms[1:]])
    if expected is None:
        return None
    return sum(_product(shape) for shape in expected)


def activation_bytes(tops: list[Shape | None]) -> int | None:
    """Bytes of the given tops as float32; None when any shape is unknown."""
    if any(t is None for t in tops):
        return None
    return sum(_product(t) for t in tops) * BYTES_PER_VALUE


# --- receptive field ---------------------------------------------------------------------------

def _rf_step(size: Fraction, stride: Fraction, kernel: int, step: int, dilation: int = 1,
             transposed: bool = False) -> tuple[Fraction, Fraction]:
    """One axis of one layer: Caffe conv/pool (or deconv when ``transposed``) on (size, stride)."""
    extent = dilation * (kernel - 1) + 1
    if transposed:
        # An output element receives from at most floor((extent-1)/step)+1 consecutive inputs.
        return size + ((extent - 1) // step) * stride, stride / step
    return size + (extent - 1) * stride, stride * step


def layer_receptive_field(node: Node, incoming: list[ReceptiveField | None],
                          bottoms: list[Shape | None]) -> ReceptiveField | None:
    """Receptive field of ``node``'s output from those of its bottoms (max over bottoms)."""
    if not node.bottoms:
        return ReceptiveField((Fraction(1), Fraction(1)), (Fraction(1), Fraction(1)))  # an input or data source
    if node.opaque:
        return None
    if node.type == "Crop":
        incoming = incoming[:1]
    known = [rf for rf in incoming if rf is not None]
    if len(known) != len(incoming) or not known:
        return None
    size = tuple(max(rf.size[i] for rf in known) for i in range(2))
    stride = tuple(max(rf.stride[i] for rf in known) for i in range(2))
    if node.type in ("Convolution", "Deconvolution"):
        g = conv_geometry(node)
        axes = [_rf_step(size[i], stride[i], g["kernel"][i], g["stride"][i], g["dilation"][i],
                         transposed=node.type == "Deconvolution") for i in range(2)]
    elif node.type == "Pooling":
        bottom = bottoms[0]
        if node.layer.pooling_param.global_pooling and (bottom is None or len(bottom) != 4):
            return None
        g = pool_geometry(node, (bottom[2], bottom[3]) if bottom is not None and len(bottom) == 4 else (1, 1))
        axes = [_rf_step(size[i], stride[i], g["kernel"][i], g["stride"][i]) for i in range(2)]
    elif node.type in GLOBAL_TYPES:
        bottom = bottoms[0]
        if bottom is None or len(bottom) != 4:
            return None
        axes = [_rf_step(size[i], stride[i], bottom[2 + i], 1) for i in range(2)]
    else:
        return ReceptiveField(size, stride)
    return ReceptiveField((axes[0][0], axes[1][0]), (axes[0][1], axes[1][1]))


# --- settings and weights ----------------------------------------------------------------------

def _scalar_text(descriptor: FieldDescriptor, value: object) -> str:
    if descriptor.type == FieldDescriptor.TYPE_ENUM:
        enum_value = descriptor.enum_type.values_by_number.get(int(value))
        return enum_value.name if enum_value is not None else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _field_entries(descriptor: FieldDescriptor, value: object, prefix: str) -> dict[str, str]:
    """One set field as flattened ``key -> text`` entries (nothing when it holds its default)."""
    key = f"{prefix}{descriptor.name}"
    repeated = descriptor.is_repeated
    if descriptor.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
        if not repeated:  # a sub-message set to all defaults equals the default: nothing to show
            return nondefault_fields(value, f"{key}.")
        result: dict[str, str] = {}
        for i, item in enumerate(value):
            result.update(nondefault_fields(item, f"{key}[{i}]."))
        return result
    if repeated:
        default = REPEATED_FIELD_DEFAULTS.get(descriptor.full_name)
        if default is not None and all(v == default for v in value):
            return {}
        return {key: ", ".join(_scalar_text(descriptor, v) for v in value)}
    if value == descriptor.default_value:
        return {}
    return {key: _scalar_text(descriptor, value)}


def nondefault_fields(message: Message, prefix: str = "") -> dict[str, str]:
    """Fields of ``message`` that are set and differ from their default, flattened to text.

    Nested messages give ``outer.inner`` keys, repeated messages ``outer[i].inner``; repeated
    scalars are joined with ", ".
    """
    result: dict[str, str] = {}
    for descriptor, value in message.ListFields():
        result.update(_field_entries(descriptor, value, prefix))
    return result


def layer_settings(node: Node) -> dict[str, str]:
    """Non-default parameters of a layer: its type's parameter message without a prefix, then any
    other set LayerParameter field (e.g. ``loss_weight``, ``transform_param.scale``)."""
    entry = layer_type(node.type)
    param_field = entry.param_field if entry is not None else None
    result: dict[str, str] = {}
    for descriptor, value in node.layer.ListFields():
        if descriptor.name in HIDDEN_LAYER_FIELDS:
            continue
        if descriptor.name == param_field:
            result.update(nondefault_fields(value))
        else:
            result.update(_field_entries(descriptor, value, ""))
    return result


def blob_stats(name: str, array: np.ndarray) -> BlobStats:
    """Mean, std, min, max over finite values; zero fraction; NaN/Inf counts and flags."""
    values = np.asarray(array, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    nan_count = int(np.isnan(values).sum())
    inf_count = int(np.isinf(values).sum())
    zeros = int((values == 0).sum())
    flags = []
    if nan_count:
        flags.append(f"{name}: {nan_count} NaN")
    if inf_count:
        flags.append(f"{name}: {inf_count} Inf")
    if values.size and zeros == values.size:
        flags.append(f"{name}: all zeros")
    has = finite.size > 0
    return BlobStats(
        name=name, shape=tuple(int(d) for d in array.shape), count=int(values.size),
        mean=float(finite.mean()) if has else None, std=float(finite.std()) if has else None,
        min=float(finite.min()) if has else None, max=float(finite.max()) if has else None,
        zero_fraction=zeros / values.size if values.size else 0.0,
        nan_count=nan_count, inf_count=inf_count, flags=tuple(flags))


def layer_weight_stats(node: Node, arrays: list[np.ndarray]) -> tuple[BlobStats, ...]:
    """Statistics of each of a layer's blobs, named from the layer table (weights, bias, ...)."""
    entry = layer_type(node.type)
    names = entry.blob_names if entry is not None else ()
    return tuple(blob_stats(names[i] if i < len(names) else f"blob{i}", a) for i, a in enumerate(arrays))


# --- the graph-level passes --------------------------------------------------------------------

def folded_hosts(graph: Graph) -> dict[str, str]:
    """In-place layer name -> the non-in-place layer it is drawn inside (its blob's first writer)."""
    hosts: dict[str, str] = {}
    for node in graph.nodes:
        if not (node.in_place and node.bottoms):
            continue
        producer = graph.producer.get(node.bottoms[0])
        if producer is None:
            continue
        hosts[node.name] = hosts.get(producer, producer)
    return hosts


def choose_input_shapes(graph: Graph, input_size: tuple[int, int] | None) -> tuple[dict[str, Shape], str | None]:
    """The input shapes to analyse at, and a note when the prototxt's placeholder was replaced."""
    if input_size is not None:
        return graph.input_shapes(input_size), None
    declared = graph.input_shapes()
    spatial = [s[2:4] for s in declared.values() if len(s) == 4]
    if spatial and any(min(hw) <= PLACEHOLDER_MAX_SIDE for hw in spatial):
        size = DEFAULT_INPUT_SIZE
        return graph.input_shapes(size), (f"the prototxt declares a placeholder input "
                                          f"({', '.join('x'.join(map(str, s)) for s in declared.values())}); "
                                          f"analysed at {size[0]}x{size[1]}")
    return declared, None


def _group_tree(structure: OpenPoseStructure | None, graph: Graph,
                hosts: Mapping[str, str]) -> tuple[dict[str, str], list[tuple[str, str, str | None]]]:
    """Layer -> group name, and the groups in display order as (name, label, parent)."""
    if structure is None:
        return {}, []
    by_layer = dict(structure.groups())
    for name, host in hosts.items():  # a folded layer sits in its host's group
        if host in by_layer:
            by_layer[name] = by_layer[host]
    order: list[tuple[str, str, str | None]] = [("features", "F · features", None)]
    for stage in structure.stages:
        stage_name = f"stage{stage.index}"
        order.append((stage_name, f"Stage {stage.index}", None))
        for branch in stage.branches:
            role = {"pafs": " (PAFs)", "heatmaps": " (heatmaps)"}.get(branch.role, "")
            order.append((f"{stage_name}_{branch.name}", f"Stage {stage.index} · {branch.name}{role}", stage_name))
    if structure.output:
        order.append(("output", "Output", None))
    for node in graph.nodes:
        by_layer.setdefault(node.name, GROUP_OTHER)
    if GROUP_OTHER in by_layer.values():
        order.append((GROUP_OTHER, "Other layers", None))
    return by_layer, order


def analyze(graph: Graph, *, input_size: tuple[int, int] | None = None,
            weights: MatchedWeights | None = None) -> NetAnalysis:
    """Analyse every layer of ``graph`` at ``input_size`` (H, W); see the module docstring.

    Without ``input_size`` the prototxt's own input shape is used, unless it is a placeholder
    (a side <= 16), then :data:`DEFAULT_INPUT_SIZE`. Shapes that cannot be inferred (after an
    opaque layer, or when the size does not fit the net) are None and noted in ``warnings``.
    """
    warnings: list[str] = []
    input_shapes, input_note = choose_input_shapes(graph, input_size)
    try:
        shapes = infer_shapes(graph, input_shapes)
    except ShapeError as error:
        warnings.append(f"shapes unknown at this input size: {error}")
        shapes = {top: input_shapes.get(caffe_top) for node in graph.nodes if node.type == "Input"
                  for top, caffe_top in zip(node.tops, node.caffe_tops)}
    channels = _channel_hints(graph, shapes)
    hosts = folded_hosts(graph)
    try:
        structure = detect_structure(graph)
    except Exception as error:  # noqa: BLE001 - a report must not fail because detection did
        warnings.append(f"OpenPose structure not detected: {error}")
        structure = None
    group_of, group_order = _group_tree(structure, graph, hosts)

    fields: dict[str, ReceptiveField | None] = {}
    rows: list[LayerAnalysis] = []
    for position, node in enumerate(graph.nodes):
        bottoms = [shapes.get(b) for b in node.bottoms]
        tops = [shapes.get(t) for t in node.tops]
        if node.type == "Input":
            tops = [input_shapes.get(t) for t in node.caffe_tops]
        params = _guarded(warnings, layer_params, node, bottoms, channels, weights)
        macs = _guarded(warnings, layer_macs, node, bottoms, tops)
        rf = _guarded(warnings, layer_receptive_field, node, [fields.get(b) for b in node.bottoms], bottoms)
        for top in node.tops:
            fields[top] = rf
        stats = None
        flags: tuple[str, ...] = ()
        if weights is not None and node.name in weights.blobs:
            stats = layer_weight_stats(node, weights.blobs[node.name])
            flags = tuple(flag for s in stats for flag in s.flags)
        rows.append(LayerAnalysis(
            index=position, name=node.name, type=node.type, category=node.category,
            group=group_of.get(node.name), bottoms=node.caffe_bottoms, tops=node.caffe_tops,
            output_shapes=tuple(tops), params=params, macs=macs,
            activation_bytes=activation_bytes(tops), receptive_field=rf, in_place=node.in_place,
            folded_into=hosts.get(node.name), opaque=node.opaque,
            settings={} if node.opaque and not node.known else layer_settings(node),
            raw_text=node.raw_text if node.opaque else None, weights=stats, flags=flags))

    groups = []
    for name, label, parent in group_order:
        inside = {name} | {child for child, _, child_parent in group_order if child_parent == name}
        members = [r for r in rows if r.group in inside]
        groups.append(GroupAnalysis(name=name, label=label, parent=parent,
                                    layers=tuple(r.name for r in rows if r.group == name),
                                    totals=Totals.of(members)))
    return NetAnalysis(
        graph=graph, input_shapes=input_shapes, input_note=input_note, layers=tuple(rows),
        groups=tuple(groups), totals=Totals.of(rows), structure=structure,
        weights_source=weights.source if weights is not None else None,
        warnings=list(dict.fromkeys([*graph.warnings, *warnings])))  # each warning once


def _guarded(warnings: list[str], compute, node: Node, *args):
    """``compute(node, *args)``, or None with a warning when the layer's parameters are invalid."""
    try:
        return compute(node, *args)
    except ShapeError as error:
        warnings.append(f"layer '{node.name}': {error.detail}")
        return None


def fraction_value(value: Fraction) -> int | float:
    """A receptive-field number as int when whole, else float (for JSON and display)."""
    return int(value) if value.denominator == 1 else float(value)

