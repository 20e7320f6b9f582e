"""Benchmark: caffemodel to ready module (time, peak memory), and CPU forward time beside OpenCV dnn.

Run ``python -m posebridge.tools.bench_convert`` (defaults: the official COCO prototxt from the
shared folder, a synthetic ``he`` caffemodel of the real size, 209 MB, written to a temporary
folder, forward at 1x3x368x656). Every figure is the median of ``--repeats`` runs after one
warm-up run; the forward runs are interleaved (torch, OpenCV, OpenCV, torch, ...). A figure, not a test: nothing here asserts a speed.

* Conversion: ``load_graph`` + ``load_weights`` (read + match) + ``CaffeNet``, each run in a
  fresh child process so that its peak resident memory (``ru_maxrss``) belongs to that run
  alone; the baseline (Python, numpy, torch, cv2 imported) is reported beside it. MB = 10^6 bytes.
* Forward: the converted module (``torch.no_grad``, float32) and OpenCV dnn's Caffe importer
  (default settings: fusion on; and fusion off as parity runs it), same input, same process,
  torch and OpenCV threads = the CPU cores available.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

CHILD_FLAG = "--child-convert"
DEFAULT_NET = "coco"
DEFAULT_SIZE = (368, 656)


def _rss_bytes() -> int:
    """Current resident memory of this process (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _child_convert(prototxt: str, caffemodel: str) -> dict[str, float]:
    """One conversion in this (fresh) process: phase times and memory, as a dict."""
    import cv2  # noqa: F401 - imported so the baseline matches the parent's libraries
    import torch  # noqa: F401

    from posebridge.converter.network import CaffeNet
    from posebridge.prototxt.loader import load_graph, load_weights

    baseline = _rss_bytes()
    start = time.perf_counter()
    graph = load_graph(prototxt)
    after_graph = time.perf_counter()
    weights = load_weights(graph, caffemodel)
    after_weights = time.perf_counter()
    model = CaffeNet(graph, weights)
    done = time.perf_counter()
    parameters = sum(p.numel() for p in model.parameters())
    return {"load_graph_s": after_graph - start, "load_weights_s": after_weights - after_graph,
            "build_module_s": done - after_weights, "total_s": done - start,
            "baseline_rss_mb": baseline / 1e6, "peak_rss_mb": _peak_rss_bytes() / 1e6,
            "final_rss_mb": _rss_bytes() / 1e6, "parameters": parameters}


def _convert_in_child(prototxt: Path, caffemodel: Path) -> dict[str, float]:
    command = [sys.executable, "-m", "posebridge.tools.bench_convert", CHILD_FLAG, str(prototxt), str(caffemodel)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _interleaved_medians(runners: dict[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Seconds of ``repeats`` rounds, each calling every runner once, after one warm-up round.

    Interleaving spreads any change in machine load over all runners alike.
    """
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            times[name].append(run())
    return times


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def bench_conversion(prototxt: Path, caffemodel: Path, repeats: int) -> dict:
    """Median phase times and peak memory of ``repeats`` conversions after a warm-up one."""
    _convert_in_child(prototxt, caffemodel)  # warm-up: file cache, bytecode
    runs = [_convert_in_child(prototxt, caffemodel) for _ in range(repeats)]
    keys = runs[0].keys()
    result = {key: statistics.median(run[key] for run in runs) for key in keys}
    result["peak_over_baseline_mb"] = statistics.median(r["peak_rss_mb"] - r["baseline_rss_mb"] for r in runs)
    result["total_s_runs"] = [run["total_s"] for run in runs]
    result["caffemodel_mb"] = caffemodel.stat().st_size / 1e6
    return result


def bench_forward(prototxt: Path, caffemodel: Path, size: tuple[int, int], repeats: int, threads: int) -> dict:
    """Median forward seconds of the converted module and of OpenCV dnn (fusion on and off)."""
    import cv2
    import torch

    from posebridge.converter.api import convert
    from posebridge.converter.references.opencv import opencv_layer_names
    from posebridge.prototxt.loader import load_graph

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    graph = load_graph(prototxt)
    model = convert(graph, caffemodel)
    input_name = model.input_names[0]
    output_layer = graph.producer[model.output_versions[0]]  # compared: the net's first output
    rng = np.random.default_rng(0)
    image = rng.uniform(-0.5, 0.5, size=(1, 3, *size)).astype(np.float32)
    tensor = torch.from_numpy(image)
    outputs: dict[str, np.ndarray] = {}

    def torch_once() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            result = model(tensor)
        elapsed = time.perf_counter() - start
        outputs["torch"] = (result[0] if isinstance(result, tuple) else result).numpy()
        return elapsed

    def opencv_runner(fusion: bool) -> Callable[[], float]:
        net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        net.enableFusion(fusion)
        types = {name: net.getLayer(net.getLayerId(name)).type for name in net.getLayerNames()}
        output_name = opencv_layer_names(graph, types)[0][output_layer]

        def once() -> float:
            start = time.perf_counter()
            net.setInput(image, input_name)
            result = net.forward(output_name)
            elapsed = time.perf_counter() - start
            outputs[f"opencv_fusion_{'on' if fusion else 'off'}"] = np.array(result)
            return elapsed

        return once

    results: dict = {"input": list(image.shape), "threads": threads}
    runners = {"torch": torch_once, "opencv_fusion_on": opencv_runner(True), "opencv_fusion_off": opencv_runner(False)}
    for name, times in _interleaved_medians(runners, repeats).items():
        results[f"{name}_s"], results[f"{name}_s_runs"] = statistics.median(times), times
    for key in ("opencv_fusion_on", "opencv_fusion_off"):
        difference = np.abs(outputs["torch"].astype(np.float64) - outputs[key]).max()
        results[f"max_rel_vs_{key}"] = float(difference / max(np.abs(outputs[key]).max(), 1e-30))
    results["output_shape"] = list(outputs["torch"].shape)
    return results


def _resolve_inputs(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, str]:
    from posebridge.prototxt.loader import load_graph
    from posebridge.prototxt.synth import synthesize, write_caffemodel
    from posebridge.shared_data import OFFICIAL_PROTOTXTS, shared_path

    prototxt = Path(args.prototxt) if args.prototxt else shared_path(OFFICIAL_PROTOTXTS[DEFAULT_NET])
    if prototxt is None:
        sys.exit(f"the official {DEFAULT_NET} prototxt is absent (set POSEBRIDGE_SHARED), or pass --prototxt")
    if args.caffemodel:
        return prototxt, Path(args.caffemodel), "given"
    caffemodel = folder / "synthetic.caffemodel"
    graph = load_graph(prototxt)
    write_caffemodel(caffemodel, graph, synthesize(graph, seed=0, init="he"))
    return prototxt, caffemodel, "synthetic he weights (seed 0)"


def _report(info: dict) -> str:
    c, f = info["conversion"], info["forward"]
    lines = [
        f"net: {info['prototxt']}  weights: {info['weights']} ({c['caffemodel_mb']:.0f} MB)",
        f"machine: {info['machine']}; torch {info['torch']}, OpenCV {info['opencv']}, {f['threads']} threads",
        f"medians of {info['repeats']} runs after a warm-up",
        "",
        "caffemodel -> ready module (fresh process per run)",
        f"  load_graph    {c['load_graph_s']:8.3f} s",
        f"  load_weights  {c['load_weights_s']:8.3f} s   (read + match by layer name)",
        f"  CaffeNet      {c['build_module_s']:8.3f} s",
        f"  total         {c['total_s']:8.3f} s   runs: {', '.join(f'{t:.3f}' for t in c['total_s_runs'])}",
        f"  peak RSS      {c['peak_rss_mb']:8.0f} MB  (baseline after imports {c['baseline_rss_mb']:.0f} MB, "
        f"+{c['peak_over_baseline_mb']:.0f} MB; final {c['final_rss_mb']:.0f} MB)",
        "",
        f"forward {'x'.join(map(str, f['input']))} -> {'x'.join(map(str, f['output_shape']))} on CPU",
        f"  posebridge (torch)        {f['torch_s']:8.3f} s   runs: {', '.join(f'{t:.3f}' for t in f['torch_s_runs'])}",
    ]
    for key, name in (("opencv_fusion_on", "OpenCV dnn, fusion on "), ("opencv_fusion_off", "OpenCV dnn, fusion off")):
        runs = ", ".join(f"{t:.3f}" for t in f[f"{key}_s_runs"])
        lines.append(f"  {name}    {f[f'{key}_s']:8.3f} s   runs: {runs}   "
                     f"(final output max rel diff {f[f'max_rel_vs_{key}']:.1e})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [CHILD_FLAG]:
        print(json.dumps(_child_convert(argv[1], argv[2])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prototxt", help="net definition (default: the official COCO prototxt)")
    parser.add_argument("--caffemodel", help="weights (default: synthesise he weights of the real size)")
    parser.add_argument("--size", default="x".join(map(str, DEFAULT_SIZE)), metavar="HxW",
                        help="forward input size (default 368x656)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after the warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=_cores(), help="torch/OpenCV threads (default: cores)")
    parser.add_argument("--json", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))

    import cv2
    import torch

    with tempfile.TemporaryDirectory(prefix="posebridge-bench-") as folder:
        prototxt, caffemodel, weights = _resolve_inputs(args, Path(folder))
        info = {"prototxt": str(prototxt), "weights": weights, "repeats": args.repeats,
                "machine": f"{platform.machine()}, {_cores()} cores, {platform.python_implementation()} "
                           f"{platform.python_version()}",
                "torch": torch.__version__, "opencv": cv2.__version__,
                "conversion": bench_conversion(prototxt, caffemodel, args.repeats),
                "forward": bench_forward(prototxt, caffemodel, (height, width), args.repeats, args.threads)}
    print(_report(info))
    if args.json:
        from posebridge.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
