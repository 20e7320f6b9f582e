"""OpenPose's NMS: hand-made maps, and a pixel-by-pixel transcription of nmsCpu as reference."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime import peaks as peaks_module
from posebridge.runtime import scenes
from posebridge.runtime.peaks import find_peaks
from posebridge.runtime.skeletons import COCO
from posebridge.runtime.upsample import upsample_net_output


def reference_nms(maps: np.ndarray, threshold: float, max_peaks: int = 127, offset: float = 0.0) -> list[np.ndarray]:
    """nmsRegisterKernelCPU + nmsAccuratePeakPosition, one pixel at a time, float32 sums."""
    threshold = np.float32(threshold)
    channels, height, width = maps.shape
    out = []
    for channel in range(channels):
        m = maps[channel]
        found = []
        for y in range(height):
            for x in range(width):
                value = m[y, x]
                neighbours = [(y + dy, x + dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
                if 1 < x < width - 2 and 1 < y < height - 2:
                    is_peak = value > threshold and all(value > m[p] for p in neighbours)
                elif x in (1, width - 2) or y in (1, height - 2):
                    inside = [m[p] if 0 <= p[0] < height and 0 <= p[1] < width else threshold for p in neighbours]
                    is_peak = value > threshold and all(value >= n for n in inside)
                else:
                    is_peak = False
                if not is_peak or len(found) >= max_peaks:
                    continue
                x_acc = y_acc = score_acc = np.float32(0)
                for yy in range(y - 3, y + 4):
                    for xx in range(x - 3, x + 4):
                        if 0 <= yy < height and 0 <= xx < width and m[yy, xx] > 0:
                            x_acc += np.float32(xx) * m[yy, xx]
                            y_acc += np.float32(yy) * m[yy, xx]
                            score_acc += m[yy, xx]
                found.append((x_acc / score_acc + offset, y_acc / score_acc + offset, value))
        out.append(np.array(found, dtype=np.float32).reshape(-1, 3))
    return out


def _assert_same(got: list[np.ndarray], want: list[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, atol=2e-5, rtol=0)


def test_matches_reference_on_random_small_maps():
    rng = np.random.default_rng(5)
    for trial in range(400):
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 13)), int(rng.integers(1, 13)))
        if trial % 2:
            maps = rng.integers(0, 4, shape).astype(np.float32) / 3  # many plateaus and ties
        else:
            maps = rng.random(shape, dtype=np.float32)
        if trial % 5 == 0:
            maps -= np.float32(0.3)
        threshold = float(rng.choice([0.0, 0.05, 0.4, 0.7]))
        cap = int(rng.integers(1, 5)) if trial % 3 == 0 else 127
        _assert_same(find_peaks(maps, threshold, max_peaks=cap, offset=0.5),
                     reference_nms(maps, threshold, cap, 0.5))


def test_matches_reference_on_smooth_maps_and_in_the_float_fallback(monkeypatch):
    rng = np.random.default_rng(6)
    cases = []
    for trial in range(12):
        maps = np.stack([cv2.GaussianBlur(rng.random((30, 41), dtype=np.float32), (0, 0), 2) for _ in range(2)])
        maps = (maps - maps.min()) / (maps.max() - maps.min())
        if trial % 2:
            maps = np.round(maps * 20) / 20  # broad plateaus
        cases.append((maps.astype(np.float32), float(rng.choice([0.0, 0.05, 0.3]))))
    for maps, threshold in cases:
        _assert_same(find_peaks(maps, threshold), reference_nms(maps, threshold))
    monkeypatch.setattr(peaks_module, "_MAX_QUANTISED_CANDIDATES", 0)
    for maps, threshold in cases[:4]:
        _assert_same(find_peaks(maps, threshold), reference_nms(maps, threshold))


def _blank(height: int = 12, width: int = 14) -> np.ndarray:
    return np.zeros((1, height, width), dtype=np.float32)


def test_plateau_inside_gives_no_peak():
    maps = _blank()
    maps[0, 5, 6] = maps[0, 5, 7] = 0.8
    assert len(find_peaks(maps, 0.05)[0]) == 0
    maps[0, 5, 7] = 0.79
    (peak,) = find_peaks(maps, 0.05)[0]
    assert peak[2] == np.float32(0.8)


def test_first_ring_accepts_ties():
    maps = _blank()
    maps[0, 5, 1] = maps[0, 5, 2] = 0.8  # x = 1 is on the ring (>=), x = 2 is inside (strict)
    (peak,) = find_peaks(maps, 0.05)[0]
    assert peak[2] == np.float32(0.8)
    np.testing.assert_allclose(peak[:2], [1.5, 5.0], atol=1e-6)  # centroid of the two pixels


def test_outer_border_is_never_a_peak_except_on_the_ring_lines():
    maps = _blank()
    maps[0, 6, 0] = 0.9  # x = 0, y not in {1, H-2}
    maps[0, 0, 6] = 0.9
    maps[0, 11, 13] = 0.9  # corner
    assert len(find_peaks(maps, 0.05)[0]) == 0
    maps = _blank()
    maps[0, 1, 0] = 0.9  # x = 0 but y = 1: ring rule, missing neighbours count as the threshold
    maps[0, 10, 13] = 0.7  # x = W-1, y = H-2
    got = find_peaks(maps, 0.05)[0]
    np.testing.assert_allclose(got, [[0, 1, 0.9], [13, 10, 0.7]], atol=1e-6)


def test_threshold_is_strict_and_in_float32():
    maps = _blank()
    maps[0, 5, 5] = np.float32(0.05)
    maps[0, 8, 9] = np.nextafter(np.float32(0.05), np.float32(1))
    got = find_peaks(maps, 0.05)[0]
    assert got.shape == (1, 3) and tuple(got[0, :2]) == (9.0, 8.0)


def test_refinement_is_score_weighted_in_a_7x7_window():
    maps = _blank(16, 16)
    maps[0, 8, 8] = 1.0
    maps[0, 8, 9] = 0.5
    maps[0, 5, 8] = 0.04   # dy = -3: inside the window; below the threshold, still weighted
    maps[0, 8, 12] = 0.9   # dx = +4: outside the window (and its own peak)
    maps[0, 9, 7] = -5.0   # negative values do not count
    got = find_peaks(maps, 0.05)[0]
    total = 1.0 + 0.5 + 0.04
    np.testing.assert_allclose(got[0], [(8 + 0.5 * 9 + 0.04 * 8) / total, (8 + 0.5 * 8 + 0.04 * 5) / total, 1.0],
                               atol=1e-5)
    assert got[1][2] == np.float32(0.9)


def test_refinement_window_is_clipped_at_the_border_and_offset_added():
    maps = _blank()
    maps[0, 1, 2] = 1.0
    maps[0, 0, 2] = 0.5
    got = find_peaks(maps, 0.05, offset=(0.25, 0.5))[0]
    np.testing.assert_allclose(got[0], [2 + 0.25, (0 * 0.5 + 1 * 1.0) / 1.5 + 0.5, 1.0], atol=1e-6)


def test_cap_keeps_the_first_peaks_in_scan_order():
    maps = np.zeros((2, 60, 60), dtype=np.float32)
    ys, xs = np.meshgrid(np.arange(2, 58, 4), np.arange(2, 58, 4), indexing="ij")
    maps[0, ys, xs] = 0.5  # 196 isolated peaks, windows apart
    maps[1, 30, 30] = 0.5
    got = find_peaks(maps, 0.05)
    assert len(got[0]) == 127 and len(got[1]) == 1
    expected = sorted(zip(ys.ravel(), xs.ravel()))[:127]
    np.testing.assert_array_equal(got[0][:, [1, 0]], np.array(expected, dtype=np.float32))
    assert len(find_peaks(maps, 0.05, max_peaks=3)[0]) == 3


def test_peaks_of_an_upsampled_scene_sit_on_the_keypoints():
    rng = np.random.default_rng(3)
    keypoints = np.zeros((COCO.part_count, 3))
    keypoints[:, 0] = rng.uniform(20, 300, COCO.part_count)
    keypoints[:, 1] = rng.uniform(20, 170, COCO.part_count)
    keypoints[:, 2] = 1
    net = scenes.render_net_output([scenes.ScenePerson(keypoints)], COCO, (192, 320))
    maps = upsample_net_output(net)[0, : COCO.part_count]
    got = find_peaks(maps, 0.05)
    for part in range(COCO.part_count):
        assert got[part].shape == (1, 3)
        assert np.abs(got[part][0, :2] - keypoints[part, :2]).max() < 1.0
        assert got[part][0, 2] > 0.8


def test_no_peaks_below_threshold_and_shapes():
    maps = np.full((3, 20, 20), 0.01, dtype=np.float32)
    assert [p.shape for p in find_peaks(maps, 0.05)] == [(0, 3)] * 3
    with pytest.raises(PosebridgeError, match="threshold"):
        find_peaks(maps, 1.5)
    with pytest.raises(ShapeError):
        find_peaks(np.zeros((20, 20), np.float32), 0.05)
