"""A converted net rearranged for CPU inference: packed oneDNN convolutions, channels-last, bf16.

:func:`tune` takes a :class:`~posebridge.converter.network.CaffeNet` and returns a
:class:`TunedNet` that runs the same layers in the same order with four changes:

* every plain 2-D convolution runs as one oneDNN primitive on weights reordered once, at build
  time, into oneDNN's blocked layout (PyTorch's eager ``conv2d`` reorders them on every call),
  with a following ReLU fused into it when the convolution's output feeds nothing else;
* MAX pooling without padding runs as ``max_pool2d`` (``ceil_mode`` when Caffe rounds up),
  which equals Caffe's count whenever stride <= kernel, instead of an explicit pad + pool;
* in float32, 3x3 stride-1 convolutions run by Winograd's F(6x6, 3x3) (as OpenCV dnn does;
  5x fewer multiply-adds): where the native kernel is available
  (:mod:`posebridge.runtime.native_winograd`: AVX-512 and a C compiler), every such convolution
  with at least :data:`NATIVE_MIN_IN_CHANNELS` input channels runs on it, with a following ReLU
  or PReLU fused in; otherwise those with many channels run on small maps by the PyTorch form
  (:mod:`posebridge.runtime.winograd`), chosen per call from the input's shape.
  ``use_winograd=False`` keeps the direct form everywhere;
* activations stay channels-last (NHWC) from the first layer to the last, and native
  convolutions write their outputs straight into the channel slice of the Concat that joins
  them (instead of the Concat copying them), where nothing else but native convolutions
  reads them.

``precision="fp32"`` computes what the converted net computes up to float32 rounding: relative
error about 1e-6 for the direct convolutions, about 1e-5 with Winograd layers (the converted
net's own error against float64 is about 1e-6; OpenCV dnn's against it about 4e-6).
``precision="bf16"`` stores weights and activations in bfloat16 (oneDNN accumulates in float32)
and returns float32 maps; ``precision="int8"`` runs the 3x3 and 1x1 convolutions with at least
:data:`NATIVE_MIN_IN_CHANNELS` input channels on the native int8 kernels (F(2x2, 3x3) Winograd:
:class:`~posebridge.runtime.native_winograd.NativeInt8WinogradConv`; 1x1:
:class:`~posebridge.runtime.native_winograd.NativeInt8PointwiseConv`) and everything else in
float32. Both are opt-in and their error is measured by ``posebridge bench``.
Layers without a bf16-safe form run in float32 inside a bf16 net. A build-time self-check runs
both nets on a small input and raises :class:`~posebridge.errors.ParityError` when the tuned one
disagrees beyond its tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from posebridge.converter.layers.activations import CaffePReLU
from posebridge.converter.layers.pooling import CaffePooling
from posebridge.converter.network import CaffeNet, input_channels
from posebridge.errors import ParityError, PosebridgeError
from posebridge.runtime import winograd
from posebridge.runtime.winograd import WinogradConv

PRECISIONS = ("fp32", "bf16", "int8")
#: Activation dtype per precision (int8 rounds inside its convolutions only).
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "int8": torch.float32}
#: Self-check: input (height, width), seed and the largest relative error accepted per precision.
CHECK_SIZE = (32, 32)
CHECK_SEED = 0
CHECK_TOLERANCE = {"fp32": 1e-4, "bf16": 0.1, "int8": 0.3}
#: Module types that compute correctly on bfloat16 tensors once their parameters are bfloat16.
#: Input shapes for which a PackedConv keeps reordered weights (each copy is the layer's size).
PACKED_SHAPES = 1
#: The native kernel runs 3x3 convolutions with at least this many input channels. Measured
#: against oneDNN's direct convolution (ms, 2 cores): 3 -> 64 at 368x656: 24.8 against 19.8;
#: 8 -> 16 at 184x328: 0.86 against 0.67; 16 -> 16: 0.94 against 1.4; 32 -> 64: 4.3 against 10.2;
#: 64 -> 64 at 368x656: 44 against 96; 128 -> 128 at 12x20: 0.21 against 0.34.
NATIVE_MIN_IN_CHANNELS = 16
_BF16_SAFE = ("Concat", "ReLU", "LeakyReLU", "CaffePReLU", "Split", "Slice", "InputLayer", "Dropout")


def mkldnn_ready() -> bool:
    """Whether PyTorch's oneDNN (mkldnn) convolution ops can be used on this machine."""
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
                and hasattr(torch.ops.mkldnn, "_reorder_convolution_weight"))


