"""A converted net as an ncnn model: a ``.param`` text graph and a ``.bin`` weight file.

ncnn (Tencent, BSD-3; the ``ncnn`` wheel) runs 3x3 stride-1 convolutions with native,
fused Winograd kernels (F(6x6, 3x3) and F(4x4, 3x3)) on packed channel blocks; on nets made
of 3x3 convolutions (BODY_25) that is the fastest float32 CPU path found (see
``posebridge bench``). :func:`ncnn_model` writes the graph in memory, :func:`export_ncnn`
checks it against PyTorch and writes the two files.

Layers and the Caffe semantics they keep (ncnn runs one image at a time, CHW):

================  ==============================================================================
Caffe             ncnn
================  ==============================================================================
Input             Input (the first input only; nets with several inputs are refused)
Convolution       Convolution (group 1; symmetric pads, strides, dilations; bias), with a
                  ReLU fused (activation 1) when a plain ReLU is the output's only reader
ReLU              ReLU (``0`` = negative_slope for the leaky form)
PReLU             PReLU (one slope per channel, or one shared)
Pooling MAX       Pooling with explicit pads ``p`` left and ``r`` right, floor rounding:
                  :mod:`posebridge.converter.layers.pooling` proves that pooling of
                  [p | input | r] gives Caffe's windows; ncnn pads MAX with -FLT_MAX, as Caffe
Pooling AVE       Pooling, only when no pad is involved (every window inside the input, so the
                  divisors agree); others are refused
Concat            Concat on the channel axis (Caffe axis 1)
Dropout, Split    nothing (identities at test time: their readers read the bottom)
================  ==============================================================================

A blob read by several layers gets an ncnn ``Split``. Anything else raises
:class:`~posebridge.errors.UnsupportedLayerError` naming the layer. Weights are float32
(tag 0, then the raw values), bias and slopes raw float32, in the layer order of the
``.param`` file.
"""

from __future__ import annotations

import os
import re
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass, field

import numpy as np
import torch
from torch import nn

from posebridge.atomic import atomic_path
from posebridge.converter.network import CaffeNet, Step, input_channels
from posebridge.errors import ExportError, PosebridgeError, UnsupportedLayerError

__all__ = ["CHECK_SIZES", "NcnnModel", "NcnnNet", "SUPPORTED_LAYERS", "TOLERANCE", "check_against_torch", "export_ncnn",
           "ncnn_model"]

MAGIC = 7767517
#: ncnn's weight tag for raw float32 data.
FLOAT32_TAG = 0
#: ncnn Convolution activation_type for ReLU.
RELU_ACTIVATION = 1
#: ncnn Pooling pad_mode "valid": exactly the explicit pads, floor rounding.
VALID_PADDING = 1
POOL_TYPES = {"MAX": 0, "AVE": 1}
#: Caffe layers that pass their bottom through unchanged at test time (written as nothing).
IDENTITY_LAYERS = ("Dropout", "Split")
#: Names written as they are: ncnn reads a name as one whitespace-free token of at most 255 bytes.
SAFE_NAME = re.compile(r"[A-Za-z0-9_.@:/+\-]{1,200}")
#: (height, width) checked against PyTorch at batch 2; none a multiple of 8.
CHECK_SIZES: tuple[tuple[int, int], ...] = ((57, 91), (90, 70))
CHECK_BATCH = 2
#: Largest relative error (max abs difference / max abs PyTorch value) accepted: ncnn's
#: Winograd convolutions round differently from the direct form (OpenPose nets measure 1e-6..1e-5).
TOLERANCE = 5e-5


@dataclass
class NcnnModel:
    """An ncnn graph (``param`` text) with its weights (``weights`` bytes) and blob names."""

    param: str
    weights: bytes
    input_name: str
    output_name: str
    layer_count: int


