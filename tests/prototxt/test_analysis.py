"""Per-layer analysis: MACs (group, dilation, deconvolution), params, memory, receptive field,
subtotals and weight statistics, checked by hand on tiny nets and against independent counts
(a convolution of ones counts its own multiply-accumulates; input gradients give the receptive
field), then the official nets' totals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers_files import official_prototxt, training_prototxt, write_net
from hypothesis import given, settings
from hypothesis import strategies as st

from posebridge.prototxt import load_graph
from posebridge.prototxt.analysis import (
    BYTES_PER_VALUE, DEFAULT_INPUT_SIZE, analyze, blob_stats, folded_hosts, layer_settings,
)
from posebridge.prototxt.loader import MatchedWeights
from posebridge.prototxt.shapes import conv_geometry, pool_geometry


def _analyze(tmp_path, layers: str, shapes, **kwargs):
    return analyze(load_graph(write_net(tmp_path, layers, shapes)), **kwargs)


# ----------------------------------------------------------------------------- hand-checked numbers

def test_grouped_dilated_convolution_by_hand(tmp_path):
    # 1x4x20x20 -> 6 outputs, kernel 3, dilation 2 (extent 5), group 2, no pad:
    # H_out = (20 - 5) / 1 + 1 = 16, so 6*16*16 = 1536 outputs, each 4/2 * 3*3 = 18 MACs -> 27648.
    # params: weights 6 x (4/2) x 3 x 3 = 108, bias 6 -> 114.
    a = _analyze(tmp_path, """
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 6 kernel_size: 3 dilation: 2 group: 2 } }
""", {"data": (1, 4, 20, 20)})
    row = a.layer("conv")
    assert row.output_shapes == ((1, 6, 16, 16),)
    assert row.macs == 27648
    assert row.params == 114
    assert row.activation_bytes == 1536 * BYTES_PER_VALUE
    # receptive field: 1 + (5 - 1) * 1 = 5, stride 1
    assert [int(v) for v in row.receptive_field.size] == [5, 5]
    assert [int(v) for v in row.receptive_field.stride] == [1, 1]


def test_deconvolution_and_inner_product_by_hand(tmp_path):
    # Deconvolution 1x4x20x17 -> 6 outputs, kernel 4, stride 2, group 2:
    # MACs = input elements 1360 * (6/2) * 16 = 65280; weights 4 x 3 x 4 x 4 = 192, bias 6 -> 198;
    # output (20-1)*2 + 4 = 42 by (17-1)*2 + 4 = 36.
    # InnerProduct on 1x6x42x36 (K = 9072) -> 10: MACs 90720, params 90730.
    a = _analyze(tmp_path, """
layer { name: "up" type: "Deconvolution" bottom: "data" top: "up"
        convolution_param { num_output: 6 kernel_size: 4 stride: 2 group: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "up" top: "fc" inner_product_param { num_output: 10 } }
""", {"data": (1, 4, 20, 17)})
    up, fc = a.layer("up"), a.layer("fc")
    assert up.output_shapes == ((1, 6, 42, 36),)
    assert (up.macs, up.params) == (65280, 198)
    assert (fc.macs, fc.params) == (90720, 90730)
    assert a.totals.macs == 65280 + 90720 and a.totals.params == 198 + 90730


def test_receptive_field_by_hand(tmp_path):
    # conv 3x3 s1: 3 / 1; pool 2 s2: 3+1*1 = 4 / 2; conv 3x3 dilation 2 (extent 5): 4+4*2 = 12 / 2;
    # deconv k4 s2: an output sees floor(3/2)+1 = 2 inputs: 12 + 1*2 = 14 / 1.
    # The concat joins the pooled path (4 / 2) with the deeper one: max over paths = 12 / 2.
    a = _analyze(tmp_path, """
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 2 kernel_size: 3 pad: 1 } }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2" convolution_param { num_output: 2 kernel_size: 3 dilation: 2 pad: 2 } }
layer { name: "cat" type: "Concat" bottom: "p1" bottom: "c2" top: "cat" }
layer { name: "up" type: "Deconvolution" bottom: "c2" top: "up" convolution_param { num_output: 2 kernel_size: 4 stride: 2 pad: 1 } }
""", {"data": (1, 1, 16, 16)})
    expected = {"data": None, "c1": (3, 1), "p1": (4, 2), "c2": (12, 2), "cat": (12, 2), "up": (14, 1)}
    for name, (size, stride) in ((k, v) for k, v in expected.items() if v is not None):
        rf = a.layer(name).receptive_field
        assert [float(v) for v in rf.size] == [size, size], name
        assert [float(v) for v in rf.stride] == [stride, stride], name


def test_unknown_layers_and_what_counts_zero(tmp_path):
    a = _analyze(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "r" type: "ReLU" bottom: "c" top: "c" }
layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "e" type: "Eltwise" bottom: "p" bottom: "p" top: "e" }
""", {"data": (1, 3, 32, 32)})
    assert [a.layer(n).macs for n in ("r", "p", "e")] == [0, 0, 0]
    assert [a.layer(n).params for n in ("r", "p", "e")] == [0, 0, 0]
    # in place: the ReLU's top reuses the conv's memory, so totals count it once
    relu = a.layer("r")
    assert relu.in_place and relu.folded_into == "c"
    # input 3x32x32, conv 4x32x32 (the ReLU shares it), pool 4x16x16, eltwise 4x16x16
    expected_memory = (3 * 1024 + 4 * 1024 + 4 * 256 + 4 * 256) * BYTES_PER_VALUE
    assert a.totals.activation_bytes == expected_memory


