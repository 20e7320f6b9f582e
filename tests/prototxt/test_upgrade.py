"""Format upgrade (V0/V1/legacy inputs -> V2) and phase filtering, with Caffe's rules."""

from __future__ import annotations

import pytest
from google.protobuf import text_format
from helpers_legacy import (
    TINY_V0_TEXT,
    TINY_V1_TEXT,
    TINY_V2_TEXT,
    TWO_INPUTS_DIM_TEXT,
    TWO_INPUTS_SHAPE_TEXT,
    TWO_INPUTS_V2_TEXT,
    blob,
    parse_net,
)

from posebridge.errors import GraphError, PosebridgeError, UnsupportedLayerError
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.upgrade import (
    filter_phase,
    has_legacy_input,
    is_v0,
    is_v1,
    needs_upgrade,
    upgrade_net,
)
from posebridge.shared_data import OFFICIAL_PROTOTXTS, shared_path

SOURCE = "fixture.prototxt"


def assert_same_net(actual: caffe_pb2.NetParameter, expected: caffe_pb2.NetParameter) -> None:
    """Field-by-field equality, reported layer by layer as prototxt text."""
    assert [l.name for l in actual.layer] == [l.name for l in expected.layer]
    for got, want in zip(actual.layer, expected.layer):
        assert text_format.MessageToString(got) == text_format.MessageToString(want), f"layer {want.name}"
    assert actual == expected


def binary_roundtrip(net: caffe_pb2.NetParameter) -> caffe_pb2.NetParameter:
    return caffe_pb2.NetParameter.FromString(net.SerializeToString())


# ------------------------------------------------------------------------------ V1 / V0 -> V2


@pytest.mark.parametrize("legacy_text", [TINY_V1_TEXT, TINY_V0_TEXT], ids=["v1", "v0"])
def test_legacy_text_upgrades_to_v2_equivalent(legacy_text: str) -> None:
    upgraded, notes = upgrade_net(parse_net(legacy_text), source=SOURCE)
    assert not upgraded.layers
    assert_same_net(upgraded, parse_net(TINY_V2_TEXT))
    assert any("V1 -> V2" in note for note in notes)
    assert any("Input layer" in note for note in notes)


def test_v0_padding_layer_is_folded() -> None:
    upgraded, notes = upgrade_net(parse_net(TINY_V0_TEXT), source=SOURCE)
    conv = upgraded.layer[1]
    assert (conv.name, list(conv.bottom), list(conv.convolution_param.pad)) == ("conv1", ["data"], [1])
    assert "pad1" not in [l.name for l in upgraded.layer]
    assert any("padding layer 'pad1'" in note for note in notes)


def test_v0_padding_into_pool_sets_pooling_pad() -> None:
    text = """
    input: "x" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4
    layers { layer { name: "p" type: "padding" pad: 2 } bottom: "x" top: "xp" }
    layers { layer { name: "pool" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "xp" top: "y" }
    """
    upgraded, _ = upgrade_net(parse_net(text), source=SOURCE)
    expected = parse_net("""
    layer { name: "input" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }
    layer { name: "pool" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE pad: 2 kernel_size: 3 stride: 2 } }
    """)
    assert_same_net(upgraded, expected)


@pytest.mark.parametrize("legacy_text", [TINY_V1_TEXT, TINY_V0_TEXT], ids=["v1", "v0"])
def test_binary_legacy_caffemodel_upgrades_with_blobs(legacy_text: str) -> None:
    """A legacy net with weights, serialised and read back, keeps its blobs through the upgrade."""
    weights = blob([0.5] * 108, legacy_nchw=[4, 3, 3, 3])
    bias = blob([0.25, -1.0, 2.0, 3.5], shape=[4])
    legacy = parse_net(legacy_text)
    conv_entry = next(e for e in legacy.layers if (e.layer.name or e.name) == "conv1")
    target_blobs = conv_entry.layer.blobs if conv_entry.HasField("layer") else conv_entry.blobs
    target_blobs.extend([weights, bias])
    expected = parse_net(TINY_V2_TEXT)
    expected.layer[1].blobs.extend([weights, bias])

    upgraded, _ = upgrade_net(binary_roundtrip(legacy), source="tiny.caffemodel")

    assert_same_net(upgraded, expected)
    assert list(upgraded.layer[1].blobs[1].data) == [0.25, -1.0, 2.0, 3.5]


