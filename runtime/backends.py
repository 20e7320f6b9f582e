"""The network behind one interface: torch, ncnn, onnxruntime or OpenCV dnn.

Every backend maps a float32 NCHW batch (BGR, ``v/256 - 0.5``) to the net's output maps
(N, C, H/8, W/8) as float32 numpy, and knows which model family it runs (from the graph's
structure, the caffemodel's MD5, or the ONNX metadata), so the runtime picks the skeleton
without being told.

Precision: ``fp32`` (default) computes what the Caffe net computes; the torch backend runs it
through :mod:`posebridge.runtime.tuned_torch` (prepacked oneDNN convolutions with fused ReLU,
channels-last) or through ncnn's native Winograd kernels (:mod:`posebridge.converter.ncnn_export`;
the default for nets made of 3x3 convolutions, see :mod:`posebridge.runtime.default_engine`),
both checked against the converted net when opened. ``bf16`` (torch) and ``int8``
(onnxruntime, :mod:`posebridge.runtime.int8_cache`) are opt-in: they change the maps by a
measured amount (``posebridge bench`` reports it, and its effect on keypoints).

Opening any backend keeps freed memory inside the process (:mod:`posebridge.runtime.heap`):
a forward pass then reuses its buffers instead of faulting in fresh pages.
"""

from __future__ import annotations

import os
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from posebridge.converter.model_family import ModelFamily, file_md5, recognise
from posebridge.errors import PosebridgeError
from posebridge.prototxt.loader import load_graph, prototxt_file
from posebridge.prototxt.structure import detect_structure
from posebridge.runtime.heap import keep_freed_memory

BACKENDS = ("torch", "ncnn", "onnxruntime", "opencv")
PRECISIONS = ("fp32", "bf16", "int8")
#: The backends each reduced precision runs on (int8: torch with the native int8 Winograd kernel
#: where it runs, else onnxruntime on a calibrated int8 model).
PRECISION_BACKENDS = {"bf16": ("torch",), "int8": ("torch", "onnxruntime")}


class Backend(Protocol):
    """What the runtime needs of a network."""

    name: str
    family: ModelFamily

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """(N, 3, H, W) float32 -> (N, C, H/8, W/8) float32."""


@dataclass
class TorchBackend:
    """A converted :class:`~posebridge.converter.CaffeNet` (or any module with that forward).

    ``tuned`` (default) runs a CaffeNet through :func:`posebridge.runtime.tuned_torch.tune` in
    ``precision`` (fp32 or bf16); other modules, or ``tuned=False``, run as they are (fp32).
    ``winograd=False`` keeps every convolution in the direct form (see
    :mod:`posebridge.runtime.winograd`).
    """

    model: object
    family: ModelFamily
    name: str = "torch"
    threads: int | None = None
    precision: str = "fp32"
    tuned: bool = True
    winograd: bool = True
    _runner: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        from posebridge.converter.network import CaffeNet

        keep_freed_memory()
        if self.precision not in ("fp32", "bf16", "int8"):
            raise PosebridgeError(f"the torch backend runs fp32, bf16 or int8, not '{self.precision}'")
        runner = self.model
        if self.tuned and isinstance(self.model, CaffeNet) and len(self.model.input_names) == 1:
            from posebridge.runtime.tuned_torch import tune

            runner = tune(self.model, self.precision, use_winograd=self.winograd)
        elif self.precision != "fp32":
            raise PosebridgeError(f"{self.precision} needs a converted single-input net (tuned=True)")
        self._runner = runner

    def infer(self, batch: np.ndarray) -> np.ndarray:
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self._runner(torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)))
        if isinstance(out, tuple):
            out = out[0]
        return out.numpy()


#: Self-check of an opened ncnn net against the converted one: (height, width), odd on purpose.
NCNN_CHECK_SIZE = (37, 45)


