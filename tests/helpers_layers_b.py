"""Test helpers for the tensor / shape / normalization layer families (converter layers B).

* :func:`reference_b` loads ``tests/converter/reference_b.py`` (the numpy references) by path,
  since ``tests/converter`` is not a package.
* :func:`layer_text` writes one ``layer { ... }`` entry.
* :func:`onnx_outputs` exports a module to ONNX (opset 17) with batch, height and width dynamic
  and runs it with onnxruntime on other input sizes.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

_REFERENCE_PATH = Path(__file__).parent / "converter" / "reference_b.py"
ONNX_OPSET = 17
# Axes left dynamic in exports: batch, height, width of N, C, H, W blobs.
DYNAMIC_AXES_4D = (0, 2, 3)


@lru_cache(maxsize=1)
def reference_b() -> ModuleType:
    """The numpy reference module for the B families."""
    spec = importlib.util.spec_from_file_location("reference_b", _REFERENCE_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("reference_b", module)
    spec.loader.exec_module(module)
    return module


def layer_text(name: str, type_name: str, bottoms: Sequence[str], tops: Sequence[str], params: str = "") -> str:
    """One prototxt ``layer { ... }`` entry; ``params`` is the text inside it after the tops."""
    lines = [f'  name: "{name}"', f'  type: "{type_name}"']
    lines += [f'  bottom: "{b}"' for b in bottoms]
    lines += [f'  top: "{t}"' for t in tops]
    if params:
        lines.append("  " + params)
    return "layer {\n" + "\n".join(lines) + "\n}\n"


def random_input(shape: Sequence[int], seed: int, low: float = -2.0, high: float = 2.0) -> np.ndarray:
    """Seeded uniform float32 values in [low, high)."""
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=tuple(shape)).astype(np.float32)


def onnx_outputs(module: torch.nn.Module, example: Sequence[np.ndarray], runs: Sequence[Sequence[np.ndarray]],
                 path: str | Path, dynamic_axes: Sequence[Sequence[int]] | None = None,
                 dynamo: bool = True) -> list[list[np.ndarray]]:
    """Export ``module`` traced on ``example`` and run it with onnxruntime on each input set in ``runs``.

    ``dynamic_axes[i]`` lists the dynamic axes of input i (default: batch, height and width of
    4-D inputs, none otherwise). Returns, per run, the list of outputs.
    """
    import onnxruntime

    module = module.eval()
    tensors = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in example)
    names = [f"input{i}" for i in range(len(tensors))]
    if dynamic_axes is None:
        dynamic_axes = [DYNAMIC_AXES_4D if t.dim() == 4 else () for t in tensors]
    path = str(path)
    if dynamo:
        from torch.export import Dim

        shapes = tuple({axis: Dim.AUTO for axis in axes} or None for axes in dynamic_axes)
        if _takes_varargs(module):
            shapes = (shapes,)
        torch.onnx.export(module, tensors, path, input_names=names, opset_version=ONNX_OPSET, dynamo=True,
                          dynamic_shapes=shapes, verbose=False)
    else:
        axes = {name: {axis: f"{name}_d{axis}" for axis in dims} for name, dims in zip(names, dynamic_axes)}
        torch.onnx.export(module, tensors, path, input_names=names, opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes=axes)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    return [session.run(None, dict(zip(names, (np.ascontiguousarray(a) for a in inputs)))) for inputs in runs]


def _takes_varargs(module: torch.nn.Module) -> bool:
    """True when forward is ``forward(*bottoms)`` (torch.export wants its shapes as one group)."""
    kinds = [p.kind for p in inspect.signature(module.forward).parameters.values()]
    return kinds == [inspect.Parameter.VAR_POSITIONAL]


def run_opencv_all(prototxt_path: str | Path, caffemodel_path: str | Path, inputs: dict[str, np.ndarray],
                   layers: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """Every top of each named layer, run by OpenCV dnn (fusion and Winograd off, plain CPU
    backend, as ``helpers_caffe.run_opencv``), keyed by layer name."""
    from helpers_caffe import opencv_net

    results = opencv_net(prototxt_path, caffemodel_path, inputs).forwardAndRetrieve(list(layers))
    return {name: [np.array(blob, dtype=np.float32) for blob in blobs] for name, blobs in zip(layers, results)}


def convert_text(layer: str, input_shapes: Sequence[Sequence[int]] = (),
                 blobs: Sequence[np.ndarray] = ()) -> torch.nn.Module:
    """The converted module of one ``layer { ... }`` text entry (via the registry)."""
    from google.protobuf import text_format

    from posebridge.converter.registry import LayerSpec, convert_layer
    from posebridge.prototxt import caffe_pb2

    parameter = text_format.Parse(layer, caffe_pb2.NetParameter()).layer[0]
    spec = LayerSpec(name=parameter.name, type=parameter.type, layer=parameter,
                     blobs=[np.asarray(b, dtype=np.float32) for b in blobs],
                     input_shapes=[tuple(s) for s in input_shapes])
    return convert_layer(spec).eval()


def as_tuple(result: torch.Tensor | tuple[torch.Tensor, ...]) -> tuple[np.ndarray, ...]:
    """A module's result as a tuple of numpy arrays (one per top)."""
    tops = result if isinstance(result, tuple) else (result,)
    return tuple(t.detach().numpy() for t in tops)
