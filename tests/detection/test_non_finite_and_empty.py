"""Non-finite and empty input of the detection graphs and center_update: the documented policy, eager and in onnxruntime.

* NMS: a NaN score ranks below every score (never kept, takes no candidate slot from a real pair);
  a box with a NaN coordinate overlaps nothing.
* center_update: a class holding a non-finite feature keeps its center; the others update as if the
  sample were absent.
* max_iou_assign: a ground truth with a non-finite coordinate is invalid; such an anchor is background
  with a NaN max_overlap; no ground truths give all background, no anchors an empty result.
* match_metrics: boxes with a non-finite coordinate count as padding; K = 0 and M = 0 work.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

import exportloss
from exportloss import catalog
from exportloss.catalog.detection import detection_scene
from exportloss.export import export_model
from exportloss.reference.classification import center_update_reference
from exportloss.reference.detection import max_iou_assign_reference, nms_reference

MODELS = Path(__file__).resolve().parents[2] / "models"
NAN = float("nan")


def run_onnx(name: str, inputs: dict[str, np.ndarray], shapes=None) -> list[np.ndarray]:
    entry = catalog.get(name)
    model = export_model(entry, shapes=shapes).SerializeToString() if shapes else str(MODELS / f"{name}.onnx")
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return session.run(entry.output_names, inputs)


def assert_equal(got, want, msg="", tol=0.0):
    """Equal outputs (NaN equal to NaN); ``tol`` for float outputs of computations in another order or dtype."""
    for g, w in zip(got, want):
        g, w = torch.as_tensor(g), torch.as_tensor(w)
        exact = not (g.is_floating_point() and w.is_floating_point())
        torch.testing.assert_close(g.double(), w.double(), atol=0 if exact else tol, rtol=0 if exact else tol,
                                   equal_nan=True, msg=msg or None)


# --- NMS -------------------------------------------------------------------------------------------

def nms_scene(seed: int = 3):
    scene = detection_scene(np.random.default_rng(seed), (2, 1000, 4), (2, 1000, 80))
    return scene["boxes"], scene["scores"]


def test_nan_scores_never_kept_and_take_no_candidate_slot():
    """1196 NaN pairs, more than the 1000 candidates: the four real pairs are still all kept, eager and in onnxruntime."""
    boxes = torch.tensor([[[0.0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]]])
    scores = torch.full((1, 4, 300), NAN)
    scores[0, :, 7] = torch.tensor([0.9, 0.8, 0.7, 0.6])  # four separate boxes, one class
    dets = catalog.get("cluster_nms").build()(boxes, scores)
    assert dets.num_dets.tolist() == [4] and dets.det_scores[0, :4].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6])
    assert not dets.det_scores.isnan().any()
    got = run_onnx("cluster_nms", {"boxes": boxes.numpy(), "scores": scores.numpy()}, shapes={"boxes": (1, 4, 4), "scores": (1, 4, 300)})
    assert_equal(got, dets)


def test_nan_scores_in_a_scene_equal_the_reference_with_nan_as_minus_infinity():
    boxes, scores = nms_scene()
    scores = scores.copy()
    scores[:, ::3, :] = np.nan  # a third of the boxes, every class
    want = nms_reference(torch.from_numpy(boxes).double(), torch.from_numpy(np.nan_to_num(scores, nan=-np.inf)).double())
    assert int(want[0].min()) > 0
    assert_equal(exportloss.cluster_nms(torch.from_numpy(boxes), torch.from_numpy(scores)), want, "eager")
    assert_equal(run_onnx("cluster_nms", {"boxes": boxes, "scores": scores}), want, "onnxruntime")


@pytest.mark.parametrize("name", ["cluster_nms", "fast_nms"])
def test_nan_boxes_overlap_nothing(name):
    """20 NaN boxes (the issue's reproduction gave num_dets = 0): everything else is decided as without them."""
    boxes, scores = nms_scene(4)
    boxes = boxes.copy()
    boxes[:, :20, 0] = np.nan
    want = nms_reference(torch.from_numpy(boxes).double(), torch.from_numpy(scores).double(), catalog.get(name).build().options)
    assert int(want[0].min()) >= 50
    module = catalog.get(name).build()
    assert_equal(module(torch.from_numpy(boxes), torch.from_numpy(scores)), want, "eager")
    assert_equal(run_onnx(name, {"boxes": boxes, "scores": scores}), want, "onnxruntime")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"iou_thr": NAN}, "iou_thr must be finite and lie in"), ({"iou_thr": 1.5}, "iou_thr must be finite and lie in"),
     ({"score_thr": NAN}, "score_thr must be a finite"), ({"score_thr": math.inf}, "score_thr must be a finite"),
     ({"eps": 0.0}, "eps must be finite and > 0"), ({"eps": math.inf}, "eps must be finite and > 0"),
     ({"diou_beta": NAN}, "diou_beta must be finite and > 0")],
)
def test_nms_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        exportloss.ClusterNMS(**kwargs)