def test_v1_param_specs_names_share_modes_and_loss_weight() -> None:
    text = """
    layers {
      name: "ip" type: INNER_PRODUCT bottom: "x" top: "y"
      param: "w_shared" blob_share_mode: PERMISSIVE blobs_lr: 3 weight_decay: 0.5 blobs_lr: 4
      loss_weight: 0.7 inner_product_param { num_output: 2 }
      include { phase: TRAIN stage: "s" }
    }
    """
    upgraded, _ = upgrade_net(parse_net(text), source=SOURCE)
    expected = parse_net("""
    layer {
      name: "ip" type: "InnerProduct" bottom: "x" top: "y"
      param { name: "w_shared" share_mode: PERMISSIVE lr_mult: 3 decay_mult: 0.5 } param { lr_mult: 4 }
      loss_weight: 0.7 inner_product_param { num_output: 2 }
      include { phase: TRAIN stage: "s" }
    }
    """)
    assert_same_net(upgraded, expected)


@pytest.mark.parametrize(
    ("enum_name", "type_string"),
    [("DECONVOLUTION", "Deconvolution"), ("SOFTMAX_LOSS", "SoftmaxWithLoss"), ("ABSVAL", "AbsVal"),
     ("SPLIT", "Split"), ("IM2COL", "Im2col"), ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss")],
)
def test_v1_enum_types_become_caffe_type_strings(enum_name: str, type_string: str) -> None:
    upgraded, _ = upgrade_net(parse_net(f'layers {{ name: "l" type: {enum_name} }}'), source=SOURCE)
    assert upgraded.layer[0].type == type_string


def test_v1_data_layer_transformation_fields_move_to_transform_param() -> None:
    text = """
    layers {
      name: "data" type: DATA top: "data" top: "label"
      data_param { source: "db" batch_size: 4 scale: 0.5 mirror: true crop_size: 3 mean_file: "m.binaryproto" }
      include { phase: TRAIN }
    }
    """
    upgraded, notes = upgrade_net(parse_net(text), source=SOURCE)
    expected = parse_net("""
    layer {
      name: "data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
      transform_param { scale: 0.5 mirror: true crop_size: 3 mean_file: "m.binaryproto" }
      data_param { source: "db" batch_size: 4 }
    }
    """)
    assert_same_net(upgraded, expected)
    assert any("transform_param" in note for note in notes)


def test_v0_typed_fields_land_in_their_parameter_messages() -> None:
    text = """
    layers { layer { name: "d" type: "data" source: "db" batchsize: 8 scale: 0.25 cropsize: 5 mirror: true meanfile: "m" rand_skip: 2 } top: "x" }
    layers { layer { name: "n" type: "lrn" local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } bottom: "x" top: "y" }
    layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.25 } bottom: "y" top: "y" }
    layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "x" bottom: "y" top: "z" }
    layers { layer { name: "conv" type: "conv" num_output: 2 kernelsize: 1 group: 2 biasterm: false } bottom: "z" top: "c" }
    """
    upgraded, _ = upgrade_net(parse_net(text), source=SOURCE)
    expected = parse_net("""
    layer { name: "d" type: "Data" top: "x" transform_param { scale: 0.25 mirror: true crop_size: 5 mean_file: "m" }
            data_param { source: "db" batch_size: 8 rand_skip: 2 } }
    layer { name: "n" type: "LRN" bottom: "x" top: "y" lrn_param { local_size: 3 alpha: 0.5 beta: 0.25 k: 2 } }
    layer { name: "drop" type: "Dropout" bottom: "y" top: "y" dropout_param { dropout_ratio: 0.25 } }
    layer { name: "cat" type: "Concat" bottom: "x" bottom: "y" top: "z" concat_param { concat_dim: 0 } }
    layer { name: "conv" type: "Convolution" bottom: "z" top: "c"
            convolution_param { num_output: 2 bias_term: false kernel_size: 1 group: 2 } }
    """)
    assert_same_net(upgraded, expected)


def test_v0_field_on_wrong_layer_type_is_dropped_with_a_note() -> None:
    text = 'input: "x" layers { layer { name: "r" type: "relu" num_output: 3 } bottom: "x" top: "x" }'
    upgraded, notes = upgrade_net(parse_net(text), source=SOURCE)
    assert not upgraded.layer[0].HasField("inner_product_param")
    assert not upgraded.layer[0].HasField("convolution_param")
    assert any("'num_output'" in note and "'r'" in note for note in notes)


def test_v2_net_is_returned_unchanged_and_not_mutated() -> None:
    net = parse_net(TINY_V2_TEXT)
    before = net.SerializeToString()
    upgraded, notes = upgrade_net(net, source=SOURCE)
    assert notes == []
    assert upgraded == net
    assert upgraded is not net
    assert net.SerializeToString() == before


def test_upgrade_does_not_mutate_legacy_argument() -> None:
    net = parse_net(TINY_V0_TEXT)
    before = net.SerializeToString()
    upgrade_net(net, source=SOURCE)
    assert net.SerializeToString() == before


def test_detection_helpers() -> None:
    v0, v1, v2 = parse_net(TINY_V0_TEXT), parse_net(TINY_V1_TEXT), parse_net(TINY_V2_TEXT)
    assert (is_v0(v0), is_v1(v0), has_legacy_input(v0)) == (True, True, True)
    assert (is_v0(v1), is_v1(v1), has_legacy_input(v1)) == (False, True, True)
    assert (is_v0(v2), is_v1(v2), has_legacy_input(v2)) == (False, False, False)
    assert needs_upgrade(v0) and needs_upgrade(v1) and not needs_upgrade(v2)


# ------------------------------------------------------------------------------ legacy inputs


@pytest.mark.parametrize("legacy_text", [TWO_INPUTS_DIM_TEXT, TWO_INPUTS_SHAPE_TEXT], ids=["input_dim", "input_shape"])
def test_legacy_inputs_give_the_explicit_input_layer(legacy_text: str) -> None:
    upgraded, _ = upgrade_net(parse_net(legacy_text), source=SOURCE)
    explicit, _ = upgrade_net(parse_net(TWO_INPUTS_V2_TEXT), source=SOURCE)
    assert_same_net(upgraded, explicit)
    assert not upgraded.input and not upgraded.input_dim and not upgraded.input_shape
    assert upgraded.layer[0].type == "Input" and upgraded.layer[0].name == "input"
    assert [list(s.dim) for s in upgraded.layer[0].input_param.shape] == [[1, 2, 5, 7], [1, 3, 5, 7]]


def test_input_without_dims_is_dropped_as_in_caffemodels() -> None:
    net = parse_net('input: "data" layer { name: "r" type: "ReLU" bottom: "data" top: "data" }')
    upgraded, notes = upgrade_net(net, source=SOURCE)
    assert [l.type for l in upgraded.layer] == ["ReLU"]
    assert not upgraded.input
    assert any("without shapes" in note for note in notes)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('input: "data" input_dim: 1 input_dim: 3 input_dim: 368', "found 3"),
        ('input: "a" input: "b" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8', "need 8 input_dim"),
        ('input: "a" input: "b" input_shape { dim: 1 }', "1 input_shape"),
        ('input: "a" input_shape { dim: 1 } input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1', "both"),
    ],
    ids=["dims-not-4", "dims-short-for-two", "shapes-short", "shape-and-dim"],
)
def test_bad_legacy_inputs_raise_graph_error(text: str, fragment: str) -> None:
    with pytest.raises(GraphError) as info:
        upgrade_net(parse_net(text), source="bad_inputs.prototxt")
    message = str(info.value)
    assert "bad_inputs.prototxt" in message and "layer 'input'" in message and fragment in message
    assert info.value.file == "bad_inputs.prototxt" and info.value.layer == "input"


