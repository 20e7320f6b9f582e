"""Property tests: mutated, truncated and bit-flipped model files end in a result or a PosebridgeError.

Seeds are real files written by ``posebridge synth`` (see posebridge.tools.fuzz_targets): a
small net with most layer families, a legacy V1 net, and their caffemodels. Each example
mutates one seed and feeds it to one reader target; the targets catch PosebridgeError (a
clean refusal) and let anything else escape, which fails the test. A generous per-example
deadline turns a hang into a failure. Example counts keep the module under a minute.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from posebridge.prototxt.integrity import minimum_caffemodel_bytes
from posebridge.prototxt.loader import graph_from_bytes
from posebridge.prototxt.layer_types import known_types
from posebridge.tools import fuzz_targets

#: Far above the milliseconds an example takes: only a hang reaches it.
HANG_DEADLINE = timedelta(seconds=20)


def fuzz(examples: int) -> settings:
    """Settings of one property: ``examples`` inputs, the hang deadline, no speed health check."""
    return settings(max_examples=examples, deadline=HANG_DEADLINE,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> dict[str, bytes]:
    files = fuzz_targets.write_seeds(tmp_path_factory.mktemp("fuzz_seeds"))
    return {name: path.read_bytes() for name, path in files.items()}


@pytest.fixture(scope="module")
def seed_graph(seeds):
    return graph_from_bytes(seeds["seed.prototxt"], source="seed.prototxt")


# ----------------------------------------------------------------------------- byte mutations

_OPS = ("flip", "set", "truncate", "insert", "delete", "duplicate")


@st.composite
def mutated(draw, seed_names: tuple[str, ...]) -> tuple[str, list]:
    """A seed name and a list of byte-level edits to apply to it (kept small, so shrinking works)."""
    name = draw(st.sampled_from(seed_names))
    edits = draw(st.lists(st.tuples(st.sampled_from(_OPS), st.integers(0, 1 << 20), st.integers(0, 255),
                                    st.binary(max_size=16)), min_size=1, max_size=6))
    return name, edits


def apply_edits(data: bytes, edits: list) -> bytes:
    """Apply (op, position, value, payload) edits; positions wrap around the current length."""
    out = bytearray(data)
    for op, position, value, payload in edits:
        at = position % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= 1 << (value % 8)
        elif op == "set" and out:
            out[at % len(out)] = value
        elif op == "truncate":
            del out[at:]
        elif op == "insert":
            out[at:at] = payload
        elif op == "delete":
            del out[at:at + value]
        elif op == "duplicate":
            out[at:at] = out[at:at + value]
    return bytes(out)


def _check(target_result: bool) -> None:
    assert target_result in (True, False)  # a result or a clean refusal; anything else escaped


@fuzz(800)
@given(case=mutated(("seed.caffemodel", "seed_v1.caffemodel")))
def test_mutated_caffemodels_through_the_weights_reader(seeds, case):
    name, edits = case
    _check(fuzz_targets.target_caffemodel(apply_edits(seeds[name], edits)))


@fuzz(400)
@given(case=mutated(("seed.caffemodel",)))
def test_mutated_caffemodels_matched_and_converted(seeds, seed_graph, case):
    name, edits = case
    _check(fuzz_targets.target_weights_on_graph(apply_edits(seeds[name], edits), seed_graph))


@fuzz(800)
@given(case=mutated(("seed.prototxt", "seed_v1.prototxt", "seed.caffemodel", "seed_v1.caffemodel")))
def test_mutated_model_files_through_load_graph(seeds, case):
    name, edits = case
    _check(fuzz_targets.target_model_file(apply_edits(seeds[name], edits)))


@fuzz(400)
@given(case=mutated(("seed.prototxt", "seed_v1.prototxt")))
def test_mutated_prototxt_text_through_the_text_reader(seeds, case):
    name, edits = case
    _check(fuzz_targets.target_prototxt_text(apply_edits(seeds[name], edits)))


@fuzz(400)
@given(name=st.sampled_from(("seed.prototxt", "seed_v1.prototxt", "seed.caffemodel", "seed_v1.caffemodel")),
       fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_are_refused_or_read(seeds, seed_graph, name, fraction):
    data = seeds[name]
    cut = data[: int(len(data) * fraction)]
    _check(fuzz_targets.target_model_file(cut))
    if name == "seed.caffemodel":
        _check(fuzz_targets.target_caffemodel(cut))
        if len(cut) < minimum_caffemodel_bytes(seed_graph):  # it cannot hold the net's weights
            assert fuzz_targets.target_weights_on_graph(cut, seed_graph) is True


# ----------------------------------------------------------------------------- token mutations

#: Values a mutated prototxt number becomes: zero, negatives, int32/uint32/int64 edges, floats.
EXTREME_NUMBERS = ("0", "-1", "1", "2", "3", "7", "2147483647", "-2147483648", "4294967295", "4294967296",
                   "9223372036854775807", "-9223372036854775808", "18446744073709551615", "1e308", "-1e308",
                   "nan", "inf", "-inf", "0.5", "100000", "1000000")
#: Parameter fragments inserted into a layer: axes, groups, rounding, phases, shape parameters.
FRAGMENTS = (
    "axis: -1", "axis: 3", "axis: -5", "group: 2", "group: 0", "dilation: 2", "pad_h: 1", "kernel_h: 2 kernel_w: 3",
    "stride_h: 2", "bias_term: false", "global_pooling: true", "pool: AVE", "pool: STOCHASTIC", "operation: MAX",
    "operation: PROD", "coeff: 0.5", "slice_point: 1", "slice_point: 3", "num_output: 0", "engine: CUDNN",
    "transpose: true", "channel_shared: true", "round_mode: FLOOR", "include { phase: TRAIN }",
    "exclude { phase: TEST }", "reshape_param { shape { dim: 0 dim: -1 } }", "crop_param { axis: 2 offset: 1 }",
    "flatten_param { axis: 1 end_axis: -1 }", "argmax_param { top_k: 2 axis: 1 }", "tile_param { axis: 1 tiles: 3 }",
    "reduction_param { axis: 1 operation: SUMSQ }", "power_param { power: 2 }", "softmax_param { axis: 5 }",
    "concat_param { axis: 0 }", "concat_param { concat_dim: 2 }", 'top: "extra"', 'bottom: "data"',
    "lrn_param { local_size: 4 }", "threshold_param { threshold: nan }", "clip_param { min: 1 max: 0 }",
    "eltwise_param { coeff: 1 coeff: 2 coeff: 3 }", "pooling_param { pad: 1 }", "scale_param { axis: 0 num_axes: -1 }",
    "inner_product_param { axis: 3 }", "convolution_param { kernel_size: 1 kernel_size: 2 kernel_size: 3 }",
    "python_param { module: \"os\" layer: \"system\" }",
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_TYPE = re.compile(r'type: "?[A-Za-z_]+"?')
_BLOB = re.compile(r'(bottom|top): "[^"]*"')


@st.composite
def token_mutated(draw) -> str:
    """A seed prototxt with 1-4 edits that keep it mostly parseable: numbers pushed to extremes,
    layer types swapped, lines duplicated, dropped or swapped, parameters inserted, blobs renamed.
    Each edit picks its line among those it applies to."""
    text = draw(st.sampled_from((fuzz_targets.SEED_PROTOTXT, fuzz_targets.SEED_PROTOTXT_V1)))
    lines = text.splitlines()
    blob_names = re.findall(r'(?:bottom|top): "([^"]*)"', text)
    applies = {"number": _NUMBER.search, "type": _TYPE.search, "insert": lambda line: "}" in line,
               "blob": _BLOB.search, "duplicate": bool, "drop": bool, "swap": bool}
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(sorted(applies)))
        candidates = [i for i, line in enumerate(lines) if applies[op](line)]
        if not candidates:
            continue
        i = draw(st.sampled_from(candidates))
        line = lines[i]
        if op == "number":
            start, end = draw(st.sampled_from([m.span() for m in _NUMBER.finditer(line)]))
            lines[i] = line[:start] + draw(st.sampled_from(EXTREME_NUMBERS)) + line[end:]
        elif op == "type":
            new_type = draw(st.sampled_from((*known_types(), "Python", "Unknown")))
            lines[i] = _TYPE.sub(f'type: "{new_type}"', line, count=1)
        elif op == "duplicate":
            lines.insert(draw(st.integers(0, len(lines))), line)
        elif op == "drop" and len(lines) > 1:
            del lines[i]
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "insert":
            at = line.rfind("}") if draw(st.booleans()) else line.find("}")
            lines[i] = f"{line[:at]} {draw(st.sampled_from(FRAGMENTS))} {line[at:]}"
        elif op == "blob":
            name = draw(st.sampled_from(blob_names))
            lines[i] = _BLOB.sub(lambda m: f'{m.group(1)}: "{name}"', line, count=1)
    return "\n".join(lines)


@fuzz(600)
@given(text=token_mutated())
def test_token_mutated_nets_load_convert_and_run(text):
    _check(fuzz_targets.target_convert_and_run(text.encode("utf-8")))


@fuzz(400)
@given(text=token_mutated())
def test_token_mutated_nets_through_load_graph(text):
    _check(fuzz_targets.target_model_file(text.encode("utf-8")))


def test_the_seeds_themselves_load_convert_and_run(seeds, seed_graph):
    """The targets accept valid files (so a refusal in the tests above is about the mutation)."""
    assert fuzz_targets.target_model_file(seeds["seed.prototxt"]) is False
    assert fuzz_targets.target_model_file(seeds["seed_v1.prototxt"]) is False
    assert fuzz_targets.target_model_file(seeds["seed.caffemodel"]) is False
    assert fuzz_targets.target_caffemodel(seeds["seed.caffemodel"]) is False
    assert fuzz_targets.target_weights_on_graph(seeds["seed.caffemodel"], seed_graph) is False
    assert fuzz_targets.target_convert_and_run(seeds["seed.prototxt"]) is False
    assert fuzz_targets.target_convert_and_run(seeds["seed_v1.prototxt"]) is False
