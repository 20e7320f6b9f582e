"""ONNX export: dynamic sizes, names, split outputs, metadata, fp16, and the self-check catching broken exports.

Official architectures come from posebridge.zoo with synthetic (He) weights; small nets in
helpers_export_nets cover every converter layer family. Every export is re-run here with
onnxruntime at a size and batch the export's own check did not use, against PyTorch.
Exports are shared per module (the COCO net takes several seconds to export).
"""

from __future__ import annotations

import dataclasses
import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers_caffe import relative_error
from helpers_export_nets import FAMILY_NETS, family_net, mini_coco, write_family_net
from torch import nn

import posebridge
from posebridge import zoo
from posebridge.converter import convert, model_family
from posebridge.converter.model_family import ZOO_FAMILY, file_md5, recognise
from posebridge.converter.network import CaffeNet
from posebridge.converter.onnx_export import CHECK_SIZES, TRACE_SIZE, ExportReport, export_onnx
from posebridge.converter.onnx_fp16 import convert_to_fp16
from posebridge.converter.onnx_metadata import read_onnx_metadata
from posebridge.errors import ExportError, FileAccessError
from posebridge.prototxt.structure import detect_structure
from posebridge.prototxt.synth import synthesize
from posebridge.runtime.skeletons import get_skeleton
from posebridge.tools.cli import main

#: (N, H, W) the tests run that the export's own check does not (batch 3; H, W not multiples of 8).
FRESH_BATCH, FRESH_SIZE = 3, (41, 67)
FP16_BOUND = 1e-2
STRIDE = 8
#: A narrow net with COCO's shape (19 + 38 channels, two branches): exports in about a second.
MINI_COCO = "mini_coco"


@dataclasses.dataclass
class Exported:
    model: CaffeNet
    path: Path
    report: ExportReport


def _fresh_inputs(model: CaffeNet, seed: int = 99) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.uniform(-0.5, 0.5, size=(FRESH_BATCH, 3, *FRESH_SIZE)).astype(np.float32)
            for name in model.input_names}


