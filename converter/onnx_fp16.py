"""An fp32 ONNX model rewritten to fp16 weights and compute, keeping fp32 inputs and outputs.

Every float32 tensor of the graph (initializers, Constant and ConstantOfShape values, Cast
targets, declared value types, in subgraphs too) becomes float16; each float32 graph input is
cast to fp16 on entry and each float32 graph output cast back to fp32 on exit, so callers feed
and read float32 as with the fp32 export. Values beyond fp16's range are clipped to +-65504
(OpenPose's max pooling pads with -FLT_MAX; -65504 plays the same role in fp16); infinities
stay infinite. Inputs that ONNX types as float32 only (Resize's roi and scales) are cast back.

Done on the ONNX graph rather than with ``module.half()``, which needs every layer module to
accept fp16 in eager PyTorch (pooling's -FLT_MAX pad value does not).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)
#: op type -> input positions that ONNX requires to be float32 whatever the data type.
FLOAT32_ONLY_INPUTS: dict[str, tuple[int, ...]] = {"Resize": (1, 2), "Upsample": (1,)}
#: Suffix of the internal fp16 names of the graph's inputs and outputs.
FP16_SUFFIX = "_fp16"


def _tensor_to_fp16(tensor: TensorProto) -> TensorProto:
    """A float32 TensorProto as float16 (same name), clipped to the finite fp16 range."""
    values = numpy_helper.to_array(tensor)
    finite = np.isfinite(values)
    clipped = np.where(finite, np.clip(values, -FP16_MAX, FP16_MAX), values)
    return numpy_helper.from_array(clipped.astype(np.float16), tensor.name)


def _convert_value_infos(values) -> None:
    for value in values:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type == FLOAT:
            tensor_type.elem_type = FLOAT16


def _convert_attribute(attribute: onnx.AttributeProto) -> None:
    if attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type == FLOAT:
        attribute.t.CopyFrom(_tensor_to_fp16(attribute.t))
    elif attribute.type == onnx.AttributeProto.TENSORS:
        for tensor in attribute.tensors:
            if tensor.data_type == FLOAT:
                tensor.CopyFrom(_tensor_to_fp16(tensor))
    elif attribute.type == onnx.AttributeProto.GRAPH:
        _convert_graph_body(attribute.g)
    elif attribute.type == onnx.AttributeProto.GRAPHS:
        for graph in attribute.graphs:
            _convert_graph_body(graph)


def _convert_node(node: onnx.NodeProto) -> None:
    if node.op_type == "Cast":
        for attribute in node.attribute:
            if attribute.name == "to" and attribute.i == FLOAT:
                attribute.i = FLOAT16
    if node.op_type == "Constant":
        for index, attribute in enumerate(node.attribute):
            if attribute.name in ("value_float", "value_floats"):
                values = np.asarray(attribute.f if attribute.name == "value_float" else list(attribute.floats),
                                    dtype=np.float32)
                tensor = _tensor_to_fp16(numpy_helper.from_array(values))
                node.attribute[index].CopyFrom(helper.make_attribute("value", tensor))
    for attribute in node.attribute:
        _convert_attribute(attribute)


def _convert_graph_body(graph: onnx.GraphProto) -> None:
    """Convert initializers, nodes and declared value types in place (inputs/outputs too)."""
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == FLOAT:
            graph.initializer[index].CopyFrom(_tensor_to_fp16(tensor))
    for node in graph.node:
        _convert_node(node)
    _convert_value_infos(graph.value_info)
    _convert_value_infos(graph.input)
    _convert_value_infos(graph.output)
    _keep_float32_inputs(graph)


def _keep_float32_inputs(graph: onnx.GraphProto) -> None:
    """Cast back to float32 the inputs that ONNX types as float32 only."""
    nodes = []
    for node in graph.node:
        for position in FLOAT32_ONLY_INPUTS.get(node.op_type, ()):
            if position < len(node.input) and node.input[position]:
                original = node.input[position]
                cast_name = f"{original}_as_float32_for_{node.name or node.op_type}"
                nodes.append(helper.make_node("Cast", [original], [cast_name], to=FLOAT, name=cast_name))
                node.input[position] = cast_name
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename value ``old`` to ``new`` in every node of ``graph`` and its subgraphs (not in graph inputs/outputs)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for attribute in node.attribute:  # outer-scope references from subgraphs
            if attribute.type == onnx.AttributeProto.GRAPH:
                rename_value(attribute.g, old, new)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for sub in attribute.graphs:
                    rename_value(sub, old, new)


def convert_to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` computing in fp16, with its float32 inputs and outputs unchanged."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    float_inputs = [v.name for v in graph.input if v.type.tensor_type.elem_type == FLOAT]
    float_outputs = [v.name for v in graph.output if v.type.tensor_type.elem_type == FLOAT]
    initializer_names = {t.name for t in graph.initializer}
    float_inputs = [name for name in float_inputs if name not in initializer_names]

    _convert_graph_body(graph)
    entry, exit_ = [], []
    for name in float_inputs:
        inner = f"{name}{FP16_SUFFIX}"
        rename_value(graph, name, inner)
        entry.append(helper.make_node("Cast", [name], [inner], to=FLOAT16, name=f"{name}_to_fp16"))
    for name in float_outputs:
        inner = f"{name}{FP16_SUFFIX}"
        rename_value(graph, name, inner)
        exit_.append(helper.make_node("Cast", [inner], [name], to=FLOAT, name=f"{name}_to_fp32"))
    for value in (*graph.input, *graph.output):
        if value.name in float_inputs or value.name in float_outputs:
            value.type.tensor_type.elem_type = FLOAT
    nodes = [*entry, *graph.node, *exit_]
    del graph.node[:]
    graph.node.extend(nodes)
    return result
