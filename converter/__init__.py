"""Caffe graphs rebuilt as PyTorch modules with Caffe's exact semantics.

Entry points: :func:`convert` (files -> :class:`CaffeNet`), the layer registry
(:func:`register`, :func:`supported_types`).
"""

from posebridge.converter.api import convert
from posebridge.converter.network import CaffeNet
from posebridge.converter.registry import LayerSpec, register, supported_types

__all__ = ["CaffeNet", "LayerSpec", "convert", "register", "supported_types"]
