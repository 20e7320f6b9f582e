"""OpenPose's CPU connector: against a loop-by-loop transcription, and on ground-truth scenes
(several people, crossing limbs, truncation, missing parts, people too small to keep) for COCO,
MPI and BODY_25, both at full resolution and through the x8 downsample + cubic upsample path."""

from __future__ import annotations

import numpy as np
import pytest

from helpers_connector import expected_groups, reference_connector, reference_score_ab
from posebridge.errors import PosebridgeError, ShapeError
from posebridge.runtime import scenes
from posebridge.runtime.assembler import assemble, connector_rules, score_limb
from posebridge.runtime.assembler_cvpr2017 import assemble_cvpr2017, find_peaks_cvpr2017, smooth
from posebridge.runtime.peaks import find_peaks
from posebridge.runtime.postprocess import people_from_maps, people_from_net_output
from posebridge.runtime.skeletons import BODY_25, COCO, MPI, Skeleton
from posebridge.runtime.upsample import upsample_net_output

BODIES = [COCO, MPI, BODY_25]
IDS = ["COCO", "MPI", "BODY_25"]
IMAGE = (368, 656)


def _maps(people, skeleton, image_size, stride):
    """Maps at image resolution: rendered there (stride 1) or at stride 8 and upsampled x8."""
    if stride == 1:
        return scenes.render_maps(people, skeleton, image_size)
    up = upsample_net_output(scenes.render_net_output(people, skeleton, image_size))[0]
    return up[: skeleton.heatmap_count], up[skeleton.heatmap_count:]


def _set(person: scenes.ScenePerson, skeleton: Skeleton, **points) -> None:
    for name, (x, y) in points.items():
        person.keypoints[skeleton.part_index(name)] = (x, y, 1.0)


def scene_interactions(skeleton: Skeleton) -> list[scenes.ScenePerson]:
    """A standing person, two people whose left forearms cross, a person cut by the bottom edge."""
    first = scenes.standing_person(skeleton, (90, 180), 260)
    left = scenes.standing_person(skeleton, (260, 180), 260)
    right = scenes.standing_person(skeleton, (370, 180), 260)
    _set(left, skeleton, LElbow=(310, 150), LWrist=(410, 200))
    _set(right, skeleton, LElbow=(420, 150), LWrist=(330, 210))  # crosses the other LElbow-LWrist
    truncated = scenes.standing_person(skeleton, (530, 392), 300)  # hips, wrists, legs below the image
    return [first, left, right, truncated]


def scene_small_and_missing(skeleton: Skeleton) -> list[scenes.ScenePerson]:
    """A person with missing parts, one with two parts, a faint one, a lone leg (BODY_25: feet)."""
    missing = ("LWrist", "REye", "RKnee") if "REye" in skeleton.part_names else ("LWrist", "Head", "RKnee")
    people = [scenes.standing_person(skeleton, (100, 180), 260, missing=missing)]
    pair = ("Neck", "Nose") if "Nose" in skeleton.part_names else ("Neck", "Head")
    people.append(scenes.standing_person(skeleton, (300, 120), 200,
                                         missing=[n for n in skeleton.part_names if n not in pair]))
    people.append(scenes.standing_person(skeleton, (450, 180), 260, amplitude=0.1))
    leg = {"RKnee", "RAnkle", "RBigToe", "RSmallToe", "RHeel"}
    people.append(scenes.standing_person(skeleton, (580, 150), 200,
                                         missing=[n for n in skeleton.part_names if n not in leg]))
    return people


def _expected(people, skeleton, image_size):
    rules = connector_rules(skeleton)
    height, width = image_size
    expected = []
    for person in people:
        if person.amplitude < 0.5:
            continue  # its mean score is under min_subset_score (or its peaks under MPI's NMS threshold)
        kp = person.keypoints
        present = (kp[:, 2] > 0) & (kp[:, 0] >= 0) & (kp[:, 0] < width) & (kp[:, 1] >= 0) & (kp[:, 1] < height)
        for group in expected_groups(present, skeleton, rules.completing_limbs, rules.uncounted_parts):
            expected.append({part: kp[part, :2] for part in group})
    return expected


def _assert_recovered(found, expected, tolerance=1.0):
    assert len(found) == len(expected), f"{len(found)} people found, {len(expected)} expected"
    unmatched = list(found)
    for want in expected:
        match = None
        for person in unmatched:
            parts = set(np.flatnonzero(person.keypoints[:, 2] > 0))
            if parts == set(want) and all(np.abs(person.keypoints[p, :2] - xy).max() < tolerance for p, xy in want.items()):
                match = person
                break
        assert match is not None, f"no person with parts {sorted(want)} within {tolerance} px"
        unmatched = [person for person in unmatched if person is not match]


