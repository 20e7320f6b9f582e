"""Network forward time of every backend, side by side, with each one's error against fp32.

Backends (:data:`BACKENDS`) are the runtime's own classes (:mod:`posebridge.runtime.backends`),
built the way ``posebridge run`` builds them, plus the peers users run today: OpenCV dnn reading
the Caffe files, and the converted module in plain PyTorch eager mode. The input is seeded
uniform noise in [-0.5, 0.5] (the parity tool's input); errors are against the converted net in
PyTorch eager mode (itself at parity with OpenCV dnn), as the parity tool measures them: max
absolute error over max absolute reference value, and cosine similarity.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from posebridge.tools.bench.models import NetFiles
from posebridge.tools.bench.timing import time_round_robin

SEED = 0
REFERENCE = "torch-eager"


@dataclass(frozen=True)
class BackendInfo:
    """How a benchmarked backend is described in the tables."""

    label: str
    precision: str
    role: str  # "peer", "engine" (a posebridge fp32 engine; the net's default is marked per net) or "opt-in"


BACKENDS: dict[str, BackendInfo] = {
    "opencv": BackendInfo("OpenCV dnn (Caffe files)", "fp32", "peer"),
    "torch-eager": BackendInfo("PyTorch eager (converted module)", "fp32", "peer"),
    "onnxruntime": BackendInfo("onnxruntime (all graph optimisations)", "fp32", "peer"),
    "torch-direct": BackendInfo("posebridge torch, tuned, direct 3x3 convolutions (no Winograd)", "fp32", "opt-in"),
    "torch": BackendInfo("posebridge torch, tuned (3x3 convolutions on the native Winograd kernel where it runs)",
                         "fp32", "engine"),
    "ncnn": BackendInfo("posebridge ncnn (native Winograd kernels)", "fp32", "engine"),
    "torch-bf16": BackendInfo("posebridge torch bf16 (--precision bf16)", "bf16", "opt-in"),
    "torch-int8": BackendInfo("posebridge torch int8: native int8 Winograd F(2x2, 3x3) (--precision int8)", "int8",
                              "opt-in"),
    "onnxruntime-int8": BackendInfo("onnxruntime int8 (--precision int8 --backend onnxruntime)", "int8", "opt-in"),
}
#: The default fp32 engine when a net's own is unknown (results written before ncnn existed).
DEFAULT_BACKEND = "torch"
REDUCED = tuple(name for name, info in BACKENDS.items() if info.precision != "fp32")


#: Backends that need something this machine may lack: name -> (native kernel, what it needs).
NEEDS_NATIVE = {"torch-int8": "wino23_int8"}


def without_unavailable(config, log=lambda line: None):
    """``config`` without the backends this machine cannot run, and {name: why} for those."""
    import dataclasses

    from posebridge.runtime import native_winograd

    skipped: dict[str, str] = {}
    for name, kernel in NEEDS_NATIVE.items():
        usable, why = native_winograd.availability(kernel)
        if not usable and (name in config.backends or name in config.e2e_backends):
            skipped[name] = why
            log(f"skipping {name}: {why}")
    if not skipped:
        return config, skipped
    return dataclasses.replace(config, backends=tuple(b for b in config.backends if b not in skipped),
                               e2e_backends=tuple(b for b in config.e2e_backends if b not in skipped)), skipped


def set_threads(threads: int) -> None:
    """Threads for PyTorch and OpenCV (onnxruntime sessions get theirs when made)."""
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


def build_backends(files: NetFiles, names: Sequence[str], threads: int, model=None) -> tuple[dict, dict[str, float]]:
    """{name: runtime backend} and {name: seconds to make it ready}."""
    from posebridge.converter.api import convert
    from posebridge.converter.model_family import recognise
    from posebridge.runtime.backends import NcnnBackend, OnnxBackend, OpenCVBackend, TorchBackend

    unknown = [name for name in names if name not in BACKENDS]
    if unknown:
        from posebridge.errors import PosebridgeError

        raise PosebridgeError(f"unknown bench backend(s) {unknown}; known: {', '.join(BACKENDS)}")
    model = model if model is not None else convert(files.prototxt, files.caffemodel)
    family = recognise(model.structure, None)
    makers: dict[str, Callable[[], object]] = {
        "opencv": lambda: OpenCVBackend(str(files.prototxt), str(files.caffemodel), family),
        "torch-eager": lambda: TorchBackend(model, family, tuned=False),
        "torch-direct": lambda: TorchBackend(model, family, winograd=False),
        "torch": lambda: TorchBackend(model, family),
        "ncnn": lambda: NcnnBackend(model, family, threads=threads),
        "torch-bf16": lambda: TorchBackend(model, family, precision="bf16"),
        "torch-int8": lambda: TorchBackend(model, family, precision="int8"),
        "onnxruntime": lambda: OnnxBackend(str(files.onnx), family, threads=threads),
        "onnxruntime-int8": lambda: OnnxBackend(str(files.int8), family, threads=threads, precision="int8"),
    }
    backends, setup = {}, {}
    for name in names:
        started = time.perf_counter()
        backends[name] = makers[name]()
        setup[name] = time.perf_counter() - started
    return backends, setup


def seeded_input(size: tuple[int, int], seed: int = SEED) -> np.ndarray:
    """(1, 3, H, W) float32 uniform in [-0.5, 0.5)."""
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (1, 3, *size)).astype(np.float32)


def errors_against(reference: np.ndarray, output: np.ndarray) -> dict[str, float]:
    """The parity tool's metrics of ``output`` against ``reference``."""
    from posebridge.converter.parity import array_metrics

    metrics = array_metrics(output, reference)
    return {"max_rel_error": metrics.max_rel, "max_abs_error": metrics.max_abs, "cosine": metrics.cosine}


