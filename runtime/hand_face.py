"""Hand and face keypoints from the body keypoints, as OpenPose's CPU path computes them.

openpose: hand/handDetector.cpp, face/faceDetector.cpp (boxes from body parts), and
hand/handExtractorCaffe.cpp, face/faceExtractorCaffe.cpp (crop, net, maximum per channel):

* Hand box (per side): needs wrist, elbow and shoulder above 0.25; centre = wrist +
  0.33 (wrist - elbow); side = 1.5 max(|wrist - elbow|, 0.9 |elbow - shoulder|). Kept when its
  side > 1 and its area > 10.
* Face box: from neck and nose (profile or frontal rules), eyes and ears, averaged; kept when
  its side > 40.
* The box is warped to a square net input (368x368 by default) with linear interpolation and
  zero borders (the left hand mirrored); the net's heatmaps are resized x8 (cubic); each part's
  keypoint is the (first) maximum of its channel, mapped back through the crop's affine matrix.
* Hand multi-scale (``--hand_scale_number`` S > 1, ``--hand_scale_range`` R): the hand box is
  re-centred at scales ``1 - R/2 + R i / (S - 1)`` (sides rounded to an even number of pixels),
  each scale runs the net, and the estimate with the highest average keypoint score is kept
  (the first scale's on ties), in float32 as OpenPose computes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from posebridge.errors import PosebridgeError
from posebridge.runtime.backends import Backend
from posebridge.runtime.people import Person
from posebridge.runtime.preprocess import normalize_to_tensor
from posebridge.runtime.upsample import resize_maps
from posebridge.runtime.skeletons import FACE, HAND, Skeleton

#: A body part takes part in a box only above this score (handDetector / faceDetector).
BOX_PART_THRESHOLD = 0.25
HAND_WRIST_EXTENSION = 0.33
HAND_SIZE_FACTOR = 1.5
HAND_SHOULDER_FACTOR = 0.9
HAND_MIN_SIDE, HAND_MIN_AREA = 1.0, 10.0
FACE_MIN_SIDE = 40.0
#: OpenPose's default --hand_net_resolution and --face_net_resolution.
DEFAULT_CROP_SIDE = 368
#: OpenPose's defaults for --hand_scale_number and --hand_scale_range.
HAND_SCALE_NUMBER = 1
HAND_SCALE_RANGE = 0.4


@dataclass(frozen=True)
class Box:
    """A square crop box in image pixels: top-left (x, y) and side lengths."""

    x: float
    y: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height


def _part(person: Person, skeleton: Skeleton, names: tuple[str, ...]) -> tuple[np.ndarray, float] | None:
    for name in names:
        if name in skeleton.part_names:
            row = person.keypoints[skeleton.part_index(name)]
            return row[:2].astype(np.float32), float(row[2])
    return None


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.float32(np.hypot(*(a - b))))


def hand_boxes(person: Person, skeleton: Skeleton, *, threshold: float = BOX_PART_THRESHOLD) -> tuple[Box | None, Box | None]:
    """(left hand, right hand) boxes, None where the arm's parts are not all above threshold."""
    boxes = []
    for side in ("L", "R"):
        parts = [_part(person, skeleton, (f"{side}{name}",)) for name in ("Wrist", "Elbow", "Shoulder")]
        if any(p is None or p[1] <= threshold for p in parts):
            boxes.append(None)
            continue
        (wrist, _), (elbow, _), (shoulder, _) = parts
        centre = wrist + np.float32(HAND_WRIST_EXTENSION) * (wrist - elbow)
        width = np.float32(HAND_SIZE_FACTOR) * max(_distance(wrist, elbow),
                                                    np.float32(HAND_SHOULDER_FACTOR) * _distance(elbow, shoulder))
        box = Box(float(centre[0] - width / 2), float(centre[1] - width / 2), float(width), float(width))
        boxes.append(box if min(box.width, box.height) > HAND_MIN_SIDE and box.area > HAND_MIN_AREA else None)
    return boxes[0], boxes[1]


