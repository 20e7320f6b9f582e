"""The converter registry: one converter per type, clear errors for unsupported and Python layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from torch import nn

import helpers_caffe as hc
from posebridge.converter import registry
from posebridge.converter.registry import LayerSpec, convert_layer, converter_module_of, register, supported_types
from posebridge.errors import ForbiddenLayerError, UnsupportedLayerError
from posebridge.prototxt import caffe_pb2

# The types issue 3 asks for; each must have a converter.
REQUIRED_TYPES = (
    "Input", "Convolution", "Deconvolution", "InnerProduct", "Pooling",
    "ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "Threshold", "Clip",
    "Swish", "Dropout",
    "Concat", "Slice", "Split", "Silence", "Eltwise", "Flatten", "Reshape", "Softmax", "BatchNorm", "Scale",
    "Bias", "LRN", "Crop", "ArgMax",
)


@pytest.fixture
def private_registry(monkeypatch):
    """A copy of the registry for tests that register types, so the real one is left unchanged."""
    supported_types()  # load every family first
    monkeypatch.setattr(registry, "_CONVERTERS", dict(registry._CONVERTERS))  # noqa: SLF001


def identity(spec: LayerSpec) -> nn.Module:
    return nn.Identity()


def test_registering_a_type_twice_raises(private_registry):
    register("PosebridgeTestOnly")(identity)
    with pytest.raises(ValueError, match="PosebridgeTestOnly.*already registered"):
        register("PosebridgeTestOnly")(identity)


def test_registering_an_existing_family_type_raises_naming_its_module(private_registry):
    with pytest.raises(ValueError, match=r"'ReLU' is already registered \(posebridge\.converter\.layers\.activations\)"):
        register("ReLU")(identity)


def test_registering_several_types_at_once(private_registry):
    register("PosebridgeTestA", "PosebridgeTestB")(identity)
    assert {"PosebridgeTestA", "PosebridgeTestB"} <= set(supported_types())


def test_every_required_type_is_supported():
    missing = sorted(set(REQUIRED_TYPES) - set(supported_types()))
    assert not missing, f"no converter for {missing}"


def test_family_a_modules():
    expected = {"Convolution": "convolution", "Deconvolution": "convolution", "InnerProduct": "inner_product",
                "Pooling": "pooling", "Input": "input", "ReLU": "activations", "PReLU": "activations",
                "Dropout": "activations", "Swish": "activations"}
    for type_name, family in expected.items():
        assert converter_module_of(type_name) == f"posebridge.converter.layers.{family}"


def spec_of(text: str, source: str = "") -> LayerSpec:
    layer = hc.make_net(text, {"data": (2, 3, 5, 5)}).layer[1]
    return LayerSpec(name=layer.name, type=layer.type, layer=layer, input_shapes=[(2, 3, 5, 5)], source=source)


def test_unsupported_type_names_the_layer_its_type_and_the_supported_types():
    spec = spec_of('layer { name: "odd_one" type: "SPP" bottom: "data" top: "odd_one" }', source="net.prototxt")
    with pytest.raises(UnsupportedLayerError) as caught:
        convert_layer(spec)
    message = str(caught.value)
    assert "net.prototxt" in message and "layer 'odd_one'" in message and "'SPP'" in message
    listed = message.split("supported types:")[1]
    assert [name.strip() for name in listed.split(",")] == list(supported_types())
    assert caught.value.layer == "odd_one"


def test_unknown_type_outside_the_schema_is_unsupported():
    spec = spec_of('layer { name: "fork" type: "CPMData" bottom: "data" top: "fork" }')
    with pytest.raises(UnsupportedLayerError, match="'CPMData' is not supported"):
        convert_layer(spec)


def test_python_layer_is_refused_as_forbidden():
    spec = spec_of('layer { name: "py" type: "Python" bottom: "data" top: "py" '
                   'python_param { module: "os" layer: "system" } }')
    with pytest.raises(ForbiddenLayerError, match="layer 'py'.*Python layers"):
        convert_layer(spec)


def test_python_layer_cannot_be_registered_around_the_refusal(private_registry):
    register("Python")(identity)  # even a registered converter is never called for Python layers
    spec = spec_of('layer { name: "py" type: "Python" bottom: "data" top: "py" }')
    with pytest.raises(ForbiddenLayerError):
        convert_layer(spec)


def test_input_layer_passes_inputs_through_without_fixing_their_size():
    text = 'layer { name: "input" type: "Input" top: "a" top: "b" input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }'
    layer = text_format.Parse(text, caffe_pb2.NetParameter()).layer[0]
    module = convert_layer(LayerSpec(name="input", type="Input", layer=layer))
    a, b = torch.randn(2, 3, 5, 7), torch.randn(4, 3, 9, 3)
    out_a, out_b = module(a, b)
    assert out_a is a and out_b is b
    assert module.declared_shapes == ((1, 3, 8, 8), (1, 3, 8, 8))


def test_input_layer_checks_its_shape_count():
    text = ('layer { name: "input" type: "Input" top: "a" top: "b" top: "c" input_param { '
            "shape { dim: 1 } shape { dim: 2 } } }")
    layer = text_format.Parse(text, caffe_pb2.NetParameter()).layer[0]
    with pytest.raises(UnsupportedLayerError, match="3 tops but 2 input_param shapes"):
        convert_layer(LayerSpec(name="input", type="Input", layer=layer))


def test_helpers_run_a_small_net_against_opencv(tmp_path):
    """helpers_caffe end to end: make_net, with_weights, write_model, run_opencv, run_converted."""
    rng = np.random.default_rng(0)
    text = ('layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
            "convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }\n"
            'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
            'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
            "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n")
    net = hc.make_net(text, {"data": (2, 3, 9, 7)})
    blobs = {"conv": [rng.standard_normal((4, 3, 3, 3)).astype(np.float32), np.zeros(4, np.float32)]}
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    converted = hc.run_converted(net, blobs, {"data": x})
    prototxt, caffemodel = hc.write_model(tmp_path, hc.with_weights(net, blobs))
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["conv", "relu", "pool"])
    assert opencv["pool"].shape == converted["pool"].shape == (2, 4, 5, 4)
    for name in ("conv", "relu", "pool"):
        hc.assert_close(converted[name], opencv[name], 1e-4, name)
    assert converted["relu"].min() >= 0 and converted["conv"].min() < 0  # in-place ReLU kept per layer
