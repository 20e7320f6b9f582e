"""OpenPose JSON (byte-exact text) and COCO results JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest

from posebridge.errors import InputMediaError, PosebridgeError, ShapeError
from posebridge.runtime import coco_json as cj
from posebridge.runtime import openpose_json as oj
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import BODY_25, COCO, MPI

EMPTY_REST = ('"face_keypoints_2d":[],"hand_left_keypoints_2d":[],"hand_right_keypoints_2d":[],'
              '"pose_keypoints_3d":[],"face_keypoints_3d":[],"hand_left_keypoints_3d":[],"hand_right_keypoints_3d":[]')

COCO17_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
                "left_knee", "right_knee", "left_ankle", "right_ankle")


def _openpose_name(coco_name: str) -> str:
    """'left_shoulder' -> 'LShoulder', 'nose' -> 'Nose' (OpenPose's part names)."""
    side, _, part = coco_name.partition("_")
    return (side[0].upper() + part.capitalize()) if part else side.capitalize()


def _person(parts: int, found: dict[int, tuple[float, float, float]], score: float = 1.0) -> Person:
    keypoints = np.zeros((parts, 3), np.float32)
    for index, row in found.items():
        keypoints[index] = row
    return Person(keypoints, score, len(found))


# --- number formatting -------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (0.0, "0"), (-1, "-1"), (12.5, "12.5"), (100.123456, "100.123"), (0.912345, "0.912345"),
    (0.1, "0.1"), (1e-5, "1e-05"), (0.0001, "0.0001"), (1234567.0, "1.23457e+06"), (123456.7, "123457"),
    (880.441, "880.441"), (2055.39, "2055.39"), (float("inf"), "inf"),
])
def test_format_number_is_ostream_default(value, text):
    assert oj.format_number(value) == text


# --- OpenPose JSON -----------------------------------------------------------------------------

def test_exact_text_one_person():
    person = _person(18, {0: (100.5, 200.25, 0.9), 17: (3.0, 4.0, 0.0625)})
    zeros_between = ",".join(["0"] * (16 * 3))
    expected = ('{"version":1.3,"people":[{"person_id":[-1],"pose_keypoints_2d":[100.5,200.25,0.9,'
                + zeros_between + ',3,4,0.0625],' + EMPTY_REST + '}]}')
    assert oj.openpose_json([person]) == expected


def test_empty_frame():
    assert oj.openpose_json([]) == '{"version":1.3,"people":[]}'
    assert oj.openpose_json(np.zeros((0, 25, 3), np.float32)) == '{"version":1.3,"people":[]}'


def test_round_trip_of_openpose_style_text():
    # Two BODY_25 people written in OpenPose's style (6 significant digits, bare zeros).
    first = [880.441, 483.283, 0.877448, 859.957, 809.893, 0.519232] + [0] * 66 + [951.13, 406.708, 0.918684]
    second = [12.5, 7.25, 0.05, 0, 0, 0] + [1.23457e+06, 1e-05, 0.3] * 22 + [2, 3, 0.999999]
    body = ",".join(
        '{"person_id":[-1],"pose_keypoints_2d":[' + ",".join(oj.format_number(v) for v in values) + "],"
        + EMPTY_REST + "}" for values in (first, second))
    text = '{"version":1.3,"people":[' + body + "]}"
    parsed = json.loads(text)
    arrays = np.array([p["pose_keypoints_2d"] for p in parsed["people"]], np.float32).reshape(2, 25, 3)
    assert oj.openpose_json(arrays) == text
    assert oj.openpose_json([Person(a, 1.0, 25) for a in arrays]) == text


def test_face_and_hands_and_ids():
    people = [_person(25, {1: (5.0, 6.0, 0.5)}), _person(25, {2: (7.0, 8.0, 0.25)})]
    face = [np.full((70, 3), 0.5, np.float32), None]
    hand_left = np.ones((2, 21, 3), np.float32)
    text = oj.openpose_json(people, face=face, hand_left=hand_left, person_ids=[3, 7])
    data = json.loads(text)
    assert [p["person_id"] for p in data["people"]] == [[3], [7]]
    assert data["people"][0]["face_keypoints_2d"] == [0.5] * 210
    assert data["people"][1]["face_keypoints_2d"] == [0] * 210
    assert data["people"][1]["hand_left_keypoints_2d"] == [1] * 63
    assert data["people"][0]["hand_right_keypoints_2d"] == []
    assert list(data["people"][0]) == ["person_id", *oj.KEYPOINTS_2D_KEYS, *oj.KEYPOINTS_3D_KEYS]
    assert '"face_keypoints_2d":[0,0,0,' in text                     # bare zeros, no "0.0"


def test_mismatched_people_counts_raise():
    people = [_person(18, {0: (1, 2, 0.5)})]
    with pytest.raises(ShapeError, match="face_keypoints_2d"):
        oj.openpose_json(people, face=np.zeros((2, 70, 3), np.float32))
    with pytest.raises(ShapeError, match="person_ids"):
        oj.openpose_json(people, person_ids=[1, 2])
    with pytest.raises(ShapeError):
        oj.openpose_json(np.zeros((1, 18, 2), np.float32))


