"""3x3 convolutions by Winograd's F(6x6, 3x3) in a small native kernel (C, AVX-512), bias and (P)ReLU fused.

:class:`~posebridge.runtime.winograd.WinogradConv` computes the same algorithm with PyTorch
operations, one memory pass per transform step; most of its time goes into those passes. The
native kernel (``native/wino63.c``) works on blocks of 8 output tiles per thread: it transforms
their input tiles into a buffer that stays in the core's cache, multiplies them with the
transformed filters (a 8 x 32 block of float32 accumulators in AVX-512 registers), transforms
the products back and writes the NHWC output with the bias added and the ReLU or PReLU applied.

The transforms are generated C code, built from the exact matrices of
:func:`posebridge.runtime.winograd.transforms` (rows of ``B^T`` that differ only in the signs of
their odd columns share one even and one odd partial sum; ``A^T`` reads sums and differences of
paired columns), so the kernel and the PyTorch form compute the same F(6x6, 3x3). Rounding
differs from the direct convolution by about 1e-5 of a layer's largest output, as for
:class:`~posebridge.runtime.winograd.WinogradConv`.

The library is compiled on first use with the system C compiler (``$CC``, else ``cc``;
``-O3 -mavx512f -mfma -fopenmp``) and kept in ``$XDG_CACHE_HOME/posebridge/native`` under a key
of the source, flags and compiler version. It is used only on CPUs with AVX-512F, and never
when ``POSEBRIDGE_NATIVE=0``; :func:`availability` says why it is not used. It shares
PyTorch's OpenMP runtime (both load ``libgomp.so.1``) and its thread count.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import nn

from posebridge.atomic import atomic_path
from posebridge.errors import FileAccessError
from posebridge.runtime import winograd

SOURCE = Path(__file__).with_name("native") / "wino63.c"
INT8_SOURCE = Path(__file__).with_name("native") / "wino23_int8.c"
MARKER = "/* @TRANSFORMS@ */"
FLAGS = ("-O3", "-mavx512f", "-mfma", "-fopenmp", "-shared", "-fPIC", "-std=c11")
INT8_FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512dq", "-mavx512vl", "-mavx512vnni", "-mfma", "-fopenmp",
              "-shared", "-fPIC", "-std=c11")
ENABLE_ENV = "POSEBRIDGE_NATIVE"
CACHE_ENV = "XDG_CACHE_HOME"
CACHE_SUBDIR = ("posebridge", "native")
ABI = 2
#: Tile size m of F(m x m, 3 x 3) and the packing of the transformed filters (see wino63.c).
TILE = 6
IN_BLOCK, OUT_BLOCK = 16, 32
ACTIVATIONS = {"none": 0, "relu": 1, "prelu": 2}
COMPILE_TIMEOUT_S = 120


class NativeUnavailable(RuntimeError):
    """The native kernel cannot be used here; the message says why."""


def _vector_sum(terms: list[tuple[float, str]]) -> str:
    """C for sum(c * v) over AVX-512 vectors, with adds and subtracts for coefficients of +-1."""
    expression = None
    for coefficient, name in terms:
        if coefficient == 0:
            continue
        if expression is None:
            if coefficient == 1:
                expression = name
            elif coefficient == -1:
                expression = f"_mm512_sub_ps(_mm512_setzero_ps(), {name})"
            else:
                expression = f"_mm512_mul_ps(_mm512_set1_ps({coefficient!r}f), {name})"
        elif coefficient == 1:
            expression = f"_mm512_add_ps({expression}, {name})"
        elif coefficient == -1:
            expression = f"_mm512_sub_ps({expression}, {name})"
        else:
            expression = f"_mm512_fmadd_ps(_mm512_set1_ps({coefficient!r}f), {name}, {expression})"
    return expression or "_mm512_setzero_ps()"


def _row_paired(matrix: np.ndarray, name: str) -> list[str]:
    """``o = matrix @ d`` where rows equal on even columns and opposite on odd ones share E +- O."""
    rows = [[float(c) for c in row] for row in matrix]
    width = len(rows[0])
    lines = [f"static inline void {name}(const __m512 *d, __m512 *o) {{"]
    done: set[int] = set()
    for i, row in enumerate(rows):
        if i in done:
            continue
        partner = next((k for k in range(i + 1, len(rows)) if k not in done
                        and all(row[j] == rows[k][j] for j in range(0, width, 2))
                        and all(row[j] == -rows[k][j] for j in range(1, width, 2))
                        and any(row[j] != 0 for j in range(1, width, 2))), None)
        if partner is None:
            lines.append(f"    o[{i}] = {_vector_sum([(c, f'd[{j}]') for j, c in enumerate(row)])};")
            continue
        even = _vector_sum([(c, f"d[{j}]") for j, c in enumerate(row) if j % 2 == 0])
        odd = _vector_sum([(c, f"d[{j}]") for j, c in enumerate(row) if j % 2 == 1])
        lines.append(f"    {{ const __m512 ev = {even}, od = {odd};")
        lines.append(f"      o[{i}] = _mm512_add_ps(ev, od); o[{partner}] = _mm512_sub_ps(ev, od); }}")
        done.update((i, partner))
    return lines + ["}"]


def _column_paired(matrix: np.ndarray, name: str) -> list[str]:
    """``o = matrix @ m`` reading sums / differences of neighbouring columns equal in magnitude in every row."""
    rows = [[float(c) for c in row] for row in matrix]
    width = len(rows[0])
    pairs, singles = [], []
    j = 0
    while j < width:
        if j + 1 < width and all(abs(r[j]) == abs(r[j + 1]) for r in rows) and any(r[j] != 0 for r in rows):
            pairs.append(j)
            j += 2
        else:
            singles.append(j)
            j += 1
    lines = [f"static inline void {name}(const __m512 *m, __m512 *o) {{"]
    for j in pairs:
        lines.append(f"    const __m512 s{j} = _mm512_add_ps(m[{j}], m[{j + 1}]), d{j} = _mm512_sub_ps(m[{j}], m[{j + 1}]);")
    for i, row in enumerate(rows):
        terms = [(row[j], f"m[{j}]") for j in singles]
        terms += [(row[j], f"s{j}" if row[j] == row[j + 1] else f"d{j}") for j in pairs if row[j] != 0]
        lines.append(f"    o[{i}] = {_vector_sum(terms)};")
    return lines + ["}"]


def generated_transforms() -> str:
    """C of ``bt8`` (B^T of F(6,3) over 8 vectors) and ``at8`` (A^T: 8 vectors to 6), from the exact matrices."""
    at, _, bt = winograd.transforms(TILE)
    return "\n".join(_row_paired(bt, "bt8") + _column_paired(at, "at8")) + "\n"


def source() -> str:
    """The kernel's complete C source: ``native/wino63.c`` with the generated transforms inserted."""
    text = SOURCE.read_text(encoding="utf-8")
    if MARKER not in text:
        raise NativeUnavailable(f"{SOURCE} lacks the marker {MARKER}")
    return text.replace(MARKER, generated_transforms())


