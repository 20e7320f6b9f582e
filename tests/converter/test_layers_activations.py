"""Activations (Caffe NeuronLayers): every type and parameter, against the numpy reference and OpenCV dnn.

Known OpenCV dnn 4.x differences from Caffe (each checked by running OpenCV):
* Threshold and Clip: no such layer in OpenCV's Caffe importer ("Can't create layer");
* Log: log_param (base, scale, shift) is ignored, OpenCV computes ln(x);
* Swish: swish_param.beta is ignored, OpenCV computes x * sigmoid(x).
Those cases are compared with the numpy reference only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers_caffe as hc
from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.errors import ShapeError, WeightsError

ref = hc.load_reference("reference_a")

RTOL_REFERENCE = 1e-5
RTOL_OPENCV = 1e-4
SHAPE = (2, 3, 5, 7)  # batch 2 != 3 channels, odd H and W


def sample(kind: str, shape=SHAPE, seed: int = 0) -> np.ndarray:
    """Test inputs: 'real' spans [-6, 6] with exact zeros, 'positive' stays in (0.05, 6]."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6, 6, size=shape).astype(np.float32)
    x.reshape(-1)[::11] = 0.0
    if kind == "positive":
        x = np.abs(x) + np.float32(0.05)
    return x


# name -> (Caffe type, parameter text, input kind, numpy reference, reason OpenCV is skipped or None)
CASES = {
    "relu": ("ReLU", "", "real", ref.relu, None),
    "relu_leaky": ("ReLU", "relu_param { negative_slope: 0.1 }", "real", lambda x: ref.relu(x, 0.1), None),
    "elu": ("ELU", "", "real", ref.elu, None),
    "elu_alpha": ("ELU", "elu_param { alpha: 0.5 }", "real", lambda x: ref.elu(x, 0.5), None),
    "sigmoid": ("Sigmoid", "", "real", ref.sigmoid, None),
    "tanh": ("TanH", "", "real", ref.tanh, None),
    "absval": ("AbsVal", "", "real", ref.absval, None),
    "power_square": ("Power", "power_param { power: 2 scale: 0.5 shift: 1 }", "real",
                     lambda x: ref.power(x, 2, 0.5, 1), None),
    "power_sqrt_nan": ("Power", "power_param { power: 0.5 scale: 2 shift: 1 }", "real",
                       lambda x: ref.power(x, 0.5, 2, 1), None),
    "power_scale_zero": ("Power", "power_param { power: 3 scale: 0 shift: 2 }", "real",
                         lambda x: ref.power(x, 3, 0, 2), None),
    "power_zero": ("Power", "power_param { power: 0 scale: 3 shift: -1 }", "real",
                   lambda x: ref.power(x, 0, 3, -1), None),
    "power_identity": ("Power", "", "real", ref.power, None),
    "exp": ("Exp", "", "real", ref.exp, None),
    "exp_base2": ("Exp", "exp_param { base: 2 scale: 0.5 shift: 1 }", "real", lambda x: ref.exp(x, 2, 0.5, 1), None),
    "exp_e_shift": ("Exp", "exp_param { scale: 0.7 shift: 1.5 }", "real", lambda x: ref.exp(x, -1, 0.7, 1.5), None),
    "log": ("Log", "", "positive", ref.log, None),
    "log_base10": ("Log", "log_param { base: 10 scale: 2 shift: 1 }", "positive",
                   lambda x: ref.log(x, 10, 2, 1), "OpenCV ignores log_param"),
    "log_negative_nan": ("Log", "log_param { shift: -2 }", "positive", lambda x: ref.log(x, -1, 1, -2),
                         "OpenCV ignores log_param"),
    "bnll": ("BNLL", "", "real", ref.bnll, None),
    "threshold": ("Threshold", "threshold_param { threshold: 0.5 }", "real", lambda x: ref.threshold(x, 0.5),
                  "OpenCV has no Threshold layer"),
    "threshold_zero": ("Threshold", "", "real", ref.threshold, "OpenCV has no Threshold layer"),
    "clip": ("Clip", "clip_param { min: -1 max: 2 }", "real", lambda x: ref.clip(x, -1, 2),
             "OpenCV has no Clip layer"),
    "clip_min_above_max": ("Clip", "clip_param { min: 1 max: -1 }", "real", lambda x: ref.clip(x, 1, -1),
                           "OpenCV has no Clip layer"),
    "swish": ("Swish", "", "real", ref.swish, None),
    "swish_beta": ("Swish", "swish_param { beta: 1.5 }", "real", lambda x: ref.swish(x, 1.5),
                   "OpenCV ignores swish_param.beta"),
    "dropout": ("Dropout", "dropout_param { dropout_ratio: 0.3 }", "real", ref.dropout, None),
}