@dataclass
class NcnnBackend:
    """A converted :class:`~posebridge.converter.CaffeNet` run by ncnn in float32.

    The net is written to ncnn's format in memory (:func:`posebridge.converter.ncnn_export.ncnn_model`)
    and checked against the converted net on one small input when opened (ParityError beyond
    :data:`posebridge.converter.ncnn_export.TOLERANCE`); the converted net is not kept (ncnn
    holds its own copy of the weights). Batches run one image at a time.
    """

    model: InitVar[object]
    family: ModelFamily
    name: str = "ncnn"
    threads: int | None = None
    precision: str = "fp32"
    check: bool = True
    _net: object = field(default=None, repr=False)

    def __post_init__(self, model: object) -> None:
        from posebridge.converter.ncnn_export import NcnnNet, check_against_torch, ncnn_model
        from posebridge.errors import ParityError

        keep_freed_memory()
        if self.precision != "fp32":
            raise PosebridgeError(f"the ncnn backend runs fp32, not '{self.precision}'")
        self._net = NcnnNet(ncnn_model(model), self.threads)
        if self.check:
            check_against_torch(model, self._net, (NCNN_CHECK_SIZE,), batch=1, error_type=ParityError)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self._net.run(batch)


@dataclass
class OnnxBackend:
    """An ONNX file exported by posebridge, run with onnxruntime."""

    path: str
    family: ModelFamily
    name: str = "onnxruntime"
    threads: int | None = None
    precision: str = "fp32"
    _session: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        keep_freed_memory()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.threads:
            options.intra_op_num_threads = self.threads
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

        keep_freed_memory()
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


def _check_precision(precision: str, backend: str | None, path: str) -> str | None:
    """The backend a precision needs (None: any); errors for impossible pairs."""
    if precision not in PRECISIONS:
        raise PosebridgeError(f"unknown precision '{precision}'; choose one of {', '.join(PRECISIONS)}")
    allowed = PRECISION_BACKENDS.get(precision)
    if allowed and backend not in (None, *allowed):
        raise PosebridgeError(f"precision {precision} runs on the {' or '.join(allowed)} backend, not '{backend}'",
                              file=path)
    return allowed[0] if allowed and len(allowed) == 1 else None


def open_backend(model: str | os.PathLike, *, prototxt: str | os.PathLike | None = None,
                 backend: str | None = None, precision: str = "fp32", winograd: bool = True, log=None) -> Backend:
    """Open MODEL (.caffemodel, .safetensors or .onnx; ``prototxt`` for the first two).

    The default backend follows the file: onnxruntime for .onnx; otherwise the tuned torch net
    (:mod:`posebridge.runtime.tuned_torch`) where the native Winograd kernel runs, else ncnn for
    nets made of 3x3 convolutions (BODY_25) and torch for the others (the rule and its
    measurements: :mod:`posebridge.runtime.default_engine`). When the default ncnn engine cannot write a layer,
    or disagrees with the converted net, torch runs the net (``log`` hears why).
    ``precision`` bf16 runs on torch (from Caffe or safetensors weights); int8 runs on torch with the
    native int8 Winograd kernel for nets made of 3x3 convolutions where that kernel runs
    (:func:`posebridge.runtime.default_engine.default_int8_backend`), else on onnxruntime,
    from an int8 model made once and cached (:func:`posebridge.runtime.int8_cache.int8_model`;
    ``log`` hears about it; ``backend="onnxruntime"`` asks for that one). ``winograd=False``
    runs torch with its 3x3 convolutions in the direct form (:mod:`posebridge.runtime.winograd`).
    """
    path = os.fspath(model)
    suffix = Path(path).suffix.lower()
    if backend is not None and backend not in BACKENDS:
        raise PosebridgeError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")
    needed = _check_precision(precision, backend, path)
    if not os.path.exists(path):
        from posebridge.errors import FileAccessError

        raise FileAccessError("model file not found", file=path)
    if suffix == ".onnx":
        if backend not in (None, "onnxruntime"):
            raise PosebridgeError(f"an ONNX model runs on the onnxruntime backend, not '{backend}'", file=path)
        if needed == "torch":
            raise PosebridgeError(f"precision {precision} runs on the torch backend: give the .caffemodel or "
                                  ".safetensors weights with --prototxt instead of the ONNX file", file=path)
        family = family_from_onnx(path)
        if precision == "int8":
            from posebridge.runtime.int8_cache import int8_model

            return OnnxBackend(os.fspath(int8_model(path, log=log)), family, precision="int8")
        return OnnxBackend(path, family)
    if prototxt is None:
        raise PosebridgeError("a .caffemodel or .safetensors model needs --prototxt (a file or zoo:NAME)", file=path)
    graph = load_graph(prototxt)
    chosen = needed or backend
    if precision == "int8" and chosen in (None, "torch"):
        native = _native_int8(graph, path, suffix, chosen)
        if native is not None:
            return native
    if precision == "int8":
        from posebridge.runtime.int8_cache import int8_model

        family = _family_of_graph(graph, path if suffix != ".safetensors" else None)
        return OnnxBackend(os.fspath(int8_model(path, prototxt, log=log)), family, precision="int8")
    if suffix == ".safetensors":
        if chosen not in (None, "torch", "ncnn"):
            raise PosebridgeError(f"a safetensors model runs on the torch or ncnn backend, not '{chosen}'", file=path)
        from posebridge.converter.weights_io import load_safetensors

        return _converted_backend(graph, load_safetensors(graph, path), _family_of_graph(graph, None), chosen,
                                  precision, winograd, log)
    family = _family_of_graph(graph, path)
    if chosen == "opencv":
        return OpenCVBackend(os.fspath(prototxt_file(prototxt)), path, family)
    if chosen == "onnxruntime":
        raise PosebridgeError("export an ONNX file first (posebridge convert --onnx) to use onnxruntime", file=path)
    from posebridge.converter.api import convert
    from posebridge.prototxt.loader import load_weights

    return _converted_backend(graph, convert(graph, load_weights(graph, path)), family, chosen, precision, winograd,
                              log)


