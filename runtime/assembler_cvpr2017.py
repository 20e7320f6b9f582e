"""The CVPR 2017 demo's post-processing (ZheC/Realtime_Multi-Person_Pose_Estimation,
testing/python demo notebook and its config file), for comparison with ports derived from it.

Differences from OpenPose's connector (runtime/assembler.py):

- peaks: the map is smoothed (Gaussian, sigma 3, scipy's reflect border), a peak is >= its 4
  neighbours (0 outside the map) and > thre1 (0.1); integer positions, score from the raw map;
- limb score: always mid_num = 10 samples on linspace(A, B) (both ends included), rounded
  half away from zero (the notebook ran on Python 2); the mean of *all* samples plus a distance
  prior ``min(0.5 * image_height / |AB| - 1, 0)``; accepted when more than 80% of the samples
  exceed thre2 (0.05) and the prior-adjusted score is > 0; candidates sorted by that score
  (stable), each peak once, up to min(nA, nB);
- people: a connection joins the people holding its A *or* its B; found in two people, they
  are merged when disjoint, else B is forced into the first; found in none, it starts a new
  person, except for the ear-shoulder limbs (``k < 17`` in the COCO demo); the demo would crash
  on a third match, here the first two are used;
- kept when count >= 4 (min_num) and score / count >= 0.4.

The demo is COCO-only; other skeletons use their own limb table, and the limbs that may not
start people are the same ear-shoulder limbs OpenPose treats specially (none for MPI).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime.assembler import connector_rules
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import Skeleton

#: testing/python/config of the demo.
THRE1 = 0.1
THRE2 = 0.05
MIN_NUM = 4
MID_NUM = 10
MIN_ABOVE_FRACTION = 0.8
MIN_MEAN_SCORE = 0.4
SMOOTHING_SIGMA = 3.0
#: scipy.ndimage.gaussian_filter's default truncate (4 sigma).
_SMOOTHING_TRUNCATE = 4.0


def smooth(part_map: np.ndarray, sigma: float = SMOOTHING_SIGMA) -> np.ndarray:
    """scipy.ndimage.gaussian_filter(part_map, sigma) (truncate 4, mode 'reflect'), float64."""
    radius = int(_SMOOTHING_TRUNCATE * sigma + 0.5)
    steps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (steps / sigma) ** 2)
    kernel /= kernel.sum()
    return cv2.sepFilter2D(np.asarray(part_map, dtype=np.float64), cv2.CV_64F, kernel, kernel,
                           borderType=cv2.BORDER_REFLECT)


def find_peaks_cvpr2017(heatmaps: np.ndarray, threshold: float = THRE1, *,
                        sigma: float = SMOOTHING_SIGMA) -> list[np.ndarray]:
    """The demo's peaks: K arrays (n, 3) float32 of integer x, y and the raw map's score."""
    maps = np.asarray(heatmaps, dtype=np.float32)
    if maps.ndim != 3:
        raise ShapeError(f"find_peaks_cvpr2017: expected (K, H, W) maps, got shape {maps.shape}")
    out = []
    for part_map in maps:
        smoothed = smooth(part_map, sigma)
        padded = np.pad(smoothed, 1)
        centre = padded[1:-1, 1:-1]
        is_peak = ((centre >= padded[:-2, 1:-1]) & (centre >= padded[2:, 1:-1]) & (centre >= padded[1:-1, :-2])
                   & (centre >= padded[1:-1, 2:]) & (centre > threshold))
        ys, xs = np.nonzero(is_peak)
        out.append(np.stack([xs, ys, part_map[ys, xs]], axis=1).astype(np.float32).reshape(-1, 3))
    return out


def _round_half_away(values: np.ndarray) -> np.ndarray:
    return (np.sign(values) * np.floor(np.abs(values) + 0.5)).astype(np.int64)


def _connections(peaks_a: np.ndarray, peaks_b: np.ndarray, paf_x: np.ndarray, paf_y: np.ndarray, *,
                 thre2: float, mid_num: int, min_above_fraction: float, image_height: float) -> list[tuple[int, int, float]]:
    """The demo's scored and greedily selected connections of one limb type: (i, j, score)."""
    height, width = paf_x.shape
    n_a, n_b = len(peaks_a), len(peaks_b)
    i_all, j_all = np.repeat(np.arange(n_a), n_b), np.tile(np.arange(n_b), n_a)  # the demo's loop order
    a = peaks_a[i_all, :2].astype(np.float64)
    b = peaks_b[j_all, :2].astype(np.float64)
    vector = b - a
    norm = np.hypot(vector[:, 0], vector[:, 1])
    live = norm > 0  # the demo divides by zero for coincident peaks: NaN scores, rejected
    safe = np.where(live, norm, 1.0)
    t = np.linspace(0.0, 1.0, mid_num)
    xs = np.clip(_round_half_away(a[:, :1] + t * vector[:, :1]), 0, width - 1)
    ys = np.clip(_round_half_away(a[:, 1:] + t * vector[:, 1:]), 0, height - 1)
    dots = paf_x[ys, xs] * (vector[:, :1] / safe[:, None]) + paf_y[ys, xs] * (vector[:, 1:] / safe[:, None])
    scores = dots.sum(axis=1) / mid_num + np.minimum(0.5 * image_height / safe - 1.0, 0.0)
    passed = live & ((dots > thre2).sum(axis=1) > min_above_fraction * mid_num) & (scores > 0)
    candidates = np.flatnonzero(passed)
    candidates = candidates[np.argsort(-scores[candidates], kind="stable")]  # Python's stable sorted()
    chosen, used_a, used_b = [], set(), set()
    for k in candidates:
        i, j = int(i_all[k]), int(j_all[k])
        if i in used_a or j in used_b:
            continue
        chosen.append((i, j, float(scores[k])))
        used_a.add(i)
        used_b.add(j)
        if len(chosen) >= min(n_a, n_b):
            break
    return chosen


