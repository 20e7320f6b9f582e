"""Post-processing time (x8 cubic upsampling, NMS peaks, OpenPose's CPU connector) on scenes.

Uses :func:`posebridge.tools.bench_postprocess.bench_case`: a crowd of standing people rendered
as the ideal net output at the net input size, each stage timed on its own after a warm-up.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

STAGES = ("upsample", "peaks", "assembly", "peaks+assembly")


def bench_postprocess(skeletons: Sequence[str], people_counts: Sequence[int], size: tuple[int, int], repeats: int,
                      log: Callable[[str], None] = lambda line: None) -> list[dict]:
    """One row per skeleton and crowd size: median/min/max milliseconds per stage, and the total."""
    from posebridge.tools.bench_postprocess import bench_case

    rows = []
    for skeleton in skeletons:
        for count in people_counts:
            case = bench_case(skeleton, count, tuple(size), repeats)
            row = {"skeleton": case["skeleton"], "people": count, "found": case["found"],
                   "size": list(size), "repeats": repeats}
            for stage in STAGES:
                times = case[stage]
                row[stage] = {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}
            row["total_ms"] = row["upsample"]["median_ms"] + row["peaks+assembly"]["median_ms"]
            rows.append(row)
            log(f"  {row['skeleton']:8s} {count:3d} people (found {row['found']:3d}): "
                f"{row['total_ms']:7.1f} ms (upsample {row['upsample']['median_ms']:.1f}, "
                f"peaks+assembly {row['peaks+assembly']['median_ms']:.1f})")
    return rows