def _native_int8(graph, path: str, suffix: str, chosen: str | None) -> Backend | None:
    """int8 on the tuned torch net with the native int8 Winograd kernel, when asked for (``chosen``
    "torch": the kernel must run) or when the default rule picks it
    (:func:`posebridge.runtime.default_engine.default_int8_backend`); None for onnxruntime."""
    from posebridge.runtime import default_engine, native_winograd

    usable, why = native_winograd.availability("wino23_int8")
    if chosen == "torch" and not usable:
        raise PosebridgeError(f"int8 on the torch backend needs the native int8 Winograd kernel: {why}", file=path)
    if not usable or (chosen is None and default_engine.default_int8_backend(graph) != "torch"):
        return None  # decided from the prototxt, before any weights are read
    if suffix == ".safetensors":
        from posebridge.converter.weights_io import load_safetensors

        net, family = load_safetensors(graph, path), _family_of_graph(graph, None)
    else:
        from posebridge.converter.api import convert
        from posebridge.prototxt.loader import load_weights

        net, family = convert(graph, load_weights(graph, path)), _family_of_graph(graph, path)
    return TorchBackend(net, family, precision="int8")


def _converted_backend(graph, net, family: ModelFamily, chosen: str | None, precision: str, winograd: bool,
                       log=None) -> Backend:
    """ncnn or torch for a net converted from ``graph``: the one asked for, else the default engine's choice
    (:func:`posebridge.runtime.default_engine.default_fp32_backend`; fp32 with Winograd allowed).
    The default falls back to torch, telling ``log``, when ncnn cannot run the net as Caffe does."""
    from posebridge.errors import ParityError, UnsupportedLayerError

    if chosen == "ncnn":
        if not winograd:
            raise PosebridgeError("direct convolutions (winograd=False) are a torch backend option; ncnn always "
                                  "runs its Winograd kernels")
        return NcnnBackend(net, family)
    if chosen is None and precision == "fp32" and winograd:
        from posebridge.runtime.default_engine import default_fp32_backend

        if default_fp32_backend(graph) == "ncnn":
            try:
                return NcnnBackend(net, family)
            except (UnsupportedLayerError, ParityError) as error:
                if log is not None:
                    log(f"running on torch instead of ncnn: {error.detail}")
    return TorchBackend(net, family, precision=precision, winograd=winograd)
