"""Pooling: Caffe's output size (ceil, then the padding drop), window clipping and AVE divisor.

Exhaustive sweeps over small sizes against the numpy reference (written from PoolingLayer's
C++), OpenCV dnn on the cases it computes as Caffe does, and ONNX export at other sizes.

Known OpenCV dnn 4.x differences from Caffe (each checked by running OpenCV):
* ``round_mode: FLOOR`` is ignored (OpenCV always rounds up);
* an input smaller than the kernel (H + 2p < k, where Caffe still gives one clipped window)
  is refused by OpenCV's shape check;
* MAX windows lying wholly outside the input (pad 0, stride > kernel, ceil) give 0 in OpenCV,
  -FLT_MAX in Caffe.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import helpers_caffe as hc
from posebridge.converter.layers.pooling import CaffePooling, GlobalPooling, right_padding
from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.errors import ShapeError, UnsupportedLayerError

ref = hc.load_reference("reference_a")

RTOL_REFERENCE = 1e-5
RTOL_OPENCV = 1e-4
FLT_MAX = float(np.finfo(np.float32).max)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors: one torch thread avoids thread wake-up costs on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pool_text(fields: str, name: str = "pool") -> str:
    return (f'layer {{ name: "{name}" type: "Pooling" bottom: "data" top: "{name}" '
            f"pooling_param {{ {fields} }} }}\n")


def pool_spec(fields: str, shape=(2, 3, 9, 7)) -> LayerSpec:
    layer = hc.make_net(pool_text(fields), {"data": shape}).layer[1]
    return LayerSpec(name=layer.name, type=layer.type, layer=layer, input_shapes=[shape])


def axis_fields(kernel, stride, pad, method: str, ceil_mode: bool) -> str:
    text = (f"pool: {method} kernel_h: {kernel[0]} kernel_w: {kernel[1]} stride_h: {stride[0]} "
            f"stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]}")
    return text if ceil_mode else text + " round_mode: FLOOR"


def assert_same_values(got: np.ndarray, expected: np.ndarray, rtol: float, what: str) -> None:
    """Close values, with NaN and -FLT_MAX and signed zeros (Caffe's degenerate windows) exactly equal."""
    assert got.shape == expected.shape, f"{what}: shape {got.shape} != {expected.shape}"
    special = ~np.isfinite(expected) | (np.abs(expected) >= FLT_MAX) | (expected == 0)
    np.testing.assert_array_equal(np.isnan(got[special]), np.isnan(expected[special]), err_msg=what)
    finite = special & ~np.isnan(expected)
    np.testing.assert_array_equal(got[finite], expected[finite], err_msg=what)
    np.testing.assert_array_equal(np.signbit(got[finite]), np.signbit(expected[finite]), err_msg=what)
    if (~special).any():
        hc.assert_close(got[~special], expected[~special], rtol, what)


# Hand-computed Caffe sizes: (size, kernel, stride, pad, ceil) -> pooled size.
HAND_SIZES = [
    ((7, 3, 2, 1, True), 4),    # ceil(6/2)+1 = 4; last start 6 < 7+1
    ((4, 3, 2, 2, True), 3),    # ceil(5/2)+1 = 4; last start 6 >= 4+2: dropped
    ((9, 2, 2, 0, True), 5),    # ceil(7/2)+1 = 5: the odd row gets its own clipped window
    ((9, 2, 2, 0, False), 4),   # floor(7/2)+1 = 4
    ((4, 1, 2, 0, True), 3),    # ceil(3/2)+1 = 3: a window starting at 4 (outside; no drop without pad)
    ((1, 3, 2, 1, True), 1),    # ceil(0/2)+1 = 1: one window, clipped, on an input smaller than the kernel
    ((2, 5, 3, 1, True), 1),    # ceil(-1/3)+1 = 1 (float ceil of a negative ratio rounds toward 0)
]


@pytest.mark.parametrize("args,expected", HAND_SIZES)
def test_reference_pooled_size_matches_hand_computation(args, expected):
    assert ref.pooled_size(*args) == expected


def test_exhaustive_sweep_against_reference():
    """Every kernel 1..4, stride 1..4, pad 0..k-1, size 1..11, MAX/AVE, CEIL/FLOOR (both axes)."""
    rng = np.random.default_rng(0)
    axis_cases = [(k, s, p) for k in range(1, 5) for s in range(1, 5) for p in range(k)]
    checked = 0
    for method, ceil_mode in itertools.product(("MAX", "AVE"), (True, False)):
        for index, (k, s, p) in enumerate(axis_cases):
            kw, sw, pw = axis_cases[(index * 7 + 3) % len(axis_cases)]  # a different geometry on W
            for height in range(1, 12):
                width = height % 5 + kw  # odd and even widths, never smaller than the kernel
                if ref.pooled_size(height, k, s, p, ceil_mode) <= 0 or ref.pooled_size(width, kw, sw, pw, ceil_mode) <= 0:
                    continue
                x = rng.standard_normal((2, 3, height, width)).astype(np.float32)
                module = convert_layer(pool_spec(axis_fields((k, kw), (s, sw), (p, pw), method, ceil_mode), x.shape))
                with torch.no_grad():
                    got = module(torch.from_numpy(x)).numpy()
                expected = ref.pooling(x, method, (k, kw), (s, sw), (p, pw), ceil_mode)
                assert_same_values(got, expected, RTOL_REFERENCE,
                                   f"{method} ceil={ceil_mode} H={height} W={width} k=({k},{kw}) s=({s},{sw}) p=({p},{pw})")
                checked += 1
    assert checked > 1500


def test_degenerate_windows_reproduce_caffe():
    """Pad 0, stride 2 > kernel 1, even size: Caffe adds a window starting past the input."""
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    for method, edge in (("MAX", -FLT_MAX), ("AVE", np.nan)):
        module = convert_layer(pool_spec(f"pool: {method} kernel_size: 1 stride: 2", x.shape))
        got = module(torch.from_numpy(x)).numpy()[0, 0]
        np.testing.assert_array_equal(got[:2, :2], [[1, 3], [9, 11]])
        np.testing.assert_array_equal(got[2, :], [edge] * 3)
        np.testing.assert_array_equal(got[:, 2], [edge] * 3)


# OpenCV comparison cases: (fields, input shape). All CEIL, inputs at least the kernel size.
OPENCV_CASES = {
    "openpose_max_2x2_s2_odd": ("pool: MAX kernel_size: 2 stride: 2", (2, 3, 23, 17)),
    "max_3x3_s2_p1": ("pool: MAX kernel_size: 3 stride: 2 pad: 1", (2, 3, 9, 8)),
    "max_hw_fields": ("pool: MAX kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 3 pad_h: 2 pad_w: 1", (2, 3, 11, 10)),
    "ave_3x3_s1_p1": ("pool: AVE kernel_size: 3 stride: 1 pad: 1", (2, 3, 7, 5)),
    "ave_3x3_s2_p1": ("pool: AVE kernel_size: 3 stride: 2 pad: 1", (2, 3, 10, 9)),
    "ave_2x2_s2_p1_edge": ("pool: AVE kernel_size: 2 stride: 2 pad: 1", (2, 3, 7, 6)),
    "ave_5x5_s3_p2": ("pool: AVE kernel_size: 5 stride: 3 pad: 2", (2, 3, 13, 11)),
    "ave_drop_last_window": ("pool: AVE kernel_size: 3 stride: 2 pad: 2", (2, 3, 4, 6)),
    "ave_hw_fields": ("pool: AVE kernel_h: 2 kernel_w: 4 stride_h: 1 stride_w: 3 pad_h: 1 pad_w: 3", (2, 3, 5, 13)),
    "global_max": ("pool: MAX global_pooling: true", (2, 3, 7, 5)),
    "global_ave": ("pool: AVE global_pooling: true", (2, 3, 7, 5)),
}


@pytest.mark.parametrize("case", sorted(OPENCV_CASES))
def test_cases_against_reference_and_opencv(tmp_path, case):
    fields, shape = OPENCV_CASES[case]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    net = hc.make_net(pool_text(fields), {"data": shape})
    converted = hc.run_converted(net, {}, {"data": x})["pool"]
    params = net.layer[1].pooling_param
    if params.global_pooling:
        expected = ref.pooling(x, "MAX" if params.pool == 0 else "AVE", (0, 0), (1, 1), (0, 0), global_pooling=True)
        assert expected.shape == (2, 3, 1, 1)
    else:
        kernel = (params.kernel_h, params.kernel_w) if params.HasField("kernel_h") else (params.kernel_size,) * 2
        stride = (params.stride_h, params.stride_w) if params.HasField("stride_h") else (params.stride,) * 2
        pad = (params.pad_h, params.pad_w) if params.HasField("pad_h") else (params.pad,) * 2
        expected = ref.pooling(x, "MAX" if params.pool == 0 else "AVE", kernel, stride, pad)
    hc.assert_close(converted, expected, RTOL_REFERENCE, f"{case} vs numpy reference")
    prototxt, caffemodel = hc.write_model(tmp_path, net)
    opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["pool"])["pool"]
    hc.assert_close(opencv, expected, RTOL_OPENCV, f"OpenCV {case} vs numpy reference")


