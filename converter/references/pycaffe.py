"""Real Caffe (pycaffe) as a reference, when ``import caffe`` works.

The net is stepped one layer at a time (``Net._forward(i, i)``, i.e. ``ForwardFromTo``), and
each layer's first top is copied right after the layer ran, so every in-place version is seen.
A pycaffe without ``_forward`` runs the whole net once; ``net.blobs`` then holds only the LAST
version of a blob rewritten in place, so only the last layer of each in-place chain is compared
(the others are skipped with that reason).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from types import ModuleType

import numpy as np

from posebridge.converter.references.base import ReferenceOutputs
from posebridge.errors import ParityError
from posebridge.prototxt.graph import Graph

BUILD_HINT = ("pycaffe is not installed (`import caffe` failed). Build it (CPU only) with "
              "tools/build_pycaffe.sh, or compare against OpenCV dnn (--reference opencv) or a golden "
              ".npz file")
SKIP_INPUT = "net input: the same array is fed to both sides"
SKIP_NOT_IN_CAFFE = "Caffe's net has no layer of this name"


#: glog level for Caffe's own logging (2: errors only), unless the user set GLOG_minloglevel.
CAFFE_LOG_LEVEL = "2"


def import_caffe() -> ModuleType:
    """``import caffe``, or :class:`ParityError` saying how to get it."""
    os.environ.setdefault("GLOG_minloglevel", CAFFE_LOG_LEVEL)  # read when Caffe's library loads
    try:
        import caffe
    except ImportError as error:
        raise ParityError(f"{BUILD_HINT} ({error})") from None
    return caffe


def _first_tops(net) -> dict[str, str]:
    """Caffe layer name -> the Caffe blob name of its first top (after Caffe's split insertion)."""
    return {name: tops[0] for name, tops in net.top_names.items() if tops}


def run_pycaffe(graph: Graph, prototxt: str | os.PathLike, caffemodel: str | os.PathLike,
                runs: Iterable[Mapping[str, np.ndarray]]) -> Iterator[ReferenceOutputs]:
    """Run the net in Caffe (CPU, TEST phase) once per input set, yielding each run's results.

    Each result holds the first top of every layer, keyed by layer name.
    """
    caffe = import_caffe()
    caffe.set_mode_cpu()
    try:
        try:
            net = caffe.Net(os.fspath(prototxt), caffe.TEST, weights=os.fspath(caffemodel))
        except TypeError:  # pycaffe before the named ``weights`` argument
            net = caffe.Net(os.fspath(prototxt), os.fspath(caffemodel), caffe.TEST)
    except Exception as error:  # pycaffe raises plain RuntimeError/KeyError; Caffe may abort outright
        raise ParityError(f"Caffe cannot load this net: {error}", file=os.fspath(prototxt)) from None
    version = getattr(caffe, "__version__", "")
    label = f"Caffe {version}".strip() + " (pycaffe, CPU)"
    for inputs in runs:
        yield _run_once(net, graph, inputs, label, os.fspath(prototxt))


def _run_once(net, graph: Graph, inputs: Mapping[str, np.ndarray], label: str, source: str) -> ReferenceOutputs:
    try:
        for name, array in inputs.items():
            net.blobs[name].reshape(*array.shape)
        net.reshape()
        for name, array in inputs.items():
            net.blobs[name].data[...] = array
    except Exception as error:
        raise ParityError(f"Caffe cannot reshape this net to the input: {error}", file=source) from None

    names = list(net._layer_names)
    first_top = _first_tops(net)
    layers: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    notes: list[str] = []
    try:
        if hasattr(net, "_forward"):
            for index, name in enumerate(names):
                net._forward(index, index)
                if name in first_top:
                    layers[name] = np.array(net.blobs[first_top[name]].data, dtype=np.float32)
        else:
            net.forward()
            last_writer = {blob: name for name in names for blob in net.top_names.get(name, ())}
            notes.append("this pycaffe cannot step one layer at a time: in-place chains are compared at "
                         "their final version only")
            for name in names:
                blob = first_top.get(name)
                if blob is None:
                    continue
                if last_writer[blob] != name:
                    skipped[name] = (f"pycaffe keeps only the final version of blob '{blob}' "
                                     f"(compared at layer '{last_writer[blob]}')")
                    continue
                layers[name] = np.array(net.blobs[blob].data, dtype=np.float32)
    except Exception as error:
        raise ParityError(f"Caffe failed to run the net: {error}", file=source) from None

    for node in graph.nodes:
        if node.type == "Input":
            skipped[node.name] = SKIP_INPUT
            layers.pop(node.name, None)
        elif node.name not in layers and node.name not in skipped:
            skipped[node.name] = SKIP_NOT_IN_CAFFE if node.name not in names else "writes no blob"
    return ReferenceOutputs(label=label, layers=layers, skipped=skipped, notes=notes)
