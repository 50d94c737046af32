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
    # Sign at opset 12 is Sign-9; the table registers Sign from version 13 only.
    report = check_model(one_node_model("Sign", 12, inputs=("x",)))
    assert rules(report) == ["opset-out-of-range"]
    assert "version 9" in report.fallbacks[0].message
    assert check_model(one_node_model("Sign", 13)).compatible


def equal_model(elem: int) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Equal", ["x", "z"], ["y"], name="the_Equal")], "g",
                              [helper.make_tensor_value_info(n, elem, [4]) for n in ("x", "z")],
                              [helper.make_tensor_value_info("y", TensorProto.BOOL, [4])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_element_type_not_registered_is_a_fallback():
    report = check_model(equal_model(TensorProto.INT8))
    assert rules(report) == ["type-not-registered"] and "INT8" in report.fallbacks[0].message
    assert check_model(equal_model(TensorProto.INT64)).compatible


def test_slice_is_typed_by_its_index_type_not_its_data():
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    ends = numpy_helper.from_array(np.array([2], np.int64), "ends")
    model = one_node_model("Slice", 18, inputs=("x", "starts", "ends"))
    model.graph.initializer.extend([starts, ends])
    del model.graph.input[1:]
    assert check_model(model).compatible


def contrib_model(op: str) -> onnx.ModelProto:
    model = one_node_model(op, 18)
    model.graph.node[0].domain = "com.microsoft"
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


def test_other_domains_are_reported():
    model = one_node_model("Atan", 18)
    model.graph.node[0].domain = "com.example"
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert rules(check_model(model)) == ["op-not-registered"]
    assert "'com.example' has no kernels" in check_model(model).fallbacks[0].message


def test_contrib_kernels_are_in_the_table():
    assert check_model(contrib_model("FastGelu")).compatible
    assert rules(check_model(contrib_model("NoSuchContribOp"))) == ["op-not-registered"]


def shape_arithmetic_model(batch: int | str) -> onnx.ModelProto:
    """Shape -> Add(small initializer) -> Reshape."""
    nodes = [helper.make_node("Shape", ["x"], ["s"], name="shape"),
             helper.make_node("Add", ["s", "one"], ["s1"], name="shape_plus_zero"),
             helper.make_node("Reshape", ["x", "s1"], ["y"], name="reshape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(np.zeros(2, np.int64), "one")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_small_shape_computations_on_the_cpu_are_notes_not_failures():
    """With a dynamic batch the Shape runs, and onnxruntime runs the Add after it on the CPU by design."""
    report = check_model(shape_arithmetic_model("N"))
    assert report.compatible
    assert [(f.rule, f.node) for f in report.host_by_design] == [("host-shape-node", "shape_plus_zero")]


def test_shape_of_a_static_tensor_is_folded_at_load():
    """A static shape is constant folded, and the Add with it: nothing is left to place on the CPU."""
    report = check_model(shape_arithmetic_model(2))
    assert report.compatible and not report.findings


def test_constant_nodes_and_what_folds_from_them_are_not_placed():
    """Constant nodes become initializers at load, and constant folding computes the nodes fed only by them
    (here an Atan, which has no CUDA kernel) once, on the CPU: none of them is a fallback. The same Atan on a
    graph input is one."""
    value = numpy_helper.from_array(np.linspace(0, 1, 4).astype(np.float64), "value")
    nodes = [helper.make_node("Constant", [], ["c64"], name="constant_f64", value=value),
             helper.make_node("Atan", ["c64"], ["a64"], name="folded_atan"),
             helper.make_node("Cast", ["a64"], ["a32"], name="folded_cast", to=TensorProto.FLOAT),
             helper.make_node("Constant", [], ["one"], name="constant_f32", value_float=1.0),
             helper.make_node("Add", ["a32", "one"], ["k"], name="folded_add"),
             helper.make_node("Mul", ["x", "k"], ["y"], name="runs_on_cuda")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    report = check_model(model)
    assert report.compatible and not report.findings
    model.graph.node[1].input[0] = "x64"  # the Atan now depends on an input: it runs, and on the CPU
    model.graph.input.append(helper.make_tensor_value_info("x64", TensorProto.DOUBLE, [4]))
    assert [(f.rule, f.node) for f in check_model(model).fallbacks] == [("op-not-registered", "folded_atan")]


def test_an_initializer_that_is_also_a_graph_input_is_not_constant():
    """A user may feed such an initializer, so onnxruntime does not fold what depends on it."""
    model = one_node_model("Atan", 18)
    model.graph.initializer.append(numpy_helper.from_array(np.zeros(4, np.float32), "x"))
    assert rules(check_model(model)) == ["op-not-registered"]
    del model.graph.input[:]
    assert check_model(model).compatible


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
    #define CUDA_MS_OP_TYPED_CLASS_NAME(ver, type, name) \\
      ONNX_OPERATOR_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kMSDomain, ver, type, name)
    // opset 1 to 9
    class ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add);
    BuildKernelCreateInfo<ONNX_OPERATOR_VERSIONED_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 7, 12, float, Add)>,
    class ONNX_OPERATOR_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 11, int64_t_float_int64_t, OneHot);
    class ONNX_OPERATOR_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 13, Concat);
    class ONNX_OPERATOR_VERSIONED_TWO_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 19, 20, uint8_t, float, DequantizeLinear);
    #if !defined(DISABLE_FLOAT8_TYPES)
    class ONNX_OPERATOR_TYPED_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 21, Float8E4M3FN, Cast);
    #endif
    #ifdef ENABLE_TRAINING_OPS
    class ONNX_OPERATOR_KERNEL_CLASS_NAME(kCudaExecutionProvider, kOnnxDomain, 1, TrainingOnly);
    #else
    class CUDA_MS_OP_TYPED_CLASS_NAME(1, MLFloat16, FastGelu);
    #endif
    """
    kernels = gen.parse_registrations(source)
    assert kernels == [
        {"op": "Add", "domain": "", "since": 7, "end": 12, "types": ["FLOAT"]},
        {"op": "Cast", "domain": "", "since": 21, "end": None, "types": ["FLOAT8E4M3FN"]},
        {"op": "Concat", "domain": "", "since": 13, "end": None, "types": None},
        {"op": "DequantizeLinear", "domain": "", "since": 19, "end": 20, "types": ["UINT8", "FLOAT"]},
        {"op": "OneHot", "domain": "", "since": 11, "end": None, "types": ["INT64", "FLOAT", "INT64"]},
        {"op": "FastGelu", "domain": "com.microsoft", "since": 1, "end": None, "types": ["FLOAT16"]},
    ]
    shipped = load_table()
    assert "cuda_execution_provider.cc" in shipped.source and "cuda_contrib_kernels.cc" in shipped.source
    assert "1.30.0" in shipped.source
    assert not shipped.ranges("Atan") and shipped.ranges("Sqrt") and shipped.ranges("FastGelu", "com.microsoft")


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
