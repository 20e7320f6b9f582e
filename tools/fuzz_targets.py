"""Fuzz targets for posebridge's model-file readers: bytes in, a result or a PosebridgeError out.

Shared by the hypothesis tests (``tests/fuzz``) and the coverage-guided runner
(``tools/fuzz_atheris.py``). Each target feeds arbitrary bytes to one reader and then through
what a user's command would do next (shapes, weights matched onto the net, conversion). A
:class:`PosebridgeError` is the expected way to refuse; any other exception escaping a target
is a bug, and so is a crash or a hang.

The targets run under :data:`FUZZ_LIMITS`, small resource limits, so that a mutated size
(``num_output: 8`` becoming ``88888888``) is refused by the limit checks instead of spending
seconds: the limits are part of what is tested.

Seeds are real files: :func:`write_seeds` writes :data:`SEED_PROTOTXT` (a small net with
most layer families: Input, Convolution, ReLU, Pooling, BatchNorm, Scale, PReLU,
Deconvolution, Slice, Eltwise, Concat, InnerProduct, Softmax), :data:`SEED_PROTOTXT_V1` (the
legacy V1 syntax with ``input:``/``input_dim:``), and a caffemodel for each made by
``posebridge synth``.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from posebridge.errors import PosebridgeError
from posebridge.limits import Limits
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.loader import graph_from_bytes, match_weights
from posebridge.prototxt.shapes import expected_blob_shapes, infer_shapes
from posebridge.prototxt.text_reader import parse_prototxt_text
from posebridge.prototxt.weights import parse_weights

#: Small limits: a fuzzed size passes them only when it is cheap to honour.
FUZZ_LIMITS = Limits(
    max_prototxt_bytes=1 << 20,
    max_caffemodel_bytes=1 << 22,
    max_layers=200,
    max_blob_elements=1 << 16,
    max_activation_bytes=1 << 20,
    max_nesting_depth=64,
)

SEED_PROTOTXT = """name: "fuzz_seed"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 24 dim: 24 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "bn1" type: "BatchNorm" bottom: "pool1" top: "pool1" }
layer { name: "scale1" type: "Scale" bottom: "pool1" top: "pool1" scale_param { bias_term: true } }
layer { name: "prelu1" type: "PReLU" bottom: "pool1" top: "pool1" }
layer { name: "deconv1" type: "Deconvolution" bottom: "pool1" top: "up1"
        convolution_param { num_output: 4 kernel_size: 2 stride: 2 } }
layer { name: "slice1" type: "Slice" bottom: "up1" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 2 } }
layer { name: "sum1" type: "Eltwise" bottom: "s1" bottom: "s2" top: "sum1" eltwise_param { operation: SUM } }
layer { name: "cat1" type: "Concat" bottom: "sum1" bottom: "conv1" top: "cat1" }
layer { name: "fc1" type: "InnerProduct" bottom: "cat1" top: "fc1" inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "fc1" top: "prob" }
"""

SEED_PROTOTXT_V1 = """name: "fuzz_seed_v1"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 16
input_dim: 16
layers { name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
         convolution_param { num_output: 3 kernel_size: 3 stride: 1 pad: 1 } }
layers { name: "relu1" type: RELU bottom: "conv1" top: "conv1" }
layers { name: "pool1" type: POOLING bottom: "conv1" top: "pool1" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
layers { name: "fc1" type: INNER_PRODUCT bottom: "pool1" top: "fc1" inner_product_param { num_output: 2 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc1" bottom: "data" include { phase: TRAIN } }
"""

SEEDS = {"seed": SEED_PROTOTXT, "seed_v1": SEED_PROTOTXT_V1}


def write_seeds(folder: str | os.PathLike) -> dict[str, Path]:
    """Write each seed prototxt and its ``posebridge synth`` caffemodel; returns name -> path.

    Names: ``seed.prototxt``, ``seed.caffemodel``, ``seed_v1.prototxt``, ``seed_v1.caffemodel``.
    """
    from posebridge.tools.cli import main  # the real command, as a user would make the files

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for stem, text in SEEDS.items():
        prototxt = folder / f"{stem}.prototxt"
        prototxt.write_text(text, encoding="utf-8")
        caffemodel = folder / f"{stem}.caffemodel"
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["synth", str(prototxt), "-o", str(caffemodel), "--seed", "1"])
        if code != 0:
            raise RuntimeError(f"posebridge synth failed on {prototxt} (exit {code})")
        files[f"{stem}.prototxt"] = prototxt
        files[f"{stem}.caffemodel"] = caffemodel
    return files


def _refused(function: Callable[[], object]) -> bool:
    """Run ``function``; True when it refused the input with a PosebridgeError."""
    try:
        function()
    except PosebridgeError:
        return True
    return False


def target_prototxt_text(data: bytes) -> bool:
    """Prototxt text through the text reader. Returns True when refused."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return True  # the file readers refuse non-UTF-8 text with PrototxtSyntaxError before this
    return _refused(lambda: parse_prototxt_text(text, source="<fuzz>", limits=FUZZ_LIMITS))


def target_caffemodel(data: bytes) -> bool:
    """Caffemodel bytes through the weights reader. Returns True when refused."""
    return _refused(lambda: parse_weights(data, source="<fuzz>", limits=FUZZ_LIMITS))


def _shapes_and_weight_shapes(graph: Graph) -> None:
    shapes = infer_shapes(graph, limits=FUZZ_LIMITS)
    for node in graph.nodes:
        expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms], limits=FUZZ_LIMITS)


def target_model_file(data: bytes) -> bool:
    """A model file (prototxt text or a binary net) through load_graph, then shapes and weight
    shapes as ``posebridge inspect`` computes them. Returns True when refused."""
    def run() -> None:
        graph = graph_from_bytes(data, source="<fuzz>", limits=FUZZ_LIMITS)
        graph.check_supported()
        _shapes_and_weight_shapes(graph)

    return _refused(run)


def target_weights_on_graph(data: bytes, graph: Graph) -> bool:
    """Caffemodel bytes read and matched onto ``graph`` (a fixed, valid net), then converted to
    a PyTorch module as ``posebridge convert`` does. Returns True when refused."""
    from posebridge.converter.network import CaffeNet

    def run() -> None:
        matched = match_weights(graph, parse_weights(data, source="<fuzz>", limits=FUZZ_LIMITS))
        CaffeNet(graph, matched)

    return _refused(run)


def target_convert_and_run(data: bytes, *, seed: int = 0) -> bool:
    """A model file loaded, given synthetic weights, converted and run once at its declared input
    size (the whole path of ``posebridge synth`` + ``convert`` + a forward pass). Returns True
    when refused."""
    import torch

    from posebridge.converter.network import CaffeNet
    from posebridge.prototxt.synth import synthesize

    def run() -> None:
        graph = graph_from_bytes(data, source="<fuzz>", limits=FUZZ_LIMITS)
        graph.check_supported()
        _shapes_and_weight_shapes(graph)
        if any(not shape for shape in graph.inputs.values()):
            return
        net = CaffeNet(graph, synthesize(graph, seed=seed))
        inputs = [torch.from_numpy(np.zeros(shape, dtype=np.float32)) for shape in graph.inputs.values()]
        with torch.no_grad():
            net(*inputs)

    return _refused(run)
