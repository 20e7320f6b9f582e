"""Skeleton tables: channel counts against the official prototxts, internal consistency."""

from __future__ import annotations

import re

import pytest

from posebridge.errors import PosebridgeError
from posebridge.runtime import skeletons
from posebridge.runtime.skeletons import BODY_25, COCO, FACE, HAND, MPI, MPI_4_LAYERS, SKELETONS, get_skeleton
from posebridge.shared_data import OFFICIAL_PROTOTXTS, shared_path

BODY_MODELS = {"coco": COCO, "mpi": MPI, "mpi_4_stages": MPI_4_LAYERS, "body_25": BODY_25}
SINGLE_PERSON_MODELS = {"hand": HAND, "face": FACE}


def _layers(text: str) -> list[dict]:
    """Minimal prototxt reading: name, type, bottoms, tops and num_output of each top-level layer."""
    text = re.sub(r"#[^\n]*", "", text)
    layers = []
    for match in re.finditer(r"\blayers?\s*\{", text):
        depth, index = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            index += 1
        body = text[match.end():index - 1]
        top_level = re.sub(r"\{[^{}]*\}", "", re.sub(r"\{[^{}]*\}", "", body))
        layers.append({
            "name": re.search(r'name:\s*"([^"]+)"', top_level).group(1),
            "type": re.search(r'type:\s*"?(\w+)"?', top_level).group(1),
            "bottoms": re.findall(r'bottom:\s*"([^"]+)"', top_level),
            "tops": re.findall(r'top:\s*"([^"]+)"', top_level),
            "num_output": [int(n) for n in re.findall(r"num_output:\s*(\d+)", body)],
        })
    return layers


def _output_channels(key: str) -> list[int]:
    """Channels of each input of the net's final Concat (or of the last conv when there is none)."""
    path = shared_path(OFFICIAL_PROTOTXTS[key])
    if path is None:
        pytest.skip(f"official prototxt {OFFICIAL_PROTOTXTS[key]} not in the shared folder")
    layers = _layers(path.read_text())
    producer = {}
    for layer in layers:
        if layer["type"] == "Convolution":
            for top in layer["tops"]:
                producer[top] = layer["num_output"][0]
    concats = [layer for layer in layers if layer["type"] == "Concat"]
    if concats and "net_output" in concats[-1]["tops"]:
        return [producer[bottom] for bottom in concats[-1]["bottoms"]]
    last_conv = [layer for layer in layers if layer["type"] == "Convolution"][-1]
    return [last_conv["num_output"][0]]


@pytest.mark.parametrize("key", sorted(BODY_MODELS))
def test_body_channel_counts_match_prototxt(key):
    heatmaps, pafs = _output_channels(key)
    skeleton = BODY_MODELS[key]
    assert (skeleton.heatmap_count, skeleton.paf_count) == (heatmaps, pafs)
    assert skeleton.channel_count == heatmaps + pafs


def test_expected_totals():
    assert (COCO.heatmap_count, COCO.paf_count) == (19, 38)
    assert (MPI.heatmap_count, MPI.paf_count) == (16, 28)
    assert (BODY_25.heatmap_count, BODY_25.paf_count) == (26, 52)


@pytest.mark.parametrize("key", sorted(SINGLE_PERSON_MODELS))
def test_hand_face_channel_counts_match_prototxt(key):
    (channels,) = _output_channels(key)
    skeleton = SINGLE_PERSON_MODELS[key]
    assert skeleton.heatmap_count == channels
    assert skeleton.paf_count == 0


@pytest.mark.parametrize("skeleton", list(SKELETONS.values()), ids=list(SKELETONS))
def test_tables_are_consistent(skeleton):
    assert len(set(skeleton.part_names)) == skeleton.part_count
    assert len(skeleton.colors) == skeleton.part_count
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in skeleton.colors)
    channels = sorted(c for pair in skeleton.paf_channels for c in pair)
    assert channels == list(range(skeleton.paf_count))
    for a, b in (*skeleton.limbs, *skeleton.render_limbs):
        assert a != b and 0 <= a < skeleton.part_count and 0 <= b < skeleton.part_count
    assert len(set(skeleton.limbs)) == len(skeleton.limbs)


@pytest.mark.parametrize("skeleton", [COCO, MPI, BODY_25], ids=["COCO", "MPI", "BODY_25"])
def test_body_limbs_connect_every_part(skeleton):
    seen = {skeleton.limbs[0][0]}
    for a, b in skeleton.limbs:
        seen |= {a, b}
    assert seen == set(range(skeleton.part_count))
    # Render pairs are the connection pairs less the redundant ear-shoulder ones.
    assert set(skeleton.render_limbs) <= set(skeleton.limbs)


def test_known_entries():
    # A few spot checks against poseParameters.cpp / poseParametersRender.hpp.
    assert COCO.limbs[0] == (1, 2) and COCO.paf_channels[0] == (12, 13)
    assert COCO.limbs[-2:] == ((2, 16), (5, 17)) and COCO.paf_channels[-1] == (26, 27)
    assert BODY_25.limbs[0] == (1, 8) and BODY_25.paf_channels[0] == (0, 1)
    assert BODY_25.limbs[-1] == (11, 24) and BODY_25.paf_channels[-1] == (50, 51)
    assert MPI.limbs[7] == (1, 14) and MPI.paf_channels == tuple((2 * i, 2 * i + 1) for i in range(14))
    assert COCO.part_names[14:] == ("REye", "LEye", "REar", "LEar")
    assert BODY_25.part_names[8] == "MidHip" and BODY_25.part_names[24] == "RHeel"
    assert MPI.part_names[14] == "Chest"
    assert COCO.colors[0] == (255, 0, 85) and BODY_25.colors[8] == (255, 0, 0) and MPI.colors[7] == (43, 255, 0)
    assert len(COCO.render_limbs) == 17 and len(BODY_25.render_limbs) == 24 and len(MPI.render_limbs) == 14
    assert HAND.part_count == 21 and len(HAND.render_limbs) == 20 and HAND.colors[0] == (179, 0, 0)
    assert FACE.part_count == 70 and len(FACE.render_limbs) == 63


def test_defaults_follow_openpose():
    for skeleton in (COCO, BODY_25):
        d = skeleton.defaults
        assert (d.nms_threshold, d.inter_threshold, d.inter_min_above_threshold) == (0.05, 0.05, 0.95)
        assert (d.min_subset_cnt, d.min_subset_score, d.max_peaks) == (3, 0.4, 127)
    assert (MPI.defaults.nms_threshold, MPI.defaults.inter_threshold) == (0.6, 0.01)
    assert MPI_4_LAYERS.defaults.nms_threshold == 0.3
    assert skeletons.POSE_MAX_PEOPLE == 127


def test_get_skeleton():
    assert get_skeleton("coco") is COCO
    assert get_skeleton("BODY_25") is BODY_25
    assert COCO.part_index("LEar") == 17
    with pytest.raises(PosebridgeError, match="unknown skeleton"):
        get_skeleton("body_135")
    with pytest.raises(PosebridgeError, match="no part named"):
        COCO.part_index("MidHip")


def test_frozen_and_validated():
    with pytest.raises(AttributeError):
        COCO.name = "x"  # type: ignore[misc]
    with pytest.raises(PosebridgeError):
        skeletons.Skeleton("bad", ("a", "b"), ((0, 1),), ((0, 2),), (), ((0, 0, 0), (0, 0, 0)))
    with pytest.raises(PosebridgeError):
        skeletons.Skeleton("bad", ("a", "b"), ((0, 5),), ((0, 1),), (), ((0, 0, 0), (0, 0, 0)))
