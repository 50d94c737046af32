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


def iter_nodes(graph: onnx.GraphProto) -> Iterable[onnx.NodeProto]:
    """Every node, including those in subgraphs (Loop/If bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            for sub in attr.graphs:
                yield from iter_nodes(sub)


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
