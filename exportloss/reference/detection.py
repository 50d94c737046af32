"""Float64 references for detection post-processing, written as the plain loops they describe.

* :func:`nms_reference`: greedy NMS, candidate by candidate, per image, and Cluster-NMS's iterations (Fast
  NMS for one) as loops where they may fall short of it, with the flag saying whether they did. For
  ``kind="iou"`` greedy NMS is ``torchvision.ops.batched_nms`` on the candidate (box, class) pairs followed
  by a cut to the first ``max_det``; for ``kind="diou"`` it is DIoU-NMS.
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


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, options: NMSOptions = NMSOptions()) -> tuple[torch.Tensor, ...]:
    """Greedy NMS and Cluster-NMS as loops, with the outputs of :func:`exportloss.cluster_nms` (see :func:`_greedy_nms`)."""
    def overlaps(box: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        return nms_criterion(box, rivals, options.kind, options.diou_beta, options.eps)

    return _greedy_nms(boxes, scores, options, overlaps)


def _greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, options, overlaps) -> tuple[torch.Tensor, ...]:
    """The candidate, tie and output rules both NMS references share; ``overlaps(box [W], rivals [R, W]) -> [R]``.

    Pairs: every (box, class) pair (``classes="all"``), or each box as its best class, the lowest on ties
    (``"best"``, ``"agnostic"``). Candidates: the top ``options.candidate_count`` pairs by descending score,
    equal scores in their flat order (a stable sort), NaN scores as -inf. A rival is an earlier candidate of
    the same class (any class for ``"agnostic"``) that overlaps by more than ``iou_thr``.

    * greedy NMS: a candidate above ``score_thr`` is kept unless a kept rival exists;
    * Cluster-NMS with ``t`` iterations: every candidate starts kept, and each iteration keeps a candidate
      unless a rival was kept in the previous one (one iteration: Fast NMS). Skipped when ``t`` is at least
      the number of candidates above ``score_thr``, where it is greedy NMS by construction.

    Reported: Cluster-NMS's first ``max_det`` kept candidates; ``converged`` is whether they equal greedy NMS's;
    ``num_capped`` counts the pairs above ``score_thr`` that are not candidates.
    """
    batch, num_boxes, width = boxes.shape
    all_scores = scores.reshape(batch, num_boxes, -1).double().numpy()
    all_scores = np.where(np.isnan(all_scores), -np.inf, all_scores)
    num_classes = all_scores.shape[2]
    num_dets = torch.zeros(batch, dtype=torch.int64)
    det_boxes = torch.zeros(batch, options.max_det, width, dtype=torch.float64)
    det_scores = torch.zeros(batch, options.max_det, dtype=torch.float64)
    det_classes = torch.full((batch, options.max_det), -1, dtype=torch.int64)
    det_indices = torch.full((batch, options.max_det), -1, dtype=torch.int64)
    converged = torch.zeros(batch, dtype=torch.bool)
    num_capped = torch.zeros(batch, dtype=torch.int64)
    for b in range(batch):
        if options.classes == "all" or num_classes == 1:
            pair_scores = all_scores[b].reshape(-1)
            pair_boxes, pair_classes = np.divmod(np.arange(pair_scores.size), num_classes)
        else:
            pair_classes = np.argmax(all_scores[b], axis=1)  # the first maximum
            pair_scores = all_scores[b, np.arange(num_boxes), pair_classes]
            pair_boxes = np.arange(num_boxes)
        order = np.argsort(-pair_scores, kind="stable")[: options.candidate_count(pair_scores.size)]
        cand_scores, cand_classes, cand_index = pair_scores[order], pair_classes[order], pair_boxes[order]
        cand_boxes = boxes[b].double().numpy()[cand_index]
        above = int((cand_scores > options.score_thr).sum())  # a prefix of the candidates
        num_capped[b] = int((pair_scores > options.score_thr).sum()) - above

        def rivals(j: int, among: np.ndarray) -> np.ndarray:
            """The candidates of ``among`` (all before ``j``) that may suppress candidate ``j``."""
            if options.classes != "agnostic":
                among = among[cand_classes[among] == cand_classes[j]]
            return among[overlaps(cand_boxes[j], cand_boxes[among]) > options.iou_thr]

        greedy: list[int] = []
        for j in range(above):
            if len(greedy) == options.max_det:
                break
            if not len(rivals(j, np.array(greedy, dtype=np.int64))):
                greedy.append(j)
        kept = greedy
        iterations = options.iteration_count(len(order))
        if iterations < above:
            suppressors = [rivals(j, np.arange(j)) for j in range(above)]
            keep = np.ones(above, dtype=bool)
            for _ in range(iterations):
                keep = np.array([not keep[suppressors[j]].any() for j in range(above)], dtype=bool)
            kept = [int(j) for j in np.flatnonzero(keep)[: options.max_det]]
        converged[b] = kept == greedy
        num_dets[b] = len(kept)
        det_boxes[b, : len(kept)] = torch.from_numpy(cand_boxes[kept])
        det_scores[b, : len(kept)] = torch.from_numpy(cand_scores[kept])
        det_classes[b, : len(kept)] = torch.from_numpy(cand_classes[kept])
        det_indices[b, : len(kept)] = torch.from_numpy(cand_index[kept])
    if options.outputs == "efficientnms":
        return (num_dets.to(torch.int32).unsqueeze(1), det_boxes, det_scores, det_classes.to(torch.int32),
                det_indices.to(torch.int32), converged, num_capped.to(torch.int32))
    return num_dets, det_boxes, det_scores, det_classes, det_indices, converged, num_capped


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
) -> tuple[torch.Tensor, ...]:
    """Greedy rotated NMS and Cluster-NMS with the outputs and candidate/tie rules of :func:`exportloss.cluster_nms`."""

    def overlaps(box: np.ndarray, rivals: np.ndarray) -> np.ndarray:
        return np.array([rotated_pair_iou(list(rival), list(box), options.criterion, options.eps) for rival in rivals])

    return _greedy_nms(boxes, scores, options, overlaps)
