"""Float64 references for detection post-processing, written as the plain loops they describe.

* :func:`nms_reference`: greedy NMS (or Fast NMS), candidate by candidate, per image. For
  ``kind="iou"`` it is ``torchvision.ops.batched_nms`` on the candidate (box, class) pairs followed by
  a cut to the first ``max_det``; for ``kind="diou"`` it is DIoU-NMS.
* :func:`max_iou_assign_reference`: mmdet's ``MaxIoUAssigner`` steps, anchor by anchor and ground
  truth by ground truth.
* :func:`match_metrics_reference`: best overlap per ground truth, ground truth by ground truth.

Overlaps come from :func:`exportloss.reference.boxes.box_pair_metric`, one box pair at a time, except
in NMS, which compares one candidate with its rivals at once (:func:`nms_criterion`).
Conventions (eps placement, tie rules, padding) are those documented in :mod:`exportloss.detection.nms`,
:mod:`exportloss.detection.assign` and :mod:`exportloss.detection.match_metrics`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..detection.options import AssignOptions, MatchOptions, NMSOptions, RotatedNMSOptions
from .boxes import box_pair_metric, rotated_pair_iou


def nms_criterion(box: np.ndarray, others: np.ndarray, kind: str, diou_beta: float, eps: float) -> np.ndarray:
    """IoU, or DIoU-NMS's ``IoU − (ρ²/(c² + eps))^β``, of one xyxy box ``[4]`` with each of ``others [R, 4]``.

    Vectorised over ``others`` (in float64) only for speed; the formulas are those of
    :func:`exportloss.reference.boxes.box_pair_metric`, including inverted boxes counting as zero-width.
    """
    x1, y1 = box[0], box[1]
    x2, y2 = max(box[2], x1), max(box[3], y1)
    ox1, oy1 = others[:, 0], others[:, 1]
    ox2, oy2 = np.maximum(others[:, 2], ox1), np.maximum(others[:, 3], oy1)
    inter = np.clip(np.minimum(x2, ox2) - np.maximum(x1, ox1), 0, None) * np.clip(np.minimum(y2, oy2) - np.maximum(y1, oy1), 0, None)
    union = (x2 - x1) * (y2 - y1) + (ox2 - ox1) * (oy2 - oy1) - inter
    iou = inter / (union + eps)
    if kind == "iou":
        return iou
    diagonal2 = (np.maximum(x2, ox2) - np.minimum(x1, ox1)) ** 2 + (np.maximum(y2, oy2) - np.minimum(y1, oy1)) ** 2
    centre_dist2 = ((x1 + x2 - ox1 - ox2) / 2) ** 2 + ((y1 + y2 - oy1 - oy2) / 2) ** 2
    return iou - (centre_dist2 / (diagonal2 + eps)) ** diou_beta


def nms_reference(
    boxes: torch.Tensor, scores: torch.Tensor, options: NMSOptions = NMSOptions()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy NMS, or Fast NMS for ``options.iterations == 1``, with the outputs of :func:`exportloss.cluster_nms`.

    Greedy: a candidate is kept unless an earlier *kept* candidate of its class overlaps it by more
    than ``iou_thr``. Fast: unless *any* earlier candidate of its class does. (Cluster-NMS with more
    iterations is greedy NMS wherever the iterations suffice, see :mod:`exportloss.detection.nms`.)
    """
    def overlaps(box: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        return nms_criterion(box, rivals, options.kind, options.diou_beta, options.eps)

    return _greedy_nms(boxes, scores, options, overlaps, fast=options.iterations == 1)


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, options, overlaps, fast: bool = False):
    """The candidate, tie and output rules both NMS references share; ``overlaps(box [W], rivals [R, W]) -> [R]``.

    Candidates: the top ``options.candidate_count`` (box, class) pairs by descending score, equal scores in
    their flat order (a stable sort), NaN scores as -inf. A candidate above ``score_thr`` is kept unless an
    earlier kept one of its class (Fast NMS: any earlier one) overlaps it by more than ``iou_thr``.
    """
    batch, num_boxes, width = boxes.shape
    flat_scores = scores.reshape(batch, -1).double().numpy()
    candidates = options.candidate_count(flat_scores.shape[1])
    num_classes = flat_scores.shape[1] // num_boxes
    num_dets = torch.zeros(batch, dtype=torch.int64)
    det_boxes = torch.zeros(batch, options.max_det, width, dtype=torch.float64)
    det_scores = torch.zeros(batch, options.max_det, dtype=torch.float64)
    det_classes = torch.full((batch, options.max_det), -1, dtype=torch.int64)
    for b in range(batch):
        order = np.argsort(-np.nan_to_num(flat_scores[b], nan=-np.inf), kind="stable")[:candidates]
        cand_scores, cand_classes = flat_scores[b][order], order % num_classes
        cand_boxes = boxes[b].double().numpy()[order // num_classes]
        kept: list[int] = []
        for j in range(len(order)):
            if cand_scores[j] <= options.score_thr or len(kept) == options.max_det:
                break
            rivals = np.arange(j) if fast else np.array(kept, dtype=np.int64)
            rivals = rivals[cand_classes[rivals] == cand_classes[j]]
            if not (overlaps(cand_boxes[j], cand_boxes[rivals]) > options.iou_thr).any():
                kept.append(j)
        num_dets[b] = len(kept)
        det_boxes[b, : len(kept)] = torch.from_numpy(cand_boxes[kept])
        det_scores[b, : len(kept)] = torch.from_numpy(cand_scores[kept])
        det_classes[b, : len(kept)] = torch.from_numpy(cand_classes[kept])
    return num_dets, det_boxes, det_scores, det_classes


def max_iou_assign_reference(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_valid: torch.Tensor,
    options: AssignOptions = AssignOptions(),
) -> tuple[torch.Tensor, torch.Tensor]:
    """mmdet's MaxIoUAssigner as loops: ``(assigned_gt [B, N] int64, max_overlap [B, N] float64)``.

    Per anchor: best valid ground truth (first on ties); background below ``neg_thr``, matched at or
    above ``pos_thr``, ignored (-2) in between. Then, for each valid ground truth in index order whose
    best overlap exceeds ``min_pos_thr``, every anchor attaining that best overlap is given to it
    (so a later ground truth wins a shared anchor).
    """
    pos_thr, neg_thr, min_pos_thr, kind, eps = options.pos_thr, options.neg_thr, options.min_pos_thr, options.kind, options.eps
    batch, num_anchors = gt_boxes.shape[0], anchors.shape[1]
    anchors = anchors.expand(batch, num_anchors, 4)
    assigned = torch.full((batch, num_anchors), -1, dtype=torch.int64)
    max_overlap = torch.zeros(batch, num_anchors, dtype=torch.float64)
    for b in range(batch):
        # Non-finite ground truths count as padding; non-finite anchors are background with a NaN overlap.
        gts = gt_boxes[b].tolist()
        valid = [m for m, ok in enumerate(gt_valid[b].tolist()) if ok and all(map(math.isfinite, gts[m]))]
        finite = [all(map(math.isfinite, anchor)) for anchor in anchors[b].tolist()]
        max_overlap[b, [n for n, ok in enumerate(finite) if not ok]] = math.nan
        if not valid:
            continue
        overlaps = [[box_pair_metric(anchor, gts[m], kind, eps=eps) for m in valid] if ok else None
                    for anchor, ok in zip(anchors[b].tolist(), finite)]
        for n, row in enumerate(overlaps):
            if row is None:
                continue
            best = max(row)
            max_overlap[b, n] = best
            if best >= pos_thr:
                assigned[b, n] = valid[row.index(best)]
            elif best >= neg_thr:
                assigned[b, n] = -2
        if not options.allow_low_quality:
            continue
        for column, m in enumerate(valid):
            gt_best = max((row[column] for row in overlaps if row is not None), default=-math.inf)
            if gt_best > min_pos_thr:
                for n, row in enumerate(overlaps):
                    if row is not None and row[column] == gt_best:
                        assigned[b, n] = m
    return assigned, max_overlap


def match_metrics_reference(
    pred_boxes: torch.Tensor,
    pred_valid: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_valid: torch.Tensor,
    options: MatchOptions = MatchOptions(),
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(mean_best_iou [B], recall [B, T], matched_loss [B], num_gt [B])`` ground truth by ground truth."""
    thresholds, eps = options.thresholds, options.eps
    batch = gt_boxes.shape[0]
    mean_best_iou = torch.zeros(batch, dtype=torch.float64)
    recall = torch.zeros(batch, len(thresholds), dtype=torch.float64)
    matched_loss = torch.zeros(batch, dtype=torch.float64)
    num_gt = torch.zeros(batch, dtype=torch.int64)
    for b in range(batch):
        # Boxes with a non-finite coordinate count as padding.
        preds = [box for box, ok in zip(pred_boxes[b].tolist(), pred_valid[b].tolist()) if ok and all(map(math.isfinite, box))]
        gts = [box for box, ok in zip(gt_boxes[b].tolist(), gt_valid[b].tolist()) if ok and all(map(math.isfinite, box))]
        if not gts:
            continue
        best_ious, losses = [], []
        for gt in gts:
            ious = [box_pair_metric(pred, gt, "iou", eps=eps) for pred in preds]
            best = max(ious, default=0.0)
            best_ious.append(best)
            if preds and best >= options.match_thr:
                losses.append(1.0 - box_pair_metric(preds[ious.index(best)], gt, options.loss_kind, eps=eps))
        num_gt[b] = len(gts)
        mean_best_iou[b] = sum(best_ious) / len(gts)
        for t, thr in enumerate(thresholds):
            recall[b, t] = sum(best >= thr for best in best_ious) / len(gts)
        matched_loss[b] = sum(losses) / len(losses) if losses else 0.0
    return mean_best_iou, recall, matched_loss, num_gt


def rotated_nms_reference(
    boxes: torch.Tensor, scores: torch.Tensor, options: RotatedNMSOptions = RotatedNMSOptions()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy rotated NMS with the outputs and candidate/tie rules of :func:`exportloss.cluster_nms`."""

    def overlaps(box: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        return np.array([rotated_pair_iou(list(rival), list(box), options.criterion, options.eps) for rival in rivals])

    return _greedy_nms(boxes, scores, options, overlaps)
