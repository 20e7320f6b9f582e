"""Layer-by-layer parity: the converted net against a reference, on the same seeded input.

:func:`compare` converts the net, feeds both sides the same input (uniform in [-0.5, 0.5], like
OpenPose's normalised images, from ``seed``) and compares the first top of every layer in
topological order. Per layer: max absolute error, max relative error (max abs error / max abs
reference value) and cosine similarity. A layer is out of tolerance when its max relative error
exceeds ``tolerance``, when shapes differ, or when non-finite values differ. Layers the
reference cannot show (OpenCV's dropped layers, the net input, ...) are skipped with a reason.

References: ``"opencv"`` (OpenCV dnn, fusion off), ``"caffe"`` (pycaffe, when importable) or
the path of a golden ``.npz`` (see :mod:`posebridge.converter.references.golden`, written by
:func:`write_golden`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from posebridge.converter.api import convert
from posebridge.converter.network import CaffeNet
from posebridge.converter.references.base import ReferenceOutputs
from posebridge.converter.references.golden import bind_inputs, golden_reference, load_golden, save_golden
from posebridge.converter.references.opencv import run_opencv
from posebridge.converter.references.pycaffe import run_pycaffe
from posebridge.errors import FileAccessError, ParityError, PosebridgeError
from posebridge.prototxt.graph import Graph, Shape
from posebridge.prototxt.loader import PROBE_SIZE, load_graph, load_weights, prototxt_file
from posebridge.prototxt.shapes import infer_shapes

#: Named references; anything else must be the path of a golden .npz file.
RUNNERS = {"opencv": run_opencv, "caffe": run_pycaffe}
DEFAULT_TOLERANCE = 1e-4
#: OpenPose feeds images as value / 256 - 0.5: the seeded input spans the same range.
INPUT_RANGE = (-0.5, 0.5)

OK, FAIL, SKIP = "ok", "fail", "skip"


@dataclass(frozen=True)
class ParityRow:
    """One layer at one input shape. Errors are None for skipped rows (and NaN-free floats otherwise)."""

    input_shape: str
    index: int
    layer: str
    type: str
    top: str
    status: str
    shape: tuple[int, ...] | None = None
    max_abs: float | None = None
    max_rel: float | None = None
    cosine: float | None = None
    reference_max: float | None = None
    reference_name: str | None = None
    reason: str = ""


@dataclass
class ParityReport:
    """Every row of one comparison, in input-size order then topological order."""

    prototxt: str
    caffemodel: str
    reference: str
    tolerance: float
    seed: int | None
    input_shapes: list[str]
    rows: list[ParityRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[ParityRow]:
        return [row for row in self.rows if row.status != SKIP]

    @property
    def skipped(self) -> list[ParityRow]:
        return [row for row in self.rows if row.status == SKIP]

    @property
    def failures(self) -> list[ParityRow]:
        return [row for row in self.rows if row.status == FAIL]

    @property
    def ok(self) -> bool:
        """True when at least one layer was compared and none is out of tolerance."""
        return bool(self.compared) and not self.failures

    @property
    def first_failure(self) -> ParityRow | None:
        """The first layer out of tolerance (first input shape, then topological order), or None."""
        failures = self.failures
        return failures[0] if failures else None

    def to_dict(self) -> dict[str, Any]:
        first = self.first_failure
        return {
            "prototxt": self.prototxt, "caffemodel": self.caffemodel, "reference": self.reference,
            "tolerance": self.tolerance, "seed": self.seed, "input_shapes": self.input_shapes,
            "ok": self.ok, "first_failure": None if first is None else _row_dict(first),
            "counts": {"compared": len(self.compared), "failed": len(self.failures), "skipped": len(self.skipped)},
            "notes": list(self.notes), "rows": [_row_dict(row) for row in self.rows],
        }

    def to_json(self, indent: int | None = 1) -> str:
        """The report as JSON (non-finite errors become null, with the reason in the row)."""
        return json.dumps(self.to_dict(), indent=indent)


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _row_dict(row: ParityRow) -> dict[str, Any]:
    data = asdict(row)
    data["shape"] = None if row.shape is None else list(row.shape)
    for key in ("max_abs", "max_rel", "cosine", "reference_max"):
        data[key] = _finite_or_none(data[key])
    return data


# ----------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Metrics:
    """Errors of one array against its reference (float64 arithmetic)."""

    max_abs: float
    max_rel: float
    cosine: float
    nonfinite_mismatch: bool
    reference_max: float = 0.0


def array_metrics(ours: np.ndarray, reference: np.ndarray) -> Metrics:
    """max |ours - ref|, that over max |ref| (0 when both are all zero), cosine similarity.

    Positions where the reference is not finite must hold the same value in ``ours``; they are
    left out of the errors. Shapes must already agree. Differences and sums are taken in float64.
    """
    a = np.asarray(ours).ravel()
    b = np.asarray(reference).ravel()
    mismatch = False
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        finite = np.isfinite(b)
        mismatch = not np.array_equal(np.isfinite(a), finite) or not np.array_equal(
            a[~finite], b[~finite], equal_nan=True)
        a, b = a[finite], b[finite]
    if a.size == 0:
        return Metrics(0.0, 0.0, 1.0, mismatch, 0.0)
    difference = np.subtract(a, b, dtype=np.float64)
    max_abs = float(np.abs(difference, out=difference).max())
    scale = float(np.abs(b).max())
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norm_a, norm_b = math.sqrt(float(a64 @ a64)), math.sqrt(float(b64 @ b64))
    if norm_a == 0 or norm_b == 0:
        cosine = 1.0 if norm_a == norm_b else 0.0
    else:
        cosine = float(a64 @ b64) / (norm_a * norm_b)
    return Metrics(max_abs, max_rel, cosine, mismatch, scale)


def compare_layer(ours: np.ndarray, reference: np.ndarray, tolerance: float) -> tuple[str, Metrics | None, str]:
    """(status, metrics, reason) for one layer's output against the reference's."""
    if ours.shape != reference.shape:
        if ours.size == reference.size and tuple(d for d in ours.shape if d != 1) == tuple(
                d for d in reference.shape if d != 1):
            reason = f"reference shape {list(reference.shape)} read as {list(ours.shape)}"
            reference = reference.reshape(ours.shape)
        else:
            return FAIL, None, f"shape {list(ours.shape)} != reference shape {list(reference.shape)}"
    else:
        reason = ""
    metrics = array_metrics(ours, reference)
    if metrics.nonfinite_mismatch:
        return FAIL, metrics, "non-finite values (inf/NaN) differ from the reference"
    if not metrics.max_rel <= tolerance:
        return FAIL, metrics, f"max relative error {metrics.max_rel:.3g} > tolerance {tolerance:g}"
    return OK, metrics, reason


# ----------------------------------------------------------------------------- inputs


def shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(int(d)) for d in shape)


def default_size(graph: Graph) -> tuple[int, int] | None:
    """None (keep the declared input size) when every layer's shape follows from it, else PROBE_SIZE.

    OpenPose prototxts declare a 1x1 or 16x16 placeholder that pooling cannot shrink further.
    """
    try:
        infer_shapes(graph)
    except PosebridgeError:
        return PROBE_SIZE
    return None


def seeded_inputs(shapes: Mapping[str, Shape], seed: int) -> dict[str, np.ndarray]:
    """Uniform float32 inputs in INPUT_RANGE, drawn in input order from ``seed``."""
    rng = np.random.default_rng(seed)
    low, high = INPUT_RANGE
    return {name: rng.uniform(low, high, size=shape).astype(np.float32) for name, shape in shapes.items()}


def run_converted(model: CaffeNet, inputs: Mapping[str, np.ndarray], versions: Sequence[str]) -> dict[str, np.ndarray]:
    """Our blob versions ``versions`` for ``inputs`` (float32 numpy)."""
    tensors = {name: torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)) for name, array in inputs.items()}
    with torch.no_grad():
        blobs = model.run_blobs(tensors, keep=versions)
    return {version: tensor.detach().cpu().numpy() for version, tensor in blobs.items()}


# ----------------------------------------------------------------------------- compare


def _reference_kind(reference: str | os.PathLike) -> str:
    if isinstance(reference, str) and reference in RUNNERS:
        return reference
    path = Path(reference)
    if not path.is_file():
        raise FileAccessError(f"reference must be {' or '.join(RUNNERS)} or an existing golden .npz file",
                              file=str(reference))
    return "golden"


def _rows_for(graph: Graph, shape_label: str, ours: Mapping[str, np.ndarray], ref: ReferenceOutputs,
              tolerance: float) -> list[ParityRow]:
    rows = []
    for index, node in enumerate(graph.nodes):
        top = node.tops[0] if node.tops else ""
        common = dict(input_shape=shape_label, index=index, layer=node.name, type=node.type, top=top,
                      reference_name=ref.aliases.get(node.name))
        if node.name not in ref.layers:
            reason = ref.skipped.get(node.name, "the reference has no output for this layer")
            rows.append(ParityRow(status=SKIP, reason=reason, **common))
            continue
        value = ours[top]
        status, metrics, reason = compare_layer(value, ref.layers[node.name], tolerance)
        rows.append(ParityRow(
            status=status, shape=tuple(int(d) for d in value.shape), reason=reason,
            max_abs=None if metrics is None else metrics.max_abs,
            max_rel=None if metrics is None else metrics.max_rel,
            cosine=None if metrics is None else metrics.cosine,
            reference_max=None if metrics is None else metrics.reference_max, **common))
    return rows


def _check_options(tolerance: float, batch: int, sizes: Sequence[tuple[int, int]] | None) -> None:
    if not tolerance >= 0:
        raise ParityError(f"tolerance must be >= 0, got {tolerance}")
    if batch < 1:
        raise ParityError(f"batch must be >= 1, got {batch}")
    for size in sizes or ():
        if len(size) != 2 or min(size) < 1:
            raise ParityError(f"input sizes are (height, width) with positive values, got {tuple(size)}")


def compare(prototxt: str | os.PathLike, caffemodel: str | os.PathLike, *,
            reference: str | os.PathLike = "opencv", input_sizes: Sequence[tuple[int, int]] | None = None,
            batch: int = 1, tolerance: float = DEFAULT_TOLERANCE, seed: int = 0) -> ParityReport:
    """Compare every layer of the converted net with ``reference``.

    ``input_sizes`` are (height, width) pairs, one run each (default: the prototxt's declared
    size when usable, else 368x368); ``batch`` is N. With a golden file the input comes from the
    file and ``input_sizes``/``batch``/``seed`` are not used. Raises a PosebridgeError subclass for
    unreadable files, unsupported layers or a reference that cannot run (e.g. no pycaffe).
    """
    _check_options(tolerance, batch, input_sizes)
    kind = _reference_kind(reference)
    graph = load_graph(prototxt)
    graph.check_supported()
    model = convert(graph, load_weights(graph, caffemodel))
    versions = [node.tops[0] for node in graph.nodes if node.tops]

    if kind == "golden":
        golden = load_golden(reference)
        runs = [bind_inputs(golden, graph)]
        references = [golden_reference(golden, graph)]
        report_seed = golden.meta.get("seed")
    else:
        sizes = list(input_sizes) if input_sizes else [default_size(graph)]
        runs = [seeded_inputs(graph.input_shapes(size, batch), seed) for size in sizes]
        references = RUNNERS[kind](graph, prototxt_file(prototxt), caffemodel, runs)
        report_seed = seed

    report = ParityReport(prototxt=os.fspath(prototxt), caffemodel=os.fspath(caffemodel), reference="",
                          tolerance=float(tolerance), seed=report_seed, input_shapes=[])
    for inputs, ref in zip(runs, references):
        report.reference = ref.label
        label = ", ".join(shape_text(a.shape) for a in inputs.values())
        ours = run_converted(model, inputs, versions)
        report.input_shapes.append(label)
        report.rows.extend(_rows_for(graph, label, ours, ref, tolerance))
        report.notes.extend(note for note in ref.notes if note not in report.notes)
    return report


def write_golden(path: str | os.PathLike, prototxt: str | os.PathLike, caffemodel: str | os.PathLike, *,
                 reference: str = "opencv", input_size: tuple[int, int] | None = None, batch: int = 1,
                 seed: int = 0, meta: Mapping[str, Any] | None = None) -> Path:
    """Run ``reference`` ("opencv" or "caffe") on a seeded input and save a golden ``.npz``.

    The file holds the input(s), every layer's first top the reference shows, and metadata
    (reference label, seed, file names, skipped layers with reasons, plus ``meta``).
    """
    if reference not in RUNNERS:
        raise ParityError(f"golden files are written from {' or '.join(RUNNERS)}, not '{reference}'")
    _check_options(0.0, batch, [input_size] if input_size else None)
    graph = load_graph(prototxt)
    graph.check_supported()
    size = input_size if input_size else default_size(graph)
    inputs = seeded_inputs(graph.input_shapes(size, batch), seed)
    outputs = next(iter(RUNNERS[reference](graph, prototxt_file(prototxt), caffemodel, [inputs])))
    names = {node.name for node in graph.nodes}  # not Caffe's own inserted Split layers
    layers = {name: array for name, array in outputs.layers.items() if name in names}
    info = {"reference": outputs.label, "seed": seed, "prototxt": Path(prototxt).name,
            "caffemodel": Path(caffemodel).name, "input_shapes": {k: list(v.shape) for k, v in inputs.items()},
            "skipped": outputs.skipped, "notes": outputs.notes, **(meta or {})}
    return save_golden(path, inputs, layers, info)


# ----------------------------------------------------------------------------- table


def _number(value: float | None, fmt: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return format(value, fmt)


def format_table(report: ParityReport, *, only: Collection[str] | None = None) -> str:
    """The report as a plain-text table (one block per input shape) and a verdict line.

    ``only`` limits the printed rows to those statuses (e.g. ``{FAIL}``); the verdict counts all.
    """
    lines = [f"reference: {report.reference}", f"tolerance: max relative error <= {report.tolerance:g}"]
    lines.extend(f"note: {note}" for note in report.notes)
    header = ("#", "layer", "type", "shape", "ref_max", "max_abs", "max_rel", "cosine", "status")
    for shape_label in report.input_shapes:
        rows = [r for r in report.rows if r.input_shape == shape_label and (only is None or r.status in only)]
        table = [header]
        for r in rows:
            status = r.status if not r.reason else f"{r.status}: {r.reason}"
            table.append((str(r.index), r.layer, r.type, shape_text(r.shape) if r.shape else "-",
                          _number(r.reference_max, ".2e"), _number(r.max_abs, ".2e"), _number(r.max_rel, ".2e"),
                          _number(r.cosine, ".8f"), status))
        widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
        lines.append("")
        lines.append(f"input {shape_label}")
        for row in table:
            lines.append("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1])
    lines.append("")
    compared, failed, skipped = len(report.compared), len(report.failures), len(report.skipped)
    summary = f"{compared} layer outputs compared, {failed} out of tolerance, {skipped} skipped"
    first = report.first_failure
    if first is not None:
        lines.append(f"FAIL: {summary}; first out of tolerance: layer '{first.layer}' ({first.type}) at input "
                     f"{first.input_shape}: {first.reason}")
    elif not compared:
        lines.append(f"FAIL: {summary}: nothing was compared")
    else:
        lines.append(f"OK: {summary}")
    return "\n".join(lines)
