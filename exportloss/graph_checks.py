"""Structural checks every exported graph must pass before it is written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import onnx

BANNED_OPS = frozenset({
    "If", "Loop", "Scan", "NonZero", "Unique", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss",
})
"""Operators that make a graph data-dependent or that TensorRT's parser rejects."""

BANNED_PREFIXES = ("Sequence", "Optional")


class GraphCheckError(ValueError):
    """An exported graph failed a structural check."""


def subgraphs(node: onnx.NodeProto) -> Iterable[onnx.GraphProto]:
    """The graphs a node carries as attributes (Loop/If/Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        yield from attr.graphs


def iter_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node, including those in subgraphs (Loop/If bodies)."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from iter_nodes(sub)


def typed_values(graph: onnx.GraphProto) -> Iterable[onnx.ValueInfoProto]:
    """A value info for every typed tensor the graph names: inputs, value_info, outputs, initializers and
    ``Constant`` tensors, in this graph and its subgraphs."""
    yield from graph.input
    yield from graph.value_info
    yield from graph.output
    for init in graph.initializer:
        yield onnx.helper.make_tensor_value_info(init.name, init.data_type, init.dims)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    yield onnx.helper.make_tensor_value_info(node.output[0], attr.t.data_type, attr.t.dims)
        for sub in subgraphs(node):
            yield from typed_values(sub)


def op_histogram(model: onnx.ModelProto) -> Counter[str]:
    return Counter(node.op_type for node in iter_nodes(model.graph))


def check_graph(model: onnx.ModelProto, allowed_ops: Iterable[str] = (), dynamic_axes: bool = False) -> onnx.ModelProto:
    """Run the ONNX checker, strict shape inference and the banned-operator and static-shape rules.

    Returns the shape-inferred model. Raises :class:`GraphCheckError` naming what failed.
    """
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise GraphCheckError(f"ONNX checker or strict shape inference failed: {err}") from err
    allowed = set(allowed_ops)
    banned = sorted(
        op for op in op_histogram(model)
        if op not in allowed and (op in BANNED_OPS or op.startswith(BANNED_PREFIXES))
    )
    if banned:
        raise GraphCheckError(f"graph contains banned operators: {', '.join(banned)}")
    if not dynamic_axes:
        for value in model.graph.input:
            dims = value.type.tensor_type.shape.dim
            if any(not dim.HasField("dim_value") for dim in dims):
                raise GraphCheckError(f"input {value.name!r} has a dynamic dimension but no dynamic axes were asked for")
    return inferred
