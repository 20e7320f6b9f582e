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
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

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


@dataclass
class HandFaceExtractor:
    """Hand and/or face keypoints for the people found by the body pipeline."""

    hand: Backend | None = None
    face: Backend | None = None
    side: int = DEFAULT_CROP_SIDE

    def _run(self, backend: Backend, image: np.ndarray, box: Box | None, parts: int, mirror: bool) -> np.ndarray:
        if box is None:
            return np.zeros((parts, 3), np.float32)
        tensor, matrix = crop(image, box, self.side, mirror=mirror)
        return keypoints_from_output(backend.infer(tensor), parts, matrix, self.side)

    def extract(self, image: np.ndarray, people: list[Person], skeleton: Skeleton) -> dict[str, list[np.ndarray]]:
        """{"hand_left": [...], "hand_right": [...], "face": [...]}: one (parts, 3) array per person."""
        result: dict[str, list[np.ndarray]] = {}
        if self.hand is not None:
            left, right = [], []
            for person in people:
                box_left, box_right = hand_boxes(person, skeleton)
                left.append(self._run(self.hand, image, box_left, HAND.part_count, True))
                right.append(self._run(self.hand, image, box_right, HAND.part_count, False))
            result["hand_left"], result["hand_right"] = left, right
        if self.face is not None:
            result["face"] = [self._run(self.face, image, face_box(person, skeleton), FACE.part_count, False)
                              for person in people]
        return result