def cpu_flags() -> set[str]:
    """The CPU feature flags of this machine (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX-BF16).

    Without them bf16 still runs (emulated) but is slower than float32.
    """
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


class PackedConv(nn.Module):
    """A Conv2d as one oneDNN primitive on pre-reordered weights, optionally with a fused ReLU.

    oneDNN's best weight layout depends on the input size, so the weights are reordered once per
    input shape (kept for the :data:`PACKED_SHAPES` most recent shapes: a change of input size
    reorders again, a few milliseconds per layer); a reorder inside every call would cost up to a
    third of a small convolution's time.
    """

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype, relu: bool) -> None:
        super().__init__()
        self.padding = [int(p) for p in conv.padding]
        self.stride = [int(s) for s in conv.stride]
        self.dilation = [int(d) for d in conv.dilation]
        self.groups = int(conv.groups)
        self.attr = "relu" if relu else "none"
        self.bias = None if conv.bias is None else conv.bias.detach().to(dtype)
        self.plain_weight = conv.weight.detach().to(dtype).contiguous()
        self._packed: dict[tuple[int, ...], torch.Tensor] = {}

    def _pack(self, shape: tuple[int, ...]) -> torch.Tensor:
        packed = self._packed.get(shape)
        if packed is None:
            while len(self._packed) >= PACKED_SHAPES:
                self._packed.pop(next(iter(self._packed)))
            packed = torch.ops.mkldnn._reorder_convolution_weight(
                self.plain_weight, self.padding, self.stride, self.dilation, self.groups, list(shape))
            self._packed[shape] = packed
        return packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._pack(tuple(x.shape))
        return torch.ops.mkldnn._convolution_pointwise(
            x, weight, self.bias, self.padding, self.stride, self.dilation, self.groups, self.attr, [], "")


class ShapeSwitchedConv(nn.Module):
    """A 3x3 convolution run by Winograd's F(6x6, 3x3) or directly, chosen per call from the input's shape.

    :func:`posebridge.runtime.winograd.worth_it` picks: Winograd for enough channels on maps of
    bounded size, the direct (oneDNN) convolution elsewhere. Both compute the same convolution; they
    differ by float32 rounding (about 1e-5 of the largest output for Winograd, see
    :mod:`posebridge.runtime.winograd`).
    """

    def __init__(self, direct: nn.Module, conv: nn.Conv2d, relu: bool) -> None:
        super().__init__()
        self.direct = direct
        self.winograd = WinogradConv(conv, relu)
        self.pad = self.winograd.pad
        self.out_channels = int(conv.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out_h, out_w = x.shape[2] + 2 * self.pad[0] - 2, x.shape[3] + 2 * self.pad[1] - 2
        if winograd.worth_it(x.shape[1], self.out_channels, out_h, out_w):
            return self.winograd(x)
        return self.direct(x)


class ChannelsLastConv(nn.Module):
    """A Conv2d (and optionally its ReLU) without oneDNN prepacking: the fallback of PackedConv."""

    def __init__(self, conv: nn.Conv2d, dtype: torch.dtype, relu: bool) -> None:
        super().__init__()
        self.conv = conv.to(dtype)
        self.relu = relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.relu_(y) if self.relu else y


class MaxPool(nn.Module):
    """Caffe MAX pooling without padding as ``max_pool2d`` (equal to Caffe when stride <= kernel)."""

    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], ceil_mode: bool) -> None:
        super().__init__()
        self.kernel, self.stride, self.ceil_mode = kernel, stride, ceil_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, self.kernel, self.stride, ceil_mode=self.ceil_mode)


