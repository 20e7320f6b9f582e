"""The HTML report in headless Chromium: no console errors, one SVG node per visible layer, the
parameters on hover, groups that fold, a table that sorts and filters, and screenshots kept as
test artifacts (their paths are printed; run with ``-s`` to see them). Screenshots go to
``$POSEBRIDGE_TEST_ARTIFACTS`` when set (kept after the run), else to the test's tmp_path.

Skipped when no Chromium/Chrome binary is found (``apt-get install chromium``, or point
``$POSEBRIDGE_CHROMIUM`` at one).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_files import official_prototxt, training_prototxt, write_net
from helpers_report import ChromiumPage, chromium_binary

from posebridge.prototxt import load_graph
from posebridge.prototxt.analysis import NetAnalysis, analyze
from posebridge.tools.report import render_report
from posebridge.tools.report.formatting import human_count
from posebridge.tools.report.graph_view import build_graph_view
from posebridge.tools.report.render import categories

SMALL = """
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1" convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "a" type: "Convolution" bottom: "pool1" top: "a" convolution_param { num_output: 4 kernel_size: 1 } }
layer { name: "b" type: "Convolution" bottom: "pool1" top: "b" convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 2 } }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
"""
LAYER_NODES = "Array.from(document.querySelectorAll('#viewport g.layer-node')).map(n => n.dataset.layer)"
DRAWN = "document.body.dataset.reportStatus === 'drawn'"


@pytest.fixture(scope="module")
def browser() -> str:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium/Chrome binary on PATH (apt-get install chromium, or set POSEBRIDGE_CHROMIUM)")
    return binary


def _source(name: str, tmp_path: Path) -> Path:
    if name == "small":
        return write_net(tmp_path, SMALL, {"data": (1, 3, 64, 64)}, stem="small")
    if name == "training":
        return training_prototxt()
    return official_prototxt(name)


def _write_report(analysis: NetAnalysis, tmp_path: Path, name: str) -> Path:
    page = tmp_path / f"{name}.html"
    page.write_text(render_report(analysis, "html"), encoding="utf-8")
    return page


def _artifact(tmp_path: Path, name: str) -> Path:
    """Where a screenshot goes: ``$POSEBRIDGE_TEST_ARTIFACTS`` if set, else the test's tmp_path."""
    folder = Path(os.environ.get("POSEBRIDGE_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def _open(browser: str, page: Path, tmp_path: Path, **kwargs) -> ChromiumPage:
    return ChromiumPage(browser, page, tmp_path / "profile", **kwargs)


def _fill_pixels(png: Path, category: str) -> int:
    """Pixels painted in a category's node fill colour (proof that nodes were drawn)."""
    fill = categories()[category]["fill"].lstrip("#")
    bgr = np.array([int(fill[i:i + 2], 16) for i in (4, 2, 0)], dtype=np.int16)
    image = cv2.imread(str(png)).astype(np.int16)
    return int((np.abs(image - bgr).max(axis=2) <= 2).sum())


@pytest.mark.parametrize("name", ["small", "coco", "body_25", "training"])
def test_report_draws_every_visible_layer(browser, tmp_path, name):
    analysis = analyze(load_graph(_source(name, tmp_path)))
    page = _write_report(analysis, tmp_path, name)
    with _open(browser, page, tmp_path, window=(1400, 1800)) as chromium:
        chromium.wait_for(DRAWN)
        drawn = chromium.evaluate(LAYER_NODES)
        errors = chromium.evaluate("document.body.dataset.reportErrors || ''")
        png = chromium.screenshot(_artifact(tmp_path, f"report-{name}.png"))
        problems = list(chromium.problems)
    print(f"\nscreenshot of the {name} report: {png}")
    assert problems == [] and errors == ""
    expected = [row.name for row in analysis.layers if row.folded_into is None]
    assert sorted(drawn) == sorted(expected)  # one node per visible layer, in-place ones folded
    assert len(expected) == len(build_graph_view(analysis)["nodes"])
    assert _fill_pixels(png, "layer") > 500  # convolution nodes are visible in the first screen


def test_hover_shows_the_nondefault_parameters_and_folded_layers(browser, tmp_path):
    analysis = analyze(load_graph(official_prototxt("coco")))
    page = _write_report(analysis, tmp_path, "coco")
    with _open(browser, page, tmp_path) as chromium:
        chromium.wait_for(DRAWN)
        chromium.evaluate("document.querySelector('#viewport g.layer-node[data-layer=\"conv1_1\"]')"
                          ".dispatchEvent(new MouseEvent('mouseenter'))")
        title = chromium.evaluate("document.querySelector('#details h3').textContent")
        cells = chromium.evaluate("Array.from(document.querySelectorAll('#details td')).map(c => c.textContent)")
        headings = chromium.evaluate("Array.from(document.querySelectorAll('#details h4')).map(c => c.textContent)")
        assert chromium.problems == []
    settings = dict(zip(cells[::2], cells[1::2]))
    assert title == "conv1_1"
    assert {k: settings[k] for k in ("num_output", "pad", "kernel_size")} == {"num_output": "64", "pad": "1",
                                                                             "kernel_size": "3"}
    assert "stride" not in settings and "bias_term" not in settings  # defaults are not shown
    assert settings["output"] == "1x64x368x368"
    assert any("relu1_1" in h for h in headings)  # the in-place ReLU folded into this node


def test_groups_fold_and_unfold(browser, tmp_path):
    analysis = analyze(load_graph(official_prototxt("coco")))
    page = _write_report(analysis, tmp_path, "coco")
    visible = [r for r in analysis.layers if r.folded_into is None]
    with _open(browser, page, tmp_path, window=(1400, 1800), fragment="collapsed") as chromium:
        chromium.wait_for(DRAWN)
        top_level = [g for g in analysis.groups if g.parent is None]
        assert chromium.evaluate("document.body.dataset.graphGroups") == str(len(top_level))
        assert chromium.evaluate(LAYER_NODES) == []  # every COCO layer sits in a group
        png = chromium.screenshot(_artifact(tmp_path, "report-coco-folded.png"))
        print(f"\nscreenshot of the folded COCO report: {png}")
        assert _fill_pixels(png, "group") > 500
        # unfold stage 2: its own layer and its branches' layers appear, the other groups stay folded
        chromium.evaluate("document.querySelector('#viewport g.group-node[data-cluster=\"stage2\"]')"
                          ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        stage2 = sorted(r.name for r in visible if r.group and r.group.startswith("stage2"))
        assert sorted(chromium.evaluate(LAYER_NODES)) == stage2
        # fold one branch back through its title
        chromium.evaluate("Array.from(document.querySelectorAll('#viewport .cluster'))"
                          ".find(c => c.dataset.cluster === 'stage2_L1').querySelector('.cluster-title')"
                          ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
        branch = {r.name for r in visible if r.group == "stage2_L1"}
        assert sorted(chromium.evaluate(LAYER_NODES)) == sorted(set(stage2) - branch)
        assert chromium.problems == []


def test_table_sorts_and_filters(browser, tmp_path):
    analysis = analyze(load_graph(official_prototxt("coco")))
    page = _write_report(analysis, tmp_path, "coco")
    rows_js = ("Array.from(document.querySelectorAll('#layers tbody tr.layer-row'))"
               ".filter(r => getComputedStyle(r).display !== 'none').map(r => r.dataset.layer)")
    with _open(browser, page, tmp_path) as chromium:
        chromium.wait_for(DRAWN)
        assert chromium.evaluate(rows_js) == [r.name for r in _group_order(analysis)]
        chromium.evaluate("document.querySelector('#layers th[data-key=\"macs\"]').click()")
        by_macs = chromium.evaluate(rows_js)
        chromium.evaluate("document.querySelector('#layers th[data-key=\"macs\"]').click()")
        by_macs_ascending = chromium.evaluate(rows_js)
        chromium.evaluate("const f = document.getElementById('filter'); f.value = 'stage3 convolution';"
                          "f.dispatchEvent(new Event('input'))")
        filtered = chromium.evaluate(rows_js)
        shown_params = chromium.evaluate("document.getElementById('shown-params').textContent")
        assert chromium.problems == []
    macs = {r.name: r.macs for r in analysis.layers}
    assert [macs[n] for n in by_macs] == sorted(macs.values(), reverse=True)
    assert [macs[n] for n in by_macs_ascending] == sorted(macs.values())
    expected = [r for r in analysis.layers if r.group and r.group.startswith("stage3") and r.type == "Convolution"]
    assert sorted(filtered) == sorted(r.name for r in expected)
    assert shown_params == human_count(sum(r.params for r in expected))


def _group_order(analysis: NetAnalysis):
    """Layer rows in the table's default order: groups in tree order, topological inside."""
    document = json.loads(render_report(analysis, "json"))
    order = []
    for section in document["sections"]:
        if section["parent"] is None:
            order.extend(section["rows"])
            for child in (s for s in document["sections"] if s["parent"] == section["group"]):
                order.extend(child["rows"])
    return [analysis.layers[i] for i in order]
