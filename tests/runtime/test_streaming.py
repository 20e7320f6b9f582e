"""Frames through the pipeline: the same people in the same order whatever runs beside the network."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest

from posebridge.converter.model_family import ModelFamily
from posebridge.errors import InputMediaError, PosebridgeError
from posebridge.runtime.pipeline import PoseEstimator
from posebridge.runtime.scenes import render_net_output, standing_person
from posebridge.runtime.skeletons import get_skeleton
from posebridge.runtime.streaming import OVERLAP_MODES, StageTimes, batches, prefetch, stream_poses

COCO = get_skeleton("COCO")


@dataclass
class ShiftingSceneBackend:
    """An ideal net whose one person stands where the frame's mean brightness says (frames differ)."""

    name: str = "scene"
    family: ModelFamily = field(default_factory=lambda: ModelFamily("COCO", "test", "COCO", None, 6, (0, 19), (19, 57)))
    calls: list = field(default_factory=list)
    threads: set = field(default_factory=set)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        self.threads.add(threading.get_ident())
        height, width = batch.shape[2:]
        outputs = []
        for image in batch:
            offset = float(image.mean() + 0.5) * width * 0.3
            person = standing_person(COCO, (width * 0.35 + offset, height * 0.55), height * 0.7)
            outputs.append(render_net_output([person], COCO, (height, width))[0])
        return np.stack(outputs)


def _frames(sizes):
    for index, (w, h) in enumerate(sizes):
        yield f"f{index}", np.full((h, w, 3), 20 + 25 * index, np.uint8)


SIZES = [(128, 96)] * 3 + [(96, 128)] * 2 + [(128, 96)]


def _run(mode, batch_size):
    backend = ShiftingSceneBackend()
    estimator = PoseEstimator(backend, net_resolution="-1x96")
    times = StageTimes()
    results = list(stream_poses(estimator, _frames(SIZES), batch_size=batch_size, overlap=mode, times=times))
    return backend, results, times


@pytest.mark.parametrize("mode", OVERLAP_MODES)
def test_every_mode_gives_the_same_people_in_input_order(mode):
    _, reference, _ = _run("none", 1)
    backend, results, times = _run(mode, 2)
    assert [name for name, _, _ in results] == [f"f{i}" for i in range(len(SIZES))]
    assert times.frames == len(SIZES) and times.network > 0 and times.people > 0
    for (_, image, result), (_, _, expected) in zip(results, reference):
        assert result.image_size == (image.shape[1], image.shape[0])
        assert len(result.people) == len(expected.people) == 1
        np.testing.assert_array_equal(result.people[0].keypoints, expected.people[0].keypoints)
    # frames of one size go together, up to the batch size; a size change starts a new batch
    assert [shape[0] for shape in backend.calls] == [2, 1, 2, 1]


def test_batches_split_on_size_changes_and_batch_size():
    frames = [(str(i), np.zeros(shape, np.uint8)) for i, shape in enumerate([(4, 4, 3)] * 3 + [(5, 4, 3)] + [(4, 4, 3)])]
    assert [[name for name, _ in b] for b in batches(frames, 2)] == [["0", "1"], ["2"], ["3"], ["4"]]


def test_prefetch_hands_the_producers_error_to_the_consumer():
    def produce():
        yield 1
        yield 2
        raise InputMediaError("broken frame", file="clip.mp4")

    seen = []
    with pytest.raises(InputMediaError, match="broken frame"):
        for item in prefetch(produce(), depth=1):
            seen.append(item)
    assert seen == [1, 2]


def test_prefetch_stops_its_thread_when_the_consumer_stops_early():
    produced = []

    def endless():
        index = 0
        while True:
            produced.append(index)
            yield index
            index += 1

    iterator = prefetch(endless(), depth=2)
    assert next(iterator) == 0
    iterator.close()
    count = len(produced)
    threading.Event().wait(0.3)
    assert len(produced) <= count + 3  # at most what was in flight


def test_unknown_overlap_mode_is_refused():
    estimator = PoseEstimator(ShiftingSceneBackend(), net_resolution="-1x96")
    with pytest.raises(PosebridgeError, match="overlap"):
        list(stream_poses(estimator, _frames(SIZES[:1]), overlap="sideways"))
