"""An fp32 ONNX export quantised to int8 convolutions (onnxruntime static quantisation, QDQ).

Only ``Conv`` nodes are quantised: weights per output channel (int8, symmetric), activations
per tensor (uint8, ranges from MinMax calibration). Concat, pooling and the graph's input and
output stay float32: quantising Concat forces one scale onto the stage outputs (heatmaps, PAFs
and image features have very different ranges) and wrecks the maps (measured relative error
near 1 on the COCO net, against about 0.06 with convolutions only). onnxruntime runs the
quantised convolutions with integer dot-product instructions (AVX512-VNNI / AVX-VNNI) where the
CPU has them.

Calibration inputs: :func:`default_calibration` gives OpenPose-normalised images (``v/256 - 0.5``)
of the photo bundled with the runtime at two sizes, plain and mirrored, and two uniform-noise
inputs in the same range (the parity tool's inputs: without them, noise activations overflow
the photo's ranges and the error on noise triples, 0.24 against 0.08 on the COCO net, while
the error on photos barely moves). The error against the fp32 model is measured on a separate
noise input and stored in the metadata.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from posebridge.atomic import atomic_path
from posebridge.converter import onnx_metadata as meta
from posebridge.errors import ExportError

INT8 = "int8"
INT8_ERROR = "int8_max_relative_error"
#: Net heights of the calibration images (width from the photo's aspect ratio, multiple of 16).
CALIBRATION_HEIGHTS = (192, 256)
#: Size (height, width) and seed of the random check input (uniform in [-0.5, 0.5)).
CHECK_SIZE = (96, 160)
CHECK_SEED = 7
QUANTIZED_OPS = ("Conv",)
NOISE_INPUTS = 2
NOISE_SEED = 11


@dataclass(frozen=True)
class Int8Report:
    """What :func:`quantize_int8` wrote and measured."""

    path: Path
    seconds: float
    calibration_inputs: int
    quantized_nodes: int
    max_relative_error: float


def default_calibration(heights: Sequence[int] = CALIBRATION_HEIGHTS) -> list[np.ndarray]:
    """(1, 3, h, w) float32 inputs: the runtime's bundled photo at each height, plain and mirrored,
    and :data:`NOISE_INPUTS` uniform-noise inputs of the first height (seeded)."""
    import cv2

    from posebridge.runtime.preprocess import prepare_inputs

    photo = Path(__file__).resolve().parent.parent / "runtime" / "data" / "astronaut.jpg"
    image = cv2.imread(str(photo), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError("the bundled calibration photo cannot be read", file=str(photo))
    inputs = []
    for height in heights:
        for picture in (image, np.ascontiguousarray(image[:, ::-1])):
            inputs.append(prepare_inputs(picture, net_resolution=f"-1x{height}")[0].tensor)
    rng = np.random.default_rng(NOISE_SEED)
    shape = inputs[0].shape
    inputs.extend(rng.uniform(-0.5, 0.5, shape).astype(np.float32) for _ in range(NOISE_INPUTS))
    return inputs


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of arrays."""

    def __init__(self, name: str, inputs: Sequence[np.ndarray]) -> None:
        self._items = iter([{name: np.ascontiguousarray(x, dtype=np.float32)} for x in inputs])

    def get_next(self):
        return next(self._items, None)

    def __iter__(self):
        return self

    def __next__(self):
        item = self.get_next()
        if item is None:
            raise StopIteration
        return item


def _session(path: str | os.PathLike):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected| (float64)."""
    scale = float(np.abs(expected).max())
    difference = float(np.abs(actual.astype(np.float64) - expected).max())
    return difference / scale if scale > 0 else difference


def quantize_int8(source: str | os.PathLike, target: str | os.PathLike,
                  calibration: Sequence[np.ndarray] | None = None) -> Int8Report:
    """Quantise the fp32 ONNX model ``source`` to ``target`` (see the module docstring).

    ``calibration``: (1, 3, h, w) float32 inputs (default :func:`default_calibration`). The
    metadata of the source is kept, with ``precision`` = int8 and the measured error added.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    started = time.perf_counter()
    where = os.fspath(target)
    inputs = list(calibration) if calibration is not None else default_calibration()
    if not inputs:
        raise ExportError("int8 quantisation needs at least one calibration input", file=where)
    original = onnx.load(os.fspath(source))
    if len(original.graph.input) != 1:
        raise ExportError(f"int8 quantisation takes one-input models; this one has {len(original.graph.input)}",
                          file=os.fspath(source))
    input_name = original.graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="posebridge-int8-") as scratch:
        quantized_path = Path(scratch) / "int8.onnx"
        try:
            with _quiet_root_logger():
                quantize_static(os.fspath(source), quantized_path, _Reader(input_name, inputs),
                                quant_format=QuantFormat.QDQ, op_types_to_quantize=list(QUANTIZED_OPS),
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
        except Exception as error:  # onnxruntime raises many types; name the failure
            raise ExportError(f"onnxruntime int8 quantisation failed: {type(error).__name__}: {error}",
                              file=where) from None
        model = onnx.load(quantized_path)
    check = np.random.default_rng(CHECK_SEED).uniform(-0.5, 0.5, (1, 3, *CHECK_SIZE)).astype(np.float32)
    expected = _session(source).run(None, {input_name: check})[0]
    actual = _session_from_bytes(model.SerializeToString()).run(None, {input_name: check})[0]
    error = relative_error(actual, expected)
    values = {p.key: p.value for p in original.metadata_props}
    del model.metadata_props[:]
    meta.set_metadata(model, {**values, meta.PRECISION: INT8, INT8_ERROR: repr(error)})
    dequantized = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    quantized_nodes = sum(1 for node in model.graph.node
                          if node.op_type in QUANTIZED_OPS and len(node.input) > 1 and node.input[1] in dequantized)
    with atomic_path(target) as tmp:
        tmp.write_bytes(model.SerializeToString())
    return Int8Report(Path(target), time.perf_counter() - started, len(inputs), quantized_nodes, error)


@contextlib.contextmanager
def _quiet_root_logger():
    """onnxruntime.quantization logs advice to the root logger at WARNING; keep it to errors."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))
    try:
        yield
    finally:
        root.setLevel(level)


def _session_from_bytes(data: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
