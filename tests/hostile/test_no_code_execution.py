"""No code from a model file ever runs: Python layers are refused by name, nothing on the load
path can unpickle or eval, and the emitted model.py cannot be broken out of by layer names."""

from __future__ import annotations

import ast
import io
import pickle
import re
import sys
import tokenize
from pathlib import Path

import pytest
from helpers_nets import TINY_OPENPOSE, write_net

from posebridge.converter import convert
from posebridge.converter.emit import emit_python
from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.converter.weights_io import load_safetensors
from posebridge.errors import ForbiddenLayerError, PosebridgeError, WeightsError
from posebridge.prototxt import caffe_pb2, load_graph
from posebridge.prototxt.loader import MatchedWeights, graph_from_bytes
from posebridge.prototxt.synth import synthesize
from posebridge.tools.cli import main

REPO = Path(__file__).resolve().parents[2]
#: Folders of the installed package (see pyproject's package-dir).
PACKAGE_DIRS = ("core", "prototxt", "converter", "runtime", "tools", "zoo")
PROBE_MODULE = "posebridge_probe_python_layer"

PYTHON_LAYER_NET = f"""name: "python_layer_net"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 16 dim: 16 }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param {{ num_output: 2 kernel_size: 3 }} }}
layer {{ name: "evil" type: "Python" bottom: "conv" top: "evil"
        python_param {{ module: "{PROBE_MODULE}" layer: "Payload" param_str: "touch pwned" }} }}
"""


@pytest.fixture
def probe(tmp_path, monkeypatch) -> Path:
    """An importable module named by the Python layer: importing it writes a marker file."""
    marker = tmp_path / "imported.marker"
    (tmp_path / f"{PROBE_MODULE}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "class Payload:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(PROBE_MODULE, None)
    yield marker
    assert not marker.exists(), "the Python layer's module was imported"
    assert PROBE_MODULE not in sys.modules


# ----------------------------------------------------------------------------- Python layers


def test_python_layer_is_loaded_as_opaque_text_and_refused_by_name(tmp_path, probe):
    path = tmp_path / "python.prototxt"
    path.write_text(PYTHON_LAYER_NET)
    graph = load_graph(path)  # reading and inspecting a net with a Python layer is safe
    assert graph.node("evil").opaque or graph.node("evil").type == "Python"
    assert any("never executed" in w for w in graph.warnings)
    with pytest.raises(ForbiddenLayerError, match="layer 'evil'.*Python layers run arbitrary code"):
        graph.check_supported()
    with pytest.raises(ForbiddenLayerError, match="layer 'evil'"):
        convert(graph, MatchedWeights(synthesize(graph)))


def test_python_layer_in_a_binary_net_is_refused_too(probe):
    net = caffe_pb2.NetParameter()
    from google.protobuf import text_format

    text_format.Parse(PYTHON_LAYER_NET, net)
    graph = graph_from_bytes(net.SerializeToString(), source="python.caffemodel")
    with pytest.raises(ForbiddenLayerError, match="layer 'evil'"):
        graph.check_supported()


def test_converter_registry_refuses_python_whatever_the_caller():
    layer = caffe_pb2.LayerParameter(name="evil", type="Python")
    with pytest.raises(ForbiddenLayerError):
        convert_layer(LayerSpec(name="evil", type="Python", layer=layer))


def test_cli_convert_and_synth_refuse_a_python_layer(tmp_path, probe, capsys):
    prototxt = tmp_path / "python.prototxt"
    prototxt.write_text(PYTHON_LAYER_NET)
    weights = tmp_path / "w.caffemodel"
    assert main(["synth", str(prototxt), "-o", str(weights)]) == 0  # weights for the Conv only
    output = tmp_path / "out.safetensors"
    assert main(["convert", str(prototxt), str(weights), "-o", str(output)]) == 2
    err = capsys.readouterr().err
    assert "layer 'evil'" in err and "Python" in err and "Traceback" not in err
    assert not output.exists()
    assert main(["inspect", str(prototxt)]) == 0  # inspecting shows it, opaque, without running it
    assert "evil" in capsys.readouterr().out


# ----------------------------------------------------------------------------- no unpickling


class _Payload:
    """Unpickling this writes a marker file: the proof that a pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "unpickled"))


def test_a_pickle_given_as_weights_is_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "unpickled.marker"
    payload = pickle.dumps(_Payload(marker))
    prototxt, _ = write_net(tmp_path, TINY_OPENPOSE)
    graph = load_graph(prototxt)
    for name in ("model.safetensors", "model.pt", "model.pth", "model.caffemodel"):
        path = tmp_path / name
        path.write_bytes(payload)
        if name.endswith(".safetensors"):
            with pytest.raises(WeightsError, match="not a readable safetensors file"):
                load_safetensors(graph, path)
        assert main(["convert", str(prototxt), str(path)]) == 2
        image = tmp_path / "x.png"
        image.write_bytes(b"")
        assert main(["run", str(path), str(image), "--prototxt", str(prototxt)]) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert not marker.exists()


#: Calls that execute code or unpickle, by dotted name.
BANNED_CALLS = {"eval", "exec", "__import__", "pickle.load", "pickle.loads", "torch.jit.load", "marshal.loads",
                "dill.load", "dill.loads", "joblib.load", "pandas.read_pickle", "pd.read_pickle", "yaml.unsafe_load",
                "torch.package.PackageImporter"}
BANNED_IMPORTS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str):
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return keyword.value.value
    return None


def unsafe_calls(source: str, filename: str = "<source>") -> list[str]:
    """Places in ``source`` that could run code or unpickle data: banned imports and calls,
    torch.load without weights_only=True, numpy.load without allow_pickle=False, yaml.load
    without a safe loader."""
    findings = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            findings += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in BANNED_IMPORTS]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in BANNED_IMPORTS:
            findings.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in BANNED_CALLS:
                findings.append(f"{where}: {name}(...)")
            elif name == "torch.load" and _keyword(node, "weights_only") is not True:
                findings.append(f"{where}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and _keyword(node, "allow_pickle") is not False:
                findings.append(f"{where}: {name} without allow_pickle=False")
            elif name == "yaml.load" and "Safe" not in ast.unparse(node):
                findings.append(f"{where}: yaml.load without SafeLoader")
    return findings


def test_the_scanner_finds_what_it_looks_for():
    bad = ("import pickle\nfrom marshal import loads\nimport torch, numpy as np, yaml\n"
           "torch.load('m.pt')\ntorch.load('m.pt', weights_only=False)\nnp.load('a.npy')\n"
           "eval(open('x').read())\nexec('1')\nyaml.load(s)\n")
    good = "import torch, numpy as np\ntorch.load('m', weights_only=True)\nnp.load('a', allow_pickle=False)\nmodel.eval()\n"
    assert len(unsafe_calls(bad)) == 8
    assert unsafe_calls(good) == []


def test_no_pickle_eval_or_exec_anywhere_in_the_package():
    files = [p for folder in PACKAGE_DIRS for p in sorted((REPO / folder).rglob("*.py"))]
    assert len(files) > 50
    findings = [f for path in files for f in unsafe_calls(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert findings == []


# ----------------------------------------------------------------------------- emitted model.py

#: Names that try to leave a string literal, a comment or an identifier, or confuse a reader.
HOSTILE_NAMES = (
    'q\\"uote',                         # "
    "s\\'ingle",                         # '
    'tri\\"\\"\\"ple',                   # """
    "tri\\'\\'\\'ple",                   # '''
    "back\\\\slash\\\\",                 # trailing backslash
    "new\\nimport os\\nos.system(1)",    # newline then code
    "cr\\rimport os",                    # carriage return
    "tab\\tname",
    "nul\\000byte",
    "uni\u2028line\u2029sep",            # Unicode line separators
    "bidi\u202eevil\u202c",              # right-to-left override
    "\u00e9t\u00e9_\u540d\u524d",        # accents and CJK
    "zero\u200bwidth",
    "{{ 7*7 }}{% raw %}",                # template syntax
    "# comment",
    "x); __import__(\\'os\\').system(\\'id\\'); (",
)
MARK = "ZQX"


