"""InnerProduct: axis (flatten from it), transpose (weights [K, N]), bias_term.

Known OpenCV dnn 4.x differences from Caffe (each checked by running OpenCV):
* ``transpose: true`` is ignored: OpenCV reads the [K, N] blob as if it were [N, K];
* ``axis: 0`` gives a [N, 1] top in OpenCV where Caffe's is [N] (same values).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import helpers_caffe as hc
from posebridge.converter.layers.inner_product import InnerProduct
from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.errors import ShapeError, WeightsError

ref = hc.load_reference("reference_a")

RTOL_REFERENCE = 1e-5
RTOL_OPENCV = 1e-4
NUM_OUTPUT = 4

# name -> (input shape, axis, transpose, bias_term, expected top shape)
CASES = {
    "axis1_4d": ((2, 3, 5, 7), 1, False, True, (2, 4)),
    "axis1_transpose": ((2, 3, 5, 7), 1, True, True, (2, 4)),
    "axis2_no_bias": ((2, 3, 5, 7), 2, False, False, (2, 3, 4)),
    "axis_last_transpose": ((2, 3, 5, 7), -1, True, True, (2, 3, 5, 4)),
    "axis0": ((2, 3, 5, 7), 0, False, True, (4,)),
    "axis1_2d": ((2, 10), 1, False, True, (2, 4)),
    "axis_minus3": ((2, 3, 5, 7), -3, False, True, (2, 4)),
}
OPENCV_SKIP = {"axis1_transpose": "OpenCV ignores transpose", "axis_last_transpose": "OpenCV ignores transpose"}
OPENCV_RESHAPE = {"axis0"}  # OpenCV's top is [N, 1]


def ip_text(axis: int, transpose: bool, bias: bool, num_output: int = NUM_OUTPUT) -> str:
    return ('layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { '
            f"num_output: {num_output} axis: {axis} transpose: {str(transpose).lower()} "
            f"bias_term: {str(bias).lower()} }} }}\n")


def case_blobs(rng, shape, axis, transpose, bias):
    start = axis + len(shape) if axis < 0 else axis
    k = int(np.prod(shape[start:]))
    weight = rng.standard_normal((k, NUM_OUTPUT) if transpose else (NUM_OUTPUT, k)).astype(np.float32)
    return [weight] + ([rng.standard_normal(NUM_OUTPUT).astype(np.float32)] if bias else [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_inner_product_against_reference_and_opencv(tmp_path, case):
    shape, axis, transpose, bias, top_shape = CASES[case]
    rng = np.random.default_rng(0)
    blobs = case_blobs(rng, shape, axis, transpose, bias)
    x = rng.standard_normal(shape).astype(np.float32)
    expected = ref.inner_product(x, blobs[0], blobs[1] if bias else None, axis, transpose)
    assert expected.shape == top_shape
    net = hc.make_net(ip_text(axis, transpose, bias), {"data": shape})
    converted = hc.run_converted(net, {"ip": blobs}, {"data": x})["ip"]
    hc.assert_close(converted, expected, RTOL_REFERENCE, f"{case} vs numpy reference")
    if case in OPENCV_SKIP:
        return
    prototxt, caffemodel = hc.write_model(tmp_path, hc.with_weights(net, {"ip": blobs}))
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["ip"])["ip"]
    if case in OPENCV_RESHAPE:
        assert opencv.shape == (*top_shape, 1)
        opencv = opencv.reshape(top_shape)
    hc.assert_close(opencv, expected, RTOL_OPENCV, f"OpenCV {case} vs numpy reference")


def test_transpose_stores_weight_as_linear_layout():
    rng = np.random.default_rng(1)
    blobs = case_blobs(rng, (2, 3, 5, 7), 1, True, True)
    layer = hc.make_net(ip_text(1, True, True), {"data": (2, 3, 5, 7)}).layer[1]
    module = convert_layer(LayerSpec(name="ip", type="InnerProduct", layer=layer, blobs=blobs,
                                     input_shapes=[(2, 3, 5, 7)]))
    assert isinstance(module, InnerProduct)
    np.testing.assert_array_equal(module.linear.weight.detach().numpy(), blobs[0].T)


def test_onnx_export_with_dynamic_leading_axes():
    """axis -1: only the last axis is flattened, so batch and height may change."""
    rng = np.random.default_rng(2)
    blobs = case_blobs(rng, (2, 3, 5, 7), -1, False, True)
    layer = hc.make_net(ip_text(-1, False, True), {"data": (2, 3, 5, 7)}).layer[1]
    module = convert_layer(LayerSpec(name="ip", type="InnerProduct", layer=layer, blobs=blobs,
                                     input_shapes=[(2, 3, 5, 7)]))
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in ((1, 3, 4, 7), (3, 3, 9, 7))]
    for x, y in zip(inputs, hc.onnx_outputs(module, torch.zeros(2, 3, 5, 7), inputs)):
        hc.assert_close(y, ref.inner_product(x, blobs[0], blobs[1], -1, False), RTOL_REFERENCE, "ONNX")


def spec(axis=1, transpose=False, bias=True, blobs=None, shape=(2, 3, 5, 7), num_output=NUM_OUTPUT):
    layer = hc.make_net(ip_text(axis, transpose, bias, num_output), {"data": shape}).layer[1]
    return LayerSpec(name="ip", type="InnerProduct", layer=layer, blobs=blobs or [], input_shapes=[shape])


def test_weight_shapes_are_checked():
    with pytest.raises(WeightsError, match=r"layer 'ip'.*K = 100.*105"):
        convert_layer(spec(blobs=[np.zeros((4, 100), np.float32), np.zeros(4, np.float32)]))
    with pytest.raises(WeightsError, match="num_output 4"):
        convert_layer(spec(blobs=[np.zeros((5, 105), np.float32), np.zeros(5, np.float32)]))
    with pytest.raises(WeightsError, match="expected 2 blobs"):
        convert_layer(spec(blobs=[np.zeros((4, 105), np.float32)]))
    with pytest.raises(WeightsError, match="num_output 4"):  # [N, K] given where transpose wants [K, N]
        convert_layer(spec(transpose=True, blobs=[np.zeros((4, 105), np.float32), np.zeros(4, np.float32)]))


def test_axis_out_of_range_is_refused():
    with pytest.raises(ShapeError, match="axis 4"):
        convert_layer(spec(axis=4, blobs=[np.zeros((4, 1), np.float32), np.zeros(4, np.float32)]))
