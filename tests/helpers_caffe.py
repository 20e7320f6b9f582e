"""Test helpers: build tiny Caffe nets from text, write them, and run them two ways.

* :func:`make_net` parses prototxt text for the layers after an ``Input`` layer it writes itself.
* :func:`with_weights` / :func:`write_model` attach float32 blobs and write a prototxt + caffemodel.
* :func:`run_opencv` runs the files with OpenCV dnn's Caffe importer (fusion and Winograd off,
  plain OpenCV backend), returning outputs keyed by LAYER name (OpenCV's own indexing).
* :func:`run_converted` runs the same net layer by layer through ``convert_layer`` (a tiny
  sequential executor for tests; the real network module is built elsewhere).

Owned by the "converter layers A" engineer; others may add functions at the END of this file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from google.protobuf import text_format

from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.prototxt import caffe_pb2

# Phase-free test nets: a layer is run when its bottoms exist; nothing here filters by phase.
_INPUT_LAYER_TYPE = "Input"


def input_layer_text(input_shapes: Mapping[str, Sequence[int]]) -> str:
    """Prototxt text of one ``Input`` layer whose tops are the keys of ``input_shapes``."""
    tops = "".join(f'  top: "{name}"\n' for name in input_shapes)
    shapes = "".join(
        "    shape {" + "".join(f" dim: {int(d)}" for d in shape) + " }\n"
        for shape in input_shapes.values())
    return f'layer {{\n  name: "input"\n  type: "{_INPUT_LAYER_TYPE}"\n{tops}  input_param {{\n{shapes}  }}\n}}\n'


def make_net(layers_text: str, input_shapes: Mapping[str, Sequence[int]], name: str = "test") -> caffe_pb2.NetParameter:
    """A NetParameter: an ``Input`` layer (named "input") with ``input_shapes`` then ``layers_text``.

    ``input_shapes`` maps each input blob name to its N, C, H, W (any rank). ``layers_text`` is the
    text of ``layer { ... }`` entries, as in a prototxt.
    """
    text = f'name: "{name}"\n' + input_layer_text(input_shapes) + layers_text
    return text_format.Parse(text, caffe_pb2.NetParameter())


def with_weights(net: caffe_pb2.NetParameter,
                 blobs: Mapping[str, Sequence[np.ndarray]]) -> caffe_pb2.NetParameter:
    """A copy of ``net`` whose layers named in ``blobs`` carry those arrays (float32, shape kept)."""
    result = caffe_pb2.NetParameter()
    result.CopyFrom(net)
    names = {layer.name for layer in result.layer}
    unknown = set(blobs) - names
    if unknown:
        raise KeyError(f"no layer named {sorted(unknown)} in the net")
    for layer in result.layer:
        if layer.name not in blobs:
            continue
        del layer.blobs[:]
        for array in blobs[layer.name]:
            array = np.asarray(array, dtype=np.float32)
            blob = layer.blobs.add()
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(array.ravel().tolist())
    return result


def blobs_of(net: caffe_pb2.NetParameter) -> dict[str, list[np.ndarray]]:
    """The blobs carried by ``net``'s layers, as float32 arrays keyed by layer name."""
    return {
        layer.name: [np.asarray(blob.data, dtype=np.float32).reshape(tuple(blob.shape.dim))
                     for blob in layer.blobs]
        for layer in net.layer if layer.blobs
    }


def write_model(tmp_path: str | Path, net: caffe_pb2.NetParameter, stem: str = "net") -> tuple[Path, Path]:
    """Write ``net`` as ``<stem>.prototxt`` (no blobs) and ``<stem>.caffemodel`` (with blobs)."""
    tmp_path = Path(tmp_path)
    definition = caffe_pb2.NetParameter()
    definition.CopyFrom(net)
    for layer in definition.layer:
        del layer.blobs[:]
    prototxt_path = tmp_path / f"{stem}.prototxt"
    caffemodel_path = tmp_path / f"{stem}.caffemodel"
    prototxt_path.write_text(text_format.MessageToString(definition), encoding="utf-8")
    caffemodel_path.write_bytes(net.SerializeToString())
    return prototxt_path, caffemodel_path


def opencv_net(prototxt_path: str | Path, caffemodel_path: str | Path, inputs: Mapping[str, np.ndarray]):
    """A cv2.dnn net of the files, fusion and Winograd off, plain CPU backend, inputs set."""
    import cv2

    net = cv2.dnn.readNetFromCaffe(str(prototxt_path), str(caffemodel_path))
    net.enableFusion(False)
    if hasattr(net, "enableWinograd"):
        net.enableWinograd(False)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    for name, array in inputs.items():
        net.setInput(np.ascontiguousarray(array, dtype=np.float32), name)
    return net


