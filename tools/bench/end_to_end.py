"""End to end: images per second on a folder of images, frames per second on a video file.

The path is ``posebridge run``'s (:func:`posebridge.runtime.streaming.stream_poses` over
:func:`posebridge.runtime.media.iter_media`), outputs not written, in its default overlap mode
(decoding in a background thread, assembly in a worker thread); the default backend's video
also runs in the other modes (decoding only beside the network; everything in one thread). Each backend first
runs one untimed image and one untimed batch of the video's batch size (oneDNN and onnxruntime
build their kernels per input shape on first use). CPU utilisation is
this process's CPU time (all threads) over wall time and cores; stage seconds are summed per
thread, so with overlap they may add up to more than the wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from posebridge.tools.bench.timing import CpuSample, cpu_utilisation


def _run(estimator, inputs: Sequence[Path], batch_size: int, overlap: str, cores: int) -> dict:
    from posebridge.runtime.media import iter_media
    from posebridge.runtime.streaming import StageTimes, stream_poses

    times = StageTimes()
    people = 0
    start = CpuSample.now()
    for _, _, result in stream_poses(estimator, iter_media([str(p) for p in inputs]), batch_size=batch_size,
                                     overlap=overlap, times=times):
        people += len(result.people)
    usage = cpu_utilisation(start, CpuSample.now(), cores)
    frames = times.frames
    return {"frames": frames, "per_second": frames / usage["wall_s"], "people_found": people,
            "batch_size": batch_size, "overlap": overlap, **usage, **times.as_dict(),
            "people_share_of_wall": times.people / usage["wall_s"]}


def bench_end_to_end(backends: Mapping[str, object], folder: Path, video: Path, *, net_resolution: str,
                     video_batch: int, cores: int, sequential_for: Sequence[str] = (),
                     log: Callable[[str], None] = lambda line: None) -> list[dict]:
    """Rows per backend and input kind (folder, video; plus the other overlap modes for ``sequential_for``)."""
    from posebridge.runtime.media import read_image
    from posebridge.runtime.pipeline import PoseEstimator
    from posebridge.runtime.streaming import DEFAULT_OVERLAP, OVERLAP_MODES

    warm_image = read_image(sorted(folder.iterdir())[0])
    rows = []
    for name, backend in backends.items():
        estimator = PoseEstimator(backend, net_resolution=net_resolution)
        estimator(warm_image)
        if video_batch > 1:  # the video's batch shape too: its first call reorders weights, faults in buffers
            estimator.net_maps([warm_image] * video_batch)
        runs = [("folder", [folder], 1, DEFAULT_OVERLAP), ("video", [video], video_batch, DEFAULT_OVERLAP)]
        if name in sequential_for:
            runs.extend(("video", [video], video_batch, mode) for mode in OVERLAP_MODES if mode != DEFAULT_OVERLAP)
        for kind, inputs, batch, overlap in runs:
            row = {"backend": name, "input": kind, "net_resolution": net_resolution,
                   **_run(estimator, inputs, batch, overlap, cores)}
            rows.append(row)
            log(f"  {name:18s} {kind:6s} overlap {overlap:6s} "
                f"{row['per_second']:6.2f}/s  CPU {row['utilisation'] * 100:4.0f}% of {cores} cores  "
                f"assembly {row['people_share_of_wall'] * 100:4.1f}% of wall")
    return rows
