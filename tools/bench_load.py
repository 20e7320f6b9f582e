"""Benchmark: how fast and how lean reading a full-size caffemodel is.

Synthesises the COCO caffemodel (209 MB, He init) into a temporary folder, then, in a fresh
Python process per run (so each run starts cold in memory):

* ``read_weights`` wall time, and its peak memory: ``ru_maxrss`` after the read minus
  ``ru_maxrss`` after the imports (peak RSS over baseline), and tracemalloc's peak of traced
  allocations (numpy reports its buffers to tracemalloc; measured in a separate run, untimed);
* ``load_graph`` + ``match_weights`` wall time on the weights just read.

Prints medians over the runs and their ratio to the file size, against the targets of issue 2
(read under 3 s, peak memory under 2.5 times the file size). The file stays in the OS page
cache after being written, so the timings measure parsing, not the disk.

Usage: ``python -m posebridge.tools.bench_load [--prototxt P] [--runs 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 3.0
TARGET_MEMORY_RATIO = 2.5
DEFAULT_MODEL = "coco"
MB = 1e6

_CHILD_CODE = """
import json, resource, sys, time
mode, prototxt, caffemodel = sys.argv[1:4]
from posebridge.prototxt import load_graph, match_weights, read_weights
if mode == "tracemalloc":
    import tracemalloc
    tracemalloc.start()
    weights = read_weights(caffemodel)
    print(json.dumps({"traced_peak_bytes": tracemalloc.get_traced_memory()[1]}))
    sys.exit(0)
def hwm_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0
baseline_kib, baseline_hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm_kib()
start = time.perf_counter()
weights = read_weights(caffemodel)
read_s = time.perf_counter() - start
peak_kib, peak_hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, hwm_kib()
start = time.perf_counter()
graph = load_graph(prototxt)
matched = match_weights(graph, weights)
match_s = time.perf_counter() - start
print(json.dumps({"read_s": read_s, "rss_over_baseline_bytes": (peak_kib - baseline_kib) * 1024,
                  "vmhwm_over_baseline_bytes": (peak_hwm - baseline_hwm) * 1024, "baseline_bytes": baseline_kib * 1024,
                  "match_s": match_s, "layers": len(matched.blobs), "parameters": weights.total_parameters}))
"""


def _child(mode: str, prototxt: Path, caffemodel: Path) -> dict:
    """Run one measurement in a fresh interpreter; returns its JSON result."""
    done = subprocess.run([sys.executable, "-c", _CHILD_CODE, mode, str(prototxt), str(caffemodel)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_load: measurement run failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_SYNTH_CODE = """
import sys
from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import synthesize, write_caffemodel
graph = load_graph(sys.argv[1])
write_caffemodel(sys.argv[2], graph, synthesize(graph, seed=int(sys.argv[3]), init="he"))
"""


def synthesize_model(prototxt: Path, target: Path, seed: int = 0) -> float:
    """Write a He-initialised caffemodel for ``prototxt`` to ``target``; returns the seconds taken.

    It runs in its own process: a child inherits its parent's ``ru_maxrss`` high-water mark
    across exec, so the parent must never hold the synthesised blobs itself.
    """
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _SYNTH_CODE, str(prototxt), str(target), str(seed)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"bench_load: synthesising failed:\n{done.stderr}")
    return time.perf_counter() - start


def measure(prototxt: Path, caffemodel: Path, runs: int) -> dict:
    """Medians (and raw values) of ``runs`` timed runs and ``runs`` tracemalloc runs."""
    timed = [_child("timed", prototxt, caffemodel) for _ in range(runs)]
    traced = [_child("tracemalloc", prototxt, caffemodel) for _ in range(runs)]
    size = caffemodel.stat().st_size
    median = lambda key, rows: statistics.median(row[key] for row in rows)  # noqa: E731
    return {
        "file_bytes": size,
        "read_s": median("read_s", timed),
        "match_s": median("match_s", timed),
        "rss_over_baseline_bytes": median("rss_over_baseline_bytes", timed),
        "vmhwm_over_baseline_bytes": median("vmhwm_over_baseline_bytes", timed),
        "baseline_bytes": median("baseline_bytes", timed),
        "traced_peak_bytes": median("traced_peak_bytes", traced),
        "raw": {"timed": timed, "traced": traced},
        "layers": timed[0]["layers"],
        "parameters": timed[0]["parameters"],
    }


def format_table(result: dict, runs: int) -> str:
    """The results as a small text table with targets."""
    size = result["file_bytes"]
    rss, traced = result["rss_over_baseline_bytes"], result["traced_peak_bytes"]
    rows = [
        ("metric", f"median of {runs}", "target", "ok"),
        ("caffemodel size", f"{size / MB:.1f} MB", "", ""),
        ("read_weights time", f"{result['read_s']:.3f} s", f"< {TARGET_SECONDS:g} s",
         "yes" if result["read_s"] < TARGET_SECONDS else "NO"),
        ("peak RSS over baseline", f"{rss / MB:.1f} MB = {rss / size:.2f}x file",
         f"< {TARGET_MEMORY_RATIO:g}x", "yes" if rss / size < TARGET_MEMORY_RATIO else "NO"),
        ("(cross-check: VmHWM over baseline)", f"{result['vmhwm_over_baseline_bytes'] / MB:.1f} MB", "", ""),
        ("(baseline RSS after imports)", f"{result['baseline_bytes'] / MB:.1f} MB", "", ""),
        ("tracemalloc peak", f"{traced / MB:.1f} MB = {traced / size:.2f}x file",
         f"< {TARGET_MEMORY_RATIO:g}x", "yes" if traced / size < TARGET_MEMORY_RATIO else "NO"),
        ("load_graph + match_weights", f"{result['match_s']:.3f} s", "", ""),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"({result['layers']} layers with weights, {result['parameters']} parameters)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posebridge.tools.bench_load", description=__doc__.splitlines()[0])
    parser.add_argument("--prototxt", type=Path, help="net to synthesise (default: the official COCO prototxt)")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--keep", type=Path, help="folder to keep the synthesised caffemodel in")
    parser.add_argument("--json", action="store_true", help="also print the raw results as JSON")
    args = parser.parse_args(argv)

    prototxt = args.prototxt
    if prototxt is None:
        from posebridge.shared_data import OFFICIAL_PROTOTXTS, shared_path

        prototxt = shared_path(OFFICIAL_PROTOTXTS[DEFAULT_MODEL])
        if prototxt is None:
            print("bench_load: the official COCO prototxt is absent; pass --prototxt", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="posebridge-bench-") as scratch:
        folder = args.keep or Path(scratch)
        caffemodel = Path(folder) / f"{Path(prototxt).stem}.synth.caffemodel"
        synth_s = synthesize_model(prototxt, caffemodel)
        print(f"synthesised {caffemodel} ({caffemodel.stat().st_size / MB:.1f} MB) in {synth_s:.2f} s "
              f"from {prototxt}")
        result = measure(Path(prototxt), caffemodel, args.runs)
    print(format_table(result, args.runs))
    if args.json:
        print(json.dumps(result, indent=1))
    ok = result["read_s"] < TARGET_SECONDS and result["rss_over_baseline_bytes"] / result["file_bytes"] < TARGET_MEMORY_RATIO
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
