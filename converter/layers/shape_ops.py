"""Shape layers: Flatten, Reshape, Crop and ArgMax, with Caffe's exact rules.

Rules (BVLC caffe ``src/caffe/layers/{flatten,reshape,crop,argmax}_layer.cpp``):

* Flatten merges axes ``axis .. end_axis`` (defaults 1 and -1, both CanonicalAxisIndex).
* Reshape replaces axes ``[start, end)`` of the bottom by ``shape.dim``, where ``start = axis``
  (negative: ``num_axes + axis + 1``, so -1 means "after the last axis") and ``end = start +
  num_axes`` (``num_axes = -1``: to the end). In ``dim``, 0 copies the bottom's axis ``start + i``
  and a single -1 is inferred from the element count.
* Crop keeps bottom 0's axes before ``axis`` (default 2) and, for every later axis, takes bottom
  1's size starting at the offset: none given = 0, one = the same for every cropped axis, else
  one per cropped axis.
* ArgMax sorts by (value, index) descending, so ties go to the LARGER index. With ``axis`` it
  replaces that axis by ``top_k`` indices, or by the ``top_k`` values when ``out_max_val``.
  Without ``axis`` it ranks each sample's flattened values and returns shape
  ``(N, 1, top_k)`` of indices, or ``(N, 2, top_k)`` of indices then values with ``out_max_val``,
  padded with trailing 1s to the bottom's rank (at least 3). Indices are returned as floats.

Target shapes are built in ``forward`` from the tensors' own sizes, so an ONNX export stays
dynamic in batch, height and width.
"""

from __future__ import annotations

import torch
from torch import nn

from posebridge.converter.layers._axes import canonical_axis, tracing
from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError

_RESHAPE_COPY = 0
_RESHAPE_INFER = -1


class Flatten(nn.Module):
    """forward(x) -> x with axes axis..end_axis merged into one."""

    def __init__(self, axis: int, end_axis: int, layer: str) -> None:
        super().__init__()
        self.axis = axis
        self.end_axis = end_axis
        self.layer = layer

    def extra_repr(self) -> str:
        return f"axis={self.axis}, end_axis={self.end_axis}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start = canonical_axis(self.axis, x.dim(), self.layer)
        end = canonical_axis(self.end_axis, x.dim(), self.layer, "end_axis")
        if end < start:
            raise ShapeError(f"end_axis {self.end_axis} comes before axis {self.axis} for a {x.dim()}-D blob",
                             layer=self.layer)
        return x.flatten(start, end)


class Reshape(nn.Module):
    """forward(x) -> x viewed with axes [start, end) replaced by ``dims`` (0 copy, -1 infer)."""

    def __init__(self, dims: tuple[int, ...], axis: int, num_axes: int, layer: str) -> None:
        super().__init__()
        self.dims = dims
        self.axis = axis
        self.num_axes = num_axes
        self.layer = layer

    def extra_repr(self) -> str:
        return f"dims={list(self.dims)}, axis={self.axis}, num_axes={self.num_axes}"

    def _span(self, rank: int) -> tuple[int, int]:
        start = self.axis if self.axis >= 0 else rank + self.axis + 1
        if not 0 <= start <= rank:
            raise ShapeError(f"reshape axis {self.axis} is out of range for a {rank}-D blob", layer=self.layer)
        end = rank if self.num_axes == -1 else start + self.num_axes
        if end > rank:
            raise ShapeError(f"reshape axis {self.axis} + num_axes {self.num_axes} is past the end of a "
                             f"{rank}-D blob", layer=self.layer)
        return start, end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        start, end = self._span(x.dim())
        new: list[int | torch.SymInt] = []
        for index, dim in enumerate(self.dims):
            if dim == _RESHAPE_COPY:
                if start + index >= x.dim():
                    raise ShapeError(f"reshape dim {index} is 0 (copy) but the bottom has no axis {start + index}",
                                     layer=self.layer)
                new.append(x.shape[start + index])
            else:
                new.append(dim)
        target = [*x.shape[:start], *new, *x.shape[end:]]
        if not tracing():
            self._check(x, target)
        return x.reshape(target)

    def _check(self, x: torch.Tensor, target: list) -> None:
        known = 1
        for dim in target:
            if dim != _RESHAPE_INFER:
                known *= int(dim)
        total = x.numel()
        if _RESHAPE_INFER in target:
            if known == 0 or total % known:
                raise ShapeError(f"cannot infer -1 in {list(self.dims)} for a bottom of shape {tuple(x.shape)}",
                                 layer=self.layer)
        elif known != total:
            raise ShapeError(f"reshape {list(self.dims)} of a bottom of shape {tuple(x.shape)} changes the element "
                             "count", layer=self.layer)


