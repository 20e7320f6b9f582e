"""Synthetic ground-truth maps: confidence maps and part affinity fields from known skeletons.

The definitions are the paper's (Cao et al., CVPR 2017, section 2.2-2.3):

- confidence map of part j: the maximum over people of ``amplitude * exp(-d^2 / (2 sigma^2))``,
  cut to 0 where the exponent exceeds ln(100) as OpenPose's training targets do;
  background channel = ``max(0, 1 - max over parts)``;
- PAF of limb (a, b): the unit vector from a to b on the points within ``half_width`` of the
  segment, averaged over the people whose band covers the point. Like the training targets of
  CMU's Caffe fork (``putVecMaps``) the band runs ``overhang`` pixels past both joints: a band
  that stops exactly at the joints fades under the x8 cubic upsampling and OpenPose's 0.95 rule
  then rejects the limb (see SPEC.md).

Coordinates: keypoints are (x, y) in image pixels. A map rendered with ``stride`` s has its grid
point g at image coordinate ``g * s + (s - 1) / 2``, which is the point that ``cv2.resize``
(half-pixel centres) puts at image pixel g * s + (s - 1) / 2 when it enlarges the map s times:
a map rendered at stride 8 and upsampled x8 has its peaks at the keypoints' pixel coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from posebridge.errors import ShapeError
from posebridge.runtime.skeletons import Skeleton

#: OpenPose's training targets drop a Gaussian where the exponent exceeds this (exp(-4.6052) = 0.01).
GAUSSIAN_CUTOFF_EXPONENT = 4.6052


@dataclass
class ScenePerson:
    """One person of a synthetic scene.

    keypoints: (K, 3) float, x and y in image pixels and a visibility flag (> 0: present).
    amplitude: peak of the person's Gaussians and length of its PAF vectors (1 for a sure person).
    """

    keypoints: np.ndarray
    amplitude: float = 1.0

    def present(self) -> np.ndarray:
        """(K,) bool: the parts drawn into the maps."""
        return np.asarray(self.keypoints)[:, 2] > 0


def _grid(size: int, stride: float) -> np.ndarray:
    """Image coordinates of the grid points of one map axis."""
    return np.arange(size, dtype=np.float64) * stride + (stride - 1.0) / 2.0


def _check(people: Sequence[ScenePerson], skeleton: Skeleton) -> None:
    for index, person in enumerate(people):
        shape = np.asarray(person.keypoints).shape
        if shape != (skeleton.part_count, 3):
            raise ShapeError(
                f"scene person {index}: keypoints of shape {shape}, expected ({skeleton.part_count}, 3) for {skeleton.name}")


def render_heatmaps(people: Sequence[ScenePerson], skeleton: Skeleton, map_size: tuple[int, int], *,
                    stride: float = 1.0, sigma: float = 7.0) -> np.ndarray:
    """Confidence maps (K + 1, H, W) float32, parts in skeleton order then background.

    map_size: (H, W) of the maps; stride: image pixels per map pixel; sigma: in image pixels.
    """
    _check(people, skeleton)
    height, width = map_size
    ys, xs = _grid(height, stride), _grid(width, stride)
    maps = np.zeros((skeleton.heatmap_count, height, width), dtype=np.float64)
    for person in people:
        keypoints = np.asarray(person.keypoints, dtype=np.float64)
        for part in np.flatnonzero(keypoints[:, 2] > 0):
            x, y = keypoints[part, :2]
            exponent = ((xs[None, :] - x) ** 2 + (ys[:, None] - y) ** 2) / (2.0 * sigma * sigma)
            blob = np.where(exponent > GAUSSIAN_CUTOFF_EXPONENT, 0.0, person.amplitude * np.exp(-exponent))
            np.maximum(maps[part], blob, out=maps[part])
    if skeleton.has_background:
        maps[-1] = np.maximum(0.0, 1.0 - maps[: skeleton.part_count].max(axis=0, initial=0.0))
    return maps.astype(np.float32)


def render_pafs(people: Sequence[ScenePerson], skeleton: Skeleton, map_size: tuple[int, int], *,
                stride: float = 1.0, half_width: float = 8.0, overhang: float | None = None) -> np.ndarray:
    """Part affinity fields (2L, H, W) float32 in the net's channel order (``skeleton.paf_channels``).

    half_width: distance from the limb axis covered by the band, image pixels (OpenPose's
    training uses 1 map pixel, i.e. 8 image pixels at stride 8); overhang: how far the band runs
    past each joint along the limb, image pixels (default: half_width).
    """
    _check(people, skeleton)
    overhang = half_width if overhang is None else overhang
    height, width = map_size
    ys, xs = _grid(height, stride), _grid(width, stride)
    gx, gy = np.meshgrid(xs, ys)
    pafs = np.zeros((skeleton.paf_count, height, width), dtype=np.float64)
    for limb_index, (part_a, part_b) in enumerate(skeleton.limbs):
        channel_x, channel_y = skeleton.paf_channels[limb_index]
        sum_x = np.zeros((height, width))
        sum_y = np.zeros((height, width))
        count = np.zeros((height, width))
        for person in people:
            keypoints = np.asarray(person.keypoints, dtype=np.float64)
            if keypoints[part_a, 2] <= 0 or keypoints[part_b, 2] <= 0:
                continue
            a, b = keypoints[part_a, :2], keypoints[part_b, :2]
            length = float(np.hypot(*(b - a)))
            if length < 1e-9:
                continue
            ux, uy = (b - a) / length
            along = (gx - a[0]) * ux + (gy - a[1]) * uy
            across = np.abs((gx - a[0]) * uy - (gy - a[1]) * ux)
            band = (across <= half_width) & (along >= -overhang) & (along <= length + overhang)
            sum_x[band] += person.amplitude * ux
            sum_y[band] += person.amplitude * uy
            count[band] += 1
        covered = count > 0
        pafs[channel_x][covered] = sum_x[covered] / count[covered]
        pafs[channel_y][covered] = sum_y[covered] / count[covered]
    return pafs.astype(np.float32)


def render_maps(people: Sequence[ScenePerson], skeleton: Skeleton, map_size: tuple[int, int], *,
                stride: float = 1.0, sigma: float = 7.0, half_width: float = 8.0,
                overhang: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(heatmaps (K + 1, H, W), pafs (2L, H, W)), both float32; see render_heatmaps / render_pafs."""
    heatmaps = render_heatmaps(people, skeleton, map_size, stride=stride, sigma=sigma)
    pafs = render_pafs(people, skeleton, map_size, stride=stride, half_width=half_width, overhang=overhang)
    return heatmaps, pafs


