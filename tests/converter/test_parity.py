"""Parity on small nets: the report, a deliberately wrong layer caught first, JSON, golden files, pycaffe.

The nets use only layer types whose converters are tested elsewhere (convolution, in-place
Scale, pooling, split, concat, eltwise, silence), with weights that keep activations of order 1
so that a 1e-3 offset is well above the 1e-4 relative tolerance.
"""

from __future__ import annotations

import json
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_caffe import make_net, with_weights, write_model

from posebridge.converter import registry
from posebridge.converter.parity import (
    FAIL,
    OK,
    SKIP,
    array_metrics,
    compare,
    compare_layer,
    format_table,
    write_golden,
)
from posebridge.converter.references.golden import load_golden, save_golden
from posebridge.converter.references.opencv import SKIP_INPUT, SKIP_NO_TOP, opencv_layer_names
from posebridge.converter.references.pycaffe import import_caffe
from posebridge.errors import FileAccessError, ParityError
from posebridge.converter import convert
from posebridge.prototxt import load_graph, load_weights
from posebridge.tools.cli import main

LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1" scale_param { bias_term: true } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "split1" type: "Split" bottom: "pool1" top: "pool1_a" top: "pool1_b" }
layer { name: "branch" type: "Convolution" bottom: "pool1_a" top: "branch_out"
        convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "concat1" type: "Concat" bottom: "branch_out" bottom: "pool1_b" top: "concat1" }
layer { name: "conv2" type: "Convolution" bottom: "concat1" top: "conv2"
        convolution_param { num_output: 3 kernel_size: 3 pad: 1 } }
layer { name: "sum" type: "Eltwise" bottom: "conv2" bottom: "conv2" top: "sum"
        eltwise_param { operation: SUM coeff: 0.5 coeff: -1.5 } }
layer { name: "extra" type: "Convolution" bottom: "concat1" top: "extra"
        convolution_param { num_output: 2 kernel_size: 1 } }