class ChannelsConcat(nn.Module):
    """Concat along channels of channels-last tensors, as a concat of their NHWC views.

    ``torch.cat(dim=1)`` on channels-last tensors takes a slow element-wise path (about 600 times
    slower than this for BODY_25's 3 x 128 channels at 23 x 41); the NHWC views are plain
    contiguous tensors joined on their last axis, and the result is again channels-last.
    """

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        if len(bottoms) == 1:
            return bottoms[0]
        joined = torch.cat([b.permute(0, 2, 3, 1) for b in bottoms], dim=3)
        return joined.permute(0, 3, 1, 2)


class Float32Island(nn.Module):
    """Runs a layer in float32 inside a reduced-precision net (inputs up-cast, outputs down-cast)."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner.float()
        self.dtype = dtype

    def forward(self, *inputs: torch.Tensor):
        result = self.inner(*(t.float() for t in inputs))
        if isinstance(result, tuple):
            return tuple(t.to(self.dtype) for t in result)
        return result.to(self.dtype)


def fast_concat(module: nn.Module) -> ChannelsConcat | None:
    """A ChannelsConcat for a Concat along axis 1 of 4-D blobs, else None."""
    from posebridge.converter.layers.tensor_ops import Concat

    if not isinstance(module, Concat):
        return None
    try:
        axis = module.rule.resolve(4)
    except Exception:  # an axis that does not exist for 4-D blobs: keep the layer as it is
        return None
    return ChannelsConcat() if axis == 1 else None


def fast_max_pool(module: nn.Module) -> MaxPool | None:
    """A MaxPool equal to a CaffePooling MAX layer, or None when the layer needs the general form."""
    if not isinstance(module, CaffePooling):
        return None
    plain = module.plain_max_form()
    if plain is None:
        return None
    h, w = module.height, module.width
    return MaxPool((h.kernel, w.kernel), (h.stride, w.stride), plain[0])


@dataclass(frozen=True)
class _Step:
    """One step of the tuned plan: a module (None for the input) and its blob versions."""

    key: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]


@dataclass(frozen=True)
class _ConcatLayout:
    """Where a channel Concat's bottoms lie in its output: (offset, channels) per bottom, and
    which bottoms their native convolutions write in place."""

    slices: tuple[tuple[int, int], ...]
    in_place: frozenset[int]

    @property
    def channels(self) -> int:
        """The output's channel count."""
        offset, channels = self.slices[-1]
        return offset + channels


@dataclass(frozen=True)
class _ConcatSlot:
    """A native convolution that writes its output straight into a Concat's buffer."""

    concat: str
    offset: int
    channels: int


def _output_channels(module: nn.Module) -> int | None:
    """The channel count a convolution module writes, None for other modules."""
    if isinstance(module, PackedConv):
        return int(module.plain_weight.shape[0])
    channels = getattr(module, "out_channels", None)
    return int(channels) if isinstance(channels, int) else None


def _kernel_usable(kernel: str, required: bool, failure: str) -> bool:
    """Whether a native kernel runs here; PosebridgeError("failure: why") when it is required but cannot."""
    from posebridge.runtime import native_winograd

    usable, why = native_winograd.availability(kernel)
    if required and not usable:
        raise PosebridgeError(f"{failure}: {why}")
    return usable


def _plain_conv(module: nn.Module) -> bool:
    """A 2-D convolution oneDNN's fused primitive takes: zero padding given as numbers."""
    return (type(module) is nn.Conv2d and module.padding_mode == "zeros" and isinstance(module.padding, tuple)
            and module.weight.dim() == 4)


def _consumers(net: CaffeNet) -> dict[str, list[int]]:
    users: dict[str, list[int]] = {}
    for index, step in enumerate(net.steps):
        for blob in step.bottoms:
            users.setdefault(blob, []).append(index)
    return users