def render_net_output(people: Sequence[ScenePerson], skeleton: Skeleton, input_size: tuple[int, int], *,
                      stride: int = 8, sigma: float = 7.0, half_width: float = 8.0,
                      overhang: float | None = None) -> np.ndarray:
    """What an ideal net would output for an input of input_size (H, W): (1, C, H/8, W/8) float32,
    heatmaps then PAFs, like the Concat at the end of the OpenPose prototxts."""
    height, width = input_size
    if height % stride or width % stride:
        raise ShapeError(f"input size {input_size} is not a multiple of the stride {stride}")
    heatmaps, pafs = render_maps(people, skeleton, (height // stride, width // stride), stride=stride,
                                 sigma=sigma, half_width=half_width, overhang=overhang)
    return np.concatenate([heatmaps, pafs])[None]


# --- Poses for scenes ------------------------------------------------------------------------
# A frontal standing person in a unit box: x to the image right, y down, (0, 0) at the hips'
# centre, height 1 from the top of the head to the soles. The person's right side is image left.
_STANDING_POSE: dict[str, tuple[float, float]] = {
    "Head": (0.0, -0.50), "Nose": (0.0, -0.40), "Neck": (0.0, -0.30),
    "REye": (-0.035, -0.43), "LEye": (0.035, -0.43), "REar": (-0.075, -0.41), "LEar": (0.075, -0.41),
    "RShoulder": (-0.13, -0.28), "RElbow": (-0.19, -0.13), "RWrist": (-0.22, 0.01),
    "LShoulder": (0.13, -0.28), "LElbow": (0.19, -0.13), "LWrist": (0.22, 0.01),
    "Chest": (0.0, -0.14), "MidHip": (0.0, 0.0), "RHip": (-0.08, 0.0), "LHip": (0.08, 0.0),
    "RKnee": (-0.09, 0.22), "LKnee": (0.09, 0.22), "RAnkle": (-0.09, 0.43), "LAnkle": (0.09, 0.43),
    "RBigToe": (-0.06, 0.50), "RSmallToe": (-0.13, 0.50), "RHeel": (-0.10, 0.47),
    "LBigToe": (0.06, 0.50), "LSmallToe": (0.13, 0.50), "LHeel": (0.10, 0.47),
}


#: Added to every keypoint of standing_person: a keypoint exactly halfway between two pixels
#: gives a flat top (two equal maxima) where OpenPose's strict NMS finds no peak at all.
SUBPIXEL_NUDGE = (0.137, 0.271)


def standing_person(skeleton: Skeleton, center: tuple[float, float], height: float, *,
                    missing: Sequence[str] = (), amplitude: float = 1.0) -> ScenePerson:
    """A standing person of the given height (pixels) with its hips' centre near center (x, y)
    (plus SUBPIXEL_NUDGE); parts named in ``missing`` are left out."""
    rows = []
    for name in skeleton.part_names:
        if name not in _STANDING_POSE:
            raise ShapeError(f"no standing pose for part {name!r} of {skeleton.name}")
        dx, dy = _STANDING_POSE[name]
        rows.append((center[0] + dx * height + SUBPIXEL_NUDGE[0], center[1] + dy * height + SUBPIXEL_NUDGE[1],
                     0.0 if name in missing else 1.0))
    return ScenePerson(np.array(rows, dtype=np.float64), amplitude)


def crowd(skeleton: Skeleton, count: int, image_size: tuple[int, int], *, margin: float = 16.0,
          seed: int = 0) -> list[ScenePerson]:
    """count standing people on a grid filling image_size (H, W), slightly jittered, every part
    at least ``margin`` pixels inside the image (peaks near the border move: see peaks.py)."""
    height, width = image_size
    columns = int(np.ceil(np.sqrt(count * width / height)))
    rows = int(np.ceil(count / columns))
    cell_w, cell_h = width / columns, height / rows
    margin = margin + 1.0  # room for SUBPIXEL_NUDGE
    person_h = min(cell_h - 2 * margin, 2.2 * (cell_w - 2 * margin))
    if person_h <= 0:
        raise ShapeError(f"{count} people do not fit in {width}x{height} with a {margin}-pixel margin")
    slack_x = max(0.0, (cell_w - 2 * margin - 0.45 * person_h) / 2)
    rng = np.random.default_rng(seed)
    people = []
    for index in range(count):
        row, column = divmod(index, columns)
        center = ((column + 0.5) * cell_w + rng.uniform(-slack_x, slack_x), (row + 0.5) * cell_h)
        people.append(standing_person(skeleton, center, person_h))
    return people