# ------------------------------------------------------------------------------- bad V0 / V1


@pytest.mark.parametrize(
    ("text", "error", "layer", "fragment"),
    [
        ('input: "x" layers { layer { name: "w" type: "warp_magic" } bottom: "x" top: "y" }', UnsupportedLayerError, "w", "warp_magic"),
        (
            'input: "x" input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4 '
            'layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "xp" } '
            'layers { layer { name: "r" type: "relu" } bottom: "xp" top: "y" }',
            GraphError, "r", "padding layer 'p'",
        ),
        ('layers { layer { name: "c" type: "conv" } bottom: "nowhere" top: "y" }', GraphError, "c", "nowhere"),
        ('layers { name: "a" type: RELU } layer { name: "b" type: "ReLU" }', GraphError, "b", "mixes"),
    ],
    ids=["unknown-v0-type", "padding-into-relu", "unknown-v0-bottom", "mixed-v1-v2"],
)
def test_bad_legacy_layers_raise(text: str, error: type[PosebridgeError], layer: str, fragment: str) -> None:
    with pytest.raises(error) as info:
        upgrade_net(parse_net(text), source="legacy.prototxt")
    message = str(info.value)
    assert "legacy.prototxt" in message and f"layer '{layer}'" in message and fragment in message


# ------------------------------------------------------------------------------------ BatchNorm


