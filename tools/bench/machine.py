"""The machine a benchmark ran on: CPU, cores, instruction sets, memory, library versions."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

#: CPU flags that decide which fast paths exist (fp32 AVX-512, bf16, int8 dot products, AMX).
FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "avx_vnni",
                     "amx_bf16", "amx_int8", "amx_tile", "avx512_fp16")


def _cpuinfo() -> list[dict[str, str]]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return []
    processors = []
    for block in text.strip().split("\n\n"):
        entry = {}
        for line in block.splitlines():
            key, _, value = line.partition(":")
            entry[key.strip()] = value.strip()
        processors.append(entry)
    return processors


def usable_cores() -> int:
    """Logical CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def library_versions() -> dict[str, str]:
    """Versions of the libraries the benchmark measures (and PyTorch's CPU build facts)."""
    import cv2
    import ncnn
    import numpy
    import onnx
    import onnxruntime
    import torch

    import posebridge
    from posebridge.runtime import native_winograd

    return {
        "python": platform.python_version(), "numpy": numpy.__version__, "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__, "opencv": cv2.__version__,
        "ncnn": ncnn.__version__, "posebridge": posebridge.__version__, "posebridge_commit": _git_commit() or "unknown",
        "torch_cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch_mkldnn": str(torch.backends.mkldnn.is_available()),
        "native_winograd": native_winograd.describe(),
    }


def machine_info() -> dict[str, object]:
    """CPU model, logical/physical cores, threads per core, flags of interest, memory, libraries."""
    import cv2
    import torch

    processors = _cpuinfo()
    first = processors[0] if processors else {}
    flags = set(first.get("flags", "").split())
    physical = {(p.get("physical id", "0"), p.get("core id", str(i))) for i, p in enumerate(processors)}
    logical = len(processors) or (os.cpu_count() or 1)
    cores = len(physical) if physical else logical
    return {
        "cpu_model": first.get("model name") or platform.processor() or "unknown",
        "cpu_family_model": f"{first.get('cpu family', '?')}/{first.get('model', '?')}",
        "architecture": platform.machine(),
        "logical_cpus": logical,
        "physical_cores": cores,
        "threads_per_core": max(1, logical // max(cores, 1)),
        "usable_cpus": usable_cores(),
        "flags": [flag for flag in FLAGS_OF_INTEREST if flag in flags],
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()}",
        "torch_threads": torch.get_num_threads(),
        "opencv_threads": cv2.getNumThreads(),
        "libraries": library_versions(),
    }
