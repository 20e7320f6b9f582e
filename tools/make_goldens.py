"""Write golden ``.npz`` files from real Caffe (pycaffe) for the nets in :mod:`posebridge.tools.golden_nets`.

For each net: Caffe builds it from the prototxt text, its learnable blobs are filled from a
seeded RNG (shapes as Caffe allocated them), the inputs are drawn from the same RNG, and the net
is stepped one layer at a time (``Net._forward(i, i)``) so every top is copied right after its
layer ran; for an in-place layer that is the blob after that layer. Caffe also saves the
weights as a caffemodel (``Net.save``), kept in the file. The file format is
:mod:`posebridge.tools.net_golden` (posebridge's golden format plus prototxt text and weights).

Usage (needs ``import caffe``; see tools/build_pycaffe.sh):

    python -m posebridge.tools.make_goldens [--out DIR] [--seed N] [NET ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from posebridge.errors import PosebridgeError
from posebridge.tools.golden_nets import GOLDEN_NETS, NOT_IN_REFERENCE_CAFFE, GoldenNet, golden_net
from posebridge.tools.net_golden import save_net_golden

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "tests" / "converter" / "goldens"
DEFAULT_SEED = 20240611
WRITER = "tools/make_goldens.py"

#: Random draws per learnable blob, by layer type: (kind, a, b) per blob index (last entry repeats).
#: "fan_in": normal(0, a / sqrt(fan-in)); "normal": normal(a, b); "signed_uniform": uniform(a, b) with a
#: random sign; "uniform": uniform(a, b).
BLOB_DRAWS: dict[str, tuple[tuple[str, float, float], ...]] = {
    "Convolution": (("fan_in", 1.0, 0.0), ("normal", 0.0, 0.2)),
    "Deconvolution": (("fan_in", 1.0, 0.0), ("normal", 0.0, 0.2)),
    "InnerProduct": (("fan_in", 1.0, 0.0), ("normal", 0.0, 0.2)),
    "PReLU": (("uniform", -0.5, 0.8),),
    "Scale": (("signed_uniform", 0.5, 1.5), ("normal", 0.0, 0.3)),
    "Bias": (("normal", 0.0, 0.3),),
}
#: BatchNorm's stored statistics before the scale factor multiplies them: mean, variance (> 0).
BATCHNORM_MEAN = ("normal", 0.0, 0.5)
BATCHNORM_VARIANCE = ("uniform", 0.3, 2.0)
DEFAULT_BATCHNORM_FACTOR = 1.0


def _draw(kind: str, a: float, b: float, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if kind == "fan_in":
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        return rng.normal(0.0, a / np.sqrt(max(fan_in, 1)), shape)
    if kind == "normal":
        return rng.normal(a, b, shape)
    if kind == "uniform":
        return rng.uniform(a, b, shape)
    if kind == "signed_uniform":
        return rng.uniform(a, b, shape) * rng.choice((-1.0, 1.0), shape)
    raise ValueError(f"unknown draw kind '{kind}'")


def draw_blobs(layer_type: str, shapes: Sequence[tuple[int, ...]], rng: np.random.Generator,
               batchnorm_factor: float | None = None) -> list[np.ndarray]:
    """Seeded float32 values for one layer's learnable blobs of ``shapes`` (Caffe layout).

    BatchNorm gets (mean * f, variance * f, [f]) with f the stored scale factor; for f == 0 Caffe
    ignores the statistics, so they stay unscaled random numbers (a port must not use them).
    """
    if layer_type == "BatchNorm":
        factor = DEFAULT_BATCHNORM_FACTOR if batchnorm_factor is None else float(batchnorm_factor)
        mean = _draw(*BATCHNORM_MEAN, shapes[0], rng)
        variance = _draw(*BATCHNORM_VARIANCE, shapes[1], rng)
        stored = factor if factor != 0 else 1.0
        values = [mean * stored, variance * stored, np.full(shapes[2], factor)]
    else:
        draws = BLOB_DRAWS.get(layer_type, (("normal", 0.0, 0.5),))
        values = [_draw(*draws[min(i, len(draws) - 1)], tuple(shape), rng) for i, shape in enumerate(shapes)]
    return [np.asarray(v, dtype=np.float32) for v in values]


def net_rng(seed: int, name: str) -> np.random.Generator:
    """The RNG of one net: depends on the seed and the net's name only (not on the net order)."""
    return np.random.default_rng([seed, *name.encode("utf-8")])


