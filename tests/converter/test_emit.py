"""The emitted standalone module gives the converted net's outputs from the same weights file."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

import pytest
import torch
from helpers_nets import TINY_OPENPOSE, write_net

from posebridge.converter import convert
from posebridge.converter.emit import emit_python, write_python
from posebridge.converter.weights_io import save_safetensors
from posebridge.tools.cli import main


def _import(path, name="emitted"):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("batch,size", [(1, (16, 16)), (2, (37, 53))])
def test_emitted_module_matches_converted_net(tmp_path, batch, size):
    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE)
    model = convert(prototxt, caffemodel)
    write_python(model, tmp_path / "model.py", class_name="TinyNet")
    save_safetensors(model, tmp_path / "model.safetensors")
    net = _import(tmp_path / "model.py").TinyNet().load_weights(str(tmp_path / "model.safetensors"))
    x = torch.randn(batch, 3, *size)
    with torch.no_grad():
        assert torch.equal(net(x), model(x))


def test_emitted_source_is_standalone_and_readable(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE)
    source = emit_python(convert(prototxt, caffemodel))
    assert "import posebridge" not in source and "from posebridge" not in source
    assert "# conv1 (Convolution)" in source and "# pool1 (Pooling)" in source
    assert "self.features.conv1.weight" in source
    # Runs in a fresh interpreter that has torch but never imports posebridge.
    (tmp_path / "model.py").write_text(source)
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]); import model; "
            "n = model.ConvertedNet(); print(tuple(n(torch.zeros(1, 3, 17, 23)).shape)); "
            "print('posebridge' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            check=True)
    assert result.stdout.split() == ["(1,", "7,", "9,", "12)", "False"]  # Caffe pooling rounds up


def test_hostile_layer_names_cannot_break_out(tmp_path):
    hostile = 'x\\"); import os; os.system(\\"echo pwned\\") #\\n'
    text = TINY_OPENPOSE.replace('name: "conv1"', f'name: "{hostile}"').replace(
        'name: "tiny_openpose"', 'name: "a\\"\\"\\"b\\n"')
    prototxt, caffemodel = write_net(tmp_path, text)
    source = emit_python(convert(prototxt, caffemodel))
    tree = ast.parse(source)  # still valid Python
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert "os" not in imported
    calls = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert "system" not in calls
    strings = [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]
    assert not any('"' in s_ or "\n" in s_ or ";" in s_ for s_ in strings if "pwned" in s_)


def test_convert_cli_writes_safetensors_and_python(tmp_path, capsys):
    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE)
    code = main(["convert", str(prototxt), str(caffemodel), "-o", str(tmp_path / "m.safetensors"),
                 "--emit-python", str(tmp_path / "m.py"), "--class-name", "Tiny"])
    assert code == 0
    net = _import(tmp_path / "m.py", "m_cli").Tiny().load_weights(str(tmp_path / "m.safetensors"))
    x = torch.randn(2, 3, 19, 27)
    with torch.no_grad():
        assert torch.equal(net(x), convert(prototxt, caffemodel)(x))


def test_convert_cli_bad_weights_exit_2_without_output(tmp_path, capsys):
    prototxt, _ = write_net(tmp_path, TINY_OPENPOSE)
    bad = tmp_path / "bad.caffemodel"
    bad.write_bytes(b"\x0a\xff\xff\xff")
    out = tmp_path / "m.safetensors"
    assert main(["convert", str(prototxt), str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.caffemodel" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.part"))
