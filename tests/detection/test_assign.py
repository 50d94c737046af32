"""max_iou_assign against hand-worked assignments and the plain-loop mmdet-style reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import exportloss
from exportloss.catalog.detection import assign_inputs
from exportloss.detection import AssignOptions
from exportloss.reference.detection import max_iou_assign_reference

# gt 0 is a 10x10 square; gt 1 sits far away; gt 2 is padding identical to anchor 0.
GTS = torch.tensor([[[0.0, 0, 10, 10], [100, 100, 110, 110], [0, 0, 10, 10]]])
VALID = torch.tensor([[True, True, False]])
ANCHORS = torch.tensor([[
    [0.0, 0, 10, 10],  # IoU 1 with gt 0
    [0, 0, 10, 6],  # IoU 0.6
    [0, 0, 10, 4.5],  # IoU 0.45: between neg_thr and pos_thr
    [0, 0, 10, 2],  # IoU 0.2
    [50, 50, 60, 60],  # overlaps nothing
    [104, 100, 114, 110],  # IoU 60/140 = 0.4286 with gt 1, its best anchor
]])


def test_hand_worked_assignment():
    assigned, max_overlap = exportloss.max_iou_assign(ANCHORS, GTS, VALID)
    assert assigned.tolist() == [[0, 0, -2, -1, -1, 1]] and assigned.dtype == torch.int64
    torch.testing.assert_close(max_overlap, torch.tensor([[1.0, 0.6, 0.45, 0.2, 0.0, 60 / 140]]))
    # Without the low-quality step gt 1's best anchor stays in the ignore band.
    assigned, _ = exportloss.max_iou_assign(ANCHORS, GTS, VALID, allow_low_quality=False)
    assert assigned.tolist() == [[0, 0, -2, -1, -1, -2]]
    # A higher min_pos_thr stops gt 1 (best 0.43) from claiming it.
    assigned, _ = exportloss.max_iou_assign(ANCHORS, GTS, VALID, min_pos_thr=0.45)
    assert assigned[0, 5] == -2


def test_padded_ground_truths_never_match():
    assigned, max_overlap = exportloss.max_iou_assign(ANCHORS, GTS, torch.tensor([[False, True, False]]))
    assert assigned[0, 0] == -1 and max_overlap[0, 0] == 0  # identical to padded gts 0 and 2
    assigned, max_overlap = exportloss.max_iou_assign(ANCHORS, GTS, torch.zeros(1, 3, dtype=torch.bool))
    assert assigned.eq(-1).all() and max_overlap.eq(0).all()


def test_later_ground_truth_wins_a_shared_best_anchor():
    # Both gts have the single anchor as their best: mmdet's loop lets the later one overwrite.
    anchor = torch.tensor([[[0.0, 0, 10, 11]]])
    small, tall = [0.0, 0, 10, 10], [0.0, 0, 10, 12]  # IoU 100/110 and 110/120 with the anchor
    both = torch.ones(1, 2, dtype=torch.bool)
    assert exportloss.max_iou_assign(anchor, torch.tensor([[small, tall]]), both).assigned_gt.tolist() == [[1]]
    assert exportloss.max_iou_assign(anchor, torch.tensor([[tall, small]]), both).assigned_gt.tolist() == [[1]]
    # Without the low-quality step the better overlap (the tall gt) decides.
    no_lq = exportloss.max_iou_assign(anchor, torch.tensor([[tall, small]]), both, allow_low_quality=False)
    assert no_lq.assigned_gt.tolist() == [[0]]


def test_every_anchor_attaining_a_gts_best_overlap_is_claimed():
    anchors = torch.tensor([[[0.0, 0, 10, 30], [0, 0, 10, 30], [0, 0, 10, 40]]])  # IoU 1/3, 1/3, 1/4
    assigned, _ = exportloss.max_iou_assign(anchors, torch.tensor([[[0.0, 0, 10, 10]]]), torch.ones(1, 1, dtype=torch.bool))
    assert assigned.tolist() == [[0, 0, -1]]


def test_tie_between_ground_truths_goes_to_the_lower_index():
    anchor = torch.tensor([[[0.0, 0, 10, 10]]])
    gts = torch.tensor([[[5.0, 0, 15, 10], [-5, 0, 5, 10]]])  # both IoU 50/150
    assigned, _ = exportloss.max_iou_assign(anchor, gts, torch.ones(1, 2, dtype=torch.bool), pos_thr=0.3, allow_low_quality=False)
    assert assigned.tolist() == [[0]]


def test_gt_overlapping_no_anchor_claims_nothing():
    gts = torch.tensor([[[500.0, 500, 510, 510]]])
    assigned, max_overlap = exportloss.max_iou_assign(ANCHORS, gts, torch.ones(1, 1, dtype=torch.bool))
    assert assigned.eq(-1).all() and max_overlap.eq(0).all()  # mmdet (>= 0) would hand it every anchor


def test_diou_negative_overlap_is_background():
    gts = torch.tensor([[[0.0, 0, 10, 10]]])
    anchors = torch.tensor([[[30.0, 0, 40, 10], [0, 0, 10, 10]]])  # DIoU 0 - 30^2 / (40^2 + 10^2) < 0
    assigned, max_overlap = exportloss.max_iou_assign(anchors, gts, torch.ones(1, 1, dtype=torch.bool), kind="diou")
    assert max_overlap[0, 0] == pytest.approx(-900 / 1700, abs=1e-6)
    assert assigned.tolist() == [[-1, 0]]


@pytest.mark.parametrize("kind", ["iou", "diou"])
@pytest.mark.parametrize("allow_low_quality", [True, False])
def test_equals_loop_reference_on_seeded_scenes(kind, allow_low_quality):
    rng = np.random.default_rng(66)
    for i in range(40):
        num_anchors, num_gts = int(rng.integers(1, 80)), int(rng.integers(1, 9))
        shapes = {"anchors": (2, num_anchors, 4), "gt_boxes": (2, num_gts, 4), "gt_valid": (2, num_gts)}
        inputs = {k: torch.from_numpy(v) for k, v in assign_inputs(shapes, rng).items()}
        thresholds = {"pos_thr": 0.5, "neg_thr": 0.4, "min_pos_thr": 0.0} if i % 2 else {"pos_thr": 0.6, "neg_thr": 0.3, "min_pos_thr": 0.2}
        got = exportloss.max_iou_assign(*inputs.values(), kind=kind, allow_low_quality=allow_low_quality, **thresholds)
        want = max_iou_assign_reference(
            inputs["anchors"].double(), inputs["gt_boxes"].double(), inputs["gt_valid"],
            AssignOptions(allow_low_quality=allow_low_quality, kind=kind, **thresholds),
        )
        assert torch.equal(got.assigned_gt, want[0])
        torch.testing.assert_close(got.max_overlap.double(), want[1], atol=1e-6, rtol=0)


def test_anchors_broadcast_over_the_batch():
    rng = np.random.default_rng(67)
    inputs = {k: torch.from_numpy(v) for k, v in assign_inputs({"anchors": (1, 50, 4), "gt_boxes": (3, 5, 4), "gt_valid": (3, 5)}, rng).items()}
    got = exportloss.MaxIoUAssigner()(*inputs.values())
    want = max_iou_assign_reference(inputs["anchors"].double(), inputs["gt_boxes"].double(), inputs["gt_valid"])
    assert got.assigned_gt.shape == (3, 50) and torch.equal(got.assigned_gt, want[0])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: exportloss.max_iou_assign(torch.rand(1, 5, 3), GTS, VALID), ValueError, r"anchors must have shape \[\.\.\., N, 4\]"),
        (lambda: exportloss.max_iou_assign(torch.rand(5, 4), GTS, VALID), ValueError, r"anchors must have shape"),
        (lambda: exportloss.max_iou_assign(ANCHORS, GTS, VALID.long()), TypeError, r"gt_valid must be a bool tensor"),
        (lambda: exportloss.max_iou_assign(ANCHORS, GTS, VALID[:, :2]), ValueError, r"gt_valid must have shape \[1, 3\]"),
        (lambda: exportloss.max_iou_assign(torch.rand(2, 5, 4), torch.rand(3, 2, 4), torch.ones(3, 2, dtype=torch.bool)), ValueError, r"do not broadcast"),
        (lambda: exportloss.max_iou_assign(ANCHORS, GTS, VALID, kind="giou"), ValueError, r"kind must be one of 'iou', 'diou'"),
        (lambda: exportloss.MaxIoUAssigner(neg_thr=-1.5), ValueError, r"neg_thr must be finite and lie in \(-1, 1\]"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()
