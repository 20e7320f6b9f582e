"""Tensor-routing layers: Concat, Slice, Split, Silence and Eltwise, with Caffe's exact rules.

Rules (BVLC caffe ``src/caffe/layers/{concat,slice,split,silence,eltwise}_layer.cpp``):

* Concat / Slice: the legacy ``concat_dim`` / ``slice_dim`` (unsigned, no negative indexing) wins
  when it is set; otherwise ``axis`` (default 1, negative counts from the end). A one-bottom
  Concat shares its bottom.
* Slice: ``slice_point`` (strictly increasing, one fewer than the tops) cuts the axis at those
  indices, the last top taking the rest; without points the axis splits evenly over the tops.
* Split copies its bottom to every top; Silence consumes its bottoms and has no top.
* Eltwise SUM: ``top = sum_i coeff_i * bottom_i`` accumulated in bottom order (coefficients
  default to 1; their count must equal the bottoms'); PROD multiplies in bottom order and takes
  no coefficients; MAX keeps ``a if a > b else b`` bottom after bottom (so with NaN or ties it
  keeps the later bottom, as Caffe's strict ``>`` does). ``stable_prod_grad`` only affects the
  backward pass.
"""

from __future__ import annotations

import torch
from torch import nn

from posebridge.converter.layers._axes import canonical_axis, tracing
from posebridge.converter.registry import LayerSpec, register
from posebridge.errors import ShapeError
from posebridge.prototxt import caffe_pb2

_ELTWISE_OP_NAMES = {value: name for name, value in caffe_pb2.EltwiseParameter.EltwiseOp.items()}


class _AxisRule:
    """An axis given either as the legacy unsigned ``*_dim`` field or as a signed ``axis``."""

    def __init__(self, axis: int, legacy: bool, layer: str, field: str) -> None:
        self.axis = axis
        self.legacy = legacy
        self.layer = layer
        self.field = field

    def resolve(self, num_axes: int) -> int:
        if self.legacy:
            if self.axis >= num_axes:
                raise ShapeError(f"{self.field} {self.axis} is out of range for a blob of {num_axes} axes",
                                 layer=self.layer)
            return self.axis
        return canonical_axis(self.axis, num_axes, self.layer)

    def describe(self) -> str:
        return f"{self.field}={self.axis}"


def _axis_rule(spec: LayerSpec, params, legacy_field: str) -> _AxisRule:
    if params.HasField("axis") and params.HasField(legacy_field):
        raise spec.unsupported(f"both axis and {legacy_field} are set; Caffe accepts only one")
    if params.HasField(legacy_field):
        return _AxisRule(int(getattr(params, legacy_field)), True, spec.name, legacy_field)
    return _AxisRule(int(params.axis), False, spec.name, "axis")


def _along(axis: int, start: int | torch.SymInt, stop: int | torch.SymInt | None) -> tuple[slice, ...]:
    """An index selecting ``start:stop`` on ``axis`` and everything on the axes before it."""
    return (slice(None),) * axis + (slice(start, stop),)


class Concat(nn.Module):
    """forward(b_0, ..., b_k) -> the bottoms joined along the axis (sizes equal elsewhere)."""

    def __init__(self, rule: _AxisRule) -> None:
        super().__init__()
        self.rule = rule

    def extra_repr(self) -> str:
        return self.rule.describe()

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        axis = self.rule.resolve(bottoms[0].dim())
        if len(bottoms) == 1:
            return bottoms[0]
        return torch.cat(bottoms, dim=axis)


class Slice(nn.Module):
    """forward(x) -> tuple of pieces of x along the axis (one tensor when there is one top)."""

    def __init__(self, rule: _AxisRule, points: tuple[int, ...], tops: int) -> None:
        super().__init__()
        self.rule = rule
        self.points = points
        self.tops = tops

    def extra_repr(self) -> str:
        return f"{self.rule.describe()}, slice_point={list(self.points)}, tops={self.tops}"

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        axis = self.rule.resolve(x.dim())
        size = x.shape[axis]
        if self.points:
            if not tracing() and size <= self.points[-1]:
                raise ShapeError(f"slice point {self.points[-1]} leaves nothing for the last top of an "
                                 f"axis of size {size}", layer=self.rule.layer)
            edges = (0, *self.points)
            pieces = [x[_along(axis, start, stop)] for start, stop in zip(edges, (*self.points, None))]
        else:
            if not tracing() and (size % self.tops or size < self.tops):
                raise ShapeError(f"{self.tops} tops do not evenly divide an axis of size {size}",
                                 layer=self.rule.layer)
            piece = size // self.tops
            pieces = [x[_along(axis, i * piece, (i + 1) * piece)] for i in range(self.tops)]
        return pieces[0] if self.tops == 1 else tuple(pieces)