def _pytorch(model: CaffeNet, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.no_grad():
        result = model(*(torch.from_numpy(inputs[n]) for n in model.input_names))
    return [t.numpy() for t in (result if isinstance(result, tuple) else (result,))]


def _onnxruntime(path: Path, inputs: dict[str, np.ndarray]) -> tuple[list[str], list[np.ndarray]]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [o.name for o in session.get_outputs()], session.run(None, inputs)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture(scope="module")
def zoo_models() -> Callable[[str], CaffeNet]:
    cache: dict[str, CaffeNet] = {}

    def get(name: str) -> CaffeNet:
        """A zoo net with synthetic weights, or MINI_COCO (a narrow COCO-shaped net)."""
        if name not in cache:
            if name == MINI_COCO:
                cache[name] = CaffeNet(*mini_coco(seed=1))
            else:
                graph = zoo.graph(name)
                cache[name] = CaffeNet(graph, synthesize(graph, seed=1, init="he"))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def zoo_export(zoo_models, tmp_path_factory) -> Callable[..., Exported]:
    cache: dict[tuple, Exported] = {}

    def get(name: str, **options) -> Exported:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            model = zoo_models(name)
            path = tmp_path_factory.mktemp(f"zoo_{name}") / f"{name}.onnx"
            cache[key] = Exported(model, path, export_onnx(model, path, **options))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def family_export(tmp_path_factory) -> Callable[..., Exported]:
    cache: dict[tuple, Exported] = {}

    def get(name: str, **options) -> Exported:
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            model = CaffeNet(*family_net(name))
            path = tmp_path_factory.mktemp(f"family_{name}") / f"{name}.onnx"
            cache[key] = Exported(model, path, export_onnx(model, path, **options))
        return cache[key]

    return get


# ----------------------------------------------------------------------------- graph and names


def _assert_dynamic_graph(exported: Exported, output_names: list[str]) -> onnx.ModelProto:
    proto = onnx.load(str(exported.path))
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (image,) = proto.graph.input
    assert image.name == exported.model.input_names[0]
    dims = image.type.tensor_type.shape.dim
    assert [d.HasField("dim_param") for d in dims] == [True, False, True, True]
    assert dims[1].dim_value == 3
    assert [o.name for o in proto.graph.output] == output_names
    weights = {t.name for t in proto.graph.initializer}
    first_conv = next(step.layer for step in exported.model.steps if step.type == "Convolution")
    assert f"{exported.model.module_path[first_conv]}.weight" in weights  # named as the state_dict (and safetensors)
    assert not any(name.startswith("net.") for name in weights)
    return proto


def _assert_runs_fresh(exported: Exported, tolerance: float = 1e-5) -> list[np.ndarray]:
    inputs = _fresh_inputs(exported.model)
    names, actual = _onnxruntime(exported.path, inputs)
    expected = _pytorch(exported.model, inputs)
    if exported.report.output_names != tuple(exported.model.output_names):  # split: heatmaps, pafs
        heat, paf = exported.report.family.heatmaps, exported.report.family.pafs
        expected = [expected[0][:, heat[0]:heat[1]], expected[0][:, paf[0]:paf[1]]]
    assert names == list(exported.report.output_names)
    for name, got, want in zip(names, actual, expected):
        assert got.shape == want.shape, name
        assert got.shape[0] == FRESH_BATCH
        assert relative_error(got, want) <= tolerance, name
    return actual


# Exporting an official net takes 10-30 s on 2 cores: the default suite exports COCO here, BODY_25
# split and hand fp16 below; the others run with -m slow.
FAST_ZOO = ["coco"]
SLOW_ZOO = ["mpi", "mpi_4_stages", "body_25", "hand", "face"]


@pytest.mark.parametrize("name", [*FAST_ZOO, *(pytest.param(n, marks=pytest.mark.slow) for n in SLOW_ZOO)])
def test_official_net_exports_with_dynamic_size_and_caffe_names(zoo_export, name) -> None:
    exported = zoo_export(name)
    _assert_dynamic_graph(exported, ["net_output"])
    (output,) = _assert_runs_fresh(exported)
    zoo_entry = zoo.entry(name)
    assert output.shape == (FRESH_BATCH, zoo_entry.output_channels,
                            *(-(-s // STRIDE) for s in FRESH_SIZE))
    sizes = {c.input_shape for c in exported.report.checks}
    assert len(sizes) == 3 and all(s[0] == 2 for s in sizes)
    assert any(s[2] % 8 and s[3] % 8 for s in sizes)
    assert exported.report.max_relative_error <= 1e-5


def test_official_net_metadata_names_family_skeleton_channels_and_input(zoo_export) -> None:
    exported = zoo_export("coco")
    values = read_onnx_metadata(exported.path)
    assert values["posebridge_version"] == posebridge.__version__
    assert values["model_family"] == "COCO" and values["family_evidence"] == "structure"
    assert values["skeleton"] == "COCO"
    assert values["channels"] == {"heatmaps": [0, 19], "pafs": [19, 57]}
    assert values["outputs"] == [{"name": "net_output", "heatmaps": [0, 19], "pafs": [19, 57]}]
    assert values["input"]["names"] == ["image"]
    assert values["input"]["channel_order"] == "BGR"
    assert values["input"]["stride"] == STRIDE
    assert values["input"]["scale"] == 1 / 256 and values["input"]["shift"] == -0.5
    assert values["stages"] == 6 and values["stage_layout"] == "two-branch"
    assert values["precision"] == "fp32" and "fp16_max_relative_error" not in values
    assert values["prototxt"] == "zoo:coco"
    assert values["prototxt_md5"] == hashlib.md5(zoo.prototxt_text("coco").encode()).hexdigest()
    check = values["export_check"]
    assert check["batch"] == 2 and len(check["sizes"]) == 3
    assert check["max_relative_error"]["net_output"] <= 1e-5


@pytest.mark.parametrize(("name", "heatmaps", "pafs"), [
    (MINI_COCO, 19, 38),
    pytest.param("coco", 19, 38, marks=pytest.mark.slow),
    pytest.param("body_25", 26, 52, marks=pytest.mark.slow),
])
def test_split_outputs_give_heatmaps_then_pafs(zoo_export, name, heatmaps, pafs) -> None:
    exported = zoo_export(name, split_outputs=True)
    _assert_dynamic_graph(exported, ["heatmaps", "pafs"])
    heatmap_maps, paf_maps = _assert_runs_fresh(exported)
    assert heatmap_maps.shape[1] == heatmaps and paf_maps.shape[1] == pafs
    values = read_onnx_metadata(exported.path)
    assert values["outputs"] == [{"name": "heatmaps", "heatmaps": [0, heatmaps]},
                                 {"name": "pafs", "pafs": [0, pafs]}]
    assert values["channels"] == {"heatmaps": [0, heatmaps], "pafs": [heatmaps, heatmaps + pafs]}


def test_split_outputs_refused_for_a_net_without_pafs(zoo_models, tmp_path) -> None:
    target = tmp_path / "hand.onnx"
    with pytest.raises(ExportError, match="split outputs need an OpenPose net"):
        export_onnx(zoo_models("hand"), target, split_outputs=True)
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- model family


@pytest.mark.parametrize("name", zoo.names())
def test_family_by_structure_and_skeleton_tables_agree(name) -> None:
    family = recognise(detect_structure(zoo.graph(name)))
    zoo_entry = zoo.entry(name)
    assert family.name == ZOO_FAMILY[name] and family.evidence == "structure"
    assert family.layout == zoo_entry.layout
    skeleton = get_skeleton(family.skeleton)
    assert family.heatmaps == (0, len(skeleton.part_names) + 1)
    if zoo_entry.pafs:
        assert family.pafs == (family.heatmaps[1], zoo_entry.output_channels)
        assert family.pafs[1] - family.pafs[0] == 2 * len(skeleton.limbs)
    else:
        assert family.pafs is None and not skeleton.limbs
    assert (family.skeleton == "MPI_4_layers") == (name == "mpi_4_stages")


@pytest.mark.parametrize("name", zoo.names())
def test_official_weights_are_recognised_by_md5_even_without_structure(name) -> None:
    md5 = zoo.entry(name).weights_md5
    family = recognise(None, md5.upper())
    assert family.name == ZOO_FAMILY[name] and family.evidence == "caffemodel_md5"
    assert family.output_channels == zoo.entry(name).output_channels


def test_unknown_nets_and_md5s() -> None:
    assert recognise(None, "0" * 32).name == "unknown"
    graph, _ = family_net("convolution_pooling")
    family = recognise(detect_structure(graph), "0" * 32)
    assert (family.name, family.evidence, family.skeleton, family.heatmaps) == ("unknown", "none", None, None)


def test_caffemodel_md5_recognition_end_to_end(tmp_path, monkeypatch) -> None:
    """A caffemodel whose MD5 is in the official table is recognised by it (table patched to
    this synthetic file's MD5, since the official 200 MB weights are not in the repository)."""
    prototxt, caffemodel = write_family_net(tmp_path, "activations")
    md5 = file_md5(caffemodel)
    assert md5 == hashlib.md5(caffemodel.read_bytes()).hexdigest()
    model = convert(prototxt, caffemodel)
    monkeypatch.setattr(model_family, "ENTRIES", tuple(
        dataclasses.replace(e, weights_md5=md5) if e.name == "hand" else e for e in model_family.ENTRIES))
    # The official hand net has 22 output channels; this net has 44: the export refuses it.
    with pytest.raises(ExportError, match=r"model family \(hand, by caffemodel_md5\) has 22 channels"):
        export_onnx(model, tmp_path / "refused.onnx", prototxt=prototxt, caffemodel=caffemodel)
    assert not (tmp_path / "refused.onnx").exists()


def test_sources_md5_and_family_evidence_in_metadata(tmp_path, monkeypatch) -> None:
    prototxt, caffemodel = write_family_net(tmp_path, "normalization")
    model = convert(prototxt, caffemodel)
    target = tmp_path / "out" / "normalization.onnx"
    export_onnx(model, target, caffemodel=caffemodel, metadata={"note": "hello"})
    values = read_onnx_metadata(target)
    assert values["prototxt"] == "normalization.prototxt"
    assert values["prototxt_md5"] == hashlib.md5(prototxt.read_bytes()).hexdigest()
    assert values["caffemodel"] == "normalization.caffemodel"
    assert values["caffemodel_md5"] == hashlib.md5(caffemodel.read_bytes()).hexdigest()
    assert values["model_family"] == "unknown" and "skeleton" not in values and "channels" not in values
    assert values["note"] == "hello"
    assert "channel_order" not in values["input"]  # OpenPose's convention is not claimed for unknown nets


# ----------------------------------------------------------------------------- every layer family


@pytest.mark.parametrize("name", list(FAMILY_NETS))
def test_layer_family_nets_export_dynamically(family_export, name) -> None:
    exported = family_export(name)
    _assert_dynamic_graph(exported, list(exported.model.output_names))
    _assert_runs_fresh(exported)
    assert exported.report.output_names == tuple(exported.model.output_names)


def test_several_outputs_keep_their_caffe_blob_names(family_export) -> None:
    exported = family_export("shape_tensor")
    assert exported.report.output_names == ("argmax", "argmax_values", "flatten", "fc")
    flatten = _assert_runs_fresh(exported)[2]
    assert flatten.shape[1] == 2 * FRESH_SIZE[0] * FRESH_SIZE[1]


def test_opset_18_and_too_old_opset(family_export, tmp_path) -> None:
    exported = family_export("convolution_pooling", opset=18)
    assert {o.version for o in onnx.load(str(exported.path)).opset_import if o.domain in ("", "ai.onnx")} == {18}
    _assert_runs_fresh(exported)
    with pytest.raises(ExportError, match="opset 13 is too old"):
        export_onnx(exported.model, tmp_path / "old.onnx", opset=13)
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- fp16


@pytest.mark.parametrize("name", ["convolution_pooling", "normalization"])
def test_fp16_export_of_family_nets(family_export, name) -> None:
    exported = family_export(name, fp16=True)
    _assert_fp16_weights(exported.path, exported.model)
    _assert_runs_fresh(exported, tolerance=FP16_BOUND)
    error = exported.report.fp16_max_relative_error
    assert 0 < error <= FP16_BOUND
    assert read_onnx_metadata(exported.path)["fp16_max_relative_error"] == error


def _fp16_official(zoo_export, name: str) -> None:
    exported = zoo_export(name, fp16=True)
    values = read_onnx_metadata(exported.path)
    assert values["precision"] == "fp16"
    assert 0 < values["fp16_max_relative_error"] == exported.report.fp16_max_relative_error <= FP16_BOUND
    _assert_runs_fresh(exported, tolerance=FP16_BOUND)
    _assert_fp16_weights(exported.path, exported.model)


@pytest.mark.parametrize(("name", "family", "skeleton", "channels"), [
    (MINI_COCO, "COCO", "COCO", {"heatmaps": [0, 19], "pafs": [19, 57]}),
    pytest.param("hand", "hand", "HAND", {"heatmaps": [0, 22], "pafs": None}, marks=pytest.mark.slow),
])
def test_fp16_export_recognised_by_caffemodel_md5(zoo_models, tmp_path, monkeypatch, name, family, skeleton,
                                                  channels) -> None:
    """The official MD5 table is patched to a stand-in file's MD5 (the real weights are not in the repository)."""
    weights = tmp_path / "official.caffemodel"
    weights.write_bytes(b"stand-in for the official weights")
    zoo_name = {v: k for k, v in ZOO_FAMILY.items()}[family]
    monkeypatch.setattr(model_family, "ENTRIES", tuple(
        dataclasses.replace(e, weights_md5=file_md5(weights)) if e.name == zoo_name else e
        for e in model_family.ENTRIES))
    model = zoo_models(name)
    target = tmp_path / "model.onnx"
    report = export_onnx(model, target, fp16=True, caffemodel=weights)
    values = read_onnx_metadata(target)
    assert (values["model_family"], values["family_evidence"], values["skeleton"]) == (family, "caffemodel_md5",
                                                                                        skeleton)
    assert values["caffemodel"] == weights.name and values["caffemodel_md5"] == file_md5(weights)
    assert values["channels"] == channels
    assert values["precision"] == "fp16"
    assert 0 < values["fp16_max_relative_error"] == report.fp16_max_relative_error <= FP16_BOUND
    _assert_runs_fresh(Exported(model, target, report), tolerance=FP16_BOUND)
    _assert_fp16_weights(target, model)


def _assert_fp16_weights(path: Path, model: CaffeNet) -> None:
    """Every weight is stored as fp16 (small shape constants aside); inputs and outputs stay fp32."""
    proto = onnx.load(str(path))
    sizes = {t.data_type: 0 for t in proto.graph.initializer}
    for tensor in proto.graph.initializer:
        sizes[tensor.data_type] += int(np.prod(tensor.dims))
    assert sizes.get(onnx.TensorProto.FLOAT16, 0) >= sum(p.numel() for p in model.parameters())
    assert sizes.get(onnx.TensorProto.FLOAT, 0) <= 8
    assert all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in (*proto.graph.input, *proto.graph.output))


@pytest.mark.slow
def test_fp16_export_of_the_coco_net(zoo_export) -> None:
    _fp16_official(zoo_export, "coco")


def test_fp16_rewrite_keeps_resize_scales_float32_and_clips_to_fp16_range() -> None:
    from onnx import TensorProto, helper, numpy_helper

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales")
    pads = numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int64), "pads")
    lowest = numpy_helper.from_array(np.array(-np.finfo(np.float32).max, dtype=np.float32), "lowest")
    nodes = [
        helper.make_node("Pad", ["x", "pads", "lowest"], ["padded"]),
        helper.make_node("MaxPool", ["padded"], ["pooled"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Constant", [], ["half"], value_float=0.5),
        helper.make_node("Mul", ["pooled", "half"], ["scaled"]),
        helper.make_node("Resize", ["scaled", "", "scales"], ["y"], mode="nearest"),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, "h", "w"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 1, "h2", "w2"])],
                              [scales, pads, lowest])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    half = convert_to_fp16(model)
    onnx.checker.check_model(half, full_check=True)
    init = {t.name: t for t in half.graph.initializer}
    assert init["scales"].data_type == TensorProto.FLOAT16  # cast back to float32 before Resize
    assert numpy_helper.to_array(init["lowest"]) == np.float16(-65504)
    x = np.random.default_rng(0).normal(size=(2, 1, 5, 7)).astype(np.float32)
    run = lambda m: onnxruntime.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    full, reduced = run(model), run(half)
    assert reduced.dtype == np.float32 and reduced.shape == full.shape == (2, 1, 6, 8)
    assert relative_error(reduced, full) <= 1e-3