class TunedNet(nn.Module):
    """A CaffeNet's layers in its order, tuned for CPU inference (see the module docstring).

    ``forward(x)`` takes one (N, C, H, W) float32 tensor and returns the net's first output as
    a contiguous (N, C', H', W') float32 tensor. ``winograd_convs`` counts the convolutions that
    may run by Winograd (either form), ``native_convs`` those on the native kernel, and
    ``in_place_concat_inputs`` the convolution outputs written straight into a Concat's buffer.
    """

    def __init__(self, net: CaffeNet, precision: str = "fp32", *, packed: bool | None = None,
                 use_winograd: bool = True, native: bool | None = None) -> None:
        super().__init__()
        if precision not in PRECISIONS:
            raise PosebridgeError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
        if len(net.input_names) != 1:
            raise PosebridgeError(f"the tuned runtime takes nets with one input; this one has {list(net.input_names)}")
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.packed = mkldnn_ready() if packed is None else packed
        # Winograd in bfloat16 would multiply the rounding of its transforms: float32 only.
        self.use_winograd = use_winograd and precision == "fp32"
        self.native = self.use_winograd and native is not False and _kernel_usable(
            "wino63", bool(native), "the native Winograd kernel cannot run here")
        self.int8 = precision == "int8" and _kernel_usable(
            "wino23_int8", True, "the tuned int8 net needs the native int8 Winograd kernel")
        self.winograd_convs = 0
        self.native_convs = 0
        self.input_name = net.input_names[0]
        self.output_version = net.output_versions[0]
        self.layers = nn.ModuleDict()
        self.plan: list[_Step] = []
        self.fused_relus = 0
        users = _consumers(net)
        skip: set[int] = set()
        for index, step in enumerate(net.steps):
            if index in skip:
                continue
            if step.type == "Input":
                self.plan.append(_Step("", (), step.tops))
                continue
            module = net._module(step)
            tops = step.tops
            if _plain_conv(module):
                native = self._runs_native(module)  # the native kernels fuse PReLU too, oneDNN only ReLU
                fused = self._fusable_activation(net, users, index, (nn.ReLU, CaffePReLU) if native else (nn.ReLU,))
                activation = None if fused is None else net._module(net.steps[fused])
                if fused is not None:
                    skip.add(fused)
                    tops = net.steps[fused].tops
                    self.fused_relus += 1
                module = self._native_conv(module, activation) if native else self._conv(module, fused is not None)
            else:
                module = fast_max_pool(module) or fast_concat(module) or self._in_precision(module)
            key = f"l{len(self.layers)}"
            self.layers[key] = module
            self.plan.append(_Step(key, step.bottoms, tops))
        self._concats, self._slots = self._concat_plan()
        self._last_use = self._release_points()
        self.eval()

    def _fusable_activation(self, net: CaffeNet, users: dict[str, list[int]], index: int,
                            kinds: tuple[type[nn.Module], ...]) -> int | None:
        """The index of an activation layer of one of ``kinds`` (exact types: a plain ReLU, not a
        leaky one) that is the only reader of this convolution's output."""
        step = net.steps[index]
        if len(step.tops) != 1 or step.tops[0] in net.output_versions:
            return None
        readers = users.get(step.tops[0], [])
        if len(readers) != 1:
            return None
        reader = net.steps[readers[0]]
        if type(net._module(reader)) not in kinds or len(reader.bottoms) != 1 or len(reader.tops) != 1:
            return None
        return readers[0]

    def _runs_native(self, conv: nn.Conv2d) -> bool:
        from posebridge.runtime.native_winograd import pointwise_applies

        if conv.in_channels < NATIVE_MIN_IN_CHANNELS or conv.weight.dtype != torch.float32:
            return False
        if self.int8 and pointwise_applies(conv):
            return True
        return (self.native or self.int8) and winograd.applies(conv)

    def _native_conv(self, conv: nn.Conv2d, activation: nn.Module | None) -> nn.Module:
        from posebridge.runtime.native_winograd import (NativeInt8PointwiseConv, NativeInt8WinogradConv,
                                                        NativeWinogradConv, pointwise_applies)

        if self.int8 and pointwise_applies(conv):
            kind: type[NativeWinogradConv] = NativeInt8PointwiseConv
        else:
            kind = NativeInt8WinogradConv if self.int8 else NativeWinogradConv
            self.winograd_convs += 1
        self.native_convs += 1
        if isinstance(activation, CaffePReLU):
            return kind(conv, slopes=activation.weight)
        return kind(conv, relu=activation is not None)

    def _conv(self, conv: nn.Conv2d, relu: bool) -> nn.Module:
        import copy

        direct = PackedConv(conv, self.dtype, relu) if self.packed else ChannelsLastConv(copy.deepcopy(conv),
                                                                                         self.dtype, relu)
        if (self.use_winograd and winograd.applies(conv)
                and winograd.enough_channels(conv.in_channels, conv.out_channels)):
            self.winograd_convs += 1
            return ShapeSwitchedConv(direct, conv, relu)
        return direct

    def _in_precision(self, module: nn.Module) -> nn.Module:
        import copy

        if self.dtype == torch.float32:
            return module
        if type(module).__name__ in _BF16_SAFE:
            return copy.deepcopy(module).to(self.dtype)
        return Float32Island(copy.deepcopy(module), self.dtype)

    def _release_points(self) -> dict[int, list[str]]:
        last: dict[str, int] = {}
        for index, step in enumerate(self.plan):
            for blob in (*step.bottoms, *step.tops):
                last[blob] = index
        last[self.output_version] = len(self.plan)
        points: dict[int, list[str]] = {}
        for blob, index in last.items():
            points.setdefault(index, []).append(blob)
        return points

    @property
    def in_place_concat_inputs(self) -> int:
        """How many convolution outputs are written straight into a Concat's buffer."""
        return len(self._slots)

    def _concat_plan(self) -> tuple[dict[str, _ConcatLayout], dict[str, _ConcatSlot]]:
        """Channel Concats whose bottoms native convolutions can write in place.

        A bottom qualifies when a native convolution with one top makes it, it appears once in
        this Concat and in no other, it is not the net's output, and everything else that reads
        it is a native convolution (they read a channel slice as it is). Other bottoms are copied.
        """
        from posebridge.runtime.native_winograd import NativeWinogradConv

        def native(key: str) -> bool:
            return isinstance(self.layers[key], NativeWinogradConv)

        maker: dict[str, _Step] = {top: step for step in self.plan for top in step.tops}
        made_channels = {top: _output_channels(self.layers[step.key]) for step in self.plan if step.key
                         for top in step.tops}
        readers: dict[str, list[_Step]] = {}
        for step in self.plan:
            for blob in step.bottoms:
                readers.setdefault(blob, []).append(step)
        concats: dict[str, _ConcatLayout] = {}
        slots: dict[str, _ConcatSlot] = {}
        for step in self.plan:
            if not step.key or not isinstance(self.layers[step.key], ChannelsConcat) or len(step.bottoms) < 2:
                continue
            channels = [made_channels.get(blob) for blob in step.bottoms]
            if any(c is None for c in channels):
                continue
            offsets = np.cumsum([0, *channels[:-1]]).tolist()
            in_place: set[int] = set()
            for position, blob in enumerate(step.bottoms):
                source = maker.get(blob)
                others = [r for r in readers.get(blob, []) if r is not step]
                if (source is None or not source.key or not native(source.key) or len(source.tops) != 1
                        or step.bottoms.count(blob) != 1 or blob == self.output_version
                        or source.key in slots or not all(r.key and native(r.key) for r in others)):
                    continue
                slots[source.key] = _ConcatSlot(step.key, int(offsets[position]), int(channels[position]))
                in_place.add(position)
            if not in_place:
                continue
            concats[step.key] = _ConcatLayout(tuple((int(o), int(c)) for o, c in zip(offsets, channels)),
                                              frozenset(in_place))
        return concats, slots

    def _concat_buffer(self, buffers: dict[str, torch.Tensor], key: str, like: torch.Tensor,
                       size: tuple[int, int]) -> torch.Tensor:
        """The (N, H, W, C) float32 buffer of Concat ``key`` in this forward, made on first use."""
        buffer = buffers.get(key)
        if buffer is None:  # (a later input of another size is refused by the convolution's out= check)
            buffer = torch.empty((like.shape[0], *size, self._concats[key].channels), dtype=torch.float32)
            buffers[key] = buffer
        return buffer

    def _run_into_concat(self, buffers: dict[str, torch.Tensor], key: str, x: torch.Tensor) -> torch.Tensor:
        slot = self._slots[key]
        module = self.layers[key]
        buffer = self._concat_buffer(buffers, slot.concat, x, module.output_size(x.shape[2], x.shape[3]))
        return module(x, out=buffer[..., slot.offset:slot.offset + slot.channels])

    def _join(self, buffers: dict[str, torch.Tensor], key: str, bottoms: Sequence[torch.Tensor]) -> torch.Tensor:
        layout = self._concats[key]
        buffer = self._concat_buffer(buffers, key, bottoms[0], (bottoms[0].shape[2], bottoms[0].shape[3]))
        for position, (bottom, (offset, channels)) in enumerate(zip(bottoms, layout.slices)):
            if position not in layout.in_place:
                buffer[..., offset:offset + channels].copy_(bottom.permute(0, 2, 3, 1))
        del buffers[key]
        return buffer.permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[str, torch.Tensor] = {}
        buffers: dict[str, torch.Tensor] = {}  # the Concat buffers being filled in place
        start = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        for index, step in enumerate(self.plan):
            if not step.key:
                result: Sequence[torch.Tensor] = (start,) * len(step.tops)
            else:
                bottoms = [values[b] for b in step.bottoms]
                if step.key in self._slots:
                    out = self._run_into_concat(buffers, step.key, bottoms[0])
                elif step.key in self._concats:
                    out = self._join(buffers, step.key, bottoms)
                else:
                    out = self.layers[step.key](*bottoms)
                result = out if isinstance(out, tuple) else (out,)
            for top, tensor in zip(step.tops, result):
                values[top] = tensor
            for blob in self._last_use.get(index, ()):
                values.pop(blob, None)
        return values[self.output_version].float().contiguous()