# --- center_update ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [NAN, math.inf, -math.inf, 3.39e38])
def test_center_update_confines_a_non_finite_feature_to_its_class(bad):
    g = torch.Generator().manual_seed(11)
    centers = torch.randn(10, 32, generator=g)
    features = torch.randn(64, 32, generator=g)
    labels = torch.arange(64) % 10
    features[5, 3] = bad  # sample 5 is of class 5
    without = torch.ones(64, dtype=torch.bool)
    without[5] = False
    want = exportloss.center_update(features[without], labels[without], centers)
    want[5] = centers[5]
    got = exportloss.center_update(features, labels, centers)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    assert torch.equal(got[5], centers[5]) and got.isfinite().all()
    torch.testing.assert_close(center_update_reference(features.double(), labels, centers, 0.5), want.double(), atol=1e-6, rtol=1e-6)
    (onnx_got,) = run_onnx("center_update", {"features": features.numpy(), "labels": labels.numpy(), "centers": centers.numpy()})
    torch.testing.assert_close(torch.from_numpy(onnx_got), want, atol=1e-6, rtol=1e-6)


def test_center_loss_propagates_nan():
    module = exportloss.CenterLoss(3, 2)
    assert module(torch.tensor([[NAN, 0.0], [1.0, 1.0]]), torch.tensor([0, 1])).isnan()


@pytest.mark.parametrize(
    "call, message",
    [(lambda: exportloss.CenterUpdate(alpha=NAN), "alpha must be finite"), (lambda: exportloss.CenterUpdate(alpha=-0.1), "alpha must be finite and >= 0"),
     (lambda: exportloss.center_update(torch.rand(2, 3), torch.tensor([0, 1]), torch.rand(2, 3), alpha=math.inf), "alpha must be finite"),
     (lambda: exportloss.CenterLoss(3, 2, lambda_c=-1.0), "lambda_c must be finite and >= 0")],
)
def test_center_options_are_checked(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- max_iou_assign --------------------------------------------------------------------------------

def assign_case(seed: int = 8):
    entry = catalog.get("max_iou_assign")
    return entry, entry.random_inputs(entry.shapes(), np.random.default_rng(seed))


def test_non_finite_ground_truth_is_invalid():
    entry, inputs = assign_case()
    bad = dict(inputs, gt_boxes=inputs["gt_boxes"].copy())
    bad["gt_boxes"][:, 0, 1] = np.nan
    bad["gt_boxes"][:, 2, 2] = np.inf
    padded = dict(inputs, gt_valid=inputs["gt_valid"].copy())
    padded["gt_valid"][:, [0, 2]] = False
    want = exportloss.max_iou_assign(*(torch.from_numpy(padded[k]) for k in ("anchors", "gt_boxes", "gt_valid")))
    got = exportloss.max_iou_assign(*(torch.from_numpy(bad[k]) for k in ("anchors", "gt_boxes", "gt_valid")))
    assert_equal(got, want, "eager")
    assert_equal(run_onnx("max_iou_assign", bad), want, "onnxruntime")
    module = entry.build()
    assert_equal(entry.reference(module, *(torch.from_numpy(bad[k]) for k in ("anchors", "gt_boxes", "gt_valid"))), want, "reference", tol=1e-6)


def test_non_finite_anchor_is_background_with_nan_overlap():
    entry, inputs = assign_case(9)
    bad = dict(inputs, anchors=inputs["anchors"].copy())
    bad["anchors"][:, ::100, 0] = np.nan
    bad["anchors"][:, 1::100, 3] = -np.inf
    tensors = [torch.from_numpy(bad[k]) for k in ("anchors", "gt_boxes", "gt_valid")]
    got = exportloss.max_iou_assign(*tensors)
    assert got.assigned_gt[:, ::100].eq(-1).all() and got.assigned_gt[:, 1::100].eq(-1).all()
    assert got.max_overlap[:, ::100].isnan().all() and got.max_overlap[:, 1::100].isnan().all()
    finite = torch.ones(1000, dtype=torch.bool)
    finite[::100] = finite[1::100] = False
    assert got.max_overlap[:, finite].isfinite().all()
    assert_equal(run_onnx("max_iou_assign", bad), got, "onnxruntime")
    assert_equal(max_iou_assign_reference(*(t.double() if t.is_floating_point() else t for t in tensors)), got, "reference", tol=1e-6)


def test_assign_without_ground_truths_or_anchors():
    anchors = torch.rand(2, 5, 4) * 10
    anchors[..., 2:] += anchors[..., :2]
    no_gt = exportloss.max_iou_assign(anchors, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert no_gt.assigned_gt.tolist() == [[-1] * 5] * 2 and no_gt.max_overlap.eq(0).all()
    no_anchor = exportloss.max_iou_assign(torch.zeros(2, 0, 4), anchors, torch.ones(2, 5, dtype=torch.bool))
    assert no_anchor.assigned_gt.shape == (2, 0) and no_anchor.max_overlap.shape == (2, 0)
    for shapes, want in (({"gt_boxes": (2, 0, 4), "gt_valid": (2, 0)}, (-1, 0.0)), ({"anchors": (2, 0, 4)}, None)):
        entry = catalog.get("max_iou_assign")
        inputs = entry.random_inputs(entry.shapes(shapes), np.random.default_rng(0))
        assigned, overlap = run_onnx("max_iou_assign", inputs, shapes=shapes)
        assert assigned.shape == overlap.shape == (2, shapes.get("anchors", (2, 1000))[1])
        if want:
            assert (assigned == want[0]).all() and (overlap == want[1]).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"pos_thr": NAN}, "pos_thr must be finite and lie in"), ({"neg_thr": 1.5}, "neg_thr must be finite and lie in"),
     ({"min_pos_thr": -1.0}, "min_pos_thr must be finite and lie in"), ({"eps": -1e-7}, "eps must be finite and > 0"),
     ({"eps": NAN}, "eps must be finite and > 0")],
)
def test_assign_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        exportloss.MaxIoUAssigner(**kwargs)


