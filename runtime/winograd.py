"""3x3 convolutions by Winograd's minimal filtering, F(m x m, 3 x 3), on channels-last tensors.

A stride-1 3x3 convolution computes each m x m block of outputs from an (m+2) x (m+2) input
tile. Winograd's algorithm transforms tile and filter into n x n "frequencies" (n = m + 2),
multiplies them elementwise and transforms back:

    Y = A^T [ (G g G^T) . (B^T d B) ] A

so the channel sums become n*n independent matrix products of (tiles x C_in) by
(C_in x C_out), 9 m^2 / n^2 times fewer multiply-adds than the direct form (4 for m = 4,
5.06 for m = 6). OpenCV dnn computes 3x3 convolutions this way (F(6x6, 3x3)); oneDNN, which
PyTorch calls on the CPU, computes them directly.

The transform matrices are built exactly, with fractions, from the interpolation points
(0, +-1, +-2, +-1/2 and infinity for m = 6): :func:`transforms` solves Winograd's identity for
``B^T`` given the Vandermonde ``A^T`` and the scaled ``G`` (Lavin and Gray 2016), so no
hand-copied constants. In float32 the result differs from the direct sum by rounding only:
relative error about 1e-5 of the layer's largest output for m = 6 (8e-6 for m = 4), against
about 1e-6 for oneDNN's direct convolution (both measured against float64 by the tests).

:class:`WinogradConv` keeps the transformed filters (n*n / 9 times the weight's size: 7.1x for
m = 6) and is only faster where the matrix products dominate: many channels, small maps. The
tuned runtime (:mod:`posebridge.runtime.tuned_torch`) calls it for layers with at least
:data:`MIN_CHANNEL_PRODUCT` input x output channels on maps of at most :data:`MAX_PIXELS`
output pixels, and the direct convolution elsewhere.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: Finite interpolation points of F(m, 3) (infinity is the last point of every variant).
POINTS: dict[int, tuple[Fraction, ...]] = {
    2: (Fraction(0), Fraction(1), Fraction(-1)),
    4: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2)),
    6: (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2), Fraction(1, 2), Fraction(-1, 2)),
}
KERNEL = 3
#: Output tile size used by the runtime.
TILE = 6
#: The runtime's choice: Winograd when C_in x C_out is at least this ...
MIN_CHANNEL_PRODUCT = 64 * 128
#: ... on output maps of at most this many pixels per image (a bound on the transforms' memory:
#: about 2.4 x 4 bytes x pixels x channels for the transformed input and the products).
MAX_PIXELS = 1 << 19
#: Measured on 2 AVX-512 cores, freed memory kept (:mod:`posebridge.runtime.heap`), F(6, 3)
#: against oneDNN's direct convolution (ms): 96 -> 96 channels at 46 x 82: 2.2 against 2.8,
#: 128 -> 128: 3.2 against 4.9, 384 -> 128: 8.2 against 14.5; 256 -> 256 at 92 x 164: 36
#: against 78; 128 -> 128 at 184 x 328: 59 against 78, at 368 x 656: 218 against 326;
#: 64 -> 128 at 184 x 328: 34 against 40. 64 -> 64 is slower at every size (108 against 81 at
#: 368 x 656): with few channels the transforms' memory traffic outweighs the products.


def _solve_consistent(rows: list[list[Fraction]], values: list[Fraction]) -> list[Fraction]:
    """The solution of a consistent (possibly overdetermined) linear system, exactly."""
    table = [list(row) + [value] for row, value in zip(rows, values)]
    unknowns = len(rows[0])
    pivots: list[int] = []
    rank = 0
    for column in range(unknowns):
        pivot = next((i for i in range(rank, len(table)) if table[i][column] != 0), None)
        if pivot is None:
            continue
        table[rank], table[pivot] = table[pivot], table[rank]
        lead = table[rank][column]
        table[rank] = [v / lead for v in table[rank]]
        for i, row in enumerate(table):
            if i != rank and row[column] != 0:
                factor = row[column]
                table[i] = [a - factor * b for a, b in zip(row, table[rank])]
        pivots.append(column)
        rank += 1
    if any(any(v != 0 for v in row) for row in table[rank:]):
        raise ValueError("Winograd identity has no solution for these points")
    solution = [Fraction(0)] * unknowns
    for row, column in enumerate(pivots):
        solution[column] = table[row][unknowns]
    return solution


@lru_cache(maxsize=None)
def transforms(m: int, r: int = KERNEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` of F(m, r) as float64 arrays of shapes (m, n), (n, r), (n, n); n = m + r - 1.

    1-D identity: ``y = A^T [(G g) * (B^T d)]`` with ``y[i] = sum_k d[i + k] g[k]`` (Caffe's
    cross-correlation) for a length-n input ``d`` and a length-r filter ``g``.
    """
    points = POINTS[m]
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, {len(points)} given")
    at = [[points[j] ** i if j < n - 1 else Fraction(int(i == m - 1)) for j in range(n)] for i in range(m)]
    g = []
    for j, p in enumerate(points):
        scale = Fraction(1)
        for k, q in enumerate(points):
            if k != j:
                scale *= p - q
        g.append([p ** k / scale for k in range(r)])
    g.append([Fraction(int(k == r - 1)) for k in range(r)])
    bt = [[Fraction(0)] * n for _ in range(n)]
    for column in range(n):  # each column of B^T separately: sum_j AT[i,j] G[j,k] BT[j,col] = [col == i+k]
        rows = [[at[i][j] * g[j][k] for j in range(n)] for i in range(m) for k in range(r)]
        values = [Fraction(int(column == i + k)) for i in range(m) for k in range(r)]
        for j, value in enumerate(_solve_consistent(rows, values)):
            bt[j][column] = value
    return tuple(np.array(x, dtype=np.float64) for x in (at, g, bt))  # type: ignore[return-value]