@dataclass(frozen=True)
class Kernel:
    """One native library: its C source, compiler flags, the CPU flags it needs and its entry
    points (name -> argument types, "p" a pointer, "i" an int; each returns an int)."""

    name: str
    text: Callable[[], str]
    flags: tuple[str, ...]
    cpu_flags: frozenset[str]
    abi_symbol: str
    functions: dict[str, str]


KERNELS = {
    "wino63": Kernel("wino63", source, FLAGS, frozenset({"avx512f"}), "wino63_abi",
                     {"wino63_forward": "piiiiiipipippii"}),
    "wino23_int8": Kernel("wino23_int8", lambda: INT8_SOURCE.read_text(encoding="utf-8"), INT8_FLAGS,
                          frozenset({"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_vnni"}), "wino23_int8_abi",
                          {"wino23_int8_forward": "piiiiiipppipippii", "pointwise_int8_forward": "piiipppipippii"}),
}
_CTYPES = {"p": ctypes.c_void_p, "i": ctypes.c_int}


def cache_dir() -> Path:
    """Where compiled kernels are kept."""
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


def _compiler() -> str:
    name = os.environ.get("CC") or "cc"
    path = shutil.which(name)
    if path is None:
        raise NativeUnavailable(f"no C compiler: '{name}' is not on PATH (set CC)")
    return path


