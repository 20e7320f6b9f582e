"""COCO keypoint results (``--write_coco_json``) as OpenPose 1.7 writes them, for pycocotools.

From OpenPose 1.7 ``filestream/cocoJsonSaver.cpp`` (``CocoJsonSaver::record``, body format):

- one object per person: ``image_id`` (the trailing digits of the image name,
  ``getLastNumber``), ``category_id`` 1, ``keypoints`` (17 x, y, v in COCO order), ``score``;
- COCO order taken from OpenPose's parts by ``COCO17_FROM_OPENPOSE`` (the neck, mid-hip and
  feet are dropped); a part with score > 0 is written ``x, y, 1``, a missing one ``-1, -1, 0``;
- a person with none of the 17 parts is skipped;
- ``score`` is OpenPose's ``poseScores[person]``: the subset score divided by
  (number of parts + number of limbs) (``bodyPartConnectorBase.cpp``), in float32;
- the file is written human-readable (``humanFormat = true`` in ``wrapperAuxiliary.hpp``):
  tabs and newlines exactly as ``JsonOfstream`` puts them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import numpy as np

from posebridge.atomic import write_text_atomic
from posebridge.errors import InputMediaError, PosebridgeError
from posebridge.runtime.openpose_json import format_number
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import Skeleton

COCO_PERSON_CATEGORY = 1
#: OpenPose part index of each COCO keypoint (nose, l/r eye, l/r ear, l/r shoulder, l/r elbow,
#: l/r wrist, l/r hip, l/r knee, l/r ankle), by OpenPose part count (cocoJsonSaver.cpp).
COCO17_FROM_OPENPOSE: dict[int, tuple[int, ...]] = {
    18: (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10),   # COCO
    25: (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11),  # BODY_25
}
MISSING_COORDINATE = -1.0
_TRAILING_DIGITS = re.compile(r"(\d+)$")

ImageId = int | str


def coco_image_id(image: ImageId) -> int:
    """The COCO image id: an int as is, or the trailing digits of an image name (OpenPose's
    ``getLastNumber``: ``COCO_val2014_000000000192`` -> 192). Raises :class:`InputMediaError`."""
    if isinstance(image, (int, np.integer)):
        return int(image)
    match = _TRAILING_DIGITS.search(str(image))
    if not match:
        raise InputMediaError(
            f"image name {str(image)!r} does not end in a number: COCO output needs the COCO image "
            "id at the end of the name (as COCO_val2014_000000000192)")
    return int(match.group(1))


def coco_order(skeleton: Skeleton) -> tuple[int, ...]:
    """OpenPose part indices in COCO keypoint order for ``skeleton`` (COCO or BODY_25)."""
    order = COCO17_FROM_OPENPOSE.get(skeleton.part_count)
    if order is None:
        raise PosebridgeError(
            f"skeleton {skeleton.name} ({skeleton.part_count} parts) has no COCO keypoint mapping; "
            f"OpenPose writes COCO JSON for {sorted(COCO17_FROM_OPENPOSE)}-part models only")
    return order


def pose_score(person: Person, skeleton: Skeleton) -> float:
    """OpenPose's ``poseScores``: subset score / (parts + limbs), in float32."""
    return float(np.float32(person.score) / np.float32(skeleton.part_count + len(skeleton.limbs)))


def _coco_triples(keypoints: np.ndarray, order: Sequence[int]) -> list[tuple[float, float, int]] | None:
    rows = np.asarray(keypoints, dtype=np.float32)[list(order)]
    if not np.any(rows[:, 2] > 0):
        return None
    return [(float(x), float(y), 1) if c > 0 else (MISSING_COORDINATE, MISSING_COORDINATE, 0) for x, y, c in rows]


def coco_results(image: ImageId, people: Sequence[Person], skeleton: Skeleton) -> list[dict]:
    """The COCO result objects of one image, as dicts (``json.dump`` them, or feed ``loadRes``)."""
    image_id = coco_image_id(image)
    order = coco_order(skeleton)
    results = []
    for person in people:
        triples = _coco_triples(person.keypoints, order)
        if triples is None:
            continue
        results.append({
            "image_id": image_id,
            "category_id": COCO_PERSON_CATEGORY,
            "keypoints": [value for triple in triples for value in triple],
            "score": pose_score(person, skeleton),
        })
    return results


def _entry_text(result: dict) -> str:
    values = result["keypoints"]
    numbers = ",".join(str(v) if i % 3 == 2 else format_number(v) for i, v in enumerate(values))
    return ("{"
            f'\n\t\t"image_id":{result["image_id"]},'
            f'\n\t\t"category_id":{result["category_id"]},'
            f'\n\t\t"keypoints":[\n\t\t\t{numbers}\n\t\t],'
            f'\n\t\t"score":{format_number(result["score"])}'
            "\n\t}")


def coco_json(results: Iterable[dict]) -> str:
    """The text of OpenPose's COCO JSON file for result objects from :func:`coco_results`."""
    return "[\n\t" + ",\n\t".join(_entry_text(r) for r in results) + "\n]\n"


def write_coco_json(path: str | os.PathLike, records: Iterable[tuple[ImageId, Sequence[Person]]],
                    skeleton: Skeleton) -> Path:
    """Write the COCO JSON of ``(image id or name, people)`` records to ``path`` atomically."""
    results = [r for image, people in records for r in coco_results(image, people, skeleton)]
    write_text_atomic(path, coco_json(results))
    return Path(path)


class CocoJsonWriter:
    """Collects results frame by frame; ``close()`` (or leaving the ``with`` block without an
    exception) writes the file atomically, so an interrupted run leaves no partial file."""

    def __init__(self, path: str | os.PathLike, skeleton: Skeleton) -> None:
        self.path = Path(path)
        self.skeleton = skeleton
        coco_order(skeleton)
        self._results: list[dict] = []
        self._closed = False

    def add(self, image: ImageId, people: Sequence[Person]) -> None:
        """Record the people of one image."""
        self._results.extend(coco_results(image, people, self.skeleton))

    def close(self) -> Path:
        """Write the file (once) and return its path."""
        if not self._closed:
            write_text_atomic(self.path, coco_json(self._results))
            self._closed = True
        return self.path

    def __enter__(self) -> CocoJsonWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if kind is None:
            self.close()