def draw_inputs(spec: GoldenNet, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform float32 inputs in ``spec.input_range``, drawn in input order."""
    low, high = spec.input_range
    return {name: rng.uniform(low, high, tuple(shape)).astype(np.float32) for name, shape in spec.inputs.items()}


def _import_caffe():
    os.environ.setdefault("GLOG_minloglevel", "2")  # Caffe's glog: errors only
    from posebridge.converter.references.pycaffe import import_caffe

    return import_caffe()


def _declared_layers(prototxt: str) -> dict[str, str]:
    """Layer name -> type as the prototxt declares them (Caffe adds its own split layers)."""
    from google.protobuf import text_format
    from caffe.proto import caffe_pb2

    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    return {layer.name: layer.type for layer in net.layer}


def record_net(spec: GoldenNet, seed: int = DEFAULT_SEED) -> dict[str, Any]:
    """Run ``spec`` in Caffe; returns the arguments of :func:`save_net_golden` (prototxt, inputs, ...)."""
    caffe = _import_caffe()
    caffe.set_mode_cpu()
    prototxt = spec.prototxt()
    declared = _declared_layers(prototxt)
    unsupported = sorted(set(declared.values()) & set(NOT_IN_REFERENCE_CAFFE))
    if unsupported:
        raise ValueError(f"net '{spec.name}' uses {unsupported}, which the reference Caffe lacks")
    rng = net_rng(seed, spec.name)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{spec.name}.prototxt"
        path.write_text(prototxt, encoding="utf-8")
        net = caffe.Net(str(path), caffe.TEST)
    layer_types = dict(zip(net._layer_names, (layer.type for layer in net.layers)))
    weights: dict[str, list[np.ndarray]] = {}
    for name, blobs in net.params.items():
        values = draw_blobs(layer_types[name], [tuple(b.data.shape) for b in blobs], rng,
                            spec.batchnorm_factors.get(name))
        for blob, value in zip(blobs, values):
            blob.data[...] = value
        weights[name] = [np.array(blob.data, dtype=np.float32) for blob in blobs]  # as Caffe holds them
    inputs = draw_inputs(spec, rng)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{spec.name}.caffemodel"
        net.save(str(path))
        caffemodel = path.read_bytes()
    for name, value in inputs.items():
        net.blobs[name].reshape(*value.shape)
    net.reshape()
    for name, value in inputs.items():
        net.blobs[name].data[...] = value

    tops: dict[str, list[np.ndarray]] = {}
    top_names: dict[str, list[str]] = {}
    for index, name in enumerate(net._layer_names):
        net._forward(index, index)
        if name not in declared or declared[name] == "Input":
            continue
        top_names[name] = list(net.top_names[name])
        if top_names[name]:
            tops[name] = [np.array(net.blobs[top].data, dtype=np.float32) for top in top_names[name]]
    meta = {
        "reference": f"Caffe {getattr(caffe, '__version__', '')} (pycaffe, CPU; brocolli-caffe)".replace("  ", " "),
        "writer": WRITER, "net": spec.name, "description": spec.description, "seed": seed,
        "input_range": list(spec.input_range), "input_shapes": {k: list(v.shape) for k, v in inputs.items()},
        "layer_types": {k: v for k, v in declared.items()}, "tops": top_names,
        "batchnorm_factors": dict(spec.batchnorm_factors),
    }
    return {"prototxt": prototxt, "inputs": inputs, "weights": weights, "tops": tops, "meta": meta,
            "caffemodel": caffemodel}


def write_goldens(out_dir: str | os.PathLike = DEFAULT_OUT, names: Sequence[str] = (),
                  seed: int = DEFAULT_SEED) -> list[Path]:
    """Write ``<out_dir>/<net>.npz`` for the named nets (all when ``names`` is empty)."""
    specs = [golden_net(n) for n in names] if names else list(GOLDEN_NETS)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return [save_net_golden(out / f"{spec.name}.npz", **record_net(spec, seed)) for spec in specs]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make_goldens", description=__doc__.splitlines()[0])
    parser.add_argument("nets", nargs="*", metavar="NET",
                        help=f"nets to write (default: all of {', '.join(n.name for n in GOLDEN_NETS)})")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="output folder (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="RNG seed (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        paths = write_goldens(args.out, args.nets, args.seed)
    except KeyError as error:
        print(f"make_goldens: {error.args[0]}", file=sys.stderr)
        return 2
    except PosebridgeError as error:  # no pycaffe
        print(f"make_goldens: {error}", file=sys.stderr)
        return 2
    total = 0
    for path in paths:
        size = path.stat().st_size
        total += size
        print(f"wrote {path} ({size / 1024:.1f} KiB)")
    print(f"{len(paths)} golden files, {total / 1024:.1f} KiB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
