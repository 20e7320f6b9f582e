"""posebridge: the CMU OpenPose Caffe models in PyTorch and ONNX, with proof of parity.

Rooms: :mod:`posebridge.prototxt` (reading Caffe files), :mod:`posebridge.converter`
(PyTorch rebuild, parity, ONNX), :mod:`posebridge.runtime` (OpenPose inference) and
:mod:`posebridge.tools` (command line, reports, benchmarks).
"""

from __future__ import annotations

from posebridge.errors import PosebridgeError

__version__ = "0.1.0"

__all__ = ["PosebridgeError", "__version__"]
