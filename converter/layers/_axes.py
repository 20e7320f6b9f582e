"""Axis helpers shared by the tensor, shape and normalization families (not a family itself).

Caffe resolves axes against the bottom's number of axes at run time (``CanonicalAxisIndex``);
the rank of a tensor is static even in an ONNX export, so resolving it in ``forward`` keeps
modules free of baked shapes.
"""

from __future__ import annotations

import torch

from posebridge.errors import ShapeError


def canonical_axis(axis: int, num_axes: int, layer: str, what: str = "axis") -> int:
    """Caffe's CanonicalAxisIndex: ``axis`` in [-num_axes, num_axes), negatives from the end."""
    if not -num_axes <= axis < num_axes:
        raise ShapeError(f"{what} {axis} is out of range for a blob of {num_axes} axes", layer=layer)
    return axis + num_axes if axis < 0 else axis


def tracing() -> bool:
    """True while the module is being exported or traced: skip eager-only checks and paths."""
    return bool(torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling())


def broadcast_from(values: torch.Tensor, axis: int, num_axes: int) -> torch.Tensor:
    """``values`` (shape S, |S| = k) viewed as [S, 1, ..., 1] so it lines up with axes
    ``axis .. axis + k - 1`` of a ``num_axes``-D tensor (leading axes broadcast implicitly)."""
    for _ in range(num_axes - axis - values.dim()):
        values = values.unsqueeze(-1)
    return values
