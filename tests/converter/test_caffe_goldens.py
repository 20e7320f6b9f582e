"""Every layer of posebridge's converted nets against real Caffe, as recorded in golden files.

``tests/converter/goldens/*.npz`` were written by tools/make_goldens.py from pycaffe
(brocolli-caffe, built by tools/build_pycaffe.sh). Each holds a small net's prototxt text, its
inputs (batch 2, odd sizes), its weights and every top of every layer as Caffe computed them
(an in-place layer's top is the blob right after that layer). These tests rebuild each net from
the text and weights with posebridge alone (prototxt reader, caffemodel reader, converter) and
compare every blob version with Caffe's: max |ours - Caffe| / max |Caffe| <= 1e-5.

CI never builds Caffe: only the last tests need ``import caffe`` and skip, saying so, without it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format
from helpers_caffe import relative_error

from posebridge.converter import convert
from posebridge.converter.parity import OK, compare, format_table
from posebridge.converter.references.golden import load_golden
from posebridge.prototxt import caffe_pb2, load_graph, load_weights
from posebridge.prototxt.graph import Graph
from posebridge.tools.cli import main
from posebridge.tools.golden_nets import GOLDEN_NETS, NOT_IN_REFERENCE_CAFFE
from posebridge.tools.net_golden import NetGolden, load_net_golden

GOLDEN_DIR = Path(__file__).parent / "goldens"
GOLDEN_PATHS = sorted(GOLDEN_DIR.glob("*.npz"))
TOLERANCE = 1e-5
MAX_TOTAL_BYTES = 5 * 1024 * 1024
#: Every layer type issue 3 lists, less those the reference Caffe lacks (NOT_IN_REFERENCE_CAFFE).
CAFFE_CHECKED_TYPES = {
    "Convolution", "Deconvolution", "InnerProduct", "Pooling", "ReLU", "PReLU", "ELU", "Sigmoid", "TanH",
    "AbsVal", "Power", "Exp", "Log", "BNLL", "Threshold", "Dropout", "Concat", "Slice", "Split", "Silence",
    "Eltwise", "Flatten", "Reshape", "Softmax", "BatchNorm", "Scale", "Bias", "LRN", "Crop", "ArgMax",
}

#: Where posebridge and Caffe are known to disagree: (net, layer) -> what differs. Each case is a
#: strict xfail (fixing the converter makes it XPASS, which fails: then delete the entry here).
KNOWN_DISAGREEMENTS: dict[tuple[str, str], str] = {}


def _known(net: str) -> set[str]:
    return {layer for (name, layer) in KNOWN_DISAGREEMENTS if name == net}


@functools.cache
def _golden(path: Path) -> NetGolden:
    return load_net_golden(path)


def _layer_cases() -> list:
    cases = []
    for path in GOLDEN_PATHS:
        for layer in _golden(path).tops:
            reason = KNOWN_DISAGREEMENTS.get((path.stem, layer))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            cases.append(pytest.param(path, layer, id=f"{path.stem}-{layer}", marks=marks))
    return cases


def caffemodel_bytes(prototxt: str, weights: dict[str, list[np.ndarray]]) -> bytes:
    """A caffemodel of ``weights`` written as Caffe's Blob::ToProto does (shape always present, even 0-d)."""
    net = text_format.Parse(prototxt, caffe_pb2.NetParameter())
    for layer in net.layer:
        for array in weights.get(layer.name, ()):
            blob = layer.blobs.add()
            blob.shape.SetInParent()
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(np.asarray(array, dtype=np.float32).ravel().tolist())
    return net.SerializeToString()


def write_net_files(golden: NetGolden, folder: Path) -> tuple[Path, Path]:
    """The golden's prototxt text as a file, and its caffemodel (the one Caffe saved, when stored)."""
    prototxt = folder / f"{golden.name}.prototxt"
    caffemodel = folder / f"{golden.name}.caffemodel"
    prototxt.write_text(golden.prototxt, encoding="utf-8")
    caffemodel.write_bytes(golden.caffemodel if golden.caffemodel is not None
                           else caffemodel_bytes(golden.prototxt, golden.weights))
    return prototxt, caffemodel


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], tuple[Graph, dict[str, np.ndarray]]]:
    """path -> (graph, every blob version posebridge computes on the golden's inputs), cached."""

    @functools.cache
    def run(path: Path) -> tuple[Graph, dict[str, np.ndarray]]:
        golden = _golden(path)
        prototxt, caffemodel = write_net_files(golden, tmp_path_factory.mktemp(path.stem))
        graph = load_graph(prototxt)
        model = convert(graph, load_weights(graph, caffemodel))
        inputs = {name: torch.from_numpy(array.copy()) for name, array in golden.inputs.items()}
        with torch.no_grad():
            blobs = model.run_blobs(inputs)
        return graph, {version: tensor.numpy() for version, tensor in blobs.items()}

    return run


def test_goldens_are_committed_and_small() -> None:
    assert {p.stem for p in GOLDEN_PATHS} == {net.name for net in GOLDEN_NETS}, \
        "tests/converter/goldens/ must hold one file per net in tools/golden_nets.py (run tools/make_goldens.py)"
    total = sum(p.stat().st_size for p in GOLDEN_PATHS)
    assert total < MAX_TOTAL_BYTES, f"goldens take {total} bytes, over {MAX_TOTAL_BYTES}"


def test_goldens_cover_every_layer_type() -> None:
    recorded = set()
    for path in GOLDEN_PATHS:
        golden = _golden(path)
        assert golden.meta["reference"].startswith("Caffe") and "pycaffe" in golden.meta["reference"]
        recorded |= set(golden.meta["layer_types"].values())
    assert CAFFE_CHECKED_TYPES <= recorded, f"no Caffe golden for {sorted(CAFFE_CHECKED_TYPES - recorded)}"
    assert not recorded & set(NOT_IN_REFERENCE_CAFFE)


