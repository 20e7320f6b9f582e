"""Output shapes of every standard Caffe layer at any input size, with Caffe's exact rules.

``infer_shapes(graph, input_shapes)`` returns the shape of every blob version. Layers whose
shape cannot be known (opaque fork layers, data layers) give None, and so do their consumers.
``expected_blob_shapes(node, bottom_shapes)`` gives the learnable blobs' shapes that a layer's
parameters imply, used to check caffemodel weights and to synthesise them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from posebridge.errors import ShapeError
from posebridge.limits import DEFAULT_LIMITS, Limits
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.blob_counts import check_blob_counts
from posebridge.prototxt.budget import check_activation_shape, check_weight_shape
from posebridge.prototxt.graph import Graph, Node, Shape

ShapeRule = Callable[[Node, list[Shape]], list[Shape]]
_RULES: dict[str, ShapeRule] = {}


def _rule(*types: str):
    def decorate(function: ShapeRule) -> ShapeRule:
        for name in types:
            _RULES[name] = function
        return function
    return decorate


def _fail(node: Node, message: str) -> ShapeError:
    return ShapeError(message, layer=node.name)


def canonical_axis(node: Node, axis: int, num_axes: int) -> int:
    """Caffe's CanonicalAxisIndex: negative axes count from the end."""
    if not -num_axes <= axis < num_axes:
        raise _fail(node, f"axis {axis} out of range for a blob of {num_axes} axes")
    return axis + num_axes if axis < 0 else axis


def spatial_values(repeated: Sequence[int], h_value: int | None, w_value: int | None,
                   default: int, node: Node, what: str) -> tuple[int, int]:
    """Resolve a conv/pool 2-D parameter from (repeated value | _h/_w fields | default)."""
    if h_value is not None or w_value is not None:
        if repeated:
            raise _fail(node, f"{what} given both as {what} and {what}_h/{what}_w")
        return (h_value if h_value is not None else default, w_value if w_value is not None else default)
    if len(repeated) == 0:
        return default, default
    if len(repeated) == 1:
        return repeated[0], repeated[0]
    if len(repeated) == 2:
        return repeated[0], repeated[1]
    raise _fail(node, f"{what} has {len(repeated)} values; only 2-D spatial layers are supported")


def conv_geometry(node: Node) -> dict[str, tuple[int, int]]:
    """Kernel, stride, pad and dilation (each (h, w)) of a Convolution/Deconvolution layer."""
    p = node.layer.convolution_param
    kernel = spatial_values(list(p.kernel_size), p.kernel_h if p.HasField("kernel_h") else None,
                            p.kernel_w if p.HasField("kernel_w") else None, 0, node, "kernel_size")
    stride = spatial_values(list(p.stride), p.stride_h if p.HasField("stride_h") else None,
                            p.stride_w if p.HasField("stride_w") else None, 1, node, "stride")
    pad = spatial_values(list(p.pad), p.pad_h if p.HasField("pad_h") else None,
                         p.pad_w if p.HasField("pad_w") else None, 0, node, "pad")
    dilation = spatial_values(list(p.dilation), None, None, 1, node, "dilation")
    if min(kernel) <= 0 or min(stride) <= 0 or min(dilation) <= 0:
        raise _fail(node, f"kernel {kernel}, stride {stride} and dilation {dilation} must be positive")
    return {"kernel": kernel, "stride": stride, "pad": pad, "dilation": dilation}