def face_box(person: Person, skeleton: Skeleton, *, threshold: float = BOX_PART_THRESHOLD) -> Box | None:
    """The face box from neck, nose (or head), eyes and ears; None when too small or unseen."""
    get = {name: _part(person, skeleton, names) for name, names in {
        "neck": ("Neck",), "nose": ("Nose", "Head"), "lear": ("LEar", "Head"), "rear": ("REar", "Head"),
        "leye": ("LEye", "Head"), "reye": ("REye", "Head")}.items()}
    if get["neck"] is None or get["nose"] is None:
        return None
    above = {k: v is not None and v[1] > threshold for k, v in get.items()}
    point = {k: (v[0] if v is not None else None) for k, v in get.items()}
    centre = np.zeros(2, np.float32)
    size = 0.0
    if "Head" in skeleton.part_names and "Nose" not in skeleton.part_names:  # MPI: head given
        if not (above["neck"] and above["nose"]):
            return None
        centre = point["nose"]
        size = 1.33 * _distance(point["neck"], point["nose"])
    else:
        counter = 0
        if above["neck"] and above["nose"]:
            profile = (above["leye"] == above["lear"] and above["reye"] == above["rear"]
                       and above["leye"] != above["reye"])
            if profile:
                eye, ear = ("leye", "lear") if above["leye"] else ("reye", "rear")
                centre = centre + (point[eye] + point[ear] + point["nose"]) / 3
                size += 0.85 * (_distance(point["nose"], point[eye]) + _distance(point["nose"], point[ear])
                                + _distance(point["neck"], point["nose"]))
            else:
                centre = centre + (point["neck"] + point["nose"]) / 2
                size += 2.0 * _distance(point["neck"], point["nose"])
            counter += 1
        if above["leye"] and above["reye"]:
            centre = centre + (point["leye"] + point["reye"]) / 2
            size += 3.0 * _distance(point["leye"], point["reye"])
            counter += 1
        if above["lear"] and above["rear"]:
            centre = centre + (point["lear"] + point["rear"]) / 2
            size += 2.0 * _distance(point["lear"], point["rear"])
            counter += 1
        if counter == 0:
            return None
        centre = centre / counter
        size /= counter
    box = Box(float(centre[0] - size / 2), float(centre[1] - size / 2), float(size), float(size))
    return box if min(box.width, box.height) > FACE_MIN_SIDE else None


def crop_matrix(box: Box, side: int, *, mirror: bool = False) -> np.ndarray:
    """The 2x3 affine matrix from crop pixels to image pixels (OpenPose's cropFrame)."""
    scale = max(box.width, box.height) / float(side)
    matrix = np.array([[scale, 0.0, box.x], [0.0, scale, box.y]], dtype=np.float64)
    if mirror:
        matrix[0, 0] = -scale
        matrix[0, 2] = box.x + box.width
    return matrix


