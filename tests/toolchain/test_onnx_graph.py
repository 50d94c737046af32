"""exportloss.onnx_graph: the one reader of ONNX models, and the banned-operator policy that uses it."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from exportloss.graph_checks import BANNED_OPS, GraphCheckError, banned_ops, check_graph
from exportloss.onnx_graph import (
    default_opset,
    format_dims,
    input_dims,
    local_functions,
    metadata,
    model_nodes,
    opsets,
    producers,
    static_input_shapes,
    subgraphs,
    tensor_specs,
)


def model_with_branch_and_function(inner_op: str = "Neg") -> onnx.ModelProto:
    """``y = If(c, then: Relu(x), else: Abs(x))`` then ``z = local.Twice(y)``, whose body holds ``inner_op``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, "n"])
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    out = helper.make_tensor_value_info("b", TensorProto.FLOAT, None)
    then_branch = helper.make_graph([helper.make_node("Relu", ["x"], ["b"])], "then", [], [out])
    else_branch = helper.make_graph([helper.make_node("Abs", ["x"], ["b"])], "else", [], [out])
    twice = helper.make_function("local", "Twice", ["a"], ["r"], [helper.make_node(inner_op, ["a"], ["r"])],
                                 [helper.make_opsetid("", 18)])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch, name="branch"),
         helper.make_node("Twice", ["y"], ["z"], domain="local")],
        "g", [x, c], [z], [helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])])
    graph.input.append(helper.make_tensor_value_info("w", TensorProto.FLOAT, [1]))  # an old exporter's habit
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx", 18), helper.make_opsetid("local", 1)],
                             functions=[twice])


def test_model_nodes_descend_into_subgraphs_and_local_functions():
    model = model_with_branch_and_function()
    assert [node.op_type for node in model_nodes(model)] == ["If", "Abs", "Relu", "Twice", "Neg"]  # attributes sort by name
    assert [name for name, _ in subgraphs(model.graph.node[0])] == ["else_branch", "then_branch"]
    assert list(local_functions(model)) == [("local", "Twice")]
    assert producers(model.graph.node)["z"].op_type == "Twice"


def test_inputs_opsets_metadata_and_specs():
    model = model_with_branch_and_function()
    assert input_dims(model) == {"x": (2, None), "c": ()}  # the initializer listed as an input is not one
    assert opsets(model) == {"": 18, "local": 1} and default_opset(model) == 18
    assert static_input_shapes(model) == {"c": ()}
    assert format_dims((3, None, 4)) == "3x?x4"
    onnx.helper.set_model_props(model, {"exportloss.graph": "g"})
    assert metadata(model) == {"exportloss.graph": "g"}
    assert tensor_specs(model.graph.input[:1]) == [{"name": "x", "shape": [2, "n"], "dtype": "float32"}]


def test_banned_operators_are_found_in_local_functions_too():
    assert banned_ops(model_with_branch_and_function()) == ["If"]
    assert banned_ops(model_with_branch_and_function("NonZero"), allowed_ops={"If"}) == ["NonZero"]
    x = helper.make_tensor_value_info("x", TensorProto.INT64, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4])
    graph = helper.make_graph([helper.make_node("OneHot", ["x", "d", "v"], ["y"])], "g", [x], [y],
                              [helper.make_tensor("d", TensorProto.INT64, [], [4]),
                               helper.make_tensor("v", TensorProto.FLOAT, [2], [0.0, 1.0])])
    with pytest.raises(GraphCheckError, match=r"banned operators: OneHot \(its depth"):
        check_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))


def test_the_policy_covers_what_the_graphs_avoid():
    """The strict list the family tests used to carry on their own, now the shipping policy."""
    assert {"If", "Loop", "Scan", "NonZero", "Unique", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss",
            "OneHot", "ScatterElements", "ScatterND"} <= set(BANNED_OPS)
