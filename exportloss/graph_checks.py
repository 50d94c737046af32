"""Structural checks every exported graph must pass before it is written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType

import onnx

from .onnx_graph import model_nodes, tensor_dims

BANNED_OPS: Mapping[str, str] = MappingProxyType({
    **dict.fromkeys(("If", "Loop", "Scan"), "data-dependent control flow"),
    **dict.fromkeys(("NonZero", "Unique"), "an output shape that depends on the input values"),
    **dict.fromkeys(("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"),
                    "a training operator that TensorRT's parser and onnxruntime's CUDA provider do not run"),
    "OneHot": "its depth must be a build-time constant for TensorRT; a comparison with arange(C) needs none",
    **dict.fromkeys(("Scatter", "ScatterElements", "ScatterND"),
                    "duplicate indices leave the result to the backend's write order (TensorRT runs reductions as a plugin)"),
})
"""The banned-operator policy: operators no exported graph may contain (unless its catalog entry allows
them by name), each with the reason. The tests check graphs against this same policy."""

BANNED_PREFIXES = ("Sequence", "Optional")
"""Operator families (``SequenceAt``, ``OptionalGetElement``, ...) that carry non-tensor values TensorRT cannot hold."""


class GraphCheckError(ValueError):
    """An exported graph failed a structural check."""


def op_histogram(model: onnx.ModelProto) -> Counter[str]:
    """How often each operator occurs in the model, subgraphs and local functions included."""
    return Counter(node.op_type for node in model_nodes(model))


def banned_ops(model: onnx.ModelProto, allowed_ops: Iterable[str] = ()) -> list[str]:
    """The model's operators that the policy (:data:`BANNED_OPS`, :data:`BANNED_PREFIXES`) bans, less ``allowed_ops``, sorted."""
    allowed = set(allowed_ops)
    return sorted(op for op in op_histogram(model)
                  if op not in allowed and (op in BANNED_OPS or op.startswith(BANNED_PREFIXES)))


def check_graph(model: onnx.ModelProto, allowed_ops: Iterable[str] = (), dynamic_axes: bool = False) -> onnx.ModelProto:
    """Run the ONNX checker, strict shape inference and the banned-operator and static-shape rules.

    Returns the shape-inferred model. Raises :class:`GraphCheckError` naming what failed.
    """
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise GraphCheckError(f"ONNX checker or strict shape inference failed: {err}") from err
    banned = banned_ops(model, allowed_ops)
    if banned:
        reasons = (f"{op} ({BANNED_OPS.get(op, 'a non-tensor value')})" for op in banned)
        raise GraphCheckError(f"graph contains banned operators: {'; '.join(reasons)}")
    if not dynamic_axes:
        for value in model.graph.input:
            if None in (tensor_dims(value) or ()):
                raise GraphCheckError(f"input {value.name!r} has a dynamic dimension but no dynamic axes were asked for")
    return inferred
