"""The registry of layer converters: one function per Caffe layer family, found by type name.

A converter receives a :class:`LayerSpec` (the Caffe layer, its parameters and its weights)
and returns an ``nn.Module`` whose ``forward`` takes the layer's bottoms as tensors and returns
one tensor (one top) or a tuple of tensors (several tops). Modules never bake in a spatial
size or a batch size: the same module runs at any input size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from google.protobuf.message import Message
from torch import nn

from posebridge.errors import ForbiddenLayerError, UnsupportedLayerError
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.layer_types import layer_params


@dataclass(frozen=True)
class LayerSpec:
    """Everything a converter may read about one layer.

    ``blobs`` are the layer's float32 weights in Caffe's layout (already checked against the
    shapes the net implies); ``input_shapes`` are the bottoms' shapes at the placeholder input
    size, for information only (channel counts), never to be baked into a module.
    """

    name: str
    type: str
    layer: caffe_pb2.LayerParameter = field(repr=False)
    blobs: Sequence[np.ndarray] = field(default=(), repr=False)
    input_shapes: Sequence[tuple[int, ...]] = ()
    source: str = ""

    @property
    def params(self) -> Message | None:
        """The type-specific parameter message (e.g. ``convolution_param``), or None."""
        return layer_params(self.layer, self.type)

    def unsupported(self, what: str) -> UnsupportedLayerError:
        """An UnsupportedLayerError for a mode of this layer that posebridge cannot convert."""
        return UnsupportedLayerError(f"{self.type}: {what}", file=self.source or None, layer=self.name)


Converter = Callable[[LayerSpec], nn.Module]

_CONVERTERS: dict[str, Converter] = {}


def register(*type_names: str) -> Callable[[Converter], Converter]:
    """Decorator registering a converter for one or more Caffe layer types.

    Registering a type twice raises ValueError (a programming error, not a user error).
    """

    def decorate(function: Converter) -> Converter:
        for type_name in type_names:
            if type_name in _CONVERTERS:
                raise ValueError(f"a converter for Caffe layer type '{type_name}' is already registered "
                                 f"({_CONVERTERS[type_name].__module__})")
            _CONVERTERS[type_name] = function
        return function

    return decorate


def _load_layer_modules() -> None:
    # Importing the package imports every family module, which registers its converters.
    import posebridge.converter.layers  # noqa: F401


def supported_types() -> tuple[str, ...]:
    """Every Caffe layer type with a registered converter, sorted."""
    _load_layer_modules()
    return tuple(sorted(_CONVERTERS))


def converter_for(type_name: str) -> Converter | None:
    """The converter registered for ``type_name``, or None."""
    _load_layer_modules()
    return _CONVERTERS.get(type_name)


def converter_module_of(type_name: str) -> str:
    """The module (layer family) that converts ``type_name``."""
    _load_layer_modules()
    return _CONVERTERS[type_name].__module__


def convert_layer(spec: LayerSpec) -> nn.Module:
    """Convert one layer; raises UnsupportedLayerError (ForbiddenLayerError for Python layers)."""
    if spec.type == "Python":
        raise ForbiddenLayerError("Python layers run arbitrary code from the model file and are never "
                                  "converted or executed", file=spec.source or None, layer=spec.name)
    converter = converter_for(spec.type)
    if converter is None:
        raise UnsupportedLayerError(
            f"layer type '{spec.type}' is not supported; supported types: {', '.join(supported_types())}",
            file=spec.source or None, layer=spec.name)
    return converter(spec)
