"""Hand and face boxes from body keypoints, crops (left hand mirrored) and keypoints mapped back."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from posebridge.runtime.hand_face import (
    Box,
    HandFaceExtractor,
    crop,
    crop_matrix,
    face_box,
    hand_boxes,
    keypoints_from_output,
)
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import COCO, FACE, HAND, MPI


def _person(skeleton, parts: dict[str, tuple[float, float, float]]) -> Person:
    keypoints = np.zeros((skeleton.part_count, 3), np.float32)
    for name, row in parts.items():
        keypoints[skeleton.part_index(name)] = row
    return Person(keypoints=keypoints, score=1.0, part_count=len(parts))


def _tuple(box: Box) -> tuple[float, float, float, float]:
    return (box.x, box.y, box.width, box.height)


def test_hand_boxes_follow_openpose_rule():
    person = _person(COCO, {"LWrist": (200, 300, 0.9), "LElbow": (200, 240, 0.9), "LShoulder": (200, 150, 0.9),
                            "RWrist": (100, 300, 0.9), "RElbow": (100, 240, 0.9), "RShoulder": (100, 150, 0.2)})
    left, right = hand_boxes(person, COCO)
    # centre = wrist + 0.33 (wrist - elbow) = (200, 319.8); side = 1.5 max(60, 0.9 * 90) = 121.5
    assert _tuple(left) == pytest.approx((200 - 60.75, 319.8 - 60.75, 121.5, 121.5), abs=1e-3)
    assert right is None  # the right shoulder is under 0.25


def test_face_box_frontal_profile_and_mpi():
    frontal = _person(COCO, {"Neck": (100, 200, 0.9), "Nose": (100, 140, 0.9), "LEye": (110, 130, 0.9),
                             "REye": (90, 130, 0.9), "LEar": (120, 135, 0.9), "REar": (80, 135, 0.9)})
    box = face_box(frontal, COCO)
    # centres: neck/nose (100, 170), eyes (100, 130), ears (100, 135); sizes 120, 60, 80
    assert _tuple(box) == pytest.approx((100 - 130 / 3, 145 - 130 / 3, 260 / 3, 260 / 3), abs=1e-3)
    profile = _person(COCO, {"Neck": (100, 200, 0.9), "Nose": (100, 140, 0.9), "LEye": (110, 130, 0.9),
                             "LEar": (125, 135, 0.9)})
    box = face_box(profile, COCO)
    d = (np.hypot(10, 10) + np.hypot(25, 5) + 60.0) * 0.85
    assert box.width == pytest.approx(d, rel=1e-5)
    assert box.x + box.width / 2 == pytest.approx((110 + 125 + 100) / 3, abs=1e-3)
    mpi = _person(MPI, {"Neck": (50, 120, 0.9), "Head": (50, 60, 0.9)})
    box = face_box(mpi, MPI)
    assert _tuple(box) == pytest.approx((50 - 39.9, 60 - 39.9, 79.8, 79.8), abs=1e-3)
    tiny = _person(COCO, {"Neck": (100, 110, 0.9), "Nose": (100, 100, 0.9)})
    assert face_box(tiny, COCO) is None  # side 20 <= 40


@pytest.mark.parametrize("mirror", [False, True])
def test_crop_samples_the_box(mirror):
    image = np.zeros((300, 400, 3), np.uint8)
    image[:, 200:] = 255  # right half white
    box = Box(150.0, 50.0, 100.0, 100.0)
    tensor, matrix = crop(image, box, 64, mirror=mirror)
    assert tensor.shape == (1, 3, 64, 64)
    left_col, right_col = tensor[0, 0, 32, 2], tensor[0, 0, 32, 61]
    white, black = 255 / 256 - 0.5, -0.5
    assert (left_col, right_col) == ((white, black) if mirror else (black, white))
    np.testing.assert_allclose(matrix @ [0, 0, 1], [250 if mirror else 150, 50])


@dataclass
class PeakBackend:
    """A fake hand/face net: a Gaussian per part at crop positions computed from image truths."""

    truth: np.ndarray  # (parts, 2) image pixels
    side: int = 368
    name: str = "peaks"
    matrices: list = field(default_factory=list)

    def infer(self, batch):
        matrix = self.matrices.pop(0)
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        crop_points = np.column_stack([self.truth, np.ones(len(self.truth))]) @ inverse.T
        grid = (np.arange(self.side // 8) * 8 + 3.5)
        yy, xx = np.meshgrid(grid, grid, indexing="ij")
        maps = [np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 6.0 ** 2)) for x, y in crop_points]
        maps.append(np.zeros_like(xx))
        return np.asarray(maps, np.float32)[None]


@pytest.mark.parametrize("mirror", [False, True])
def test_keypoints_map_back_through_the_crop(mirror):
    box = Box(120.0, 80.0, 150.0, 150.0)
    matrix = crop_matrix(box, 368, mirror=mirror)
    rng = np.random.default_rng(1)
    truth = rng.uniform([140, 100], [250, 210], size=(HAND.part_count, 2))
    backend = PeakBackend(truth)
    backend.matrices.append(matrix)
    found = keypoints_from_output(backend.infer(None), HAND.part_count, matrix, 368)
    # The keypoint is the integer maximum of the x8 cubic-resized map: half a crop pixel of
    # rounding plus the resize's interpolation error, so within 1.5 crop pixels of the truth; a
    # wrong mirror or offset would be off by tens of pixels.
    crop_pixel = box.width / 368
    assert np.abs(found[:, :2] - truth).max() <= 1.5 * crop_pixel
    assert np.all(found[:, 2] > 0.8)


def test_extractor_fills_every_person_and_zeros_missing_boxes():
    person = _person(COCO, {"LWrist": (200, 300, 0.9), "LElbow": (200, 240, 0.9), "LShoulder": (200, 150, 0.9)})
    truth = np.tile([[200.0, 320.0]], (HAND.part_count, 1))
    backend = PeakBackend(truth)
    left_box, _ = hand_boxes(person, COCO)
    backend.matrices.append(crop_matrix(left_box, 368, mirror=True))
    extractor = HandFaceExtractor(hand=backend)
    parts = extractor.extract(np.zeros((400, 400, 3), np.uint8), [person], COCO)
    assert np.abs(parts["hand_left"][0][:, :2] - truth).max() <= 1.0
    assert not parts["hand_right"][0].any()  # no right arm: zeros, as OpenPose writes
    assert "face" not in parts
    assert FACE.part_count == 70 and HAND.part_count == 21


def test_hand_scales_follow_openpose_and_refuse_bad_values():
    from posebridge.errors import PosebridgeError
    from posebridge.runtime.hand_face import hand_scales

    assert hand_scales(1, 0.4) == [1.0]
    np.testing.assert_allclose(hand_scales(3, 0.4), [0.8, 1.0, 1.2], rtol=1e-6)
    np.testing.assert_allclose(hand_scales(5, 0.6), [0.7, 0.85, 1.0, 1.15, 1.3], rtol=1e-6)
    for number, span in ((0, 0.4), (2, -0.1), (2, 2.0), (2, float("nan"))):
        with pytest.raises(PosebridgeError, match="hand scale"):
            hand_scales(number, span)


def test_rescaled_box_keeps_the_centre_and_rounds_sides_to_even_pixels():
    from posebridge.runtime.hand_face import rescaled_box

    box = Box(100.0, 50.0, 101.0, 75.0)
    # 101 x 0.8 = 80.8 -> round 81 -> even 80; 75 x 0.8 = 60 -> 60; centre (150.5, 87.5) kept.
    assert _tuple(rescaled_box(box, 0.8)) == (110.5, 57.5, 80.0, 60.0)
    # 101 x 1.2 = 121.2 -> 121 -> 120; 75 x 1.2 = 90 -> 90.
    assert _tuple(rescaled_box(box, 1.2)) == (90.5, 42.5, 120.0, 90.0)


@dataclass
class ScriptedBackend:
    """Hand maps with every part's peak at call-specific crop pixel and height (one call per scale)."""

    peaks: list[tuple[int, float]]  # (crop-map column, peak value) per call
    calls: int = 0

    def infer(self, tensor):
        column, value = self.peaks[self.calls]
        self.calls += 1
        maps = np.zeros((1, HAND.part_count + 1, 46, 46), np.float32)
        maps[0, :HAND.part_count, 20, column] = value
        return maps


