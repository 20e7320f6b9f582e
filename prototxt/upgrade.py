"""Bring any Caffe net to the current (V2) form, and select the layers of one phase.

The rules are Caffe's own (``upgrade_proto.cpp`` and ``Net::FilterNet``), applied in Caffe's
order: V0 -> V1 (padding layers folded into the following convolution/pooling), legacy data
transformation fields -> ``transform_param``, V1 -> V2 (enum types -> type strings, blobs_lr /
weight_decay -> ``param`` specs), legacy net inputs -> one ``Input`` layer named ``input``, and
old BatchNorm parameter specs -> lr_mult/decay_mult 0.

Every function takes a ``caffe_pb2.NetParameter`` and returns a new one; the argument is never
modified. Where Caffe would abort, a :class:`~posebridge.errors.PosebridgeError` subclass is
raised naming ``source`` and the layer; where Caffe only logs and goes on, a note is returned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from google.protobuf.message import Message

from posebridge.errors import GraphError, UnsupportedLayerError
from posebridge.prototxt import caffe_pb2

NetParameter = caffe_pb2.NetParameter

INPUT_LAYER_NAME = "input"
INPUT_LAYER_TYPE = "Input"
LEGACY_INPUT_DIMS = 4  # input_dim holds num, channels, height, width per input
BATCH_NORM_LEGACY_PARAM_COUNT = 3
PHASES: Mapping[str, int] = {"TRAIN": caffe_pb2.TRAIN, "TEST": caffe_pb2.TEST}

# V1 LayerType enum name -> V2 type string (UpgradeV1LayerType).
V1_TYPE_NAMES: Mapping[str, str] = {
    "NONE": "",
    "ABSVAL": "AbsVal",
    "ACCURACY": "Accuracy",
    "ARGMAX": "ArgMax",
    "BNLL": "BNLL",
    "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss",
    "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution",
    "DATA": "Data",
    "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss",
    "ELTWISE": "Eltwise",
    "EXP": "Exp",
    "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data",
    "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss",
    "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss",
    "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN",
    "MEMORY_DATA": "MemoryData",
    "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN",
    "POOLING": "Pooling",
    "POWER": "Power",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss",
    "SILENCE": "Silence",
    "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss",
    "SPLIT": "Split",
    "SLICE": "Slice",
    "TANH": "TanH",
    "WINDOW_DATA": "WindowData",
    "THRESHOLD": "Threshold",
}

# V0 type string -> V1 LayerType enum name (UpgradeV0LayerType).
V0_TYPE_NAMES: Mapping[str, str] = {
    "accuracy": "ACCURACY",
    "bnll": "BNLL",
    "concat": "CONCAT",
    "conv": "CONVOLUTION",
    "data": "DATA",
    "dropout": "DROPOUT",
    "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN",
    "hdf5_data": "HDF5_DATA",
    "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL",
    "images": "IMAGE_DATA",
    "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT",
    "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS",
    "pool": "POOLING",
    "relu": "RELU",
    "sigmoid": "SIGMOID",
    "softmax": "SOFTMAX",
    "softmax_loss": "SOFTMAX_LOSS",
    "split": "SPLIT",
    "tanh": "TANH",
    "window_data": "WINDOW_DATA",
}
V0_PADDING_TYPE = "padding"
V0_PADDED_TYPES = ("conv", "pool")

# V0 field -> {V0 type: (V1 parameter message, field in it or None for the whole message)}.
# A V0 field set on a layer type not listed here is dropped with a note, as Caffe does.
V0_TYPED_FIELDS: Mapping[str, Mapping[str, tuple[str, str | None]]] = {
    "num_output": {"conv": ("convolution_param", "num_output"), "innerproduct": ("inner_product_param", "num_output")},
    "biasterm": {"conv": ("convolution_param", "bias_term"), "innerproduct": ("inner_product_param", "bias_term")},
    "weight_filler": {
        "conv": ("convolution_param", "weight_filler"),
        "innerproduct": ("inner_product_param", "weight_filler"),
    },
    "bias_filler": {
        "conv": ("convolution_param", "bias_filler"),
        "innerproduct": ("inner_product_param", "bias_filler"),
    },
    "pad": {"conv": ("convolution_param", "pad"), "pool": ("pooling_param", "pad")},
    "kernelsize": {"conv": ("convolution_param", "kernel_size"), "pool": ("pooling_param", "kernel_size")},
    "group": {"conv": ("convolution_param", "group")},
    "stride": {"conv": ("convolution_param", "stride"), "pool": ("pooling_param", "stride")},
    "pool": {"pool": ("pooling_param", "pool")},
    "dropout_ratio": {"dropout": ("dropout_param", "dropout_ratio")},
    "local_size": {"lrn": ("lrn_param", "local_size")},
    "alpha": {"lrn": ("lrn_param", "alpha")},
    "beta": {"lrn": ("lrn_param", "beta")},
    "k": {"lrn": ("lrn_param", "k")},
    "source": {
        "data": ("data_param", "source"),
        "hdf5_data": ("hdf5_data_param", "source"),
        "images": ("image_data_param", "source"),
        "window_data": ("window_data_param", "source"),
        "infogain_loss": ("infogain_loss_param", "source"),
    },
    "batchsize": {
        "data": ("data_param", "batch_size"),
        "hdf5_data": ("hdf5_data_param", "batch_size"),
        "images": ("image_data_param", "batch_size"),
        "window_data": ("window_data_param", "batch_size"),
    },
    "rand_skip": {"data": ("data_param", "rand_skip"), "images": ("image_data_param", "rand_skip")},
    "shuffle_images": {"images": ("image_data_param", "shuffle")},
    "new_height": {"images": ("image_data_param", "new_height")},
    "new_width": {"images": ("image_data_param", "new_width")},
    "concat_dim": {"concat": ("concat_param", "concat_dim")},
    "det_fg_threshold": {"window_data": ("window_data_param", "fg_threshold")},
    "det_bg_threshold": {"window_data": ("window_data_param", "bg_threshold")},
    "det_fg_fraction": {"window_data": ("window_data_param", "fg_fraction")},
    "det_context_pad": {"window_data": ("window_data_param", "context_pad")},
    "det_crop_mode": {"window_data": ("window_data_param", "crop_mode")},
    "hdf5_output_param": {"hdf5_output": ("hdf5_output_param", None)},
}
# V0 fields that go to transform_param whatever the layer type.
V0_TRANSFORM_FIELDS: Mapping[str, str] = {
    "scale": "scale",
    "meanfile": "mean_file",
    "cropsize": "crop_size",
    "mirror": "mirror",
}
# V0 fields Caffe copies as they are, and those it silently ignores.
V0_COPIED_FIELDS = ("name", "type", "blobs", "blobs_lr", "weight_decay")
V0_IGNORED_FIELDS = ("new_num", "new_channels")

# Legacy transformation fields inside V1 data layers (UpgradeNetDataTransformation).
DATA_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
DATA_LAYER_PARAMS: Mapping[str, str] = {
    "DATA": "data_param",
    "IMAGE_DATA": "image_data_param",
    "WINDOW_DATA": "window_data_param",
}


# ----------------------------------------------------------------------------------- detection


def is_v0(net: NetParameter) -> bool:
    """True when any V1 ``layers`` entry still wraps a V0 ``layer`` (NetNeedsV0ToV1Upgrade)."""
    return any(entry.HasField("layer") for entry in net.layers)


def is_v1(net: NetParameter) -> bool:
    """True when the net uses the deprecated ``layers`` field (V0 nets count too)."""
    return len(net.layers) > 0


def has_legacy_input(net: NetParameter) -> bool:
    """True when the net declares inputs through ``input`` (with input_dim / input_shape)."""
    return len(net.input) > 0


def needs_upgrade(net: NetParameter) -> bool:
    """True when :func:`upgrade_net` would change anything."""
    return is_v1(net) or has_legacy_input(net) or bool(_legacy_batch_norm_layers(net)) or _needs_data_upgrade(net)


# ------------------------------------------------------------------------------------- helpers


def _layer_label(layer: Message, index: int) -> str:
    return layer.name or f"#{index}"


def _assign(message: Message, field: str, value: object) -> None:
    """Set ``message.field`` from ``value``: append for repeated, CopyFrom for messages."""
    descriptor = message.DESCRIPTOR.fields_by_name[field]
    if descriptor.is_repeated:
        getattr(message, field).append(value)
    elif descriptor.message_type is not None:
        getattr(message, field).CopyFrom(value)
    else:
        setattr(message, field, value)


# --------------------------------------------------------------------------------------- V0->V1


def _fold_v0_padding(net: NetParameter, source: str) -> tuple[NetParameter, list[str]]:
    """Remove V0 ``padding`` layers, moving their pad onto the conv/pool that reads them."""
    folded = NetParameter()
    folded.CopyFrom(net)
    del folded.layers[:]
    notes: list[str] = []
    last_writer: dict[str, int] = {name: -1 for name in net.input}
    for index, entry in enumerate(net.layers):
        v0 = entry.layer
        if v0.type != V0_PADDING_TYPE:
            folded.layers.add().CopyFrom(entry)
        for slot, blob in enumerate(entry.bottom):
            if blob not in last_writer:
                raise GraphError(f"unknown bottom blob '{blob}' (no earlier layer or input produces it)",
                                 file=source, layer=_layer_label(v0, index))
            writer_index = last_writer[blob]
            if writer_index < 0:
                continue
            writer = net.layers[writer_index]
            if writer.layer.type != V0_PADDING_TYPE:
                continue
            pad_name = _layer_label(writer.layer, writer_index)
            reader_name = _layer_label(v0, index)
            if v0.type not in V0_PADDED_TYPES:
                raise GraphError(
                    f"padding layer '{pad_name}' feeds a layer of type '{v0.type}'; only conv or pool may read one",
                    file=source, layer=reader_name)
            if len(entry.bottom) != 1:
                raise GraphError(
                    f"a layer fed by padding layer '{pad_name}' needs exactly one bottom, has {len(entry.bottom)}",
                    file=source, layer=reader_name)
            if len(writer.bottom) != 1 or len(writer.top) != 1:
                raise GraphError(
                    f"a padding layer needs one bottom and one top, has {len(writer.bottom)} and {len(writer.top)}",
                    file=source, layer=pad_name)
            target = folded.layers[len(folded.layers) - 1]
            target.layer.pad = writer.layer.pad
            target.bottom[slot] = writer.bottom[0]
            notes.append(f"V0: padding layer '{pad_name}' (pad {writer.layer.pad}) folded into '{reader_name}'")
        for blob in entry.top:
            last_writer[blob] = index
    return folded, notes


def _upgrade_v0_layer(
    entry: caffe_pb2.V1LayerParameter, index: int, source: str
) -> tuple[caffe_pb2.V1LayerParameter, list[str]]:
    """One V0 layer (wrapped in a V1 connection) -> a V1 layer (UpgradeV0LayerParameter)."""
    out = caffe_pb2.V1LayerParameter()
    out.bottom.extend(entry.bottom)
    out.top.extend(entry.top)
    notes: list[str] = []
    if not entry.HasField("layer"):
        return out, notes
    v0 = entry.layer
    label = _layer_label(v0, index)
    if v0.HasField("name"):
        out.name = v0.name
    if v0.HasField("type"):
        if v0.type not in V0_TYPE_NAMES:
            raise UnsupportedLayerError(f"unknown V0 layer type '{v0.type}'", file=source, layer=label)
        out.type = caffe_pb2.V1LayerParameter.LayerType.Value(V0_TYPE_NAMES[v0.type])
    out.blobs.extend(v0.blobs)
    out.blobs_lr.extend(v0.blobs_lr)
    out.weight_decay.extend(v0.weight_decay)
    for field_descriptor, value in v0.ListFields():
        name = field_descriptor.name
        if name in V0_COPIED_FIELDS or name in V0_IGNORED_FIELDS:
            continue
        if name in V0_TRANSFORM_FIELDS:
            _assign(out.transform_param, V0_TRANSFORM_FIELDS[name], value)
            continue
        route = V0_TYPED_FIELDS.get(name, {}).get(v0.type)
        if route is None:
            notes.append(f"V0: layer '{label}': field '{name}' does not apply to type '{v0.type}'; dropped, as in Caffe")
            continue
        param_name, field = route
        if field is None:
            getattr(out, param_name).CopyFrom(value)
        else:
            _assign(getattr(out, param_name), field, value)
    return out, notes


def _upgrade_v0_net(net: NetParameter, source: str) -> tuple[NetParameter, list[str]]:
    """V0 net -> V1 net (UpgradeV0Net): fold padding layers, then upgrade every layer."""
    padded, notes = _fold_v0_padding(net, source)
    out = NetParameter()
    if padded.HasField("name"):
        out.name = padded.name
    for index, entry in enumerate(padded.layers):
        layer, layer_notes = _upgrade_v0_layer(entry, index, source)
        out.layers.add().CopyFrom(layer)
        notes.extend(layer_notes)
    out.input.extend(padded.input)
    out.input_dim.extend(padded.input_dim)
    if padded.HasField("force_backward"):
        out.force_backward = padded.force_backward
    notes.append(f"V0 -> V1: {len(out.layers)} layers upgraded")
    return out, notes


# ----------------------------------------------------------------------------- data transform


def _needs_data_upgrade(net: NetParameter) -> bool:
    for entry in net.layers:
        type_name = caffe_pb2.V1LayerParameter.LayerType.Name(entry.type)
        param_name = DATA_LAYER_PARAMS.get(type_name)
        if param_name and any(getattr(entry, param_name).HasField(f) for f in DATA_TRANSFORM_FIELDS):
            return True
    return False


def _upgrade_data_transformation(net: NetParameter) -> list[str]:
    """Move scale/mean_file/crop_size/mirror of V1 data layers into transform_param (in place)."""
    notes: list[str] = []
    for index, entry in enumerate(net.layers):
        param_name = DATA_LAYER_PARAMS.get(caffe_pb2.V1LayerParameter.LayerType.Name(entry.type))
        if param_name is None:
            continue
        params = getattr(entry, param_name)
        moved = [f for f in DATA_TRANSFORM_FIELDS if params.HasField(f)]
        for field in moved:
            setattr(entry.transform_param, field, getattr(params, field))
            params.ClearField(field)
        if moved:
            label = _layer_label(entry, index)
            notes.append(f"layer '{label}': {', '.join(moved)} moved from {param_name} to transform_param")
    return notes


# --------------------------------------------------------------------------------------- V1->V2

_V1_PARAM_FIELDS = tuple(
    f.name
    for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
    if f.name.endswith("_param") and f.name in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name
)


def _upgrade_v1_layer(v1: caffe_pb2.V1LayerParameter, index: int, source: str) -> caffe_pb2.LayerParameter:
    """One V1 layer -> one V2 layer (UpgradeV1LayerParameter)."""
    layer = caffe_pb2.LayerParameter()
    layer.bottom.extend(v1.bottom)
    layer.top.extend(v1.top)
    if v1.HasField("name"):
        layer.name = v1.name
    layer.include.extend(v1.include)
    layer.exclude.extend(v1.exclude)
    if v1.HasField("type"):
        enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
        layer.type = V1_TYPE_NAMES[enum_name]
    layer.blobs.extend(v1.blobs)
    spec_count = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr), len(v1.weight_decay))
    for _ in range(spec_count):
        layer.param.add()
    for i, name in enumerate(v1.param):
        layer.param[i].name = name
    for i, mode in enumerate(v1.blob_share_mode):
        layer.param[i].share_mode = mode  # STRICT/PERMISSIVE share their numbers
    for i, lr in enumerate(v1.blobs_lr):
        layer.param[i].lr_mult = lr
    for i, decay in enumerate(v1.weight_decay):
        layer.param[i].decay_mult = decay
    layer.loss_weight.extend(v1.loss_weight)
    for param_name in _V1_PARAM_FIELDS:
        if v1.HasField(param_name):
            getattr(layer, param_name).CopyFrom(getattr(v1, param_name))
    if v1.HasField("layer"):
        raise GraphError("V1 layer still holds a V0 'layer' message after the V0 upgrade",
                         file=source, layer=_layer_label(v1, index))
    return layer


def _upgrade_v1_net(net: NetParameter, source: str) -> tuple[NetParameter, list[str]]:
    """V1 net -> V2 net (UpgradeV1Net)."""
    if len(net.layer) > 0:
        raise GraphError(
            f"net mixes {len(net.layer)} V2 'layer' entries with {len(net.layers)} V1 'layers' entries; "
            "Caffe would silently drop the 'layer' entries",
            file=source,
            layer=net.layer[0].name or None,
        )
    out = NetParameter()
    out.CopyFrom(net)
    del out.layers[:]
    for index, v1 in enumerate(net.layers):
        out.layer.add().CopyFrom(_upgrade_v1_layer(v1, index, source))
    return out, [f"V1 -> V2: {len(out.layer)} layers upgraded (enum types -> type strings)"]


# ------------------------------------------------------------------------------- legacy inputs


def _legacy_input_shapes(net: NetParameter, source: str) -> list[caffe_pb2.BlobShape]:
    """One BlobShape per legacy input, from input_shape or from input_dim (4 per input)."""
    names = list(net.input)
    if net.input_shape and net.input_dim:
        raise GraphError("the net sets both input_shape and the deprecated input_dim; give only one",
                         file=source, layer=INPUT_LAYER_NAME)
    if net.input_shape:
        if len(net.input_shape) != len(names):
            raise GraphError(f"{len(names)} inputs {names} but {len(net.input_shape)} input_shape entries; "
                             "exactly one input_shape is needed per input", file=source, layer=INPUT_LAYER_NAME)
        return [caffe_pb2.BlobShape(dim=list(shape.dim)) for shape in net.input_shape]
    dims = list(net.input_dim)
    if len(dims) != LEGACY_INPUT_DIMS * len(names):
        raise GraphError(
            f"{len(names)} inputs {names} need {LEGACY_INPUT_DIMS * len(names)} input_dim values "
            f"(num, channels, height, width each), found {len(dims)}: {dims}",
            file=source, layer=INPUT_LAYER_NAME)
    return [caffe_pb2.BlobShape(dim=dims[i * LEGACY_INPUT_DIMS:(i + 1) * LEGACY_INPUT_DIMS]) for i in range(len(names))]


def _upgrade_net_input(net: NetParameter, source: str) -> list[str]:
    """Legacy ``input`` fields -> a leading ``Input`` layer named ``input`` (in place; UpgradeNetInput)."""
    names = list(net.input)
    notes: list[str] = []
    if net.input_shape or net.input_dim:
        shapes = _legacy_input_shapes(net, source)
        layer = caffe_pb2.LayerParameter(name=INPUT_LAYER_NAME, type=INPUT_LAYER_TYPE, top=names)
        layer.input_param.shape.extend(shapes)
        existing = list(net.layer)
        del net.layer[:]
        net.layer.add().CopyFrom(layer)
        net.layer.extend(existing)
        described = ", ".join(f"'{n}' {'x'.join(str(d) for d in s.dim)}" for n, s in zip(names, shapes))
        notes.append(f"legacy inputs ({described}) -> Input layer '{INPUT_LAYER_NAME}'")
    else:
        notes.append(f"legacy inputs {names} without shapes dropped (as Caffe does for caffemodels)")
    net.ClearField("input")
    net.ClearField("input_shape")
    net.ClearField("input_dim")
    return notes


# ------------------------------------------------------------------------------------ BatchNorm


def _legacy_batch_norm_layers(net: NetParameter) -> list[caffe_pb2.LayerParameter]:
    return [
        layer
        for layer in net.layer
        if layer.type == "BatchNorm" and len(layer.param) == BATCH_NORM_LEGACY_PARAM_COUNT
    ]


def _upgrade_batch_norm(net: NetParameter) -> list[str]:
    """Old BatchNorm layers listing 3 param specs get lr_mult = decay_mult = 0 (UpgradeNetBatchNorm)."""
    notes: list[str] = []
    for layer in _legacy_batch_norm_layers(net):
        for spec in layer.param:
            spec.lr_mult = 0.0
            spec.decay_mult = 0.0
        notes.append(f"BatchNorm '{layer.name}': lr_mult and decay_mult of its 3 param specs set to 0")
    return notes


# ---------------------------------------------------------------------------------- public API


def upgrade_net(net: NetParameter, *, source: str = "") -> tuple[NetParameter, list[str]]:
    """Return ``net`` in V2 form (only ``layer``, never ``layers``) and notes on what changed.

    ``source`` (a file name) is used in error messages. Raises :class:`GraphError` for nets
    Caffe would refuse (bad legacy input dims, misplaced padding layers, V1 and V2 layers mixed)
    and :class:`UnsupportedLayerError` for an unknown V0 layer type.
    """
    current = NetParameter()
    current.CopyFrom(net)
    notes: list[str] = []
    if is_v0(current):
        current, step_notes = _upgrade_v0_net(current, source)
        notes.extend(step_notes)
    if _needs_data_upgrade(current):
        notes.extend(_upgrade_data_transformation(current))
    if is_v1(current):
        current, step_notes = _upgrade_v1_net(current, source)
        notes.extend(step_notes)
    if has_legacy_input(current):
        notes.extend(_upgrade_net_input(current, source))
    notes.extend(_upgrade_batch_norm(current))
    return current, notes


def _state_meets_rule(state: caffe_pb2.NetState, rule: caffe_pb2.NetStateRule) -> bool:
    """Caffe's StateMeetsRule: phase, level bounds, required stages and excluded stages."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    stages = set(state.stage)
    if any(stage not in stages for stage in rule.stage):
        return False
    return not any(stage in stages for stage in rule.not_stage)