@lru_cache(maxsize=None)
def _compiler_version(compiler: str) -> str:
    """What ``compiler --version`` prints (part of the cache key, and the bench's machine facts)."""
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeUnavailable(f"the C compiler '{compiler}' does not run: {error}") from None


def _missing_cpu_flags(kernel: Kernel) -> list[str]:
    from posebridge.runtime.tuned_torch import cpu_flags

    return sorted(kernel.cpu_flags - cpu_flags())


def build(folder: Path | None = None, kernel: str = "wino63") -> Path:
    """Compile a kernel (once per source, flags and compiler) and return the shared library's path."""
    spec = KERNELS[kernel]
    compiler = _compiler()
    text = spec.text()
    version = _compiler_version(compiler)
    key = hashlib.sha256("\0".join((text, " ".join(spec.flags), version)).encode()).hexdigest()[:24]
    target_dir = folder if folder is not None else cache_dir()
    target = target_dir / f"{kernel}-{key}.so"
    if target.is_file():
        return target
    try:
        # atomic: another process sees the old state or the whole library, never a partial one
        with tempfile.TemporaryDirectory(prefix="posebridge-native-") as scratch, atomic_path(target) as built:
            c_file = Path(scratch) / f"{kernel}.c"
            c_file.write_text(text, encoding="utf-8")
            result = subprocess.run([compiler, *spec.flags, "-o", str(built), str(c_file)], capture_output=True,
                                    text=True, timeout=COMPILE_TIMEOUT_S)
            if result.returncode != 0:
                first = (result.stderr.strip().splitlines() or ["no message"])[0]
                raise NativeUnavailable(f"compiling the kernel with '{compiler}' failed: {first}")
    except (OSError, subprocess.SubprocessError, FileAccessError) as error:
        raise NativeUnavailable(f"cannot build the kernel in {target_dir}: {error}") from None
    return target


@lru_cache(maxsize=None)
def _library(kernel: str = "wino63") -> ctypes.CDLL:
    if os.environ.get(ENABLE_ENV, "1") == "0":
        raise NativeUnavailable(f"turned off by {ENABLE_ENV}=0")
    spec = KERNELS[kernel]
    missing = _missing_cpu_flags(spec)
    if missing:
        raise NativeUnavailable(f"the CPU lacks {', '.join(missing)}")
    library = ctypes.CDLL(str(build(kernel=kernel)))
    if getattr(library, spec.abi_symbol)() != ABI:
        raise NativeUnavailable("the cached kernel has another ABI version")
    for name, signature in spec.functions.items():
        function = getattr(library, name)
        function.argtypes = [_CTYPES[code] for code in signature]
        function.restype = ctypes.c_int
    return library


def availability(kernel: str = "wino63") -> tuple[bool, str]:
    """(True, "") when the kernel is built and loaded; (False, why) otherwise. Cached per process."""
    try:
        _library(kernel)
    except NativeUnavailable as reason:
        return False, str(reason)
    return True, ""


def describe() -> str:
    """One line for reports: the compiler the kernel was built with, or why it is not used."""
    usable, why = availability()
    if not usable:
        return f"not used ({why})"
    try:
        version = _compiler_version(_compiler())
    except NativeUnavailable:
        version = ""
    return f"used (built with {(version.splitlines() or ['an unknown compiler'])[0].strip()})"


