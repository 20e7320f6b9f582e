"""A small builder for Caffe ``NetParameter`` messages (BVLC field names, V2 ``layer`` format).

Each method appends one layer and returns the name of the blob it wrote, so nets read as a
chain of calls. Activations are written in place (top == bottom), as OpenPose's nets do.
Training-only fields (fillers, ``param`` lr/decay multipliers) come from a :class:`ConvStyle`;
they never change what the net computes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from posebridge.prototxt import caffe_pb2


@dataclass(frozen=True)
class Filler:
    """A Caffe FillerParameter: ``type`` plus its optional ``std`` (gaussian) or ``value`` (constant)."""

    type: str
    std: float | None = None
    value: float | None = None

    def write(self, message: caffe_pb2.FillerParameter) -> None:
        message.type = self.type
        if self.std is not None:
            message.std = self.std
        if self.value is not None:
            message.value = self.value


@dataclass(frozen=True)
class ConvStyle:
    """Training-side fields written on a Convolution layer.

    ``lr_mult`` is the weights' learning-rate multiplier; when set, two ``param`` blocks are
    written: weights (lr_mult, decay 1) and bias (2 x lr_mult, decay 0), Caffe's usual pair.
    ``explicit_dilation`` writes ``dilation: 1`` (the default, spelled out by some nets).
    """

    weight_filler: Filler | None = None
    bias_filler: Filler | None = None
    lr_mult: float | None = None
    explicit_dilation: bool = False


#: Bias learning rate relative to the weights', and the two decay multipliers (weights, bias).
BIAS_LR_FACTOR = 2.0
DECAY_MULTS = (1.0, 0.0)

POOL_METHODS = {"MAX": caffe_pb2.PoolingParameter.MAX, "AVE": caffe_pb2.PoolingParameter.AVE}


class NetBuilder:
    """Appends layers to a NetParameter; every method returns the top blob's name."""

    def __init__(self, name: str = "", style: ConvStyle = ConvStyle()) -> None:
        self._net = caffe_pb2.NetParameter()
        if name:
            self._net.name = name
        self.style = style

    def legacy_input(self, blob: str, dims: Sequence[int]) -> str:
        """Declare an input the legacy way (``input:`` + ``input_dim:`` N, C, H, W)."""
        self._net.input.append(blob)
        self._net.input_dim.extend(int(d) for d in dims)
        return blob

    def _layer(self, name: str, type_: str, bottoms: Sequence[str], tops: Sequence[str]) -> caffe_pb2.LayerParameter:
        layer = self._net.layer.add()
        layer.name = name
        layer.type = type_
        layer.bottom.extend(bottoms)
        layer.top.extend(tops)
        return layer

    def conv(self, name: str, bottom: str, num_output: int, kernel: int, *, pad: int | None = None,
             stride: int | None = None, top: str | None = None, style: ConvStyle | None = None) -> str:
        """A square Convolution; ``pad`` defaults to kernel // 2 ("same" size at stride 1), always written."""
        style = style or self.style
        top = top or name
        layer = self._layer(name, "Convolution", [bottom], [top])
        if style.lr_mult is not None:
            for lr, decay in zip((style.lr_mult, style.lr_mult * BIAS_LR_FACTOR), DECAY_MULTS):
                spec = layer.param.add()
                spec.lr_mult = lr
                spec.decay_mult = decay
        param = layer.convolution_param
        param.num_output = num_output
        param.pad.append(kernel // 2 if pad is None else pad)
        param.kernel_size.append(kernel)
        if stride is not None:
            param.stride.append(stride)
        if style.weight_filler is not None:
            style.weight_filler.write(param.weight_filler)
        if style.bias_filler is not None:
            style.bias_filler.write(param.bias_filler)
        if style.explicit_dilation:
            param.dilation.append(1)
        return top

    def relu(self, name: str, blob: str) -> str:
        """An in-place ReLU on ``blob``."""
        self._layer(name, "ReLU", [blob], [blob])
        return blob

    def prelu(self, name: str, blob: str) -> str:
        """An in-place PReLU (one slope per channel) on ``blob``."""
        self._layer(name, "PReLU", [blob], [blob])
        return blob

    def pool(self, name: str, bottom: str, *, kernel: int = 2, stride: int = 2, method: str = "MAX",
             top: str | None = None) -> str:
        """A square Pooling layer (``pool`` written explicitly, as OpenPose's nets do)."""
        top = top or name
        param = self._layer(name, "Pooling", [bottom], [top]).pooling_param
        param.pool = POOL_METHODS[method]
        param.kernel_size = kernel
        param.stride = stride
        return top

    def concat(self, name: str, bottoms: Sequence[str], *, top: str | None = None, axis: int = 1) -> str:
        """A Concat of ``bottoms`` along ``axis`` (channels), written explicitly."""
        top = top or name
        self._layer(name, "Concat", bottoms, [top]).concat_param.axis = axis
        return top

    def build(self) -> caffe_pb2.NetParameter:
        """A copy of the net built so far."""
        net = caffe_pb2.NetParameter()
        net.CopyFrom(self._net)
        return net
