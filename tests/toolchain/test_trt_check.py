"""The static TensorRT check: every catalog graph passes for every supported version, and each rule
catches a small hand-built graph that breaks it (so the check can fail)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from exportloss import catalog
from exportloss.cli import main
from exportloss.trt import TRT_VERSIONS, ShapeRange, check_model, check_versions, load_support, make_profile
from exportloss.trt.support import table_for_installed

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_TABLE = Path("/work/shared/reference/tensorrt-10.1-onnx-operators.md")
F = TensorProto.FLOAT
I64 = TensorProto.INT64


def value(name, elem_type=F, shape=(4,)):
    return helper.make_tensor_value_info(name, elem_type, list(shape) if shape is not None else None)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(nodes, inputs, outputs, initializers=(), opset=18, functions=(), domains=()):
    graph = helper.make_graph(list(nodes), "hand_built", list(inputs), list(outputs), list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    return helper.make_model(graph, opset_imports=opsets, functions=list(functions))


def findings(m, rule, version="10.15", **kwargs):
    report = check_model(m, version, **kwargs)
    return report, [f for f in report.findings if f.rule == rule]


# --- the whole catalog -----------------------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("name", catalog.names())
def test_every_catalog_graph_passes_every_trt_version(exported, name, exporter):
    path = exported(name, exporter)
    reports = check_versions(path)
    assert [r.trt_version for r in reports] == list(TRT_VERSIONS)
    float64_by_design = any(spec.dtype == "float64" for spec in catalog.get(name).inputs)  # coco_match: for onnxruntime
    for report in reports:
        if float64_by_design:  # TensorRT has no float64: check-trt must say so, and find nothing else
            assert not report.compatible and {f.rule for f in report.errors} == {"double"}
        else:
            assert report.compatible, [str(f) for f in report.errors]
        assert report.opset == 18


# --- the support tables ----------------------------------------------------------------------------


def test_tables_record_version_source_and_documented_differences():
    tables = {v: load_support(v) for v in TRT_VERSIONS}
    assert [(t.tensorrt, t.opset_min, t.opset_max) for t in tables.values()] == [("10.1", 9, 20), ("10.15", 9, 24), ("11", 9, 25)]
    assert all("onnx-tensorrt" in t.source for t in tables.values())
    assert [t.precision_flags for t in tables.values()] == [True, True, False]
    for table in tables.values():
        for op in ("SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss", "Unique", "SequenceAt", "Optional"):
            assert not table.get(op).supported, (table.tensorrt, op)
        assert table.get("Atan").supported and table.get("GatherElements").supported
    squeeze_levels = [t.get("Squeeze").checks[0]["level"] for t in tables.values()]
    assert squeeze_levels == ["initializer", "build_time", "build_time"]


@pytest.mark.skipif(not REFERENCE_TABLE.exists(), reason="the parser's table is not at /work/shared/reference")
def test_committed_tables_are_what_the_script_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("make_trt_tables", ROOT / "tools" / "make_trt_tables.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    operators, opset = script.parse_table(REFERENCE_TABLE.read_text())
    assert opset == (9, 20) and len(operators) > 150
    for version in TRT_VERSIONS:
        committed = json.loads((ROOT / "exportloss" / "trt" / f"tensorrt-{version}.json").read_text())
        assert committed == script.table_for(version, operators, opset)


@pytest.mark.parametrize("installed, table", [("10.1.0.27", "10.1"), ("10.8.0.43", "10.1"), ("10.15.1.29", "10.15"),
                                              ("10.16.1.11", "10.15"), ("11.4.0.106", "11")])
def test_installed_version_maps_to_the_covering_table(installed, table):
    assert table_for_installed(installed) == table


def test_unknown_versions_are_rejected():
    with pytest.raises(ValueError, match="trt_version must be one of 10.1, 10.15, 11; got '9.0'"):
        load_support("9.0")
    with pytest.raises(ValueError, match="older than 10.1"):
        table_for_installed("8.6.1")


# --- each rule on a hand-built graph -----------------------------------------------------------------


@pytest.mark.parametrize("op", ["SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"])
def test_unsupported_loss_operators(op):
    node = helper.make_node(op, ["scores", "labels"], ["loss"], name="the_loss")
    m = model([node], [value("scores", F, (4, 3)), value("labels", I64, (4,))], [value("loss", F, ())])
    for version in TRT_VERSIONS:
        report, found = findings(m, "unsupported-op", version)
        assert not report.compatible
        assert [(f.node, f.op, f.severity) for f in found] == [("the_loss", op, "error")]


def test_unique_unlisted_and_ml_domain_operators_are_unsupported():
    nodes = [
        helper.make_node("Unique", ["x"], ["u"], name="unique"),
        helper.make_node("NotAnOnnxOp", ["x"], ["y"], name="unlisted"),
        helper.make_node("Binarizer", ["x"], ["b"], name="ml", domain="ai.onnx.ml"),
    ]
    m = model(nodes, [value("x")], [value("u", F, None), value("y"), value("b")], domains=["ai.onnx.ml"])
    report, found = findings(m, "unsupported-op")
    assert [f.node for f in found] == ["unique", "unlisted", "ml"]
    assert "not in TensorRT 10.15's operator table" in found[1].message


@pytest.mark.parametrize("opset, failing", [(8, {"10.1", "10.15", "11"}), (21, {"10.1"}), (25, {"10.1", "10.15"}), (18, set())])
def test_opset_range(opset, failing):
    m = model([helper.make_node("Add", ["x", "x"], ["y"])], [value("x")], [value("y")], opset=opset)
    failed = {r.trt_version for r in check_versions(m) if any(f.rule == "opset" for f in r.errors)}
    assert failed == failing


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "Squeeze", "Unsqueeze"])
def test_axes_that_are_graph_inputs_fail(op):
    node = helper.make_node(op, ["x", "axes"], ["y"], name="n")
    m = model([node], [value("x", F, (4, 1)), value("axes", I64, (1,))], [value("y", F, None)])
    for version in TRT_VERSIONS:
        report, found = findings(m, "constant-input", version)
        assert [f.severity for f in found] == ["error"] and "`axes` input 'axes'" in found[0].message


def test_axes_from_initializers_constants_and_attributes_pass():
    nodes = [
        helper.make_node("Constant", [], ["axes_c"], value=const("v", np.array([1], np.int64))),
        helper.make_node("ReduceSum", ["x", "axes_i"], ["s"]),
        helper.make_node("Squeeze", ["x", "axes_c"], ["q"]),
    ]
    m = model(nodes, [value("x", F, (4, 1))], [value("s", F, None), value("q", F, None)], [const("axes_i", np.array([0], np.int64))])
    assert all(r.compatible and not r.findings for r in check_versions(m))
    legacy = model([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1])], [value("x", F, (4, 1))], [value("y", F, None)], opset=13)
    assert all(r.compatible for r in check_versions(legacy))


def test_squeeze_axes_folded_from_constants_pass_from_10_15_only():
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),  # [4, 1]
        helper.make_node("Gather", ["shape", "zero"], ["four"]),  # 4
        helper.make_node("Sub", ["four", "three"], ["axes"]),  # [1]
        helper.make_node("Squeeze", ["x", "axes"], ["y"], name="squeeze"),
    ]
    inits = [const("zero", np.array([0], np.int64)), const("three", np.array([3], np.int64))]
    m = model(nodes, [value("x", F, (4, 1))], [value("y", F, None)], inits)
    verdicts = {r.trt_version: [f.rule for f in r.errors] for r in check_versions(m)}
    assert verdicts == {"10.1": ["constant-input"], "10.15": [], "11": []}


def topk_model(k_source, k_value=None, sorted_=1, x_shape=(2, 5000)):
    nodes = list(k_source)
    nodes.append(helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk", sorted=sorted_))
    inits = [const("k", np.array([k_value], np.int64))] if k_value is not None else []
    inputs = [value("x", F, x_shape)] + ([value("k", I64, (1,))] if not k_source and k_value is None else [])
    return model(nodes, inputs, [value("values", F, None), value("indices", I64, None)], inits)


def test_topk_rules():
    _, found = findings(topk_model([]), "constant-input")
    assert "must be a build-time constant" in found[0].message
    _, found = findings(topk_model([], k_value=3840), "constant-input")
    assert found[0].message == "`K` input is 3840; TensorRT needs it below 3840"
    report, found = findings(topk_model([], k_value=100, sorted_=0), "attribute")
    assert not report.compatible and found[0].message == "sorted=0 is not supported; TensorRT needs 1"
    assert all(r.compatible and not r.findings for r in check_versions(topk_model([], k_value=3839)))


def test_topk_k_folded_from_static_shapes_is_evaluated():
    # K = min(x.shape[1], 4000): a build-time constant that TensorRT still rejects for 5000 columns.
    fold = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Slice", ["shape", "one", "two"], ["cols"]),
        helper.make_node("Min", ["cols", "cap"], ["k"]),
    ]
    caps = [const("one", np.array([1], np.int64)), const("two", np.array([2], np.int64))]
    for cap, columns, ok in ((4000, 5000, False), (4000, 300, True), (100, 5000, True)):
        m = topk_model(fold, x_shape=(2, columns))
        m.graph.initializer.extend([*caps, const("cap", np.array([cap], np.int64))])
        report, found = findings(m, "constant-input")
        assert report.compatible == ok, (cap, columns, [str(f) for f in found])
        if not ok:
            assert "is 4000" in found[0].message


def test_onehot_depth_must_be_a_build_time_constant():
    node = helper.make_node("OneHot", ["labels", "depth", "values"], ["y"], name="onehot")
    inits = [const("values", np.array([0.0, 1.0], np.float32))]
    dynamic = model([node], [value("labels", I64, (4,)), value("depth", I64, (1,))], [value("y", F, None)], inits)
    report, found = findings(dynamic, "constant-input")
    assert not report.compatible and found[0].node == "onehot" and "`depth`" in found[0].message
    static = model([node], [value("labels", I64, (4,))], [value("y", F, None)], [*inits, const("depth", np.array([3], np.int64))])
    assert all(r.compatible for r in check_versions(static))


def scatter_model(op, reduction):
    attrs = {"reduction": reduction} if reduction else {}
    node = helper.make_node(op, ["data", "indices", "updates"], ["y"], name="scatter", **attrs)
    indices_shape = (2, 1) if op == "ScatterND" else (2,)
    updates_shape = (2,)
    return model([node], [value("data"), value("indices", I64, indices_shape), value("updates", F, updates_shape)], [value("y")])


@pytest.mark.parametrize("reduction", ["add", "mul", "max", "min"])
def test_scatternd_with_reduction_is_incompatible(reduction):
    for version in TRT_VERSIONS:
        report, found = findings(scatter_model("ScatterND", reduction), "attribute", version)
        assert not report.compatible and f"reduction={reduction!r}" in found[0].message
    assert all(r.compatible for r in check_versions(scatter_model("ScatterND", "none")))
    assert all(r.compatible for r in check_versions(scatter_model("ScatterND", None)))


def test_scatter_elements_with_reduction_needs_the_plugin():
    report, found = findings(scatter_model("ScatterElements", "add"), "plugin")
    assert report.compatible and [f.severity for f in found] == ["plugin"]
    assert "ScatterElements plugin" in found[0].message and report.verdict == "PASS (1 plugin)"
    assert not check_model(scatter_model("ScatterElements", None)).findings


def if_model(then_name, else_name, else_shape, inner_op="Identity"):
    def branch(out, shape, op):
        node = helper.make_node(op, ["x"] if op == "Identity" else ["x", "x"], [out])
        return helper.make_graph([node], f"branch_{out}", [], [value(out, F, shape)])

    node = helper.make_node("If", ["cond"], ["y"], name="the_if",
                            then_branch=branch(then_name, (4,), "Identity"), else_branch=branch(else_name, else_shape, inner_op))
    return model([node], [value("cond", TensorProto.BOOL, ()), value("x")], [value("y", F, None)])


def test_if_branch_restrictions():
    assert all(r.compatible and not r.findings for r in check_versions(if_model("a", "b", (4,))))
    report, found = findings(if_model("same", "same", (4,)), "if-branches")
    assert not report.compatible and "both branches is named 'same'" in found[0].message
    report, found = findings(if_model("a", "b", (4, 1)), "if-branches")
    assert not report.compatible and "rank 1 in then_branch and 2 in else_branch" in found[0].message


def test_subgraphs_are_checked_recursively():
    report, found = findings(if_model("a", "b", (4,), inner_op="SoftmaxCrossEntropyLoss"), "unsupported-op")
    assert not report.compatible and found[0].where == "graph/the_if.else_branch"


def loop_model(trip_count=None, scan=True, condition="pass", grow=False, initial_cond=True):
    """A Loop over a carried [4] vector with an optional scan output (what an unrolled NMS might export)."""
    body_nodes = [helper.make_node("Add", ["v_in", "v_in"], ["v_next"])]
    if grow:
        body_nodes = [helper.make_node("Concat", ["v_in", "v_in"], ["v_next"], axis=0)]
    cond_out = "cond_in"
    if condition == "identity":
        body_nodes.append(helper.make_node("Identity", ["cond_in"], ["cond_out"]))
        cond_out = "cond_out"
    elif condition == "data":
        body_nodes.append(helper.make_node("ReduceMax", ["v_in"], ["vmax"], keepdims=0))
        body_nodes.append(helper.make_node("Less", ["vmax", "limit"], ["cond_out"]))
        cond_out = "cond_out"
    outputs = [value(cond_out, TensorProto.BOOL, ()), value("v_next", F, None)]
    if scan:
        body_nodes.append(helper.make_node("Identity", ["v_in"], ["scanned"]))
        outputs.append(value("scanned", F, None))
    body = helper.make_graph(body_nodes, "body", [value("i", I64, ()), value("cond_in", TensorProto.BOOL, ()), value("v_in", F, (4,))],
                             outputs)
    inits = [const("limit", np.array(100.0, np.float32)), const("cond", np.array(initial_cond))]
    inputs = [value("x")]
    if trip_count is None:
        inputs.append(value("m", I64, ()))
    else:
        inits.append(const("m", np.array(trip_count, np.int64)))
    loop_outputs = ["v_final", "stack"] if scan else ["v_final"]
    node = helper.make_node("Loop", ["m", "cond", "x"], loop_outputs, name="the_loop", body=body)
    return model([node], inputs, [value(o, F, None) for o in loop_outputs], inits)


def test_loop_with_constant_trip_count_and_passthrough_condition_passes():
    for condition in ("pass", "identity"):
        reports = check_versions(loop_model(trip_count=3, condition=condition))
        assert all(r.compatible and not r.findings for r in reports), [str(f) for r in reports for f in r.findings]
    assert all(r.compatible for r in check_versions(loop_model(trip_count=None, scan=False)))


def test_loop_scan_output_of_dynamic_length_fails():
    report, found = findings(loop_model(trip_count=None), "loop")
    assert not report.compatible and "trip count is not a build-time constant" in found[0].message
    report, found = findings(loop_model(trip_count=3, condition="data"), "loop")
    assert not report.compatible and "can stop before its trip count" in found[0].message
    report, found = findings(loop_model(trip_count=3, initial_cond=False), "loop")
    assert not report.compatible


def test_loop_carried_shape_must_not_change():
    report, found = findings(loop_model(trip_count=3, scan=False, grow=True), "loop")
    assert not report.compatible
    assert "changes shape from [4] to [8]" in found[0].message


def test_double_tensors_are_incompatible():
    nodes = [helper.make_node("Cast", ["x"], ["x64"], to=TensorProto.DOUBLE, name="to_double"),
             helper.make_node("Cast", ["x64"], ["y"], to=F)]
    report, found = findings(model(nodes, [value("x")], [value("y")]), "double")
    assert not report.compatible and [(f.node, f.op) for f in found] == [("to_double", "Cast")]
    report, found = findings(model([helper.make_node("Neg", ["x"], ["y"])], [value("x", TensorProto.DOUBLE)],
                                   [value("y", TensorProto.DOUBLE)]), "double")
    assert {f.message.split("'")[1] for f in found} == {"x", "y"}


def test_dynamic_inputs_need_a_profile():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [value("x", F, ("batch", 4))], [value("y", F, ("batch", 4))])
    report, found = findings(m, "dynamic-input")
    assert not report.compatible and "input 'x' has dynamic dimensions [?x4]" in found[0].message
    profile = make_profile({"x": (1, 4)}, {"x": (8, 4)}, {"x": (64, 4)})
    assert profile == {"x": ShapeRange((1, 4), (8, 4), (64, 4))}
    assert check_model(m, profile=profile).compatible
    with pytest.raises(ValueError, match="static dimension 1 to 5; the model fixes it at 4"):
        check_model(m, profile=make_profile(opt_shapes={"x": (8, 5)}))
    with pytest.raises(ValueError, match="model's inputs are x"):
        check_model(m, profile=make_profile(opt_shapes={"y": (8, 4)}))
    with pytest.raises(ValueError, match="min <= opt <= max"):
        make_profile({"x": (9, 4)}, {"x": (8, 4)})


def test_constant_attributes_and_extra_outputs():
    sparse = helper.make_sparse_tensor(const("vals", np.array([1.0], np.float32)), const("idx", np.array([0], np.int64)), [4])
    nodes = [helper.make_node("Constant", [], ["c"], sparse_value=sparse, name="sparse"),
             helper.make_node("MaxPool", ["img"], ["pooled", "argmax"], kernel_shape=[2, 2], name="pool")]
    m = model(nodes, [value("img", F, (1, 1, 4, 4))], [value("c", F, None), value("pooled", F, None), value("argmax", I64, None)])
    report = check_model(m)
    assert {(f.rule, f.node) for f in report.errors} == {("forbidden-attr", "sparse"), ("first-output-only", "pool")}
    notes = report.by_severity("note")
    assert {f.message for f in notes} == {"not checked statically: 2D or 3D pooling only",
                                          "not checked statically: `dilations` must be empty or all ones"}


def test_custom_domain_operators_need_a_plugin_and_local_functions_are_checked():
    custom = helper.make_node("EfficientNMS_TRT", ["x"], ["y"], domain="TRT", name="nms")
    report, found = findings(model([custom], [value("x")], [value("y")], domains=["TRT"]), "plugin")
    assert report.compatible and found[0].message.startswith("custom operator TRT::EfficientNMS_TRT")
    body = helper.make_function("local", "uniq", ["a"], ["b"], [helper.make_node("Unique", ["a"], ["b"], name="inner")],
                                [helper.make_opsetid("", 18)])
    call = helper.make_node("uniq", ["x"], ["y"], domain="local", name="call")
    report, found = findings(model([call], [value("x")], [value("y", F, None)], functions=[body], domains=["local"]), "unsupported-op")
    assert not report.compatible and (found[0].node, found[0].where) == ("inner", "graph/call")


# --- the command line ----------------------------------------------------------------------------------


def test_check_trt_cli_prints_a_verdict_table_and_fails_on_incompatible_files(tmp_path, capsys):
    assert main(["check-trt", "pairwise_iou", "--models", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "pairwise_iou" in out and "10.1" in out and "10.15" in out and "PASS" in out
    bad = tmp_path / "bad.onnx"
    onnx.save(scatter_model("ScatterND", "add"), str(bad))
    assert main(["check-trt", str(bad), "--trt-version", "10.1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "reduction='add'" in out and "scatter" in out


def test_check_trt_cli_usage_errors(tmp_path, capsys):
    assert main(["check-trt", str(tmp_path / "missing.onnx")]) == 2
    assert main(["check-trt", "pairwise_iou", "--trt-version", "9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "does not exist" in err and "trt-version" in err