layer { name: "silence" type: "Silence" bottom: "extra" }
"""
DECLARED = (1, 3, 13, 11)
SIZES = [(13, 11), (17, 22)]  # odd sizes: the pooling's last window is partial
TOLERANCE = 1e-4


def _blobs(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    def conv(out: int, inp: int, k: int) -> list[np.ndarray]:
        std = np.sqrt(1.0 / (inp * k * k))
        return [rng.normal(0, std, (out, inp, k, k)), rng.normal(0, 0.1, out)]

    return {"conv1": conv(4, 3, 3), "scale1": [rng.uniform(0.5, 1.5, 4), rng.normal(0, 0.1, 4)],
            "branch": conv(4, 4, 1), "conv2": conv(3, 8, 3), "extra": conv(2, 8, 1)}


@pytest.fixture(scope="module")
def small_net(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    net = with_weights(make_net(LAYERS, {"data": DECLARED}), _blobs(np.random.default_rng(7)))
    return write_model(tmp_path_factory.mktemp("parity"), net, stem="small")


def _perturb(monkeypatch: pytest.MonkeyPatch, type_name: str, offset: float = 1e-3) -> None:
    """Make every converted layer of ``type_name`` add ``offset`` to its first output."""
    original = registry.converter_for(type_name)

    class Offset(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *xs: torch.Tensor):
            result = self.inner(*xs)
            if isinstance(result, tuple):
                return (result[0] + offset, *result[1:])
            return result + offset

    monkeypatch.setitem(registry._CONVERTERS, type_name, lambda spec: Offset(original(spec)))


# ----------------------------------------------------------------------------- OpenCV reference


def test_small_net_matches_opencv_at_two_sizes_and_batch_two(small_net) -> None:
    prototxt, caffemodel = small_net
    report = compare(prototxt, caffemodel, input_sizes=SIZES, batch=2, tolerance=TOLERANCE, seed=3)
    assert report.ok, format_table(report)
    assert report.input_shapes == ["2x3x13x11", "2x3x17x22"]
    assert report.reference.startswith("OpenCV ")
    graph = load_graph(prototxt)
    for label in report.input_shapes:
        rows = [row for row in report.rows if row.input_shape == label]
        assert [row.layer for row in rows] == [node.name for node in graph.nodes]
        by_layer = {row.layer: row for row in rows}
        assert by_layer["input"].status == SKIP and by_layer["input"].reason == SKIP_INPUT
        assert by_layer["silence"].status == SKIP and by_layer["silence"].reason == SKIP_NO_TOP
        compared = {row.layer for row in rows if row.status == OK}
        assert compared == {node.name for node in graph.nodes} - {"input", "silence"}
        for row in rows:
            if row.status == OK:
                assert row.shape[0] == 2
                assert row.max_rel <= TOLERANCE and row.cosine > 1 - 1e-6
    # the conv before the in-place Scale is compared with its own output, not the scaled one
    conv1 = next(row for row in report.rows if row.layer == "conv1")
    assert conv1.top == "conv1" and conv1.max_abs is not None
    assert next(row for row in report.rows if row.layer == "scale1").top == "conv1@scale1"
    # OpenCV names single-top layers after their top: matched anyway, the alias is recorded
    assert next(row for row in report.rows if row.layer == "branch").reference_name in (None, "branch_out")


def test_same_seed_same_input_different_seed_different_input(small_net) -> None:
    prototxt, caffemodel = small_net
    first = compare(prototxt, caffemodel, input_sizes=[SIZES[0]], seed=1)
    again = compare(prototxt, caffemodel, input_sizes=[SIZES[0]], seed=1)
    other = compare(prototxt, caffemodel, input_sizes=[SIZES[0]], seed=2)
    assert [r.max_abs for r in first.compared] == [r.max_abs for r in again.compared]
    assert [r.max_abs for r in first.compared] != [r.max_abs for r in other.compared]


@pytest.mark.parametrize(("type_name", "layer", "before"), [
    ("Scale", "scale1", ["conv1"]),  # an in-place layer: the conv before it still passes
    ("Concat", "concat1", ["conv1", "scale1", "pool1", "split1", "branch"]),
])
def test_a_wrong_layer_is_named_first(small_net, monkeypatch, capsys, type_name, layer, before) -> None:
    prototxt, caffemodel = small_net
    _perturb(monkeypatch, type_name)
    report = compare(prototxt, caffemodel, input_sizes=[SIZES[1]], tolerance=TOLERANCE)
    assert not report.ok
    first = report.first_failure
    assert first.layer == layer and first.status == FAIL
    assert first.max_rel > TOLERANCE and "tolerance" in first.reason
    assert first.max_abs == pytest.approx(1e-3, rel=1e-2)
    by_layer = {row.layer: row for row in report.rows}
    assert all(by_layer[name].status == OK for name in before)

    code = main(["parity", str(prototxt), str(caffemodel), "--input-size", "17x22", "--failures-only"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"first out of tolerance: layer '{layer}' ({type_name})" in out
    assert "\nFAIL: " in out


def test_cli_ok_exit_zero_and_json_report(small_net, tmp_path, capsys) -> None:
    prototxt, caffemodel = small_net
    out_json = tmp_path / "report.json"
    code = main(["parity", str(prototxt), str(caffemodel), "--input-size", "13x11", "17x22", "--batch", "3",
                 "--seed", "5", "--json", str(out_json)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "OK: " in printed and "conv1" in printed
    data = json.loads(out_json.read_text())
    assert data["ok"] is True and data["first_failure"] is None
    assert data["seed"] == 5 and data["tolerance"] == TOLERANCE
    assert data["input_shapes"] == ["3x3x13x11", "3x3x17x22"]
    graph = load_graph(prototxt)
    assert len(data["rows"]) == 2 * len(graph.nodes)
    assert data["counts"] == {"compared": 2 * (len(graph.nodes) - 2), "failed": 0, "skipped": 4}
    row = next(r for r in data["rows"] if r["layer"] == "conv2")
    assert row["shape"] == [3, 3, 6, 5] and row["status"] == "ok"
    assert 0 <= row["max_rel"] <= TOLERANCE and row["cosine"] == pytest.approx(1.0, abs=1e-6)


def test_cli_json_names_the_failure(small_net, tmp_path, monkeypatch, capsys) -> None:
    prototxt, caffemodel = small_net
    _perturb(monkeypatch, "Pooling")
    out_json = tmp_path / "report.json"
    code = main(["parity", str(prototxt), str(caffemodel), "--input-size", "13x11", "--json", str(out_json)])
    capsys.readouterr()
    assert code == 1
    data = json.loads(out_json.read_text())
    assert data["ok"] is False
    assert data["first_failure"]["layer"] == "pool1" and data["first_failure"]["type"] == "Pooling"


def test_user_errors_exit_two(small_net, tmp_path, capsys) -> None:
    prototxt, caffemodel = small_net
    assert main(["parity", str(prototxt), str(caffemodel), "--reference", str(tmp_path / "none.npz")]) == 2
    assert "none.npz" in capsys.readouterr().err
    with pytest.raises(FileAccessError):
        compare(prototxt, caffemodel, reference="nonsense")
    with pytest.raises(ParityError, match="batch"):
        compare(prototxt, caffemodel, batch=0)
    unsupported = tmp_path / "odd.prototxt"
    unsupported.write_text(prototxt.read_text() + 'layer { name: "odd" type: "NoSuchType" bottom: "sum" top: "odd" }\n')
    assert main(["parity", str(unsupported), str(caffemodel)]) == 2
    assert "NoSuchType" in capsys.readouterr().err


# ----------------------------------------------------------------------------- golden files


def test_golden_round_trip_and_a_tampered_layer(small_net, tmp_path, capsys) -> None:
    prototxt, caffemodel = small_net
    golden_path = write_golden(tmp_path / "small.npz", prototxt, caffemodel, input_size=(15, 9), batch=2, seed=4)
    golden = load_golden(golden_path)
    assert list(golden.inputs) == ["data"] and golden.inputs["data"].shape == (2, 3, 15, 9)
    assert golden.inputs["data"].min() >= -0.5 and golden.inputs["data"].max() <= 0.5
    assert golden.meta["seed"] == 4 and golden.meta["reference"].startswith("OpenCV ")
    assert golden.meta["format"] == "posebridge-golden"
    assert "conv1" in golden.layers and "input" not in golden.layers

    report = compare(prototxt, caffemodel, reference=golden_path)
    assert report.ok, format_table(report)
    assert report.input_shapes == ["2x3x15x9"] and report.seed == 4
    assert main(["parity", str(prototxt), str(caffemodel), "--reference", str(golden_path)]) == 0
    assert main(["parity", str(prototxt), str(caffemodel), "--reference", str(golden_path), "--batch", "2"]) == 2
    capsys.readouterr()

    # a bare "input" key is accepted for a one-input net; a wrong layer value is caught there
    layers = dict(golden.layers)
    layers["branch"] = layers["branch"] + 1e-2
    tampered = tmp_path / "tampered.npz"
    np.savez(tampered, input=golden.inputs["data"], **{f"layer:{k}": v for k, v in layers.items()})
    report = compare(prototxt, caffemodel, reference=tampered)
    assert report.first_failure.layer == "branch"
    assert {row.layer for row in report.failures} == {"branch"}  # the golden's later layers are untouched


def test_golden_with_missing_layers_skips_them_and_rejects_foreign_files(small_net, tmp_path) -> None:
    prototxt, caffemodel = small_net
    golden = load_golden(write_golden(tmp_path / "g.npz", prototxt, caffemodel, input_size=(13, 11)))
    partial = save_golden(tmp_path / "partial.npz", golden.inputs, {"conv2": golden.layers["conv2"],
                                                                     "not_in_net": golden.layers["conv2"]})
    report = compare(prototxt, caffemodel, reference=partial)
    assert report.ok and [row.layer for row in report.compared] == ["conv2"]
    assert any("not_in_net" in note for note in report.notes)
    foreign = save_golden(tmp_path / "foreign.npz", golden.inputs, {"elsewhere": golden.layers["conv2"]})
    with pytest.raises(ParityError, match="none of the golden"):
        compare(prototxt, caffemodel, reference=foreign)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ParityError, match="golden"):
        compare(prototxt, caffemodel, reference=junk)


# ----------------------------------------------------------------------------- pycaffe


def test_caffe_reference_without_pycaffe_says_how_to_get_it(small_net, monkeypatch, capsys) -> None:
    prototxt, caffemodel = small_net
    monkeypatch.setitem(sys.modules, "caffe", None)  # makes `import caffe` fail even where it is installed
    with pytest.raises(ParityError, match="pycaffe is not installed.*build_pycaffe"):
        compare(prototxt, caffemodel, reference="caffe")
    assert main(["parity", str(prototxt), str(caffemodel), "--reference", "caffe"]) == 2
    assert "pycaffe is not installed" in capsys.readouterr().err


def _real_caffe() -> types.ModuleType:
    try:
        return import_caffe()
    except ParityError:
        pytest.skip("pycaffe is not installed (tools/build_pycaffe.sh builds it; CI never does)")


def test_real_caffe_matches_every_layer_and_writes_a_golden(small_net, tmp_path) -> None:
    _real_caffe()
    prototxt, caffemodel = small_net
    report = compare(prototxt, caffemodel, reference="caffe", input_sizes=SIZES, batch=2, tolerance=TOLERANCE)
    assert report.ok, format_table(report)
    assert report.reference.startswith("Caffe ") and not report.notes
    graph = load_graph(prototxt)
    assert {row.layer for row in report.compared} == {node.name for node in graph.nodes} - {"input", "silence"}
    conv1, scale1 = (next(r for r in report.rows if r.layer == name) for name in ("conv1", "scale1"))
    assert conv1.reference_max != scale1.reference_max  # Caffe's conv output seen before the in-place Scale

    golden_path = write_golden(tmp_path / "caffe.npz", prototxt, caffemodel, reference="caffe", input_size=(9, 14))
    golden = load_golden(golden_path)
    assert golden.meta["reference"].startswith("Caffe ") and set(golden.layers) <= {n.name for n in graph.nodes}
    assert compare(prototxt, caffemodel, reference=golden_path).ok


class _FakeBlob:
    def __init__(self) -> None:
        self.data = np.zeros((1,), dtype=np.float32)

    def reshape(self, *shape: int) -> None:
        self.data = np.zeros(shape, dtype=np.float32)


class _FakeNet:
    """pycaffe's Net surface, computing each layer with our own converted modules."""

    def __init__(self, prototxt: str, phase: int, weights: str) -> None:
        self.graph = load_graph(prototxt)
        self.model = convert(self.graph, load_weights(self.graph, weights))
        self._layer_names = [node.name for node in self.graph.nodes]
        self.top_names = OrderedDict((node.name, list(node.caffe_tops)) for node in self.graph.nodes)
        self.blobs = {blob: _FakeBlob() for node in self.graph.nodes for blob in node.caffe_tops}

    def reshape(self) -> None:
        pass

    def _forward(self, start: int, end: int) -> None:
        for step in self.model.steps[start:end + 1]:
            node = self.graph.node(step.layer)
            if step.type == "Input":
                continue
            module = self.model._module(step)
            with torch.no_grad():
                result = module(*(torch.from_numpy(self.blobs[b].data.copy()) for b in node.caffe_bottoms))
            for blob, tensor in zip(node.caffe_tops, result if isinstance(result, tuple) else (result,)):
                self.blobs[blob].data = tensor.numpy().copy()