def layer_text(layer_type: str, params: str, top: str = "act") -> str:
    return f'layer {{ name: "act" type: "{layer_type}" bottom: "data" top: "{top}" {params} }}\n'


def assert_matches(got: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected), err_msg=f"{what}: NaN positions")
    valid = ~np.isnan(expected)
    hc.assert_close(got[valid], expected[valid], rtol, what)


@pytest.mark.parametrize("case", sorted(CASES))
def test_activation_against_reference_and_opencv(tmp_path, case):
    layer_type, params, kind, reference, opencv_skip = CASES[case]
    x = sample(kind)
    expected = reference(x)
    net = hc.make_net(layer_text(layer_type, params), {"data": SHAPE})
    converted = hc.run_converted(net, {}, {"data": x})["act"]
    assert_matches(converted, expected, RTOL_REFERENCE, f"{case} vs numpy reference")
    if opencv_skip:
        return
    prototxt, caffemodel = hc.write_model(tmp_path, net)
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["act"])["act"]
    assert_matches(opencv, expected, RTOL_OPENCV, f"OpenCV {case} vs numpy reference")


def test_in_place_layers_leave_their_input_untouched():
    for case, (layer_type, params, kind, reference, _) in CASES.items():
        x = torch.from_numpy(sample(kind))
        before = x.clone()
        net = hc.make_net(layer_text(layer_type, params, top="data"), {"data": SHAPE})
        layer = net.layer[1]
        module = convert_layer(LayerSpec(name=layer.name, type=layer.type, layer=layer, input_shapes=[SHAPE]))
        module(x)
        assert torch.equal(torch.nan_to_num(x), torch.nan_to_num(before)), case


def test_extreme_inputs_follow_caffe():
    x = np.array([-1e4, -100, -30, -1e-8, 0, 1e-8, 30, 100, 1e4], dtype=np.float32).reshape(1, 9, 1, 1)
    for layer_type, reference in (("BNLL", ref.bnll), ("Sigmoid", ref.sigmoid), ("ELU", ref.elu),
                                  ("TanH", ref.tanh), ("Swish", ref.swish)):
        net = hc.make_net(layer_text(layer_type, ""), {"data": x.shape})
        got = hc.run_converted(net, {}, {"data": x})["act"]
        assert np.all(np.isfinite(got)), layer_type
        assert_matches(got, reference(x), RTOL_REFERENCE, layer_type)


def test_power_zero_ignores_input_even_nan():
    x = np.array([np.nan, -1, 0, 2], dtype=np.float32).reshape(1, 4, 1, 1)
    net = hc.make_net(layer_text("Power", "power_param { power: 0 shift: -3 }"), {"data": x.shape})
    np.testing.assert_array_equal(hc.run_converted(net, {}, {"data": x})["act"], np.ones_like(x))


