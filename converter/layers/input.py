"""Input: the net's entry blobs, passed through unchanged.

Caffe's ``Input`` layer has no bottoms; it declares the shape of each top. The converted module
takes the tensors fed to the net (one per top, in top order) and returns them as they are: the
declared shape is kept for information only (``declared_shapes``), never enforced, so the net
runs at any batch and spatial size.
"""

from __future__ import annotations

import torch
from torch import nn

from posebridge.converter.registry import LayerSpec, register


class InputLayer(nn.Module):
    """Identity over the net's input tensors: forward(x_0, ..., x_k) -> same tensors."""

    def __init__(self, declared_shapes: tuple[tuple[int, ...], ...]) -> None:
        super().__init__()
        self.declared_shapes = declared_shapes

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if len(inputs) != len(self.declared_shapes):
            raise TypeError(f"expected {len(self.declared_shapes)} input tensors, got {len(inputs)}")
        return inputs[0] if len(inputs) == 1 else tuple(inputs)


@register("Input")
def convert_input(spec: LayerSpec) -> nn.Module:
    """One identity per top; a shape may be declared once for all tops (Caffe's rule) or per top."""
    shapes = [tuple(int(d) for d in shape.dim) for shape in spec.layer.input_param.shape]
    tops = len(spec.layer.top)
    if len(shapes) == 1 and tops > 1:
        shapes = shapes * tops
    if len(shapes) != tops:
        raise spec.unsupported(f"{tops} tops but {len(shapes)} input_param shapes")
    return InputLayer(tuple(shapes))