def test_opencv_sweep_where_opencv_follows_caffe(tmp_path):
    """CEIL sweep against OpenCV, leaving out its documented differences (see module docstring)."""
    rng = np.random.default_rng(2)
    checked = 0
    for method, k, s in itertools.product(("MAX", "AVE"), (2, 3), (1, 2, 3)):
        for p, height in itertools.product(range(k), range(k, 10)):
            if p == 0 and s > k:
                # The width axis is padded, so Caffe (``pad_h_ || pad_w_``) drops a last height
                # window starting beyond the input; OpenCV decides per axis and keeps it (for MAX
                # writing 0 where Caffe would have -FLT_MAX). The Caffe goldens cover this case.
                continue
            shape = (2, 3, height, 5)
            x = rng.standard_normal(shape).astype(np.float32)
            net = hc.make_net(pool_text(axis_fields((k, 2), (s, 1), (p, 1), method, True)), {"data": shape})
            prototxt, caffemodel = hc.write_model(tmp_path, net)
            opencv = hc.run_opencv(prototxt, caffemodel, {"data": x}, ["pool"])["pool"]
            converted = hc.run_converted(net, {}, {"data": x})["pool"]
            assert_same_values(converted, opencv, RTOL_OPENCV, f"{method} k={k} s={s} p={p} H={height}")
            checked += 1
    assert checked > 100


