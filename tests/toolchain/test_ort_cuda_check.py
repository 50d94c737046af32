"""check-ort-cuda: each rule on hand-built graphs, the generated table, and the whole catalog."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exportloss.cli import main
from exportloss.ort_cuda import check_model, load_table

ROOT = Path(__file__).resolve().parents[2]


def one_node_model(op: str, opset: int, elem=TensorProto.FLOAT, inputs=("x",), **attrs) -> onnx.ModelProto:
    node = helper.make_node(op, list(inputs), ["y"], name=f"the_{op}", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(i, elem, [4]) for i in inputs],
                              [helper.make_tensor_value_info("y", elem, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def rules(report) -> list[str]:
    return [f.rule for f in report.fallbacks]


def test_registered_op_type_and_opset_pass():
    assert check_model(one_node_model("Add", 18, inputs=("x", "z"))).compatible
    assert check_model(one_node_model("Sqrt", 18)).compatible


def test_op_without_cuda_kernel_is_a_fallback():
    report = check_model(one_node_model("Atan", 18))
    assert rules(report) == ["op-not-registered"] and report.fallbacks[0].node == "the_Atan"
    assert report.verdict.startswith("FAIL")


def test_opset_outside_the_registered_ranges_is_a_fallback():
    # ArgMax-12 (since_version 12): the table registers 1-10, 11-11 and 13+.
    report = check_model(one_node_model("ArgMax", 12, inputs=("x",)))
    assert rules(report) == ["opset-out-of-range"]
    assert "version 12" in report.fallbacks[0].message
    assert check_model(one_node_model("ArgMax", 13)).compatible


def test_element_type_not_registered_is_a_fallback():
    report = check_model(one_node_model("Add", 18, elem=TensorProto.INT8, inputs=("x", "z")))
    assert rules(report) == ["type-not-registered"] and "INT8" in report.fallbacks[0].message
    assert check_model(one_node_model("Add", 18, elem=TensorProto.INT64, inputs=("x", "z"))).compatible


def test_slice_is_typed_by_its_index_type_not_its_data():
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([2], np.int64), "ends")
    model = one_node_model("Slice", 18, inputs=("x", "starts", "ends"))
    model.graph.initializer.extend([starts, ends])
    del model.graph.input[1:]
    assert check_model(model).compatible


def test_other_domains_are_reported():
    model = one_node_model("Atan", 18)
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert rules(check_model(model)) == ["op-not-registered"]


def test_small_shape_computations_on_the_cpu_are_notes_not_failures():
    """Shape -> Add(small initializer) -> Reshape: onnxruntime runs the Add on the CPU by design."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Add", ["s", "one"], ["s1"], name="shape_plus_zero"),
             helper.make_node("Reshape", ["x", "s1"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.zeros(2, np.int64), "one")])
    report = check_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert report.compatible
    assert [(f.rule, f.node) for f in report.host_by_design] == [("host-shape-node", "shape_plus_zero")]


def test_subgraphs_are_checked():
    body = helper.make_graph([helper.make_node("Atan", ["x"], ["t"], name="inner_atan")], "then", [],
                             [helper.make_tensor_value_info("t", TensorProto.FLOAT, [4])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [4])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=body, else_branch=other, name="branch")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    report = check_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    assert [(f.node, f.where) for f in report.fallbacks] == [("inner_atan", "graph/branch.then_branch")]


def test_table_is_generated_from_the_registration_macros():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "tools" / "make_ort_cuda_table.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    source = """
    // opset 1 to 9
    class ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add);
    BuildKernelCreateInfo<ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add)>,
    class ONNX_OPERATOR_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 11, int64_t_float_int64_t, OneHot);
    class ONNX_OPERATOR_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 13, Concat);
    """
    kernels = gen.parse_registrations(source)
    assert kernels == [
        {"op": "Add", "domain": "", "since": 7, "end": 12, "types": ["FLOAT"]},
        {"op": "Concat", "domain": "", "since": 13, "end": None, "types": None},
        {"op": "OneHot", "domain": "", "since": 11, "end": None, "types": ["INT64", "FLOAT", "INT64"]},
    ]
    shipped = load_table()
    assert "cuda_execution_provider.cc" in shipped.source
    assert not shipped.ranges("Atan") and shipped.ranges("Sqrt")


def test_cli_checks_the_whole_catalog_without_fallbacks(tmp_path, capsys):
    """The committed catalog in models/ (the drift test keeps it equal to fresh exports)."""
    out = tmp_path / "cuda.json"
    assert main(["check-ort-cuda", "--all", "--models", str(ROOT / "models"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert len(data["reports"]) >= 29 and all(r["verdict"].startswith("PASS") for r in data["reports"])


def test_cli_fails_naming_the_fallback_node(tmp_path, capsys):
    path = tmp_path / "atan.onnx"
    model = one_node_model("Atan", 18)
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]))  # a file must pass onnx's checker
    onnx.save(model, str(path))
    assert main(["check-ort-cuda", str(path)]) == 1
    assert "the_Atan" in capsys.readouterr().out
    assert main(["check-ort-cuda", str(tmp_path / "missing.onnx")]) == 2


@pytest.mark.parametrize("name", ["pairwise_ciou", "aligned_ciou", "ciou_loss", "match_metrics"])
def test_ciou_graphs_have_no_atan(name):
    model = onnx.load(str(ROOT / "models" / f"{name}.onnx"))
    assert "Atan" not in {n.op_type for n in model.graph.node}