# ----------------------------------------------------------------------------- broken exports are caught


class _BakeOutputShape(nn.Module):
    """Wraps a layer and fixes its output shape to the traced one (Python ints become constants)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y[:, :, : int(y.shape[2]), : int(y.shape[3])]


class _BakeMean(nn.Module):
    """Wraps a layer and subtracts its output mean read as a Python float (a constant in the trace)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inner(x)
        return y - float(y.detach().mean())


def _broken(wrapper: type[nn.Module], layer: str) -> CaffeNet:
    model = CaffeNet(*family_net("convolution_pooling"))
    group, key = model.module_path[layer].split(".")
    getattr(model, group)[key] = wrapper(getattr(model, group)[key])
    return model


@pytest.mark.parametrize(("wrapper", "match"), [
    (_BakeOutputShape, "a size was baked into the export|onnxruntime fails at input"),
    (_BakeMean, r"output 'conv_strided' diverges from PyTorch at input 2x3x\d+x\d+: max abs error"),
])
def test_a_baked_module_fails_the_check_and_leaves_no_file(tmp_path, wrapper, match) -> None:
    model = _broken(wrapper, "pool_ave")
    target = tmp_path / "broken.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with pytest.raises(ExportError, match=match) as caught:
            export_onnx(model, target)
    assert str(target) in str(caught.value)
    assert _leftovers(tmp_path) == []