# --- match_metrics ---------------------------------------------------------------------------------

def test_non_finite_boxes_count_as_padding():
    entry = catalog.get("match_metrics")
    inputs = entry.random_inputs(entry.shapes(), np.random.default_rng(12))
    bad = dict(inputs, pred_boxes=inputs["pred_boxes"].copy(), gt_boxes=inputs["gt_boxes"].copy())
    bad["pred_boxes"][:, ::4, 0] = np.nan
    bad["gt_boxes"][:, ::5, 3] = np.inf
    padded = dict(inputs, pred_valid=inputs["pred_valid"].copy(), gt_valid=inputs["gt_valid"].copy())
    padded["pred_valid"][:, ::4] = False
    padded["gt_valid"][:, ::5] = False
    names = ("pred_boxes", "pred_valid", "gt_boxes", "gt_valid")
    want = exportloss.detection.match_metrics(*(torch.from_numpy(padded[k]) for k in names))
    assert_equal(exportloss.detection.match_metrics(*(torch.from_numpy(bad[k]) for k in names)), want, "eager")
    assert_equal(run_onnx("match_metrics", bad), want, "onnxruntime", tol=1e-6)


def test_match_metrics_with_no_predictions_or_no_ground_truths():
    entry = catalog.get("match_metrics")
    for shapes in ({"pred_boxes": (2, 0, 4), "pred_valid": (2, 0)}, {"gt_boxes": (2, 0, 4), "gt_valid": (2, 0)}):
        inputs = entry.random_inputs(entry.shapes(shapes), np.random.default_rng(1))
        tensors = [torch.from_numpy(inputs[k]) for k in ("pred_boxes", "pred_valid", "gt_boxes", "gt_valid")]
        eager = exportloss.detection.match_metrics(*tensors)
        want = entry.reference(entry.build(), *(t.double() if t.is_floating_point() else t for t in tensors))
        torch.testing.assert_close(eager.num_gt, want[3])
        for value in eager[:3]:
            assert value.eq(0).all()
        assert_equal(run_onnx("match_metrics", inputs, shapes=shapes), eager, "onnxruntime", tol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"thresholds": (0.5, NAN)}, r"thresholds\[1\] must be finite and lie in"), ({"match_thr": NAN}, "match_thr must be finite and lie in"),
     ({"eps": 0}, "eps must be finite and > 0")],
)
def test_match_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        exportloss.MatchMetrics(**kwargs)
