"""OpenPose's per-frame JSON (``--write_json``), byte for byte as the OpenPose 1.7 binary writes it.

From OpenPose 1.7: ``filestream/wPeopleJsonSaver.hpp`` (keys in this order: ``person_id``,
the four ``*_2d`` arrays, the four ``*_3d`` arrays; ``humanReadable = false``; file
``<name>_keypoints.json``), ``filestream/fileStream.cpp`` (``savePeopleJson``: version
``1.3``, people joined by ``,``, optional ``part_candidates``) and ``jsonOfstream.cpp`` /
``.hpp`` (no whitespace when not human-readable; numbers written with ``std::ostream <<``,
i.e. ``%g`` with 6 significant digits for floats).

``person_id`` is ``-1`` per person unless tracking ids are given; an absent face or hand
detector gives ``[]``; a missing part is ``0,0,0``. The ``*_3d`` arrays are always empty.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posebridge.atomic import write_text_atomic
from posebridge.errors import ShapeError
from posebridge.runtime.people import Person

JSON_VERSION = "1.3"
FILE_SUFFIX = "_keypoints.json"
PERSON_ID_KEY = "person_id"
KEYPOINTS_2D_KEYS = ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d")
KEYPOINTS_3D_KEYS = ("pose_keypoints_3d", "face_keypoints_3d", "hand_left_keypoints_3d", "hand_right_keypoints_3d")
UNTRACKED_PERSON_ID = -1

KeypointsInput = Sequence[Person] | np.ndarray | Sequence[np.ndarray | None] | None


def format_number(value: float) -> str:
    """A float as ``std::ostream << float`` writes it: ``%g``, 6 significant digits."""
    value = float(np.float32(value))
    if math.isnan(value):
        return "-nan" if math.copysign(1.0, value) < 0 else "nan"
    return "%g" % value


def _as_keypoints(value: KeypointsInput, what: str) -> np.ndarray | None:
    """Persons, an array (P, K, 3) or a list of (K, 3) arrays (None = all zeros) -> (P, K, 3)."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        array = value.astype(np.float32, copy=False)
        if array.size == 0:
            return None
        if array.ndim != 3 or array.shape[2] != 3:
            raise ShapeError(f"{what}: expected (people, parts, 3), got shape {array.shape}")
        return array
    rows = [p.keypoints if isinstance(p, Person) else p for p in value]
    if not rows:
        return None
    known = [np.asarray(r, dtype=np.float32) for r in rows if r is not None]
    if not known:
        return None
    parts = known[0].shape[0]
    stacked = []
    for index, row in enumerate(rows):
        array = np.zeros((parts, 3), np.float32) if row is None else np.asarray(row, dtype=np.float32)
        if array.shape != (parts, 3):
            raise ShapeError(f"{what}: person {index} has shape {array.shape}, expected ({parts}, 3)")
        stacked.append(array)
    return np.stack(stacked)


def _number_list(values: np.ndarray) -> str:
    return "[" + ",".join(format_number(v) for v in values.reshape(-1)) + "]"


def openpose_json(
    people: KeypointsInput,
    *,
    face: KeypointsInput = None,
    hand_left: KeypointsInput = None,
    hand_right: KeypointsInput = None,
    person_ids: Sequence[int] | None = None,
    part_candidates: Sequence[np.ndarray] | None = None,
) -> str:
    """The text OpenPose writes for one frame.

    people: :class:`Person` objects or an array (P, K, 3) of x, y, score in image pixels.
    face / hand_left / hand_right: None when the detector is off (``[]``), else one (70, 3) or
    (21, 3) array per person (None for a person gives zeros) or a (P, N, 3) array.
    person_ids: tracking ids (default -1 each). part_candidates: when given, one (n_i, 3) array
    of x, y, score per body part, written as OpenPose's ``part_candidates``.
    """
    arrays = [_as_keypoints(v, key) for v, key in zip((people, face, hand_left, hand_right), KEYPOINTS_2D_KEYS)]
    number_people = max((a.shape[0] for a in arrays if a is not None), default=0)
    counts = {key: array.shape[0] for array, key in zip(arrays, KEYPOINTS_2D_KEYS) if array is not None}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{key} {count}" for key, count in counts.items())
        raise ShapeError(f"people counts differ within the frame: {listed}")
    if person_ids is None:
        ids = [UNTRACKED_PERSON_ID] * number_people
    else:
        ids = list(person_ids)
        if len(ids) != number_people:
            raise ShapeError(f"person_ids: {len(ids)} ids for {number_people} people")
    people_text = []
    for person in range(number_people):
        fields = [f'"{PERSON_ID_KEY}":[{format_number(ids[person])}]']
        for array, key in zip(arrays, KEYPOINTS_2D_KEYS):
            fields.append(f'"{key}":' + ("[]" if array is None else _number_list(array[person])))
        fields.extend(f'"{key}":[]' for key in KEYPOINTS_3D_KEYS)
        people_text.append("{" + ",".join(fields) + "}")
    text = '{"version":' + JSON_VERSION + ',"people":[' + ",".join(people_text) + "]"
    if part_candidates:
        parts = []
        for index, candidates in enumerate(part_candidates):
            values = np.asarray(candidates, dtype=np.float32).reshape(-1)
            parts.append(f'"{index}":' + _number_list(values))
        text += ',"part_candidates":[{' + ",".join(parts) + "}]"
    return text + "}"


def json_file_name(name: str) -> str:
    """``<name>_keypoints.json``, OpenPose's file name for a frame called ``name``."""
    return name + FILE_SUFFIX


def write_openpose_json(
    directory: str | os.PathLike,
    name: str,
    people: KeypointsInput,
    **keypoints: object,
) -> Path:
    """Write ``directory/<name>_keypoints.json`` atomically; keyword arguments as :func:`openpose_json`.

    Returns the path written.
    """
    path = Path(directory) / json_file_name(name)
    write_text_atomic(path, openpose_json(people, **keypoints))
    return path
