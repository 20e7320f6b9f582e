"""Resource limits are checked before allocation: each fails fast with LimitExceededError, and
memory stays bounded (tracemalloc sees numpy's allocations; a child process reports its peak RSS)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from posebridge.errors import CaffemodelFormatError, LimitExceededError, ShapeError
from posebridge.limits import DEFAULT_LIMITS, Limits
from posebridge.prototxt import budget, infer_shapes, load_graph, loader
from posebridge.prototxt.loader import graph_from_bytes
from posebridge.prototxt.text_reader import parse_prototxt_text
from posebridge.prototxt.weights import MAX_BLOBS_PER_LAYER, parse_weights
from posebridge.prototxt.wire import encode_length_delimited as field
from posebridge.prototxt.wire import encode_varint
from posebridge.tools.cli import build_parser, main

#: What a refused input may allocate while being refused (Python objects, small buffers).
SMALL_PEAK_BYTES = 8 * 1024 * 1024

INPUT_NET = """name: "n"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param {{ num_output: {out} kernel_size: 3 }} }}
"""


def _net(dims=(1, 3, 8, 8), out=2) -> str:
    return INPUT_NET.format(dims=" ".join(f"dim: {d}" for d in dims), out=out)


def _blob(dims, values) -> bytes:
    shape = field(7, field(1, b"".join(encode_varint(d) for d in dims)))
    return shape + field(5, np.asarray(values, dtype="<f4").tobytes())


def _caffemodel(*blobs: bytes, name: bytes = b"conv") -> bytes:
    return field(100, field(1, name) + field(2, b"Convolution") + b"".join(field(7, b) for b in blobs))


def _peak_while(function) -> tuple[BaseException | None, int]:
    """Run ``function``; return (the exception it raised, tracemalloc's peak bytes)."""
    tracemalloc.start()
    error = None
    try:
        function()
    except BaseException as exc:  # noqa: BLE001 (returned to the test)
        error = exc
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return error, peak


# ----------------------------------------------------------------------------- declared shapes


def test_caffemodel_declaring_1e12_values_is_refused_without_allocating():
    data = _caffemodel(_blob([1_000_000, 1_000_000], [1.0, 2.0]))
    error, peak = _peak_while(lambda: parse_weights(data, source="huge.caffemodel"))
    assert isinstance(error, LimitExceededError)
    assert "huge.caffemodel" in str(error) and "[1000000, 1000000]" in str(error)
    assert peak < SMALL_PEAK_BYTES


def test_peak_rss_of_a_process_refusing_a_1e12_blob_and_a_1e6_by_1e6_input(tmp_path):
    """The same refusals in a fresh process: its peak RSS stays near an import of posebridge."""
    caffemodel = tmp_path / "huge.caffemodel"
    caffemodel.write_bytes(_caffemodel(_blob([1_000_000, 1_000_000], [1.0])))
    prototxt = tmp_path / "huge.prototxt"
    prototxt.write_text(_net(dims=(1, 3, 1_000_000, 1_000_000)))
    script = textwrap.dedent(f"""
        import json, resource
        from posebridge.errors import LimitExceededError
        from posebridge.prototxt import load_graph, read_weights
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        refused = []
        for call in (lambda: read_weights({str(caffemodel)!r}), lambda: load_graph({str(prototxt)!r})):
            try:
                call()
            except LimitExceededError:
                refused.append(True)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"refused": refused, "growth_kib": after - before}}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["refused"] == [True, True]
    assert report["growth_kib"] < 64 * 1024  # 1e12 floats would be 4 TB; the input 12 TB


def test_input_of_1e6_by_1e6_is_refused_at_load(tmp_path):
    path = tmp_path / "big_input.prototxt"
    path.write_text(_net(dims=(1, 3, 1_000_000, 1_000_000)))
    error, peak = _peak_while(lambda: load_graph(path))
    assert isinstance(error, LimitExceededError)
    assert str(path) in str(error) and "input 'data'" in str(error) and "1000000" in str(error)
    assert peak < SMALL_PEAK_BYTES


def test_an_input_size_given_at_run_time_is_checked_too():
    graph = graph_from_bytes(_net().encode())
    with pytest.raises(LimitExceededError, match="input 'data'"):
        infer_shapes(graph, {"data": (1, 3, 2_000_000, 2_000_000)})


def test_inferred_activation_over_budget_is_refused():
    graph = graph_from_bytes(_net(dims=(1, 3, 64, 64), out=4096).encode())
    limits = Limits(max_activation_bytes=1 << 20)
    with pytest.raises(LimitExceededError, match="layer 'conv'.*output 'conv'"):
        infer_shapes(graph, limits=limits)
    assert infer_shapes(graph)["conv"] == (1, 4096, 62, 62)  # within the default budget


def test_negative_and_empty_shapes_are_shape_errors():
    with pytest.raises(ShapeError, match="negative"):
        graph_from_bytes(_net(dims=(1, -3, 8, 8)).encode())
    with pytest.raises(ShapeError, match="empty"):
        infer_shapes(graph_from_bytes(_net(out=0).encode()))


def test_weights_implied_by_a_huge_num_output_are_refused_before_synth_allocates(tmp_path, capsys):
    prototxt = tmp_path / "wide.prototxt"
    prototxt.write_text(_net(out=4_000_000_000))  # 4e9 x 3 x 3 x 3 weights: 432 GB as float32
    output = tmp_path / "wide.caffemodel"
    build_parser()  # imports every command before memory is measured
    error, peak = _peak_while(lambda: main(["synth", str(prototxt), "-o", str(output)]))
    assert error is None
    assert peak < SMALL_PEAK_BYTES
    err = capsys.readouterr().err
    assert "layer 'conv'" in err and "over the limit" in err and "Traceback" not in err
    assert not output.exists()


@pytest.mark.parametrize("dims", [[0, 2 ** 62], [0] + [80] * 20], ids=["one-huge-dim", "many-axes"])
def test_a_zero_dimension_cannot_hide_a_huge_extent(dims):
    """Found by atheris: numpy refuses to reshape 0 values to such shapes with a ValueError."""
    with pytest.raises(LimitExceededError):
        parse_weights(_caffemodel(_blob(dims, [])))
    with pytest.raises(LimitExceededError):
        budget.check_weight_shape(dims, DEFAULT_LIMITS)


# ----------------------------------------------------------------------------- blob data vs shape


def test_blob_data_shorter_or_longer_than_its_shape_is_refused():
    for values in (np.zeros(107), np.zeros(109)):
        with pytest.raises(CaffemodelFormatError, match=r"holds 10[79] values but its shape \[4, 3, 3, 3\] needs 108"):
            parse_weights(_caffemodel(_blob([4, 3, 3, 3], values)))


def test_unpacked_floats_are_read_in_bounded_memory():
    """Unpacked values (one protobuf field each) used to cost ~75 bytes of Python objects per value."""
    values = np.arange(1_000_000, dtype="<f4")
    records = np.empty((values.size, 5), dtype=np.uint8)
    records[:, 0] = (5 << 3) | 5  # field 5 (data), wire type fixed32
    records[:, 1:] = values.view(np.uint8).reshape(-1, 4)
    shape = field(7, field(1, encode_varint(values.size)))
    data = _caffemodel(shape + records.tobytes())
    result = {}
    error, peak = _peak_while(lambda: result.update(parse_weights(data).blobs))
    assert error is None
    np.testing.assert_array_equal(result["conv"][0], values)
    assert peak < 6 * values.nbytes  # the records and two copies of the floats, not objects per value


def test_a_layer_with_too_many_blobs_is_refused():
    data = _caffemodel(*[_blob([1], [1.0])] * (MAX_BLOBS_PER_LAYER + 1))
    with pytest.raises(LimitExceededError, match=f"more than {MAX_BLOBS_PER_LAYER} blobs"):
        parse_weights(data, source="many.caffemodel")


# ----------------------------------------------------------------------------- deep and wide nets


def test_more_layers_than_the_limit_are_refused_in_text_binary_and_caffemodel():
    limits = Limits(max_layers=50)
    text = _net() + "".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "conv" top: "conv" }}\n' for i in range(60))
    with pytest.raises(LimitExceededError, match="over the limit of 50"):
        graph_from_bytes(text.encode(), limits=limits)
    empty_layer = field(100, b"")
    with pytest.raises(LimitExceededError, match="more than 50 layers"):
        graph_from_bytes(b"\x0a\x01n" + empty_layer * 100_000, limits=limits)
    with pytest.raises(LimitExceededError, match="more than 50 layers"):  # same name: still counted
        parse_weights(_caffemodel(name=b"same") * 60, limits=limits)


def test_a_binary_net_with_too_many_layers_is_refused_before_protobuf_parses_it(monkeypatch):
    def explode():
        raise AssertionError("protobuf was asked to parse the net")

    monkeypatch.setattr(loader, "caffe_pb2", SimpleNamespace(NetParameter=explode))
    data = b"\x0a\x01n" + field(100, b"") * 1_000_000  # 3 MB: a million empty layers
    error, peak = _peak_while(lambda: graph_from_bytes(data, limits=Limits(max_layers=100)))
    assert isinstance(error, LimitExceededError)
    assert peak < SMALL_PEAK_BYTES


def test_a_long_chain_of_layers_loads_and_infers_without_recursion():
    chain = _net() + "".join(f'layer {{ name: "r{i}" type: "ReLU" bottom: "{"conv" if i == 0 else f"r{i - 1}"}" '
                             f'top: "r{i}" }}\n' for i in range(3000))
    graph = graph_from_bytes(chain.encode())
    assert infer_shapes(graph)["r2999"] == (1, 2, 6, 6)


# ----------------------------------------------------------------------------- prototxt size and shape of text


def test_prototxt_over_the_size_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.prototxt"
    path.write_text(_net() + "#" * 5000)
    with pytest.raises(LimitExceededError, match="is 5[0-9]+ bytes, over the limit of 1000"):
        load_graph(path, limits=Limits(max_prototxt_bytes=1000, max_caffemodel_bytes=1000))
    with pytest.raises(LimitExceededError, match="over the limit of 1000"):
        parse_prototxt_text(path.read_text(), limits=Limits(max_prototxt_bytes=1000))


def test_field_line_and_layer_budgets_are_checked_before_text_format_runs(monkeypatch):
    from google.protobuf import text_format

    def explode(*args, **kwargs):
        raise AssertionError("text_format was asked to parse the text")

    monkeypatch.setattr(text_format, "Parse", explode)
    monkeypatch.setattr(budget, "DEFAULT_MAX_PROTOTXT_FIELDS", 1000)
    monkeypatch.setattr(budget, "DEFAULT_MAX_PROTOTXT_LINES", 1000)
    with pytest.raises(LimitExceededError, match="1001 field marks"):
        parse_prototxt_text("a: 1 " * 1001)
    with pytest.raises(LimitExceededError, match="1001 lines"):
        parse_prototxt_text("\n" * 1000)
    with pytest.raises(LimitExceededError, match="30 layer blocks"):
        parse_prototxt_text("layer {}\n" * 30, limits=Limits(max_layers=10))


def test_default_budgets_leave_room_for_the_official_nets():
    """The largest official OpenPose prototxt (BODY_25) sits far below every default budget."""
    from posebridge import zoo

    text = zoo.prototxt_text("body_25")
    assert text.count(":") + text.count("{") + text.count("<") * 50 < budget.DEFAULT_MAX_PROTOTXT_FIELDS
    assert text.count("\n") * 50 < budget.DEFAULT_MAX_PROTOTXT_LINES
    assert len(text.encode()) * 50 < DEFAULT_LIMITS.max_prototxt_bytes


# ----------------------------------------------------------------------------- recursion depth


def test_deep_text_nesting_is_a_limit_error_not_a_crash():
    with pytest.raises(LimitExceededError, match="deeper than 64"):
        parse_prototxt_text("x { " * 70 + "}" * 70)
    with pytest.raises(LimitExceededError, match="too deep"):
        parse_prototxt_text("x { " * 20_000 + "}" * 20_000)


def test_deep_binary_nesting_is_refused_by_protobufs_depth_limit():
    groups = encode_varint(999 << 3 | 3) * 5000 + encode_varint(999 << 3 | 4) * 5000
    with pytest.raises(CaffemodelFormatError, match="not a valid binary net"):
        graph_from_bytes(b"\x0a\x01n" + field(100, field(1, b"a") + groups))
    with pytest.raises(CaffemodelFormatError):
        graph_from_bytes(b"\x0a\x01n" + groups)  # groups at the top level: refused by the layer count walk