def layer_included(layer: Message, state: caffe_pb2.NetState, *, source: str = "", index: int = 0) -> bool:
    """Whether a V2 or V1 layer takes part in a net in ``state`` (the rule of Net::FilterNet)."""
    if layer.include and layer.exclude:
        raise GraphError("layer gives both include and exclude rules; Caffe accepts only one kind",
                         file=source, layer=_layer_label(layer, index))
    if layer.include:
        return any(_state_meets_rule(state, rule) for rule in layer.include)
    return not any(_state_meets_rule(state, rule) for rule in layer.exclude)


def make_state(phase: str = "TEST", level: int = 0, stages: Sequence[str] = ()) -> caffe_pb2.NetState:
    """A NetState from a phase name (``TRAIN`` or ``TEST``), a level and stage names."""
    key = phase.upper()
    if key not in PHASES:
        raise GraphError(f"unknown phase '{phase}'; expected one of {sorted(PHASES)}")
    return caffe_pb2.NetState(phase=PHASES[key], level=level, stage=list(stages))


def filter_phase(
    net: NetParameter,
    *,
    phase: str = "TEST",
    level: int = 0,
    stages: Sequence[str] = (),
    source: str = "",
) -> tuple[NetParameter, list[str]]:
    """Keep the layers whose include/exclude rules admit the state (phase, level, stages).

    Returns the filtered net (its ``state`` set to the one used) and the names of the removed
    layers, in file order. As in Caffe, a layer's own ``phase`` field never removes it (Caffe uses
    it only as that layer's run mode); it is left as written. Both ``layer`` and legacy
    ``layers`` lists are filtered.
    """
    state = make_state(phase, level, stages)
    filtered = NetParameter()
    filtered.CopyFrom(net)
    filtered.state.CopyFrom(state)
    removed: list[str] = []
    for field in ("layer", "layers"):
        kept = []
        for index, layer in enumerate(getattr(net, field)):
            if layer_included(layer, state, source=source, index=index):
                kept.append(layer)
            else:
                removed.append(_layer_label(layer, index))
        target = getattr(filtered, field)
        del target[:]
        target.extend(kept)
    return filtered, removed