@pytest.mark.parametrize("peaks,chosen", [
    ([(10, 0.5), (20, 0.9), (30, 0.7)], 1),   # the best average score wins
    ([(10, 0.6), (20, 0.6), (30, 0.6)], 0),   # ties keep the first scale (OpenPose's ">")
    ([(10, 0.2), (20, 0.3), (30, 0.8)], 2),
])
def test_multi_scale_hand_keeps_the_estimate_with_the_best_average_score(peaks, chosen, monkeypatch):
    from posebridge.runtime import hand_face

    boxes = []
    real_crop = hand_face.crop

    def recording_crop(image, box, side=368, *, mirror=False):
        boxes.append(box)
        return real_crop(image, box, side, mirror=mirror)

    monkeypatch.setattr(hand_face, "crop", recording_crop)
    person = _person(COCO, {"RWrist": (200, 300, 0.9), "RElbow": (200, 240, 0.9), "RShoulder": (200, 150, 0.9)})
    image = np.zeros((400, 400, 3), np.uint8)
    multi = HandFaceExtractor(hand=ScriptedBackend(peaks), hand_scale_number=3, hand_scale_range=0.4)
    right = multi.extract(image, [person], COCO)["hand_right"][0]
    _, box = hand_boxes(person, COCO)
    assert [b.width for b in boxes] == [float(int(box.width * s + 0.5) // 2 * 2) for s in (0.8, 1.0, 1.2)]
    # The same crop and scripted maps alone, at the chosen scale, give the same keypoints.
    single = HandFaceExtractor(hand=ScriptedBackend([peaks[chosen]]))
    expected = single._run(single.hand, image, boxes[chosen], HAND.part_count, False)
    np.testing.assert_array_equal(right, expected)


def test_run_refuses_a_bad_hand_scale_number_before_loading_models(tmp_path, capsys):
    from posebridge.tools.cli import main

    code = main(["run", str(tmp_path / "missing.caffemodel"), str(tmp_path / "x.png"), "--prototxt", "zoo:coco",
                 "--hand", str(tmp_path / "hand.caffemodel"), "--hand-scale-number", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert "hand scale number must be at least 1" in err and "Traceback" not in err


def test_multi_scale_hand_runs_the_real_hand_net_once_per_scale():
    from posebridge import zoo
    from posebridge.converter.model_family import ModelFamily
    from posebridge.converter.network import CaffeNet
    from posebridge.prototxt.synth import synthesize
    from posebridge.runtime.backends import TorchBackend

    graph = zoo.graph("zoo:hand")
    net = CaffeNet(graph, synthesize(graph, seed=2, init="he"))

    @dataclass
    class Counting:
        inner: TorchBackend
        shapes: list = field(default_factory=list)

        def infer(self, batch):
            self.shapes.append(batch.shape)
            return self.inner.infer(batch)

    backend = Counting(TorchBackend(net, ModelFamily("hand", "test", None, None, 0, None, None)))
    person = _person(COCO, {"LWrist": (150, 200, 0.9), "LElbow": (150, 160, 0.9), "LShoulder": (150, 100, 0.9)})
    image = np.random.default_rng(3).integers(0, 256, (300, 260, 3), dtype=np.uint8)
    extractor = HandFaceExtractor(hand=backend, side=184, hand_scale_number=3, hand_scale_range=0.4)
    left = extractor.extract(image, [person], COCO)["hand_left"][0]
    assert backend.shapes == [(1, 3, 184, 184)] * 3  # one forward per scale; no right hand box
    assert left.shape == (HAND.part_count, 3) and np.isfinite(left).all() and left[:, 2].max() > 0