def assemble_cvpr2017(peaks: Sequence[np.ndarray], pafs: np.ndarray, skeleton: Skeleton, *,
                      thre2: float = THRE2, mid_num: int = MID_NUM, min_above_fraction: float = MIN_ABOVE_FRACTION,
                      min_num: int = MIN_NUM, min_mean_score: float = MIN_MEAN_SCORE,
                      image_height: float | None = None, scale: float = 1.0) -> list[Person]:
    """The demo's grouping. peaks: K arrays (n, 3); pafs: (2L, H, W); image_height: the height
    in the distance prior (default: the maps' height, as the demo resizes maps to the image)."""
    pafs = np.asarray(pafs, dtype=np.float32)
    if len(peaks) != skeleton.part_count or pafs.ndim != 3 or pafs.shape[0] != skeleton.paf_count:
        raise ShapeError(f"assemble_cvpr2017: {len(peaks)} peak lists and PAFs {pafs.shape} do not fit {skeleton.name}")
    height = float(pafs.shape[1] if image_height is None else image_height)
    peaks = [np.asarray(p, dtype=np.float32).reshape(-1, 3) for p in peaks]
    no_new_people = set(connector_rules(skeleton).completing_limbs)
    part_count = skeleton.part_count
    rows: list[list[int]] = []      # per person: peak index per part, -1 if none
    totals: list[float] = []        # score of the overall configuration
    counts: list[int] = []          # parts found
    for limb_index, (part_a, part_b) in enumerate(skeleton.limbs):
        if not len(peaks[part_a]) or not len(peaks[part_b]):
            continue
        channel_x, channel_y = skeleton.paf_channels[limb_index]
        for i, j, score in _connections(peaks[part_a], peaks[part_b], pafs[channel_x], pafs[channel_y],
                                        thre2=thre2, mid_num=mid_num, min_above_fraction=min_above_fraction,
                                        image_height=height):
            found = [p for p, row in enumerate(rows) if row[part_a] == i or row[part_b] == j][:2]
            if len(found) == 1:
                person = found[0]
                if rows[person][part_b] != j:
                    rows[person][part_b] = j
                    counts[person] += 1
                    totals[person] += float(peaks[part_b][j, 2]) + score
            elif len(found) == 2:
                first, second = found
                overlap = any(a >= 0 and b >= 0 for a, b in zip(rows[first], rows[second]))
                if not overlap:
                    rows[first] = [a if a >= 0 else b for a, b in zip(rows[first], rows[second])]
                    counts[first] += counts[second]
                    totals[first] += totals[second] + score
                    del rows[second], counts[second], totals[second]
                else:
                    rows[first][part_b] = j
                    counts[first] += 1
                    totals[first] += float(peaks[part_b][j, 2]) + score
            elif limb_index not in no_new_people:
                row = [-1] * part_count
                row[part_a], row[part_b] = i, j
                rows.append(row)
                counts.append(2)
                totals.append(float(peaks[part_a][i, 2]) + float(peaks[part_b][j, 2]) + score)
    people = []
    for row, count, total in zip(rows, counts, totals):
        if count < min_num or total / count < min_mean_score:
            continue
        keypoints = np.zeros((part_count, 3), dtype=np.float32)
        for part, peak in enumerate(row):
            if peak >= 0:
                x, y, peak_score = peaks[part][peak]
                keypoints[part] = (x * scale, y * scale, peak_score)
        people.append(Person(keypoints=keypoints, score=total, part_count=sum(p >= 0 for p in row)))
    return people


_OPTIONS = {"thre1", "thre2", "mid_num", "min_above_fraction", "min_num", "min_mean_score", "image_height",
            "sigma", "scale"}


def people_from_maps_cvpr2017(heatmaps: np.ndarray, pafs: np.ndarray, skeleton: Skeleton, **options) -> list[Person]:
    """Maps (K or K+1, H, W) and PAFs (2L, H, W) -> people with the demo's rules. Options: thre1
    (0.1), thre2 (0.05), mid_num (10), min_above_fraction (0.8), min_num (4), min_mean_score (0.4),
    image_height (map height), sigma (3), scale (1)."""
    unknown = set(options) - _OPTIONS
    if unknown:
        raise PosebridgeError(f"unknown option(s) {sorted(unknown)} for variant 'cvpr2017'; known: {sorted(_OPTIONS)}")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    if heatmaps.ndim != 3 or heatmaps.shape[0] not in (skeleton.part_count, skeleton.heatmap_count):
        raise ShapeError(f"heatmaps of shape {heatmaps.shape} do not fit {skeleton.name}")
    peaks = find_peaks_cvpr2017(heatmaps[: skeleton.part_count], options.get("thre1", THRE1),
                                sigma=options.get("sigma", SMOOTHING_SIGMA))
    keep = {k: v for k, v in options.items() if k not in ("thre1", "sigma")}
    return assemble_cvpr2017(peaks, pafs, skeleton, **keep)
