"""Benchmark of OpenPose's post-processing: x8 cubic upsampling, NMS peaks, CPU connector.

Scenes are synthetic (runtime/scenes.py): a crowd of standing people rendered at stride 8 for
a 368x656 net input, upsampled once; peaks and assembly then run on the upsampled maps.

    python -m posebridge.tools.bench_postprocess [--repeats 50] [--people 1 5 20]
        [--skeletons COCO BODY_25 MPI] [--size 368 656] [--threads N] [--clock wall|cpu]

Prints one row per skeleton and crowd size: median and best milliseconds of each stage and of
peaks + assembly together (each stage timed on its own, then the pair timed end to end).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from posebridge.runtime import scenes
from posebridge.runtime.assembler import assemble
from posebridge.runtime.peaks import find_peaks
from posebridge.runtime.skeletons import get_skeleton
from posebridge.runtime.upsample import upsample_net_output


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def _times_ms(function: Callable[[], object], repeats: int, clock: Callable[[], float]) -> list[float]:
    function()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        start = clock()
        function()
        times.append((clock() - start) * 1e3)
    return times


def bench_case(skeleton_name: str, people_count: int, size: tuple[int, int], repeats: int,
               clock: str = "wall") -> dict[str, object]:
    """Timings (ms lists) of one scene: upsample, peaks, assembly, peaks + assembly."""
    skeleton = get_skeleton(skeleton_name)
    people = scenes.crowd(skeleton, people_count, size)
    net = scenes.render_net_output(people, skeleton, size)
    maps = upsample_net_output(net)[0]
    reused = np.empty((1, *maps.shape), np.float32)  # OpenPose keeps its resized blob between frames
    part_maps = np.ascontiguousarray(maps[: skeleton.part_count])
    pafs = np.ascontiguousarray(maps[skeleton.heatmap_count:])
    threshold = skeleton.defaults.nms_threshold
    peaks = find_peaks(part_maps, threshold)
    found = assemble(peaks, pafs, skeleton)
    ticks = CLOCKS[clock]
    return {
        "skeleton": skeleton.name,
        "people": people_count,
        "found": len(found),
        "upsample": _times_ms(lambda: upsample_net_output(net, out=reused), repeats, ticks),
        "peaks": _times_ms(lambda: find_peaks(part_maps, threshold), repeats, ticks),
        "assembly": _times_ms(lambda: assemble(peaks, pafs, skeleton), repeats, ticks),
        "peaks+assembly": _times_ms(lambda: assemble(find_peaks(part_maps, threshold), pafs, skeleton), repeats, ticks),
    }


STAGES = ("upsample", "peaks", "assembly", "peaks+assembly")


def format_table(rows: Sequence[dict[str, object]]) -> str:
    """A text table: per stage 'median (best)' in ms."""
    header = f"{'skeleton':8s} {'people':>6s} {'found':>5s} " + " ".join(f"{s:>18s}" for s in STAGES)
    lines = [header, "-" * len(header)]
    for row in rows:
        cells = []
        for stage in STAGES:
            times = row[stage]
            cells.append(f"{statistics.median(times):8.2f} ({min(times):6.2f})")
        lines.append(f"{row['skeleton']:8s} {row['people']:6d} {row['found']:5d} " + " ".join(f"{c:>18s}" for c in cells))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posebridge.tools.bench_postprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per stage (default 50)")
    parser.add_argument("--people", type=int, nargs="+", default=[1, 5, 20], help="crowd sizes (default 1 5 20)")
    parser.add_argument("--skeletons", nargs="+", default=["COCO", "BODY_25", "MPI"])
    parser.add_argument("--size", type=int, nargs=2, default=[368, 656], metavar=("H", "W"),
                        help="net input size, multiples of 8 (default 368 656)")
    parser.add_argument("--threads", type=int, default=None, help="OpenCV threads (default: OpenCV's choice)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall time, or CPU time of the process (all threads; less sensitive to other load)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    rows = [bench_case(name, count, tuple(args.size), args.repeats, args.clock)
            for name in args.skeletons for count in args.people]
    print(f"post-processing at {args.size[0]}x{args.size[1]}, {args.repeats} runs, OpenCV threads "
          f"{cv2.getNumThreads()}, {args.clock} clock; ms: median (best)")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