@pytest.mark.parametrize("path", GOLDEN_PATHS, ids=lambda p: p.stem)
def test_golden_shapes_batch_two_odd_sizes_and_every_layer_recorded(path: Path, converted) -> None:
    golden = _golden(path)
    images = {name: array for name, array in golden.inputs.items() if array.ndim == 4}
    assert images, "a golden net takes at least one N x C x H x W input"
    for name, array in images.items():
        assert array.shape[0] == 2 != array.shape[1], f"{name}: batch 2 and batch != channels, got {array.shape}"
        assert all(d % 2 == 1 for d in array.shape[2:]), f"{name}: spatial sizes {array.shape[2:]} are not odd"
    graph, _ = converted(path)
    with_tops = {node.name for node in graph.nodes if node.tops and node.type != "Input"}
    assert with_tops == set(golden.tops), "the golden must hold every layer that writes a blob"
    for name, tops in golden.tops.items():
        assert len(tops) == len(graph.node(name).tops), f"{name}: {len(tops)} recorded tops"


@pytest.mark.parametrize("path", GOLDEN_PATHS, ids=lambda p: p.stem)
def test_caffe_saved_caffemodel_holds_the_golden_weights(path: Path, tmp_path: Path) -> None:
    golden = _golden(path)
    assert golden.caffemodel is not None, "make_goldens stores the caffemodel Caffe saved"
    prototxt, caffemodel = write_net_files(golden, tmp_path)
    read = load_weights(load_graph(prototxt), caffemodel).blobs
    assert read.keys() == golden.weights.keys()
    for name, blobs in golden.weights.items():
        assert len(read[name]) == len(blobs), name
        for ours, theirs in zip(read[name], blobs):
            np.testing.assert_array_equal(np.asarray(ours).reshape(theirs.shape), theirs, err_msg=name)


@pytest.mark.parametrize(("path", "layer"), _layer_cases())
def test_layer_matches_caffe(path: Path, layer: str, converted) -> None:
    graph, blobs = converted(path)
    node = graph.node(layer)
    expected = _golden(path).tops[layer]
    for index, (version, reference) in enumerate(zip(node.tops, expected)):
        what = f"{path.stem}: layer '{layer}' ({node.type}) top {index} '{node.caffe_tops[index]}'"
        ours = blobs[version]
        assert ours.shape == reference.shape, f"{what}: shape {ours.shape} != Caffe's {reference.shape}"
        error = relative_error(ours, reference)
        assert error <= TOLERANCE, f"{what}: relative error {error:.3e} > {TOLERANCE:g} against Caffe"


@pytest.mark.parametrize("path", GOLDEN_PATHS, ids=lambda p: p.stem)
def test_parity_tool_reads_the_golden(path: Path, tmp_path: Path) -> None:
    golden = _golden(path)
    assert load_golden(path).layers.keys() == golden.tops.keys()  # the base reader sees the same layers
    prototxt, caffemodel = write_net_files(golden, tmp_path)
    report = compare(prototxt, caffemodel, reference=path, tolerance=TOLERANCE)
    failing = {row.layer for row in report.failures}
    assert failing == _known(path.stem), format_table(report)
    assert {row.layer for row in report.rows if row.status == OK} == set(golden.tops) - failing
    assert "Caffe" in report.reference


# ----------------------------------------------------------------------------- with pycaffe only


@pytest.fixture()
def pycaffe():
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import caffe
    except ImportError as error:
        pytest.skip(f"pycaffe is not importable ({error}); build it with tools/build_pycaffe.sh "
                    "(CI never builds Caffe: the goldens above stand in for it)")
    return caffe


@pytest.mark.parametrize("net", ["convolution", "pooling"])
def test_parity_against_live_caffe(pycaffe, net: str, tmp_path: Path, capsys) -> None:
    golden = _golden(GOLDEN_DIR / f"{net}.npz")
    prototxt, caffemodel = write_net_files(golden, tmp_path)
    report = compare(prototxt, caffemodel, reference="caffe", input_sizes=[(13, 11), (17, 10)], batch=2,
                     tolerance=TOLERANCE, seed=5)
    assert "pycaffe" in report.reference
    failing = {row.layer for row in report.failures}
    assert failing <= _known(net), format_table(report)
    compared = {row.layer for row in report.rows if row.status == OK and row.input_shape.endswith("17x10")}
    assert compared | _known(net) >= set(golden.tops)
    code = main(["parity", str(prototxt), str(caffemodel), "--reference", "caffe", "--input-size", "15x9",
                 "--batch", "2", "--tolerance", str(TOLERANCE)])
    assert code == (1 if _known(net) else 0), capsys.readouterr().out


def test_make_goldens_reproduces_the_committed_file(pycaffe) -> None:
    from posebridge.tools.golden_nets import golden_net
    from posebridge.tools.make_goldens import record_net

    committed = _golden(GOLDEN_DIR / "pooling.npz")
    recorded = record_net(golden_net("pooling"), seed=committed.meta["seed"])
    assert recorded["prototxt"] == committed.prototxt
    for name, array in committed.inputs.items():
        np.testing.assert_array_equal(recorded["inputs"][name], array)
    assert recorded["tops"].keys() == committed.tops.keys()
    for name, tops in committed.tops.items():
        for ours, theirs in zip(recorded["tops"][name], tops):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6 * max(1.0, float(np.abs(theirs).max())))
