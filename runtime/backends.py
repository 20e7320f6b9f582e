"""The network behind one interface: torch, onnxruntime or OpenCV dnn.

Every backend maps a float32 NCHW batch (BGR, ``v/256 - 0.5``) to the net's output maps
(N, C, H/8, W/8) as float32 numpy, and knows which model family it runs (from the graph's
structure, the caffemodel's MD5, or the ONNX metadata), so the runtime picks the skeleton
without being told.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from posebridge.converter.model_family import ModelFamily, file_md5, recognise
from posebridge.errors import PosebridgeError
from posebridge.prototxt.loader import load_graph
from posebridge.prototxt.structure import detect_structure

BACKENDS = ("torch", "onnxruntime", "opencv")


class Backend(Protocol):
    """What the runtime needs of a network."""

    name: str
    family: ModelFamily

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, C, H/8, W/8) float32."""


@dataclass
class TorchBackend:
    """A converted :class:`~posebridge.converter.CaffeNet` (or any module with that forward)."""

    model: object
    family: ModelFamily
    name: str = "torch"
    threads: int | None = None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self.model(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        if isinstance(out, tuple):
            out = out[0]
        return out.numpy()


@dataclass
class OnnxBackend:
    """An ONNX file exported by posebridge, run with onnxruntime."""

    path: str
    family: ModelFamily
    name: str = "onnxruntime"
    _session: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [o.name for o in self._session.get_outputs()]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        results = self._session.run(self._outputs, {self._input: np.ascontiguousarray(batch, dtype=np.float32)})
        return results[0] if len(results) == 1 else np.concatenate(results, axis=1)


@dataclass
class OpenCVBackend:
    """The Caffe files read directly by OpenCV dnn (the OpenCV OpenPose sample's way)."""

    prototxt: str
    caffemodel: str
    family: ModelFamily
    name: str = "opencv"

    def __post_init__(self) -> None:
        import cv2

        self._net = cv2.dnn.readNetFromCaffe(self.prototxt, self.caffemodel)
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self._net.setInput(np.ascontiguousarray(batch, dtype=np.float32))
        return np.array(self._net.forward(), dtype=np.float32)


def _family_of_graph(graph, caffemodel: str | None) -> ModelFamily:
    md5 = file_md5(caffemodel) if caffemodel and os.path.isfile(caffemodel) else None
    return recognise(detect_structure(graph), md5)


def family_from_onnx(path: str) -> ModelFamily:
    """The model family recorded in a posebridge ONNX file's metadata (see converter.onnx_metadata)."""
    from posebridge.converter import onnx_metadata as meta
    from posebridge.converter.model_family import UNKNOWN

    values = meta.read_onnx_metadata(path)
    name = values.get(meta.FAMILY)
    if not name:
        raise PosebridgeError("the ONNX file carries no posebridge model family; export it with "
                              "posebridge convert --onnx, or name the skeleton with --skeleton", file=path)
    channels = values.get(meta.CHANNELS) or {}
    return ModelFamily(
        name, values.get(meta.FAMILY_EVIDENCE, "onnx metadata"),
        values.get(meta.SKELETON) if name != UNKNOWN else None, values.get(meta.STAGE_LAYOUT),
        int(values.get(meta.STAGES, 0) or 0),
        tuple(channels["heatmaps"]) if channels.get("heatmaps") else None,
        tuple(channels["pafs"]) if channels.get("pafs") else None)


def open_backend(model: str | os.PathLike, *, prototxt: str | os.PathLike | None = None,
                 backend: str | None = None) -> Backend:
    """Open MODEL (.caffemodel, .safetensors or .onnx; ``prototxt`` for the first two).

    The default backend follows the file: onnxruntime for .onnx, torch otherwise.
    """
    path = os.fspath(model)
    suffix = Path(path).suffix.lower()
    if backend is not None and backend not in BACKENDS:
        raise PosebridgeError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    if not os.path.exists(path):
        from posebridge.errors import FileAccessError

        raise FileAccessError("model file not found", file=path)
    if suffix == ".onnx":
        if backend not in (None, "onnxruntime"):
            raise PosebridgeError(f"an ONNX model runs on the onnxruntime backend, not '{backend}'", file=path)
        return OnnxBackend(path, family_from_onnx(path))
    if prototxt is None:
        raise PosebridgeError("a .caffemodel or .safetensors model needs --prototxt (a file or zoo:NAME)", file=path)
    graph = load_graph(prototxt)
    chosen = backend or "torch"
    if suffix == ".safetensors":
        if chosen != "torch":
            raise PosebridgeError(f"a safetensors model runs on the torch backend, not '{chosen}'", file=path)
        from posebridge.converter.weights_io import load_safetensors

        return TorchBackend(load_safetensors(graph, path), _family_of_graph(graph, None))
    family = _family_of_graph(graph, path)
    if chosen == "opencv":
        prototxt_path = os.fspath(prototxt)
        if prototxt_path.startswith("zoo:"):
            from posebridge import zoo

            prototxt_path = os.fspath(zoo.resolve(prototxt_path))
        return OpenCVBackend(prototxt_path, path, family)
    if chosen == "onnxruntime":
        raise PosebridgeError("export an ONNX file first (posebridge convert --onnx) to use onnxruntime", file=path)
    from posebridge.converter.api import convert
    from posebridge.prototxt.loader import load_weights

    return TorchBackend(convert(graph, load_weights(graph, path)), family)
