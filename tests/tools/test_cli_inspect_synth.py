"""``posebridge inspect`` and ``posebridge synth``: output, files written, and bad inputs (exit 2, one line)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers_files import official_prototxt, write_net

from posebridge.prototxt import infer_shapes, load_graph, read_weights
from posebridge.prototxt.synth import synthesize
from posebridge.tools.cli import main

LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 4 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "prelu" type: "PReLU" bottom: "pool1" top: "pool1" }
layer { name: "fc" type: "InnerProduct" bottom: "pool1" top: "fc" inner_product_param { num_output: 5 } }
"""
SHAPE = {"data": (1, 3, 8, 8)}


@pytest.fixture
def net(tmp_path) -> Path:
    return write_net(tmp_path, LAYERS, SHAPE, stem="small")


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def _row(out: str, layer: str) -> list[str]:
    (line,) = [line for line in out.splitlines() if line.split()[:1] == [layer]]
    return line.split()


# ----------------------------------------------------------------------------- inspect


def test_inspect_prints_every_layer_with_shapes_and_weights(net, tmp_path, capsys) -> None:
    model = tmp_path / "small.caffemodel"
    assert _run(["synth", net, "-o", model], capsys)[0] == 0
    code, out, err = _run(["inspect", net, model, "--input-size", "12x16"], capsys)
    assert code == 0 and err == ""
    graph = load_graph(net)
    shapes = infer_shapes(graph, graph.input_shapes((12, 16)))
    for node in graph.nodes:
        row = _row(out, node.name)
        assert row[1] == node.type
        assert "x".join(map(str, shapes[node.tops[0]])) in row
    assert _row(out, "conv1")[-2:] == ["4x3x3x3", "4"]
    assert _row(out, "prelu")[-1] == "4"
    assert _row(out, "fc")[-3:] == ["1x5", "5x64", "5"]  # 4 x 4 x 4 after pooling the 8x8 placeholder
    assert _row(out, "relu1")[-1] == "1x4x12x16"  # no weights column
    assert "outputs: fc 1x5" in out


def test_inspect_official_coco_at_368(capsys) -> None:
    code, out, _ = _run(["inspect", official_prototxt("coco"), "--input-size", "368x368"], capsys)
    assert code == 0
    assert out.splitlines()[-1] == "outputs: net_output 1x57x46x46"
    assert "inputs image 1x3x368x368" in out.splitlines()[0]


def test_inspect_shows_fork_layers_as_opaque_with_a_warning(tmp_path, capsys) -> None:
    path = write_net(tmp_path, 'layer { name: "odd" type: "Teleport" bottom: "data" top: "y" }\n', stem="fork")
    code, out, _ = _run(["inspect", path], capsys)
    assert code == 0
    assert _row(out, "odd")[1:3] == ["Teleport", "(opaque)"] and _row(out, "odd")[-1] == "?"
    assert any(line.startswith("warning: ") and "'odd'" in line for line in out.splitlines())


# ----------------------------------------------------------------------------- synth


@pytest.mark.parametrize("init", ["he", "caffe"])
def test_synth_writes_a_loadable_caffemodel(net, tmp_path, capsys, init: str) -> None:
    out_path = tmp_path / "nested" / "out.caffemodel"
    code, out, err = _run(["synth", net, "-o", out_path, "--seed", "5", "--init", init], capsys)
    assert code == 0 and err == ""
    assert str(out_path) in out and f"({init}, seed 5)" in out
    weights = read_weights(out_path)
    expected = synthesize(load_graph(net), seed=5, init=init)
    assert set(name for name, arrays in weights.blobs.items() if arrays) == set(expected)
    for name, arrays in expected.items():
        assert all(np.array_equal(a, b) for a, b in zip(weights.blobs[name], arrays, strict=True)), name
    assert sorted(p.name for p in out_path.parent.iterdir()) == ["out.caffemodel"]  # no temporary left