class Split(nn.Module):
    """forward(x) -> x once per top (a tuple when there are several tops)."""

    def __init__(self, tops: int) -> None:
        super().__init__()
        self.tops = tops

    def extra_repr(self) -> str:
        return f"tops={self.tops}"

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return x if self.tops == 1 else (x,) * self.tops


class Silence(nn.Module):
    """forward(*bottoms) -> () : consumes its bottoms, produces no top."""

    def forward(self, *bottoms: torch.Tensor) -> tuple[()]:
        return ()


class Eltwise(nn.Module):
    """forward(b_0, ..., b_k) -> element-wise SUM (with coefficients), PROD or MAX; same shapes."""

    def __init__(self, operation: str, coefficients: tuple[float, ...], layer: str) -> None:
        super().__init__()
        self.operation = operation
        self.coefficients = coefficients
        self.layer = layer

    def extra_repr(self) -> str:
        coefficients = f", coeff={list(self.coefficients)}" if self.coefficients else ""
        return f"operation={self.operation}{coefficients}"

    def _check(self, bottoms: tuple[torch.Tensor, ...]) -> None:
        if self.coefficients and len(self.coefficients) != len(bottoms):
            raise ShapeError(f"{len(self.coefficients)} coefficients for {len(bottoms)} bottoms", layer=self.layer)
        if not tracing():
            for bottom in bottoms[1:]:
                if bottom.shape != bottoms[0].shape:
                    raise ShapeError(f"Eltwise bottoms differ in shape: {[tuple(b.shape) for b in bottoms]}",
                                     layer=self.layer)

    def forward(self, *bottoms: torch.Tensor) -> torch.Tensor:
        self._check(bottoms)
        if self.operation == "SUM":
            coefficients = self.coefficients or (1.0,) * len(bottoms)
            total = None
            for coefficient, bottom in zip(coefficients, bottoms):
                term = bottom if coefficient == 1.0 else bottom * coefficient
                total = term if total is None else total + term
            return total
        if self.operation == "PROD":
            product = bottoms[0]
            for bottom in bottoms[1:]:
                product = product * bottom
            return product
        # MAX: Caffe seeds with bottom 0 vs 1 (a > b ? a : b), then keeps the running value unless
        # a later bottom is strictly greater.
        result = bottoms[0]
        for index, bottom in enumerate(bottoms[1:], start=1):
            result = torch.where(result > bottom, result, bottom) if index == 1 else \
                torch.where(bottom > result, bottom, result)
        return result


@register("Concat")
def convert_concat(spec: LayerSpec) -> nn.Module:
    return Concat(_axis_rule(spec, spec.layer.concat_param, "concat_dim"))


@register("Slice")
def convert_slice(spec: LayerSpec) -> nn.Module:
    params = spec.layer.slice_param
    points = tuple(int(p) for p in params.slice_point)
    tops = len(spec.layer.top)
    if points:
        if len(points) != tops - 1:
            raise spec.unsupported(f"{len(points)} slice points for {tops} tops (need {tops - 1})")
        previous = 0
        for point in points:
            if point <= previous:
                raise spec.unsupported(f"slice points {list(points)} must increase strictly from above 0")
            previous = point
    return Slice(_axis_rule(spec, params, "slice_dim"), points, tops)


@register("Split")
def convert_split(spec: LayerSpec) -> nn.Module:
    return Split(len(spec.layer.top))


@register("Silence")
def convert_silence(spec: LayerSpec) -> nn.Module:
    return Silence()


@register("Eltwise")
def convert_eltwise(spec: LayerSpec) -> nn.Module:
    params = spec.layer.eltwise_param
    operation = _ELTWISE_OP_NAMES[params.operation]
    coefficients = tuple(float(c) for c in params.coeff)
    bottoms = len(spec.layer.bottom)
    if coefficients and len(coefficients) != bottoms:
        raise spec.unsupported(f"{len(coefficients)} coefficients for {bottoms} bottoms; Caffe takes one per bottom")
    if coefficients and operation != "SUM":
        raise spec.unsupported(f"coefficients are only taken for SUM, not {operation}")
    if operation in ("PROD", "MAX") and bottoms < 2:
        raise spec.unsupported(f"{operation} needs at least two bottoms, got {bottoms}")
    return Eltwise(operation, coefficients, spec.name)