@pytest.mark.parametrize("stride", [1, 8], ids=["full", "x8"])
@pytest.mark.parametrize("skeleton", BODIES, ids=IDS)
@pytest.mark.parametrize("builder", [scene_interactions, scene_small_and_missing], ids=["interactions", "small"])
def test_ground_truth_scenes_come_back(builder, skeleton, stride):
    people = builder(skeleton)
    heatmaps, pafs = _maps(people, skeleton, IMAGE, stride)
    found = people_from_maps(heatmaps, pafs, skeleton)
    expected = _expected(people, skeleton, IMAGE)
    assert len(expected) >= (4 if builder is scene_interactions else 1)
    _assert_recovered(found, expected)


@pytest.mark.parametrize("skeleton", BODIES, ids=IDS)
def test_crowd_of_twenty_comes_back_whole(skeleton):
    people = scenes.crowd(skeleton, 20, IMAGE, seed=4)
    heatmaps, pafs = _maps(people, skeleton, IMAGE, 8)
    found = people_from_maps(heatmaps, pafs, skeleton)
    expected = [{p: person.keypoints[p, :2] for p in range(skeleton.part_count)} for person in people]
    _assert_recovered(found, expected)


def _noisy_scene(skeleton, rng, size=(184, 328), part_type_gone=False):
    """A crowd with jittered and missing parts, stray blobs and smooth noise, at stride 8, upsampled."""
    count = int(rng.integers(2, 9))
    people = scenes.crowd(skeleton, count, size, margin=10, seed=int(rng.integers(1 << 30)))
    for person in people:
        person.keypoints[:, :2] += rng.normal(0, 3, (skeleton.part_count, 2))
        person.keypoints[rng.random(skeleton.part_count) < 0.15, 2] = 0
    strays = np.zeros((6, skeleton.part_count, 3))
    strays[:, :, 0] = rng.uniform(0, size[1], strays.shape[:2])
    strays[:, :, 1] = rng.uniform(0, size[0], strays.shape[:2])
    strays[:, :, 2] = rng.random(strays.shape[:2]) < 0.3
    gone = int(rng.integers(2, skeleton.part_count)) if part_type_gone else None
    if gone is not None:  # a part type nobody has: exercises the one-side-empty branch
        strays[:, gone, 2] = 0
        for person in people:
            person.keypoints[gone, 2] = 0
    people += [scenes.ScenePerson(kp, amplitude=float(rng.uniform(0.2, 0.8))) for kp in strays]
    net = scenes.render_net_output(people, skeleton, size)
    net += rng.normal(0, 0.02, net.shape).astype(np.float32)
    net[:, skeleton.heatmap_count:] += rng.normal(0, 0.1, net[:, skeleton.heatmap_count:].shape).astype(np.float32)
    if gone is not None:
        net[:, gone] = 0
    up = upsample_net_output(net)[0]
    return up[: skeleton.heatmap_count], up[skeleton.heatmap_count:]


@pytest.mark.parametrize("skeleton", BODIES, ids=IDS)
def test_same_people_as_the_reference_transcription(skeleton):
    rng = np.random.default_rng(11)
    for trial in range(4):
        heatmaps, pafs = _noisy_scene(skeleton, rng, part_type_gone=trial >= 1)
        options = dict(inter_threshold=skeleton.defaults.inter_threshold,
                       inter_min_above_threshold=skeleton.defaults.inter_min_above_threshold,
                       min_subset_cnt=3, min_subset_score=0.4)
        if trial == 2:  # one-part people come out too
            options.update(min_subset_cnt=1, min_subset_score=0.0)
        if trial == 3:
            options.update(inter_min_above_threshold=0.75, min_subset_cnt=2, min_subset_score=0.2)
        peaks = find_peaks(heatmaps[: skeleton.part_count], min(skeleton.defaults.nms_threshold, 0.3))
        assert max(len(p) for p in peaks) < 60
        got = assemble(peaks, pafs, skeleton, **options)
        want = reference_connector(peaks, pafs, skeleton, **options)
        assert len(got) == len(want) and len(want) > 0
        for person, (keypoints, score) in zip(got, want):
            np.testing.assert_array_equal(person.keypoints, keypoints)
            assert np.float32(person.score) == score