def applies(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` is a 3x3, stride-1, undilated, ungrouped float convolution with zero padding <= 2."""
    return (tuple(conv.kernel_size) == (KERNEL, KERNEL) and tuple(conv.stride) == (1, 1)
            and tuple(conv.dilation) == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros"
            and isinstance(conv.padding, tuple) and all(0 <= int(p) <= 2 for p in conv.padding))


def enough_channels(in_channels: int, out_channels: int) -> bool:
    """The runtime's rule, channels part: Winograd pays off from 64 x 128 channels on."""
    return in_channels * out_channels >= MIN_CHANNEL_PRODUCT


def worth_it(in_channels: int, out_channels: int, height: int, width: int) -> bool:
    """The runtime's rule: Winograd for enough channels, on output maps of bounded size (see above)."""
    return enough_channels(in_channels, out_channels) and height > 0 and width > 0 and height * width <= MAX_PIXELS


#: Output channels transformed at a time (keeps the float64 temporaries small: a whole layer's
#: would be 14 times its weight, and freed heap memory is not always returned to the system).
FILTER_CHUNK = 16


def _transformed_filters(weight: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``G w G^T`` of a (C_out, C_in, 3, 3) weight as an (n*n, C_in, C_out) float32 tensor, computed in float64."""
    out_channels, in_channels = weight.shape[:2]
    n = g.shape[0]
    filters = torch.empty((n * n, in_channels, out_channels), dtype=torch.float32)
    for start in range(0, out_channels, FILTER_CHUNK):
        chunk = weight[start:start + FILTER_CHUNK].double()
        transformed = torch.einsum("ak,oikl,bl->abio", g, chunk, g)  # n, n, C_in, chunk
        filters[:, :, start:start + FILTER_CHUNK] = transformed.reshape(n * n, in_channels, -1)
    return filters


class WinogradConv(nn.Module):
    """A 3x3 stride-1 convolution (with bias and optionally a fused ReLU) by F(m x m, 3 x 3).

    ``forward`` takes an (N, C_in, H, W) float32 tensor (any memory format; channels-last is
    the fast one) and returns (N, C_out, H + 2p - 2, W + 2p - 2) in channels-last memory.
    """

    def __init__(self, conv: nn.Conv2d, relu: bool = False, m: int = TILE) -> None:
        super().__init__()
        if not applies(conv):
            raise ValueError("WinogradConv takes 3x3 stride-1 convolutions without dilation or groups")
        at, g, bt = (torch.from_numpy(x) for x in transforms(m))
        self.m, self.n = m, m + KERNEL - 1
        self.relu = relu
        self.pad = (int(conv.padding[0]), int(conv.padding[1]))
        self.register_buffer("filters", _transformed_filters(conv.weight.detach(), g), persistent=False)
        self.register_buffer("at", at.float(), persistent=False)
        self.register_buffer("bt", bt.float(), persistent=False)
        bias = conv.bias.detach().float() if conv.bias is not None else None
        self.register_buffer("bias", bias, persistent=False)

    def extra_repr(self) -> str:
        ci, co = self.filters.shape[1:]
        return f"{ci}, {co}, F({self.m}x{self.m}, 3x3), pad={self.pad}, relu={self.relu}"

    def _input_transform(self, padded: torch.Tensor, tiles_h: int, tiles_w: int) -> torch.Tensor:
        """``B^T d B`` of every tile of a padded (N, Hp, Wp, C) tensor, as an (n*n, tiles, C) view.

        The row transform reads the overlapping tiles in place: for one row of tiles, tile
        ``tw``'s rows are an (n, n*C) matrix at offset ``tw*m*C`` with row stride ``Wp*C``, so
        one batched product per row of tiles gathers and transforms at once. The column
        transform is one batched product over all tiles; the result stays in (tile, a, b, C)
        order and is handed to the main product transposed (row stride n*n*C, no copy).
        """
        m, n = self.m, self.n
        batch, _, _, channels = padded.shape
        s = padded.stride()
        rows = padded.new_empty((batch, tiles_h, tiles_w, n, n * channels))
        for item in range(batch):
            for tile_row in range(tiles_h):
                window = padded.as_strided((tiles_w, n, n * channels), (m * s[2], s[1], s[3]),
                                           padded.storage_offset() + item * s[0] + tile_row * m * s[1])
                torch.matmul(self.bt, window, out=rows[item, tile_row])
        count = batch * tiles_h * tiles_w
        spectrum = torch.matmul(self.bt, rows.view(count * n, n, channels))  # tile, a, b, C
        return spectrum.view(count, n * n, channels).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        m, n = self.m, self.n
        out_h, out_w = height + 2 * self.pad[0] - 2, width + 2 * self.pad[1] - 2
        tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
        # NHWC input, zero-padded so that the tiles cover the output (one copy).
        padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, self.pad[1], tiles_w * m + 2 - width - self.pad[1],
                                               self.pad[0], tiles_h * m + 2 - height - self.pad[0])).contiguous()
        spectrum = self._input_transform(padded, tiles_h, tiles_w)  # n*n, tiles, C_in (strided)
        count = batch * tiles_h * tiles_w
        products = torch.bmm(spectrum, self.filters)  # n*n, tiles, C_out
        out_channels = products.shape[2]
        rows_out = self.at @ products.view(n, n * count * out_channels)
        blocks = torch.matmul(self.at, rows_out.view(m, n, count * out_channels))  # m, m, tiles*C_out
        blocks = blocks.view(m, m, batch, tiles_h, tiles_w, out_channels).permute(2, 3, 0, 4, 1, 5)
        nhwc = blocks.reshape(batch, tiles_h * m, tiles_w * m, out_channels)[:, :out_h, :out_w]
        y = nhwc + self.bias if self.bias is not None else nhwc.contiguous()
        if self.relu:
            y = torch.relu_(y)
        return y.permute(0, 3, 1, 2)