def pool_geometry(node: Node, in_hw: tuple[int, int]) -> dict[str, tuple[int, int]]:
    """Kernel, stride and pad (each (h, w)) of a Pooling layer; global pooling uses the input size."""
    p = node.layer.pooling_param
    if p.global_pooling:
        return {"kernel": in_hw, "stride": (1, 1), "pad": (0, 0)}
    kernel = (p.kernel_h, p.kernel_w) if p.HasField("kernel_h") else (p.kernel_size, p.kernel_size)
    stride = (p.stride_h, p.stride_w) if p.HasField("stride_h") else (p.stride, p.stride)
    pad = (p.pad_h, p.pad_w) if p.HasField("pad_h") else (p.pad, p.pad)
    if min(kernel) <= 0 or min(stride) <= 0:
        raise _fail(node, f"pooling kernel {kernel} and stride {stride} must be positive")
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        raise _fail(node, f"pooling pad {pad} must be smaller than the kernel {kernel}")
    return {"kernel": kernel, "stride": stride, "pad": pad}


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool = True,
                any_pad: bool | None = None) -> int:
    """Caffe's pooled size: rounds up (CEIL), then drops a last window starting in the padding.

    Caffe applies the drop on both axes whenever either axis is padded (``pad_h || pad_w``);
    pass ``any_pad`` for that, else this axis's own ``pad`` decides.
    """
    span = size + 2 * pad - kernel
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if (bool(pad) if any_pad is None else any_pad) and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _check4(node: Node, shape: Shape) -> None:
    if len(shape) != 4:
        raise _fail(node, f"expects a 4-D bottom (N, C, H, W), got {list(shape)}")


def _conv_output_size(node: Node, size: int, axis: int, g: dict[str, tuple[int, int]]) -> int:
    """One spatial output size of a Convolution (floor) or Deconvolution (its inverse)."""
    extent = g["dilation"][axis] * (g["kernel"][axis] - 1) + 1
    if node.type == "Deconvolution":
        return g["stride"][axis] * (size - 1) + extent - 2 * g["pad"][axis]
    return (size + 2 * g["pad"][axis] - extent) // g["stride"][axis] + 1


@_rule("Convolution", "Deconvolution")
def _convolution(node: Node, bottoms: list[Shape]) -> list[Shape]:
    g = conv_geometry(node)
    p = node.layer.convolution_param
    out = []
    for shape in bottoms:
        _check4(node, shape)
        spatial = [_conv_output_size(node, shape[2 + i], i, g) for i in range(2)]
        if min(spatial) <= 0:
            raise _fail(node, f"output size {spatial} <= 0 for input {list(shape)} (kernel {g['kernel']}, "
                              f"pad {g['pad']}, stride {g['stride']}, dilation {g['dilation']})")
        out.append((shape[0], p.num_output, *spatial))
    return out


@_rule("Pooling")
def _pooling(node: Node, bottoms: list[Shape]) -> list[Shape]:
    shape = bottoms[0]
    _check4(node, shape)
    g = pool_geometry(node, (shape[2], shape[3]))
    ceil_mode = node.layer.pooling_param.round_mode == caffe_pb2.PoolingParameter.CEIL
    any_pad = bool(g["pad"][0] or g["pad"][1])
    h = pooled_size(shape[2], g["kernel"][0], g["stride"][0], g["pad"][0], ceil_mode, any_pad)
    w = pooled_size(shape[3], g["kernel"][1], g["stride"][1], g["pad"][1], ceil_mode, any_pad)
    if h <= 0 or w <= 0:
        raise _fail(node, f"pooled size {h}x{w} <= 0 for input {list(shape)}")
    tops = [(shape[0], shape[1], h, w)]
    if len(node.tops) > 1:  # MAX pooling's optional mask top
        tops.append(tops[0])
    return tops


@_rule("InnerProduct")
def _inner_product(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.inner_product_param
    shape = bottoms[0]
    axis = canonical_axis(node, p.axis, len(shape))
    return [(*shape[:axis], p.num_output)]


@_rule("ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "Threshold",
       "Clip", "Swish", "Dropout", "BatchNorm", "Scale", "Bias", "LRN", "MVN", "Softmax")
def _same(node: Node, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]]


@_rule("Split")
def _split(node: Node, bottoms: list[Shape]) -> list[Shape]:
    return [bottoms[0]] * len(node.tops)


@_rule("Silence")
def _silence(node: Node, bottoms: list[Shape]) -> list[Shape]:
    return []


@_rule("Eltwise")
def _eltwise(node: Node, bottoms: list[Shape]) -> list[Shape]:
    for shape in bottoms[1:]:
        if shape != bottoms[0]:
            raise _fail(node, f"Eltwise bottoms differ in shape: {[list(s) for s in bottoms]}")
    return [bottoms[0]]


