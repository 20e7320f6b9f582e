"""OpenPose preprocessing: sizes, scale factors, the top-left warp, normalisation, merging, inverse.

Expected numbers are worked out by hand from OpenPose's formulas (scaleAndSizeExtractor.cpp,
openCv.cpp, poseExtractorCaffe.cpp) and written out in the comments.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posebridge.errors import LimitExceededError, PosebridgeError, ShapeError
from posebridge.runtime import preprocess as pp
from posebridge.runtime.upsample import average_scales


def _random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- net_resolution ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("-1x368", (-1, 368)), ("656x368", (656, 368)), ("320x-1", (320, -1)), (" 16 X 32 ", (16, 32)),
])
def test_parse_net_resolution(text, expected):
    assert pp.parse_net_resolution(text) == expected


@pytest.mark.parametrize("text", ["-1x-1", "0x0", "650x368", "-1x370", "368", "axb", ""])
def test_parse_net_resolution_rejects(text):
    with pytest.raises(PosebridgeError) as info:
        pp.parse_net_resolution(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("image_size, resolution, expected", [
    # 368*641/479/16 = 30.78 -> 31 -> 496
    ((641, 479), "-1x368", (496, 368)),
    # portrait: 368*479/641/16 = 17.19 -> 17 -> 272
    ((479, 641), "-1x368", (272, 368)),
    # 368*1920/1080/16 = 40.89 -> 41 -> 656
    ((1920, 1080), "-1x368", (656, 368)),
    # exactly .5 rounds up: 368*24/368/16 = 1.5 -> 2 -> 32; 368*8/368/16 = 0.5 -> 1 -> 16
    ((24, 368), "-1x368", (32, 368)),
    ((8, 368), "-1x368", (16, 368)),
    # height from width: 320*479/641/16 = 14.94 -> 15 -> 240
    ((641, 479), "320x-1", (320, 240)),
    ((641, 479), "656x368", (656, 368)),
])
def test_base_net_size(image_size, resolution, expected):
    assert pp.base_net_size(image_size, resolution) == expected


def test_resize_scale_factor_uses_sizes_minus_one():
    # min((496-1)/(641-1), (368-1)/(479-1)) = min(0.7734375, 0.76778...) = 367/478
    assert pp.resize_scale_factor((641, 479), (496, 368)) == 367 / 478
    assert pp.resize_scale_factor((1311, 735), (656, 368)) == 0.5


def test_net_input_sizes_three_scales():
    specs = pp.net_input_sizes((641, 479), net_resolution="-1x368", scale_number=3, scale_gap=0.25)
    # 1.0: 496x368; 0.75: 372 -> 368, 276 -> 272; 0.5: 248 -> 240, 184 -> 176
    assert [s.net_size for s in specs] == [(496, 368), (368, 272), (240, 176)]
    assert [s.relative_scale for s in specs] == [1.0, 0.75, 0.5]
    assert specs[0].scale == 367 / 478
    assert specs[1].scale == min(367 / 640, 271 / 478)
    assert specs[2].scale == min(239 / 640, 175 / 478)


@pytest.mark.parametrize("kwargs", [
    dict(scale_number=0), dict(scale_gap=0.0), dict(scale_gap=-0.25),
    dict(scale_number=3, scale_gap=0.6),          # 1 - 2*0.6 < 0
    dict(scale_number=2, scale_gap=0.99),         # 0.01 * 368 -> a 0-pixel net input
])
def test_net_input_sizes_rejects(kwargs):
    with pytest.raises(PosebridgeError):
        pp.net_input_sizes((641, 479), **kwargs)


def test_elongated_image_hits_the_net_size_limit():
    # 368 * 200000 / 2 / 16 -> a 36.8-million-pixel-wide net input
    with pytest.raises(LimitExceededError, match="200000x2"):
        pp.net_input_sizes((200000, 2))


# --- prepare_inputs ----------------------------------------------------------------------------

def test_identity_size_is_plain_normalisation():
    image = _random_image(368, 656)
    (single,) = pp.prepare_inputs(image)
    assert single.scale == 1.0 and single.net_size == (656, 368) and single.valid_size == (656, 368)
    expected = image.transpose(2, 0, 1).astype(np.float32) / 256 - 0.5
    assert single.tensor.dtype == np.float32 and single.tensor.shape == (1, 3, 368, 656)
    assert np.array_equal(single.tensor[0], expected)


def test_halving_odd_image_samples_even_pixels_anchored_top_left():
    # 1311x735: width 368*1311/735/16 = 41.02 -> 656; scale = min(655/1310, 367/734) = 0.5 exactly.
    # A top-left warp samples image (2x, 2y); a centre-aligned resize would not.
    image = _random_image(735, 1311, seed=1)
    (single,) = pp.prepare_inputs(image)
    assert single.scale == 0.5 and single.net_size == (656, 368) and single.valid_size == (656, 368)
    expected = image[::2, ::2].transpose(2, 0, 1).astype(np.float32) / 256 - 0.5
    assert np.array_equal(single.tensor[0], expected)


def test_bgr_order_is_kept():
    image = np.empty((500, 800, 3), dtype=np.uint8)      # shrunk (bilinear keeps constants exact)
    image[..., 0], image[..., 1], image[..., 2] = 10, 128, 250
    tensor = pp.prepare_inputs(image)[0].tensor[0]
    top_left = tensor[:, :40, :40]
    assert np.all(top_left[0] == 10 / 256 - 0.5)
    assert np.all(top_left[1] == 128 / 256 - 0.5)
    assert np.all(top_left[2] == 250 / 256 - 0.5)


def test_padding_is_minus_half_right_only_for_wide_image():
    # 640x480 into 656x368: scale = min(655/639, 367/479) = 367/479 = 0.76618;
    # content width = floor(639 * 0.76618) + 1 = 490, padding right = 166, bottom = 0.
    image = np.full((480, 640, 3), 255, dtype=np.uint8)
    (single,) = pp.prepare_inputs(image, net_resolution="656x368")
    assert single.scale == 367 / 479
    assert single.valid_size == (490, 368) and single.padding == (166, 0)
    tensor = single.tensor[0]
    assert np.all(tensor[:, :, :490] == np.float32(255 / 256 - 0.5))
    # the column just past the content blends with the border; everything after is padding
    assert np.all(tensor[:, :, 491:] == -0.5)


def test_padding_bottom_for_odd_portrait_image():
    # 479x641 -> 272x368; scale = min(271/478, 367/640) = 271/478 = 0.566945;
    # content height = floor(640 * 0.566945) + 1 = floor(362.85) + 1 = 363 -> 5 rows of padding.
    image = np.full((641, 479, 3), 200, dtype=np.uint8)
    (single,) = pp.prepare_inputs(image)
    assert single.net_size == (272, 368) and single.scale == 271 / 478
    assert single.valid_size == (272, 363) and single.padding == (0, 5)
    tensor = single.tensor[0]
    assert np.all(tensor[:, :363, :] == np.float32(200 / 256 - 0.5))
    assert np.all(tensor[:, 364:, :] == -0.5)


def test_enlarging_uses_cubic_and_shrinking_uses_linear():
    small = _random_image(47, 83, seed=2)       # scale min(655/82, 367/46) = 7.978 > 1
    (enlarged,) = pp.prepare_inputs(small)
    spec = pp.net_input_sizes((83, 47))[0]
    matrix = np.array([[spec.scale, 0, 0], [0, spec.scale, 0]])

    def warp(image, flags):
        return cv2.warpAffine(image, matrix, spec.net_size, flags=flags).transpose(2, 0, 1) / np.float32(256) - np.float32(0.5)

    assert np.array_equal(enlarged.tensor[0], warp(small, cv2.INTER_CUBIC))
    assert not np.array_equal(enlarged.tensor[0], warp(small, cv2.INTER_LINEAR))
    # the top-left pixel is the image's own top-left pixel, whatever the interpolation
    assert np.array_equal(enlarged.tensor[0, :, 0, 0], small[0, 0] / np.float32(256) - np.float32(0.5))

    big = _random_image(479, 641, seed=3)
    (shrunk,) = pp.prepare_inputs(big)
    spec = pp.net_input_sizes((641, 479))[0]
    matrix = np.array([[spec.scale, 0, 0], [0, spec.scale, 0]])
    assert np.array_equal(shrunk.tensor[0], warp(big, cv2.INTER_LINEAR))
    assert not np.array_equal(shrunk.tensor[0], warp(big, cv2.INTER_CUBIC))


def test_multi_scale_inputs():
    inputs = pp.prepare_inputs(_random_image(479, 641), scale_number=2, scale_gap=0.25)
    assert [i.tensor.shape for i in inputs] == [(1, 3, 368, 496), (1, 3, 272, 368)]
    # 0.75: scale = min(367/640, 271/478) = 271/478; content width floor(640*0.56694)+1 = 363
    assert inputs[1].scale == 271 / 478 and inputs[1].valid_size == (363, 272)


@pytest.mark.parametrize("bad", [
    np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32),
    np.zeros((0, 10, 3), np.uint8), np.zeros((1, 10, 3), np.uint8),
])
def test_prepare_inputs_rejects_bad_images(bad):
    with pytest.raises(ShapeError):
        pp.prepare_inputs(bad)


# --- merging and the inverse -------------------------------------------------------------------

def test_merge_single_scale_is_per_channel_cubic():
    rng = np.random.default_rng(4)
    maps = rng.random((57, 46, 62), dtype=np.float32)
    merged = average_scales([maps], (368, 496))
    assert merged.shape == (57, 368, 496) and merged.dtype == np.float32
    # channel independence, bit for bit: resizing one channel alone gives the same values
    alone = average_scales([maps[7:8]], (368, 496))
    assert np.array_equal(merged[7], alone[0])
    assert np.array_equal(merged[7], cv2.resize(maps[7], (496, 368), interpolation=cv2.INTER_CUBIC))


def test_merge_scales_averages_constant_maps():
    first = np.full((3, 46, 62), 0.25, np.float32)
    second = np.full((3, 34, 46), 0.75, np.float32)
    merged = average_scales([first, second], (368, 496))
    assert merged.shape == (3, 368, 496)
    assert np.allclose(merged, 0.5, atol=1e-6)


def test_merge_scales_stretches_whole_maps():
    # OpenPose's CPU merge stretches each scale's whole map (padding included) to the target.
    ramp = np.tile(np.arange(34, dtype=np.float32), (3, 26, 1))          # value = x at 1/8 size
    merged = average_scales([np.zeros((3, 46, 62), np.float32), ramp], (368, 496))
    # 2nd scale stretched by 496/34: at target x the ramp reads (x+0.5)*34/496 - 0.5 (cv2.resize's
    # centre alignment), halved by the mean; OpenCV quantises the sampling position (~0.04 here)
    for x in (100, 250, 300):
        assert merged[0, 100, x] == pytest.approx(0.5 * ((x + 0.5) * 34 / 496 - 0.5), abs=0.03)


def test_merge_scales_rejects_channel_mismatch():
    with pytest.raises(ShapeError):
        average_scales([np.zeros((3, 8, 8), np.float32), np.zeros((4, 8, 8), np.float32)], (64, 64))
    with pytest.raises(ShapeError):
        average_scales([], (64, 64))


def test_scale_net_to_output_hand_computed():
    # s = 367/478; net' = (intRound(0.767782*641 = 492.15), intRound(0.767782*479 = 367.77)) = (492, 368)
    # result = min(640/491, 478/367) = 478/367, as float32
    assert pp.scale_net_to_output((641, 479), (496, 368)) == float(np.float32(478 / 367))
    assert pp.scale_net_to_output((1311, 735), (656, 368)) == 2.0


def test_keypoints_to_image_adds_openpose_offset():
    scale = pp.scale_net_to_output((641, 479), (496, 368))
    keypoints = np.array([[100.0, 50.25, 0.9], [0.0, 0.0, 0.0], [3.0, 0.0, 0.2]], np.float32)
    mapped = pp.keypoints_to_image(keypoints, scale)
    offset = np.float32(0.5 / scale)
    assert mapped[0, 0] == (np.float32(100.0) + offset) * np.float32(scale)
    assert mapped[0, 0] == pytest.approx(100.0 * scale + 0.5, abs=1e-4)
    assert mapped[0, 1] == pytest.approx(50.25 * scale + 0.5, abs=1e-4)
    assert mapped[0, 2] == np.float32(0.9)
    assert np.array_equal(mapped[1], [0, 0, 0])                  # missing part stays 0, 0, 0
    assert mapped[2, 1] == pytest.approx(0.5, abs=1e-6)          # y = 0 of a found part is moved
    plain = pp.keypoints_to_image(keypoints[:, :2], scale, add_nms_offset=False)
    assert plain[0, 0] == np.float32(100.0) * np.float32(scale)
    assert np.array_equal(keypoints[1], [0, 0, 0])               # input untouched


def test_keypoints_to_image_rejects_bad_shape():
    with pytest.raises(ShapeError):
        pp.keypoints_to_image(np.zeros((4, 5)), 1.0)


def test_maps_to_image_inverts_the_warp():
    image_size = (641, 479)
    (single,) = pp.prepare_inputs(_random_image(479, 641))
    ramp_x = np.tile(np.arange(496, dtype=np.float32), (368, 1))
    ramp_y = np.tile(np.arange(368, dtype=np.float32)[:, None], (1, 496))
    on_image = pp.maps_to_image(np.stack([ramp_x, ramp_y]), image_size, single.scale)
    assert on_image.shape == (2, 479, 641)
    # warpAffine quantises sampling positions (fixed point); a half-pixel shift would be ~0.38 off
    assert on_image[0, 200, 333] == pytest.approx(333 * single.scale, abs=0.1)
    assert on_image[1, 401, 17] == pytest.approx(401 * single.scale, abs=0.1)
    assert on_image[0, 0, 0] == 0.0