def _hostile_net() -> str:
    text = TINY_OPENPOSE.replace('name: "tiny_openpose"', f'name: "{MARK}net\\"\\"\\"\\nimport os"')
    names = re.findall(r'layer \{ name: "([^"]+)"', TINY_OPENPOSE)
    for index, name in enumerate(names):
        hostile = f"{MARK}{index}{HOSTILE_NAMES[index % len(HOSTILE_NAMES)]}"
        text = text.replace(f'layer {{ name: "{name}"', f'layer {{ name: "{hostile}"', 1)
    # the input blob too (it becomes the forward argument)
    return text.replace('input: "image"', f'input: "{MARK}in\\"put"').replace('bottom: "image"', f'bottom: "{MARK}in\\"put"')


def test_hostile_names_cannot_break_out_of_the_emitted_module(tmp_path):
    prototxt, caffemodel = write_net(tmp_path, _hostile_net())
    model = convert(prototxt, caffemodel)
    assert all(MARK in layer.name for layer in load_graph(prototxt).nodes if layer.type != "Input")
    source = emit_python(model)
    tree = ast.parse(source)  # valid Python

    imported = {alias.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in node.names}
    assert imported <= {"math", "operator", "torch", "nn", "safe_open", "load_file"}
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not ({"os", "eval", "exec", "__import__", "subprocess", "open"} & names)
    assert not ({"system", "popen", "import_module"} & attributes)

    safe = re.compile(r"^[0-9A-Za-z_.\-/:?]*$")
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
    marked = [s for s in strings if MARK in s]
    assert marked, "the names should reach the module (sanitised)"
    words = [w.rstrip("),") for s in marked for w in re.findall(MARK + r"\S*", s)]  # docstrings hold several
    assert all(safe.match(w) for w in words), [w for w in words if not safe.match(w)]
    comments = [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    assert any(MARK in c for c in comments)
    assert all(re.match(r"^# [0-9A-Za-z_.\-/:? ()]*$", c) for c in comments if MARK in c)
    for line in source.splitlines():  # no payload on a line of its own, no stray Unicode
        assert not line.lstrip().startswith(("import os", "os.system")) and line.isascii()
    assert "49" not in re.findall(r"\d+", " ".join(marked))  # the template never evaluated a name


def test_a_hostile_module_name_is_refused_as_a_class_name(tmp_path, capsys):
    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE)
    assert main(["convert", str(prototxt), str(caffemodel), "--emit-python", str(tmp_path / "m.py"),
                 "--class-name", "X(nn.Module): pass\nimport os\nclass Y"]) == 2
    assert "not a Python identifier" in capsys.readouterr().err
    assert not (tmp_path / "m.py").exists()


def test_every_refusal_here_is_a_posebridge_error():
    assert issubclass(ForbiddenLayerError, PosebridgeError) and issubclass(WeightsError, PosebridgeError)
