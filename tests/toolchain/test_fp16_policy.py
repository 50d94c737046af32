"""The fp16 precision policy (exportloss.trt.fp16): what stays float32, and the box family in fp16."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from exportloss import catalog
from exportloss.trt.fp16 import float32_nodes, pixel_inputs, to_float16
from exportloss.trt.runner import FP16_TOLERANCE

MODELS = Path(__file__).resolve().parents[2] / "models"
"""The committed catalog (the drift test keeps it equal to fresh exports)."""
BOX_FAMILY = [f"{layout}_{kind}" for layout in ("pairwise", "aligned") for kind in ("iou", "giou", "diou", "ciou")] + [
    f"{kind}_loss" for kind in ("iou", "giou", "diou", "ciou")]


def box_area_model() -> onnx.ModelProto:
    """area = (x2 - x1) * (y2 - y1); ratio = area / total; y = exp(ratio) + ratio * 0.5; s = ReduceSum(ratio)."""
    nodes = [helper.make_node("Split", ["boxes"], ["x1", "y1", "x2", "y2"], axis=-1, num_outputs=4, name="split"),
             helper.make_node("Sub", ["x2", "x1"], ["w"], name="w"), helper.make_node("Sub", ["y2", "y1"], ["h"], name="h"),
             helper.make_node("Mul", ["w", "h"], ["area"], name="area"),
             helper.make_node("ReduceSum", ["area"], ["total"], keepdims=1, name="total"),
             helper.make_node("Div", ["area", "total"], ["ratio"], name="ratio"),
             helper.make_node("Mul", ["ratio", "half"], ["scaled"], name="scaled"),
             helper.make_node("Exp", ["ratio"], ["e"], name="exp"),
             helper.make_node("Add", ["e", "scaled"], ["y"], name="y")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [8, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 1])],
                              [numpy_helper.from_array(np.array(0.5, np.float32), "half")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_policy_keeps_pixel_scale_and_large_terms_in_float32():
    model = box_area_model()
    assert pixel_inputs(model) == ["boxes"]
    kept = float32_nodes(model)
    # exp(ratio) may exceed fp16's range, so its consumer "y" stays float32 as well.
    assert set(kept) == {"split", "w", "h", "area", "total", "ratio", "exp", "y"}
    assert kept["area"] == "pixel-scale or large input" and kept["total"] == "sum over many elements"
    assert "scaled" not in kept  # the ratio is dimensionless: fp16
    assert float32_nodes(model, pixel=()).keys() == {"total", "ratio", "exp", "y"}


def test_areas_of_4096_px_boxes_survive_the_conversion():
    model = to_float16(box_area_model())
    onnx.checker.check_model(model, full_check=True)
    boxes = np.array([[0, 0, 4096, 4096]] * 4 + [[10, 10, 20, 20]] * 4, np.float32)
    (y,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"boxes": boxes})
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    ratio = (area / area.sum())[:, None]
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_allclose(y, np.exp(ratio) + 0.5 * ratio, rtol=FP16_TOLERANCE)


def test_float32_nodes_read_constants_at_their_float32_value():
    """eps = 1e-7 is 1.19e-7 in fp16 (its subnormal grid): float32 box arithmetic must read the float32 constant,
    also when the same constant feeds an fp16 node (a float32 twin), and in the catalog's own IoU graph."""
    nodes = [helper.make_node("Split", ["boxes"], ["x1", "y1", "x2", "y2"], axis=-1, num_outputs=4, name="split"),
             helper.make_node("Sub", ["x2", "x1"], ["w"], name="w"), helper.make_node("Sub", ["y2", "y1"], ["h"], name="h"),
             helper.make_node("Mul", ["w", "h"], ["area"], name="area"),
             helper.make_node("Add", ["area", "eps"], ["padded"], name="padded"),
             helper.make_node("Div", ["area", "padded"], ["ratio"], name="ratio"),
             helper.make_node("Add", ["ratio", "eps"], ["y"], name="y")]  # an fp16 node reading eps too
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [8, 4])],
                              [helper.make_tensor_value_info("padded", TensorProto.FLOAT, [8, 1]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 1])],
                              [numpy_helper.from_array(np.array(1e-7, np.float32), "eps")])
    model = _convert_quietly(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]))
    boxes = np.array([[0.5, 0.5, 0.5001, 0.5001]] * 8, np.float32)
    padded, _ = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"boxes": boxes})
    area = (boxes[:, 2:3] - boxes[:, 0:1]) * (boxes[:, 3:4] - boxes[:, 1:2])
    np.testing.assert_array_equal(padded, area + np.float32(1e-7))
    iou = _convert_quietly(onnx.load(str(MODELS / "aligned_iou.onnx")))
    tiny = [numpy_helper.to_array(init) for init in iou.graph.initializer if init.data_type == TensorProto.FLOAT]
    assert any(value.size == 1 and value == np.float32(1e-7) for value in tiny)


