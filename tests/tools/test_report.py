"""``posebridge report``: JSON and Markdown hold the same tables as the analysis, the HTML is one
self-contained file, weights add statistics and flags, and bad inputs write nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers_files import official_prototxt, training_prototxt, write_net

from posebridge.prototxt import load_graph, load_weights
from posebridge.prototxt.analysis import analyze
from posebridge.prototxt.synth import synthesize, write_caffemodel
from posebridge.tools.cli import main
from posebridge.tools.report import render_report
from posebridge.tools.report.formatting import human_bytes, human_count, pair_text, shapes_text

LAYERS = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2" convolution_param { num_output: 4 kernel_size: 3 dilation: 2 pad: 2 group: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "conv2" top: "fc" inner_product_param { num_output: 5 } }
"""
SHAPE = {"data": (1, 3, 32, 32)}
ALLOWED_URLS = {"http://www.w3.org/2000/svg", "https://github.com/dagrejs/dagre"}


@pytest.fixture
def net(tmp_path) -> Path:
    return write_net(tmp_path, LAYERS, SHAPE, stem="small")


def _report(argv: list, capsys) -> tuple[int, str, str]:
    code = main(["report", *[str(a) for a in argv]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _md_layer_rows(markdown: str) -> dict[str, list[str]]:
    """Layer rows of the Markdown layer table, by layer name (cells stripped, marks removed)."""
    rows = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[0].isdigit():
            rows[cells[1].removesuffix(" ↺")] = cells
    return rows


def test_json_holds_the_analysis(net, tmp_path, capsys):
    out = tmp_path / "r.json"
    code, stdout, _ = _report([net, "-o", out, "--format", "json"], capsys)
    assert code == 0 and "wrote" in stdout
    document = json.loads(out.read_text())
    analysis = analyze(load_graph(net))
    assert [layer["name"] for layer in document["layers"]] == [row.name for row in analysis.layers]
    for layer, row in zip(document["layers"], analysis.layers):
        assert (layer["params"], layer["macs"], layer["activation_bytes"]) == (row.params, row.macs, row.activation_bytes)
        assert layer["rf_size"] == [int(v) for v in row.receptive_field.size]
        assert layer["output_shapes"] == [list(s) for s in row.output_shapes]
    assert document["totals"]["params"] == analysis.totals.params
    assert document["totals"]["macs"] == analysis.totals.macs
    assert document["layers"][4]["settings"] == {"num_output": "4", "pad": "2", "kernel_size": "3",
                                                 "group": "2", "dilation": "2"}
    assert document["layers"][2]["folded_into"] == "conv1"


def test_markdown_has_the_same_tables_as_json(net, tmp_path, capsys):
    code, _, _ = _report([net, "-o", tmp_path / "r.md"], capsys)  # format from the suffix
    assert code == 0
    markdown = (tmp_path / "r.md").read_text()
    document = json.loads(render_report(analyze(load_graph(net)), "json"))
    rows = _md_layer_rows(markdown)
    assert list(rows) == [layer["name"] for layer in document["layers"]]
    for layer in document["layers"]:
        cells = rows[layer["name"]]
        assert cells[3] == shapes_text(layer["output_shapes"])
        assert cells[4:7] == [human_count(layer["params"]), human_count(layer["macs"]),
                              human_bytes(layer["activation_bytes"])]
        assert cells[7:9] == [pair_text(layer["rf_size"]), pair_text(layer["rf_stride"])]
    total = next(line for line in markdown.splitlines() if line.startswith("| | **total**"))
    assert human_count(document["totals"]["params"]) in total and human_count(document["totals"]["macs"]) in total


def test_openpose_groups_and_subtotals_in_every_format(tmp_path, capsys):
    prototxt = official_prototxt("coco")
    code, _, _ = _report([prototxt, "-o", tmp_path / "c.json", "--input-size", "368x368"], capsys)
    assert code == 0
    document = json.loads((tmp_path / "c.json").read_text())
    names = [g["name"] for g in document["groups"]]
    assert names[:4] == ["features", "stage1", "stage1_L1", "stage1_L2"] and names[-1] == "output"
    for group in document["groups"]:
        members = [layer for layer in document["layers"] if layer["group"] == group["name"]
                   or (layer["group"] or "").startswith(group["name"] + "_")]
        assert group["totals"]["params"] == sum(layer["params"] for layer in members)
    markdown = render_report(analyze(load_graph(prototxt), input_size=(368, 368)), "md")
    for group in document["groups"]:
        assert f"*subtotal {group['label']}*" in markdown
    html = render_report(analyze(load_graph(prototxt), input_size=(368, 368)), "html")
    assert html.count('class="subtotal-row') == len(document["groups"])
    assert html.count('class="layer-row') == len(document["layers"])


def test_html_is_one_self_contained_file(net, tmp_path, capsys):
    code, _, _ = _report([net, "-o", tmp_path / "r.html"], capsys)
    assert code == 0
    html = (tmp_path / "r.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    assert not re.search(r"<script\b[^>]*\bsrc=", html)
    assert not re.search(r"@import|url\(\s*['\"]?(?!#)", html)  # only url(#arrow) markers
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= ALLOWED_URLS
    assert "Copyright (c) 2012-2014 Chris Pettitt" in html  # dagre travels with its licence


def test_names_cannot_break_out_of_the_page(tmp_path):
    hostile = 'x</script><script>alert(1)</script><b onmouseover="y">'
    escaped = hostile.replace('"', '\\"')
    path = write_net(tmp_path, f"""
layer {{ name: "{escaped}" type: "Convolution" bottom: "data" top: "c" convolution_param {{ num_output: 2 kernel_size: 1 }} }}
""", SHAPE)
    html = render_report(analyze(load_graph(path)), "html")
    assert html.count("<script") == 3 and html.count("</script>") == 3  # data, dagre, report script
    assert "<b onmouseover" not in html
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(data)["layers"][1]["name"] == hostile


def test_weights_add_statistics_and_flags(net, tmp_path, capsys):
    graph = load_graph(net)
    blobs = synthesize(graph, seed=1)
    blobs["conv2"][0][0, 0, 0, 0] = np.nan
    blobs["fc"][1][:] = 0
    model = tmp_path / "small.caffemodel"
    write_caffemodel(model, graph, blobs)
    code, _, _ = _report([net, model, "-o", tmp_path / "w.json"], capsys)
    assert code == 0
    document = json.loads((tmp_path / "w.json").read_text())
    assert document["net"]["weights"] == str(model)
    flagged = {f["layer"]: f["flags"] for f in document["flagged"]}
    assert flagged == {"conv2": ["weights: 1 NaN"], "fc": ["bias: all zeros"]}
    conv1 = next(layer for layer in document["layers"] if layer["name"] == "conv1")
    weights = blobs["conv1"][0].astype(np.float64)
    assert conv1["weights"][0]["mean"] == pytest.approx(weights.mean())
    assert conv1["weights"][0]["std"] == pytest.approx(weights.std())
    assert conv1["weights"][0]["shape"] == [8, 3, 3, 3]
    analysis = analyze(graph, weights=load_weights(graph, model))
    html = render_report(analysis, "html")
    markdown = render_report(analysis, "md")
    assert "weights: 1 NaN" in html and "bias: all zeros" in html
    assert "## Suspicious values" in markdown and "`conv2`: weights: 1 NaN" in markdown


def test_training_prototxt_gets_a_report_with_unknown_shapes(tmp_path, capsys):
    code, stdout, _ = _report([training_prototxt(), "-o", tmp_path / "t.md"], capsys)
    assert code == 0 and "warning:" in stdout and "CPMData" in stdout
    rows = _md_layer_rows((tmp_path / "t.md").read_text())
    assert rows["data"][2] == "CPMData (opaque)" and rows["data"][3] == "?, ?"
    assert rows["conv1_1"][3] == "?" and rows["conv1_1"][4] != "?"  # shape unknown, params known
    html = render_report(analyze(load_graph(training_prototxt())), "html")
    assert "cpm_transform_param" in html  # the opaque layer keeps its raw text


def test_default_output_name_and_input_size(net, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, _ = _report([net, "--input-size", "64x48"], capsys)
    assert code == 0 and (tmp_path / "report.html").is_file()
    code, _, _ = _report([net, "--format", "json", "--input-size", "64x48"], capsys)
    document = json.loads((tmp_path / "report.json").read_text())
    assert document["net"]["inputs"] == {"data": [1, 3, 64, 48]}


@pytest.mark.parametrize("argv, fragment", [
    (["missing.prototxt"], "missing.prototxt"),
    (["{net}", "missing.caffemodel"], "missing.caffemodel"),
])
def test_bad_inputs_exit_2_and_write_nothing(net, tmp_path, capsys, argv, fragment):
    out = tmp_path / "out.html"
    argv = [str(a).replace("{net}", str(net)) for a in argv]
    code, stdout, stderr = _report([*argv, "-o", out], capsys)
    assert code == 2 and fragment in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".out.html*"))
