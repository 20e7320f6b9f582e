"""Flatten, Reshape, Crop and ArgMax against the numpy references (Caffe's C++ rules), OpenCV dnn
where it supports the layer, and an ONNX export with dynamic batch/height/width.

Shapes are odd, batch 2 and batch != channels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_caffe import make_net, run_converted_all, write_model
from helpers_layers_b import (as_tuple, convert_text, layer_text, onnx_outputs, random_input, reference_b,
                              run_opencv_all)
from posebridge.errors import ShapeError, UnsupportedLayerError

ref = reference_b()
# The dynamo exporter takes seconds per module: its variants run with -m slow (the TorchScript
# exporter checks every case in the default run).
EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]
SHAPE = (2, 5, 7, 9)


def _run(tmp_path, text: str, inputs: dict[str, np.ndarray], layer: str, opencv: bool = True):
    """(our first top, OpenCV's first top or None) of ``layer`` in the net made of ``text``."""
    net = make_net(text, {name: array.shape for name, array in inputs.items()})
    ours = run_converted_all(net, {}, inputs)[layer][0]
    theirs = None
    if opencv:
        prototxt, caffemodel = write_model(tmp_path, net)
        theirs = run_opencv_all(prototxt, caffemodel, inputs, [layer])[layer][0]
    return ours, theirs


def _assert_identical(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.array_equal(actual, expected), f"{what}: values differ (pure data movement must be exact)"


# ---- Flatten -------------------------------------------------------------------------------

@pytest.mark.parametrize("params, axis, end_axis", [
    pytest.param("", 1, -1, id="default"),
    pytest.param("flatten_param { axis: 2 end_axis: 3 }", 2, 3, id="spatial"),
    pytest.param("flatten_param { axis: 0 end_axis: 1 }", 0, 1, id="batch-and-channels"),
    pytest.param("flatten_param { axis: -3 end_axis: -2 }", -3, -2, id="negative-axes"),
    pytest.param("flatten_param { axis: 2 end_axis: 2 }", 2, 2, id="single-axis"),
])
def test_flatten_matches_reference_and_opencv(tmp_path, params, axis, end_axis):
    x = random_input(SHAPE, seed=1)
    ours, theirs = _run(tmp_path, layer_text("flat", "Flatten", ["x"], ["flat"], params), {"x": x}, "flat")
    expected = ref.flatten(x, axis, end_axis)
    _assert_identical(ours, expected, "Flatten vs reference")
    _assert_identical(theirs, expected, "OpenCV Flatten vs reference")


def test_flatten_rejects_end_before_start():
    module = convert_text(layer_text("flat", "Flatten", ["x"], ["flat"], "flatten_param { axis: 3 end_axis: 1 }"))
    with pytest.raises(ShapeError, match="end_axis 1"):
        module(torch.zeros(SHAPE))


# ---- Reshape -------------------------------------------------------------------------------

# OpenCV's Reshape cannot insert axes (num_axes: 0): it asserts on the axis range, so those
# cases are compared with the numpy reference only.
OPENCV_NO_AXIS_INSERTION = "OpenCV's Reshape asserts when num_axes is 0 (inserting axes)"

RESHAPE_CASES = [
    pytest.param([0, -1], 0, -1, None, id="copy-and-infer"),
    pytest.param([0, 0, -1], 0, -1, None, id="keep-channels"),
    pytest.param([-1, 3], 2, 2, None, id="axis-2-num_axes-2"),
    pytest.param([5, 1], 1, 1, None, id="axis-1-num_axes-1"),
    pytest.param([-1], 1, -1, None, id="flatten-like"),
    pytest.param([0, 7, -1], 1, -1, None, id="copy-inside-span"),
    pytest.param([1], -1, 0, OPENCV_NO_AXIS_INSERTION, id="append-axis"),
    pytest.param([1], 0, 0, OPENCV_NO_AXIS_INSERTION, id="prepend-axis"),
    pytest.param([1, 1], 2, 0, OPENCV_NO_AXIS_INSERTION, id="insert-two-axes"),
]


@pytest.mark.parametrize("dims, axis, num_axes, opencv_deviation", RESHAPE_CASES)
def test_reshape_matches_reference_and_opencv(tmp_path, dims, axis, num_axes, opencv_deviation):
    x = random_input(SHAPE, seed=2)
    params = "reshape_param { shape {" + "".join(f" dim: {d}" for d in dims) + f" }} axis: {axis} num_axes: {num_axes} }}"
    ours, theirs = _run(tmp_path, layer_text("rs", "Reshape", ["x"], ["rs"], params), {"x": x}, "rs",
                        opencv=opencv_deviation is None)
    expected = ref.reshape(x, dims, axis, num_axes)
    _assert_identical(ours, expected, "Reshape vs reference")
    if theirs is not None:
        _assert_identical(theirs, expected, "OpenCV Reshape vs reference")


@pytest.mark.parametrize("params, message", [
    ("reshape_param { shape { dim: -1 dim: -1 } }", "more than one -1"),
    ("reshape_param { shape { dim: -2 } }", "only positive sizes"),
    ("reshape_param { shape { dim: 1 } num_axes: -2 }", "num_axes -2"),
])
def test_reshape_rejects_invalid_parameters(params, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        convert_text(layer_text("rs", "Reshape", ["x"], ["rs"], params))


@pytest.mark.parametrize("params, message", [
    ("reshape_param { shape { dim: 0 dim: -1 dim: 4 } }", "cannot infer -1"),
    ("reshape_param { shape { dim: 3 dim: 5 } }", "changes the element count"),
    ("reshape_param { shape { dim: 0 dim: 0 } axis: 3 }", "no axis 4"),
    ("reshape_param { shape { dim: 1 } axis: 5 }", "axis 5"),
    ("reshape_param { shape { dim: 1 } axis: 2 num_axes: 3 }", "past the end"),
])
def test_reshape_checks_shapes_at_run_time(params, message):
    module = convert_text(layer_text("rs", "Reshape", ["x"], ["rs"], params))
    with pytest.raises(ShapeError, match=message):
        module(torch.zeros(SHAPE))


# ---- Crop ----------------------------------------------------------------------------------

CROP_CASES = [
    pytest.param("", (2, 3, 7, 9), 2, [], id="no-offset"),
    pytest.param("crop_param { offset: 1 }", (2, 3, 7, 9), 2, [1], id="one-offset-for-all"),
    pytest.param("crop_param { offset: 2 offset: 3 }", (2, 3, 7, 9), 2, [2, 3], id="offset-per-axis"),
    pytest.param("crop_param { axis: 1 offset: 1 offset: 2 offset: 3 }", (2, 3, 7, 9), 1, [1, 2, 3],
                 id="axis-1-crops-channels"),
    pytest.param("crop_param { axis: -1 offset: 4 }", (1, 1, 1, 9), -1, [4], id="axis-minus-1-width-only"),
    pytest.param("crop_param { axis: 3 offset: 0 }", (2, 5, 11, 13), 3, [0], id="full-size-no-op"),
]


@pytest.mark.parametrize("params, reference_shape, axis, offsets", CROP_CASES)
def test_crop_matches_reference_and_opencv(tmp_path, params, reference_shape, axis, offsets):
    x = random_input((2, 5, 11, 13), seed=3)
    size = random_input(reference_shape, seed=4)
    text = layer_text("crop", "Crop", ["x", "size"], ["crop"], params)
    ours, theirs = _run(tmp_path, text, {"x": x, "size": size}, "crop")
    expected = ref.crop(x, reference_shape, axis, offsets)
    _assert_identical(ours, expected, "Crop vs reference")
    _assert_identical(theirs, expected, "OpenCV Crop vs reference")


def test_crop_checks_bounds_and_offset_count():
    too_far = convert_text(layer_text("crop", "Crop", ["x", "s"], ["crop"], "crop_param { offset: 5 }"))
    with pytest.raises(ShapeError, match="does not fit axis 2"):
        too_far(torch.zeros(2, 5, 11, 13), torch.zeros(2, 5, 7, 7))
    wrong_count = convert_text(layer_text("crop", "Crop", ["x", "s"], ["crop"], "crop_param { offset: 1 offset: 1 offset: 1 }"))
    with pytest.raises(ShapeError, match="3 offsets for 2 cropped axes"):
        wrong_count(torch.zeros(2, 5, 11, 13), torch.zeros(2, 5, 7, 7))
    with pytest.raises(UnsupportedLayerError, match="2 bottoms"):
        convert_text(layer_text("crop", "Crop", ["x"], ["crop"]))


# ---- ArgMax (OpenCV dnn has no Caffe ArgMax layer: numpy reference only) ---------------------

def _tied(shape, seed: int) -> np.ndarray:
    """Values on a coarse grid, so many ties: Caffe gives ties to the larger index."""
    return np.round(random_input(shape, seed)).astype(np.float32)


ARGMAX_CASES = [
    pytest.param("", 1, False, None, id="default"),
    pytest.param("argmax_param { top_k: 3 out_max_val: true }", 3, True, None, id="top3-with-values"),
    pytest.param("argmax_param { top_k: 4 }", 4, False, None, id="top4-indices"),
    pytest.param("argmax_param { axis: 1 top_k: 2 }", 2, False, 1, id="axis-1-top2"),
    pytest.param("argmax_param { axis: 1 top_k: 3 out_max_val: true }", 3, True, 1, id="axis-1-top3-values"),
    pytest.param("argmax_param { axis: -1 }", 1, False, -1, id="axis-minus-1"),
    pytest.param("argmax_param { axis: 2 top_k: 7 }", 7, False, 2, id="axis-2-full-sort"),
]


@pytest.mark.parametrize("values", [random_input, _tied], ids=["distinct", "ties"])
@pytest.mark.parametrize("params, top_k, out_max_val, axis", ARGMAX_CASES)
def test_argmax_matches_reference(tmp_path, params, top_k, out_max_val, axis, values):
    x = values(SHAPE, 5)
    ours, _ = _run(tmp_path, layer_text("am", "ArgMax", ["x"], ["am"], params), {"x": x}, "am", opencv=False)
    _assert_identical(ours, ref.argmax(x, top_k, out_max_val, axis), "ArgMax vs reference")


def test_argmax_of_a_2d_blob_is_3d():
    module = convert_text(layer_text("am", "ArgMax", ["x"], ["am"], "argmax_param { top_k: 2 out_max_val: true }"))
    x = _tied((2, 6), 6)
    result = module(torch.from_numpy(x)).numpy()
    _assert_identical(result, ref.argmax(x, 2, True), "2-D ArgMax")
    assert result.shape == (2, 2, 2)


def test_argmax_ties_go_to_the_larger_index():
    module = convert_text(layer_text("am", "ArgMax", ["x"], ["am"], "argmax_param { top_k: 3 }"))
    x = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]])
    assert module(x).flatten().tolist() == [4.0, 2.0, 1.0]