def pixel_cases(entry, rng):
    """The catalog's random inputs scaled to a 4096-px frame, a full-frame identical pair, and every edge case."""
    shapes = entry.shapes()
    cases = []
    for scale in (1.0, 4096.0 / 100):
        inputs = {k: (v * np.float32(scale)).astype(np.float32) for k, v in entry.random_inputs(shapes, rng).items()}
        cases.append((f"random x{scale:g}", inputs))
    full = {k: np.broadcast_to(np.array([0, 0, 4096, 4096], np.float32), v.shape).copy()
            for k, v in entry.random_inputs(shapes, rng).items()}
    cases.append(("identical 4096-px boxes", full))
    # The edge cases include normalised-small (boxes 1e-4 wide near 0.5, issue 22): box arithmetic and its
    # constants stay float32, so eps (1e-7, which fp16 would round to 1.19e-7) is the graph's own there.
    cases += [(case.name, case.inputs) for case in entry.edge_cases(shapes, rng)]
    return cases


@pytest.mark.parametrize("name", BOX_FAMILY)
def test_box_family_fp16_graphs_verify_in_onnxruntime_on_pixel_and_normalised_boxes(name):
    """onnxruntime CPU runs fp16 kernels where it has them and inserts casts to float32 where not."""
    entry = catalog.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns about constants it rounds
        model = to_float16(onnx.load(str(MODELS / f"{name}.onnx")))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    module = entry.build()
    for case, inputs in pixel_cases(entry, np.random.default_rng(7)):
        got = session.run(entry.output_names, inputs)
        want = entry.reference(module, *(torch.from_numpy(inputs[spec.name]) for spec in entry.inputs))
        for g, w in zip(got, want if isinstance(want, tuple) else (want,)):
            w = w.detach().double().numpy()
            assert g.dtype == np.float32, case
            assert np.array_equal(np.isfinite(g), np.isfinite(w)), case
            finite = np.isfinite(w)
            err = np.abs(g[finite] - w[finite]) - FP16_TOLERANCE * (1 + np.abs(w[finite]))
            assert (err <= 0).all(), f"{case}: worst excess {err.max():.3g}"


# --- the whole catalog: a valid fp16 graph or a one-line refusal --------------------------------------------


def _convert_quietly(model: onnx.ModelProto) -> onnx.ModelProto:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the converter warns about constants it rounds
        return to_float16(model)


@pytest.mark.parametrize("name", catalog.names())
def test_every_catalog_graph_rewrites_to_a_checked_fp16_graph_that_onnxruntime_runs(name):
    entry = catalog.get(name)
    model = _convert_quietly(onnx.load(str(MODELS / f"{name}.onnx")))
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, entry.verification_cases(n_random=1)[0].inputs)
    want = {spec.name: spec.dtype for spec in entry.outputs}
    assert {o.name: str(v.dtype) for o, v in zip(session.get_outputs(), outputs)} == want