def bench_forward(backends: dict, sizes: Sequence[tuple[int, int]], *, warmup: int, repeats: int,
                  default: str = DEFAULT_BACKEND,
                  log: Callable[[str], None] = lambda line: None) -> tuple[list[dict], dict]:
    """Rows (one per size and backend; ``default``'s role is "default") and the outputs
    {(h, w): {backend: maps}} of the timed input."""
    rows, outputs = [], {}
    for size in sizes:
        batch = seeded_input(size)
        results = {name: backend.infer(batch) for name, backend in backends.items()}  # also warms up
        outputs[tuple(size)] = results
        reference = results.get(REFERENCE)
        if reference is None:
            reference = next(out for name, out in results.items() if BACKENDS[name].precision == "fp32")
        timings = time_round_robin({name: (lambda b=backend: b.infer(batch)) for name, backend in backends.items()},
                                   warmup=max(warmup - 1, 0), repeats=repeats)
        fastest = min(summary.median for summary in timings.values())
        opencv = timings["opencv"].median if "opencv" in timings else None
        for name, summary in timings.items():
            row = {"size": list(size), "input": f"1x3x{size[0]}x{size[1]}", "backend": name,
                   "label": BACKENDS[name].label, "precision": BACKENDS[name].precision,
                   "role": "default" if name == default else BACKENDS[name].role, **summary.as_dict(),
                   "ratio_to_fastest": summary.median / fastest,
                   "speedup_vs_opencv": (opencv / summary.median) if opencv else None,
                   "output_shape": list(results[name].shape), **errors_against(reference, results[name])}
            rows.append(row)
            log(f"  {row['input']:>14s} {name:18s} {summary.median * 1e3:9.1f} ms "
                f"(min {summary.low * 1e3:.1f}, max {summary.high * 1e3:.1f})  x{row['ratio_to_fastest']:.2f}  "
                f"rel err {row['max_rel_error']:.1e}")
    return rows, outputs
