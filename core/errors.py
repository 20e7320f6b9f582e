"""The exceptions every posebridge room raises.

One base class, :class:`PosebridgeError`, with one subclass per kind of failure. The CLI turns
any of them into one line on stderr and exit code 2. Each message names the file, the layer
and the offending value where they are known.
"""

from __future__ import annotations


class PosebridgeError(Exception):
    """Base of every error posebridge raises on purpose."""

    def __init__(self, message: str, *, file: str | None = None, layer: str | None = None) -> None:
        self.file = file
        self.layer = layer
        self.detail = message
        super().__init__(self._compose(message, file, layer))

    @staticmethod
    def _compose(message: str, file: str | None, layer: str | None) -> str:
        where = []
        if file:
            where.append(str(file))
        if layer:
            where.append(f"layer '{layer}'")
        return f"{': '.join(where)}: {message}" if where else message


class FileAccessError(PosebridgeError):
    """A file is missing, unreadable or empty."""


class PrototxtSyntaxError(PosebridgeError):
    """Prototxt text that protobuf's text_format rejects (message is file:line:col: ...)."""


class CaffemodelFormatError(PosebridgeError):
    """A binary caffemodel that does not decode (truncated, random bytes, wrong file)."""


class GraphError(PosebridgeError):
    """A net whose layers do not form a valid graph (dangling bottom, cycle, duplicate top)."""


class ShapeError(PosebridgeError):
    """A layer whose output shape cannot be computed from its inputs and parameters."""


class WeightsError(PosebridgeError):
    """Weights missing, of the wrong count or of the wrong shape for a layer."""


class UnsupportedLayerError(PosebridgeError):
    """A layer type (or a mode of one) that posebridge cannot convert or reason about."""


class ForbiddenLayerError(UnsupportedLayerError):
    """A layer that would execute code from the model file (Caffe ``Python`` layers)."""


class LimitExceededError(PosebridgeError):
    """An input larger than a configured resource limit (size, element count, depth)."""


class ParityError(PosebridgeError):
    """A reference could not be run or does not match the graph being compared."""


class ExportError(PosebridgeError):
    """An ONNX export that failed its own checks."""


class InputMediaError(PosebridgeError):
    """An image or video that cannot be decoded or used."""
