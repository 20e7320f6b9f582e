"""Integrity: posebridge verify names official weights by MD5; truncated caffemodels are called so."""

from __future__ import annotations

import dataclasses
import re

import pytest

from posebridge import zoo
from posebridge.errors import CaffemodelFormatError, WeightsError
from posebridge.prototxt import load_graph, load_weights
from posebridge.prototxt.integrity import md5_of, minimum_caffemodel_bytes, truncation_message
from posebridge.shared_data import shared_path
from posebridge.tools import fuzz_targets
from posebridge.tools.cli import main


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    files = fuzz_targets.write_seeds(tmp_path_factory.mktemp("seed"))
    return files["seed.prototxt"], files["seed.caffemodel"]


def _pretend_official(monkeypatch, path, name="coco"):
    """Make the zoo believe ``path`` is the official caffemodel of ``name`` (same MD5)."""
    md5 = md5_of(path)
    entries = tuple(dataclasses.replace(e, weights_md5=md5) if e.name == name else e for e in zoo.ENTRIES)
    monkeypatch.setattr(zoo, "ENTRIES", entries)


def test_zoo_md5s_are_the_ones_openpose_publishes():
    spec = shared_path("openpose/SPEC.md")
    if spec is None:
        pytest.skip("shared OpenPose SPEC.md is absent (it lists the official MD5s)")
    published = dict(re.findall(r"(BODY_25|COCO|MPI|face|hand) `([0-9a-f]{32})`", spec.read_text()))
    assert len(published) == 5
    for entry in zoo.ENTRIES:
        assert entry.weights_md5 == published[entry.title.split()[0]]


def test_official_weights_are_named_with_their_prototxt(seed, monkeypatch, capsys):
    _, caffemodel = seed
    _pretend_official(monkeypatch, caffemodel, "coco")
    assert main(["verify", str(caffemodel)]) == 0
    out = capsys.readouterr().out
    assert md5_of(caffemodel) in out and "official OpenPose COCO weights" in out and "prototxt: zoo:coco" in out
    assert "pose/coco/pose_iter_440000.caffemodel" in out and "body family" in out


def test_mpi_weights_name_both_mpi_nets(seed, monkeypatch, capsys):
    _, caffemodel = seed
    md5 = md5_of(caffemodel)
    monkeypatch.setattr(zoo, "ENTRIES", tuple(dataclasses.replace(e, weights_md5=md5) if e.name.startswith("mpi")
                                              else e for e in zoo.ENTRIES))
    assert main(["verify", str(caffemodel)]) == 0
    assert "prototxt: zoo:mpi or zoo:mpi_4_stages" in capsys.readouterr().out


def test_unknown_weights_exit_1(seed, capsys):
    _, caffemodel = seed
    assert main(["verify", str(caffemodel)]) == 1
    out = capsys.readouterr().out
    assert "unknown: not one of the official OpenPose weights" in out and md5_of(caffemodel) in out


def test_a_cut_copy_with_an_official_name_is_called_truncated(seed, tmp_path, capsys):
    _, caffemodel = seed
    cut = tmp_path / "pose_iter_440000.caffemodel"  # the COCO weights' name
    cut.write_bytes(caffemodel.read_bytes()[:5000])
    assert main(["verify", str(cut)]) == 1
    out = capsys.readouterr().out
    assert "named like the official COCO weights of zoo:coco" in out and "looks truncated" in out
    assert str(minimum_caffemodel_bytes(zoo.graph("coco"))) in out


def test_a_full_size_copy_with_an_official_name_is_called_modified(tmp_path, capsys):
    fake = tmp_path / "pose_iter_102000.caffemodel"  # the hand weights' name, hand's size
    with open(fake, "wb") as handle:
        handle.truncate(minimum_caffemodel_bytes(zoo.graph("hand")) + 1000)  # sparse: no disk used
    assert main(["verify", str(fake)]) == 1
    out = capsys.readouterr().out
    assert "named like the official hand weights of zoo:hand" in out and "bytes differ" in out


def test_with_a_prototxt_verify_says_whether_the_weights_fit(seed, tmp_path, monkeypatch, capsys):
    prototxt, caffemodel = seed
    assert main(["verify", str(caffemodel), "--prototxt", str(prototxt)]) == 1  # fits, but not official
    assert "fits" in capsys.readouterr().out
    _pretend_official(monkeypatch, caffemodel)
    assert main(["verify", str(caffemodel), "--prototxt", str(prototxt)]) == 0
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(caffemodel.read_bytes()[:-100])
    assert main(["verify", str(cut), "--prototxt", str(prototxt)]) == 1
    assert "does not fit" in capsys.readouterr().out


@pytest.mark.parametrize("content", [None, b""])
def test_missing_or_empty_file_is_a_user_error(tmp_path, capsys, content):
    path = tmp_path / "w.caffemodel"
    if content is not None:
        path.write_bytes(content)
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- truncation warning


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_convert_and_inspect_call_a_cut_caffemodel_truncated(seed, tmp_path, capsys, fraction):
    prototxt, caffemodel = seed
    data = caffemodel.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(data[: int(len(data) * fraction)])
    for command in (["convert", str(prototxt), str(cut)], ["inspect", str(prototxt), str(cut)]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "truncated caffemodel: the file ends inside a field" in err  # the wire walk's own evidence
        if cut.stat().st_size < minimum_caffemodel_bytes(load_graph(prototxt)):  # and the size's
            assert "looks truncated" in err and f"the file is {cut.stat().st_size} bytes" in err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_cut_at_a_layer_boundary_is_called_truncated_too(seed, tmp_path):
    prototxt, caffemodel = seed
    graph = load_graph(prototxt)
    data = caffemodel.read_bytes()
    # The last layer with weights is fc1 (5 x 3456 floats): drop the file from its record on.
    cut_at = data.rfind(b"\x0a\x03fc1") - 3  # the layer's key and length precede its name
    cut = tmp_path / "boundary.caffemodel"
    cut.write_bytes(data[:cut_at])
    with pytest.raises((WeightsError, CaffemodelFormatError), match="looks truncated"):
        load_weights(graph, cut)


def test_a_complete_file_for_another_net_is_not_called_truncated(seed, tmp_path):
    prototxt, caffemodel = seed
    other = tmp_path / "other.prototxt"
    other.write_text(fuzz_targets.SEED_PROTOTXT.replace("num_output: 5", "num_output: 4"))
    with pytest.raises(WeightsError) as raised:
        load_weights(load_graph(other), caffemodel)
    assert "truncated" not in str(raised.value) and "fc1" in str(raised.value)


def test_truncation_message_bounds():
    graph = zoo.graph("coco")
    needed = minimum_caffemodel_bytes(graph)
    assert 52_000_000 * 4 < needed < 53_000_000 * 4  # COCO: 52.3 M float32 weights
    assert truncation_message(graph, needed) is None
    assert "looks truncated" in truncation_message(graph, needed // 2)
