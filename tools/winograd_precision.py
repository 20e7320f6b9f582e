"""How much Winograd's transforms magnify bf16 and int8 rounding, on one 3x3 layer.

A Winograd form needs fewer multiply-adds than the direct convolution (F(2,3): 2.25x, F(4,3):
4x, F(6,3): 5.06x), but at low precision its transformed tiles and filters are what gets
rounded, and the output transform then sums them with coefficients up to 2^(m-1), so rounding
errors that cancel in the direct sum no longer do. That is why ``--precision bf16`` computes
convolutions directly and ``--precision int8``'s native kernel uses F(2,3) (transform entries 0
and +-1). This tool measures it, for one layer with He weights on a ReLU'd Gaussian input,
against the exact (float64) convolution:

* ``direct``: the operands rounded as the engines round them (bf16: input and weights; int8:
  symmetric, one scale for the input tensor, one per output channel for the weights), the
  products summed exactly;
* ``F(m, 3)``: the transformed tiles ``B^T d B`` rounded with one scale per tile position (int8)
  and the transformed filters ``G g G^T`` with one per position and output channel; the
  products summed exactly and transformed back in float64.

Summing exactly is kinder than any engine (bf16 engines also round their outputs), so the
figures are lower bounds on the error of a real low-precision Winograd kernel. The error is
``max |y - y_exact| / max |y_exact|``, the parity tool's metric.

Usage: ``python -m posebridge.tools.winograd_precision [--channels 128 128] [--size 46 82]
[--seed 0]`` (defaults: BODY_25's commonest layer at 368x656).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from posebridge.converter.onnx_export import relative_error
from posebridge.runtime.winograd import POINTS, transforms

PRECISIONS = ("bf16", "int8")
TILE_SIZES = tuple(sorted(POINTS))
Rounding = Callable[[torch.Tensor], torch.Tensor]


def round_bf16(values: torch.Tensor) -> torch.Tensor:
    """``values`` rounded to bfloat16 (nearest even) and returned in their own dtype."""
    return values.to(torch.bfloat16).to(values.dtype)


def round_int8(values: torch.Tensor, kept_dims: Sequence[int] = ()) -> torch.Tensor:
    """``values`` rounded to symmetric int8 levels, one scale (absmax / 127) per index of ``kept_dims``."""
    reduced = [d for d in range(values.dim()) if d not in kept_dims]
    scale = values.abs().amax(dim=reduced, keepdim=True).clamp_min(torch.finfo(values.dtype).tiny) / 127
    return torch.round(values / scale).clamp(-127, 127) * scale


def _identity(values: torch.Tensor) -> torch.Tensor:
    return values


def winograd_conv(x: torch.Tensor, weight: torch.Tensor, m: int, *, round_tiles: Rounding = _identity,
                  round_filters: Rounding = _identity) -> torch.Tensor:
    """A 3x3 stride-1 convolution with zero padding 1 by F(m x m, 3 x 3), in ``x``'s dtype.

    ``x``: (C_in, H, W); ``weight``: (C_out, C_in, 3, 3); returns (C_out, H, W).
    ``round_tiles`` gets the transformed input as (n*n, tiles, C_in), ``round_filters`` the
    transformed filters as (n*n, C_in, C_out); n = m + 2.
    """
    at, g, bt = (torch.from_numpy(matrix).to(x.dtype) for matrix in transforms(m))
    n = m + 2
    channels_in, height, width = x.shape
    tiles_h, tiles_w = -(-height // m), -(-width // m)
    padded = F.pad(x, (1, tiles_w * m + 1 - width, 1, tiles_h * m + 1 - height))
    tiles = padded.unfold(1, n, m).unfold(2, n, m)  # C_in, tiles_h, tiles_w, n, n
    spectrum = torch.einsum("ai,cxyij,bj->abxyc", bt, tiles, bt).reshape(n * n, tiles_h * tiles_w, channels_in)
    filters = torch.einsum("ak,oikl,bl->abio", g, weight, g).reshape(n * n, channels_in, -1)
    products = torch.bmm(round_tiles(spectrum), round_filters(filters)).reshape(n, n, tiles_h, tiles_w, -1)
    blocks = torch.einsum("ia,abxyo,jb->oxiyj", at, products, at)
    return blocks.reshape(-1, tiles_h * m, tiles_w * m)[:, :height, :width]


@dataclass(frozen=True)
class LayerError:
    """One form's error on the layer: ``form`` is "direct" or "F(m,3)"; ``multiply_adds`` is
    its share of the direct form's (tile padding included)."""

    form: str
    precision: str
    error: float
    multiply_adds: float


def _direct_rounding(precision: str) -> tuple[Rounding, Rounding]:
    if precision == "bf16":
        return round_bf16, round_bf16
    return round_int8, lambda weight: round_int8(weight, (0,))


def _winograd_rounding(precision: str) -> tuple[Rounding, Rounding]:
    if precision == "bf16":
        return round_bf16, round_bf16
    return (lambda tiles: round_int8(tiles, (0,))), (lambda filters: round_int8(filters, (0, 2)))


def _error(ours: torch.Tensor, exact: torch.Tensor) -> float:
    """The parity tool's relative error (:func:`posebridge.converter.onnx_export.relative_error`)."""
    return relative_error(ours.numpy(), exact.numpy())[1]


def layer_errors(channels_in: int = 128, channels_out: int = 128, height: int = 46, width: int = 82, *,
                 seed: int = 0, precisions: Sequence[str] = PRECISIONS,
                 tile_sizes: Sequence[int] = TILE_SIZES) -> list[LayerError]:
    """The error of each form and precision on one layer, in the order direct, F(2,3), F(4,3), F(6,3)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.relu(torch.randn(channels_in, height, width, generator=generator, dtype=torch.float64))
    weight = torch.randn(channels_out, channels_in, 3, 3, generator=generator, dtype=torch.float64)
    weight *= (2.0 / (9 * channels_in)) ** 0.5
    exact = F.conv2d(x[None], weight, padding=1)[0]
    rows = []
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        round_input, round_weight = _direct_rounding(precision)
        direct = F.conv2d(round_input(x)[None], round_weight(weight), padding=1)[0]
        rows.append(LayerError("direct", precision, _error(direct, exact), 1.0))
        round_tiles, round_filters = _winograd_rounding(precision)
        for m in tile_sizes:
            ours = winograd_conv(x, weight, m, round_tiles=round_tiles, round_filters=round_filters)
            share = (m + 2) ** 2 * -(-height // m) * -(-width // m) / (9 * height * width)
            rows.append(LayerError(f"F({m},3)", precision, _error(ours, exact), share))
    return rows


def markdown(rows: Sequence[LayerError]) -> str:
    """The rows as a Markdown table."""
    lines = ["| form | precision | multiply-adds vs direct | relative error |", "|---|---|---:|---:|"]
    lines += [f"| {r.form} | {r.precision} | {r.multiply_adds:.3f} | {r.error:.2e} |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m posebridge.tools.winograd_precision", description=__doc__.split("\n")[0])
    parser.add_argument("--channels", type=int, nargs=2, default=(128, 128), metavar=("IN", "OUT"))
    parser.add_argument("--size", type=int, nargs=2, default=(46, 82), metavar=("H", "W"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if min(*args.channels, *args.size) < 1:
        parser.error("channels and size must be positive")
    rows = layer_errors(*args.channels, *args.size, seed=args.seed)
    print(f"3x3 layer {args.channels[0]} -> {args.channels[1]} channels at {args.size[0]}x{args.size[1]}, seed {args.seed}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