def test_part_candidates():
    people = [_person(18, {0: (1, 2, 0.5)})]
    candidates = [np.array([[1.5, 2.5, 0.75], [3, 4, 0.5]]), np.zeros((0, 3))] + [np.zeros((0, 3))] * 16
    text = oj.openpose_json(people, part_candidates=candidates)
    empty_parts = ",".join(f'"{i}":[]' for i in range(1, 18))
    assert text.endswith(',"part_candidates":[{"0":[1.5,2.5,0.75,3,4,0.5],' + empty_parts + "}]}")
    assert json.loads(text)["part_candidates"][0]["0"] == [1.5, 2.5, 0.75, 3, 4, 0.5]


def test_write_openpose_json(tmp_path):
    people = [_person(18, {0: (1, 2, 0.5)})]
    path = oj.write_openpose_json(tmp_path / "out", "ski_000000000003", people)
    assert path == tmp_path / "out" / "ski_000000000003_keypoints.json"
    assert path.read_bytes() == oj.openpose_json(people).encode("ascii")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]      # no temporary left


# --- COCO JSON ---------------------------------------------------------------------------------

@pytest.mark.parametrize("skeleton", [COCO, BODY_25])
def test_coco_order_follows_part_names(skeleton):
    expected = tuple(skeleton.part_names.index(_openpose_name(n)) for n in COCO17_NAMES)
    assert cj.coco_order(skeleton) == expected
    # every part i at (i, 100 + i): the COCO keypoints are the named parts, v = 1
    person = _person(skeleton.part_count, {i: (i, 100 + i, 0.5) for i in range(skeleton.part_count)})
    (result,) = cj.coco_results("img_42", [person], skeleton)
    triples = [tuple(result["keypoints"][i:i + 3]) for i in range(0, 51, 3)]
    assert triples == [(float(i), float(100 + i), 1) for i in expected]


def test_coco_missing_parts_skip_and_score():
    neck_only = _person(18, {1: (5, 5, 0.9)}, score=3.0)         # no COCO part: skipped
    partial = _person(18, {0: (10.5, 20.25, 0.8), 2: (30, 40, 0.7)}, score=7.4)
    results = cj.coco_results("COCO_val2014_000000000192", [neck_only, partial], COCO)
    assert len(results) == 1
    result = results[0]
    assert result["image_id"] == 192 and result["category_id"] == 1
    assert result["keypoints"][:3] == [10.5, 20.25, 1]
    assert result["keypoints"][3:6] == [-1.0, -1.0, 0]                 # left eye missing
    assert result["keypoints"][18:21] == [30.0, 40.0, 1]               # right shoulder = part 2
    assert result["score"] == float(np.float32(7.4) / np.float32(18 + 19))


def test_coco_json_exact_text():
    person = _person(18, {0: (10.5, 20.25, 0.8)}, score=3.7)
    results = cj.coco_results(192, [person, person], COCO)
    missing = ",".join(["-1,-1,0"] * 16)
    entry = ('{\n\t\t"image_id":192,\n\t\t"category_id":1,\n\t\t"keypoints":[\n\t\t\t10.5,20.25,1,' + missing
             + '\n\t\t],\n\t\t"score":0.1\n\t}')
    assert cj.coco_json(results) == "[\n\t" + entry + ",\n\t" + entry + "\n]\n"
    assert cj.coco_json([]) == "[\n\t\n]\n"
    assert json.loads(cj.coco_json(results))[0]["keypoints"] == results[0]["keypoints"]


def test_coco_image_ids():
    assert cj.coco_image_id("COCO_val2014_000000000192") == 192
    assert cj.coco_image_id("frame_000000000012") == 12
    assert cj.coco_image_id(785) == 785
    with pytest.raises(InputMediaError, match="ski"):
        cj.coco_image_id("ski")


def test_coco_rejects_mpi():
    with pytest.raises(PosebridgeError, match="MPI"):
        cj.coco_results(1, [], MPI)


def test_coco_writer_is_atomic(tmp_path):
    person = _person(25, {0: (1, 2, 0.5)}, score=2.0)
    path = tmp_path / "coco.json"
    with cj.CocoJsonWriter(path, BODY_25) as writer:
        writer.add("a_1", [person])
        assert not path.exists()
        writer.add("a_2", [person, person])
    assert [r["image_id"] for r in json.loads(path.read_text())] == [1, 2, 2]
    broken = tmp_path / "broken.json"
    with pytest.raises(RuntimeError):
        with cj.CocoJsonWriter(broken, BODY_25) as writer:
            writer.add("a_1", [person])
            raise RuntimeError("interrupted")
    assert not broken.exists()
    direct = cj.write_coco_json(tmp_path / "direct.json", [("a_1", [person])], BODY_25)
    assert direct.read_text() == cj.coco_json(cj.coco_results(1, [person], BODY_25))