def test_a_failed_export_keeps_the_previous_file(tmp_path) -> None:
    target = tmp_path / "model.onnx"
    target.write_bytes(b"previous")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        with pytest.raises(ExportError):
            export_onnx(_broken(_BakeMean, "conv1"), target)
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == ["model.onnx"]


def test_trace_and_check_sizes_differ() -> None:
    assert TRACE_SIZE not in CHECK_SIZES
    assert len({(h % 8, w % 8) for h, w in (*CHECK_SIZES, TRACE_SIZE)}) == len(CHECK_SIZES) + 1


def test_a_size_the_net_cannot_run_is_reported(tmp_path) -> None:
    model = CaffeNet(*family_net("shape_tensor"))
    with pytest.raises(ExportError, match="does not run at input 2x3x2x2 in PyTorch"):
        export_onnx(model, tmp_path / "x.onnx", sizes=[(2, 2)])
    assert _leftovers(tmp_path) == []


# ----------------------------------------------------------------------------- metadata reading and CLI


def test_read_onnx_metadata_rejects_missing_and_non_onnx_files(tmp_path) -> None:
    with pytest.raises(FileAccessError, match="no such ONNX file"):
        read_onnx_metadata(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\xff\x00 this is not protobuf")
    with pytest.raises(FileAccessError, match="cannot read as an ONNX model"):
        read_onnx_metadata(bad)


def test_convert_command_exports_onnx(tmp_path, capsys) -> None:
    prototxt, caffemodel = write_family_net(tmp_path, "convolution_pooling")
    target = tmp_path / "net.onnx"
    code = main(["convert", str(prototxt), str(caffemodel), "--onnx", str(target), "--fp16",
                 "--check-sizes", "40x48,33x29,57x91"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "fp16 vs fp32: max relative error" in out and "2x3x33x29" in out
    values = read_onnx_metadata(target)
    assert values["precision"] == "fp16" and values["caffemodel_md5"] == file_md5(caffemodel)
    assert values["export_check"]["sizes"] == ["2x3x33x29", "2x3x40x48", "2x3x57x91"]


def test_convert_command_refuses_onnx_options_without_onnx_and_bad_splits(tmp_path, capsys) -> None:
    prototxt, caffemodel = write_family_net(tmp_path, "convolution_pooling")
    assert main(["convert", str(prototxt), str(caffemodel), "--fp16"]) == 2
    assert "give --onnx" in capsys.readouterr().err
    target = tmp_path / "split.onnx"
    assert main(["convert", str(prototxt), str(caffemodel), "--onnx", str(target), "--split-outputs"]) == 2
    err = capsys.readouterr().err
    assert "split outputs need an OpenPose net" in err and "Traceback" not in err
    assert not target.exists()


def test_missing_source_files_are_reported_before_exporting(tmp_path) -> None:
    model = CaffeNet(*family_net("activations"))
    with pytest.raises(FileAccessError, match="no such caffemodel"):
        export_onnx(model, tmp_path / "x.onnx", caffemodel=tmp_path / "missing.caffemodel")
    with pytest.raises(FileAccessError, match="no such prototxt"):
        export_onnx(model, tmp_path / "x.onnx", prototxt=tmp_path / "missing.prototxt")
    assert _leftovers(tmp_path) == []


def test_fp16_error_beyond_its_bound_fails_the_export(tmp_path) -> None:
    """ArgMax indices jump when fp16 rounding reorders near-equal values: far beyond the fp16 bound."""
    model = CaffeNet(*family_net("shape_tensor"))
    target = tmp_path / "shape.onnx"
    with pytest.raises(ExportError, match=r"output 'argmax' diverges .* \(fp16\)"):
        export_onnx(model, target, fp16=True)
    assert _leftovers(tmp_path) == []
    report = export_onnx(model, target, fp16=True, fp16_tolerance=None)
    assert report.fp16_max_relative_error > FP16_BOUND
    assert read_onnx_metadata(target)["fp16_max_relative_error"] == report.fp16_max_relative_error
