"""ONNX export of a converted net: dynamic batch/height/width, named outputs, metadata, self-checked.

:func:`export_onnx` traces the :class:`~posebridge.converter.network.CaffeNet` with PyTorch's
TorchScript-based exporter (``dynamo=False``: about 7 s for the COCO net, where the
torch.export-based one takes about 40 s and emits opset 18), then checks the result before
it is written:

1. ``onnx.checker`` (full check) and ONNX shape inference (strict): the batch axis of every
   output must stay symbolic;
2. onnxruntime (all graph optimisations on) against PyTorch at several input sizes other than
   the traced one (one with height and width not multiples of 8) at batch 2: every output's
   shape must match and its relative error (max abs error / max abs PyTorch value) stay
   within the tolerance (1e-5).

With ``fp16`` the checked fp32 graph is rewritten to fp16 compute (fp32 inputs/outputs,
:mod:`posebridge.converter.onnx_fp16`), and checked again against fp32 PyTorch: its measured
error is printed by the CLI and stored in the metadata. Any failure raises ExportError naming
the output, the input size and the error, and leaves no file at the target (written via
:mod:`posebridge.atomic` only after every check passed).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

import posebridge
from posebridge import zoo
from posebridge.atomic import atomic_path
from posebridge.converter import onnx_metadata as meta
from posebridge.converter.model_family import ModelFamily, file_md5, recognise
from posebridge.converter.network import CaffeNet
from posebridge.converter.onnx_fp16 import convert_to_fp16, rename_value
from posebridge.converter.onnx_metadata import read_onnx_metadata
from posebridge.errors import ExportError, FileAccessError

__all__ = ["CHECK_SIZES", "ExportReport", "OutputCheck", "export_onnx", "read_onnx_metadata"]

MIN_OPSET = 17
DEFAULT_OPSET = 17
#: (height, width) traced; the check sizes differ from it, so a baked size shows.
TRACE_SIZE = (76, 100)
#: (height, width) checked in onnxruntime; residues mod 8 differ (57 x 91 and 90 x 70 are not multiples of 8).
CHECK_SIZES: tuple[tuple[int, int], ...] = ((64, 80), (57, 91), (90, 70))
CHECK_BATCH = 2
TOLERANCE = 1e-5
#: fp16 sanity bound against fp32 (OpenPose nets measure about 1e-3); a broken fp16 graph is far above it.
FP16_TOLERANCE = 5e-2
SPLIT_OUTPUT_NAMES = ("heatmaps", "pafs")
SEED = 0
#: OpenPose-like input values: v/256 - 0.5 lies in [-0.5, 0.5).
INPUT_RANGE = (-0.5, 0.5)
BATCH_AXIS, HEIGHT_AXIS, WIDTH_AXIS = 0, 2, 3
SPATIAL_RANK = 4
FP32, FP16 = "fp32", "fp16"
ORT_PROVIDERS = ["CPUExecutionProvider"]
ORT_LOG_ERRORS_ONLY = 3
# TorchScript exporter chatter that says nothing about this model.
_QUIET_WARNINGS = (
    (DeprecationWarning, r".*legacy TorchScript-based ONNX export.*"),
    (UserWarning, r".*Constant folding - Only steps=1 can be constant folded.*"),
    (DeprecationWarning, r"The feature will be removed\. Please remove usage of this function"),
)


@dataclass(frozen=True)
class OutputCheck:
    """One output compared with PyTorch at one input size (errors over finite values)."""

    input_shape: tuple[int, ...]
    output: str
    shape: tuple[int, ...]
    max_abs_error: float
    relative_error: float
    precision: str = FP32


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    opset: int
    precision: str
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    family: ModelFamily
    checks: tuple[OutputCheck, ...]
    tolerance: float
    fp16_max_relative_error: float | None
    metadata: dict[str, str] = field(repr=False)
    file_bytes: int = 0
    seconds: float = 0.0

    @property
    def max_relative_error(self) -> float:
        """The largest fp32 relative error of the self-check."""
        return max((c.relative_error for c in self.checks if c.precision == FP32), default=0.0)

    def summary(self) -> str:
        """A few lines for the command line."""
        sizes = sorted({"x".join(map(str, c.input_shape)) for c in self.checks})
        lines = [
            f"wrote {self.path} ({self.file_bytes / 1e6:.1f} MB, opset {self.opset}, {self.precision}) "
            f"in {self.seconds:.1f} s",
            f"  input {', '.join(self.input_names)} -> outputs {', '.join(self.output_names)}; "
            f"model family {self.family.name} (by {self.family.evidence})",
            f"  onnxruntime vs PyTorch at {', '.join(sizes)}: max relative error "
            f"{self.max_relative_error:.2e} (fp32, tolerance {self.tolerance:.0e})",
        ]
        if self.fp16_max_relative_error is not None:
            lines.append(f"  fp16 vs fp32: max relative error {self.fp16_max_relative_error:.2e}")
        return "\n".join(lines)


#: The attribute holding the net in the exported wrapper; stripped from initializer names.
WRAPPED_NET = "net"


class _ExportModule(nn.Module):
    """The net with a flat tuple of outputs; with ``split`` the one output cut into channel ranges."""

    def __init__(self, net: CaffeNet, split: Sequence[tuple[int, int]] | None) -> None:
        super().__init__()
        setattr(self, WRAPPED_NET, net)
        self.split = tuple(split) if split else None

    def arrange(self, result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """The net's result as the exported outputs."""
        outputs = result if isinstance(result, tuple) else (result,)
        if self.split is None:
            return outputs
        return tuple(outputs[0].narrow(1, start, stop - start) for start, stop in self.split)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.arrange(getattr(self, WRAPPED_NET)(*inputs))