def test_argmax_rejects_top_k_larger_than_the_axis():
    module = convert_text(layer_text("am", "ArgMax", ["x"], ["am"], "argmax_param { axis: 1 top_k: 6 }"))
    with pytest.raises(ShapeError, match="top_k 6"):
        module(torch.zeros(SHAPE))


# ---- ONNX export: dynamic batch / height / width -------------------------------------------

def _crop_expected(xs):
    return [ref.crop(xs[0], xs[1].shape, 2, [1, 2])]


ONNX_CASES = [
    pytest.param(layer_text("flat", "Flatten", ["x"], ["flat"]), [(5,)], lambda xs: [ref.flatten(xs[0])],
                 random_input, id="flatten"),
    pytest.param(layer_text("flat", "Flatten", ["x"], ["flat"], "flatten_param { axis: 2 }"), [(5,)],
                 lambda xs: [ref.flatten(xs[0], 2)], random_input, id="flatten-spatial"),
    pytest.param(layer_text("rs", "Reshape", ["x"], ["rs"], "reshape_param { shape { dim: 0 dim: -1 } }"), [(5,)],
                 lambda xs: [ref.reshape(xs[0], [0, -1])], random_input, id="reshape-copy-infer"),
    pytest.param(layer_text("rs", "Reshape", ["x"], ["rs"], "reshape_param { shape { dim: 0 dim: 5 dim: 1 dim: -1 } }"),
                 [(5,)], lambda xs: [ref.reshape(xs[0], [0, 5, 1, -1])], random_input, id="reshape-insert"),
    pytest.param(layer_text("crop", "Crop", ["x", "s"], ["crop"], "crop_param { offset: 1 offset: 2 }"),
                 [(5,), (3, -3, -4)], _crop_expected, random_input, id="crop"),
    pytest.param(layer_text("am", "ArgMax", ["x"], ["am"], "argmax_param { top_k: 3 out_max_val: true }"), [(5,)],
                 lambda xs: [ref.argmax(xs[0], 3, True)], _tied, id="argmax-flat-ties"),
    pytest.param(layer_text("am", "ArgMax", ["x"], ["am"], "argmax_param { axis: 1 top_k: 2 }"), [(5,)],
                 lambda xs: [ref.argmax(xs[0], 2, False, 1)], _tied, id="argmax-axis-ties"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("text, specs, expected_of, values", ONNX_CASES)
def test_onnx_export_is_dynamic(tmp_path, text, specs, expected_of, values, dynamo):
    def inputs(batch, height, width, seed):
        # spec = (channels,) or (channels, height shrink, width shrink) for a smaller second bottom
        arrays = []
        for i, spec in enumerate(specs):
            h, w = (height, width) if len(spec) == 1 else (height + spec[1], width + spec[2])
            arrays.append(values((batch, spec[0], h, w), seed + i))
        return arrays

    example = inputs(2, 7, 9, 20)
    other = inputs(3, 12, 6, 30)
    module = convert_text(text, [a.shape for a in example])
    runs = onnx_outputs(module, example, [example, other], tmp_path / "layer.onnx", dynamo=dynamo)
    for run_inputs, outputs in zip([example, other], runs):
        expected = expected_of(run_inputs)
        eager = as_tuple(module(*[torch.from_numpy(a) for a in run_inputs]))
        assert len(outputs) == len(expected) == len(eager)
        for got, mine, want in zip(outputs, eager, expected):
            _assert_identical(got, want, f"ONNX at {run_inputs[0].shape}")
            _assert_identical(mine, want, f"eager at {run_inputs[0].shape}")