@dataclass
class _Writer:
    """Collects ncnn layer lines and weight bytes; names blobs with ncnn-safe tokens and hands out
    Split copies of shared blobs."""

    readers: dict[str, int]
    lines: list[str] = field(default_factory=list)
    chunks: list[bytes] = field(default_factory=list)
    blobs: set[str] = field(default_factory=set)
    copies: dict[str, list[str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, name: str) -> str:
        """``name`` itself when ncnn's param parser reads it back unchanged, else ``#N`` (safe names
        never contain '#', so the two kinds cannot collide)."""
        if name not in self.tokens:
            self.tokens[name] = name if SAFE_NAME.fullmatch(name) else f"#{len(self.tokens)}"
        return self.tokens[name]

    def read(self, blob: str) -> str:
        """The token a reader of ``blob`` uses (its own Split copy when the blob is shared)."""
        copies = self.copies.get(blob)
        return copies.pop(0) if copies else self.token(blob)

    def layer(self, kind: str, name: str, bottoms: Sequence[str], tops: Sequence[str],
              params: dict[int, int | float] | None = None) -> None:
        """One layer line; ``bottoms`` are tokens from :meth:`read`, ``name`` and ``tops`` Caffe names."""
        values = " ".join(f"{key}={_number(value)}" for key, value in (params or {}).items())
        top_tokens = [self.token(top) for top in tops]
        line = f"{kind} {self.token(name)} {len(bottoms)} {len(tops)} {' '.join((*bottoms, *top_tokens))}"
        self.lines.append(f"{line} {values}".rstrip())
        self.blobs.update(bottoms)
        self.blobs.update(top_tokens)
        for top, top_token in zip(tops, top_tokens):
            count = self.readers.get(top, 0)
            if count > 1:
                copies = [f"{top_token}#{i}" for i in range(count)]
                self.lines.append(f"Split {top_token}#split 1 {count} {top_token} {' '.join(copies)}")
                self.blobs.update(copies)
                self.copies[top] = copies

    def floats(self, values: torch.Tensor | np.ndarray, tagged: bool = False) -> None:
        data = np.ascontiguousarray(np.asarray(values, dtype=np.float32)).tobytes()
        self.chunks.append((struct.pack("<I", FLOAT32_TAG) if tagged else b"") + data)


def _number(value: int | float) -> str:
    """A param value as ncnn reads it: ints as they are, floats as float32's shortest round-trip
    text (at most 14 characters; ncnn reads at most 15, so a long repr would lose its exponent)."""
    return str(value) if isinstance(value, int) else str(np.float32(value))


_LayerWriter = Callable[[_Writer, CaffeNet, Step, list[str], str], None]
_WRITERS: dict[str, _LayerWriter] = {}


def _writes(*caffe_types: str) -> Callable[[_LayerWriter], _LayerWriter]:
    def register(function: _LayerWriter) -> _LayerWriter:
        for caffe_type in caffe_types:
            _WRITERS[caffe_type] = function
        return function
    return register


def _refuse(net: CaffeNet, step: Step, why: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"ncnn export: {step.type} {why}", file=net.source or None, layer=step.layer)


@_writes("Convolution")
def _convolution(out: _Writer, net: CaffeNet, step: Step, bottoms: list[str], top: str, relu: bool = False) -> None:
    conv = net._module(step)
    if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or not isinstance(conv.padding, tuple):
        raise _refuse(net, step, f"of form {type(conv).__name__} has no ncnn writer")
    if conv.groups != 1:
        raise _refuse(net, step, f"with group {conv.groups} is not written (group 1 only)")
    weight = conv.weight.detach()
    params: dict[int, int | float] = {
        0: conv.out_channels, 1: conv.kernel_size[1], 11: conv.kernel_size[0],
        2: conv.dilation[1], 12: conv.dilation[0], 3: conv.stride[1], 13: conv.stride[0],
        4: int(conv.padding[1]), 14: int(conv.padding[0]), 5: int(conv.bias is not None), 6: weight.numel()}
    if relu:
        params[9] = RELU_ACTIVATION
    out.layer("Convolution", step.layer, bottoms, [top], params)
    out.floats(weight, tagged=True)
    if conv.bias is not None:
        out.floats(conv.bias.detach())


@_writes("ReLU")
def _relu(out: _Writer, net: CaffeNet, step: Step, bottoms: list[str], top: str) -> None:
    module = net._module(step)
    if type(module) is nn.ReLU:
        out.layer("ReLU", step.layer, bottoms, [top])
    elif type(module) is nn.LeakyReLU:
        out.layer("ReLU", step.layer, bottoms, [top], {0: float(module.negative_slope)})
    else:
        raise _refuse(net, step, f"of form {type(module).__name__} has no ncnn writer")


@_writes("PReLU")
def _prelu(out: _Writer, net: CaffeNet, step: Step, bottoms: list[str], top: str) -> None:
    slopes = net._module(step).weight.detach().reshape(-1)
    out.layer("PReLU", step.layer, bottoms, [top], {0: slopes.numel()})
    out.floats(slopes)


@_writes("Pooling")
def _pooling(out: _Writer, net: CaffeNet, step: Step, bottoms: list[str], top: str) -> None:
    from posebridge.converter.layers.pooling import CaffePooling

    pool = net._module(step)
    if not isinstance(pool, CaffePooling) or pool.method not in POOL_TYPES:
        raise _refuse(net, step, f"{getattr(pool, 'method', type(pool).__name__)} has no ncnn writer "
                                 "(MAX, or AVE without padding)")
    h, w = pool.height, pool.width
    if pool.method == "AVE" and (h.pad or h.right or w.pad or w.right):
        raise _refuse(net, step, "AVE with padding or CEIL rounding is not written: ncnn's divisor differs "
                                 "from Caffe's there")
    if pool.method == "MAX" and (h.may_start_beyond or w.may_start_beyond):
        raise _refuse(net, step, "MAX with stride > kernel and CEIL rounding is not written")
    out.layer("Pooling", step.layer, bottoms, [top], {
        0: POOL_TYPES[pool.method], 1: w.kernel, 11: h.kernel, 2: w.stride, 12: h.stride,
        3: w.pad, 14: w.right, 13: h.pad, 15: h.right, 5: VALID_PADDING})


@_writes("Concat")
def _concat(out: _Writer, net: CaffeNet, step: Step, bottoms: list[str], top: str) -> None:
    module = net._module(step)
    try:
        axis = module.rule.resolve(4)
    except Exception:  # noqa: BLE001 - an axis that 4-D blobs do not have
        axis = None
    if axis != 1:
        raise _refuse(net, step, f"along axis {axis} is not written (channel axis 1 only)")
    out.layer("Concat", step.layer, bottoms, [top], {0: 0})


def _fused_relu(net: CaffeNet, step: Step, readers: dict[str, list[Step]]) -> Step | None:
    """The plain ReLU that is the only reader of a convolution's output (not a net output)."""
    users = readers.get(step.tops[0], [])
    if step.type != "Convolution" or len(users) != 1 or step.tops[0] in net.output_versions:
        return None
    user = users[0]
    return user if user.type == "ReLU" and type(net._module(user)) is nn.ReLU else None


def ncnn_model(net: CaffeNet) -> NcnnModel:
    """``net`` as an ncnn graph and weights, in memory. Raises UnsupportedLayerError for layers
    ncnn cannot run with Caffe's semantics (see the module docstring)."""
    if len(net.input_names) != 1 or len(net.output_versions) != 1:
        raise UnsupportedLayerError(f"ncnn export takes nets with one input and one output; this one has "
                                    f"inputs {list(net.input_names)} and outputs {list(net.output_names)}",
                                    file=net.source or None)
    readers: dict[str, list[Step]] = {}
    for step in net.steps:
        for blob in step.bottoms:
            readers.setdefault(blob, []).append(step)
    alias: dict[str, str] = {}
    fused_relus: dict[str, Step] = {}  # convolution layer -> the ReLU written into it
    for step in net.steps:
        relu = _fused_relu(net, step, readers)
        if relu is not None:
            fused_relus[step.layer] = relu
        if step.type in IDENTITY_LAYERS:
            for top in step.tops:
                alias[top] = alias.get(step.bottoms[0], step.bottoms[0])
    fused = {relu.layer for relu in fused_relus.values()}
    counts = {blob: sum(1 for s in users if s.layer not in fused and s.type not in IDENTITY_LAYERS)
              for blob, users in readers.items()}
    for blob, source in alias.items():  # readers of an identity's output read its input
        counts[source] = counts.get(source, 0) + counts.get(blob, 0)
    out = _Writer({blob: count for blob, count in counts.items()})
    for step in net.steps:
        if step.layer in fused or step.type in IDENTITY_LAYERS:
            continue
        if step.type == "Input":
            out.layer("Input", step.layer, [], [step.tops[0]])
            continue
        writer = _WRITERS.get(step.type)
        if writer is None:
            raise _refuse(net, step, "has no ncnn writer; supported: " + ", ".join(SUPPORTED_LAYERS))
        if len(step.tops) != 1:
            raise _refuse(net, step, f"with {len(step.tops)} tops is not written")
        bottoms = [out.read(alias.get(b, b)) for b in step.bottoms]
        relu = fused_relus.get(step.layer)
        if relu is not None:
            _convolution(out, net, step, bottoms, relu.tops[0], relu=True)
        else:
            writer(out, net, step, bottoms, step.tops[0])
    output = out.token(alias.get(net.output_versions[0], net.output_versions[0]))
    header = f"{MAGIC}\n{len(out.lines)} {len(out.blobs)}\n"
    return NcnnModel(header + "\n".join(out.lines) + "\n", b"".join(out.chunks), out.token(_input_version(net)),
                     output, len(out.lines))


def _input_version(net: CaffeNet) -> str:
    for step in net.steps:
        if step.type == "Input":
            return step.tops[0]
    raise UnsupportedLayerError("ncnn export: the net declares no input", file=net.source or None)


SUPPORTED_LAYERS: tuple[str, ...] = tuple(sorted(("Input", *IDENTITY_LAYERS, *_WRITERS)))


@dataclass
class NcnnNet:
    """An ncnn net opened from an :class:`NcnnModel`, float32 throughout (no fp16/bf16/int8).

    The model's bytes are not kept: ncnn holds its own copy of the weights.
    """

    model: InitVar[NcnnModel]
    threads: int | None = None
    input_name: str = ""
    output_name: str = ""
    _net: object = field(default=None, repr=False)

    def __post_init__(self, model: NcnnModel) -> None:
        import ncnn

        self.input_name, self.output_name = model.input_name, model.output_name
        net = ncnn.Net()
        option = net.opt
        option.use_fp16_packed = option.use_fp16_storage = option.use_fp16_arithmetic = False
        option.use_bf16_storage = option.use_bf16_packed = False
        option.use_int8_inference = option.use_int8_storage = option.use_int8_arithmetic = False
        option.use_vulkan_compute = False
        option.openmp_blocktime = 0  # no spinning between layers: other threads (assembly, decode) get the cores
        if self.threads:
            option.num_threads = self.threads
        # The graph is parsed from memory; the weights load from a file, so that ncnn owns copies
        # of them (a load from memory may keep pointers into the Python bytes).
        if net.load_param_mem(model.param) != 0:
            raise ExportError("ncnn refused the written graph")
        with tempfile.TemporaryDirectory(prefix="posebridge-ncnn-") as folder:
            weights = os.path.join(folder, "net.bin")
            with open(weights, "wb") as stream:
                stream.write(model.weights)
            if net.load_model(weights) != 0:
                raise ExportError("ncnn refused the written weights")
        self._net = net

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, C, H, W) float32 -> the net's output (N, C', H', W') float32, one image at a time."""
        import ncnn

        results = []
        for image in np.ascontiguousarray(batch, dtype=np.float32):
            extractor = self._net.create_extractor()
            extractor.input(self.input_name, ncnn.Mat(image))
            status, output = extractor.extract(self.output_name)
            if status != 0:
                raise ExportError(f"ncnn failed on an input of {image.shape[1]}x{image.shape[2]} (status {status})")
            results.append(np.array(output, dtype=np.float32))
        return np.stack(results)


def check_against_torch(net: CaffeNet, opened: NcnnNet, sizes: Sequence[tuple[int, int]] = CHECK_SIZES, *,
                        batch: int = CHECK_BATCH, tolerance: float = TOLERANCE, seed: int = 0,
                        error_type: type[PosebridgeError] = ExportError) -> float:
    """The largest relative error of ncnn against the converted net over ``sizes`` (uniform inputs
    in [-0.5, 0.5); the ONNX export check's metric); raises ``error_type`` naming the size and error
    when it exceeds ``tolerance``."""
    from posebridge.converter.onnx_export import relative_error

    channels = input_channels(net)
    worst = 0.0
    for index, (height, width) in enumerate(sizes):
        x = np.random.default_rng(seed + index).uniform(-0.5, 0.5, (batch, channels, height, width)).astype(np.float32)
        with torch.inference_mode():
            expected = net(torch.from_numpy(x)).numpy()
        actual = opened.run(x)
        if actual.shape != expected.shape:
            raise error_type(f"ncnn output shape {list(actual.shape)} differs from PyTorch's {list(expected.shape)} "
                              f"at input {height}x{width}", file=net.source or None)
        error = relative_error(actual, expected)[1]
        if not error <= tolerance:
            raise error_type(f"ncnn differs from PyTorch by {error:.2e} (relative) at input {height}x{width}, "
                              f"batch {batch}; tolerance {tolerance:.0e}", file=net.source or None)
        worst = max(worst, error)
    return worst


def export_ncnn(net: CaffeNet, param_path: str | os.PathLike, bin_path: str | os.PathLike | None = None, *,
                check_sizes: Sequence[tuple[int, int]] = CHECK_SIZES) -> float:
    """Write ``net`` as ``param_path`` (graph) and ``bin_path`` (weights; default: beside it with
    suffix .bin) after checking ncnn against PyTorch at ``check_sizes`` (batch 2). Returns the
    largest relative error; nothing is written when a check fails."""
    param_path = os.fspath(param_path)
    bin_path = os.fspath(bin_path) if bin_path is not None else os.path.splitext(param_path)[0] + ".bin"
    model = ncnn_model(net)
    error = check_against_torch(net, NcnnNet(model), check_sizes) if check_sizes else 0.0
    with atomic_path(bin_path) as weights_tmp, atomic_path(param_path) as param_tmp:
        weights_tmp.write_bytes(model.weights)
        param_tmp.write_text(model.param, encoding="ascii")
    return error
