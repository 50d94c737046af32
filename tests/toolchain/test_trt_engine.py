"""Engine building, running and verification. The GPU tests skip, with the reason, where TensorRT or a
CUDA device is missing; the rest (fp16 conversion, profiles, clean exits) run everywhere."""

from __future__ import annotations

import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from exportloss import catalog
from exportloss.cli import main
from exportloss.reference.boxes import pairwise_reference
from exportloss.trt import ShapeRange, make_profile
from exportloss.trt import _cuda
from exportloss.trt.engine import EngineBuildError, TensorRTUnavailable, build_engine, build_plan, require_tensorrt
from exportloss.trt.fp16 import to_float16
from exportloss.tolerance import Tolerance
from exportloss.backends.ort import OrtBackend
from exportloss.trt.runner import FP16_TOLERANCE, EngineBackend, EngineRunner, engine_file_name
from exportloss.verify import verify


def unavailable_reason() -> str | None:
    try:
        require_tensorrt()
    except TensorRTUnavailable as err:
        return str(err)
    return None


REASON = unavailable_reason()
needs_trt = pytest.mark.skipif(REASON is not None, reason=f"TensorRT cannot run here: {REASON}")


def relu_model(batch="batch"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "two"], ["y"])]
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    return helper.make_model(helper.make_graph(nodes, "relu", [x], [y], [two]), opset_imports=[helper.make_opsetid("", 18)])


# --- everywhere ------------------------------------------------------------------------------------------


@pytest.mark.skipif(REASON is None, reason="TensorRT is available: the clean-exit path does not apply")
@pytest.mark.parametrize("argv", [["build-engine", "pairwise_iou"], ["verify", "--backend", "trt", "pairwise_iou"],
                                  ["build-engine", "--all", "--precision", "fp16"], ["build-engine", "--all", "--tf32"],
                                  ["verify", "--backend", "trt", "--tf32", "pairwise_iou"]])
def test_engine_commands_exit_with_one_line_without_tensorrt(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"exportloss {argv[0]}: error: ")
    assert "Traceback" not in captured.err + captured.out


