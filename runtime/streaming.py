"""Frames through the pipeline with decoding, the network and assembly overlapped.

:func:`stream_poses` runs the network on batches of same-size frames in the calling thread.
``overlap`` says what runs beside it:

* ``"full"`` (default): frames are read and decoded in a background thread, a bounded queue
  ahead of the network, and the people of batch k are assembled in a worker thread while the
  network runs batch k+1;
* ``"decode"``: only decoding runs beside the network; people are assembled in the calling
  thread after each batch;
* ``"none"``: everything in the calling thread, one stage after the other.

Decoding (OpenCV), the network (PyTorch, onnxruntime, OpenCV dnn) and most of the assembly
(numpy) release the GIL. On a 2-core machine the network alone keeps both cores busy (over
95 % CPU in every mode), so ``posebridge bench`` measures the three modes within run-to-run
noise of each other (about 10 %); overlap matters more where the network is faster than the
assembly (int8, crowded frames) or where there are spare cores.
Results come out in input order.
:class:`StageTimes` adds up the seconds spent in each stage (per thread, so with overlap they
sum to more than the wall time).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from posebridge.runtime.pipeline import PoseEstimator, PoseResult

#: Frames decoded ahead of the network (per batch slot).
PREFETCH_BATCHES = 2
OVERLAP_MODES = ("full", "decode", "none")
DEFAULT_OVERLAP = "full"
_DONE = object()


@dataclass
class StageTimes:
    """Seconds spent per stage (decode, network = preprocessing + forward + scale merge, people)."""

    decode: float = 0.0
    network: float = 0.0
    people: float = 0.0
    frames: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            setattr(self, stage, getattr(self, stage) + seconds)

    def as_dict(self) -> dict[str, float]:
        return {"decode_s": self.decode, "network_s": self.network, "people_s": self.people, "frames": self.frames}


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterable, depth: int, times: StageTimes | None = None) -> Iterator:
    """Iterate ``items`` in a daemon thread, at most ``depth`` ahead; its exceptions re-raised here."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                if times is not None:
                    times.add("decode", time.perf_counter() - started)
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as error:  # handed to the consumer, which raises it
            buffer.put(_Failure(error))
            return
        buffer.put(_DONE)

    worker = threading.Thread(target=produce, name="posebridge-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()


def batches(frames: Iterable[tuple[str, np.ndarray]], batch_size: int) -> Iterator[list[tuple[str, np.ndarray]]]:
    """Consecutive frames grouped up to ``batch_size``, a new group whenever the frame size changes."""
    batch: list[tuple[str, np.ndarray]] = []
    for name, frame in frames:
        if batch and (len(batch) >= batch_size or batch[0][1].shape != frame.shape):
            yield batch
            batch = []
        batch.append((name, frame))
    if batch:
        yield batch


def _people_of(estimator: PoseEstimator, batch, maps_list, times: StageTimes) -> list[tuple[str, np.ndarray, PoseResult]]:
    started = time.perf_counter()
    results = []
    for (name, image), (maps, scale, net_size) in zip(batch, maps_list):
        image_size = (image.shape[1], image.shape[0])
        people = estimator.people(maps, image_size, net_size)
        results.append((name, image, PoseResult(name=name, image_size=image_size, people=people,
                                                skeleton=estimator.skeleton,
                                                maps=maps if estimator.keep_maps else None, scale=scale)))
    times.add("people", time.perf_counter() - started)
    return results


def stream_poses(estimator: PoseEstimator, frames: Iterable[tuple[str, np.ndarray]], *, batch_size: int = 1,
                 overlap: str = DEFAULT_OVERLAP, times: StageTimes | None = None
                 ) -> Iterator[tuple[str, np.ndarray, PoseResult]]:
    """``(name, frame, result)`` for each frame, in order; ``overlap`` as in the module docstring."""
    if overlap not in OVERLAP_MODES:
        from posebridge.errors import PosebridgeError

        raise PosebridgeError(f"unknown overlap mode '{overlap}'; choose one of {', '.join(OVERLAP_MODES)}")
    times = times if times is not None else StageTimes()
    if overlap == "none":
        source = _timed(frames, times)
    else:
        source = prefetch(frames, PREFETCH_BATCHES * max(1, batch_size), times)
    if overlap != "full":
        for batch in batches(source, batch_size):
            yield from _run_batch(estimator, batch, times)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="posebridge-people") as pool:
        pending: Future | None = None
        for batch in batches(source, batch_size):
            started = time.perf_counter()
            maps_list = estimator.net_maps([image for _, image in batch])
            times.add("network", time.perf_counter() - started)
            times.frames += len(batch)
            future = pool.submit(_people_of, estimator, batch, maps_list, times)
            if pending is not None:
                yield from pending.result()
            pending = future
        if pending is not None:
            yield from pending.result()


def _timed(frames: Iterable, times: StageTimes) -> Iterator:
    """``frames`` with the time spent producing each one added to ``times.decode``."""
    iterator = iter(frames)
    while True:
        started = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            return
        times.add("decode", time.perf_counter() - started)
        yield item


def _run_batch(estimator: PoseEstimator, batch, times: StageTimes):
    started = time.perf_counter()
    maps_list = estimator.net_maps([image for _, image in batch])
    times.add("network", time.perf_counter() - started)
    times.frames += len(batch)
    yield from _people_of(estimator, batch, maps_list, times)
