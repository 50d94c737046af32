"""Rewrite a float32 ONNX graph to compute in float16, keeping float32 inputs and outputs.

TensorRT 11 has no precision flags: networks are strongly typed, so an fp16 engine needs an ONNX graph
whose tensors are fp16. This conversion is the in-package equivalent of exporting in fp16: float
initializers and Constant values become fp16, ``Cast(to=FLOAT)`` becomes ``Cast(to=FLOAT16)``, and Cast
nodes at the boundary keep the graph's interface in float32, so callers feed the same arrays as for
fp32. fp16 overflows past 65504: graphs whose intermediates exceed it (e.g. areas of boxes in large
pixel coordinates) give inf there, which verification reports.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPE_ATTRIBUTES = ("to", "dtype")
"""Attributes naming an output element type (Cast, EyeLike, Random*...)."""


def to_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` that computes in float16 with float32 graph inputs and outputs."""
    converted = onnx.ModelProto()
    converted.CopyFrom(model)
    graph = converted.graph
    _convert_graph(graph)
    float_inputs = [v for v in graph.input if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    float_outputs = [v for v in graph.output if v.type.tensor_type.elem_type == TensorProto.FLOAT]
    renamed = {v.name: f"{v.name}__fp16" for v in float_inputs}
    for node in _nodes_with_subgraphs(graph):
        node.input[:] = [renamed.get(name, name) for name in node.input]
    produced = {v.name: f"{v.name}__fp16" for v in float_outputs}
    for node in graph.node:
        node.output[:] = [produced.get(name, name) for name in node.output]
    casts_in = [helper.make_node("Cast", [v.name], [renamed[v.name]], to=TensorProto.FLOAT16, name=f"{v.name}_to_fp16")
                for v in float_inputs]
    casts_out = [helper.make_node("Cast", [produced[v.name]], [v.name], to=TensorProto.FLOAT, name=f"{v.name}_to_fp32")
                 for v in float_outputs]
    nodes = [*casts_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # stale types; TensorRT and onnxruntime infer them again
    return converted


def _convert_graph(graph: onnx.GraphProto) -> None:
    for index, init in enumerate(graph.initializer):
        if init.data_type == TensorProto.FLOAT:
            graph.initializer[index].CopyFrom(_half(init))
    for value in graph.value_info:
        _retype(value)
    for node in graph.node:
        _convert_node(node)


def _convert_node(node: onnx.NodeProto) -> None:
    for attr in node.attribute:
        if attr.name in DTYPE_ATTRIBUTES and attr.type == onnx.AttributeProto.INT and attr.i == TensorProto.FLOAT:
            attr.i = TensorProto.FLOAT16
        elif attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == TensorProto.FLOAT:
            attr.t.CopyFrom(_half(attr.t))
        elif attr.type == onnx.AttributeProto.GRAPH:
            _convert_subgraph(attr.g)
        for sub in attr.graphs:
            _convert_subgraph(sub)
    if node.op_type == "Constant":
        _constant_to_tensor(node)


def _convert_subgraph(graph: onnx.GraphProto) -> None:
    """Subgraph inputs and outputs are internal tensors of the model: they become fp16 too."""
    _convert_graph(graph)
    for value in (*graph.input, *graph.output):
        _retype(value)


def _constant_to_tensor(node: onnx.NodeProto) -> None:
    """``Constant(value_float(s)=...)`` always outputs float32: rewrite it as an fp16 ``value`` tensor."""
    for index, attr in enumerate(node.attribute):
        if attr.name in ("value_float", "value_floats"):
            array = np.array(attr.f if attr.name == "value_float" else list(attr.floats), dtype=np.float16)
            del node.attribute[index]
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(array, "value")))
            return


def _half(tensor: onnx.TensorProto) -> onnx.TensorProto:
    return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float16), tensor.name)


def _retype(value: onnx.ValueInfoProto) -> None:
    if value.type.tensor_type.elem_type == TensorProto.FLOAT:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16


def _nodes_with_subgraphs(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in ([attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)):
                yield from _nodes_with_subgraphs(sub)
