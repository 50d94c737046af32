"""Tie-adversarial rewrite of ONNX graphs: every TopK / ArgMax / ArgMin breaks ties the other way.

ONNX specifies that TopK returns the lower index first among equal values and that ArgMax/ArgMin
(``select_last_index=0``) return the first extremum; onnxruntime's CPU provider does so, but the CUDA
TopK does not (its order depends on the size) and TensorRT promises nothing. A graph whose outputs
must not depend on the backend must give the same outputs when every such node prefers the *higher*
index instead. :func:`flip_ties` builds that graph: each node ``op(X)`` along axis ``a`` becomes

    X' = Slice(X, axis=a, step=-1)       # reverse the axis
    V, I' = op(X')                       # ties now go to the higher original index
    I = (L - 1) - I'                     # map indices back, L = X's extent along a

with the original output names, so the rewritten model is a drop-in replacement. Run both in
onnxruntime on tie-heavy inputs and require identical outputs (:func:`assert_tie_safe`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from exportloss.onnx_graph import subgraphs

TIE_BREAKING_OPS = ("TopK", "ArgMax", "ArgMin")
_INT64_MIN = np.iinfo(np.int64).min


def reject_subgraphs(model: onnx.ModelProto) -> None:
    """Raise ``NotImplementedError`` for a graph with subgraphs: the rewrites handle flat graphs."""
    for node in model.graph.node:
        if any(subgraphs(node)):
            raise NotImplementedError(f"node {node.name or node.op_type} has a subgraph; the rewrite handles flat graphs")


def tie_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The graph's TopK/ArgMax/ArgMin nodes (top level; catalog graphs have no subgraphs)."""
    reject_subgraphs(model)
    return [node for node in model.graph.node if node.op_type in TIE_BREAKING_OPS]


def flip_ties(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose TopK/ArgMax/ArgMin nodes break ties towards the higher index.

    Same inputs and outputs as ``model`` (a drop-in replacement). A graph whose results must not depend on
    the backend gives the same outputs with both on tie-heavy inputs. Raises ``NotImplementedError`` for a
    graph with subgraphs (If/Loop bodies) and ``ValueError`` when a node's axis has no static size.
    """
    model = inferred_copy(model)
    ranks = {value.name: value.type.tensor_type.shape for value in
             [*model.graph.input, *model.graph.value_info, *model.graph.output]}
    new_nodes: list[onnx.NodeProto] = []
    constants: list[onnx.TensorProto] = []
    for number, node in enumerate(model.graph.node):
        if node.op_type not in TIE_BREAKING_OPS:
            new_nodes.append(node)
            continue
        shape = ranks[node.input[0]]
        axis = _attribute(node, "axis", -1 if node.op_type == "TopK" else 0)
        axis = axis % len(shape.dim)
        extent = shape.dim[axis]
        if not extent.HasField("dim_value"):
            raise ValueError(f"{node.op_type} node {node.name!r}: axis {axis} of {node.input[0]!r} has no static size")
        prefix = f"flip_ties_{number}"
        for suffix, value in (("starts", [-1]), ("ends", [_INT64_MIN]), ("axes", [axis]), ("steps", [-1]),
                              ("last", [extent.dim_value - 1])):
            constants.append(numpy_helper.from_array(np.array(value, np.int64), f"{prefix}_{suffix}"))
        reversed_input = f"{prefix}_reversed"
        new_nodes.append(helper.make_node(
            "Slice", [node.input[0], f"{prefix}_starts", f"{prefix}_ends", f"{prefix}_axes", f"{prefix}_steps"],
            [reversed_input], name=f"{prefix}_reverse",
        ))
        index_output = node.output[1] if node.op_type == "TopK" else node.output[0]
        flipped = onnx.NodeProto()
        flipped.CopyFrom(node)
        flipped.name = f"{prefix}_{node.op_type}"
        flipped.input[0] = reversed_input
        if index_output:  # TopK's indices may be unused
            flipped_index = f"{prefix}_index"
            if node.op_type == "TopK":
                flipped.output[1] = flipped_index
            else:
                flipped.output[0] = flipped_index
            new_nodes.append(flipped)
            new_nodes.append(helper.make_node("Sub", [f"{prefix}_last", flipped_index], [index_output], name=f"{prefix}_unflip"))
        else:
            new_nodes.append(flipped)
    return with_nodes(model, new_nodes, constants)


def with_nodes(model: onnx.ModelProto, nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto]) -> onnx.ModelProto:
    """``model`` (changed in place) with ``nodes`` as its graph's nodes and ``initializers`` added, checked; the old
    value_info is dropped, as a rewrite may change what the checker infers."""
    graph = model.graph
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    del graph.value_info[:]
    onnx.checker.check_model(model, full_check=True)
    return model


def inferred_copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return onnx.shape_inference.infer_shapes(copy, strict_mode=True)


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((helper.get_attribute_value(attr) for attr in node.attribute if attr.name == name), default)


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def tie_mismatches(model: onnx.ModelProto, cases: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> list[str]:
    """Where ``model`` and its tie-adversarial rewrite disagree (bit for bit, NaN equal to NaN) on ``cases``."""
    original, adversarial = session(model), session(flip_ties(model))
    outputs = [output.name for output in model.graph.output]
    mismatches = []
    for case_name, inputs in cases:
        feeds = dict(inputs)
        for name, want, got in zip(outputs, original.run(outputs, feeds), adversarial.run(outputs, feeds)):
            if not np.array_equal(want, got, equal_nan=want.dtype.kind == "f"):
                differ = int((want != got).sum()) if want.shape == got.shape else -1
                mismatches.append(f"{case_name}/{name}: {differ} element(s) differ")
    return mismatches


def assert_tie_safe(model: onnx.ModelProto, cases: Iterable[tuple[str, Mapping[str, np.ndarray]]]) -> None:
    mismatches = tie_mismatches(model, cases)
    assert not mismatches, "outputs depend on the backend's tie order:\n" + "\n".join(mismatches)
