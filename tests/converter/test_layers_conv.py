"""Convolution and Deconvolution: Caffe's geometry rules, against the numpy reference and OpenCV dnn.

Every case runs at odd sizes (not multiples of the stride), batch 2, batch != channels.
The expected geometry of each case is written out by hand, so a parameter-parsing bug in the
converter cannot hide behind the reference.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import helpers_caffe as hc
from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.errors import ShapeError, UnsupportedLayerError, WeightsError

ref = hc.load_reference("reference_a")

RTOL_REFERENCE = 1e-5
RTOL_OPENCV = 1e-4


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: one torch thread avoids thread wake-up costs on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def param_text(fields: dict) -> str:
    """``convolution_param { ... }`` body from a dict; list values become repeated fields."""
    parts = []
    for name, value in fields.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            parts.append(f"{name}: {text}")
    return " ".join(parts)


def layer_text(layer_type: str, fields: dict, bottom: str = "data", name: str = "layer") -> str:
    return (f'layer {{ name: "{name}" type: "{layer_type}" bottom: "{bottom}" top: "{name}" '
            f"convolution_param {{ {param_text(fields)} }} }}\n")


def spec_of(layer_type: str, fields: dict, blobs, input_shape) -> LayerSpec:
    net = hc.make_net(layer_text(layer_type, fields), {"data": input_shape})
    layer = net.layer[1]
    return LayerSpec(name=layer.name, type=layer.type, layer=layer, blobs=list(blobs), input_shapes=[input_shape])


# (prototxt fields, input shape, expected (kernel, stride, pad, dilation), group)
CONV_CASES = {
    "single_values": ({"num_output": 5, "kernel_size": 3, "pad": 1, "stride": 2}, (2, 3, 9, 11),
                      ((3, 3), (2, 2), (1, 1), (1, 1)), 1),
    "h_w_fields_grouped": ({"num_output": 6, "kernel_h": 2, "kernel_w": 3, "pad_h": 1, "pad_w": 0,
                            "stride_h": 2, "stride_w": 3, "group": 2}, (2, 4, 7, 10), ((2, 3), (2, 3), (1, 0), (1, 1)), 2),
    "repeated_per_axis_dilated": ({"num_output": 4, "kernel_size": [3, 1], "pad": [1, 0], "stride": [1, 2],
                                   "dilation": [2, 1]}, (2, 3, 9, 7), ((3, 1), (1, 2), (1, 0), (2, 1)), 1),
    "depthwise_no_bias": ({"num_output": 3, "kernel_size": 3, "pad": 2, "dilation": 2, "group": 3,
                           "bias_term": False}, (2, 3, 8, 5), ((3, 3), (1, 1), (2, 2), (2, 2)), 3),
    "one_by_one": ({"num_output": 7, "kernel_size": 1}, (2, 5, 3, 9), ((1, 1), (1, 1), (0, 0), (1, 1)), 1),
    "big_stride_big_pad": ({"num_output": 2, "kernel_size": 5, "stride": 3, "pad": 4}, (2, 3, 13, 5),
                           ((5, 5), (3, 3), (4, 4), (1, 1)), 1),
    "pad_only_h": ({"num_output": 4, "kernel_size": 3, "pad_h": 2}, (2, 3, 6, 7), ((3, 3), (1, 1), (2, 0), (1, 1)), 1),
}

DECONV_CASES = {
    "upsample_x2": ({"num_output": 4, "kernel_size": 4, "stride": 2, "pad": 1}, (2, 3, 5, 7),
                    ((4, 4), (2, 2), (1, 1), (1, 1)), 1),
    "h_w_fields_grouped": ({"num_output": 6, "kernel_h": 3, "kernel_w": 2, "stride_h": 3, "stride_w": 2,
                            "pad_h": 1, "pad_w": 0, "group": 2}, (2, 4, 5, 3), ((3, 2), (3, 2), (1, 0), (1, 1)), 2),
    "dilated_no_bias": ({"num_output": 3, "kernel_size": 3, "dilation": 2, "pad": 2, "bias_term": False},
                        (2, 5, 7, 6), ((3, 3), (1, 1), (2, 2), (2, 2)), 1),
    "pad_at_kernel": ({"num_output": 2, "kernel_size": 3, "stride": 2, "pad": 2}, (2, 3, 9, 5),
                      ((3, 3), (2, 2), (2, 2), (1, 1)), 1),
    "repeated_per_axis": ({"num_output": 5, "kernel_size": [2, 5], "stride": [1, 3], "pad": [0, 1]},
                          (2, 3, 4, 5), ((2, 5), (1, 3), (0, 1), (1, 1)), 1),
}


def conv_blobs(rng, fields, in_channels, kernel, group, deconv: bool):
    out = fields["num_output"]
    shape = (in_channels, out // group, *kernel) if deconv else (out, in_channels // group, *kernel)
    blobs = [rng.standard_normal(shape).astype(np.float32)]
    if fields.get("bias_term", True):
        blobs.append(rng.standard_normal(out).astype(np.float32))
    return blobs


def run_case(tmp_path, layer_type, fields, input_shape, geometry, group, seed):
    rng = np.random.default_rng(seed)
    deconv = layer_type == "Deconvolution"
    kernel, stride, pad, dilation = geometry
    blobs = conv_blobs(rng, fields, input_shape[1], kernel, group, deconv)
    x = rng.standard_normal(input_shape).astype(np.float32)
    reference = (ref.deconvolution if deconv else ref.convolution)(
        x, blobs[0], blobs[1] if len(blobs) > 1 else None, kernel, stride, pad, dilation, group)
    net = hc.make_net(layer_text(layer_type, fields), {"data": input_shape})
    converted = hc.run_converted(net, {"layer": blobs}, {"data": x})["layer"]
    hc.assert_close(converted, reference, RTOL_REFERENCE, f"{layer_type} vs numpy reference")
    return net, blobs, x, reference


# OpenCV dnn's Caffe importer reads pad_h/pad_w (and stride_h/w, kernel_h/w) only when BOTH are
# given and otherwise falls back to `pad` (default 0); Caffe takes pad_h/pad_w as soon as either
# is set (the other defaulting to 0). So `pad_h: 2` alone pads H in Caffe and not in OpenCV.
OPENCV_CONV_SKIP = {"pad_only_h"}


@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_convolution_matches_reference_and_opencv(tmp_path, case):
    fields, shape, geometry, group = CONV_CASES[case]
    net, blobs, x, reference = run_case(tmp_path, "Convolution", fields, shape, geometry, group, seed=1)
    if case in OPENCV_CONV_SKIP:
        return
    prototxt, caffemodel = hc.write_model(tmp_path, hc.with_weights(net, {"layer": blobs}))
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["layer"])["layer"]
    hc.assert_close(opencv, reference, RTOL_OPENCV, "OpenCV Convolution vs numpy reference")


# OpenCV dnn's deconvolution ignores Caffe's dilation (its output size and taps assume dilation 1),
# so dilated deconvolution is compared with the numpy reference only (checked: 7x6 input, k 3,
# d 2, p 2 gives 5x4 in OpenCV against Caffe's 7x6).
OPENCV_DECONV_SKIP = {"dilated_no_bias"}


@pytest.mark.parametrize("case", sorted(DECONV_CASES))
def test_deconvolution_matches_reference_and_opencv(tmp_path, case):
    fields, shape, geometry, group = DECONV_CASES[case]
    net, blobs, x, reference = run_case(tmp_path, "Deconvolution", fields, shape, geometry, group, seed=2)
    kernel, stride, pad, dilation = geometry
    for axis in range(2):  # Caffe's output size, which ConvTranspose2d gives with output_padding 0
        expected = stride[axis] * (shape[2 + axis] - 1) + dilation[axis] * (kernel[axis] - 1) + 1 - 2 * pad[axis]
        assert reference.shape[2 + axis] == expected
    if case in OPENCV_DECONV_SKIP:
        return
    prototxt, caffemodel = hc.write_model(tmp_path, hc.with_weights(net, {"layer": blobs}))
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["layer"])["layer"]
    hc.assert_close(opencv, reference, RTOL_OPENCV, "OpenCV Deconvolution vs numpy reference")


@pytest.mark.parametrize("layer_type", ["Convolution", "Deconvolution"])
def test_geometry_sweep_against_reference(layer_type):
    """Every kernel 1..3 x stride 1..3 x pad 0..2 x dilation 1..2 x group 1..2 on odd sizes."""
    rng = np.random.default_rng(3)
    deconv = layer_type == "Deconvolution"
    checked = 0
    for k, s, p, d, g in itertools.product((1, 2, 3), (1, 2, 3), (0, 1, 2), (1, 2), (1, 2)):
        shape = (2, 2 * g, 7, 5)
        fields = {"num_output": 3 * g, "kernel_h": k, "kernel_w": 4 - k, "stride": s, "pad": p, "dilation": d,
                  "group": g}
        kernel = (k, 4 - k)
        extent = [d * (kk - 1) + 1 for kk in kernel]
        if deconv:
            sizes = [s * (shape[2 + i] - 1) + extent[i] - 2 * p for i in range(2)]
        else:
            sizes = [(shape[2 + i] + 2 * p - extent[i]) // s + 1 for i in range(2)]
        if min(sizes) <= 0:
            continue
        blobs = conv_blobs(rng, fields, shape[1], kernel, g, deconv)
        x = rng.standard_normal(shape).astype(np.float32)
        module = convert_layer(spec_of(layer_type, fields, blobs, shape))
        with torch.no_grad():
            got = module(torch.from_numpy(x)).numpy()
        expected = (ref.deconvolution if deconv else ref.convolution)(
            x, blobs[0], blobs[1], kernel, (s, s), (p, p), (d, d), g)
        assert got.shape == expected.shape == (2, 3 * g, *sizes)
        hc.assert_close(got, expected, RTOL_REFERENCE, f"{layer_type} k={kernel} s={s} p={p} d={d} g={g}")
        checked += 1
    assert checked > 60


def test_convolution_multiple_bottoms_share_weights():
    rng = np.random.default_rng(4)
    text = ('layer { name: "layer" type: "Convolution" bottom: "a" bottom: "b" top: "ya" top: "yb" '
            "convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }\n")
    net = hc.make_net(text, {"a": (2, 3, 5, 7), "b": (2, 3, 5, 7)})
    blobs = [rng.standard_normal((2, 3, 3, 3)).astype(np.float32), rng.standard_normal(2).astype(np.float32)]
    a, b = (rng.standard_normal((2, 3, 5, 7)).astype(np.float32) for _ in range(2))
    tops = hc.run_converted_all(net, {"layer": blobs}, {"a": a, "b": b})["layer"]
    for top, x in zip(tops, (a, b)):
        hc.assert_close(top, ref.convolution(x, *blobs, (3, 3), (1, 1), (1, 1), (1, 1), 1), RTOL_REFERENCE)


@pytest.mark.parametrize("layer_type", ["Convolution", "Deconvolution"])
def test_onnx_export_runs_at_other_sizes(layer_type):
    rng = np.random.default_rng(5)
    fields = {"num_output": 4, "kernel_size": 3, "stride": 2, "pad": 1, "group": 2}
    blobs = conv_blobs(rng, fields, 4, (3, 3), 2, layer_type == "Deconvolution")
    module = convert_layer(spec_of(layer_type, fields, blobs, (2, 4, 9, 9)))
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in ((1, 4, 7, 5), (3, 4, 10, 13))]
    outputs = hc.onnx_outputs(module, torch.zeros(2, 4, 9, 9), inputs)
    for x, y in zip(inputs, outputs):
        with torch.no_grad():
            hc.assert_close(y, module(torch.from_numpy(x)).numpy(), RTOL_REFERENCE, "ONNX vs torch")


def make_spec(layer_type, fields, blobs, shape=(2, 3, 7, 7)):
    return spec_of(layer_type, fields, blobs, shape)


def test_channel_axis_other_than_one_is_unsupported():
    blobs = [np.zeros((2, 3, 3, 3), np.float32), np.zeros(2, np.float32)]
    with pytest.raises(UnsupportedLayerError, match="axis 2"):
        convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": 3, "axis": 2}, blobs))
    # axis -3 of a 4-D blob is axis 1.
    convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": 3, "axis": -3}, blobs))


def test_kernel_given_twice_or_missing_is_refused():
    blobs = [np.zeros((2, 3, 3, 3), np.float32), np.zeros(2, np.float32)]
    with pytest.raises(ShapeError, match="kernel"):
        convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": 3, "kernel_h": 3, "kernel_w": 3},
                                blobs))
    with pytest.raises(ShapeError, match="kernel_size"):
        convert_layer(make_spec("Convolution", {"num_output": 2}, blobs))
    with pytest.raises(UnsupportedLayerError, match="3 values"):
        convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": [3, 3, 3]}, blobs))


def test_wrong_weight_shape_names_layer_and_shapes():
    blobs = [np.zeros((2, 3, 3, 2), np.float32), np.zeros(2, np.float32)]
    with pytest.raises(WeightsError, match=r"layer 'layer'.*\[2, 3, 3, 2\].*\[2, 3, 3, 3\]"):
        convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": 3}, blobs))
    with pytest.raises(WeightsError, match="expected 1 blobs"):
        convert_layer(make_spec("Convolution", {"num_output": 2, "kernel_size": 3, "bias_term": False}, blobs))


def test_deconvolution_weight_layout_is_input_channels_first():
    # [C_in, C_out/group, kh, kw]: the convolution layout is refused.
    wrong = [np.zeros((4, 3, 3, 3), np.float32), np.zeros(4, np.float32)]
    with pytest.raises(WeightsError):
        convert_layer(make_spec("Deconvolution", {"num_output": 4, "kernel_size": 3}, wrong))
    right = [np.zeros((3, 4, 3, 3), np.float32), np.zeros(4, np.float32)]
    assert isinstance(convert_layer(make_spec("Deconvolution", {"num_output": 4, "kernel_size": 3}, right)),
                      torch.nn.ConvTranspose2d)

