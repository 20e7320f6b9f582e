"""BatchNorm, Scale, Bias, LRN and Softmax against the numpy references (Caffe's C++ rules),
OpenCV dnn where it computes what Caffe computes, and an ONNX export with dynamic batch/height/width.

Shapes are odd, batch 2 and batch != channels. OpenCV deviations found (compared with the numpy
reference only, each case says why):

* LRN ACROSS_CHANNELS: OpenCV ignores Caffe's ``k`` (its layer reads a ``bias`` field, so k is 1).
* Scale with the scale as bottom 1 and ``bias_term``: OpenCV drops the scale and computes x + b.
* Scale with ``num_axes: 0`` (a scalar blob) or a negative axis: OpenCV fails to load the net.
* Bias: OpenCV dnn has no Caffe ``Bias`` layer.
* BatchNorm ``use_global_stats: false``: OpenCV raises "not implemented".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from helpers_caffe import assert_close, make_net, run_converted_all, with_weights, write_model
from helpers_layers_b import (as_tuple, convert_text, layer_text, onnx_outputs, random_input, reference_b,
                              run_opencv_all)
from posebridge.errors import ShapeError, UnsupportedLayerError, WeightsError

ref = reference_b()
# The dynamo exporter takes seconds per module: its variants run with -m slow (the TorchScript
# exporter checks every case in the default run).
EXPORTERS = [pytest.param(False, id="torchscript"), pytest.param(True, id="dynamo", marks=pytest.mark.slow)]
SHAPE = (2, 5, 7, 9)
REFERENCE_RTOL = 1e-5
OPENCV_RTOL = 1e-4

OPENCV_LRN_IGNORES_K = "OpenCV's LRN ignores Caffe's k (it reads 'bias', default 1)"
OPENCV_SCALE_BOTTOM_WITH_BIAS = "OpenCV drops the bottom-1 scale when bias_term is set (computes x + b)"
OPENCV_NO_SCALAR_BLOB = "OpenCV cannot load a 0-axis (scalar) blob"
OPENCV_NO_NEGATIVE_AXIS = "OpenCV's Scale rejects a negative axis"
OPENCV_NO_BIAS_LAYER = "OpenCV dnn has no Caffe Bias layer"
OPENCV_NO_BATCH_STATS = "OpenCV does not implement BatchNorm with use_global_stats: false"


def _run(tmp_path, text: str, inputs: dict[str, np.ndarray], layer: str, blobs: list[np.ndarray] | None = None,
         opencv: bool = True):
    """(our first top, OpenCV's first top or None) of ``layer`` in the net made of ``text``."""
    net = make_net(text, {name: array.shape for name, array in inputs.items()})
    weights = {layer: blobs} if blobs else {}
    if blobs:
        net = with_weights(net, weights)
    ours = run_converted_all(net, weights, inputs)[layer][0]
    theirs = None
    if opencv:
        prototxt, caffemodel = write_model(tmp_path, net)
        theirs = run_opencv_all(prototxt, caffemodel, inputs, [layer])[layer][0]
    return ours, theirs


def _compare(ours, theirs, expected, what: str) -> None:
    assert_close(ours, expected, REFERENCE_RTOL, f"{what} vs reference")
    if theirs is not None:
        assert_close(theirs, expected, OPENCV_RTOL, f"OpenCV {what} vs reference")


def _uniform(shape, seed: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


# ---- BatchNorm -----------------------------------------------------------------------------

BATCH_NORM_CASES = [
    pytest.param("", 1.0, 1e-5, True, None, id="factor-1"),
    pytest.param("", 2.5, 1e-5, True, None, id="factor-2.5"),
    pytest.param("", 0.0, 1e-5, True, None, id="factor-0-means-zero-stats"),
    pytest.param("batch_norm_param { eps: 0.01 }", 999.0, 0.01, True, None, id="eps-0.01-factor-999"),
    pytest.param("batch_norm_param { use_global_stats: true }", 0.5, 1e-5, True, None, id="global-stats-explicit"),
    pytest.param("batch_norm_param { use_global_stats: false }", 2.5, 1e-5, False, OPENCV_NO_BATCH_STATS,
                 id="batch-stats"),
]


@pytest.mark.parametrize("params, factor, eps, global_stats, opencv_deviation", BATCH_NORM_CASES)
def test_batch_norm_matches_reference_and_opencv(tmp_path, params, factor, eps, global_stats, opencv_deviation):
    x = random_input(SHAPE, seed=1)
    mean = _uniform(5, 2) * max(factor, 1.0)
    variance = _uniform(5, 3, 0.5, 2.0) * max(factor, 1.0)
    blobs = [mean, variance, np.array([factor], dtype=np.float32)]
    ours, theirs = _run(tmp_path, layer_text("bn", "BatchNorm", ["x"], ["bn"], params), {"x": x}, "bn", blobs,
                        opencv=opencv_deviation is None)
    _compare(ours, theirs, ref.batch_norm(x, mean, variance, factor, eps, global_stats), "BatchNorm")


def test_batch_norm_zero_factor_divides_by_sqrt_eps():
    module = convert_text(layer_text("bn", "BatchNorm", ["x"], ["bn"]), blobs=[
        np.full(5, 3.0, np.float32), np.full(5, 7.0, np.float32), np.zeros(1, np.float32)])
    x = torch.from_numpy(random_input(SHAPE, seed=4))
    assert_close(module(x).numpy(), x.numpy() / np.sqrt(np.float32(1e-5)), REFERENCE_RTOL, "s = 0")


def test_batch_norm_on_a_2d_blob(tmp_path):
    x = random_input((2, 5), seed=5)
    blobs = [_uniform(5, 6), _uniform(5, 7, 0.5, 2.0), np.array([2.0], np.float32)]
    ours, theirs = _run(tmp_path, layer_text("bn", "BatchNorm", ["x"], ["bn"]), {"x": x}, "bn", blobs)
    _compare(ours, theirs, ref.batch_norm(x, blobs[0], blobs[1], 2.0), "2-D BatchNorm")


def test_batch_norm_needs_its_three_blobs():
    with pytest.raises(WeightsError, match="needs 3 blob"):
        convert_text(layer_text("bn", "BatchNorm", ["x"], ["bn"]), blobs=[np.zeros(5), np.ones(5)])
    with pytest.raises(WeightsError, match="scale factor"):
        convert_text(layer_text("bn", "BatchNorm", ["x"], ["bn"]), blobs=[np.zeros(5), np.ones(5), np.ones(2)])


# ---- Scale and Bias with learned blobs -----------------------------------------------------

LEARNED_SCALE_CASES = [
    pytest.param("", (5,), 1, None, id="default-channels"),
    pytest.param("axis: 0 num_axes: 2", (2, 5), 0, None, id="axis-0-num_axes-2"),
    pytest.param("num_axes: -1", (5, 7, 9), 1, None, id="num_axes-minus-1"),
    pytest.param("num_axes: 2", (5, 7), 1, None, id="num_axes-2"),
    pytest.param("axis: 2 num_axes: 2", (7, 9), 2, None, id="axis-2-spatial"),
    pytest.param("num_axes: 0", (), 1, OPENCV_NO_SCALAR_BLOB, id="num_axes-0-scalar"),
    pytest.param("axis: -2 num_axes: 1", (7,), -2, OPENCV_NO_NEGATIVE_AXIS, id="axis-minus-2"),
]


@pytest.mark.parametrize("bias_term", [False, True], ids=["scale-only", "with-bias"])
@pytest.mark.parametrize("params, blob_shape, axis, opencv_deviation", LEARNED_SCALE_CASES)
def test_learned_scale_matches_reference_and_opencv(tmp_path, params, blob_shape, axis, opencv_deviation, bias_term):
    x = random_input(SHAPE, seed=8)
    factors = _uniform(blob_shape, 9)
    bias = _uniform(blob_shape, 10) if bias_term else None
    text = layer_text("sc", "Scale", ["x"], ["sc"], f"scale_param {{ {params} bias_term: {str(bias_term).lower()} }}")
    blobs = [factors] + ([bias] if bias_term else [])
    ours, theirs = _run(tmp_path, text, {"x": x}, "sc", blobs, opencv=opencv_deviation is None)
    _compare(ours, theirs, ref.scale(x, factors, axis, bias), "Scale")


LEARNED_BIAS_CASES = [
    pytest.param("", (5,), 1, id="default-channels"),
    pytest.param("axis: 0 num_axes: 2", (2, 5), 0, id="axis-0-num_axes-2"),
    pytest.param("num_axes: -1", (5, 7, 9), 1, id="num_axes-minus-1"),
    pytest.param("num_axes: 0", (), 1, id="num_axes-0-scalar"),
    pytest.param("axis: -1", (9,), -1, id="axis-minus-1"),
]


@pytest.mark.parametrize("params, blob_shape, axis", LEARNED_BIAS_CASES)
def test_learned_bias_matches_reference(tmp_path, params, blob_shape, axis):
    x = random_input(SHAPE, seed=11)
    values = _uniform(blob_shape, 12)
    text = layer_text("bias", "Bias", ["x"], ["bias"], f"bias_param {{ {params} }}" if params else "")
    ours, _ = _run(tmp_path, text, {"x": x}, "bias", [values], opencv=False)  # OPENCV_NO_BIAS_LAYER
    _compare(ours, None, ref.add_bias(x, values, axis), "Bias")


# ---- Scale and Bias with the factors as a second bottom ------------------------------------

SCALE_BOTTOM_CASES = [
    pytest.param("axis: 0", (2, 5), 0, None, id="axis-0-batch-and-channels"),
    pytest.param("axis: 1", (5,), 1, None, id="axis-1-channels"),
    pytest.param("axis: 1", (5, 7), 1, None, id="axis-1-two-axes"),
    pytest.param("axis: 1 num_axes: 1", (5, 7), 1, None, id="num_axes-ignored-for-a-bottom"),
    pytest.param("axis: 0", SHAPE, 0, None, id="axis-0-elementwise"),
    pytest.param("axis: 2", (7, 9), 2, None, id="axis-2-spatial"),
    pytest.param("axis: -3", (5, 7), -3, OPENCV_NO_NEGATIVE_AXIS, id="axis-minus-3"),
]


@pytest.mark.parametrize("bias_term", [False, True], ids=["scale-only", "with-bias"])
@pytest.mark.parametrize("params, bottom_shape, axis, opencv_deviation", SCALE_BOTTOM_CASES)
def test_scale_from_a_second_bottom(tmp_path, params, bottom_shape, axis, opencv_deviation, bias_term):
    x = random_input(SHAPE, seed=13)
    factors = random_input(bottom_shape, seed=14)
    bias = _uniform(bottom_shape, 15) if bias_term else None
    text = layer_text("sc", "Scale", ["x", "factors"], ["sc"],
                      f"scale_param {{ {params} bias_term: {str(bias_term).lower()} }}")
    if bias_term:
        opencv_deviation = opencv_deviation or OPENCV_SCALE_BOTTOM_WITH_BIAS
    ours, theirs = _run(tmp_path, text, {"x": x, "factors": factors}, "sc", [bias] if bias_term else None,
                        opencv=opencv_deviation is None)
    _compare(ours, theirs, ref.scale(x, factors, axis, bias), "Scale (bottom 1)")


def test_scale_from_a_scalar_bottom_applies_everywhere():
    module = convert_text(layer_text("sc", "Scale", ["x", "s"], ["sc"], "scale_param { axis: 2 }"))
    x = random_input(SHAPE, seed=16)
    factor = np.array(-1.5, dtype=np.float32)
    result = module(torch.from_numpy(x), torch.from_numpy(factor)).numpy()
    _compare(result, None, ref.scale(x, factor, 2), "scalar Scale")


@pytest.mark.parametrize("bottom_shape, axis", [((5,), 1), ((2, 5), 0), ((7, 9), -2)])
def test_bias_from_a_second_bottom(tmp_path, bottom_shape, axis):
    x = random_input(SHAPE, seed=17)
    values = random_input(bottom_shape, seed=18)
    text = layer_text("bias", "Bias", ["x", "values"], ["bias"], f"bias_param {{ axis: {axis} }}")
    ours, _ = _run(tmp_path, text, {"x": x, "values": values}, "bias", opencv=False)  # OPENCV_NO_BIAS_LAYER
    _compare(ours, None, ref.add_bias(x, values, axis), "Bias (bottom 1)")


def test_scale_and_bias_check_shapes_as_caffe_does():
    learned = convert_text(layer_text("sc", "Scale", ["x"], ["sc"]), blobs=[np.ones(4, np.float32)])
    with pytest.raises(ShapeError, match="'sc'.*does not match"):
        learned(torch.zeros(SHAPE))
    from_bottom = convert_text(layer_text("sc", "Scale", ["x", "s"], ["sc"], "scale_param { axis: 0 }"))
    with pytest.raises(ShapeError, match="does not match"):  # no silent broadcasting of a size-1 axis
        from_bottom(torch.zeros(SHAPE), torch.ones(1, 5))
    with pytest.raises(ShapeError, match="extends past"):
        from_bottom(torch.zeros(2, 5), torch.ones(2, 5, 1))
    with pytest.raises(WeightsError, match="needs 2 blob"):
        convert_text(layer_text("sc", "Scale", ["x"], ["sc"], "scale_param { bias_term: true }"), blobs=[np.ones(5)])
    with pytest.raises(WeightsError, match="needs 0 blob"):
        convert_text(layer_text("bias", "Bias", ["x", "b"], ["bias"]), blobs=[np.ones(5)])


# ---- LRN -----------------------------------------------------------------------------------

LRN_CASES = [
    pytest.param("ACROSS_CHANNELS", 5, 1.0, 0.75, 1.0, None, id="across-defaults"),
    pytest.param("ACROSS_CHANNELS", 7, 2e-4, 0.75, 1.0, None, id="across-window-wider-than-channels"),
    pytest.param("ACROSS_CHANNELS", 1, 0.5, 0.75, 1.0, None, id="across-size-1"),
    pytest.param("ACROSS_CHANNELS", 3, 0.3, 0.6, 2.0, OPENCV_LRN_IGNORES_K, id="across-k-2"),
    pytest.param("WITHIN_CHANNEL", 5, 1.0, 0.75, 1.0, None, id="within-defaults"),
    pytest.param("WITHIN_CHANNEL", 3, 0.3, 0.6, 2.0, None, id="within-k-unused"),
    pytest.param("WITHIN_CHANNEL", 7, 2e-4, 0.75, 1.0, None, id="within-size-7"),
    pytest.param("WITHIN_CHANNEL", 1, 0.5, 0.75, 1.0, None, id="within-size-1"),
]


@pytest.mark.parametrize("region, size, alpha, beta, k, opencv_deviation", LRN_CASES)
def test_lrn_matches_reference_and_opencv(tmp_path, region, size, alpha, beta, k, opencv_deviation):
    x = random_input(SHAPE, seed=19)
    params = f"lrn_param {{ norm_region: {region} local_size: {size} alpha: {alpha} beta: {beta} k: {k} }}"
    ours, theirs = _run(tmp_path, layer_text("lrn", "LRN", ["x"], ["lrn"], params), {"x": x}, "lrn",
                        opencv=opencv_deviation is None)
    if region == "ACROSS_CHANNELS":
        expected = ref.lrn_across_channels(x, size, alpha, beta, k)
    else:
        expected = ref.lrn_within_channel(x, size, alpha, beta)
    _compare(ours, theirs, expected, f"LRN {region}")


def test_lrn_within_channel_divides_by_the_full_window_at_borders():
    # A single 1 in a corner: its own window, clipped by the image, still divides by size^2.
    module = convert_text(layer_text("lrn", "LRN", ["x"], ["lrn"],
                                     "lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 9 beta: 1 }"))
    x = torch.zeros(1, 1, 4, 5)
    x[0, 0, 0, 0] = 1.0
    assert module(x)[0, 0, 0, 0].item() == pytest.approx(1.0 / (1.0 + 9.0 * 1.0 / 9.0))


def test_lrn_rejects_even_sizes_and_non_4d_blobs():
    with pytest.raises(UnsupportedLayerError, match="odd"):
        convert_text(layer_text("lrn", "LRN", ["x"], ["lrn"], "lrn_param { local_size: 4 }"))
    module = convert_text(layer_text("lrn", "LRN", ["x"], ["lrn"]))
    with pytest.raises(ShapeError, match="4-D"):
        module(torch.zeros(2, 5, 7))


# ---- Softmax -------------------------------------------------------------------------------

@pytest.mark.parametrize("params, axis, shape", [
    pytest.param("", 1, SHAPE, id="default-channels"),
    pytest.param("softmax_param { axis: 2 }", 2, SHAPE, id="axis-2"),
    pytest.param("softmax_param { axis: -1 }", -1, SHAPE, id="axis-minus-1"),
    pytest.param("softmax_param { axis: 0 }", 0, SHAPE, id="axis-0-batch"),
    pytest.param("", 1, (2, 5), id="2d-blob"),
])
def test_softmax_matches_reference_and_opencv(tmp_path, params, axis, shape):
    x = random_input(shape, seed=20, low=-20.0, high=20.0)
    ours, theirs = _run(tmp_path, layer_text("prob", "Softmax", ["x"], ["prob"], params), {"x": x}, "prob")
    _compare(ours, theirs, ref.softmax(x, axis), "Softmax")


# ---- ONNX export: dynamic batch / height / width -------------------------------------------

Inputs = Callable[[int, int, int, int], list[np.ndarray]]


def _images(*channels: int) -> Inputs:
    return lambda n, h, w, seed: [random_input((n, c, h, w), seed + i) for i, c in enumerate(channels)]


def _image_and(shape_of: Callable[[int, int, int], tuple]) -> Inputs:
    return lambda n, h, w, seed: [random_input((n, 5, h, w), seed), random_input(shape_of(n, h, w), seed + 1)]


_BN_BLOBS = [_uniform(5, 30), _uniform(5, 31, 0.5, 2.0), np.array([2.5], np.float32)]
_SCALE_BLOBS = [_uniform(5, 32), _uniform(5, 33)]

ONNX_CASES = [
    pytest.param(layer_text("bn", "BatchNorm", ["x"], ["bn"]), _BN_BLOBS, _images(5), None,
                 lambda xs: ref.batch_norm(xs[0], *_BN_BLOBS[:2], 2.5), id="batch-norm"),
    pytest.param(layer_text("bn", "BatchNorm", ["x"], ["bn"], "batch_norm_param { use_global_stats: false }"),
                 _BN_BLOBS, _images(5), None,
                 lambda xs: ref.batch_norm(xs[0], *_BN_BLOBS[:2], 2.5, use_global_stats=False), id="batch-norm-batch-stats"),
    pytest.param(layer_text("sc", "Scale", ["x"], ["sc"], "scale_param { bias_term: true }"), _SCALE_BLOBS,
                 _images(5), None, lambda xs: ref.scale(xs[0], *_SCALE_BLOBS[:1], 1, _SCALE_BLOBS[1]), id="scale-learned"),
    pytest.param(layer_text("sc", "Scale", ["x", "s"], ["sc"], "scale_param { axis: 0 }"), [],
                 _image_and(lambda n, h, w: (n, 5)), [(0, 2, 3), (0,)],
                 lambda xs: ref.scale(xs[0], xs[1], 0), id="scale-bottom-axis-0"),
    pytest.param(layer_text("sc", "Scale", ["x", "s"], ["sc"], "scale_param { axis: 2 }"), [],
                 _image_and(lambda n, h, w: (h, w)), [(0, 2, 3), (0, 1)],
                 lambda xs: ref.scale(xs[0], xs[1], 2), id="scale-bottom-spatial"),
    pytest.param(layer_text("bias", "Bias", ["x", "b"], ["bias"]), [],
                 _image_and(lambda n, h, w: (5,)), [(0, 2, 3), ()],
                 lambda xs: ref.add_bias(xs[0], xs[1], 1), id="bias-bottom"),
    pytest.param(layer_text("lrn", "LRN", ["x"], ["lrn"], "lrn_param { local_size: 3 alpha: 0.3 beta: 0.6 k: 2 }"), [],
                 _images(5), None, lambda xs: ref.lrn_across_channels(xs[0], 3, 0.3, 0.6, 2.0), id="lrn-across"),
    pytest.param(layer_text("lrn", "LRN", ["x"], ["lrn"], "lrn_param { norm_region: WITHIN_CHANNEL local_size: 5 }"), [],
                 _images(5), None, lambda xs: ref.lrn_within_channel(xs[0], 5), id="lrn-within"),
    pytest.param(layer_text("prob", "Softmax", ["x"], ["prob"]), [], _images(5), None,
                 lambda xs: ref.softmax(xs[0]), id="softmax"),
]


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning", "ignore:Constant folding")
@pytest.mark.parametrize("dynamo", EXPORTERS)
@pytest.mark.parametrize("text, blobs, make_inputs, dynamic_axes, expected_of", ONNX_CASES)
def test_onnx_export_is_dynamic(tmp_path, text, blobs, make_inputs, dynamic_axes, expected_of, dynamo):
    example = make_inputs(2, 7, 9, 40)
    other = make_inputs(3, 12, 6, 50)
    module = convert_text(text, [a.shape for a in example], blobs)
    runs = onnx_outputs(module, example, [example, other], tmp_path / "layer.onnx", dynamic_axes=dynamic_axes,
                        dynamo=dynamo)
    for run_inputs, outputs in zip([example, other], runs):
        expected = expected_of(run_inputs)
        (eager,) = as_tuple(module(*[torch.from_numpy(a) for a in run_inputs]))
        (got,) = outputs
        assert_close(got, expected, REFERENCE_RTOL, f"ONNX at {run_inputs[0].shape}")
        assert_close(eager, expected, REFERENCE_RTOL, f"eager at {run_inputs[0].shape}")