def available(kernel: str = "wino63") -> bool:
    """Whether :class:`NativeWinogradConv` (or, for "wino23_int8", :class:`NativeInt8WinogradConv`) can run here."""
    return availability(kernel)[0]


def pack_filters(weight: torch.Tensor) -> np.ndarray:
    """``G w G^T`` of a (C_out, C_in, 3, 3) weight, computed in float64, packed for the kernel.

    Returns float32 (64, Np / 32, Kp, 32): Kp = C_in rounded up to 16, Np = C_out rounded up to
    32, zeros in the padding.
    """
    out_channels, in_channels = weight.shape[:2]
    filters = winograd._transformed_filters(weight.detach().float(), torch.from_numpy(winograd.transforms(TILE)[1]))
    kp = -(-in_channels // IN_BLOCK) * IN_BLOCK
    np_ = -(-out_channels // OUT_BLOCK) * OUT_BLOCK
    padded = np.zeros((64, kp, np_), np.float32)
    padded[:, :in_channels, :out_channels] = filters.numpy()
    return np.ascontiguousarray(padded.reshape(64, kp, np_ // OUT_BLOCK, OUT_BLOCK).transpose(0, 2, 1, 3))


class NativeWinogradConv(nn.Module):
    """A 3x3 stride-1 convolution (bias, then none / ReLU / PReLU) by the native F(6x6, 3x3) kernel.

    ``forward`` takes an (N, C_in, H, W) float32 tensor (channels-last memory avoids a copy) and
    returns (N, C_out, H + 2p - 2, W + 2p - 2) float32 in channels-last memory.
    ``slopes``: PReLU slopes, [C_out] or [1] (shared); ``relu`` and ``slopes`` exclude each other.
    """

    KERNEL = "wino63"
    KERNEL_SIZE = 3
    TAKES = "3x3 stride-1 convolutions without dilation or groups"

    def __init__(self, conv: nn.Conv2d, *, relu: bool = False, slopes: torch.Tensor | None = None) -> None:
        super().__init__()
        if not self.applies(conv):
            raise ValueError(f"{type(self).__name__} takes {self.TAKES}")
        if relu and slopes is not None:
            raise ValueError("a ReLU and PReLU slopes cannot both follow the convolution")
        self.library = _library(self.KERNEL)
        self.in_channels, self.out_channels = int(conv.in_channels), int(conv.out_channels)
        self.pad = (int(conv.padding[0]), int(conv.padding[1]))
        self._pack(conv.weight)
        self.bias = None if conv.bias is None else np.ascontiguousarray(conv.bias.detach().float().numpy())
        if slopes is not None:
            values = slopes.detach().float().reshape(-1).numpy()
            if values.size not in (1, self.out_channels):
                raise ValueError(f"PReLU needs 1 or {self.out_channels} slopes, got {values.size}")
            self.slopes = np.ascontiguousarray(np.broadcast_to(values, (self.out_channels,)), dtype=np.float32)
            self.activation = "prelu"
        else:
            self.slopes = None
            self.activation = "relu" if relu else "none"

    @staticmethod
    def applies(conv: nn.Conv2d) -> bool:
        """Whether this module can compute ``conv``."""
        return winograd.applies(conv)

    def _pack(self, weight: torch.Tensor) -> None:
        self.filters = pack_filters(weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, F(6x6, 3x3) native, pad={self.pad}, {self.activation}"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') of the output for an (H, W) input."""
        shrink = self.KERNEL_SIZE - 1
        return height + 2 * self.pad[0] - shrink, width + 2 * self.pad[1] - shrink

    def forward(self, x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """``out``: where to write, an (N, H', W', C_out) float32 view whose pixels are rows of
        unit channel stride (a channel slice of a channels-last buffer, such as a Concat's);
        by default a new tensor. Returns the output as (N, C_out, H', W') channels-last."""
        batch, channels, height, width = x.shape
        if channels != self.in_channels or x.dtype != torch.float32:
            raise ValueError(f"expected float32 input with {self.in_channels} channels, got {x.dtype} with {channels}")
        out_h, out_w = self.output_size(height, width)
        nhwc = x.permute(0, 2, 3, 1)
        source_stride = pixel_stride(nhwc)
        if source_stride is None:
            nhwc = nhwc.contiguous()
            source_stride = self.in_channels
        shape = (batch, max(out_h, 0), max(out_w, 0), self.out_channels)
        y = torch.empty(shape, dtype=torch.float32) if out is None else out
        target_stride = pixel_stride(y)
        if tuple(y.shape) != shape or y.dtype != torch.float32 or target_stride is None:
            raise ValueError(f"out must be a float32 {shape} view with unit channel stride and packed pixel rows, "
                             f"got {y.dtype} {tuple(y.shape)} with strides {y.stride()}")
        bias = self.bias.ctypes.data if self.bias is not None else None
        slopes = self.slopes.ctypes.data if self.slopes is not None else None
        threads = torch.get_num_threads()
        for item in range(batch):
            if self._run(nhwc[item].data_ptr(), height, width, source_stride, y[item].data_ptr(), target_stride,
                         bias, slopes, threads) != 0:
                raise MemoryError(f"the native kernel {self.KERNEL} could not allocate its buffers")
        return y.permute(0, 3, 1, 2)

    def _run(self, source: int, height: int, width: int, source_stride: int, target: int, target_stride: int,
             bias: int | None, slopes: int | None, threads: int) -> int:
        """One image through the kernel: NHWC ``source`` to NHWC ``target`` (data pointers; pixels
        ``source_stride`` and ``target_stride`` floats apart); 0 on success."""
        return self.library.wino63_forward(source, height, width, self.in_channels, source_stride, self.pad[0],
                                           self.pad[1], self.filters.ctypes.data, self.out_channels, bias,
                                           ACTIVATIONS[self.activation], slopes, target, target_stride, threads)


def pixel_stride(nhwc: torch.Tensor) -> int | None:
    """The distance in elements between neighbouring pixels of an (N, H, W, C) tensor whose
    channels are contiguous and whose pixel rows are packed (row stride = W x pixel stride), as
    the native kernels read and write them; None for any other layout."""
    _, height, width, channels = nhwc.shape
    if nhwc.numel() == 0:
        return channels  # nothing is read or written
    if channels > 1 and nhwc.stride(3) != 1:
        return None
    if width > 1:
        pixel = nhwc.stride(2)
    else:  # one pixel per row (or a single pixel): the rows are the pixels
        pixel = nhwc.stride(1) if height > 1 else channels
    if pixel < channels or (height > 1 and width > 1 and nhwc.stride(1) != width * pixel):
        return None
    return pixel


#: F(2x2, 3x3) of the int8 kernel (Lavin and Gray 2016; entries 0, +-1 in B^T and A^T), as in wino23_int8.c.
INT8_BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
INT8_G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
INT8_AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
INT8_LEVELS = 127
#: The int8 kernel stores transformed inputs as uint8 with this offset (VNNI multiplies unsigned by signed bytes).
INT8_OFFSET = 128


def _int8_levels(transformed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(P, C_in, C_out) float64 filters rounded to int8 per position and output channel, packed.

    Returns (filters int8 (P, Np/32, Kp/4, 32, 4), scales float32 (P, Np), offset compensation
    int32 (P, Np) = 128 * sum over C_in of the int8 filters); Kp = C_in rounded up to 16, Np = C_out
    rounded up to 32, zeros in the padding.
    """
    positions, in_channels, out_channels = transformed.shape
    scales = np.abs(transformed).max(axis=1) / INT8_LEVELS
    scales[scales == 0] = 1.0
    kp = -(-in_channels // IN_BLOCK) * IN_BLOCK
    np_ = -(-out_channels // OUT_BLOCK) * OUT_BLOCK
    levels = np.zeros((positions, kp, np_), np.int8)
    levels[:, :in_channels, :out_channels] = np.rint(transformed / scales[:, None, :])
    packed = levels.reshape(positions, kp // 4, 4, np_ // OUT_BLOCK, OUT_BLOCK).transpose(0, 3, 1, 4, 2)
    padded_scales = np.zeros((positions, np_), np.float32)
    padded_scales[:, :out_channels] = scales
    compensation = INT8_OFFSET * levels.astype(np.int32).sum(axis=1)
    return np.ascontiguousarray(packed), padded_scales, np.ascontiguousarray(compensation, dtype=np.int32)


def pack_int8_filters(weight: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``G w G^T`` (float64) of a (C_out, C_in, 3, 3) weight, rounded to int8 per position and
    output channel (16 positions; see :func:`_int8_levels` for the layout)."""
    w = weight.detach().double().numpy()
    out_channels, in_channels = w.shape[:2]
    transformed = np.einsum("ak,oikl,bl->abio", INT8_G, w, INT8_G).reshape(16, in_channels, out_channels)
    return _int8_levels(transformed)


class NativeInt8WinogradConv(NativeWinogradConv):
    """A 3x3 stride-1 convolution by F(2x2, 3x3) with int8 products (``--precision int8``).

    Filters are rounded once per position and output channel; the transformed inputs are rounded
    per block of 12 tiles and position, with the scale taken from that block's own values, so no
    calibration is needed. Relative error of one layer against float64: about 1.5e-2 (direct
    int8: 1.3e-2; :mod:`posebridge.tools.winograd_precision`). Same interface as
    :class:`NativeWinogradConv`.
    """

    KERNEL = "wino23_int8"

    def _pack(self, weight: torch.Tensor) -> None:
        self.int8_filters, self.filter_scales, self.compensation = pack_int8_filters(weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, F(2x2, 3x3) int8 native, pad={self.pad}, {self.activation}"

    def _run(self, source: int, height: int, width: int, source_stride: int, target: int, target_stride: int,
             bias: int | None, slopes: int | None, threads: int) -> int:
        return self.library.wino23_int8_forward(
            source, height, width, self.in_channels, source_stride, self.pad[0], self.pad[1],
            self.int8_filters.ctypes.data, self.filter_scales.ctypes.data, self.compensation.ctypes.data,
            self.out_channels, bias, ACTIVATIONS[self.activation], slopes, target, target_stride, threads)


def pointwise_applies(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a 1x1, stride-1, unpadded, ungrouped convolution (a matrix product per pixel)."""
    return (tuple(conv.kernel_size) == (1, 1) and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1)
            and conv.groups == 1 and tuple(int(p) for p in conv.padding) == (0, 0))


class NativeInt8PointwiseConv(NativeWinogradConv):
    """A 1x1 convolution with int8 products, for ``--precision int8`` (the int8 kernel's library).

    Weights rounded per output channel; inputs per block of 12 pixels, with the scale taken from
    that block's values. Same interface as :class:`NativeWinogradConv`.
    """

    KERNEL = "wino23_int8"
    KERNEL_SIZE = 1
    TAKES = "1x1 stride-1 convolutions without padding or groups"
    applies = staticmethod(pointwise_applies)

    def _pack(self, weight: torch.Tensor) -> None:
        matrix = weight.detach().double().numpy()[:, :, 0, 0].T[None]  # 1, C_in, C_out
        self.int8_filters, self.filter_scales, self.compensation = _int8_levels(matrix)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, 1x1 int8 native, {self.activation}"

    def _run(self, source: int, height: int, width: int, source_stride: int, target: int, target_stride: int,
             bias: int | None, slopes: int | None, threads: int) -> int:
        return self.library.pointwise_int8_forward(
            source, height * width, self.in_channels, source_stride, self.int8_filters.ctypes.data,
            self.filter_scales.ctypes.data, self.compensation.ctypes.data, self.out_channels, bias,
            ACTIVATIONS[self.activation], slopes, target, target_stride, threads)
