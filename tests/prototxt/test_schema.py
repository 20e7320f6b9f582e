"""The Caffe schema: the committed caffe_pb2 is fresh, and field/enum numbers are BVLC's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from posebridge.prototxt import caffe_pb2
from posebridge.tools import regen_schema

# (message, field, BVLC field number)
BVLC_FIELD_NUMBERS = [
    ("NetParameter", "name", 1),
    ("NetParameter", "layers", 2),
    ("NetParameter", "input", 3),
    ("NetParameter", "input_dim", 4),
    ("NetParameter", "input_shape", 8),
    ("NetParameter", "layer", 100),
    ("BlobProto", "data", 5),
    ("BlobProto", "shape", 7),
    ("BlobProto", "double_data", 8),
    ("LayerParameter", "phase", 10),
    ("LayerParameter", "include", 8),
    ("LayerParameter", "transform_param", 100),
    ("LayerParameter", "loss_param", 101),
    ("LayerParameter", "convolution_param", 106),
    ("LayerParameter", "pooling_param", 121),
    ("LayerParameter", "batch_norm_param", 139),
    ("LayerParameter", "input_param", 143),
    ("LayerParameter", "recurrent_param", 146),
    ("LayerParameter", "swish_param", 147),
    ("LayerParameter", "clip_param", 148),
    ("ConvolutionParameter", "dilation", 18),
    ("ConvolutionParameter", "stride", 6),
    ("PoolingParameter", "round_mode", 13),
    ("V1LayerParameter", "layer", 1),
    ("V1LayerParameter", "convolution_param", 10),
    ("V1LayerParameter", "param", 1001),
    ("V1LayerParameter", "blob_share_mode", 1002),
    ("V0LayerParameter", "blobs", 50),
    ("V0LayerParameter", "hdf5_output_param", 1001),
]

# (enum full name, value name, number)
BVLC_ENUM_VALUES = [
    ("caffe.Phase", "TEST", 1),
    ("caffe.PoolingParameter.PoolMethod", "STOCHASTIC", 2),
    ("caffe.ConvolutionParameter.Engine", "CUDNN", 2),
    ("caffe.EltwiseParameter.EltwiseOp", "MAX", 2),
    ("caffe.V1LayerParameter.LayerType", "DECONVOLUTION", 39),
    ("caffe.V1LayerParameter.LayerType", "ABSVAL", 35),
    ("caffe.V1LayerParameter.LayerType", "SPLIT", 22),
    ("caffe.V1LayerParameter.LayerType", "THRESHOLD", 31),
]

STANDARD_LAYER_PARAMS = (
    "accuracy argmax batch_norm bias clip concat contrastive_loss convolution crop data dropout "
    "dummy_data eltwise elu embed exp flatten hdf5_data hdf5_output hinge_loss image_data "
    "infogain_loss inner_product input log lrn memory_data mvn parameter pooling power prelu python "
    "recurrent reduction relu reshape scale sigmoid softmax spp slice swish tanh threshold tile "
    "window_data loss transform"
).split()


def _fresh_or_skip(proto_dir: Path = regen_schema.PROTO_DIR) -> bytes:
    try:
        return regen_schema.generate_module(proto_dir)
    except regen_schema.GeneratorUnavailable as exc:
        pytest.skip(f"pinned schema generator unavailable: {exc}")


def test_committed_module_matches_fresh_generation() -> None:
    committed = (regen_schema.PROTO_DIR / regen_schema.MODULE_NAME).read_bytes()
    assert committed == _fresh_or_skip(), "caffe_pb2.py is stale: run python tools/regen_schema.py"


def test_generation_reflects_schema_edits(tmp_path: Path) -> None:
    """A changed proto gives a different module, so the staleness check can fail."""
    shutil.copy(regen_schema.PROTO_DIR / regen_schema.PROTO_NAME, tmp_path / regen_schema.PROTO_NAME)
    baseline = _fresh_or_skip(tmp_path)
    edited = tmp_path / regen_schema.PROTO_NAME
    edited.write_text(edited.read_text() + "\nmessage ExtraForTest { optional int32 x = 1; }\n")
    assert regen_schema.generate_module(tmp_path) != baseline


def test_check_mode_exit_code() -> None:
    fresh = _fresh_or_skip()
    committed = (regen_schema.PROTO_DIR / regen_schema.MODULE_NAME).read_bytes()
    expected = regen_schema.EXIT_OK if committed == fresh else regen_schema.EXIT_STALE
    assert regen_schema.main(["--check"]) == expected


@pytest.mark.parametrize(("message", "field", "number"), BVLC_FIELD_NUMBERS)
def test_field_numbers_match_bvlc(message: str, field: str, number: int) -> None:
    descriptor = getattr(caffe_pb2, message).DESCRIPTOR
    assert descriptor.fields_by_name[field].number == number


@pytest.mark.parametrize(("enum", "name", "number"), BVLC_ENUM_VALUES)
def test_enum_values_match_bvlc(enum: str, name: str, number: int) -> None:
    enum_descriptor = caffe_pb2.DESCRIPTOR.pool.FindEnumTypeByName(enum)
    assert enum_descriptor.values_by_name[name].number == number


@pytest.mark.parametrize("prefix", STANDARD_LAYER_PARAMS)
def test_every_standard_layer_has_its_param(prefix: str) -> None:
    assert f"{prefix}_param" in caffe_pb2.LayerParameter.DESCRIPTOR.fields_by_name


def test_binary_wire_format_uses_bvlc_numbers() -> None:
    """A hand-encoded NetParameter (field 100, layer name field 1) decodes as expected."""
    name = b"conv1"
    layer = b"\x0a" + bytes([len(name)]) + name  # LayerParameter.name = 1, length-delimited
    wire = b"\xa2\x06" + bytes([len(layer)]) + layer  # NetParameter.layer = 100 -> tag 0x322
    net = caffe_pb2.NetParameter.FromString(wire)
    assert [l.name for l in net.layer] == ["conv1"]