def crop(image_bgr: np.ndarray, box: Box, side: int = DEFAULT_CROP_SIDE, *, mirror: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The (1, 3, side, side) net input of a box, and its crop -> image affine matrix."""
    matrix = crop_matrix(box, side, mirror=mirror)
    patch = cv2.warpAffine(image_bgr, matrix, (side, side), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return normalize_to_tensor(patch), matrix


def keypoints_from_output(net_output: np.ndarray, parts: int, matrix: np.ndarray, side: int) -> np.ndarray:
    """(parts, 3) x, y, score in image pixels: the maximum of each channel (cv::minMaxLoc's first)."""
    maps = resize_maps(np.asarray(net_output).reshape(-1, *np.shape(net_output)[-2:]), (side, side))[:parts]
    flat = maps.reshape(parts, -1)
    index = flat.argmax(axis=1)  # first maximum in row-major order, as minMaxLoc
    ys, xs = np.divmod(index, side)
    scores = flat[np.arange(parts), index]
    points = np.stack([xs, ys, np.ones(parts)], axis=1).astype(np.float64) @ matrix.T
    return np.column_stack([points.astype(np.float32), scores.astype(np.float32)])


def hand_scales(number: int, scale_range: float) -> list[float]:
    """The box scales of OpenPose's hand multi-scale detection (float32 arithmetic)."""
    if number < 1:
        raise PosebridgeError(f"the hand scale number must be at least 1, got {number}")
    if not 0.0 <= scale_range < 2.0:  # the smallest scale, 1 - range/2, must stay above 0
        raise PosebridgeError(f"the hand scale range must be in [0, 2), got {scale_range}")
    if number == 1:
        return [1.0]
    span = np.float32(scale_range)
    first = np.float32(1.0) - span / np.float32(2.0)
    return [float(first + span * np.float32(i) / (np.float32(number) - np.float32(1.0))) for i in range(number)]


def rescaled_box(box: Box, scale: float) -> Box:
    """``box`` re-centred with its sides scaled and rounded down to an even number of pixels (float32)."""
    def even_side(side: float) -> np.float32:
        return np.float32(int(np.float32(side) * np.float32(scale) + np.float32(0.5)) // 2 * 2)

    width, height = even_side(box.width), even_side(box.height)
    centre_x = np.float32(box.x) + np.float32(box.width) / np.float32(2.0)
    centre_y = np.float32(box.y) + np.float32(box.height) / np.float32(2.0)
    return Box(float(centre_x - width / np.float32(2.0)), float(centre_y - height / np.float32(2.0)),
               float(width), float(height))


def average_score(keypoints: np.ndarray) -> np.float32:
    """Mean of the score column of a (parts, 3) keypoint array, summed in float32 as OpenPose does."""
    total = np.float32(0.0)
    for score in np.asarray(keypoints, np.float32)[:, 2]:
        total = np.float32(total + score)
    return np.float32(total / np.float32(len(keypoints)))


@dataclass
class HandFaceExtractor:
    """Hand and/or face keypoints for the people found by the body pipeline."""

    hand: Backend | None = None
    face: Backend | None = None
    side: int = DEFAULT_CROP_SIDE
    hand_scale_number: int = HAND_SCALE_NUMBER
    hand_scale_range: float = HAND_SCALE_RANGE

    def __post_init__(self) -> None:
        self._hand_scales = hand_scales(self.hand_scale_number, self.hand_scale_range)

    def _run(self, backend: Backend, image: np.ndarray, box: Box | None, parts: int, mirror: bool) -> np.ndarray:
        if box is None:
            return np.zeros((parts, 3), np.float32)
        tensor, matrix = crop(image, box, self.side, mirror=mirror)
        return keypoints_from_output(backend.infer(tensor), parts, matrix, self.side)

    def _run_hand(self, image: np.ndarray, box: Box | None, mirror: bool) -> np.ndarray:
        assert self.hand is not None
        if box is None or len(self._hand_scales) == 1:
            return self._run(self.hand, image, box, HAND.part_count, mirror)
        best: np.ndarray | None = None
        best_score = np.float32(0.0)
        for scale in self._hand_scales:
            found = self._run(self.hand, image, rescaled_box(box, scale), HAND.part_count, mirror)
            score = average_score(found)
            if best is None or score > best_score:
                best, best_score = found, score
        return best

    def extract(self, image: np.ndarray, people: list[Person], skeleton: Skeleton) -> dict[str, list[np.ndarray]]:
        """{"hand_left": [...], "hand_right": [...], "face": [...]}: one (parts, 3) array per person."""
        result: dict[str, list[np.ndarray]] = {}
        if self.hand is not None:
            left, right = [], []
            for person in people:
                box_left, box_right = hand_boxes(person, skeleton)
                left.append(self._run_hand(image, box_left, True))
                right.append(self._run_hand(image, box_right, False))
            result["hand_left"], result["hand_right"] = left, right
        if self.face is not None:
            result["face"] = [self._run(self.face, image, face_box(person, skeleton), FACE.part_count, False)
                              for person in people]
        return result