def test_limb_score_sample_count_and_kept_fraction():
    height, width = 40, 200
    for length, accepted in ((80, False), (100, True)):  # n = 20: 19/20 fails; n = 22: 21/22 passes
        n = max(5, min(25, int(np.sqrt(5 * length) + 0.5)))
        paf_x = np.ones((height, width), np.float32)
        paf_y = np.zeros((height, width), np.float32)
        a, b = (10.0, 20.0, 1.0), (10.0 + length, 20.0, 1.0)
        fail_x = int(10 + 3 * length / n + 0.5)
        paf_x[20, fail_x] = -1.0
        score = score_limb(np.array([a]), np.array([b]), paf_x, paf_y, inter_threshold=0.05,
                           inter_min_above_threshold=0.95)[0, 0]
        assert score == reference_score_ab(a, b, paf_x, paf_y, 0.05, 0.95)
        assert (score == np.float32(1.0)) == accepted
        if not accepted:
            assert score == 0


def test_limb_score_matches_reference_on_random_pairs():
    rng = np.random.default_rng(2)
    paf = rng.normal(0.3, 0.5, (2, 30, 50)).astype(np.float32)
    a = np.column_stack([rng.uniform(-3, 53, 40), rng.uniform(-3, 33, 40), np.ones(40)]).astype(np.float32)
    b = np.column_stack([rng.uniform(-3, 53, 30), rng.uniform(-3, 33, 30), np.ones(30)]).astype(np.float32)
    b[0, :2] = a[0, :2]  # coincident peaks score 0
    for threshold, fraction in ((0.05, 0.95), (-1.0, 0.5), (0.2, 0.1)):
        got = score_limb(a, b, paf[0], paf[1], inter_threshold=threshold, inter_min_above_threshold=fraction)
        want = np.array([[reference_score_ab(p, q, paf[0], paf[1], threshold, fraction) for q in b] for p in a])
        np.testing.assert_array_equal(got, want)
        assert got[0, 0] == 0


def test_feet_do_not_count_for_body_25_unless_maximize_positives():
    leg = {"RKnee", "RAnkle", "RBigToe", "RSmallToe", "RHeel"}
    person = scenes.standing_person(BODY_25, (100, 90), 150, missing=[n for n in BODY_25.part_names if n not in leg])
    heatmaps, pafs = scenes.render_maps([person], BODY_25, (184, 200))
    assert people_from_maps(heatmaps, pafs, BODY_25) == []  # counts knee and ankle only: 2 < 3
    (kept,) = people_from_maps(heatmaps, pafs, BODY_25, min_subset_cnt=2)
    assert kept.part_count == 5
    (kept,) = people_from_maps(heatmaps, pafs, BODY_25, maximize_positives=True, min_subset_cnt=3)
    assert kept.part_count == 5  # feet counted: 5 >= 3


def test_thresholds_are_named_parameters():
    people = [scenes.standing_person(COCO, (100, 90), 150, missing=[n for n in COCO.part_names
                                                                    if n not in ("Neck", "Nose")])]
    heatmaps, pafs = scenes.render_maps(people, COCO, (184, 200))
    assert people_from_maps(heatmaps, pafs, COCO) == []
    (pair,) = people_from_maps(heatmaps, pafs, COCO, min_subset_cnt=2)
    assert pair.part_count == 2
    assert people_from_maps(heatmaps, pafs, COCO, min_subset_cnt=2, inter_min_above_threshold=1.0) == []
    assert people_from_maps(heatmaps, pafs, COCO, min_subset_cnt=2, min_subset_score=2.0) == []
    assert people_from_maps(heatmaps, pafs, COCO, min_subset_cnt=2, nms_threshold=1.0) == []
    with pytest.raises(PosebridgeError, match="unknown option"):
        people_from_maps(heatmaps, pafs, COCO, min_subset_count=2)
    with pytest.raises(PosebridgeError, match="variant"):
        people_from_maps(heatmaps, pafs, COCO, variant="openpifpaf")


def test_max_people_keeps_the_first_ones():
    people = scenes.crowd(COCO, 5, (184, 328), margin=10)
    heatmaps, pafs = scenes.render_maps(people, COCO, (184, 328))
    every = people_from_maps(heatmaps, pafs, COCO)
    first = people_from_maps(heatmaps, pafs, COCO, max_people=3)
    assert len(every) == 5 and len(first) == 3
    for a, b in zip(first, every):
        np.testing.assert_array_equal(a.keypoints, b.keypoints)