def test_ort_trt_backend_exits_with_one_line_without_the_provider(capsys):
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has the TensorRT execution provider here")
    assert main(["verify", "--backend", "ort-trt", "pairwise_iou"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no TensorrtExecutionProvider" in err


def test_missing_tensorrt_and_missing_driver_are_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(TensorRTUnavailable, match=r"TensorRT is not installed \(pip install 'exportloss\[trt\]'"):
        require_tensorrt()
    monkeypatch.setattr(_cuda, "LIBRARY", "libcuda-that-does-not-exist.so.1")
    with pytest.raises(TensorRTUnavailable, match="no CUDA driver \\(libcuda-that-does-not-exist.so.1 not found\\)"):
        _cuda.CudaDriver()


def test_dynamic_inputs_need_a_profile_before_any_build():
    with pytest.raises(ValueError, match=r"dynamic inputs need an optimization profile .*: x \[\?x4\]"):
        build_plan(relu_model())
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'fp16'; got 'int8'"):
        build_plan(relu_model(4), precision="int8")


def test_profile_fills_missing_bounds():
    assert make_profile(opt_shapes={"x": (8, 4)}) == {"x": ShapeRange((8, 4), (8, 4), (8, 4))}
    assert make_profile({"x": (1, 4)}, max_shapes={"x": (32, 4)}) == {"x": ShapeRange((1, 4), (32, 4), (32, 4))}


def test_engine_backend_precision_tolerances_and_plan_names():
    entry = catalog.get("pairwise_iou")
    assert EngineBackend("fp32").tolerance(entry) == entry.tolerance
    assert EngineBackend("fp16").tolerance(entry) == Tolerance(FP16_TOLERANCE, FP16_TOLERANCE)
    assert [EngineBackend(p, tf32=t).precision for p, t in (("fp32", False), ("fp32", True), ("fp16", False))] == ["fp32", "tf32", "fp16"]
    with pytest.raises(ValueError, match="tf32 applies to fp32 engines only"):
        EngineBackend("fp16", tf32=True)
    assert [engine_file_name("g", p) for p in ("fp32", "tf32", "fp16")] == ["g.plan", "g.tf32.plan", "g.fp16.plan"]


@pytest.mark.skipif(REASON is None, reason="TensorRT is available: the unavailable path does not apply")
def test_engine_rows_are_unavailable_not_pass_without_tensorrt(exported):
    rows = verify(exported("pairwise_iou"), EngineBackend(), against=OrtBackend.cpu())
    assert [(row.backend, row.against) for row in rows] == [("trt", "reference"), ("trt", "ort-cpu")]
    assert all(not row.passed and row.unavailable == REASON and row.cases == 0 and row.provider == "" for row in rows)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_fp16_graph_keeps_pixel_arithmetic_in_float32_and_ratios_in_fp16(exported, exporter):
    """What TensorRT 11 builds for --precision fp16, run in onnx.reference (true fp16 arithmetic) on 4096-px boxes."""
    model = to_float16(onnx.load(str(exported("pairwise_ciou", exporter))))
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    kinds = {v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    assert {TensorProto.FLOAT, TensorProto.FLOAT16} <= kinds, "mixed precision: pixel terms float32, ratios fp16"
    assert all(v.type.tensor_type.elem_type == TensorProto.FLOAT for v in (*model.graph.input, *model.graph.output))
    producers = {out: n for n in inferred.graph.node for out in n.output}
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    products = [n for n in inferred.graph.node if n.op_type == "Mul" and all(
        producers.get(i) is not None and producers[i].op_type == "Sub" for i in n.input)]
    assert products and all(types[n.output[0]] == TensorProto.FLOAT for n in products), "box areas must stay float32"
    rng = np.random.default_rng(3)
    xy1, xy2 = rng.uniform(0, 3000, (2, 2, 128, 2)), rng.uniform(0, 3000, (2, 2, 96, 2))  # the catalog's shapes
    boxes1 = np.concatenate([xy1[0], xy1[0] + 1 + xy1[1] / 3], -1).clip(0, 4096).astype(np.float32)
    boxes2 = np.concatenate([xy2[0], xy2[0] + 1 + xy2[1] / 3], -1).clip(0, 4096).astype(np.float32)
    boxes2[:, 0] = boxes1[:, 0] = [0, 0, 4096, 4096]
    (got,) = ReferenceEvaluator(model).run(None, {"boxes1": boxes1, "boxes2": boxes2})
    want = pairwise_reference(torch.from_numpy(boxes1).double(), torch.from_numpy(boxes2).double(), "ciou", "xyxy", 1e-7).numpy()
    assert got.dtype == np.float32 and np.isfinite(got).all()
    err = np.abs(got - want)
    assert err.max() <= FP16_TOLERANCE * (1 + np.abs(want)).max()
    assert err.max() > 1e-6, "part of the graph must compute in fp16: the conversion did nothing"


def test_fp16_conversion_rewrites_constants_and_casts():
    nodes = [helper.make_node("Constant", [], ["c"], value_float=0.1),
             helper.make_node("Cast", ["i"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Add", ["f", "c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("i", TensorProto.INT64, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    model = to_float16(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    onnx.checker.check_model(model, full_check=True)
    (y,) = ReferenceEvaluator(model).run(None, {"i": np.array([1, 2, 2048], np.int64)})
    # The cast of the int64 stays float32 (2049 is no fp16 number), and so does the Add that reads it, which reads
    # the constant at its float32 value too (0.1, not fp16's 0.0999755859375): 1.1, 2.1 and 2048.1 in float32.
    np.testing.assert_array_equal(y, np.array([1, 2, 2048], np.float32) + np.float32(0.1))


# --- on a machine with TensorRT and a CUDA device -------------------------------------------------------------


@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("name", ["pairwise_giou", "ciou_loss"])
def test_fp32_engine_verifies_against_reference_and_onnxruntime(exported, name):
    rows = verify(exported(name), EngineBackend(), against=OrtBackend.cpu())
    assert [(row.backend, row.precision, row.against) for row in rows] == [("trt", "fp32", "reference"), ("trt", "fp32", "ort-cpu")]
    assert all(row.passed for row in rows), [row.failures for row in rows]
    assert all(row.cases >= 4 and row.provider.startswith("TensorRT ") for row in rows)


@pytest.mark.gpu
@needs_trt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_dynamic_engine_runs_at_every_profile_shape(tmp_path, precision):
    profile = make_profile({"x": (1, 4)}, {"x": (8, 4)}, {"x": (32, 4)})
    result = build_engine(relu_model(), tmp_path / "relu.plan", precision, profile=profile)
    runner = EngineRunner(result.path.read_bytes())
    try:
        for rows in (1, 8, 32):
            x = np.random.default_rng(rows).normal(size=(rows, 4)).astype(np.float32)
            y = runner.run({"x": x})["y"]
            np.testing.assert_allclose(y, 2 * np.maximum(x, 0), rtol=1e-3 if precision == "fp16" else 1e-6)
    finally:
        runner.close()


@pytest.mark.gpu
@needs_trt
def test_parser_errors_name_the_node(tmp_path):
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [4, 3])
    labels = helper.make_tensor_value_info("labels", TensorProto.INT64, [4])
    loss = helper.make_tensor_value_info("loss", TensorProto.FLOAT, [])
    node = helper.make_node("SoftmaxCrossEntropyLoss", ["scores", "labels"], ["loss"], name="the_loss")
    model = helper.make_model(helper.make_graph([node], "ce", [scores, labels], [loss]), opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(EngineBuildError, match=r"node 0 \(the_loss, SoftmaxCrossEntropyLoss\)"):
        build_engine(model, tmp_path / "ce.plan")
    assert not (tmp_path / "ce.plan").exists()


@pytest.mark.gpu
@needs_trt
def test_cli_builds_then_verifies_saved_plans(tmp_path, exported, capsys):
    models = exported("aligned_diou").parent
    assert main(["build-engine", "aligned_diou", "--models", str(models), "--engines", str(tmp_path)]) == 0
    assert (tmp_path / "aligned_diou.plan").stat().st_size > 0
    assert main(["verify", "--backend", "trt", "--against", "ort-cpu", "aligned_diou", "--models", str(models),
                 "--engines", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ort-cpu" in out and "2 passed, 0 failed" in out


# --- the TensorRT 10 / 11 branches of the builder, against a stand-in for the tensorrt module ------------------


class _Recorder:
    """Stands in for the few tensorrt objects build_plan touches and records what it asks of them."""

    def __init__(self, has_fp16_flag: bool, parser_error: tuple | None = None):
        self.calls: list[tuple] = []
        self.parsed: onnx.ModelProto | None = None
        flags = ["TF32", "FP16"] if has_fp16_flag else ["TF32"]
        self.BuilderFlag = type("BuilderFlag", (), {f: f for f in flags})
        self.MemoryPoolType = type("MemoryPoolType", (), {"WORKSPACE": "WORKSPACE"})
        severity = type("Severity", (), {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2})
        self.ILogger = type("ILogger", (), {"Severity": severity, "__init__": lambda self: None})
        self.parser_error = parser_error

    def __getattr__(self, name):  # any other object: a recorder of method calls
        def method(*args):
            self.calls.append((name, *args))
            if name == "parse":
                self.parsed = onnx.load_from_string(args[0])
                return self.parser_error is None
            if name == "get_error":
                node, node_name, op, desc = self.parser_error
                return type("E", (), {"node": lambda s: node, "node_name": lambda s: node_name, "node_operator": lambda s: op,
                                      "desc": lambda s: desc, "code": lambda s: "UNSUPPORTED_NODE"})()
            if name == "build_serialized_network":
                return b"plan"
            return self

        return method

    @property
    def num_errors(self):
        return 1

    def Builder(self, logger):  # noqa: N802 - the tensorrt name
        return self

    def OnnxParser(self, network, logger):  # noqa: N802
        return self


def _fake_tensorrt(monkeypatch, recorder):
    from exportloss.trt import engine

    monkeypatch.setattr(engine, "require_tensorrt", lambda: recorder)


@pytest.mark.parametrize("has_fp16_flag", [True, False], ids=["tensorrt-10", "tensorrt-11"])
def test_fp16_uses_the_builder_flag_on_10_and_an_fp16_graph_on_11(monkeypatch, has_fp16_flag):
    recorder = _Recorder(has_fp16_flag)
    _fake_tensorrt(monkeypatch, recorder)
    profile = make_profile({"x": (1, 4)}, {"x": (8, 4)}, {"x": (32, 4)})
    assert build_plan(relu_model(), "fp16", workspace_mib=64, profile=profile) == b"plan"
    calls = {call[0]: call[1:] for call in recorder.calls}
    assert calls["set_memory_pool_limit"] == ("WORKSPACE", 64 << 20) and calls["clear_flag"] == ("TF32",)
    assert calls["set_shape"] == ("x", (1, 4), (8, 4), (32, 4))
    casts_to_fp16 = [n for n in recorder.parsed.graph.node if n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT16]
    if has_fp16_flag:
        assert calls["set_flag"] == ("FP16",) and casts_to_fp16 == []
    else:
        assert "set_flag" not in calls and len(casts_to_fp16) == 1
        assert recorder.parsed.graph.initializer[0].data_type == TensorProto.FLOAT16


def test_fp32_sets_no_precision_flag(monkeypatch):
    recorder = _Recorder(True)
    _fake_tensorrt(monkeypatch, recorder)
    build_plan(relu_model(4))
    assert [c[0] for c in recorder.calls].count("set_flag") == 0
    assert "set_shape" not in [c[0] for c in recorder.calls]


@pytest.mark.parametrize("tf32", [False, True])
def test_fp32_clears_tf32_unless_asked_for(monkeypatch, tf32):
    """TensorRT 10 allows TF32 for float32 layers by default; fp32 engines clear it unless --tf32."""
    recorder = _Recorder(True)
    _fake_tensorrt(monkeypatch, recorder)
    build_plan(relu_model(4), tf32=tf32)
    cleared = [c[1:] for c in recorder.calls if c[0] == "clear_flag"]
    assert cleared == ([] if tf32 else [("TF32",)])
    with pytest.raises(ValueError, match="tf32 applies to fp32 engines only"):
        build_plan(relu_model(4), "fp16", tf32=True)


def test_parser_errors_are_reported_per_node(monkeypatch):
    _fake_tensorrt(monkeypatch, _Recorder(True, parser_error=(1, "/Mul_1", "Mul", "type mismatch")))
    with pytest.raises(EngineBuildError, match=r"rejected the graph:\n  node 1 \(/Mul_1, Mul\): type mismatch \[UNSUPPORTED_NODE\]"):
        build_plan(relu_model(4))