def prelu_net(shape, shared: bool):
    text = ('layer { name: "act" type: "PReLU" bottom: "data" top: "act" '
            f"prelu_param {{ channel_shared: {'true' if shared else 'false'} }} }}\n")
    return hc.make_net(text, {"data": shape})


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 3), (2, 5, 9)], ids=["4d", "2d", "3d"])
@pytest.mark.parametrize("shared", [False, True], ids=["per_channel", "shared"])
def test_prelu_against_reference_and_opencv(tmp_path, shape, shared):
    rng = np.random.default_rng(1)
    x = rng.uniform(-4, 4, size=shape).astype(np.float32)
    slopes = rng.uniform(-0.5, 1.5, size=1 if shared else shape[1]).astype(np.float32)
    expected = ref.prelu(x, slopes, shared)
    net = prelu_net(shape, shared)
    converted = hc.run_converted(net, {"act": [slopes]}, {"data": x})["act"]
    hc.assert_close(converted, expected, RTOL_REFERENCE, "PReLU vs numpy reference")
    assert not np.allclose(expected, ref.relu(x)), "slopes must matter in this test"
    if len(shape) != 4:
        return  # OpenCV's Input layer here is used with 4-D blobs only
    prototxt, caffemodel = hc.write_model(tmp_path, hc.with_weights(net, {"act": [slopes]}))
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["act"])["act"]
    hc.assert_close(opencv, expected, RTOL_OPENCV, "OpenCV PReLU vs numpy reference")


def test_prelu_slope_count_is_checked():
    layer = prelu_net(SHAPE, shared=False).layer[1]
    with pytest.raises(WeightsError, match=r"layer 'act'.*2 slopes for 3 channels"):
        convert_layer(LayerSpec(name="act", type="PReLU", layer=layer, blobs=[np.ones(2, np.float32)],
                                input_shapes=[SHAPE]))
    shared = prelu_net(SHAPE, shared=True).layer[1]
    with pytest.raises(WeightsError, match="channel_shared"):
        convert_layer(LayerSpec(name="act", type="PReLU", layer=shared, blobs=[np.ones(3, np.float32)],
                                input_shapes=[SHAPE]))
    with pytest.raises(WeightsError, match="expected 1 blob"):
        convert_layer(LayerSpec(name="act", type="PReLU", layer=layer, blobs=[], input_shapes=[SHAPE]))


@pytest.mark.parametrize("layer_type,params,message", [
    ("Exp", "exp_param { base: 0 }", "strictly positive"),
    ("Exp", "exp_param { base: -2 }", "strictly positive"),
    ("Log", "log_param { base: 1 }", "Caffe refuses"),
    ("Clip", "clip_param { min: 0 }", "max"),
    ("Clip", "", "min and max"),
])
def test_parameters_caffe_refuses_are_refused(layer_type, params, message):
    layer = hc.make_net(layer_text(layer_type, params), {"data": SHAPE}).layer[1]
    with pytest.raises(ShapeError, match=message):
        convert_layer(LayerSpec(name="act", type=layer_type, layer=layer, input_shapes=[SHAPE]))


def test_dropout_is_identity_module():
    layer = hc.make_net(layer_text("Dropout", ""), {"data": SHAPE}).layer[1]
    module = convert_layer(LayerSpec(name="act", type="Dropout", layer=layer, input_shapes=[SHAPE]))
    module.train()  # even in training mode: the conversion is for inference
    x = torch.from_numpy(sample("real"))
    assert torch.equal(module(x), x)


def test_onnx_export_of_every_activation():
    """Each module exports with dynamic N, H, W and gives the same values at other sizes."""
    inputs_real = [sample("real", (1, 3, 4, 6), seed=2), sample("real", (3, 3, 7, 3), seed=3)]
    inputs_positive = [sample("positive", (1, 3, 4, 6), seed=2), sample("positive", (3, 3, 7, 3), seed=3)]
    for case, (layer_type, params, kind, reference, _) in CASES.items():
        layer = hc.make_net(layer_text(layer_type, params), {"data": SHAPE}).layer[1]
        module = convert_layer(LayerSpec(name="act", type=layer_type, layer=layer, input_shapes=[SHAPE]))
        inputs = inputs_positive if kind == "positive" else inputs_real
        for x, y in zip(inputs, hc.onnx_outputs(module, torch.zeros(SHAPE), inputs)):
            assert_matches(y, reference(x), RTOL_REFERENCE, f"ONNX {case}")