def test_subset_score_sums_parts_and_limbs():
    person = scenes.standing_person(COCO, (100, 90), 150)
    heatmaps, pafs = scenes.render_maps([person], COCO, (184, 200))
    (found,) = people_from_maps(heatmaps, pafs, COCO)
    # 18 parts + 17 tree limbs (the ear-shoulder limbs only complete people), all scores near 1.
    assert found.part_count == 18
    assert 34 < found.score <= 35.01


def test_net_output_helper_scales_and_offsets_like_openpose():
    people = scenes.crowd(BODY_25, 3, (184, 328), margin=12)
    net = scenes.render_net_output(people, BODY_25, (184, 328))
    scale = 2.5
    found = people_from_net_output(net, BODY_25, scale_net_to_output=scale)
    expected = [{p: person.keypoints[p, :2] * scale + 0.5 for p in range(BODY_25.part_count)} for person in people]
    _assert_recovered(found, expected, tolerance=scale)
    with pytest.raises(ShapeError):
        people_from_net_output(net[:, :10], BODY_25)


def test_shape_errors():
    peaks = [np.zeros((0, 3), np.float32)] * COCO.part_count
    with pytest.raises(ShapeError):
        assemble(peaks[:5], np.zeros((38, 10, 10), np.float32), COCO)
    with pytest.raises(ShapeError):
        assemble(peaks, np.zeros((20, 10, 10), np.float32), COCO)
    assert assemble(peaks, np.zeros((38, 10, 10), np.float32), COCO) == []


# --- The CVPR 2017 demo's variant ------------------------------------------------------------

def test_cvpr2017_recovers_a_crowd():
    people = scenes.crowd(COCO, 6, IMAGE, seed=2)
    heatmaps, pafs = _maps(people, COCO, IMAGE, 8)
    found = people_from_maps(heatmaps, pafs, COCO, variant="cvpr2017")
    expected = [{p: person.keypoints[p, :2] for p in range(COCO.part_count)} for person in people]
    _assert_recovered(found, expected, tolerance=1.5)  # integer peaks of the smoothed map


def test_cvpr2017_needs_four_parts_where_openpose_needs_three():
    keep = ("Neck", "RShoulder", "RElbow")
    person = scenes.standing_person(COCO, (100, 90), 150, missing=[n for n in COCO.part_names if n not in keep])
    heatmaps, pafs = scenes.render_maps([person], COCO, (184, 200))
    assert len(people_from_maps(heatmaps, pafs, COCO)) == 1
    assert people_from_maps(heatmaps, pafs, COCO, variant="cvpr2017") == []
    assert len(people_from_maps(heatmaps, pafs, COCO, variant="cvpr2017", min_num=3)) == 1


def test_cvpr2017_distance_prior_rejects_long_weak_limbs():
    height, width = 60, 200
    pafs = np.zeros((COCO.paf_count, height, width), np.float32)
    pafs[COCO.paf_channels[0][0]] = 0.5  # neck -> right shoulder field, pointing +x, weak
    peaks = [np.zeros((0, 3), np.float32) for _ in range(COCO.part_count)]
    peaks[1] = np.array([[10, 30, 1.0]], np.float32)
    peaks[2] = np.array([[150, 30, 1.0]], np.float32)  # 140 px > image height: prior 0.5*60/140 - 1
    assert assemble_cvpr2017(peaks, pafs, COCO, min_num=2) == []
    assert len(assemble_cvpr2017(peaks, pafs, COCO, min_num=2, image_height=400)) == 1
    assert len(assemble(peaks, pafs, COCO, min_subset_cnt=2)) == 1  # OpenPose has no such prior


def test_cvpr2017_peaks():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    part_map = rng.random((30, 40)).astype(np.float32)
    np.testing.assert_allclose(smooth(part_map), scipy_ndimage.gaussian_filter(part_map.astype(np.float64), 3),
                               atol=1e-9)
    maps = np.zeros((1, 40, 40), np.float32)
    maps[0, 20, 10] = maps[0, 20, 11] = 5.0  # a plateau: both pixels are peaks (>= test)
    maps[0, 0, 30] = 5.0                      # the border counts against 0
    got = find_peaks_cvpr2017(maps)[0]
    np.testing.assert_array_equal(got[:, :2], [[30, 0], [10, 20], [11, 20]])
    np.testing.assert_array_equal(got[:, 2], [5.0, 5.0, 5.0])


def test_benchmark_tool_runs_a_small_case():
    from posebridge.tools import bench_postprocess

    row = bench_postprocess.bench_case("COCO", 2, (96, 160), repeats=1)
    assert row["found"] == 2
    table = bench_postprocess.format_table([row])
    assert "COCO" in table and "peaks+assembly" in table