def _strip_wrapper_prefix(proto: onnx.ModelProto) -> None:
    """Initializers named as the net's own state_dict (``features.conv1_1.weight``), as in safetensors."""
    prefix = f"{WRAPPED_NET}."
    taken = {t.name for t in proto.graph.initializer} | {v.name for v in proto.graph.input}
    for tensor in proto.graph.initializer:
        if tensor.name.startswith(prefix) and tensor.name[len(prefix):] not in taken:
            new_name = tensor.name[len(prefix):]
            rename_value(proto.graph, tensor.name, new_name)
            taken.add(new_name)
            tensor.name = new_name


def declared_input_shapes(model: CaffeNet) -> dict[str, tuple[int, ...]]:
    """Each net input's shape as the prototxt declares it (placeholder sizes), by input name."""
    shapes: dict[str, tuple[int, ...]] = {}
    for step in model.steps:
        if step.type != "Input":
            continue
        module = model.get_submodule(model.module_path[step.layer])
        for top, shape in zip(step.tops, getattr(module, "declared_shapes", ())):
            shapes[model.caffe_blob.get(top, top)] = tuple(shape)
    missing = [name for name in model.input_names if name not in shapes]
    if missing:
        raise ExportError(f"the net declares no shape for input(s) {missing}", file=model.source or None)
    return shapes


