"""InnerProduct: a fully connected layer over the axes from ``axis`` on, flattened.

Caffe (InnerProductLayer): the bottom [d_0, ..., d_{axis-1}, d_axis, ...] is viewed as M x K with
M = d_0 * ... * d_{axis-1} and K = d_axis * ... (the rest); the top is [d_0, ..., d_{axis-1}, N].
Weights are [N, K], or [K, N] when ``transpose`` is true; they are stored here as nn.Linear's
[N, K] in both cases. K is fixed by the weights, so the flattened axes must keep their size.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError, WeightsError


class InnerProduct(nn.Module):
    """Flatten axes ``axis``.. then x @ W.T + b; ``axis`` may be negative (from the end)."""

    def __init__(self, axis: int, weight: np.ndarray, bias: np.ndarray | None) -> None:
        super().__init__()
        self.axis = axis
        out_features, in_features = weight.shape
        self.linear = nn.Linear(in_features, out_features, bias=bias is not None)
        with torch.no_grad():
            self.linear.weight.copy_(torch.from_numpy(weight))
            if bias is not None:
                self.linear.bias.copy_(torch.from_numpy(bias))

    def extra_repr(self) -> str:
        return f"axis={self.axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.flatten(x, start_dim=self.axis))


@register("InnerProduct")
def convert_inner_product(spec: LayerSpec) -> nn.Module:
    """InnerProduct with Caffe's axis and transpose; the weight is checked against K and N."""
    params = spec.layer.inner_product_param
    axis = int(params.axis)
    if spec.input_shapes:
        shape = spec.input_shapes[0]
        if not -len(shape) <= axis < len(shape):
            raise ShapeError(f"axis {axis} is out of range for a bottom of shape {list(shape)}",
                             file=spec.source or None, layer=spec.name)
        axis = axis + len(shape) if axis < 0 else axis
    wanted = 1 + int(params.bias_term)
    if len(spec.blobs) != wanted:
        raise WeightsError(f"expected {wanted} blobs (bias_term {params.bias_term}), got {len(spec.blobs)}",
                           file=spec.source or None, layer=spec.name)
    weight = np.asarray(spec.blobs[0], dtype=np.float32)
    if weight.ndim != 2:
        raise WeightsError(f"weight shape {list(weight.shape)} is not 2-D", file=spec.source or None, layer=spec.name)
    if params.transpose:
        weight = weight.T
    weight = np.ascontiguousarray(weight)
    n_out, k_in = weight.shape
    if n_out != params.num_output:
        raise WeightsError(f"weight shape {list(np.shape(spec.blobs[0]))} does not give num_output "
                           f"{params.num_output} (transpose {params.transpose})", file=spec.source or None,
                           layer=spec.name)
    if spec.input_shapes:
        k_expected = int(np.prod(spec.input_shapes[0][axis:], dtype=np.int64))
        if k_expected != k_in:
            raise WeightsError(f"weight has K = {k_in} inputs but the bottom {list(spec.input_shapes[0])} flattened "
                               f"from axis {axis} has {k_expected}", file=spec.source or None, layer=spec.name)
    bias = None
    if params.bias_term:
        bias = np.asarray(spec.blobs[1], dtype=np.float32).reshape(-1)
        if bias.shape[0] != n_out:
            raise WeightsError(f"bias has {bias.shape[0]} values, expected {n_out}", file=spec.source or None,
                               layer=spec.name)
    return InnerProduct(axis, weight, bias)