# ----------------------------------------------------------------------------- independent checks

def _conv_text(kernel, stride, dilation, group, cin_per_group, cout_per_group, deconv):
    kind = "Deconvolution" if deconv else "Convolution"
    return (f'layer {{ name: "l" type: "{kind}" bottom: "data" top: "l" convolution_param {{ '
            f"num_output: {cout_per_group * group} kernel_size: {kernel} stride: {stride} "
            f"dilation: {dilation} group: {group} }} }}\n")


@settings(max_examples=25, deadline=None)
@given(kernel=st.integers(1, 4), stride=st.integers(1, 3), dilation=st.integers(1, 3), group=st.integers(1, 3),
       cin=st.integers(1, 3), cout=st.integers(1, 3), size=st.integers(17, 22), deconv=st.booleans())
def test_macs_equal_a_convolution_of_ones(tmp_path_factory, kernel, stride, dilation, group, cin, cout, size, deconv):
    """With no padding, a (transposed) convolution of ones over ones sums to its MAC count."""
    tmp_path = tmp_path_factory.mktemp("conv")
    shape = (1, cin * group, size, size + 1)
    a = _analyze(tmp_path, _conv_text(kernel, stride, dilation, group, cin, cout, deconv), {"data": shape})
    ones = torch.ones(shape, dtype=torch.float64)
    if deconv:
        weight = torch.ones((cin * group, cout, kernel, kernel), dtype=torch.float64)
        out = F.conv_transpose2d(ones, weight, stride=stride, dilation=dilation, groups=group)
    else:
        weight = torch.ones((cout * group, cin, kernel, kernel), dtype=torch.float64)
        out = F.conv2d(ones, weight, stride=stride, dilation=dilation, groups=group)
    row = a.layer("l")
    assert row.output_shapes[0] == tuple(out.shape)
    assert row.macs == int(out.sum().item())
    assert row.params == weight.numel() + cout * group