def run_opencv(prototxt_path: str | Path, caffemodel_path: str | Path,
               inputs: Mapping[str, np.ndarray], outputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Run a Caffe net with OpenCV dnn; ``outputs`` are LAYER names, as OpenCV indexes them.

    Fusion and Winograd are disabled so every layer computes on its own, on the plain OpenCV
    CPU backend. Returns float32 arrays keyed by the requested layer names (first top of each).
    """
    net = opencv_net(prototxt_path, caffemodel_path, inputs)
    results = net.forward(list(outputs))
    return {name: np.array(result, dtype=np.float32) for name, result in zip(outputs, results)}


def run_converted_all(net: caffe_pb2.NetParameter, blobs: Mapping[str, Sequence[np.ndarray]],
                      inputs: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, ...]]:
    """Run every layer's converted module in file order; every top of each layer, by layer name.

    ``blobs`` maps layer names to their Caffe-layout weights (layers not named use the blobs
    stored in ``net``, if any). ``inputs`` maps input blob names to arrays. In-place layers
    (top == bottom) overwrite the blob, as in Caffe; each layer's own outputs are kept.
    """
    stored = blobs_of(net)
    values: dict[str, torch.Tensor] = {}
    per_layer: dict[str, tuple[np.ndarray, ...]] = {}
    with torch.no_grad():
        for layer in net.layer:
            if layer.type == _INPUT_LAYER_TYPE:
                bottoms = [torch.from_numpy(np.ascontiguousarray(inputs[top], dtype=np.float32))
                           for top in layer.top]
            else:
                bottoms = [values[name] for name in layer.bottom]
            layer_blobs = blobs.get(layer.name, stored.get(layer.name, ()))
            spec = LayerSpec(
                name=layer.name, type=layer.type, layer=layer,
                blobs=[np.asarray(b, dtype=np.float32) for b in layer_blobs],
                input_shapes=[tuple(t.shape) for t in bottoms])
            module = convert_layer(spec)
            module.eval()
            result = module(*bottoms)
            tops = result if isinstance(result, tuple) else (result,)
            if len(tops) != len(layer.top):
                raise AssertionError(f"layer '{layer.name}' returned {len(tops)} tops, expected {len(layer.top)}")
            for name, tensor in zip(layer.top, tops):
                values[name] = tensor
            per_layer[layer.name] = tuple(t.detach().numpy().copy() for t in tops)
    return per_layer


def run_converted(net: caffe_pb2.NetParameter, blobs: Mapping[str, Sequence[np.ndarray]],
                  inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Like :func:`run_converted_all`, keeping each layer's FIRST top (OpenCV's indexing)."""
    return {name: tops[0] for name, tops in run_converted_all(net, blobs, inputs).items()}


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max(max |expected|, tiny); shapes must match exactly."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape {actual.shape} != expected {expected.shape}")
    if not np.all(np.isfinite(expected) == np.isfinite(actual)):
        raise AssertionError("non-finite values differ")
    finite = np.isfinite(expected)
    if not np.array_equal(actual[~finite], expected[~finite]):
        raise AssertionError("non-finite values differ")
    if not finite.any():
        return 0.0
    scale = max(float(np.max(np.abs(expected[finite]))), 1e-30)
    return float(np.max(np.abs(actual[finite] - expected[finite]))) / scale


def assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float = 1e-5, what: str = "") -> None:
    """Assert ``relative_error(actual, expected) <= rtol`` with a message naming ``what``."""
    error = relative_error(actual, expected)
    assert error <= rtol, f"{what}: relative error {error:.3e} > {rtol:.1e}"


def onnx_outputs(module: torch.nn.Module, example: torch.Tensor, inputs: Sequence[np.ndarray],
                 dynamo: bool = False, opset: int = 17) -> list[np.ndarray]:
    """Export ``module`` (one 4-D input) to ONNX with dynamic N, H, W; run each of ``inputs`` in onnxruntime.

    ``example`` is the tracing input; ``inputs`` may have other batch and spatial sizes (same C).
    ``dynamo`` picks torch.export-based export instead of the TorchScript tracer.
    """
    import io
    import warnings

    import onnxruntime

    module = module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            dims = {0: torch.export.Dim("batch"), 2: torch.export.Dim("height"), 3: torch.export.Dim("width")}
            program = torch.onnx.export(module, (example,), dynamo=True, opset_version=opset,
                                        dynamic_shapes=(dims,), verbose=False)
            model_bytes = program.model_proto.SerializeToString()
        else:
            buffer = io.BytesIO()
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes={"x": {0: "batch", 2: "height", 3: "width"}})
            model_bytes = buffer.getvalue()
    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})[0] for x in inputs]


def load_reference(name: str):
    """Load ``tests/converter/<name>.py`` (a numpy reference module) by path; ``tests/converter``
    is not a package, so sibling imports do not work under pytest's importlib mode."""
    import importlib.util
    import sys

    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).parent / "converter" / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module
