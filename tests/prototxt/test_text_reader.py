"""Prototxt text: protobuf's text_format, fork fields kept as raw text, errors as file:line:col."""

from __future__ import annotations

import pytest

from posebridge.errors import LimitExceededError, PrototxtSyntaxError
from posebridge.limits import Limits
from posebridge.prototxt import load_graph
from posebridge.prototxt.text_reader import parse_prototxt_text, read_prototxt

V1_LINE = 'layers { name: "v1" type: RELU bottom: "conv" top: "v1" }\n'
FORK_TEXT = """# a Caffe fork's prototxt
name: "fork"
fork_solver_hint: 3
input: "data" input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layer {
  name: "conv"  # trailing comment
  type: "Convolution"
  bottom: "data"
  top: "conv"
  convolution_param < num_output: 2 kernel_size: 1 fork_inner { a: 1 b { c: 2 } } weight_filler { fork_deep: 1 } >
  fork_list: [1, 2, 3]
  fork_string: "a" 'b'
}
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
""" + V1_LINE


def test_fork_fields_are_skipped_and_recorded_per_layer() -> None:
    parsed = parse_prototxt_text(FORK_TEXT, source="fork.prototxt")
    assert parsed.net.name == "fork"
    conv = parsed.net.layer[0]
    assert conv.convolution_param.num_output == 2 and conv.convolution_param.kernel_size == [1]
    assert [(e.field, e.start_line) for e in parsed.layer_texts] == [("layer", 5), ("layer", 14), ("layers", 15)]
    entry = parsed.layer_texts[0]
    assert entry.unknown_fields == ["convolution_param.fork_inner", "convolution_param.weight_filler.fork_deep",
                                    "fork_list", "fork_string"]
    assert entry.text.startswith('layer {\n  name: "conv"') and entry.text.endswith("fork_string: \"a\" 'b'\n}")
    assert parsed.layer_texts[1].text == 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }'
    assert parsed.layer_texts[1].unknown_fields == []
    assert parsed.top_level_unknown == ["fork_solver_hint"]
    assert parsed.warnings == ["fork.prototxt: top-level fields outside the Caffe schema ignored: fork_solver_hint"]


def test_fork_layer_becomes_opaque_with_one_warning(tmp_path) -> None:
    path = tmp_path / "fork.prototxt"
    path.write_text(FORK_TEXT.replace(V1_LINE, ""))  # Caffe rejects V1 and V2 layers in one net
    graph = load_graph(path)
    conv = graph.node("conv")
    assert conv.known and conv.opaque
    assert "fork_inner" in conv.raw_text and conv.unknown_fields[0] == "convolution_param.fork_inner"
    layer_warnings = [w for w in graph.warnings if "layer 'conv'" in w]
    assert len(layer_warnings) == 1 and str(path) in layer_warnings[0]
    assert len(graph.warnings) == 2  # the layer, and the top-level field
    assert not graph.node("relu").opaque


def test_unknown_layer_type_is_kept_opaque(tmp_path) -> None:
    path = tmp_path / "unknown.prototxt"
    path.write_text('input: "x" input_dim: 1 input_dim: 1 input_dim: 2 input_dim: 2\n'
                    'layer { name: "odd" type: "FancyUpsample" bottom: "x" top: "y" fancy_param { factor: 2 } }\n')
    graph = load_graph(path)
    odd = graph.node("odd")
    assert odd.type == "FancyUpsample" and not odd.known and odd.opaque and odd.category == "opaque"
    assert odd.params is None and "factor: 2" in odd.raw_text
    (warning,) = graph.warnings
    assert "layer 'odd'" in warning and "unknown type 'FancyUpsample'" in warning and "fancy_param" in warning


def test_layers_sharing_a_name_across_phases_keep_their_own_text(tmp_path) -> None:
    path = tmp_path / "phases.prototxt"
    path.write_text("""
    layer { name: "data" type: "Data" top: "x" include { phase: TRAIN } fork_train_param { crop: 3 } }
    layer { name: "data" type: "Data" top: "x" include { phase: TEST } data_param { batch_size: 1 } }
    layer { name: "relu" type: "ReLU" bottom: "x" top: "y" }
    """)
    test = load_graph(path, phase="TEST")
    assert "phase: TEST" in test.node("data").raw_text
    assert not test.node("data").opaque and test.warnings == []
    train = load_graph(path, phase="TRAIN")
    assert "phase: TRAIN" in train.node("data").raw_text
    assert train.node("data").unknown_fields == ("fork_train_param",)
    assert len(train.warnings) == 1


@pytest.mark.parametrize(("text", "line", "column", "fragment"), [
    ('name: "x"\nlayer {\n  name: "a" type: "ReLU" bottom: "x" top "y"\n}\n', 3, 42, 'Expected ":"'),
    ("layer }\n", 1, 7, 'Expected "{"'),
    ('layer {\n  convolution_param { num_output: "many" }\n}\n', 2, 35, "integer"),
    ('layer {\n  name: "a"\n  type: "Pooling"\n  pooling_param { pool: MEDIAN }\n}\n', 4, 25, "MEDIAN"),
])
def test_syntax_errors_read_file_line_col(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(PrototxtSyntaxError) as info:
        parse_prototxt_text(text, source="bad.prototxt")
    message = str(info.value)
    assert message.startswith(f"bad.prototxt:{line}:{column}: ")
    assert fragment in message


def test_syntax_error_from_a_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "broken.prototxt"
    path.write_text('name: "n"\nlayer { name: "a" \n')
    with pytest.raises(PrototxtSyntaxError) as info:
        read_prototxt(path)
    assert str(info.value).startswith(f"{path}:")


def test_binary_bytes_are_not_prototxt(tmp_path) -> None:
    path = tmp_path / "binary.prototxt"
    path.write_bytes(b"layer { name: \"\xff\xfe\" }")
    with pytest.raises(PrototxtSyntaxError, match="not UTF-8"):
        read_prototxt(path)


def test_nesting_limit(tmp_path) -> None:
    text = "fork " + "{ a " * 9 + "{ x: 1 " + "} " * 10  # 10 nested messages
    with pytest.raises(LimitExceededError):
        parse_prototxt_text(text, source="deep.prototxt", limits=Limits(max_nesting_depth=5))
    parse_prototxt_text(text, source="deep.prototxt", limits=Limits(max_nesting_depth=20))


def test_size_limit() -> None:
    with pytest.raises(LimitExceededError) as info:
        parse_prototxt_text('name: "n"\n' * 10, source="big.prototxt", limits=Limits(max_prototxt_bytes=20))
    assert "big.prototxt" in str(info.value)