def test_batch_norm_with_three_param_specs_gets_zero_rates() -> None:
    text = """
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
            param { name: "m" lr_mult: 1 } param { lr_mult: 1 decay_mult: 2 } param { lr_mult: 1 } }
    layer { name: "bn2" type: "BatchNorm" bottom: "x" top: "x" param { lr_mult: 1 } }
    """
    upgraded, notes = upgrade_net(parse_net(text), source=SOURCE)
    specs = upgraded.layer[0].param
    assert [(s.name, s.lr_mult, s.decay_mult) for s in specs] == [("m", 0, 0), ("", 0, 0), ("", 0, 0)]
    assert [(s.lr_mult, s.HasField("decay_mult")) for s in upgraded.layer[1].param] == [(1, False)]
    assert any("'bn'" in note for note in notes) and not any("'bn2'" in note for note in notes)


# -------------------------------------------------------------------------------- phase filter

PHASED_TEXT = """
layer { name: "train_data" type: "Data" top: "x" include { phase: TRAIN } }
layer { name: "test_data" type: "Data" top: "x" include { phase: TEST } }
layer { name: "always" type: "ReLU" bottom: "x" top: "x" }
layer { name: "not_in_test" type: "Dropout" bottom: "x" top: "x" exclude { phase: TEST } }
layer { name: "deploy_only" type: "Softmax" bottom: "x" top: "p" include { stage: "deploy" } }
layer { name: "train_or_val" type: "Accuracy" bottom: "x" top: "a" include { stage: "train" } include { stage: "val" } }
layer { name: "not_deploy" type: "Silence" bottom: "x" include { not_stage: "deploy" } }
layer { name: "level_1_to_2" type: "ReLU" bottom: "x" top: "y" include { min_level: 1 max_level: 2 } }
layer { name: "own_phase" type: "Dropout" bottom: "x" top: "x" phase: TRAIN }
"""
ALL_PHASED = [l.name for l in parse_net(PHASED_TEXT).layer]


