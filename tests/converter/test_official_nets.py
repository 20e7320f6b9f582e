"""The six official OpenPose nets, converted with synthetic ``he`` weights, layer by layer against OpenCV dnn.

Every layer's first top must be within a relative error of 1e-4 of OpenCV dnn's (fusion off),
at two input sizes, one of them not a multiple of 8 (the three 2x2 poolings then round up); one
``compare`` call per net runs both sizes (the net is converted and imported once). OpenCV must
show every layer but the input, so nothing is silently left uncompared. One net runs at batch 2.
Where pycaffe is installed (tools/build_pycaffe.sh; CI never builds it), the same comparison
against real Caffe runs with ``-m slow``.

The synthetic caffemodels (100-210 MB each) are built once per session; only the one in use is
kept on disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers_files import official_prototxt

from posebridge.converter.parity import OK, SKIP, compare, format_table
from posebridge.converter.references.pycaffe import import_caffe
from posebridge.errors import ParityError
from posebridge.prototxt import load_graph
from posebridge.prototxt.synth import synthesize, write_caffemodel
from posebridge.shared_data import OFFICIAL_PROTOTXTS

TOLERANCE = 1e-4
SIZES = [(184, 200), (123, 157)]  # 123x157: not a multiple of 8
BATCH = {"hand": 2}  # the others run at batch 1


@pytest.fixture(scope="session")
def synthetic_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], tuple[Path, Path]]]:
    """``model(key) -> (prototxt, caffemodel)`` with seeded ``he`` weights; the last one is cached."""
    folder = tmp_path_factory.mktemp("official_synth")
    cache: dict[str, tuple[Path, Path]] = {}

    def model(key: str) -> tuple[Path, Path]:
        if key not in cache:
            for _, old in cache.values():
                old.unlink(missing_ok=True)
            cache.clear()
            prototxt = official_prototxt(key)
            graph = load_graph(prototxt)
            caffemodel = folder / f"{key}.caffemodel"
            write_caffemodel(caffemodel, graph, synthesize(graph, seed=0, init="he"))
            cache[key] = (prototxt, caffemodel)
        return cache[key]

    yield model


@pytest.mark.parametrize("key", sorted(OFFICIAL_PROTOTXTS))
def test_every_layer_matches_opencv_at_two_sizes(synthetic_model, key: str) -> None:
    prototxt, caffemodel = synthetic_model(key)
    batch = BATCH.get(key, 1)
    report = compare(prototxt, caffemodel, reference="opencv", input_sizes=SIZES, batch=batch,
                     tolerance=TOLERANCE, seed=0)
    assert report.ok, format_table(report, only={"fail"})

    graph = load_graph(prototxt)
    assert report.input_shapes == [f"{batch}x3x{h}x{w}" for h, w in SIZES]
    input_layers = {node.name for node in graph.nodes if node.type == "Input"}
    (output,) = graph.outputs
    for label in report.input_shapes:
        rows = [row for row in report.rows if row.input_shape == label]
        assert [row.layer for row in rows] == [node.name for node in graph.nodes]
        assert {row.layer for row in rows if row.status == SKIP} == input_layers
        assert all(row.status == OK and row.shape[0] == batch for row in rows if row.layer not in input_layers)
        # synthetic weights must keep every layer alive: an all-zero output would prove nothing
        dead = [row.layer for row in rows if row.status == OK and not row.reference_max > 0]
        assert not dead, f"{label}: layers whose OpenCV output is all zero: {dead}"
        final = next(row for row in rows if row.layer == graph.producer[output])
        assert final.cosine > 1 - 1e-6


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(OFFICIAL_PROTOTXTS))
def test_every_layer_matches_real_caffe_at_two_sizes(synthetic_model, key: str) -> None:
    try:
        import_caffe()
    except ParityError:
        pytest.skip("pycaffe is not installed (tools/build_pycaffe.sh builds it; CI never does)")
    prototxt, caffemodel = synthetic_model(key)
    report = compare(prototxt, caffemodel, reference="caffe", input_sizes=SIZES, tolerance=TOLERANCE, seed=0)
    assert report.ok, format_table(report, only={"fail"})
    graph = load_graph(prototxt)
    layers = [node.name for node in graph.nodes if node.type != "Input"]
    for label in report.input_shapes:  # stepped layer by layer: every in-place version is compared
        assert [row.layer for row in report.compared if row.input_shape == label] == layers
