"""posebridge.zoo: the built-in OpenPose nets equal the released prototxts; resolve and the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf import text_format

from posebridge import zoo
from posebridge.errors import FileAccessError, PosebridgeError
from posebridge.prototxt import Graph, caffe_pb2, infer_shapes, load_graph
from posebridge.shared_data import OFFICIAL_PROTOTXTS, shared_path
from posebridge.tools.cli import main

#: Output channels (heatmaps + PAFs) of each net, from OpenPose's documentation (SPEC.md).
EXPECTED_OUTPUT_CHANNELS = {"coco": 57, "mpi": 44, "mpi_4_stages": 44, "body_25": 78, "hand": 22, "face": 71}
#: Layer types whose parameter message is compared; fillers are cleared first.
COMPARED_TYPES = ("Convolution", "Pooling", "Concat", "ReLU", "PReLU")
FILLER_FIELDS = ("weight_filler", "bias_filler", "filler")
SIZES = ((368, 368), (240, 320))
#: SPEC.md's labels for the MD5 list of the official weights.
SPEC_LABELS = {"coco": "COCO", "mpi": "MPI", "mpi_4_stages": "MPI", "body_25": "BODY_25", "hand": "hand",
               "face": "face"}


def official_path(name: str) -> Path:
    path = shared_path(OFFICIAL_PROTOTXTS[name])
    if path is None:
        pytest.skip(f"official prototxt {OFFICIAL_PROTOTXTS[name]} not available (no ../shared or $POSEBRIDGE_SHARED)")
    return path


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test resolves zoo:NAME into its own cache folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def zoo_graph(name: str) -> Graph:
    return load_graph(zoo.resolve(f"zoo:{name}"))


def comparable_params(node) -> str:
    """The node's parameter message as text, without fillers (training-only)."""
    params = node.params
    if params is None:
        return ""
    copy = type(params)()
    copy.CopyFrom(params)
    for field in FILLER_FIELDS:
        if field in copy.DESCRIPTOR.fields_by_name:
            copy.ClearField(field)
    return text_format.MessageToString(copy, as_one_line=True)


@pytest.mark.parametrize("name", zoo.names())
def test_layers_equal_official(name):
    official = load_graph(official_path(name))
    built = zoo_graph(name)
    assert [n.name for n in built.nodes] == [n.name for n in official.nodes]
    for mine, theirs in zip(built.nodes, official.nodes):
        where = f"{name}: layer {theirs.name}"
        assert mine.type == theirs.type, where
        assert mine.caffe_bottoms == theirs.caffe_bottoms, where
        assert mine.caffe_tops == theirs.caffe_tops, where
        assert mine.in_place == theirs.in_place, where
        if theirs.type in COMPARED_TYPES:
            assert comparable_params(mine) == comparable_params(theirs), where
    assert built.inputs == official.inputs
    assert built.outputs == official.outputs
    assert not built.warnings


@pytest.mark.parametrize("name", zoo.names())
@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_shapes_equal_official(name, size):
    official = load_graph(official_path(name))
    built = zoo_graph(name)
    expected = infer_shapes(official, official.input_shapes(size))
    assert infer_shapes(built, built.input_shapes(size)) == expected


@pytest.mark.parametrize("name", zoo.names())
def test_training_fields_equal_official(name):
    """Fillers and lr/decay multipliers are the released ones too (the net name may differ)."""
    official = caffe_pb2.NetParameter()
    text_format.Parse(official_path(name).read_text(encoding="utf-8"), official)
    built = zoo.build(name)
    for mine, theirs in zip(built.layer, official.layer, strict=True):
        assert text_format.MessageToString(mine) == text_format.MessageToString(theirs), f"{name}: {theirs.name}"


