"""int8 ONNX models made on demand for ``--precision int8`` and kept in a cache folder.

The folder is ``$XDG_CACHE_HOME/posebridge/int8`` (``~/.cache/posebridge/int8`` when unset).
A model is keyed by the MD5 of its weights file (and of the prototxt for Caffe weights) and by
:data:`SCHEME` (bumped when the quantisation recipe changes), so a changed file is quantised
again. Caffe and safetensors weights are converted and exported to ONNX first (checked against
PyTorch by :func:`~posebridge.converter.onnx_export.export_onnx`), then quantised by
:func:`~posebridge.converter.onnx_int8.quantize_int8`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from posebridge.converter.model_family import file_md5

CACHE_ENV = "XDG_CACHE_HOME"
CACHE_SUBDIR = ("posebridge", "int8")
#: Version of the quantisation recipe in the cache key.
SCHEME = "qdq-conv-perchannel-minmax-v1"


def cache_dir() -> Path:
    """Where int8 models are kept."""
    base = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache")
    return Path(base).joinpath(*CACHE_SUBDIR)


def cache_key(model: str | os.PathLike, prototxt: str | os.PathLike | None) -> str:
    """A hex key naming the weights (and prototxt) contents and the recipe."""
    digest = hashlib.sha256(SCHEME.encode())
    digest.update(file_md5(model).encode())
    if prototxt is not None:
        digest.update(file_md5(prototxt).encode())
    return digest.hexdigest()[:24]


def int8_model(model: str | os.PathLike, prototxt: str | os.PathLike | None = None, *,
               folder: str | os.PathLike | None = None, log=None) -> Path:
    """The path of the int8 ONNX model for ``model`` (.onnx, or weights with their ``prototxt``).

    Made (and cached) on first use: that takes a conversion, an export and a calibration run.
    ``log`` (a callable taking a string) hears what is being done.
    """
    target_dir = Path(folder) if folder is not None else cache_dir()
    source = Path(model)
    prototxt_path = None
    if source.suffix.lower() != ".onnx":
        prototxt_path = _prototxt_file(prototxt)
    target = target_dir / f"{source.stem}.{cache_key(source, prototxt_path)}.int8.onnx"
    if target.is_file():
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    from posebridge.converter.onnx_int8 import quantize_int8

    if prototxt_path is None:
        if log:
            log(f"quantising {source} to int8 (cached as {target})")
        quantize_int8(source, target)
        return target
    with tempfile.TemporaryDirectory(prefix="posebridge-int8-") as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        if log:
            log(f"exporting {source} to ONNX and quantising it to int8 (cached as {target})")
        _export(source, prototxt_path, fp32)
        quantize_int8(fp32, target)
    return target


def _prototxt_file(prototxt: str | os.PathLike | None) -> Path:
    from posebridge.errors import PosebridgeError

    if prototxt is None:
        raise PosebridgeError("a .caffemodel or .safetensors model needs --prototxt (a file or zoo:NAME)")
    text = os.fspath(prototxt)
    if text.startswith("zoo:"):
        from posebridge import zoo

        return Path(zoo.resolve(text))
    return Path(text)


def _export(weights: Path, prototxt: Path, target: Path) -> None:
    from posebridge.converter.onnx_export import export_onnx
    from posebridge.prototxt.loader import load_graph

    graph = load_graph(prototxt)
    if weights.suffix.lower() == ".safetensors":
        from posebridge.converter.weights_io import load_safetensors

        model = load_safetensors(graph, weights)
        export_onnx(model, target, prototxt=prototxt)
        return
    from posebridge.converter.api import convert
    from posebridge.prototxt.loader import load_weights

    export_onnx(convert(graph, load_weights(graph, weights)), target, prototxt=prototxt, caffemodel=weights)