def example_inputs(model: CaffeNet, size: tuple[int, int], batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Seeded inputs: 4-D inputs at (batch, C, *size), others at (batch, *declared[1:])."""
    rng = np.random.default_rng(seed)
    declared = declared_input_shapes(model)
    tensors = []
    for name in model.input_names:
        shape = declared[name]
        if len(shape) == SPATIAL_RANK:
            shape = (batch, shape[1], *size)
        elif shape:
            shape = (batch, *shape[1:])
        values = rng.uniform(*INPUT_RANGE, size=shape).astype(np.float32)
        tensors.append(torch.from_numpy(values))
    return tuple(tensors)


def _dynamic_axes(names: Sequence[str], ranks: Sequence[int], kind: str) -> dict[str, dict[int, str]]:
    axes = {}
    for index, (name, rank) in enumerate(zip(names, ranks)):
        if kind == "input":
            suffix = "" if index == 0 else f"_{index}"
            spatial = {HEIGHT_AXIS: f"height{suffix}", WIDTH_AXIS: f"width{suffix}"}
        else:
            spatial = {HEIGHT_AXIS: f"{name}_height", WIDTH_AXIS: f"{name}_width"}
        axes[name] = {BATCH_AXIS: "batch", **(spatial if rank == SPATIAL_RANK else {})}
    return axes


def _source_facts(model: CaffeNet, prototxt: str | os.PathLike | None,
                  caffemodel: str | os.PathLike | None) -> dict[str, str | None]:
    """Names (file names only, no folders) and MD5s of the source files.

    ``prototxt`` defaults to the net's source; a zoo net (``zoo:NAME``) is hashed as the text
    that ``zoo.resolve`` writes. Files given explicitly must exist.
    """
    facts: dict[str, str | None] = {}
    source = os.fspath(prototxt) if prototxt is not None else (model.source or "")
    if source and zoo.is_zoo_ref(source):
        facts[meta.PROTOTXT] = source
        facts[meta.PROTOTXT_MD5] = hashlib.md5(zoo.prototxt_text(source).encode("utf-8"),
                                               usedforsecurity=False).hexdigest()
    elif source and Path(source).is_file():
        facts[meta.PROTOTXT] = Path(source).name
        facts[meta.PROTOTXT_MD5] = file_md5(source)
    elif prototxt is not None:
        raise FileAccessError("no such prototxt file to hash into the ONNX metadata", file=source)
    elif source:
        facts[meta.PROTOTXT] = Path(source).name
    if caffemodel is not None:
        if not Path(caffemodel).is_file():
            raise FileAccessError("no such caffemodel file to hash into the ONNX metadata", file=str(caffemodel))
        facts[meta.CAFFEMODEL] = Path(caffemodel).name
        facts[meta.CAFFEMODEL_MD5] = file_md5(caffemodel)
    return facts


def _output_layout(family: ModelFamily, names: Sequence[str], split: bool) -> list[dict[str, Any]]:
    """Per ONNX output: its name and the heatmap/PAF channel ranges it holds (within itself)."""
    if split:
        heat, paf = family.heatmaps, family.pafs
        return [{"name": names[0], "heatmaps": [0, heat[1] - heat[0]]},
                {"name": names[1], "pafs": [0, paf[1] - paf[0]]}]
    layout = [{"name": name} for name in names]
    if family.heatmaps is not None and layout:
        layout[0].update({k: v for k, v in family.channels_json().items() if v is not None})
    return layout


def _metadata(model: CaffeNet, family: ModelFamily, names: Sequence[str], split: bool,
              sources: Mapping[str, str | None], precision: str) -> dict[str, Any]:
    convention = family.input_convention
    input_facts: dict[str, Any] = {"names": list(model.input_names), "layout": "NCHW"}
    if convention is not None:
        input_facts.update(channel_order=convention.channel_order, normalisation=convention.normalisation,
                           scale=convention.scale, shift=convention.shift, stride=convention.stride)
    values: dict[str, Any] = {
        meta.VERSION: posebridge.__version__, **sources,
        meta.FAMILY: family.name, meta.FAMILY_EVIDENCE: family.evidence, meta.SKELETON: family.skeleton,
        meta.STAGES: family.stages or None, meta.STAGE_LAYOUT: family.layout,
        meta.OUTPUTS: _output_layout(family, names, split), meta.INPUT: input_facts, meta.PRECISION: precision,
    }
    if family.heatmaps is not None:
        values[meta.CHANNELS] = family.channels_json()
    return values


def _quiet_export(module: nn.Module, inputs: tuple[torch.Tensor, ...], opset: int, input_names: Sequence[str],
                  output_names: Sequence[str], dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        for category, message in _QUIET_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=category)
        torch.onnx.export(module, inputs, buffer, dynamo=False, opset_version=opset, do_constant_folding=True,
                          input_names=list(input_names), output_names=list(output_names),
                          dynamic_axes=dynamic_axes)
    return buffer.getvalue()


def structural_check(model_bytes: bytes, output_ranks: Mapping[str, int], where: str) -> None:
    """onnx.checker (full) and strict shape inference; every output keeps its rank and a symbolic batch."""
    try:
        onnx.checker.check_model(model_bytes, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model_bytes, check_type=True, strict_mode=True,
                                                     data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"the exported graph fails onnx.checker / shape inference: {error}", file=where) from None
    for value in inferred.graph.output:
        dims = value.type.tensor_type.shape.dim
        rank = output_ranks.get(value.name)
        if rank is not None and len(dims) != rank:
            raise ExportError(f"shape inference gives output '{value.name}' rank {len(dims)}, PyTorch {rank}",
                              file=where)
        if dims and dims[BATCH_AXIS].HasField("dim_value"):
            raise ExportError(f"output '{value.name}' has a fixed batch size {dims[BATCH_AXIS].dim_value} "
                              "after shape inference (the batch axis was baked in)", file=where)


def _session(model_bytes: bytes, where: str):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = ORT_LOG_ERRORS_ONLY
    try:
        return onnxruntime.InferenceSession(model_bytes, options, providers=ORT_PROVIDERS)
    except Exception as error:  # onnxruntime raises its own exception types
        raise ExportError(f"onnxruntime cannot load the export: {error}", file=where) from None


def relative_error(actual: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """(max abs error, max abs error / max abs expected) over the finite values of ``expected``;
    inf when the finite/non-finite pattern or a non-finite value differs."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    finite = np.isfinite(expected)
    same_pattern = np.array_equal(finite, np.isfinite(actual))
    if not same_pattern or not np.array_equal(actual[~finite], expected[~finite], equal_nan=True):
        return float("inf"), float("inf")
    if not finite.any():
        return 0.0, 0.0
    error = float(np.max(np.abs(actual[finite] - expected[finite])))
    scale = float(np.max(np.abs(expected[finite])))
    return error, (error / scale if scale > 0 else (0.0 if error == 0 else float("inf")))


def _shape_text(shape: Sequence[int]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Reference:
    """PyTorch's (fp32) outputs for one set of check inputs."""

    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[np.ndarray, ...]


def pytorch_references(module: nn.Module, model: CaffeNet, sizes: Sequence[tuple[int, int]], batch: int,
                       where: str) -> list[Reference]:
    """The module run in PyTorch at each check size (seeded inputs)."""
    references = []
    for index, size in enumerate(sizes):
        inputs = example_inputs(model, tuple(size), batch, SEED + 1 + index)
        try:
            with torch.no_grad():
                outputs = tuple(t.numpy() for t in module(*inputs))
        except Exception as error:  # the net itself refuses this size: not an export problem
            raise ExportError(f"the converted net does not run at input {_shape_text(inputs[0].shape)} in PyTorch "
                              f"({error}); choose check sizes that it accepts", file=where) from None
        references.append(Reference(inputs, outputs))
    return references


def numeric_check(model_bytes: bytes, names: Sequence[str], references: Sequence[Reference], tolerance: float,
                  precision: str, where: str) -> list[OutputCheck]:
    """onnxruntime vs PyTorch at each reference; ExportError listing every diverging output."""
    session = _session(model_bytes, where)
    input_names = [i.name for i in session.get_inputs()]
    got_names = [o.name for o in session.get_outputs()]
    if got_names != list(names):
        raise ExportError(f"the export's outputs are {got_names}, expected {list(names)}", file=where)
    checks, failures = [], []
    for reference in references:
        shape = tuple(reference.inputs[0].shape)
        try:
            actual = session.run(None, {n: t.numpy() for n, t in zip(input_names, reference.inputs)})
        except Exception as error:  # onnxruntime raises its own exception types
            raise ExportError(f"onnxruntime fails at input {_shape_text(shape)}: {error}", file=where) from None
        for name, got, want in zip(names, actual, reference.outputs):
            if got.shape != want.shape:
                failures.append(f"output '{name}' has shape {_shape_text(got.shape)} in onnxruntime but "
                                f"{_shape_text(want.shape)} in PyTorch at input {_shape_text(shape)} "
                                "(a size was baked into the export)")
                continue
            max_abs, rel = relative_error(got, want)
            checks.append(OutputCheck(shape, name, tuple(got.shape), max_abs, rel, precision))
            if not rel <= tolerance:
                failures.append(f"output '{name}' diverges from PyTorch at input {_shape_text(shape)}: max abs "
                                f"error {max_abs:.3e}, relative error {rel:.3e} > {tolerance:.0e} ({precision})")
    if failures:
        raise ExportError("ONNX self-check failed: " + "; ".join(failures), file=where)
    return checks


def _check_summary(checks: Sequence[OutputCheck], batch: int, tolerance: float) -> dict[str, Any]:
    return {
        "batch": batch, "tolerance": tolerance,
        "sizes": sorted({_shape_text(c.input_shape) for c in checks}),
        "max_relative_error": {name: max(c.relative_error for c in checks if c.output == name)
                               for name in dict.fromkeys(c.output for c in checks)},
    }


def _trace(model: CaffeNet, module: _ExportModule, family: ModelFamily, names: Sequence[str],
           trace_size: tuple[int, int], opset: int, where: str) -> tuple[onnx.ModelProto, dict[str, int]]:
    """Trace ``module`` at ``trace_size`` (batch 1) into an ONNX model; also each output's rank."""
    trace_inputs = example_inputs(model, trace_size, 1, SEED)
    try:
        with torch.no_grad():
            whole = model(*trace_inputs)
    except Exception as error:  # the net refuses the trace size
        raise ExportError(f"the converted net does not run at the trace size {_shape_text(trace_inputs[0].shape)} "
                          f"({error})", file=where) from None
    first = whole[0] if isinstance(whole, tuple) else whole
    channels = first.shape[1] if first.dim() > 1 else None
    if family.output_channels is not None and channels != family.output_channels:
        raise ExportError(f"output '{model.output_names[0]}' has shape {tuple(first.shape)}, but its model family "
                          f"({family.name}, by {family.evidence}) has {family.output_channels} channels", file=where)
    traced_outputs = module.arrange(whole)
    ranks = {name: t.dim() for name, t in zip(names, traced_outputs)}
    axes = {**_dynamic_axes(model.input_names, [t.dim() for t in trace_inputs], "input"),
            **_dynamic_axes(names, [t.dim() for t in traced_outputs], "output")}
    try:
        model_bytes = _quiet_export(module, trace_inputs, opset, model.input_names, names, axes)
    except Exception as error:  # torch raises many types; name the failure for the user
        raise ExportError(f"torch.onnx.export failed: {type(error).__name__}: {error}", file=where) from None
    proto = onnx.load_from_string(model_bytes)
    _strip_wrapper_prefix(proto)
    return proto, ranks


def export_onnx(model: CaffeNet, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET,
                split_outputs: bool = False, fp16: bool = False,
                sizes: Sequence[tuple[int, int]] = CHECK_SIZES, batch: int = CHECK_BATCH,
                trace_size: tuple[int, int] = TRACE_SIZE, tolerance: float = TOLERANCE,
                fp16_tolerance: float | None = FP16_TOLERANCE,
                prototxt: str | os.PathLike | None = None, caffemodel: str | os.PathLike | None = None,
                metadata: Mapping[str, str] | None = None) -> ExportReport:
    """Export ``model`` to ``path`` as ONNX and check it (see the module docstring).

    ``sizes`` are the (height, width) checked at ``batch``; ``prototxt`` (default: the net's
    source) and ``caffemodel`` are hashed into the metadata and the caffemodel's MD5 recognises
    official weights; ``metadata`` adds string entries. Returns an :class:`ExportReport`.
    """
    started = time.perf_counter()
    where = os.fspath(path)
    if opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old: posebridge exports opset {MIN_OPSET} or newer", file=where)
    if not sizes:
        raise ExportError("no check sizes given: the export must be checked at sizes other than the traced one",
                          file=where)
    model.eval()
    sources = _source_facts(model, prototxt, caffemodel)
    family = recognise(model.structure, sources.get(meta.CAFFEMODEL_MD5))
    split = None
    names = list(model.output_names)
    if split_outputs:
        if family.heatmaps is None or family.pafs is None or len(names) != 1:
            raise ExportError("split outputs need an OpenPose net with heatmaps and PAFs in one output; "
                              f"this net has outputs {names} (heatmaps {family.heatmaps}, PAFs {family.pafs})",
                              file=where)
        split, names = (family.heatmaps, family.pafs), list(SPLIT_OUTPUT_NAMES)
    clashes = set(names) & set(model.input_names)
    if clashes:
        raise ExportError(f"output names {sorted(clashes)} are also input names", file=where)
    module = _ExportModule(model, split).eval()

    proto, ranks = _trace(model, module, family, names, trace_size, opset, where)
    values = _metadata(model, family, names, split is not None, sources, FP32)
    values.update(metadata or {})
    meta.set_metadata(proto, values)
    model_bytes = proto.SerializeToString()
    structural_check(model_bytes, ranks, where)
    references = pytorch_references(module, model, sizes, batch, where)
    checks = numeric_check(model_bytes, names, references, tolerance, FP32, where)
    summary = _check_summary(checks, batch, tolerance)

    fp16_error = None
    if fp16:
        proto = convert_to_fp16(proto)
        meta.set_metadata(proto, {meta.PRECISION: FP16})
        fp16_bytes = proto.SerializeToString()
        structural_check(fp16_bytes, ranks, where)
        limit = float("inf") if fp16_tolerance is None else fp16_tolerance
        fp16_checks = numeric_check(fp16_bytes, names, references, limit, FP16, where)
        fp16_error = max(c.relative_error for c in fp16_checks)
        checks += fp16_checks
        summary["fp16_max_relative_error"] = _check_summary(fp16_checks, batch, limit)["max_relative_error"]
        meta.set_metadata(proto, {meta.FP16_ERROR: fp16_error})
    meta.set_metadata(proto, {meta.EXPORT_CHECK: summary})

    data = proto.SerializeToString()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return ExportReport(
        path=Path(path), opset=opset, precision=FP16 if fp16 else FP32, input_names=tuple(model.input_names),
        output_names=tuple(names), family=family, checks=tuple(checks), tolerance=tolerance,
        fp16_max_relative_error=fp16_error, metadata={p.key: p.value for p in proto.metadata_props},
        file_bytes=len(data), seconds=time.perf_counter() - started)