class Crop(nn.Module):
    """forward(x, reference) -> x cropped, from the offsets, to reference's sizes on axes >= axis."""

    def __init__(self, axis: int, offsets: tuple[int, ...], layer: str) -> None:
        super().__init__()
        self.axis = axis
        self.offsets = offsets
        self.layer = layer

    def extra_repr(self) -> str:
        return f"axis={self.axis}, offset={list(self.offsets)}"

    def _offset(self, cropped_index: int, cropped_count: int) -> int:
        if not self.offsets:
            return 0
        if len(self.offsets) == 1:
            return self.offsets[0]
        if len(self.offsets) != cropped_count:
            raise ShapeError(f"{len(self.offsets)} offsets for {cropped_count} cropped axes (need 1 or "
                             f"{cropped_count})", layer=self.layer)
        return self.offsets[cropped_index]

    def forward(self, x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        rank = x.dim()
        start = canonical_axis(self.axis, rank, self.layer)
        if reference.dim() < rank:
            raise ShapeError(f"the size bottom has {reference.dim()} axes, fewer than the {rank} of the data",
                             layer=self.layer)
        index: list[slice] = [slice(None)] * start
        for axis in range(start, rank):
            offset = self._offset(axis - start, rank - start)
            size = reference.shape[axis]
            if not tracing() and x.shape[axis] - offset < size:
                raise ShapeError(f"crop of size {size} at offset {offset} does not fit axis {axis} of size "
                                 f"{x.shape[axis]}", layer=self.layer)
            index.append(slice(offset, offset + size))
        return x[tuple(index)]


class ArgMax(nn.Module):
    """forward(x) -> top_k indices (as floats) and/or values, ties to the larger index (Caffe)."""

    def __init__(self, top_k: int, out_max_val: bool, axis: int | None, layer: str) -> None:
        super().__init__()
        self.top_k = top_k
        self.out_max_val = out_max_val
        self.axis = axis
        self.layer = layer

    def extra_repr(self) -> str:
        return f"top_k={self.top_k}, out_max_val={self.out_max_val}, axis={self.axis}"

    def _ranked(self, values: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The top_k (values, indices) along ``dim``, larger value first, ties by larger index."""
        size = values.shape[dim]
        if not tracing() and self.top_k > size:
            raise ShapeError(f"top_k {self.top_k} exceeds the {size} values ranked", layer=self.layer)
        # Reversing the axis turns "ties to the larger index" into "ties to the smaller index",
        # which is what a stable descending sort gives (and what ONNX TopK specifies).
        flipped = values.flip(dim)
        if torch.onnx.is_in_onnx_export():
            top_values, flipped_index = torch.topk(flipped, self.top_k, dim=dim)
        else:
            sorted_values, order = torch.sort(flipped, dim=dim, descending=True, stable=True)
            top_values = sorted_values.narrow(dim, 0, self.top_k)
            flipped_index = order.narrow(dim, 0, self.top_k)
        return top_values, (size - 1) - flipped_index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis is not None:
            axis = canonical_axis(self.axis, x.dim(), self.layer)
            top_values, top_index = self._ranked(x, axis)
            return top_values if self.out_max_val else top_index.to(x.dtype)
        top_values, top_index = self._ranked(x.flatten(1), 1)
        parts = [top_index.to(x.dtype), top_values] if self.out_max_val else [top_index.to(x.dtype)]
        result = torch.stack(parts, dim=1)
        for _ in range(max(3, x.dim()) - 3):
            result = result.unsqueeze(-1)
        return result


@register("Flatten")
def convert_flatten(spec: LayerSpec) -> nn.Module:
    params = spec.layer.flatten_param
    return Flatten(int(params.axis), int(params.end_axis), spec.name)


@register("Reshape")
def convert_reshape(spec: LayerSpec) -> nn.Module:
    params = spec.layer.reshape_param
    dims = tuple(int(d) for d in params.shape.dim)
    if any(d < _RESHAPE_INFER for d in dims):
        raise spec.unsupported(f"reshape dims {list(dims)}: only positive sizes, 0 (copy) and -1 (infer) are valid")
    if dims.count(_RESHAPE_INFER) > 1:
        raise spec.unsupported(f"reshape dims {list(dims)} contain more than one -1")
    if params.num_axes < -1:
        raise spec.unsupported(f"num_axes {params.num_axes}: must be >= 0, or -1 for all")
    return Reshape(dims, int(params.axis), int(params.num_axes), spec.name)


@register("Crop")
def convert_crop(spec: LayerSpec) -> nn.Module:
    if len(spec.layer.bottom) != 2:
        raise spec.unsupported(f"Crop takes 2 bottoms (data, size reference), got {len(spec.layer.bottom)}")
    params = spec.layer.crop_param
    return Crop(int(params.axis), tuple(int(o) for o in params.offset), spec.name)


@register("ArgMax")
def convert_argmax(spec: LayerSpec) -> nn.Module:
    params = spec.layer.argmax_param
    if params.top_k < 1:
        raise spec.unsupported(f"top_k {params.top_k}: must be at least 1")
    axis = int(params.axis) if params.HasField("axis") else None
    return ArgMax(int(params.top_k), bool(params.out_max_val), axis, spec.name)
