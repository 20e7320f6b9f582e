"""Concat, Slice, Split, Silence and Eltwise against the numpy references (Caffe's C++ rules),
OpenCV dnn and an ONNX export with dynamic batch/height/width.

Shapes are odd (H, W not multiples of anything), batch 2 and batch != channels.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_caffe import assert_close, make_net, run_converted_all, write_model
from helpers_layers_b import (as_tuple, convert_text, layer_text, onnx_outputs, random_input, reference_b,
                              run_opencv_all)
from posebridge.errors import ShapeError, UnsupportedLayerError

ref = reference_b()
# The dynamo exporter takes seconds per module: its variants run with -m slow (the TorchScript
# exporter checks every case in the default run).
EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]


def _run(tmp_path, text: str, inputs: dict[str, np.ndarray], layer: str, opencv: bool = True):
    """(our tops, OpenCV's tops or None) of ``layer`` in the net made of ``text``."""
    net = make_net(text, {name: array.shape for name, array in inputs.items()})
    ours = run_converted_all(net, {}, inputs)[layer]
    theirs = None
    if opencv:
        prototxt, caffemodel = write_model(tmp_path, net)
        theirs = run_opencv_all(prototxt, caffemodel, inputs, [layer])[layer]
    return ours, theirs


def _assert_identical(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.array_equal(actual, expected), f"{what}: values differ (pure data movement must be exact)"


# ---- Concat --------------------------------------------------------------------------------

# OpenCV's Caffe importer passes the param fields by name and its Concat/Slice layers read only
# ``axis``: the legacy ``concat_dim`` / ``slice_dim`` are ignored (OpenCV then works on axis 1),
# so those cases are compared with the numpy reference only.
OPENCV_IGNORES_LEGACY_DIM = "OpenCV ignores the legacy *_dim field and uses axis 1"

CONCAT_CASES = [
    pytest.param("", 1, [(2, 3, 7, 9), (2, 4, 7, 9), (2, 1, 7, 9)], None, id="default-axis-1"),
    pytest.param("concat_param { axis: -1 }", 3, [(2, 5, 7, 3), (2, 5, 7, 9), (2, 5, 7, 1)], None, id="axis-minus-1"),
    pytest.param("concat_param { axis: 2 }", 2, [(2, 5, 3, 9), (2, 5, 7, 9)], None, id="axis-2"),
    pytest.param("concat_param { axis: 0 }", 0, [(2, 5, 7, 9), (3, 5, 7, 9)], None, id="axis-0-batch"),
    pytest.param("concat_param { concat_dim: 0 }", 0, [(2, 5, 7, 9), (3, 5, 7, 9)], OPENCV_IGNORES_LEGACY_DIM,
                 id="legacy-concat_dim-0"),
    pytest.param("concat_param { concat_dim: 2 }", 2, [(2, 5, 3, 9), (2, 5, 4, 9)], OPENCV_IGNORES_LEGACY_DIM,
                 id="legacy-concat_dim-2"),
]


@pytest.mark.parametrize("params, axis, shapes, opencv_deviation", CONCAT_CASES)
def test_concat_matches_reference_and_opencv(tmp_path, params, axis, shapes, opencv_deviation):
    inputs = {f"in{i}": random_input(shape, seed=i) for i, shape in enumerate(shapes)}
    text = layer_text("cat", "Concat", list(inputs), ["cat"], params)
    (ours,), theirs = _run(tmp_path, text, inputs, "cat", opencv=opencv_deviation is None)
    expected = ref.concat(list(inputs.values()), axis)
    _assert_identical(ours, expected, "Concat vs reference")
    if theirs is not None:
        _assert_identical(theirs[0], expected, "OpenCV Concat vs reference")


def test_concat_of_one_bottom_is_that_bottom(tmp_path):
    x = random_input((2, 5, 7, 9), seed=3)
    (ours,), _ = _run(tmp_path, layer_text("cat", "Concat", ["x"], ["cat"]), {"x": x}, "cat", opencv=False)
    _assert_identical(ours, x, "one-bottom Concat")


def test_concat_rejects_axis_together_with_concat_dim():
    with pytest.raises(UnsupportedLayerError, match="concat_dim"):
        convert_text(layer_text("cat", "Concat", ["a", "b"], ["cat"], "concat_param { axis: 1 concat_dim: 1 }"))


def test_concat_axis_out_of_range_names_the_layer():
    module = convert_text(layer_text("cat", "Concat", ["a", "b"], ["cat"], "concat_param { axis: 4 }"))
    with pytest.raises(ShapeError, match="'cat'.*axis 4"):
        module(torch.zeros(2, 3, 5, 7), torch.zeros(2, 3, 5, 7))


# ---- Slice / Split / Silence ---------------------------------------------------------------

SLICE_CASES = [
    pytest.param("slice_param { axis: 1 slice_point: 1 slice_point: 4 }", (2, 7, 5, 9), 1, [1, 4], 3, None,
                 id="channels-into-3-uneven"),
    pytest.param("slice_param { axis: 2 }", (2, 5, 9, 7), 2, [], 3, None, id="height-even-split"),
    pytest.param("slice_param { axis: -1 slice_point: 2 slice_point: 5 }", (2, 5, 7, 9), 3, [2, 5], 3, None,
                 id="axis-minus-1"),
    pytest.param("slice_param { axis: 0 slice_point: 1 }", (2, 5, 7, 9), 0, [1], 2, None, id="axis-0-batch"),
    pytest.param("", (2, 6, 7, 9), 1, [], 2, None, id="default-even-channels"),
    pytest.param("slice_param { slice_dim: 0 slice_point: 1 }", (2, 5, 7, 9), 0, [1], 2, OPENCV_IGNORES_LEGACY_DIM,
                 id="legacy-slice_dim-0"),
    pytest.param("slice_param { slice_dim: 2 slice_point: 2 slice_point: 3 }", (2, 5, 7, 9), 2, [2, 3], 3,
                 OPENCV_IGNORES_LEGACY_DIM, id="legacy-slice_dim-2"),
]


@pytest.mark.parametrize("params, shape, axis, points, tops, opencv_deviation", SLICE_CASES)
def test_slice_matches_reference_and_opencv(tmp_path, params, shape, axis, points, tops, opencv_deviation):
    x = random_input(shape, seed=5)
    top_names = [f"t{i}" for i in range(tops)]
    # OpenCV sizes an even split by the tops that are consumed: a Silence consumes them all.
    text = layer_text("slice", "Slice", ["x"], top_names, params) + layer_text("mute", "Silence", top_names, [])
    ours, theirs = _run(tmp_path, text, {"x": x}, "slice", opencv=opencv_deviation is None)
    expected = ref.slice_(x, axis, points, tops)
    assert len(ours) == tops
    for index, (mine, want) in enumerate(zip(ours, expected)):
        _assert_identical(mine, want, f"Slice top {index} vs reference")
    if theirs is not None:
        assert len(theirs) == tops
        for index, (cv, want) in enumerate(zip(theirs, expected)):
            _assert_identical(cv, want, f"OpenCV Slice top {index} vs reference")


@pytest.mark.parametrize("params, message", [
    ("slice_param { slice_point: 2 }", "1 slice points for 3 tops"),
    ("slice_param { slice_point: 3 slice_point: 3 }", "increase strictly"),
    ("slice_param { slice_point: 0 slice_point: 3 }", "increase strictly"),
    ("slice_param { axis: 1 slice_dim: 1 }", "slice_dim"),
])
def test_slice_rejects_invalid_points(params, message):
    with pytest.raises(UnsupportedLayerError, match=message):
        convert_text(layer_text("slice", "Slice", ["x"], ["a", "b", "c"], params))


def test_slice_checks_sizes_at_run_time():
    uneven = convert_text(layer_text("slice", "Slice", ["x"], ["a", "b"], ""))
    with pytest.raises(ShapeError, match="evenly"):
        uneven(torch.zeros(2, 5, 3, 3))
    past_end = convert_text(layer_text("slice", "Slice", ["x"], ["a", "b"], "slice_param { slice_point: 5 }"))
    with pytest.raises(ShapeError, match="slice point 5"):
        past_end(torch.zeros(2, 5, 3, 3))


def test_split_copies_to_every_top(tmp_path):
    x = random_input((2, 5, 7, 9), seed=7)
    ours, theirs = _run(tmp_path, layer_text("split", "Split", ["x"], ["a", "b", "c"]), {"x": x}, "split")
    assert len(ours) == 3
    for index, top in enumerate(ours):
        _assert_identical(top, x, f"Split top {index}")
    _assert_identical(theirs[0], x, "OpenCV Split")


def test_silence_has_no_top(tmp_path):
    x, y = random_input((2, 5, 7, 9), seed=8), random_input((2, 3, 7, 9), seed=9)
    ours, _ = _run(tmp_path, layer_text("mute", "Silence", ["x", "y"], []), {"x": x, "y": y}, "mute", opencv=False)
    assert ours == ()


# ---- Eltwise -------------------------------------------------------------------------------

def _quantized(shape, seed: int) -> np.ndarray:
    """Values on a 0.5 grid, so bottoms tie often (MAX ties, exact PROD/SUM checks)."""
    return (np.round(random_input(shape, seed) * 2) / 2).astype(np.float32)


ELTWISE_CASES = [
    pytest.param("operation: SUM coeff: 0.5 coeff: -2.0 coeff: 1.25", "SUM", [0.5, -2.0, 1.25], 3, id="sum-3-coeffs"),
    pytest.param("operation: SUM", "SUM", [], 2, id="sum-plain"),
    pytest.param("coeff: 1 coeff: -1", "SUM", [1.0, -1.0], 2, id="sum-difference"),
    pytest.param("operation: PROD", "PROD", [], 3, id="prod-3"),
    pytest.param("operation: MAX", "MAX", [], 3, id="max-3"),
    pytest.param("operation: MAX", "MAX", [], 2, id="max-2"),
]


@pytest.mark.parametrize("params, operation, coefficients, bottoms", ELTWISE_CASES)
def test_eltwise_matches_reference_and_opencv(tmp_path, params, operation, coefficients, bottoms):
    shape = (2, 5, 7, 9)
    maker = _quantized if operation == "MAX" else random_input
    inputs = {f"b{i}": maker(shape, seed=10 + i) for i in range(bottoms)}
    text = layer_text("elt", "Eltwise", list(inputs), ["elt"], f"eltwise_param {{ {params} }}")
    (ours,), (theirs,) = _run(tmp_path, text, inputs, "elt")
    expected = ref.eltwise(operation, list(inputs.values()), coefficients)
    if operation == "MAX":
        _assert_identical(ours, expected, "Eltwise MAX vs reference")
        _assert_identical(theirs, expected, "OpenCV Eltwise MAX vs reference")
    else:
        assert_close(ours, expected, 1e-5, f"Eltwise {operation} vs reference")
        assert_close(theirs, expected, 1e-4, f"OpenCV Eltwise {operation} vs reference")


def test_eltwise_max_keeps_the_later_bottom_on_ties():
    # Caffe's strict '>' keeps bottom 1 when a == b: visible on signed zeros.
    module = convert_text(layer_text("elt", "Eltwise", ["a", "b"], ["elt"], "eltwise_param { operation: MAX }"))
    a = torch.zeros(2, 3, 1, 1)
    b = -torch.zeros(2, 3, 1, 1)
    result = module(a, b).numpy()
    assert np.all(np.signbit(result)) and np.array_equal(np.signbit(result), np.signbit(ref.eltwise("MAX", [a.numpy(), b.numpy()])))


@pytest.mark.parametrize("params, bottoms, message", [
    ("coeff: 1 coeff: 2", 3, "2 coefficients for 3 bottoms"),
    ("operation: PROD coeff: 1 coeff: 2", 2, "only taken for SUM"),
    ("operation: MAX", 1, "at least two bottoms"),
])
def test_eltwise_rejects_what_caffe_rejects(params, bottoms, message):
    names = [f"b{i}" for i in range(bottoms)]
    with pytest.raises(UnsupportedLayerError, match=message):
        convert_text(layer_text("elt", "Eltwise", names, ["elt"], f"eltwise_param {{ {params} }}"))


def test_eltwise_rejects_mismatched_shapes():
    module = convert_text(layer_text("elt", "Eltwise", ["a", "b"], ["elt"]))
    with pytest.raises(ShapeError, match="differ in shape"):
        module(torch.zeros(2, 3, 5, 5), torch.zeros(2, 3, 5, 1))


# ---- ONNX export: dynamic batch / height / width -------------------------------------------

ONNX_CASES = [
    pytest.param(layer_text("cat", "Concat", ["a", "b"], ["cat"]), [3, 4],
                 lambda xs: [ref.concat(xs, 1)], id="concat"),
    pytest.param(layer_text("cat", "Concat", ["a", "b"], ["cat"], "concat_param { axis: 3 }"), [3, 3],
                 lambda xs: [ref.concat(xs, 3)], id="concat-width"),
    pytest.param(layer_text("slice", "Slice", ["x"], ["a", "b", "c"], "slice_param { slice_point: 1 slice_point: 4 }"),
                 [7], lambda xs: ref.slice_(xs[0], 1, [1, 4], 3), id="slice-uneven"),
    pytest.param(layer_text("slice", "Slice", ["x"], ["a", "b"], "slice_param { axis: 0 }"),
                 [5], lambda xs: ref.slice_(xs[0], 0, [], 2), id="slice-batch-even"),
    # Not through the dynamo exporter: a graph whose outputs are its own inputs fails its opset
    # 18 -> 17 version conversion (an exporter limitation, not Split's: in a net, Split's tops
    # feed other layers). The TorchScript exporter checks it below.
    pytest.param(layer_text("split", "Split", ["x"], ["a", "b"]), [5], lambda xs: [xs[0], xs[0]], id="split"),
    pytest.param(layer_text("elt", "Eltwise", ["a", "b", "c"], ["elt"], "eltwise_param { coeff: 0.5 coeff: -2 coeff: 1.25 }"),
                 [5, 5, 5], lambda xs: [ref.eltwise("SUM", xs, [0.5, -2.0, 1.25])], id="eltwise-sum"),
    pytest.param(layer_text("elt", "Eltwise", ["a", "b", "c"], ["elt"], "eltwise_param { operation: PROD }"),
                 [5, 5, 5], lambda xs: [ref.eltwise("PROD", xs)], id="eltwise-prod"),
    pytest.param(layer_text("elt", "Eltwise", ["a", "b", "c"], ["elt"], "eltwise_param { operation: MAX }"),
                 [5, 5, 5], lambda xs: [ref.eltwise("MAX", xs)], id="eltwise-max"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("text, channels, expected_of", ONNX_CASES)
def test_onnx_export_is_dynamic(tmp_path, text, channels, expected_of, dynamo):
    if dynamo and '"Split"' in text:
        pytest.skip("identity graph: the dynamo exporter's opset 18 -> 17 conversion fails on it")

    def inputs(batch, height, width, seed):
        # Even batch and height so even splits along them stay valid at both sizes.
        return [random_input((batch, c, height, width), seed + i) for i, c in enumerate(channels)]

    example = inputs(2, 7, 9, 20)
    other = inputs(4, 11, 6, 30)
    module = convert_text(text, [a.shape for a in example])
    runs = onnx_outputs(module, example, [example, other], tmp_path / "layer.onnx", dynamo=dynamo)
    for run_inputs, outputs in zip([example, other], runs):
        expected = expected_of(run_inputs)
        eager = as_tuple(module(*[torch.from_numpy(a) for a in run_inputs]))
        assert len(outputs) == len(expected) == len(eager)
        for got, mine, want in zip(outputs, eager, expected):
            assert_close(got, want, 1e-5, f"ONNX at {run_inputs[0].shape}")
            assert_close(mine, want, 1e-5, f"eager at {run_inputs[0].shape}")