@pytest.mark.parametrize(
    ("phase", "level", "stages", "kept"),
    [
        ("TEST", 0, (), ["test_data", "always", "not_deploy", "own_phase"]),
        ("TRAIN", 0, (), ["train_data", "always", "not_in_test", "not_deploy", "own_phase"]),
        ("TEST", 0, ("deploy",), ["test_data", "always", "deploy_only", "own_phase"]),
        ("TEST", 0, ("val",), ["test_data", "always", "train_or_val", "not_deploy", "own_phase"]),
        ("TEST", 2, (), ["test_data", "always", "not_deploy", "level_1_to_2", "own_phase"]),
        ("TEST", 3, (), ["test_data", "always", "not_deploy", "own_phase"]),
        ("train", 1, ("train", "deploy"),
         ["train_data", "always", "not_in_test", "deploy_only", "train_or_val", "level_1_to_2", "own_phase"]),
    ],
)
def test_filter_phase_applies_state_rules(phase: str, level: int, stages: tuple[str, ...], kept: list[str]) -> None:
    filtered, removed = filter_phase(parse_net(PHASED_TEXT), phase=phase, level=level, stages=stages)
    assert [l.name for l in filtered.layer] == kept
    assert removed == [name for name in ALL_PHASED if name not in kept]
    assert filtered.state.phase == caffe_pb2.Phase.Value(phase.upper())
    assert filtered.state.level == level and list(filtered.state.stage) == list(stages)


def test_filter_phase_keeps_layers_unchanged() -> None:
    net = parse_net(PHASED_TEXT)
    filtered, _ = filter_phase(net)
    originals = {l.name: l for l in net.layer}
    for layer in filtered.layer:
        assert layer == originals[layer.name]


def test_filter_phase_on_v1_layers() -> None:
    net = parse_net('layers { name: "a" type: RELU include { phase: TRAIN } } layers { name: "b" type: RELU }')
    filtered, removed = filter_phase(net, phase="TEST")
    assert [l.name for l in filtered.layers] == ["b"] and removed == ["a"]


def test_filter_phase_rejects_include_and_exclude_together() -> None:
    net = parse_net('layer { name: "both" type: "ReLU" include { phase: TEST } exclude { stage: "x" } }')
    with pytest.raises(GraphError) as info:
        filter_phase(net, source="rules.prototxt")
    assert "rules.prototxt" in str(info.value) and "layer 'both'" in str(info.value)


def test_filter_phase_rejects_unknown_phase() -> None:
    with pytest.raises(GraphError, match="DEPLOY"):
        filter_phase(parse_net(PHASED_TEXT), phase="DEPLOY")


# --------------------------------------------------------------------- official OpenPose nets


@pytest.mark.parametrize("model", sorted(OFFICIAL_PROTOTXTS))
def test_official_prototxt_upgrades_to_one_input_layer(model: str) -> None:
    path = shared_path(OFFICIAL_PROTOTXTS[model])
    if path is None:
        pytest.skip(f"shared OpenPose prototxt for '{model}' not found (set POSEBRIDGE_SHARED or add ../shared)")
    original = text_format.Parse(path.read_text(encoding="utf-8"), caffe_pb2.NetParameter())
    assert list(original.input) and len(original.input_dim) == 4, "official nets use legacy input + input_dim"

    upgraded, notes = upgrade_net(original, source=str(path))

    input_layers = [l for l in upgraded.layer if l.type == "Input"]
    assert len(input_layers) == 1 and upgraded.layer[0] is not None
    first = upgraded.layer[0]
    assert (first.name, first.type, list(first.top)) == ("input", "Input", list(original.input))
    assert [list(s.dim) for s in first.input_param.shape] == [list(original.input_dim)]
    assert not upgraded.input and not upgraded.input_dim and not upgraded.layers
    assert list(upgraded.layer[1:]) == list(original.layer)
    assert len(notes) == 1