def _relative_error(ours: torch.Tensor, reference: torch.Tensor) -> float:
    scale = float(reference.abs().max())
    difference = float((ours.double() - reference.double()).abs().max())
    return difference / scale if scale > 0 else difference


def self_check(net: CaffeNet, tuned: TunedNet, *, size: tuple[int, int] = CHECK_SIZE,
               tolerance: float | None = None) -> float:
    """Relative error of ``tuned`` against ``net`` on one seeded input; ParityError beyond tolerance."""
    limit = CHECK_TOLERANCE[tuned.precision] if tolerance is None else tolerance
    channels = input_channels(net)
    rng = np.random.default_rng(CHECK_SEED)
    x = torch.from_numpy(rng.uniform(-0.5, 0.5, (1, channels, *size)).astype(np.float32))
    with torch.inference_mode():
        expected = net(x)
        expected = expected[0] if isinstance(expected, tuple) else expected
        error = _relative_error(tuned(x), expected)
    if not error <= limit:
        raise ParityError(f"the tuned {tuned.precision} net differs from the converted net by a relative error of "
                          f"{error:.3g} at input 1x{channels}x{size[0]}x{size[1]} (tolerance {limit:g})")
    return error


def tune(net: CaffeNet, precision: str = "fp32", *, check: bool = True, packed: bool | None = None,
         use_winograd: bool = True, native: bool | None = None) -> TunedNet:
    """The tuned form of ``net`` (see the module docstring); self-checked unless ``check`` is False.

    ``native``: None uses the native Winograd kernel where it is available, False never, True
    requires it (PosebridgeError saying why when it cannot run).
    """
    tuned = TunedNet(net, precision, packed=packed, use_winograd=use_winograd, native=native)
    if check:
        self_check(net, tuned)
    return tuned


def inference(module: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """A numpy (N, C, H, W) float32 -> numpy float32 function running ``module`` under inference mode."""

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = module(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        if isinstance(out, tuple):
            out = out[0]
        return out.numpy()

    return run