# ----------------------------------------------------------------------------- bad inputs


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_synth_on_a_bad_prototxt_writes_nothing(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text('layer {\n  name: "a"\n  type "ReLU"\n}\n')
    before = _files(tmp_path)
    code, out, err = _run(["synth", bad, "-o", tmp_path / "out.caffemodel"], capsys)
    _assert_one_line_error(code, err, "posebridge synth: error:", f"{bad}:3:8:")
    assert out == "" and _files(tmp_path) == before


@pytest.mark.parametrize("case", ["syntax", "cycle", "missing"])
def test_failed_synth_leaves_an_existing_output_untouched(net, tmp_path, capsys, case: str) -> None:
    target = tmp_path / "keep.caffemodel"
    target.write_bytes(b"old contents")
    if case == "syntax":
        source = tmp_path / "s.prototxt"
        source.write_text("layer { name: ")
    elif case == "cycle":
        source = write_net(tmp_path, 'layer { name: "a" type: "ReLU" bottom: "yb" top: "ya" }\n'
                                     'layer { name: "b" type: "ReLU" bottom: "ya" top: "yb" }\n', stem="cyc")
    else:
        source = tmp_path / "absent.prototxt"
    before = _files(tmp_path)
    code, _, err = _run(["synth", source, "-o", target], capsys)
    _assert_one_line_error(code, err, str(source))
    assert target.read_bytes() == b"old contents"
    assert _files(tmp_path) == before


def test_synth_into_a_folder_is_a_clean_error(net, tmp_path, capsys) -> None:
    folder = tmp_path / "a_folder"
    folder.mkdir()
    code, _, err = _run(["synth", net, "-o", folder], capsys)
    _assert_one_line_error(code, err, str(folder))
    assert folder.is_dir() and list(folder.iterdir()) == []
    assert _files(tmp_path) == sorted(["a_folder", "small.prototxt"])


def test_synth_rejects_a_negative_seed(net, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["synth", str(net), "-o", str(tmp_path / "o.caffemodel"), "--seed", "-1"])
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not (tmp_path / "o.caffemodel").exists()


def _bad_inputs(tmp_path: Path, net: Path) -> dict[str, tuple[list, str]]:
    """Bad input name -> (inspect arguments, a fragment the one-line error must contain)."""
    empty = tmp_path / "empty.prototxt"
    empty.write_bytes(b"")
    noise = tmp_path / "noise.caffemodel"
    noise.write_bytes(np.random.default_rng(0).bytes(2048))
    model = tmp_path / "good.caffemodel"
    main(["synth", str(net), "-o", str(model)])
    truncated = tmp_path / "cut.caffemodel"
    truncated.write_bytes(model.read_bytes()[:-100])
    dangling = write_net(tmp_path, 'layer { name: "lost" type: "ReLU" bottom: "ghost" top: "y" }\n', stem="dangling")
    twice = write_net(tmp_path, 'layer { name: "p" type: "ReLU" bottom: "data" top: "y" }\n'
                                'layer { name: "q" type: "ReLU" bottom: "data" top: "y" }\n', stem="twice")
    other = write_net(tmp_path, LAYERS.replace("num_output: 5", "num_output: 6"), SHAPE, stem="other")
    unpadded = write_net(tmp_path, 'layer { name: "c" type: "Convolution" bottom: "data" top: "y" '
                                   "convolution_param { num_output: 1 kernel_size: 3 } }\n", stem="unpadded")
    return {
        "missing": ([tmp_path / "absent.prototxt"], "not found"),
        "empty": ([empty], "empty"),
        "noise-net": ([noise], "noise.caffemodel"),
        "noise-weights": ([net, noise], "noise.caffemodel"),
        "truncated-weights": ([net, truncated], "cut.caffemodel"),
        "prototxt-as-weights": ([net, net], "looks like prototxt"),
        "dangling": ([dangling], "layer 'lost'"),
        "duplicate-top": ([twice], "layer 'q'"),
        "wrong-shape": ([other, model], "layer 'fc'"),
        "too-small": ([unpadded, "--input-size", "2x2"], "layer 'c'"),
    }


CASES = ["missing", "empty", "noise-net", "noise-weights", "truncated-weights", "prototxt-as-weights",
         "dangling", "duplicate-top", "wrong-shape", "too-small"]


@pytest.mark.parametrize("case", CASES)
def test_inspect_bad_inputs_exit_2_with_one_line(net, tmp_path, capsys, case: str) -> None:
    args, fragment = _bad_inputs(tmp_path, net)[case]
    capsys.readouterr()
    code, out, err = _run(["inspect", *args], capsys)
    _assert_one_line_error(code, err, "posebridge inspect: error:", fragment)
    assert out == ""


# ----------------------------------------------------------------------------- console script


def _console_script() -> list[str]:
    script = Path(sys.executable).with_name("posebridge")
    if script.exists():
        return [str(script)]
    found = shutil.which("posebridge")
    if found is None:
        pytest.skip("the posebridge console script is not installed (pip install -e .)")
    return [found]


def test_console_script_runs_inspect_and_reports_errors(net, tmp_path) -> None:
    command = _console_script()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*command, "inspect", str(net), "--input-size", "8x8"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "outputs: fc 1x5" in done.stdout
    failed = subprocess.run([*command, "synth", str(tmp_path / "absent.prototxt"), "-o", str(tmp_path / "o.caffemodel")],
                            capture_output=True, text=True, env=env, timeout=120)
    _assert_one_line_error(failed.returncode, failed.stderr, "absent.prototxt", "not found")
    assert not (tmp_path / "o.caffemodel").exists()
