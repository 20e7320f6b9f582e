"""Winograd F(m x m, 3 x 3): exact transforms, float32 error against float64, the tuned runtime's choice."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers_bench import small_net
from posebridge.runtime import winograd
from posebridge.runtime.tuned_torch import PackedConv, ShapeSwitchedConv, tune
from posebridge.runtime.winograd import WinogradConv, applies, transforms, worth_it

#: Largest error of F(6x6, 3x3) in float32 relative to the layer's largest output (measured 1.0-1.6e-5).
WINOGRAD_TOLERANCE = 3e-5


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("m", [2, 4, 6])
def test_one_dimensional_identity_holds_to_float64_rounding(m):
    at, g, bt = transforms(m)
    n = m + 2
    assert at.shape == (m, n) and g.shape == (n, 3) and bt.shape == (n, n)
    rng = np.random.default_rng(m)
    for _ in range(20):
        d, w = rng.standard_normal(n), rng.standard_normal(3)
        expected = np.array([d[i:i + 3] @ w for i in range(m)])  # cross-correlation, as Caffe
        np.testing.assert_allclose(at @ ((g @ w) * (bt @ d)), expected, rtol=0, atol=1e-12)


def test_f4_input_transform_is_the_published_one():
    # Lavin and Gray (2016), F(4x4, 3x3) with points 0, +-1, +-2.
    published = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    np.testing.assert_array_equal(transforms(4)[2], np.array(published, dtype=np.float64))


def test_repeated_points_are_refused():
    saved = winograd.POINTS[2]
    try:
        winograd.POINTS[2] = (Fraction(0), Fraction(0), Fraction(1))  # a repeated point: no identity
        transforms.cache_clear()
        with pytest.raises((ValueError, ZeroDivisionError)):
            transforms(2)
    finally:
        winograd.POINTS[2] = saved
        transforms.cache_clear()


def _reference(conv: torch.nn.Conv2d, x: torch.Tensor, relu: bool) -> torch.Tensor:
    bias = None if conv.bias is None else conv.bias.double()
    y = F.conv2d(x.double(), conv.weight.double(), bias, padding=conv.padding)
    return torch.relu(y) if relu else y


def _relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference).abs().max() / reference.abs().max())


@pytest.mark.parametrize("m", [4, 6])
@pytest.mark.parametrize("c_in,c_out,size,pad,bias,relu", [
    (5, 7, (13, 17), (1, 1), True, False),    # neither side a multiple of the tile
    (16, 9, (8, 23), (0, 0), True, True),
    (12, 20, (11, 6), (2, 2), False, False),
    (9, 11, (7, 19), (1, 2), True, True),     # different pads per axis
    (96, 96, (23, 41), (1, 1), True, False),  # BODY_25's stage width, at a 184 x 328 input
])
def test_equals_float64_convolution_at_odd_sizes_and_batch_two(m, c_in, c_out, size, pad, bias, relu):
    torch.manual_seed(c_in * 31 + c_out)
    conv = torch.nn.Conv2d(c_in, c_out, 3, padding=pad, bias=bias)
    layer = WinogradConv(conv, relu=relu, m=m)
    x = torch.randn(2, c_in, *size)
    expected = _reference(conv, x, relu)
    with torch.inference_mode():
        for memory_format in (torch.contiguous_format, torch.channels_last):
            y = layer(x.contiguous(memory_format=memory_format))
            assert y.shape == expected.shape
            assert y.is_contiguous(memory_format=torch.channels_last)
            assert _relative(y, expected) <= WINOGRAD_TOLERANCE  # a wrong transform or offset: order 1


def test_batch_items_do_not_leak_into_each_other():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    layer = WinogradConv(conv)
    x = torch.randn(3, 8, 10, 14)
    with torch.inference_mode():
        together = layer(x)
        alone = torch.cat([layer(x[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)


@pytest.mark.parametrize("kwargs,ok", [
    (dict(kernel_size=3, padding=1), True),
    (dict(kernel_size=3, padding=0), True),
    (dict(kernel_size=3, padding=3), False),
    (dict(kernel_size=3, padding=1, stride=2), False),
    (dict(kernel_size=5, padding=2), False),
    (dict(kernel_size=3, padding=2, dilation=2), False),
    (dict(kernel_size=3, padding=1, groups=2), False),
    (dict(kernel_size=3, padding=1, padding_mode="reflect"), False),
])
def test_applies_only_to_plain_3x3_stride_1(kwargs, ok):
    conv = torch.nn.Conv2d(4, 4, **kwargs)
    assert applies(conv) is ok
    if not ok:
        with pytest.raises(ValueError):
            WinogradConv(conv)


def test_choice_rule():
    assert worth_it(96, 96, 46, 82) and worth_it(512, 512, 92, 164) and worth_it(64, 128, 184, 328)
    assert worth_it(128, 128, 368, 656)
    assert not worth_it(64, 64, 46, 82)            # few channels: the transforms dominate
    assert not worth_it(128, 128, 736, 1312)       # a bound on the transforms' memory
    assert not worth_it(128, 128, 0, 5) and not worth_it(128, 128, -1, -1)  # empty maps: the direct form's error


def test_tuned_net_switches_per_input_size_and_can_be_turned_off(tmp_path, monkeypatch):
    net = small_net(tmp_path)
    # The small net's 3x3 convolutions have few channels: allow Winograd for them here.
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    tuned = tune(net, native=False)  # the PyTorch form (the native kernel has tests of its own)
    direct = tune(net, use_winograd=False)
    switched = [m for m in tuned.layers.values() if isinstance(m, ShapeSwitchedConv)]
    assert tuned.winograd_convs == len(switched) > 0 and direct.winograd_convs == 0
    x = torch.from_numpy(np.random.default_rng(2).uniform(-0.5, 0.5, (2, 3, 37, 53)).astype(np.float32))
    with torch.inference_mode():
        expected = net(x)
        expected = expected[0] if isinstance(expected, tuple) else expected
        with_winograd, without = tuned(x), direct(x)
        assert _relative(with_winograd, expected.double()) < 1e-4
        assert not torch.equal(with_winograd, without)  # Winograd really ran
        monkeypatch.setattr(winograd, "MAX_PIXELS", 0)  # now every map is "large": the direct form
        assert torch.equal(tuned(x), without)


def test_bf16_nets_never_use_winograd(tmp_path, monkeypatch):
    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    tuned = tune(small_net(tmp_path), "bf16", check=False)
    assert tuned.winograd_convs == 0
    assert not any(isinstance(m, ShapeSwitchedConv) for m in tuned.layers.values())
    assert any(isinstance(m, PackedConv) for m in tuned.layers.values()) or not tuned.packed


def test_open_backend_and_run_can_keep_direct_convolutions(tmp_path, monkeypatch):
    from helpers_bench import write_small_net
    from posebridge.runtime.backends import open_backend

    monkeypatch.setattr(winograd, "MIN_CHANNEL_PRODUCT", 1)
    prototxt, caffemodel = write_small_net(tmp_path)
    assert open_backend(caffemodel, prototxt=prototxt)._runner.winograd_convs > 0
    assert open_backend(caffemodel, prototxt=prototxt, winograd=False)._runner.winograd_convs == 0