EXPORT_CASES = [("pool: MAX kernel_size: 3 stride: 2 pad: 1", False),
                ("pool: MAX kernel_size: 2 stride: 2", False),  # OpenPose's pooling: ceil_mode form
                ("pool: AVE kernel_size: 3 stride: 2 pad: 2", False),
                ("pool: AVE global_pooling: true", False),
                ("pool: AVE kernel_size: 1 stride: 2", False),
                # torch.export-based exporter once, on the case using every op (pad, pools, round, cumsum)
                ("pool: AVE kernel_size: 1 stride: 2", True)]


@pytest.mark.parametrize("fields,dynamo", EXPORT_CASES)
def test_onnx_export_keeps_caffe_sizes_at_other_inputs(fields, dynamo):
    rng = np.random.default_rng(3)
    module = convert_layer(pool_spec(fields, (2, 3, 9, 9)))
    inputs = [rng.standard_normal(shape).astype(np.float32) for shape in ((1, 3, 6, 7), (3, 3, 11, 4))]
    outputs = hc.onnx_outputs(module, torch.zeros(2, 3, 9, 9), inputs, dynamo=dynamo)
    params = pool_spec(fields).layer.pooling_param
    for x, y in zip(inputs, outputs):
        if params.global_pooling:
            expected = ref.pooling(x, "AVE", (0, 0), (1, 1), (0, 0), global_pooling=True)
        else:
            k, s, p = params.kernel_size, params.stride, params.pad
            expected = ref.pooling(x, "MAX" if params.pool == 0 else "AVE", (k, k), (s, s), (p, p))
        assert_same_values(y, expected, RTOL_REFERENCE, f"ONNX {fields} at {x.shape}")


