"""match_metrics against hand-worked values and the ground-truth-by-ground-truth loop reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import exportloss
from exportloss.catalog.detection import match_inputs
from exportloss.detection import MatchOptions
from exportloss.reference.detection import match_metrics_reference

# Image 0: gt 0 is covered with IoU 0.8, gt 1 with IoU 0.6, gt 2 not at all, gt 3 is padding. The
# padded prediction 2 would cover gt 0 exactly and must not count. Image 1 has no valid prediction.
GTS = torch.tensor([[[0.0, 0, 10, 10], [20, 0, 30, 10], [100, 100, 110, 110], [0, 0, 10, 10]]]).repeat(2, 1, 1)
GT_VALID = torch.tensor([[True, True, True, False]]).repeat(2, 1)
PREDS = torch.tensor([[[0.0, 0, 10, 8], [20, 0, 30, 6], [0, 0, 10, 10], [50, 50, 60, 60]]]).repeat(2, 1, 1)
PRED_VALID = torch.tensor([[True, True, False, True], [False, False, False, False]])


def ciou_by_hand(iou: float, centre_dy: float, diagonal2: float, h_pred: float) -> float:
    v = 4 / math.pi**2 * (math.atan(1.0) - math.atan(10 / h_pred)) ** 2
    return iou - centre_dy**2 / diagonal2 - v / (1 - iou + v) * v


def test_hand_worked_metrics():
    mean_iou, recall, matched_loss, num_gt = exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID)
    torch.testing.assert_close(mean_iou, torch.tensor([(0.8 + 0.6) / 3, 0.0]))
    torch.testing.assert_close(recall, torch.tensor([[2 / 3, 1 / 3], [0.0, 0.0]]))
    assert num_gt.tolist() == [3, 3] and num_gt.dtype == torch.int64
    # Matched pairs (IoU >= 0.5): gt 0 with pred 0 (centres 1 apart), gt 1 with pred 1 (2 apart); c^2 = 200.
    expected = (2 - ciou_by_hand(0.8, 1.0, 200.0, 8.0) - ciou_by_hand(0.6, 2.0, 200.0, 6.0)) / 2
    torch.testing.assert_close(matched_loss, torch.tensor([expected, 0.0]))
    iou_loss = exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID, loss_kind="iou").matched_loss
    torch.testing.assert_close(iou_loss, torch.tensor([(0.2 + 0.4) / 2, 0.0]))
    # A stricter match threshold leaves only gt 0 matched.
    strict = exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID, match_thr=0.7, loss_kind="iou").matched_loss
    torch.testing.assert_close(strict, torch.tensor([0.2, 0.0]))


def test_no_valid_ground_truth_reports_zeros():
    metrics = exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, torch.zeros_like(GT_VALID), thresholds=(0.3, 0.5, 0.9))
    assert metrics.recall.shape == (2, 3)
    for value in metrics:
        assert value.eq(0).all()


@pytest.mark.parametrize("loss_kind", ["iou", "giou", "diou", "ciou"])
def test_equals_loop_reference_on_seeded_inputs(loss_kind):
    rng = np.random.default_rng(68)
    for _ in range(25):
        num_preds, num_gts = int(rng.integers(1, 40)), int(rng.integers(1, 12))
        shapes = {"pred_boxes": (3, num_preds, 4), "pred_valid": (3, num_preds), "gt_boxes": (3, num_gts, 4), "gt_valid": (3, num_gts)}
        inputs = {k: torch.from_numpy(v) for k, v in match_inputs(shapes, rng).items()}
        got = exportloss.MatchMetrics(thresholds=(0.5, 0.75, 0.9), loss_kind=loss_kind)(*inputs.values())
        want = match_metrics_reference(
            inputs["pred_boxes"].double(), inputs["pred_valid"], inputs["gt_boxes"].double(), inputs["gt_valid"],
            MatchOptions(thresholds=(0.5, 0.75, 0.9), loss_kind=loss_kind),
        )
        for g, w in zip(got, want):
            torch.testing.assert_close(g.double(), w.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: exportloss.detection.match_metrics(PREDS, PRED_VALID.long(), GTS, GT_VALID), TypeError, r"pred_valid must be a bool tensor"),
        (lambda: exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID[:, :2]), ValueError, r"gt_valid must have shape \[2, 4\]"),
        (lambda: exportloss.detection.match_metrics(PREDS[:, :, :3], PRED_VALID, GTS, GT_VALID), ValueError, r"pred_boxes must have shape"),
        (lambda: exportloss.detection.match_metrics(PREDS[:1], PRED_VALID[:1], GTS, GT_VALID), ValueError, r"same batch size"),
        (lambda: exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID, thresholds=()), ValueError, r"thresholds must be a non-empty"),
        (lambda: exportloss.detection.match_metrics(PREDS, PRED_VALID, GTS, GT_VALID, thresholds=(0.5, 1.5)), ValueError, r"thresholds\[1\] must be finite and lie in \(0, 1\]"),
        (lambda: exportloss.MatchMetrics(match_thr=0.0), ValueError, r"match_thr must be finite and lie in \(0, 1\]"),
        (lambda: exportloss.MatchMetrics(loss_kind="l1"), ValueError, r"loss_kind must be one of"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