def test_casts_of_masks_and_indices_stay_float32_and_the_graph_stays_valid():
    """The converter paired an fp16 Cast of a bool or int64 with the Cast back to float32 before a float32
    consumer and removed both: ReduceSum then read the bool, Add the int64 (cluster_nms, rotated IoU)."""
    nodes = [helper.make_node("Equal", ["labels", "classes"], ["eq"], name="eq"),
             helper.make_node("Cast", ["eq"], ["mask"], to=TensorProto.FLOAT, name="mask"),
             helper.make_node("ReduceSum", ["mask", "axes"], ["count"], keepdims=0, name="count"),
             helper.make_node("Cast", ["labels"], ["index"], to=TensorProto.FLOAT, name="index"),
             helper.make_node("CumSum", ["x", "axis"], ["running"], name="running"),
             helper.make_node("Add", ["running", "index"], ["y"], name="y")]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("labels", TensorProto.INT64, [6]), helper.make_tensor_value_info("x", TensorProto.FLOAT, [6])],
        [helper.make_tensor_value_info("count", TensorProto.FLOAT, []), helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])],
        [numpy_helper.from_array(np.arange(6, dtype=np.int64) % 2, "classes"), numpy_helper.from_array(np.array([0], np.int64), "axes"),
         numpy_helper.from_array(np.array(0, np.int64), "axis")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    kept = float32_nodes(model)
    assert kept["mask"] == kept["index"] == "cast of an integer or boolean"
    converted = _convert_quietly(model)
    onnx.checker.check_model(converted, full_check=True)
    labels, x = np.array([0, 1, 3000, 1, 0, 2049], np.int64), np.ones(6, np.float32)
    count, y = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"labels": labels, "x": x})
    assert count == 4 and y.tolist() == (np.cumsum(x) + labels).tolist()  # 2049 and 3000 are not fp16 numbers


@pytest.mark.parametrize("name", ["fast_nms", "cluster_nms", "cluster_diou_nms"])
def test_fp16_nms_keeps_the_boxes_float32_keeps(name):
    """Scores stay float32: in fp16 distinct scores become ties, and the catalog's NMS graphs kept other boxes."""
    entry = catalog.get(name)
    original = onnx.load(str(MODELS / f"{name}.onnx"))
    sessions = [ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
                for m in (original, _convert_quietly(original))]
    for case in entry.verification_cases(n_random=3)[:3]:
        fp32, fp16 = (session.run(None, case.inputs) for session in sessions)
        for a, b in zip(fp32, fp16):
            np.testing.assert_allclose(b, a, rtol=FP16_TOLERANCE, atol=FP16_TOLERANCE, err_msg=case.name)


def test_a_graph_the_rewrite_cannot_make_valid_is_refused_in_one_line(monkeypatch):
    from exportloss.trt import fp16

    def broken(model, pixel):  # an Add of float16 and int64, as the converter once wrote
        graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "g",
                                  [helper.make_tensor_value_info("a", TensorProto.FLOAT16, [2]),
                                   helper.make_tensor_value_info("b", TensorProto.INT64, [2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2])])
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])

    monkeypatch.setattr(fp16, "_convert", broken)
    with pytest.raises(fp16.Float16Refused) as refused:
        to_float16(onnx.load(str(MODELS / "rotated_iou_loss.onnx")))
    message = str(refused.value)
    assert "\n" not in message and message.startswith("rotated_iou_loss: the fp16 rewrite gives an invalid graph (")
    assert message.endswith("; build it in fp32")


def test_build_engine_fp16_names_a_refused_graph_before_building_anything(monkeypatch, capsys):
    """On TensorRT 11 (no BuilderFlag.FP16) fp16 engines come from the rewrite: a refusal stops the run first."""
    from exportloss.cli import main
    from exportloss.trt import engine, fp16

    tensorrt_11 = type("tensorrt", (), {"BuilderFlag": type("BuilderFlag", (), {"TF32": "TF32"})})
    built = []
    monkeypatch.setattr(engine, "require_tensorrt", lambda: tensorrt_11)
    monkeypatch.setattr(engine, "build_engine", lambda *args, **kwargs: built.append(args))
    monkeypatch.setattr(fp16, "_convert", lambda model, pixel: onnx.ModelProto() if "rotated" in fp16.metadata(model).get(
        "exportloss.graph", "") else model)
    assert main(["build-engine", "pairwise_iou", "rotated_iou_loss", "--precision", "fp16", "--models", str(MODELS)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("exportloss build-engine: error: rotated_iou_loss: --precision fp16: the fp16 rewrite")
    assert built == []
