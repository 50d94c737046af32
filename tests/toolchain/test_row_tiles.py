"""exportloss.row_tiles on a hand-built graph: what is tiled, what stays after the chain, same bits as untiled."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from exportloss.ops.tile_plans import record_tile_plan, recording_tile_plans
from exportloss.row_tiles import tile_planes

N, M = 10, 7


def _model() -> onnx.ModelProto:
    """``plane = col + row``; ``shifted = plane - rowmax(plane)`` (reads a value computed from the whole chain);
    ``mask = plane > 0`` (a comparison); outputs ``exp(plane)``, ``shifted`` and ``mask``."""
    nodes = [
        helper.make_node("Neg", ["col"], ["neg_col"]),
        helper.make_node("Add", ["neg_col", "row"], ["plane"]),
        helper.make_node("Exp", ["plane"], ["exp"]),
        helper.make_node("ReduceMax", ["plane"], ["rowmax"], keepdims=1, axes=[-1]),
        helper.make_node("Sub", ["plane", "rowmax"], ["shifted"]),
        helper.make_node("Greater", ["plane", "zero"], ["mask"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("col", TensorProto.FLOAT, [1, N, 1]),
         helper.make_tensor_value_info("row", TensorProto.FLOAT, [1, 1, M])],
        [helper.make_tensor_value_info("exp", TensorProto.FLOAT, [1, N, M]),
         helper.make_tensor_value_info("shifted", TensorProto.FLOAT, [1, N, M]),
         helper.make_tensor_value_info("mask", TensorProto.BOOL, [1, N, M])],
        [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _run(model: onnx.ModelProto, inputs: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, inputs)


def test_chain_is_copied_per_tile_and_later_nodes_read_one_concat():
    model = _model()
    tiled = tile_planes(model, {(N, M): 4})  # tiles of 4, 4 and 2 rows
    onnx.checker.check_model(tiled, full_check=True)
    ops = Counter(node.op_type for node in tiled.graph.node)
    # Neg works on the column: once, before the Split. Add and Exp: once per tile. Sub reads the row maximum
    # of the whole plane and Greater is a comparison: both stay after the chain, reading one Concat of it.
    assert ops == Counter({"Neg": 1, "Split": 1, "Add": 3, "Exp": 3, "Concat": 2, "ReduceMax": 1, "Sub": 1, "Greater": 1})
    rng = np.random.default_rng(0)
    inputs = {"col": rng.normal(size=(1, N, 1)).astype(np.float32), "row": rng.normal(size=(1, 1, M)).astype(np.float32)}
    for got, want in zip(_run(tiled, inputs), _run(model, inputs)):
        assert got.dtype == want.dtype and np.array_equal(got, want)


def test_untouched_without_a_plan_or_with_tiles_as_tall_as_the_plane():
    model = _model()
    assert tile_planes(model, {}) is model
    assert tile_planes(model, {(N, M): N}) is model


def test_plans_are_recorded_only_inside_an_export():
    assert record_tile_plan(N, M, 4) is False
    with recording_tile_plans() as plans:
        assert record_tile_plan(N, M, 4) and record_tile_plan(N, M, 4)
        with pytest.raises(ValueError, match="two tile heights"):
            record_tile_plan(N, M, 5)
    assert plans == {(N, M): 4}
