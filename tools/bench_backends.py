"""Forward time of one OpenPose net in onnxruntime, PyTorch (eager) and OpenCV dnn, side by side.

    python -m posebridge.tools.bench_backends [--net coco] [--sizes 368x656,184x184] [--repeats 3] [--fp16]

The net is a zoo architecture with synthetic (He) weights, written once as prototxt +
caffemodel (for OpenCV dnn's Caffe importer) and exported once to ONNX by
:func:`posebridge.converter.onnx_export.export_onnx` (self-checked). For each input size every
backend runs one warm-up forward, then ``repeats`` rounds time every backend once in turn (round
robin, so changes in a shared machine's load hit all backends alike); the table gives the median,
the ratio to the fastest backend at that size, and each backend's relative error against
PyTorch (so the three compute the same thing). Backends use their production settings:
onnxruntime with every graph optimisation, PyTorch under ``torch.inference_mode``, OpenCV dnn
on its own CPU backend with its defaults (fusion and Winograd on). All use ``--threads``
threads (default: every core). ``--fp16`` adds onnxruntime running the fp16 rewrite of the same
export (:mod:`posebridge.converter.onnx_fp16`). Timings on a shared machine vary; the load
average is printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_NET = "coco"
DEFAULT_SIZES = ((368, 656), (184, 184))
DEFAULT_REPEATS = 3
WARMUP = 1
SEED = 0
FP16_BACKEND = "onnxruntime-fp16"

Forward = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Timing:
    """One backend at one size: the timed forwards (seconds) and its error against PyTorch."""

    backend: str
    size: tuple[int, int]
    seconds: tuple[float, ...]
    relative_error: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _size(text: str) -> tuple[int, int]:
    height, _, width = text.lower().partition("x")
    return int(height), int(width)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench_backends", description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", default=DEFAULT_NET, help="zoo net (coco, body_25, mpi, hand, face, ...)")
    parser.add_argument("--sizes", default=",".join(f"{h}x{w}" for h, w in DEFAULT_SIZES),
                        help="input sizes HxW, comma separated (batch 1)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS, help="timed forwards per backend and size")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for every backend")
    parser.add_argument("--workdir", help="keep the prototxt, caffemodel and ONNX files here (default: a temp dir)")
    parser.add_argument("--fp16", action="store_true", help="also time onnxruntime on the fp16 rewrite")
    args = parser.parse_args(argv)
    args.sizes = [_size(item) for item in args.sizes.split(",")]
    return args


def _prepare(net: str, folder: Path) -> tuple[object, Path, Path, Path]:
    """The converted net, its prototxt + caffemodel, and its checked ONNX export."""
    from posebridge import zoo
    from posebridge.converter.network import CaffeNet
    from posebridge.converter.onnx_export import export_onnx
    from posebridge.prototxt import load_graph
    from posebridge.prototxt.synth import synthesize, write_caffemodel

    prototxt = zoo.export(net, folder / f"{net}.prototxt")
    graph = load_graph(prototxt)
    blobs = synthesize(graph, seed=SEED, init="he")
    caffemodel = folder / f"{net}_synthetic.caffemodel"
    write_caffemodel(caffemodel, graph, blobs)
    model = CaffeNet(graph, blobs)
    onnx_path = folder / f"{net}.onnx"
    started = time.perf_counter()
    report = export_onnx(model, onnx_path, prototxt=prototxt, caffemodel=caffemodel)
    print(f"exported {onnx_path.name} in {time.perf_counter() - started:.1f} s "
          f"(self-check max relative error {report.max_relative_error:.1e})", flush=True)
    return model, prototxt, caffemodel, onnx_path


def _onnxruntime_forward(model_source: str | bytes, threads: int) -> Forward:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model_source, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def run_onnxruntime(x: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: x})[0]

    return run_onnxruntime


def _backends(model, prototxt: Path, caffemodel: Path, onnx_path: Path, threads: int,
              fp16: bool) -> dict[str, Forward]:
    import cv2
    import onnx
    import torch

    from posebridge.converter.onnx_fp16 import convert_to_fp16

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)
    run_onnxruntime = _onnxruntime_forward(str(onnx_path), threads)

    def run_pytorch(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def run_opencv(x: np.ndarray) -> np.ndarray:
        net.setInput(x)
        return np.array(net.forward(), dtype=np.float32)

    forwards = {"onnxruntime": run_onnxruntime, "pytorch": run_pytorch, "opencv": run_opencv}
    if fp16:
        half = convert_to_fp16(onnx.load(str(onnx_path)))
        forwards[FP16_BACKEND] = _onnxruntime_forward(half.SerializeToString(), threads)
    return forwards


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    if actual.shape != expected.shape:
        return float("inf")
    return float(np.max(np.abs(actual - expected)) / max(float(np.max(np.abs(expected))), 1e-30))


def measure(forwards: dict[str, Forward], sizes: Sequence[tuple[int, int]], repeats: int) -> list[Timing]:
    """Per size: one warm-up forward per backend, then ``repeats`` rounds timing every backend once
    (round robin, so a change in the machine's load hits all backends alike); batch 1."""
    rng = np.random.default_rng(SEED)
    order = ["pytorch", *(b for b in forwards if b != "pytorch")]  # PyTorch first: the reference
    timings = []
    for size in sizes:
        x = rng.uniform(-0.5, 0.5, size=(1, 3, *size)).astype(np.float32)
        outputs = {}
        for name in order:
            for _ in range(WARMUP):
                outputs[name] = forwards[name](x)
        seconds: dict[str, list[float]] = {name: [] for name in order}
        for _ in range(repeats):
            for name in order:
                started = time.perf_counter()
                outputs[name] = forwards[name](x)
                seconds[name].append(time.perf_counter() - started)
        for name in forwards:
            timing = Timing(name, size, tuple(seconds[name]), _relative_error(outputs[name], outputs["pytorch"]))
            timings.append(timing)
            print(f"  {size[0]}x{size[1]} {name}: median {timing.median * 1e3:.0f} ms", flush=True)
    return timings


def table(timings: Sequence[Timing]) -> str:
    """A Markdown table: input, backend, median ms, ratio to the fastest at that input, error vs PyTorch."""
    lines = ["| input | backend | median ms (of runs) | x fastest | rel. error vs PyTorch |",
             "|---|---|---:|---:|---:|"]
    for size in dict.fromkeys(t.size for t in timings):
        rows = [t for t in timings if t.size == size]
        fastest = min(t.median for t in rows)
        for t in rows:
            runs = ", ".join(f"{s * 1e3:.0f}" for s in t.seconds)
            lines.append(f"| 1x3x{size[0]}x{size[1]} | {t.backend} | {t.median * 1e3:.0f} ({runs}) | "
                         f"{t.median / fastest:.2f} | {t.relative_error:.1e} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    import cv2
    import onnxruntime
    import torch

    load_before = _load_average()
    with tempfile.TemporaryDirectory(prefix="posebridge-bench-") as scratch:
        folder = Path(args.workdir or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        model, prototxt, caffemodel, onnx_path = _prepare(args.net, folder)
        forwards = _backends(model, prototxt, caffemodel, onnx_path, args.threads, args.fp16)
        print(f"net {args.net} (synthetic weights), {args.threads} threads, warm-up {WARMUP}, "
              f"median of {args.repeats}", flush=True)
        timings = measure(forwards, args.sizes, args.repeats)
    print()
    print(table(timings))
    print(f"\ntorch {torch.__version__}, onnxruntime {onnxruntime.__version__}, opencv {cv2.__version__}, "
          f"{os.cpu_count()} CPUs, 1-minute load average {load_before} before, {_load_average()} after")
    return 0


def _load_average() -> str:
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


if __name__ == "__main__":
    sys.exit(main())