def _empirical_receptive_field(graph, size: int) -> dict[str, tuple[int, int]]:
    """Receptive field (extent of the input gradient of one central output) and stride (shift of
    that extent between two neighbouring outputs) per layer, running the net with ones weights
    and average pooling so every tap passes gradient."""
    x = torch.ones((1, 1, size, size), dtype=torch.float64, requires_grad=True)
    values = {}
    results = {}
    for node in graph.nodes:
        if node.type == "Input":
            values[node.tops[0]] = x
            continue
        bottom = values[node.bottoms[0]]
        if node.type == "Convolution":
            g = conv_geometry(node)
            weight = torch.ones((1, bottom.shape[1], *g["kernel"]), dtype=torch.float64)
            out = F.conv2d(bottom, weight, stride=g["stride"], padding=g["pad"], dilation=g["dilation"])
        elif node.type == "Pooling":
            g = pool_geometry(node, tuple(bottom.shape[2:]))
            out = F.avg_pool2d(bottom, g["kernel"], g["stride"], g["pad"], ceil_mode=True)
        else:
            raise AssertionError(node.type)
        values[node.tops[0]] = out
        extents = []
        for offset in (0, 1):
            (grad,) = torch.autograd.grad(out[0, 0, out.shape[2] // 2, out.shape[3] // 2 + offset], x,
                                          retain_graph=True)
            cols = torch.nonzero(grad[0, 0].abs().sum(0)).flatten()
            extents.append((int(cols.min()), int(cols.max())))
        results[node.name] = (extents[0][1] - extents[0][0] + 1, extents[1][0] - extents[0][0])
    return results


def test_receptive_field_matches_input_gradients(tmp_path):
    layers = """
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1" convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }
layer { name: "p1" type: "Pooling" bottom: "c1" top: "p1" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "c2" type: "Convolution" bottom: "p1" top: "c2" convolution_param { num_output: 1 kernel_size: 3 dilation: 3 pad: 3 } }
layer { name: "c3" type: "Convolution" bottom: "c2" top: "c3" convolution_param { num_output: 1 kernel_size: 5 stride: 2 pad: 2 } }
layer { name: "p2" type: "Pooling" bottom: "c3" top: "p2" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layer { name: "c4" type: "Convolution" bottom: "p2" top: "c4" convolution_param { num_output: 1 kernel_size: 1 } }
"""
    graph = load_graph(write_net(tmp_path, layers, {"data": (1, 1, 8, 8)}))
    analysis = analyze(graph, input_size=(160, 160))
    empirical = _empirical_receptive_field(graph, 160)
    for name, (size, stride) in empirical.items():
        rf = analysis.layer(name).receptive_field
        assert (int(rf.size[1]), int(rf.stride[1])) == (size, stride), name


# ----------------------------------------------------------------------------- settings, folding, input size

def test_settings_show_only_nondefault_values(tmp_path):
    graph = load_graph(write_net(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" param { lr_mult: 1 }
        convolution_param { num_output: 4 kernel_size: 3 pad: 0 stride: 1 bias_term: false
                            weight_filler { type: "constant" } engine: DEFAULT } }
layer { name: "p" type: "Pooling" bottom: "c" top: "p" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
""", {"data": (1, 3, 8, 8)}))
    assert layer_settings(graph.node("c")) == {"num_output": "4", "kernel_size": "3", "bias_term": "false"}
    assert layer_settings(graph.node("p")) == {"pool": "AVE", "kernel_size": "2", "stride": "2"}


def test_in_place_chains_fold_into_the_first_writer(tmp_path):
    graph = load_graph(write_net(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "bn" type: "BatchNorm" bottom: "c" top: "c" }
layer { name: "sc" type: "Scale" bottom: "c" top: "c" scale_param { bias_term: true } }
layer { name: "r" type: "ReLU" bottom: "c" top: "c" }
layer { name: "c2" type: "Convolution" bottom: "c" top: "c2" convolution_param { num_output: 4 kernel_size: 1 } }
""", {"data": (1, 3, 8, 8)}))
    assert folded_hosts(graph) == {"bn": "c", "sc": "c", "r": "c"}
    a = analyze(graph)
    assert a.layer("bn").params == 4 + 4 + 1 and a.layer("sc").params == 8


def test_placeholder_input_is_replaced_and_noted(tmp_path):
    path = write_net(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 3 } }
""", {"data": (1, 3, 1, 1)})
    a = analyze(load_graph(path))
    assert a.input_shapes == {"data": (1, 3, *DEFAULT_INPUT_SIZE)} and "placeholder" in a.input_note
    b = analyze(load_graph(path), input_size=(20, 30))
    assert b.input_shapes == {"data": (1, 3, 20, 30)} and b.input_note is None
    assert b.layer("c").output_shapes == ((1, 2, 18, 28),)


def test_a_size_the_net_cannot_take_gives_unknowns_and_a_warning(tmp_path):
    path = write_net(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 7 } }
""", {"data": (1, 3, 32, 32)})
    a = analyze(load_graph(path), input_size=(4, 4))
    row = a.layer("c")
    assert row.output_shapes == (None,) and row.macs is None and row.params == 2 * 3 * 49 + 2
    assert a.totals.unknown_macs == 1 and any("shapes unknown" in w for w in a.warnings)


