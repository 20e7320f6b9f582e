"""Caffe's shape rules on hand-computed cases (each expected value is worked out in its comment)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from helpers_files import net_text

from posebridge.errors import ShapeError
from posebridge.prototxt import expected_blob_shapes, graph_from_net, infer_shapes
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.shapes import pooled_size
from posebridge.prototxt.text_reader import parse_prototxt_text

SOURCE = "shapes.prototxt"


def _graph(layers: str, shapes: dict[str, Sequence[int]]) -> Graph:
    parsed = parse_prototxt_text(net_text(layers, shapes), source=SOURCE)
    return graph_from_net(parsed.net, source=SOURCE)


def _shape(layer: str, shapes: dict[str, Sequence[int]], top: str = "y") -> tuple[int, ...]:
    return infer_shapes(_graph(layer, shapes))[top]


def _tops(layer: str, shapes: dict[str, Sequence[int]], tops: Sequence[str]) -> list[tuple[int, ...]]:
    inferred = infer_shapes(_graph(layer, shapes))
    return [inferred[t] for t in tops]


X4 = {"x": (2, 3, 10, 12)}


# ----------------------------------------------------------------------------- pooling

@pytest.mark.parametrize(("size", "kernel", "stride", "pad", "expected"), [
    (7, 3, 2, 0, 3),    # ceil((7-3)/2)+1 = 3
    (6, 3, 2, 0, 3),    # ceil((6-3)/2)=ceil(1.5)=2, +1 = 3 (floor would give 2)
    (6, 2, 2, 0, 3),    # exact: 4/2+1 = 3
    (5, 2, 2, 1, 3),    # ceil((5+2-2)/2)+1 = 4; last window starts at 3*2=6 >= 5+1: dropped -> 3
    (6, 3, 2, 1, 4),    # ceil((6+2-3)/2)+1 = 4; last starts at 6 < 6+1: kept
    (368, 2, 2, 0, 184),
    (1, 2, 2, 0, 1),    # ceil(-1/2)+1 = 1
])
def test_pooled_size_hand_computed(size: int, kernel: int, stride: int, pad: int, expected: int) -> None:
    assert pooled_size(size, kernel, stride, pad) == expected


def test_pooling_layer_ceil_and_dropped_window() -> None:
    # H: ceil((10+2-2)/2)+1 = 6, 5*2=10 >= 11? no -> 6.  W: ceil((12+2-2)/2)+1 = 7, 6*2=12 >= 13? no -> 7
    layer = 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 2 stride: 2 pad: 1 } }'
    assert _shape(layer, X4) == (2, 3, 6, 7)
    # H 9: ceil((9+2-2)/2)+1 = 6, 5*2=10 >= 9+1: dropped -> 5
    layer = 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE kernel_size: 2 stride: 2 pad: 1 } }'
    assert _shape(layer, {"x": (1, 1, 9, 9)}) == (1, 1, 5, 5)


def test_pooling_drops_last_window_on_both_axes_when_any_pad_is_set() -> None:
    # Caffe checks "pad_h || pad_w" once for both axes. H: kernel 1, pad 0, stride 3 on 5:
    # ceil((5-1)/3)+1 = 3; the last window starts at 2*3=6 >= 5+0: dropped -> 2 (pad_w is 1).
    # W: kernel 2, pad 1, stride 3 on 5: ceil((5+2-2)/3)+1 = 3; 2*3=6 >= 5+1: dropped -> 2.
    layer = ('layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX '
             "kernel_h: 1 kernel_w: 2 stride_h: 3 stride_w: 3 pad_h: 0 pad_w: 1 } }")
    assert _shape(layer, {"x": (1, 1, 5, 5)}) == (1, 1, 2, 2)
    # with no pad at all nothing is dropped: ceil(4/3)+1 = 3 and ceil(3/3)+1 = 2
    layer = ('layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX '
             "kernel_h: 1 kernel_w: 2 stride_h: 3 stride_w: 3 } }")
    assert _shape(layer, {"x": (1, 1, 5, 5)}) == (1, 1, 3, 2)


def test_pooling_floor_mode_global_and_mask_top() -> None:
    floor = ('layer { name: "p" type: "Pooling" bottom: "x" top: "y" '
             "pooling_param { pool: MAX kernel_size: 3 stride: 2 round_mode: FLOOR } }")
    assert _shape(floor, X4) == (2, 3, 4, 5)  # floor(7/2)+1 = 4, floor(9/2)+1 = 5 (ceil gives 5, 6)
    glob = 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: AVE global_pooling: true } }'
    assert _shape(glob, X4) == (2, 3, 1, 1)
    mask = ('layer { name: "p" type: "Pooling" bottom: "x" top: "y" top: "mask" '
            "pooling_param { pool: MAX kernel_size: 3 stride: 2 } }")
    assert _tops(mask, X4, ["y", "mask"]) == [(2, 3, 5, 6), (2, 3, 5, 6)]


# ----------------------------------------------------------------------------- convolution


def test_convolution_with_stride_pad_dilation_and_rectangular_kernel() -> None:
    # extent = 2*(3-1)+1 = 5: H (10+2-5)//2+1 = 4, W (12+2-5)//2+1 = 5
    layer = ('layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
             "num_output: 8 kernel_size: 3 stride: 2 pad: 1 dilation: 2 } }")
    assert _shape(layer, X4) == (2, 8, 4, 5)
    # kernel 3x5, pad 0x2, stride 1x3: H 10-3+1 = 8, W (12+4-5)//3+1 = 4
    layer = ('layer { name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
             "num_output: 6 group: 3 kernel_h: 3 kernel_w: 5 pad_h: 0 pad_w: 2 stride_h: 1 stride_w: 3 } }")
    graph = _graph(layer, X4)
    shapes = infer_shapes(graph)
    assert shapes["y"] == (2, 6, 8, 4)
    node = graph.node("c")
    assert expected_blob_shapes(node, [shapes["x"]]) == [(6, 1, 3, 5), (6,)]


def test_deconvolution() -> None:
    # stride*(in-1) + extent - 2*pad: H 2*(10-1)+4-2 = 20, W 2*11+4-2 = 24
    layer = ('layer { name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param { '
             "num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 1 } }")
    graph = _graph(layer, X4)
    assert infer_shapes(graph)["y"] == (2, 4, 20, 24)
    # Deconvolution weights are (C_in, C_out / group, kh, kw)
    assert expected_blob_shapes(graph.node("d"), [(2, 3, 10, 12)]) == [(3, 4, 4, 4), (4,)]
    # dilation 2: extent 2*(3-1)+1 = 5: H 1*(10-1)+5-0 = 14, W 11+5 = 16
    layer = 'layer { name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param { num_output: 1 kernel_size: 3 dilation: 2 } }'
    assert _shape(layer, X4) == (2, 1, 14, 16)


# ----------------------------------------------------------------------------- shape layers


def test_crop() -> None:
    shapes = {"x": (2, 3, 10, 12), "ref": (1, 1, 6, 8)}
    layer = 'layer { name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { axis: 2 offset: 1 offset: 2 } }'
    assert _shape(layer, shapes) == (2, 3, 6, 8)
    layer = 'layer { name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { axis: 1 offset: 0 } }'
    assert _shape(layer, shapes) == (2, 1, 6, 8)
    layer = 'layer { name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" }'  # default axis 2, offset 0
    assert _shape(layer, shapes) == (2, 3, 6, 8)
    layer = 'layer { name: "crop" type: "Crop" bottom: "x" bottom: "ref" top: "y" crop_param { offset: 5 } }'
    with pytest.raises(ShapeError, match="crop offset 5"):  # 5 + 6 > 10
        _shape(layer, shapes)


def test_slice() -> None:
    x = {"x": (2, 6, 4, 4)}
    layer = ('layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" '
             "slice_param { axis: 1 slice_point: 1 slice_point: 3 } }")
    assert _tops(layer, x, "abc") == [(2, 1, 4, 4), (2, 2, 4, 4), (2, 3, 4, 4)]
    layer = 'layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" slice_param { axis: 1 } }'
    assert _tops(layer, x, "abc") == [(2, 2, 4, 4)] * 3
    layer = 'layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" slice_param { slice_dim: 3 slice_point: 3 } }'
    assert _tops(layer, x, "ab") == [(2, 6, 4, 3), (2, 6, 4, 1)]
    layer = 'layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" top: "d" slice_param { axis: -1 } }'
    assert _tops(layer, x, "abcd") == [(2, 6, 4, 1)] * 4
    layer = 'layer { name: "s" type: "Slice" bottom: "x" top: "a" top: "b" top: "c" top: "d" slice_param { axis: 1 } }'
    with pytest.raises(ShapeError, match="does not split evenly"):
        _tops(layer, x, "abcd")


@pytest.mark.parametrize(("param", "expected"), [
    ("shape { dim: 0 dim: -1 }", (2, 60)),                         # 3*4*5 = 60
    ("shape { dim: 0 dim: 2 dim: -1 dim: 0 }", (2, 2, 6, 5)),      # 120 / (2*2*5) = 6; last 0 copies 5
    ("shape { dim: -1 }", (120,)),
    ("axis: 1 num_axes: 2 shape { dim: -1 }", (2, 12, 5)),        # replaces axes 1..2 (3*4)
    ("axis: -1 shape { dim: 1 dim: 1 }", (2, 3, 4, 5, 1, 1)),     # axis -1: insert at the end
    ("axis: 0 num_axes: 0 shape { dim: 1 }", (1, 2, 3, 4, 5)),
])
def test_reshape(param: str, expected: tuple[int, ...]) -> None:
    layer = f'layer {{ name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {param} }} }}'
    assert _shape(layer, {"x": (2, 3, 4, 5)}) == expected


@pytest.mark.parametrize("param", ["shape { dim: 7 dim: -1 }", "shape { dim: -1 dim: -1 }", "shape { dim: 0 dim: 0 dim: 0 dim: 0 dim: 0 }"])
def test_reshape_errors_name_the_layer(param: str) -> None:
    layer = f'layer {{ name: "r" type: "Reshape" bottom: "x" top: "y" reshape_param {{ {param} }} }}'
    with pytest.raises(ShapeError) as info:
        _shape(layer, {"x": (2, 3, 4, 5)})
    assert SOURCE in str(info.value) and "layer 'r'" in str(info.value)


@pytest.mark.parametrize(("param", "expected"), [
    ("", (2, 60)),
    ("axis: 2", (2, 3, 20)),
    ("end_axis: 2", (2, 12, 5)),
    ("axis: 0 end_axis: -1", (120,)),
    ("axis: -2", (2, 3, 20)),
])
def test_flatten(param: str, expected: tuple[int, ...]) -> None:
    layer = f'layer {{ name: "f" type: "Flatten" bottom: "x" top: "y" flatten_param {{ {param} }} }}'
    assert _shape(layer, {"x": (2, 3, 4, 5)}) == expected


def test_concat() -> None:
    shapes = {"a": (2, 3, 4, 5), "b": (2, 1, 4, 5), "c": (2, 3, 4, 7)}
    layer = 'layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "y" }'  # default axis 1
    assert _shape(layer, shapes) == (2, 4, 4, 5)
    layer = 'layer { name: "cat" type: "Concat" bottom: "a" bottom: "c" top: "y" concat_param { axis: -1 } }'
    assert _shape(layer, shapes) == (2, 3, 4, 12)
    layer = 'layer { name: "cat" type: "Concat" bottom: "a" bottom: "a" top: "y" concat_param { concat_dim: 0 } }'
    assert _shape(layer, shapes) == (4, 3, 4, 5)
    layer = 'layer { name: "cat" type: "Concat" bottom: "a" bottom: "c" top: "y" }'
    with pytest.raises(ShapeError, match="differ outside axis 1"):
        _shape(layer, shapes)


@pytest.mark.parametrize(("param", "expected"), [
    ("", (2, 1, 1, 1)),                          # no axis: (N, 1, top_k) padded to the bottom's 4 axes
    ("top_k: 3", (2, 1, 3, 1)),
    ("top_k: 2 out_max_val: true", (2, 2, 2, 1)),
    ("axis: 1 top_k: 2", (2, 2, 4, 5)),
    ("axis: -1", (2, 3, 4, 1)),
])
def test_argmax(param: str, expected: tuple[int, ...]) -> None:
    layer = f'layer {{ name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param {{ {param} }} }}'
    assert _shape(layer, {"x": (2, 3, 4, 5)}) == expected


def test_argmax_of_a_2d_blob_has_three_axes() -> None:
    layer = 'layer { name: "am" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 2 } }'
    assert _shape(layer, {"x": (4, 10)}) == (4, 1, 2)


def test_argmax_without_axis_of_a_blob_without_axes_is_a_shape_error() -> None:
    # Accuracy gives a scalar top; found by the token-mutation fuzzer (an IndexError before).
    layers = ('layer { name: "acc" type: "Accuracy" bottom: "x" bottom: "label" top: "a" }\n'
              'layer { name: "am" type: "ArgMax" bottom: "a" top: "y" }')
    with pytest.raises(ShapeError, match="layer 'am'.*at least one axis"):
        infer_shapes(_graph(layers, {"x": (2, 5), "label": (2,)}))


@pytest.mark.parametrize(("axis", "expected", "weight"), [
    (1, (2, 7), (7, 60)),
    (2, (2, 3, 7), (7, 20)),
    (-1, (2, 3, 4, 7), (7, 5)),
])
def test_inner_product_axis(axis: int, expected: tuple[int, ...], weight: tuple[int, int]) -> None:
    layer = f'layer {{ name: "fc" type: "InnerProduct" bottom: "x" top: "y" inner_product_param {{ num_output: 7 axis: {axis} }} }}'
    graph = _graph(layer, {"x": (2, 3, 4, 5)})
    assert infer_shapes(graph)["y"] == expected
    assert expected_blob_shapes(graph.node("fc"), [(2, 3, 4, 5)]) == [weight, (7,)]


def test_inner_product_transposed_weight_shape() -> None:
    layer = ('layer { name: "fc" type: "InnerProduct" bottom: "x" top: "y" '
             "inner_product_param { num_output: 7 transpose: true bias_term: false } }")
    graph = _graph(layer, {"x": (2, 3, 4, 5)})
    assert expected_blob_shapes(graph.node("fc"), [(2, 3, 4, 5)]) == [(60, 7)]


def test_shapes_follow_the_requested_input_size() -> None:
    layer = 'layer { name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }'
    graph = _graph(layer, {"x": (1, 3, 1, 1)})
    assert infer_shapes(graph, graph.input_shapes((11, 20)))["y"] == (1, 3, 5, 10)  # ceil(8/2)+1, ceil(17/2)+1


def test_shape_error_names_file_and_layer() -> None:
    layer = 'layer { name: "big" type: "Convolution" bottom: "x" top: "y" convolution_param { num_output: 1 kernel_size: 11 } }'
    with pytest.raises(ShapeError) as info:
        _shape(layer, X4)  # 10 - 11 + 1 = 0
    assert SOURCE in str(info.value) and "layer 'big'" in str(info.value) and "<= 0" in str(info.value)


def test_opaque_layer_shapes_are_unknown_downstream() -> None:
    layers = ('layer { name: "fork" type: "ForkOnly" bottom: "x" top: "f" }\n'
              'layer { name: "relu" type: "ReLU" bottom: "f" top: "y" }\n'
              'layer { name: "side" type: "ReLU" bottom: "x" top: "z" }\n')
    shapes = infer_shapes(_graph(layers, X4))
    assert shapes["f"] is None and shapes["y"] is None and shapes["z"] == X4["x"]
