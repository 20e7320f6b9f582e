"""Synthetic ground-truth maps: Gaussians, PAF bands, coordinates at a stride, upsampling helpers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posebridge.errors import ShapeError
from posebridge.runtime import scenes
from posebridge.runtime.skeletons import BODY_25, COCO, MPI
from posebridge.runtime.upsample import average_scales, resize_maps, upsample_net_output


def _person(skeleton, points: dict[str, tuple[float, float]], amplitude: float = 1.0) -> scenes.ScenePerson:
    keypoints = np.zeros((skeleton.part_count, 3))
    for name, (x, y) in points.items():
        keypoints[skeleton.part_index(name)] = (x, y, 1)
    return scenes.ScenePerson(keypoints, amplitude)


def test_gaussian_peak_width_cutoff_and_background():
    person = _person(COCO, {"Nose": (20.0, 10.0)})
    maps = scenes.render_heatmaps([person], COCO, (30, 40), sigma=4.0)
    nose = maps[COCO.part_index("Nose")]
    assert maps.shape == (19, 30, 40) and maps.dtype == np.float32
    assert nose[10, 20] == pytest.approx(1.0)
    assert nose[10, 24] == pytest.approx(np.exp(-0.5), rel=1e-6)  # one sigma away
    assert nose[10, 33] == 0.0  # exponent 169/32 > 4.6052: cut like the training targets
    assert np.all(maps[:18][np.arange(18) != 0] == 0)
    np.testing.assert_allclose(maps[18], np.maximum(0, 1 - nose), atol=1e-6)


def test_people_combine_by_maximum():
    a = _person(COCO, {"Neck": (10.0, 10.0)})
    b = _person(COCO, {"Neck": (14.0, 10.0)}, amplitude=0.5)
    neck = scenes.render_heatmaps([a, b], COCO, (20, 30), sigma=3.0)[1]
    assert neck[10, 10] == pytest.approx(1.0)
    assert neck[10, 14] == pytest.approx(max(np.exp(-16 / 18), 0.5), rel=1e-6)


def test_paf_band_direction_width_and_overhang():
    person = _person(COCO, {"Neck": (10.0, 20.0), "RShoulder": (40.0, 20.0)})
    pafs = scenes.render_pafs([person], COCO, (40, 60), half_width=3.0, overhang=2.0)
    cx, cy = COCO.paf_channels[0]  # limb 0 is Neck -> RShoulder
    assert pafs.shape == (38, 40, 60)
    assert pafs[cx, 20, 25] == 1.0 and pafs[cy, 20, 25] == 0.0
    assert pafs[cx, 23, 25] == 1.0 and pafs[cx, 24, 25] == 0.0  # |across| <= 3
    assert pafs[cx, 20, 8] == 1.0 and pafs[cx, 20, 7] == 0.0    # 2 px before the neck
    assert pafs[cx, 20, 42] == 1.0 and pafs[cx, 20, 43] == 0.0  # 2 px past the shoulder
    others = np.delete(pafs, [cx, cy], axis=0)
    assert not others.any()


def test_paf_vectors_are_averaged_where_people_overlap():
    a = _person(COCO, {"Neck": (10.0, 20.0), "RShoulder": (50.0, 20.0)})
    b = _person(COCO, {"Neck": (30.0, 0.0), "RShoulder": (30.0, 40.0)})
    pafs = scenes.render_pafs([a, b], COCO, (41, 61), half_width=2.0)
    cx, cy = COCO.paf_channels[0]
    np.testing.assert_allclose([pafs[cx, 20, 30], pafs[cy, 20, 30]], [0.5, 0.5])
    np.testing.assert_allclose([pafs[cx, 20, 15], pafs[cy, 20, 15]], [1.0, 0.0])
    assert np.hypot(pafs[cx], pafs[cy]).max() <= 1.0 + 1e-6


def test_stride_places_grid_points_at_pixel_centres_of_the_upsampled_map():
    # Grid point g of a stride-8 map is image coordinate 8 g + 3.5: cv2.resize x8 puts it there.
    assert np.allclose(scenes._grid(4, 8.0), [3.5, 11.5, 19.5, 27.5])
    person = _person(MPI, {"Head": (43.3, 27.6)})
    net = scenes.render_net_output([person], MPI, (64, 96))
    assert net.shape == (1, MPI.channel_count, 8, 12)
    up = upsample_net_output(net)[0, MPI.part_index("Head")]
    y, x = np.unravel_index(np.argmax(up), up.shape)
    assert abs(x - 43.3) <= 1 and abs(y - 27.6) <= 1
    with pytest.raises(ShapeError):
        scenes.render_net_output([person], MPI, (60, 96))


def test_standing_people_and_crowds_fit_every_skeleton():
    for skeleton in (COCO, MPI, BODY_25):
        person = scenes.standing_person(skeleton, (100, 100), 150, missing=["Neck"])
        assert person.keypoints.shape == (skeleton.part_count, 3)
        assert person.present().sum() == skeleton.part_count - 1
        crowd = scenes.crowd(skeleton, 20, (368, 656), margin=16)
        points = np.concatenate([p.keypoints for p in crowd])
        assert len(crowd) == 20
        assert points[:, 0].min() >= 16 and points[:, 0].max() <= 656 - 16
        assert points[:, 1].min() >= 16 and points[:, 1].max() <= 368 - 16
    with pytest.raises(ShapeError):
        scenes.render_heatmaps([scenes.ScenePerson(np.zeros((5, 3)))], COCO, (10, 10))


def test_resize_is_opencv_per_channel_cubic_and_scales_average():
    rng = np.random.default_rng(0)
    maps = rng.standard_normal((2, 5, 6, 7)).astype(np.float32)
    up = upsample_net_output(maps)
    assert up.shape == (2, 5, 48, 56) and up.dtype == np.float32
    for n in range(2):
        for c in range(5):
            want = cv2.resize(maps[n, c], (56, 48), interpolation=cv2.INTER_CUBIC)
            np.testing.assert_array_equal(up[n, c], want)
    assert resize_maps(maps[0], (10, 11)).shape == (5, 10, 11)
    reused = np.empty((2, 5, 48, 56), np.float32)
    assert upsample_net_output(maps, out=reused) is reused
    np.testing.assert_array_equal(reused, up)
    with pytest.raises(ShapeError):
        upsample_net_output(maps, out=np.empty((2, 5, 48, 55), np.float32))
    small = rng.standard_normal((1, 5, 4, 5)).astype(np.float32)
    merged = average_scales([maps[:1], small])
    want = (resize_maps(maps[:1], (48, 56)) + resize_maps(small, (48, 56))) / np.float32(2)
    np.testing.assert_array_equal(merged, want)
    np.testing.assert_array_equal(average_scales([maps[:1]]), up[:1])
    with pytest.raises(ShapeError):
        average_scales([maps[:1], small[:, :3]])