@_rule("Concat")
def _concat(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") else p.axis
    axis = canonical_axis(node, axis, len(bottoms[0]))
    total = 0
    for shape in bottoms:
        if len(shape) != len(bottoms[0]) or any(
                a != b for i, (a, b) in enumerate(zip(shape, bottoms[0])) if i != axis):
            raise _fail(node, f"Concat bottoms differ outside axis {axis}: {[list(s) for s in bottoms]}")
        total += shape[axis]
    out = list(bottoms[0])
    out[axis] = total
    return [tuple(out)]


def slice_sizes(node: Node, size: int) -> list[int]:
    """Sizes along the slice axis of each top of a Slice layer."""
    p = node.layer.slice_param
    count = len(node.tops)
    if count == 0:
        raise _fail(node, "Slice layer has no tops")
    points = list(p.slice_point)
    if points:
        if len(points) != count - 1:
            raise _fail(node, f"{len(points)} slice points for {count} tops")
        edges = [0, *points, size]
        sizes = [b - a for a, b in zip(edges, edges[1:])]
        if any(s <= 0 for s in sizes):
            raise _fail(node, f"slice points {points} do not increase inside the axis size {size}")
        return sizes
    if size % count:
        raise _fail(node, f"axis size {size} does not split evenly into {count} tops")
    return [size // count] * count


@_rule("Slice")
def _slice(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.slice_param
    axis = p.slice_dim if p.HasField("slice_dim") else p.axis
    axis = canonical_axis(node, axis, len(bottoms[0]))
    tops = []
    for size in slice_sizes(node, bottoms[0][axis]):
        shape = list(bottoms[0])
        shape[axis] = size
        tops.append(tuple(shape))
    return tops


@_rule("Flatten")
def _flatten(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.flatten_param
    shape = bottoms[0]
    start = canonical_axis(node, p.axis, len(shape))
    end = canonical_axis(node, p.end_axis, len(shape))
    middle = 1
    for d in shape[start:end + 1]:
        middle *= d
    return [(*shape[:start], middle, *shape[end + 1:])]


@_rule("Reshape")
def _reshape(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.reshape_param
    shape = list(bottoms[0])
    dims = list(p.shape.dim)
    start = p.axis if p.axis >= 0 else len(shape) + p.axis + 1
    if not 0 <= start <= len(shape):
        raise _fail(node, f"reshape axis {p.axis} out of range for {shape}")
    end = len(shape) if p.num_axes == -1 else start + p.num_axes
    if end > len(shape):
        raise _fail(node, f"reshape num_axes {p.num_axes} out of range for {shape}")
    replaced = shape[start:end]
    new = []
    for i, d in enumerate(dims):
        if d == 0:
            if i >= len(replaced):
                raise _fail(node, f"reshape dim {i} is 0 (copy) but the bottom has no axis {start + i}")
            new.append(replaced[i])
        else:
            new.append(d)
    if new.count(-1) > 1:
        raise _fail(node, "reshape has more than one -1 dimension")
    total = 1
    for d in replaced:
        total *= d
    if -1 in new:
        known = 1
        for d in new:
            if d != -1:
                known *= d
        if known == 0 or total % known:
            raise _fail(node, f"cannot infer -1 in {dims} for bottom {shape}")
        new[new.index(-1)] = total // known
    product = 1
    for d in new:
        product *= d
    if product != total:
        raise _fail(node, f"reshape {dims} of {shape} changes the element count")
    return [tuple(shape[:start] + new + shape[end:])]


@_rule("Crop")
def _crop(node: Node, bottoms: list[Shape]) -> list[Shape]:
    if len(bottoms) != 2:
        raise _fail(node, "Crop needs two bottoms")
    if len(bottoms[0]) != len(bottoms[1]):
        raise _fail(node, f"Crop bottoms differ in rank: {[list(s) for s in bottoms]}")
    p = node.layer.crop_param
    axis = canonical_axis(node, p.axis, len(bottoms[0]))
    offsets = list(p.offset)
    if len(offsets) > 1 and len(offsets) != len(bottoms[0]) - axis:
        raise _fail(node, f"{len(offsets)} crop offsets for the {len(bottoms[0]) - axis} axes from axis {axis}")
    out = list(bottoms[0])
    for i in range(axis, len(out)):
        offset = 0 if not offsets else (offsets[0] if len(offsets) == 1 else offsets[i - axis])
        if offset + bottoms[1][i] > bottoms[0][i]:
            raise _fail(node, f"crop offset {offset} + size {bottoms[1][i]} exceeds {bottoms[0][i]} on axis {i}")
        out[i] = bottoms[1][i]
    return [tuple(out)]


@_rule("ArgMax")
def _argmax(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.argmax_param
    shape = bottoms[0]
    if p.HasField("axis"):
        axis = canonical_axis(node, p.axis, len(shape))
        out = list(shape)
        out[axis] = p.top_k
        return [tuple(out)]
    if not shape:  # Caffe reads the bottom's shape(0): a blob without axes has none
        raise _fail(node, "ArgMax without an axis needs a bottom with at least one axis; it has none")
    out = [1] * max(3, len(shape))
    out[0] = shape[0]
    out[2] = p.top_k
    if p.out_max_val:
        out[1] = 2
    return [tuple(out)]


@_rule("Tile")
def _tile(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.tile_param
    out = list(bottoms[0])
    axis = canonical_axis(node, p.axis, len(out))
    out[axis] *= p.tiles
    return [tuple(out)]


@_rule("Reduction")
def _reduction(node: Node, bottoms: list[Shape]) -> list[Shape]:
    p = node.layer.reduction_param
    axis = canonical_axis(node, p.axis, len(bottoms[0]))
    return [tuple(bottoms[0][:axis])]


@_rule("Input")
def _input(node: Node, bottoms: list[Shape]) -> list[Shape]:
    raise AssertionError("Input shapes come from the graph's inputs")


@_rule("Accuracy", "SoftmaxWithLoss", "EuclideanLoss", "SigmoidCrossEntropyLoss", "HingeLoss",
       "InfogainLoss", "ContrastiveLoss", "MultinomialLogisticLoss")
def _loss(node: Node, bottoms: list[Shape]) -> list[Shape]:
    return [()] * len(node.tops)


def infer_shapes(graph: Graph, input_shapes: Mapping[str, Shape] | None = None, *,
                 limits: Limits = DEFAULT_LIMITS) -> dict[str, Shape | None]:
    """Shape of every blob version; None where unknowable (opaque or data layers upstream).

    ``input_shapes`` overrides the graph's placeholder input shapes (see Graph.input_shapes).
    Every shape is checked against ``limits.max_activation_bytes`` as it is computed, and every
    known layer's bottom/top counts against Caffe's, so a hostile net fails here, not later.
    """
    shapes: dict[str, Shape | None] = {}
    source = graph.source or None
    given = dict(graph.inputs)
    if input_shapes:
        given.update({k: tuple(v) for k, v in input_shapes.items()})
    for node in graph.nodes:
        if node.type == "Input":
            check_blob_counts(node, source=source)
            for top, caffe_top in zip(node.tops, node.caffe_tops):
                shapes[top] = given[caffe_top]
                check_activation_shape(given[caffe_top], limits, what=f"input '{caffe_top}'", file=source,
                                       layer=node.name)
            continue
        bottoms = [shapes.get(b) for b in node.bottoms]
        rule = _RULES.get(node.type)
        if rule is not None and not bottoms and node.type != "Silence":
            raise ShapeError(f"{node.type} layer needs at least one bottom; it has none",
                             file=source, layer=node.name)
        check_blob_counts(node, source=source)
        if rule is None or any(b is None for b in bottoms):
            for top in node.tops:
                shapes[top] = None
            continue
        try:
            tops = rule(node, bottoms)
        except ShapeError as error:
            raise ShapeError(error.detail, file=source, layer=node.name) from None
        padded = _padded_input(node, bottoms[0])
        if padded is not None:
            check_activation_shape(padded, limits, what="padded input", file=source, layer=node.name)
        for top, shape in zip(node.tops, tops):
            shapes[top] = tuple(int(d) for d in shape)
            check_activation_shape(shapes[top], limits, what=f"output '{graph.caffe_blob.get(top, top)}'",
                                   file=source, layer=node.name)
    return shapes


def _padded_input(node: Node, bottom: Shape) -> Shape | None:
    """The largest padded input a Convolution or Pooling may build from ``bottom`` (an upper
    bound: pooling pads up to ``pad`` left and ``pad + stride - 1`` right for Caffe's rounding)."""
    if node.type == "Convolution":
        pad = conv_geometry(node)["pad"]
        extra = (2 * pad[0], 2 * pad[1])
    elif node.type == "Pooling" and not node.layer.pooling_param.global_pooling:
        g = pool_geometry(node, (bottom[2], bottom[3]))
        extra = (2 * g["pad"][0] + g["stride"][0] - 1, 2 * g["pad"][1] + g["stride"][1] - 1)
    else:
        return None
    return (*bottom[:2], bottom[2] + extra[0], bottom[3] + extra[1])


def expected_blob_shapes(node: Node, bottoms: Sequence[Shape | None], *,
                         limits: Limits = DEFAULT_LIMITS) -> list[Shape] | None:
    """Shapes of the learnable blobs this layer's parameters imply (None when not derivable).

    Each shape is checked against ``limits.max_blob_elements`` before anyone allocates it.
    """
    shapes = _implied_blob_shapes(node, bottoms)
    for index, shape in enumerate(shapes or ()):
        check_weight_shape(shape, limits, what=f"weight blob {index}", layer=node.name)
    return shapes


def _implied_blob_shapes(node: Node, bottoms: Sequence[Shape | None]) -> list[Shape] | None:
    layer = node.layer
    if node.type in ("Convolution", "Deconvolution"):
        p = layer.convolution_param
        if not bottoms or bottoms[0] is None:
            return None
        g = conv_geometry(node)
        channels = bottoms[0][1]
        group = max(p.group, 1)
        if channels % group or p.num_output % group:
            raise ShapeError(f"channels {channels} and num_output {p.num_output} must divide by group {group}",
                             layer=node.name)
        if node.type == "Convolution":
            weight = (p.num_output, channels // group, *g["kernel"])
        else:
            weight = (channels, p.num_output // group, *g["kernel"])
        return [weight, (p.num_output,)] if p.bias_term else [weight]
    if node.type == "InnerProduct":
        p = layer.inner_product_param
        if not bottoms or bottoms[0] is None:
            return None
        axis = canonical_axis(node, p.axis, len(bottoms[0]))
        k = 1
        for d in bottoms[0][axis:]:
            k *= d
        weight = (k, p.num_output) if p.transpose else (p.num_output, k)
        return [weight, (p.num_output,)] if p.bias_term else [weight]
    if node.type == "PReLU":
        if layer.prelu_param.channel_shared:
            return [(1,)]
        return None if not bottoms or bottoms[0] is None else [(bottoms[0][1],)]
    if node.type == "BatchNorm":
        if not bottoms or bottoms[0] is None:
            return None
        c = bottoms[0][1]
        return [(c,), (c,), (1,)]
    if node.type in ("Scale", "Bias"):
        p = layer.scale_param if node.type == "Scale" else layer.bias_param
        has_bias = node.type == "Scale" and p.bias_term
        if len(node.bottoms) > 1:  # the scale (or bias) comes from the second bottom
            if not has_bias:
                return []
            return None if len(bottoms) < 2 or bottoms[1] is None else [tuple(bottoms[1])]
        if not bottoms or bottoms[0] is None:
            return None
        shape = bottoms[0]
        axis = canonical_axis(node, p.axis, len(shape))
        end = len(shape) if p.num_axes == -1 else axis + p.num_axes
        param_shape = tuple(shape[axis:end])
        return [param_shape, param_shape] if has_bias else [param_shape]
    if node.type == "Embed":
        p = layer.embed_param
        weight = (p.input_dim, p.num_output)
        return [weight, (p.num_output,)] if p.bias_term else [weight]
    return []