@pytest.mark.parametrize("name", zoo.names())
def test_output_channels_and_stride(name):
    graph = zoo.graph(name)
    (output,) = graph.outputs
    assert graph.caffe_blob[output] == "net_output"
    for height, width in SIZES:
        shape = infer_shapes(graph, graph.input_shapes((height, width)))[output]
        assert shape == (1, EXPECTED_OUTPUT_CHANNELS[name], -(-height // 8), -(-width // 8))
    assert zoo.entry(name).output_channels == EXPECTED_OUTPUT_CHANNELS[name]


@pytest.mark.parametrize("name", zoo.names())
def test_structure_rules(name):
    """Legacy placeholder input, unique names, 'same' convs, in-place activations."""
    net = zoo.build(name)
    assert list(net.input) == ["image"] and len(net.input_dim) == 4 and net.input_dim[1] == 3
    assert len({layer.name for layer in net.layer}) == len(net.layer)
    for layer in net.layer:
        if layer.type == "Convolution":
            param = layer.convolution_param
            assert list(param.pad) == [param.kernel_size[0] // 2], layer.name
        if layer.type in ("ReLU", "PReLU"):
            assert list(layer.bottom) == list(layer.top), layer.name


@pytest.mark.parametrize("name", zoo.names())
def test_prototxt_text_round_trips(name):
    text = zoo.prototxt_text(name)
    parsed = caffe_pb2.NetParameter()
    text_format.Parse(text, parsed)
    assert parsed == zoo.build(name)
    assert zoo.entry(name).weights_md5 in text


def test_builds_are_independent():
    first = zoo.build("coco")
    first.layer[0].convolution_param.num_output = 1
    assert zoo.build("coco").layer[0].convolution_param.num_output == 64


@pytest.mark.parametrize("name", zoo.names())
def test_describe_names_weights_md5_from_spec(name):
    spec = shared_path("openpose/SPEC.md")
    if spec is None:
        pytest.skip("SPEC.md not available (no ../shared or $POSEBRIDGE_SHARED)")
    match = re.search(rf"{re.escape(SPEC_LABELS[name])} `([0-9a-f]{{32}})`", spec.read_text(encoding="utf-8"))
    assert match, f"SPEC.md lists no MD5 for {SPEC_LABELS[name]}"
    line = zoo.describe(name)
    assert match.group(1) in line
    assert zoo.entry(name).weights_file.removesuffix(".caffemodel") in spec.read_text(encoding="utf-8")
    assert zoo.entry(name).weights_file in line and "\n" not in line


def test_describe_counts():
    line = zoo.describe("coco")
    assert "18 parts" in line and "6 stages" in line and "pose_iter_440000.caffemodel" in line
    assert "4 PAF stages then 2 heatmap stages" in zoo.describe("body_25")


def test_names_and_lookup():
    assert zoo.names() == tuple(EXPECTED_OUTPUT_CHANNELS)
    assert zoo.entry("zoo:BODY_25").name == "body_25"
    assert zoo.entry("MPI-4-stages").name == "mpi_4_stages"


def test_resolve_writes_cache_once(tmp_path):
    path = zoo.resolve("zoo:coco")
    assert path == tmp_path / "cache" / "posebridge" / "zoo" / "coco.prototxt"
    assert path.read_text(encoding="utf-8") == zoo.prototxt_text("coco")
    inode = path.stat().st_ino
    assert zoo.resolve("zoo:coco") == path
    assert path.stat().st_ino == inode  # unchanged text: not rewritten
    path.write_text("layer { name: 'tampered' }", encoding="utf-8")
    assert zoo.resolve("zoo:coco").read_text(encoding="utf-8") == zoo.prototxt_text("coco")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_resolve_falls_back_to_temp_dir(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = zoo.resolve("zoo:hand")
    assert path.is_relative_to(tmp_path / "tmp")
    assert load_graph(path).node("Mconv7_stage6").caffe_tops == ("net_output",)


def test_resolve_passes_paths_through():
    assert zoo.resolve("models/pose.prototxt") == Path("models/pose.prototxt")
    assert zoo.resolve(Path("a/b.prototxt")) == Path("a/b.prototxt")
    assert not zoo.is_zoo_ref(Path("zoo:coco"))


def test_unknown_name_lists_known():
    with pytest.raises(zoo.UnknownZooNetError) as caught:
        zoo.resolve("zoo:body_18")
    assert isinstance(caught.value, FileAccessError) and isinstance(caught.value, PosebridgeError)
    message = str(caught.value)
    assert "body_18" in message and all(name in message for name in zoo.names())
    with pytest.raises(zoo.UnknownZooNetError):
        zoo.build("vgg")


def test_cli_list(capsys):
    assert main(["zoo", "list"]) == 0
    out = capsys.readouterr().out
    for name in zoo.names():
        assert f"zoo:{name}" in out and zoo.entry(name).weights_md5 in out


def test_cli_export(tmp_path, capsys):
    target = tmp_path / "out" / "face.prototxt"
    assert main(["zoo", "export", "zoo:face", "-o", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == zoo.prototxt_text("face")
    assert str(target) in capsys.readouterr().out
    graph = load_graph(target)
    assert infer_shapes(graph, graph.input_shapes((368, 368)))[graph.outputs[0]] == (1, 71, 46, 46)


def test_cli_export_unknown_name(tmp_path, capsys):
    target = tmp_path / "x.prototxt"
    assert main(["zoo", "export", "nope", "-o", str(target)]) == 2
    err = capsys.readouterr().err
    assert "nope" in err and "body_25" in err and "Traceback" not in err
    assert not target.exists()
