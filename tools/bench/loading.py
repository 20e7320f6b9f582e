"""Loading: reading the caffemodel, and getting from files to a ready network, side by side.

Each measurement runs in a fresh Python process (so its peak resident memory is its own, and
nothing is cached in the interpreter); the file itself is in the OS page cache, so the figures
are parsing and building, not disk. Peak memory is the process's high-water mark (VmHWM,
``ru_maxrss`` where /proc is absent) over the baseline after the imports.

* ``read``: :func:`posebridge.tools.bench_load.measure` (``read_weights`` time and peak, and
  ``load_graph`` + ``match_weights``).
* ``ready``: per way of running the net, files -> a net that can run a forward: posebridge torch
  (load_graph + load_weights + CaffeNet + tune, with its self-check), posebridge torch without
  tuning, posebridge ncnn (CaffeNet written for ncnn, loaded there and self-checked), OpenCV
  dnn's ``readNetFromCaffe``, and an onnxruntime session on the fp32 export.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from posebridge.tools.bench.models import NetFiles

_CHILD = r"""
import json, resource, sys, time
mode, prototxt, caffemodel, onnx_path = sys.argv[1:5]
import cv2, numpy, torch, onnxruntime
def hwm():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
from posebridge.converter.network import CaffeNet
from posebridge.prototxt.loader import load_graph, load_weights
from posebridge.runtime.tuned_torch import tune
baseline = hwm()
phases = {}
start = time.perf_counter()
if mode in ("posebridge-torch", "posebridge-torch-untuned", "posebridge-ncnn"):
    graph = load_graph(prototxt); phases["load_graph_s"] = time.perf_counter() - start
    mark = time.perf_counter(); weights = load_weights(graph, caffemodel); phases["load_weights_s"] = time.perf_counter() - mark
    mark = time.perf_counter(); net = CaffeNet(graph, weights); phases["build_module_s"] = time.perf_counter() - mark
    if mode == "posebridge-torch":
        mark = time.perf_counter(); tune(net); phases["tune_s"] = time.perf_counter() - mark
    if mode == "posebridge-ncnn":
        from posebridge.runtime.backends import NcnnBackend
        mark = time.perf_counter(); NcnnBackend(net, None); phases["ncnn_s"] = time.perf_counter() - mark
elif mode == "opencv":
    net = cv2.dnn.readNetFromCaffe(prototxt, caffemodel)
elif mode == "onnxruntime":
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    net = onnxruntime.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
else:
    raise SystemExit("unknown mode " + mode)
total = time.perf_counter() - start
print(json.dumps({"total_s": total, "peak_over_baseline_bytes": hwm() - baseline, "baseline_bytes": baseline,
                  **phases}))
"""

READY_MODES = ("posebridge-torch", "posebridge-torch-untuned", "posebridge-ncnn", "opencv", "onnxruntime")


def _child(mode: str, files: NetFiles) -> dict:
    done = subprocess.run([sys.executable, "-c", _CHILD, mode, str(files.prototxt), str(files.caffemodel),
                           str(files.onnx or "")], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        from posebridge.errors import PosebridgeError

        raise PosebridgeError(f"bench loading ({mode}) failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summarise(runs: list[dict]) -> dict:
    keys = [key for key in runs[0] if isinstance(runs[0][key], (int, float))]
    summary = {key: statistics.median(run[key] for run in runs) for key in keys}
    summary["total_runs_s"] = [run["total_s"] for run in runs]
    summary["min_total_s"] = min(summary["total_runs_s"])
    summary["max_total_s"] = max(summary["total_runs_s"])
    return summary


def bench_loading(files: NetFiles, runs: int, log: Callable[[str], None] = lambda line: None) -> dict:
    """The read figures and the ready-network figures (medians of ``runs`` fresh processes each)."""
    from posebridge.tools.bench_load import measure

    read = measure(files.prototxt, files.caffemodel, runs)
    read.pop("raw", None)
    log(f"  read_weights {read['read_s']:.2f} s, peak +{read['vmhwm_over_baseline_bytes'] / 1e6:.0f} MB "
        f"({Path(files.caffemodel).stat().st_size / 1e6:.0f} MB file)")
    ready = {}
    for mode in READY_MODES:
        if mode == "onnxruntime" and files.onnx is None:
            continue
        _child(mode, files)  # warm-up: bytecode, page cache
        ready[mode] = _summarise([_child(mode, files) for _ in range(runs)])
        log(f"  ready: {mode:26s} {ready[mode]['total_s']:6.2f} s, peak +"
            f"{ready[mode]['peak_over_baseline_bytes'] / 1e6:.0f} MB")
    return {"net": files.name, "caffemodel_bytes": Path(files.caffemodel).stat().st_size, "runs": runs,
            "read": read, "ready": ready}