class _FakeNetWholeForward(_FakeNet):
    """An older pycaffe without ``_forward``: only ``forward()`` over the whole net."""

    def forward(self) -> None:
        _FakeNet._forward(self, 0, len(self._layer_names) - 1)

    def __getattribute__(self, name: str):
        if name == "_forward":
            raise AttributeError(name)
        return super().__getattribute__(name)


def _fake_caffe(net_class: type) -> types.ModuleType:
    module = types.ModuleType("caffe")
    module.TEST = 1
    module.Net = net_class
    module.set_mode_cpu = lambda: None
    return module


def test_caffe_reference_steps_layer_by_layer(small_net, monkeypatch) -> None:
    prototxt, caffemodel = small_net
    monkeypatch.setitem(sys.modules, "caffe", _fake_caffe(_FakeNet))
    report = compare(prototxt, caffemodel, reference="caffe", input_sizes=[SIZES[1]], batch=2)
    assert report.ok, format_table(report)
    assert report.reference.endswith("(pycaffe, CPU)")
    compared = {row.layer for row in report.compared}
    assert {"conv1", "scale1", "concat1", "sum"} <= compared  # conv1 seen before scale1 rewrote it
    assert all(row.max_abs == 0.0 for row in report.compared)  # the fake runs our own modules


def test_caffe_reference_without_stepping_compares_in_place_chains_at_their_end(small_net, monkeypatch) -> None:
    prototxt, caffemodel = small_net
    monkeypatch.setitem(sys.modules, "caffe", _fake_caffe(_FakeNetWholeForward))
    report = compare(prototxt, caffemodel, reference="caffe", input_sizes=[SIZES[0]])
    assert report.ok, format_table(report)
    conv1 = next(row for row in report.rows if row.layer == "conv1")
    assert conv1.status == SKIP and "final version of blob 'conv1'" in conv1.reason and "scale1" in conv1.reason
    assert next(row for row in report.rows if row.layer == "scale1").status == OK
    assert any("final version" in note for note in report.notes)