def test_invalid_layer_parameters_still_give_an_analysis(tmp_path):
    a = _analyze(tmp_path, """
layer { name: "c" type: "Convolution" bottom: "data" top: "c" convolution_param { num_output: 2 kernel_size: 0 } }
layer { name: "r" type: "ReLU" bottom: "c" top: "r" }
""", {"data": (1, 3, 32, 32)})
    row = a.layer("c")
    assert (row.params, row.macs, row.receptive_field, row.output_shapes) == (None, None, None, (None,))
    assert a.layer("r").receptive_field is None
    assert len([w for w in a.warnings if "kernel (0, 0)" in w]) == 2  # shapes, then the layer itself


# ----------------------------------------------------------------------------- weights

def test_weight_statistics_and_flags(tmp_path):
    graph = load_graph(write_net(tmp_path, """
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "a" top: "b" convolution_param { num_output: 2 kernel_size: 1 } }
""", {"data": (1, 2, 4, 4)}))
    weights_a = np.array([0.0, 1.0, -2.0, np.nan], dtype=np.float32).reshape(2, 2, 1, 1)
    weights_b = np.array([1.0, np.inf, 3.0, 0.0], dtype=np.float32).reshape(2, 2, 1, 1)
    matched = MatchedWeights(blobs={"a": [weights_a, np.zeros(2, np.float32)],
                                    "b": [weights_b, np.array([0.5, 0.5], np.float32)]}, source="w.caffemodel")
    a = analyze(graph, weights=matched)
    stats_a, bias_a = a.layer("a").weights
    finite = np.array([0.0, 1.0, -2.0])
    assert (stats_a.mean, stats_a.std, stats_a.min, stats_a.max) == pytest.approx(
        (finite.mean(), finite.std(), -2.0, 1.0))
    assert stats_a.zero_fraction == 0.25 and stats_a.nan_count == 1
    assert a.layer("a").flags == ("weights: 1 NaN", "bias: all zeros")
    assert a.layer("b").flags == ("weights: 1 Inf",)
    assert a.weights_source == "w.caffemodel" and a.layer("a").params == 6


def test_blob_stats_of_a_clean_blob_has_no_flags():
    stats = blob_stats("weights", np.linspace(-1, 1, 11, dtype=np.float32))
    assert stats.flags == () and stats.zero_fraction == pytest.approx(1 / 11)
    assert math.isclose(stats.mean, 0.0, abs_tol=1e-7)


# ----------------------------------------------------------------------------- official nets

def test_coco_totals_and_subtotals():
    a = analyze(load_graph(official_prototxt("coco")), input_size=(368, 368))
    # The OpenPose COCO net: 52.3 M parameters and about 136 G multiply-accumulates at 368x368.
    assert round(a.totals.params / 1e6, 1) == 52.3
    assert abs(a.totals.macs / 1e9 - 136) < 0.5
    assert a.totals.unknown_params == a.totals.unknown_macs == 0
    top_level = [g for g in a.groups if g.parent is None]
    assert [g.name for g in top_level] == ["features", *[f"stage{i}" for i in range(1, 7)], "output"]
    assert sum(g.totals.params for g in top_level) == a.totals.params
    assert sum(g.totals.macs for g in top_level) == a.totals.macs
    for stage in top_level[1:-1]:
        branches = [g for g in a.groups if g.parent == stage.name]
        assert [b.name[-2:] for b in branches] == ["L1", "L2"]
        assert sum(b.totals.params for b in branches) == stage.totals.params
    # the receptive field only grows along the net, and the stride ends at the net's 8
    final = a.layer("concat_stage7").receptive_field
    assert int(final.stride[0]) == 8 and final.size[0] > 368


def test_training_net_counts_params_through_the_opaque_data_layer():
    a = analyze(load_graph(training_prototxt()))
    coco = analyze(load_graph(official_prototxt("coco")))
    data = a.layer("data")
    assert data.opaque and data.output_shapes == (None, None)
    assert a.totals.unknown_macs > 0 and a.layer("conv1_1").macs is None
    # The same convolutions as the deployed COCO net: channels are still known after CPMData
    # (its Slice points fix them); only CPMData itself, a type posebridge does not know, is "?".
    assert a.totals.params == coco.totals.params
    assert [r.name for r in a.layers if r.params is None] == ["data"]
