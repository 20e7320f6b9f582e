"""The nets a benchmark runs: zoo architectures with synthetic weights, and their exports.

Everything is written once into a work folder and reused when already there: the prototxt
(``zoo:NAME`` resolved), a He-initialised caffemodel of the real size (seed 0; the COCO one is
209 MB), the checked fp32 ONNX export and its int8 quantisation.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

SEED = 0
#: Calibration net heights for int8 in quick runs (smaller: faster calibration).
QUICK_CALIBRATION_HEIGHTS = (96, 128)


@dataclass
class NetFiles:
    """One benchmarked net's files and what making them took (seconds)."""

    name: str
    prototxt: Path
    caffemodel: Path
    onnx: Path | None = None
    int8: Path | None = None
    setup_s: dict[str, float] = field(default_factory=dict)
    int8_error: float | None = None


_SYNTH_CODE = """
import sys
from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import synthesize, write_caffemodel
graph = load_graph(sys.argv[1])
write_caffemodel(sys.argv[2], graph, synthesize(graph, seed=int(sys.argv[3]), init="he"))
"""


def prepare_caffe(name: str, folder: Path) -> NetFiles:
    """The zoo net's prototxt and a synthetic caffemodel in ``folder`` (written in a child process,
    so this process's peak memory does not include the synthesised blobs)."""
    from posebridge import zoo

    prototxt = Path(zoo.resolve(f"zoo:{name}"))
    caffemodel = folder / f"{name}.synthetic.caffemodel"
    files = NetFiles(name, prototxt, caffemodel)
    if not caffemodel.is_file():
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", _SYNTH_CODE, str(prototxt), str(caffemodel), str(SEED)], check=True,
                       capture_output=True, text=True)
        files.setup_s["synthesise_caffemodel"] = time.perf_counter() - started
    return files


def prepare_onnx(files: NetFiles, folder: Path, model=None, *, quick: bool = False) -> NetFiles:
    """Add the fp32 ONNX export and its int8 quantisation to ``files`` (made when absent)."""
    from posebridge.converter.onnx_export import export_onnx
    from posebridge.converter.onnx_int8 import default_calibration, quantize_int8

    files.onnx = folder / f"{files.name}.fp32.onnx"
    if not files.onnx.is_file():
        if model is None:
            from posebridge.converter.api import convert

            model = convert(files.prototxt, files.caffemodel)
        started = time.perf_counter()
        export_onnx(model, files.onnx, prototxt=files.prototxt, caffemodel=files.caffemodel)
        files.setup_s["export_onnx"] = time.perf_counter() - started
    files.int8 = folder / f"{files.name}.int8{'.quick' if quick else ''}.onnx"
    if not files.int8.is_file():
        calibration = default_calibration(QUICK_CALIBRATION_HEIGHTS) if quick else default_calibration()
        report = quantize_int8(files.onnx, files.int8, calibration)
        files.setup_s["quantize_int8"] = report.seconds
        files.int8_error = report.max_relative_error
    else:
        from posebridge.converter.onnx_int8 import INT8_ERROR
        from posebridge.converter.onnx_metadata import read_onnx_metadata

        value = read_onnx_metadata(files.int8).get(INT8_ERROR)
        files.int8_error = float(value) if value is not None else None
    return files


def work_folder(path: str | os.PathLike | None, scratch: str) -> Path:
    """The given work folder (created), or the scratch one."""
    folder = Path(path) if path else Path(scratch)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
