"""OpenPose's CPU skeleton rendering (sizes, colours, order), overlays, saving."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime import render
from posebridge.runtime.people import Person
from posebridge.runtime.skeletons import COCO, FACE

GRAY = 128
# COCO colours (RGB, OpenPose's POSE_COCO_COLORS_RENDER) as BGR, by part
NOSE_BGR = (85, 0, 255)
NECK_BGR = (0, 0, 255)
RSHOULDER_BGR = (0, 85, 255)
RELBOW_BGR = (0, 170, 255)


def _canvas(width: int = 640, height: int = 480) -> np.ndarray:
    return np.full((height, width, 3), GRAY, np.uint8)


def _person(points: dict[int, tuple[float, float, float]], parts: int = 18) -> Person:
    keypoints = np.zeros((parts, 3), np.float32)
    for index, row in points.items():
        keypoints[index] = row
    return Person(keypoints, 10.0, len(points))


# box x 200..500 (300 px), y 50..450 (400 px); LElbow (6) is under the 0.05 render threshold
SAMPLE = {0: (320, 50, 0.9), 1: (320, 100, 0.8), 2: (200, 100, 0.7), 3: (200, 250, 0.6),
          4: (200, 450, 0.5), 5: (500, 100, 0.9), 6: (460, 250, 0.04)}


def test_person_sizes_hand_computed():
    keypoints = _person(SAMPLE).keypoints
    # ratioAreas = max(300/640, 400/480) = 0.8333; sqrt(640*480) = 554.256; * (1/75) * 0.8333 = 6.158
    # -> thicknessRatio 6, circle thickness 6, line intRound(6*0.75 = 4.5) = 5, radius 6/2 = 3
    assert render.person_sizes(keypoints, (640, 480), render.POSE_STYLE) == render.PersonSizes(6, 6, 5, 3)
    # twice the image and the person: sqrt(1280*960) * (1/75) * 0.8333 = 12.32 -> 12; line 9; radius 6
    doubled = keypoints.copy()
    doubled[:, :2] *= 2
    assert render.person_sizes(doubled, (1280, 960), render.POSE_STYLE) == render.PersonSizes(12, 12, 9, 6)
    # small person 20x20: ratio max(20/640, 20/480) = 0.0417 <= 0.05 -> thickness ratio floor 2,
    # circles 1 px thick, line intRound(1.5) = 2, radius 1
    small = _person({0: (10, 10, 0.9), 1: (30, 30, 0.9)}).keypoints
    assert render.person_sizes(small, (640, 480), render.POSE_STYLE) == render.PersonSizes(2, 1, 2, 1)
    # hands use 1/50: sqrt(307200) / 50 * 0.8333 = 9.24 -> 9, line intRound(6.75) = 7
    assert render.person_sizes(keypoints, (640, 480), render.HAND_STYLE) == render.PersonSizes(9, 9, 7, 4)


def test_person_box_uses_parts_above_point_one():
    keypoints = _person({0: (10, 20, 0.5), 1: (40, 60, 0.1), 2: (30, 80, 0.11)}).keypoints
    assert render.person_box(keypoints) == (10.0, 20.0, 20.0, 60.0)
    assert render.person_box(np.zeros((18, 3), np.float32)) == (0.0, 0.0, 0.0, 0.0)


def test_render_matches_openpose_drawing_order_and_sizes():
    image = _canvas()
    out = render.render_pose(image, [_person(SAMPLE)], COCO)
    assert np.array_equal(image, _canvas())                       # input untouched
    expected = _canvas()
    # lines in POSE_COCO_PAIRS_RENDER order, colour of the second part, thickness 5
    colors = [tuple(int(c) for c in rgb[::-1]) for rgb in COCO.colors]
    for a, b in [(1, 2), (1, 5), (2, 3), (3, 4), (1, 0)]:
        cv2.line(expected, SAMPLE[a][:2], SAMPLE[b][:2], colors[b], 5, cv2.LINE_8)
    # then circles: radius 3, thickness 6, parts 0..5 (part 6 is under the threshold)
    for part in range(6):
        cv2.circle(expected, SAMPLE[part][:2], 3, colors[part], 6, cv2.LINE_8)
    assert np.array_equal(out, expected)


def test_pixel_colours_at_known_keypoints():
    out = render.render_pose(_canvas(), [_person(SAMPLE)], COCO)
    assert tuple(out[50, 320]) == NOSE_BGR                         # circle at the nose
    assert tuple(out[100, 320]) == NECK_BGR                        # neck circle drawn over the lines
    assert tuple(out[100, 260]) == RSHOULDER_BGR                   # neck -> right shoulder line
    assert tuple(out[175, 200]) == RELBOW_BGR                      # right shoulder -> right elbow
    assert tuple(out[175, 480]) == (GRAY,) * 3                     # no line to the low-score elbow
    assert tuple(out[250, 460]) == (GRAY,) * 3                     # no circle there either
    assert tuple(out[20, 600]) == (GRAY,) * 3


def test_threshold_and_degenerate_people():
    low = {k: (x, y, 0.04) for k, (x, y, _) in SAMPLE.items()}
    assert np.array_equal(render.render_pose(_canvas(), [_person(low)], COCO), _canvas())
    # 0.04 is drawn once the threshold is lowered (box needs scores > 0.1, so raise those a bit)
    low_drawn = {k: (x, y, 0.2) for k, (x, y, _) in SAMPLE.items()}
    assert not np.array_equal(render.render_pose(_canvas(), [_person(low_drawn)], COCO, threshold=0.15), _canvas())
    # a single part has a zero-area box: OpenPose draws nothing for that person
    single = _person({0: (100, 100, 0.9)})
    assert np.array_equal(render.render_pose(_canvas(), [single], COCO), _canvas())
    assert np.array_equal(render.render_pose(_canvas(), [], COCO), _canvas())


def test_array_input_equals_person_input():
    person = _person(SAMPLE)
    by_array = render.render_pose(_canvas(), person.keypoints[np.newaxis], COCO)
    assert np.array_equal(by_array, render.render_pose(_canvas(), [person], COCO))
    with pytest.raises(ShapeError):
        render.render_pose(_canvas(), np.zeros((1, 25, 3), np.float32), COCO)
    with pytest.raises(ShapeError):
        render.render_pose(np.zeros((10, 10), np.uint8), [person], COCO)


def test_alpha_blending_and_black_background():
    out = render.render_pose(_canvas(), [_person(SAMPLE)], COCO, alpha=0.6)
    # 0.6 * (0, 85, 255) + 0.4 * 128 = (51.2, 102.2, 204.2)
    assert tuple(out[100, 260]) == (51, 102, 204)
    assert tuple(out[20, 600]) == (GRAY,) * 3
    black = render.render_pose(_canvas(), [_person(SAMPLE)], COCO, blend_original=False)
    assert tuple(black[20, 600]) == (0, 0, 0) and tuple(black[100, 260]) == RSHOULDER_BGR


def test_face_points_drawn_white_above_face_threshold():
    body = _person(SAMPLE)
    face = np.zeros((1, 70, 3), np.float32)
    face[0, :, 0] = np.linspace(300, 400, 70)
    face[0, :, 1] = np.linspace(300, 330, 70)
    face[0, :, 2] = 0.9
    face[0, 69] = (600, 400, 0.3)                      # under FACE_STYLE.threshold 0.4
    out = render.render_pose(_canvas(), [body], COCO, face=face)
    assert tuple(out[300, 300]) == (255, 255, 255)
    assert tuple(out[400, 600]) == (GRAY,) * 3
    assert FACE.part_count == 70


def test_heatmap_overlay():
    image = _canvas(64, 48)
    heat = np.zeros((48, 64), np.float32)
    heat[20:28, 30:40] = 1.0
    out = render.render_heatmap(image, heat)
    blue, _, red = (int(v) for v in out[24, 35])
    assert red > blue                                   # high values are red
    blue, _, red = (int(v) for v in out[5, 5])
    assert blue > red                                   # zeros are blue
    stacked = render.render_heatmap(image, np.stack([heat * 0.1, heat]))   # combined by maximum
    assert np.array_equal(stacked, out)
    with pytest.raises(ShapeError):
        render.render_heatmap(image, np.zeros((10, 10), np.float32))


def test_paf_colours_follow_direction_and_magnitude():
    vx = np.array([[1.0, 0.0, -1.0, 0.0, 0.5]], np.float32)
    vy = np.array([[0.0, 1.0, 0.0, 0.0, 0.0]], np.float32)
    colors = render.paf_colors(vx, vy)[0]
    assert tuple(colors[0]) == (0, 0, 255)              # +x: red
    assert colors[1][0] == 0 and colors[1][1] == 255    # +y: 90 degrees, yellow-green
    assert tuple(colors[2]) == (255, 255, 0)            # -x: 180 degrees, cyan
    assert tuple(colors[3]) == (0, 0, 0)                # no vector: black
    assert tuple(colors[4]) == (0, 0, 128)              # half length: half brightness


def test_render_pafs_by_skeleton():
    image = _canvas(32, 24)
    pafs = np.zeros((COCO.paf_count, 24, 32), np.float32)
    cx, cy = COCO.paf_channels[3]
    pafs[cx] = 1.0
    single = render.render_pafs(image, np.stack([pafs[cx], pafs[cy]]))
    assert np.array_equal(render.render_pafs(image, pafs, COCO), single)
    assert np.array_equal(render.render_pafs(image, pafs, COCO, limb=3), single)
    assert not np.array_equal(render.render_pafs(image, pafs, COCO, limb=4), single)
    with pytest.raises(ShapeError):
        render.render_pafs(image, pafs[:10], COCO)


def test_save_png_and_jpeg(tmp_path):
    image = render.render_pose(_canvas(), [_person(SAMPLE)], COCO)
    png = render.save_image(tmp_path / render.rendered_file_name("ski"), image)
    assert png.name == "ski_rendered.png"
    assert np.array_equal(cv2.imread(str(png)), image)
    jpg = render.save_image(tmp_path / render.rendered_file_name("ski", "jpg"), image)
    decoded = cv2.imread(str(jpg))
    assert decoded.shape == image.shape and np.abs(decoded.astype(int) - image).mean() < 2   # quality 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ski_rendered.jpg", "ski_rendered.png"]
    with pytest.raises(PosebridgeError):
        render.save_image(tmp_path / "noext", image)
    with pytest.raises(PosebridgeError, match="xyz"):
        render.save_image(tmp_path / "bad.xyz", image)
    assert not (tmp_path / "bad.xyz").exists()