@pytest.mark.parametrize("fields,plain", [
    ("pool: MAX kernel_size: 2 stride: 2", (True,)),
    ("pool: MAX kernel_size: 3 stride: 3 round_mode: FLOOR", (False,)),
    ("pool: MAX kernel_size: 3 stride: 2 pad: 1", None),   # left pad: Caffe's drop rule needs the padded form
    ("pool: MAX kernel_size: 2 stride: 3", None),          # windows may start beyond the input
    ("pool: AVE kernel_size: 2 stride: 2", None),
])
def test_plain_max_form_only_where_caffe_and_ceil_mode_agree(fields, plain):
    module = convert_layer(pool_spec(fields))
    assert module.plain_max_form() == plain
    if plain is None:
        return
    # Equal to the padded form at every small size (the form the module would use otherwise).
    rng = np.random.default_rng(5)
    for height, width in itertools.product(range(3, 12), range(3, 12)):
        x = torch.from_numpy(rng.standard_normal((2, 3, height, width)).astype(np.float32))
        k, s = (module.height.kernel, module.width.kernel), (module.height.stride, module.width.stride)
        padded = torch.nn.functional.max_pool2d(module._padded(x, -FLT_MAX), k, s)
        assert torch.equal(module(x), padded), (height, width)


def test_onnx_export_of_openpose_max_pooling_has_no_pad_node(tmp_path):
    import onnx

    module = convert_layer(pool_spec("pool: MAX kernel_size: 2 stride: 2", (2, 3, 9, 9))).eval()
    path = tmp_path / "pool.onnx"
    torch.onnx.export(module, (torch.zeros(2, 3, 9, 9),), path, dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})
    nodes = [n.op_type for n in onnx.load(path).graph.node]
    assert "Pad" not in nodes and nodes.count("MaxPool") == 1


def test_right_padding_table():
    # CEIL, p > 0: min(k - 1, p + s - 1); CEIL, p = 0: s - 1; FLOOR: p.
    assert right_padding(3, 2, 1, True) == 2
    assert right_padding(3, 1, 2, True) == 2
    assert right_padding(5, 1, 1, True) == 1
    assert right_padding(2, 2, 0, True) == 1
    assert right_padding(3, 2, 1, False) == 1
    # An unpadded axis still drops a last window starting beyond the input when the other
    # axis is padded (Caffe's ``pad_h_ || pad_w_``): r = min(k - 1, s - 1), not s - 1.
    assert right_padding(2, 4, 0, True, drop_last=True) == 1
    assert right_padding(2, 4, 0, True, drop_last=False) == 3


def test_converted_modules():
    assert isinstance(convert_layer(pool_spec("pool: MAX kernel_size: 2 stride: 2")), CaffePooling)
    assert isinstance(convert_layer(pool_spec("pool: AVE global_pooling: true")), GlobalPooling)


def test_stochastic_is_unsupported_with_layer_name():
    with pytest.raises(UnsupportedLayerError, match=r"layer 'pool'.*STOCHASTIC"):
        convert_layer(pool_spec("pool: STOCHASTIC kernel_size: 2 stride: 2"))


@pytest.mark.parametrize("fields,message", [
    ("pool: MAX kernel_size: 3 pad: 3", "smaller than the kernel"),
    ("pool: MAX kernel_size: 3 kernel_h: 3 kernel_w: 3", "kernel_size or both"),
    ("pool: MAX kernel_h: 3", "kernel_size or both"),
    ("pool: MAX kernel_size: 3 pad: 1 pad_h: 1 pad_w: 1", "pad or both"),
    ("pool: MAX kernel_size: 3 stride_h: 2", "stride or both"),
    ("pool: AVE global_pooling: true kernel_size: 3", "global_pooling"),
    ("pool: AVE global_pooling: true stride: 2", "global_pooling"),
])
def test_configurations_caffe_refuses_are_refused(fields, message):
    with pytest.raises(ShapeError, match=message):
        convert_layer(pool_spec(fields))


def test_mask_top_is_unsupported():
    text = ('layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" top: "mask" '
            "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n")
    layer = hc.make_net(text, {"data": (2, 3, 5, 5)}).layer[1]
    with pytest.raises(UnsupportedLayerError, match="mask"):
        convert_layer(LayerSpec(name=layer.name, type=layer.type, layer=layer, input_shapes=[(2, 3, 5, 5)]))