# ----------------------------------------------------------------------------- units


def test_array_metrics() -> None:
    ref = np.array([[1.0, -4.0], [2.0, 0.0]], dtype=np.float32)
    m = array_metrics(ref + np.float32(0.02), ref)
    assert m.max_abs == pytest.approx(0.02, rel=1e-5)
    assert m.max_rel == pytest.approx(0.005, rel=1e-5)
    assert 0.999 < m.cosine < 1.0
    assert array_metrics(np.zeros(3), np.zeros(3)).max_rel == 0.0
    assert array_metrics(np.ones(3), np.zeros(3)).max_rel == float("inf")
    assert array_metrics(-ref, ref).cosine == pytest.approx(-1.0)
    with_nan = np.array([1.0, np.nan, np.inf])
    assert not array_metrics(with_nan, with_nan).nonfinite_mismatch
    assert array_metrics(np.array([1.0, 0.0, np.inf]), with_nan).nonfinite_mismatch


def test_compare_layer_statuses() -> None:
    ref = np.ones((2, 3, 4, 5), dtype=np.float32)
    assert compare_layer(ref.copy(), ref, 1e-4)[0] == OK
    assert compare_layer(ref + 1e-3, ref, 1e-4)[0] == FAIL
    status, metrics, reason = compare_layer(ref[:, :2], ref, 1e-4)
    assert status == FAIL and metrics is None and "shape" in reason
    status, _, reason = compare_layer(np.ones((2, 3)), np.ones((2, 3, 1, 1)), 1e-4)
    assert status == OK and "read as" in reason
    assert compare_layer(np.array([np.nan]), np.array([1.0]), 1e-4)[0] == FAIL


def test_opencv_layer_names_follow_tops_and_types(tmp_path) -> None:
    prototxt = tmp_path / "n.prototxt"
    prototxt.write_text('name: "n"\nlayer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 1 '
                        'dim: 4 dim: 4 } } }\n'
                        'layer { name: "a" type: "Convolution" bottom: "data" top: "b" convolution_param { '
                        'num_output: 1 kernel_size: 1 } }\n'
                        'layer { name: "b_relu" type: "ReLU" bottom: "b" top: "b" }\n'
                        'layer { name: "c" type: "Pooling" bottom: "b" top: "a" }\n'
                        'layer { name: "s" type: "Silence" bottom: "a" }\n')
    graph = load_graph(prototxt)
    # OpenCV 4.x names a single-top layer after its top: conv 'a' is OpenCV's 'b', pooling 'c' is 'a'
    found, skipped = opencv_layer_names(graph, {"b": "Convolution", "b_relu": "ReLU", "a": "Pooling", "s": "Silence"})
    assert found == {"a": "b", "b_relu": "b_relu", "c": "a"}
    assert skipped == {"in": SKIP_INPUT, "s": SKIP_NO_TOP}
    # older OpenCV keeps layer names
    found, skipped = opencv_layer_names(graph, {"a": "Convolution", "b_relu": "ReLU", "c": "Pooling"})
    assert found == {"a": "a", "b_relu": "b_relu", "c": "c"}
    # a layer OpenCV does not keep is skipped with a reason
    found, skipped = opencv_layer_names(graph, {"b": "Convolution", "a": "Pooling"})
    assert "b_relu" not in found and "OpenCV" in skipped["b_relu"]


# ----------------------------------------------------------------------------- benchmark script


def test_bench_script_runs_on_a_small_net(small_net, tmp_path, capsys) -> None:
    """The benchmark (a script, not a timed test) still runs end to end and writes its figures."""
    from posebridge.tools import bench_convert

    prototxt, caffemodel = small_net
    out_json = tmp_path / "bench.json"
    assert bench_convert.main(["--prototxt", str(prototxt), "--caffemodel", str(caffemodel), "--size", "13x11",
                               "--repeats", "1", "--threads", "1", "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "caffemodel -> ready module" in printed and "OpenCV dnn, fusion off" in printed
    figures = json.loads(out_json.read_text())
    conversion, forward = figures["conversion"], figures["forward"]
    assert conversion["parameters"] == sum(a.size for arrays in _blobs(np.random.default_rng(7)).values()
                                           for a in arrays)
    assert conversion["peak_rss_mb"] >= conversion["baseline_rss_mb"] > 0
    assert forward["input"] == [1, 3, 13, 11] and forward["output_shape"][0] == 1
    assert forward["max_rel_vs_opencv_fusion_off"] <= TOLERANCE


def test_parity_accepts_a_zoo_net(tmp_path):
    """``zoo:NAME`` works wherever a PROTOTXT goes, also where OpenCV dnn must read a file."""
    from posebridge.prototxt import load_graph
    from posebridge.prototxt.synth import synthesize, write_caffemodel

    caffemodel = tmp_path / "hand.caffemodel"
    graph = load_graph("zoo:hand")
    write_caffemodel(caffemodel, graph, synthesize(graph, seed=1))
    report = compare("zoo:hand", caffemodel, input_sizes=[(40, 48)])
    assert report.ok and len(report.compared) == len(graph.nodes) - 1
