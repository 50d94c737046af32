"""COCO's per-image matching (pycocotools ``COCOeval.evaluateImg``, bbox) as a static graph.

Inputs are padded per image, in the order of the COCO files (ground truths in annotation order,
detections in results-file order); a category id of ``-1`` marks padding. Everything is computed in
float64 whatever the input dtype, so that equal IoUs, IoUs exactly on a threshold and equal scores are
decided as pycocotools decides them:

* **Rank**: a detection's rank within its (image, category) is the number of detections of that
  category with ``score_e > score_d`` or ``score_e == score_d and e < d`` (pycocotools' stable sort by
  descending score), by pairwise comparison. Only ranks ``< max_dets`` (``kept``) enter matching.
* **IoU** in pycocotools' ``bbIou`` operation order from xywh: ``w = min(x_d + w_d, x_g + w_g) −
  max(x_d, x_g)``, likewise ``h``; 0 unless both are positive; ``IoU = w·h / u`` with ``u = (a_d + a_g) −
  w·h`` and, for a crowd ground truth, ``u = a_d`` (``a = w·h`` of the box). With ``box_format="xyxy"``
  the right and bottom edges are the given ones and ``a = (x2 − x1)(y2 − y1)``.
* **Ignore**: a ground truth is ignored in an area range when crowd or when its annotation area is
  outside the range (bounds inclusive, :data:`~exportloss.detection.options.COCO_AREA_RANGES`).
* **Matching**, for each area range and each threshold ``t`` of
  :data:`~exportloss.detection.options.COCO_IOU_THRESHOLDS` (a match needs ``IoU >= t``): in rank order
  each kept detection takes one available ground truth of its category; non-ignored ones are preferred
  whatever the IoU, then the highest IoU, then the *last* in file order; crowd ground truths are never
  used up (their ``gt_match`` is the last detection that took them); any other matched one is used up.
* A detection matched to an ignored ground truth, or unmatched with ``w·h`` outside the range, is ignored.

**Settling rounds** replace pycocotools' loop over detections (no Loop, NonZero, TopK or ArgMax). Each
round every unsettled detection picks its favourite among the ground truths that no settled detection
has used up; it settles when it has none, when its favourite is a crowd, or when no earlier unsettled
detection of its category could take that favourite (IoU ``>= t``). A settled result is final (the
ground truths it prefers are used up for good, and no earlier detection can take its favourite), and
the earliest unsettled detection of each category always settles, so ``rounds >= max_dets`` is exact
by construction; ``unsettled`` counts the (area, threshold, detection) entries still open after the
rounds (their match reads ``-1``): the outputs equal pycocotools' exactly when it is 0.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from ..ops.checks import check_boxes, check_label_tensor
from ..ops.options import DEFAULT
from ..ops.select import select
from .options import (COCO_AREA_NAMES, COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, COCO_MAX_DETS, COCO_REC_THRESHOLDS,
                      CocoMatchOptions)


class CocoMatches(NamedTuple):
    """Per image (``B``), for detections ``D``, ground truths ``G``, area ranges ``A = 4`` and thresholds ``T = 10``.

    * ``det_rank [B, D]`` int64: rank within the detection's category, ``-1`` for padding.
    * ``det_kept [B, D]`` bool: ``0 <= rank < max_dets``.
    * ``det_match [B, A, T, D]`` int64: index of the matched ground truth, ``-1`` when none.
    * ``det_ignore [B, A, T, D]`` bool: neither true nor false positive (False for detections not kept).
    * ``gt_ignore [B, A, G]`` bool: crowd, area outside the range, or padding.
    * ``gt_match [B, A, T, G]`` int64: index of the (last) detection that took it, ``-1`` when none.
    * ``unsettled [B]`` int64: open entries after the rounds; 0 means the result is complete.
    """

    det_rank: torch.Tensor
    det_kept: torch.Tensor
    det_match: torch.Tensor
    det_ignore: torch.Tensor
    gt_ignore: torch.Tensor
    gt_match: torch.Tensor
    unsettled: torch.Tensor


def coco_match(
    det_boxes: torch.Tensor,
    det_scores: torch.Tensor,
    det_categories: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_categories: torch.Tensor,
    gt_crowd: torch.Tensor,
    gt_areas: torch.Tensor,
    box_format: str = DEFAULT,
    max_dets: int = DEFAULT,
    rounds: int | None = DEFAULT,
    *,
    options: CocoMatchOptions | None = None,
) -> CocoMatches:
    """pycocotools' per-image bbox matching for all area ranges and IoU thresholds (module docstring).

    Args:
        det_boxes: ``[B, D, 4]`` detection boxes (``box_format``), padded to D, in results-file order.
        det_scores: ``[B, D]`` scores; a NaN score counts as padding.
        det_categories: ``[B, D]`` int64 category ids, ``-1`` for padding.
        gt_boxes: ``[B, G, 4]`` ground-truth boxes (``box_format``), padded to G, in annotation order.
        gt_categories: ``[B, G]`` int64 category ids, ``-1`` for padding.
        gt_crowd: ``[B, G]`` bool ``iscrowd``.
        gt_areas: ``[B, G]`` the annotations' ``area`` (not the box's), which decides the area ranges.
        box_format: ``"xywh"`` (default) or ``"xyxy"``.
        max_dets: detections per (image, category) that enter matching (default 100).
        rounds: settling rounds (``None``: :data:`~exportloss.detection.options.DEFAULT_COCO_ROUNDS`).
        options: a prepared :class:`~exportloss.detection.options.CocoMatchOptions` instead of the keywords.

    Returns:
        :class:`CocoMatches`.
    """
    options = CocoMatchOptions.resolve(options, box_format=box_format, max_dets=max_dets, rounds=rounds)
    return _coco_match(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas, options)


def _check_inputs(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas) -> None:
    for name, boxes in (("det_boxes", det_boxes), ("gt_boxes", gt_boxes)):
        if check_boxes(name, boxes, min_dim=3).dim() != 3:
            raise ValueError(f"{name} must have shape [B, N, 4]; got {list(boxes.shape)}")
    if det_boxes.shape[0] != gt_boxes.shape[0]:
        raise ValueError(f"det_boxes and gt_boxes must have the same batch size; got {det_boxes.shape[0]} and {gt_boxes.shape[0]}")
    for name, tensor, boxes_name, boxes in (
        ("det_scores", det_scores, "det_boxes", det_boxes), ("det_categories", det_categories, "det_boxes", det_boxes),
        ("gt_categories", gt_categories, "gt_boxes", gt_boxes), ("gt_crowd", gt_crowd, "gt_boxes", gt_boxes),
        ("gt_areas", gt_areas, "gt_boxes", gt_boxes),
    ):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
        if tensor.shape != boxes.shape[:2]:
            raise ValueError(f"{name} must have shape {list(boxes.shape[:2])} ({boxes_name}' [B, N]); got {list(tensor.shape)}")
    check_label_tensor("det_categories", det_categories)
    check_label_tensor("gt_categories", gt_categories)
    if gt_crowd.dtype != torch.bool:
        raise TypeError(f"gt_crowd must be a bool tensor; got dtype {gt_crowd.dtype}")
    for name, tensor in (("det_scores", det_scores), ("gt_areas", gt_areas)):
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor; got dtype {tensor.dtype}")


def _edges(boxes: torch.Tensor, box_format: str) -> tuple[torch.Tensor, ...]:
    """``(x1, y1, x2, y2, area)`` each ``[N, B]`` in float64 from ``[B, N, 4]``; from xywh the right edge is ``w + x``
    as in ``bbIou``."""
    x1, y1, a, b = boxes.double().permute(2, 1, 0).unbind(0)
    if box_format == "xywh":
        return x1, y1, a + x1, b + y1, a * b
    return x1, y1, a, b, (a - x1) * (b - y1)


def _coco_match(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas,
                options: CocoMatchOptions) -> CocoMatches:
    _check_inputs(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas)
    # Internally the batch is the last axis: rows are many and small in `exportloss evaluate` (one per image and
    # category), and elementwise kernels run fastest along a long contiguous innermost axis.
    batch, num_dets, num_gts = det_boxes.shape[0], det_boxes.shape[1], gt_boxes.shape[1]
    device = det_boxes.device
    scores = det_scores.double().T  # [D, B]
    det_cat, gt_cat, crowd = det_categories.long().T, gt_categories.long().T, gt_crowd.T  # [D, B], [G, B], [G, B]

    # Rank within the category by pairwise comparison: e is ahead of d on a higher score, or an equal one earlier.
    det_valid = (det_cat >= 0) & (scores == scores)
    det_index = torch.arange(num_dets, device=device)
    score_d, score_e = scores.unsqueeze(1), scores.unsqueeze(0)  # [d, e, B]
    ahead = (score_e > score_d) | ((score_e == score_d) & (det_index.view(1, -1, 1) < det_index.view(-1, 1, 1)))
    same_category = (det_cat.unsqueeze(1) == det_cat.unsqueeze(0)) & det_valid.unsqueeze(1) & det_valid.unsqueeze(0)
    rank = (ahead & same_category).long().sum(dim=1)  # [D, B]: rank[d] = #{e ahead of d, same category}
    rank = torch.where(det_valid, rank, -1)
    kept = det_valid & (rank < options.max_dets)

    # IoU [D, G, B] in bbIou's order, float64.
    dx1, dy1, dx2, dy2, det_area = _edges(det_boxes, options.box_format)
    gx1, gy1, gx2, gy2, gt_box_area = _edges(gt_boxes, options.box_format)
    width = torch.minimum(dx2.unsqueeze(1), gx2.unsqueeze(0)) - torch.maximum(dx1.unsqueeze(1), gx1.unsqueeze(0))
    height = torch.minimum(dy2.unsqueeze(1), gy2.unsqueeze(0)) - torch.maximum(dy1.unsqueeze(1), gy1.unsqueeze(0))
    inter = width * height
    union = torch.where(crowd.unsqueeze(0), det_area.unsqueeze(1), (det_area.unsqueeze(1) + gt_box_area.unsqueeze(0)) - inter)
    iou = torch.where((width > 0) & (height > 0), inter / union, 0.0)

    # Area ranges [A]: ignore flags of ground truths [A, G, B] and of unmatched detections [A, D, B].
    ranges = torch.tensor(COCO_AREA_RANGES, dtype=torch.float64, device=device)
    low, high = ranges[:, 0].view(-1, 1, 1), ranges[:, 1].view(-1, 1, 1)
    areas = gt_areas.double().T.unsqueeze(0)
    gt_valid = gt_cat >= 0
    gt_ignore = crowd.unsqueeze(0) | (areas < low) | (areas > high) | ~gt_valid.unsqueeze(0)
    det_outside = (det_area.unsqueeze(0) < low) | (det_area.unsqueeze(0) > high)

    # Static preference of each detection over the ground truths of its category [A, D, G, B] (0 = favourite):
    # how many of them beat g on (not ignored, IoU, later in file order).
    pair = (det_cat.unsqueeze(1) == gt_cat.unsqueeze(0)) & kept.unsqueeze(1) & gt_valid.unsqueeze(0)  # [D, G, B]
    regular = ~gt_ignore
    reg_g, reg_h = regular.unsqueeze(1).unsqueeze(3), regular.unsqueeze(1).unsqueeze(2)  # [A, 1, g, h, B]
    iou_g, iou_h = iou.unsqueeze(0).unsqueeze(3), iou.unsqueeze(0).unsqueeze(2)  # [1, D, g, h, B]
    gt_index = torch.arange(num_gts, device=device)
    later = (gt_index.view(-1, 1) < gt_index.view(1, -1)).view(1, 1, num_gts, num_gts, 1)  # h after g
    beats = (reg_h & ~reg_g) | ((reg_h == reg_g) & ((iou_h > iou_g) | ((iou_h == iou_g) & later)))  # h beats g
    preference = (beats & pair.unsqueeze(0).unsqueeze(2)).int().sum(dim=3)  # [A, D, G, B]

    thresholds = torch.tensor(COCO_IOU_THRESHOLDS, dtype=torch.float64, device=device).view(-1, 1, 1, 1)
    eligible = pair.unsqueeze(0) & (iou.unsqueeze(0) >= thresholds)  # [T, D, G, B]
    crowd_g = crowd.view(1, 1, 1, num_gts, batch)
    # The rounds work on int32 planes [A, T, D, G, B] prepared once: each detection's preference over the ground
    # truths it may take (none: num_gts), and each detection's rank as a claimant of the non-crowd ones it may
    # take (none: max_dets; a crowd is never used up, so nobody's claim on it holds anyone back).
    none_preferred, no_claim = num_gts, options.max_dets
    preference = select(eligible.unsqueeze(0), preference.unsqueeze(1), none_preferred)
    rank_d = rank.int().view(1, 1, num_dets, batch)
    claim = select(eligible.unsqueeze(0) & ~crowd_g, rank_d.unsqueeze(3), no_claim)  # [1, T, D, G, B]

    shape = (len(COCO_AREA_RANGES), len(COCO_IOU_THRESHOLDS))
    settled = (~kept).view(1, 1, num_dets, batch).expand(*shape, num_dets, batch)
    taken = torch.full((*shape, num_dets, batch), none_preferred, dtype=torch.int32, device=device)  # match's preference
    used = torch.zeros((*shape, 1, num_gts, batch), dtype=torch.bool, device=device)
    for _ in range(options.rounds):
        available = select(used, none_preferred, preference)
        best = available.amin(dim=3, keepdim=True)  # [A, T, D, 1, B]: the favourite's preference
        favourite = (available == best) & (best < none_preferred)  # one-hot, or empty
        first_claim = select(settled.unsqueeze(3), no_claim, claim).amin(dim=2, keepdim=True)  # [A, T, 1, G, B]
        claim_on_favourite = select(favourite, first_claim, no_claim).amin(dim=3)
        settle = ~settled & (claim_on_favourite >= rank_d)  # d is the earliest open claimant of its favourite
        taken = select(settle, best.squeeze(3), taken)
        used = used | ((favourite & settle.unsqueeze(3)).any(dim=2, keepdim=True) & ~crowd_g)
        settled = settled | settle
    unsettled = (~settled).long().sum(dim=(0, 1, 2))
    taken = select(settled, taken, none_preferred).unsqueeze(3)
    match = select((preference == taken) & (taken < none_preferred), gt_index.view(1, 1, 1, -1, 1), -1).amax(dim=3)

    rank_g = rank.view(1, 1, num_dets, 1, batch)
    matched_gt = match.unsqueeze(3) == gt_index.view(1, 1, 1, -1, 1)  # [A, T, D, G, B]
    to_ignored = (matched_gt & gt_ignore.unsqueeze(1).unsqueeze(2)).any(dim=3)
    # (bool Where has no onnxruntime CPU kernel: the select is written with And/Or)
    det_ignore = kept.view(1, 1, num_dets, batch) & (((match >= 0) & to_ignored) | ((match < 0) & det_outside.unsqueeze(1)))
    last_rank = select(matched_gt, rank_g, -1).amax(dim=2, keepdim=True)  # [A, T, 1, G, B]
    last = matched_gt & (rank_g == last_rank)
    gt_match = select(last, det_index.view(1, 1, -1, 1, 1), -1).amax(dim=2)  # [A, T, G, B]
    return CocoMatches(rank.T, kept.T, match.permute(3, 0, 1, 2), det_ignore.permute(3, 0, 1, 2), gt_ignore.permute(2, 0, 1),
                       gt_match.permute(3, 0, 1, 2), unsettled)


class CocoMatch(nn.Module):
    """Module form of :func:`coco_match`: ``forward(det_boxes, det_scores, det_categories, gt_boxes, gt_categories,
    gt_crowd, gt_areas) -> CocoMatches``. Takes a :class:`~exportloss.detection.options.CocoMatchOptions` or its
    fields as keywords; kept as ``self.options``."""

    def __init__(self, options: CocoMatchOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = CocoMatchOptions.resolve(options, **keywords)

    def forward(self, det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas) -> CocoMatches:
        return _coco_match(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()


class CocoAccumulation(NamedTuple):
    """pycocotools' ``eval`` arrays: ``precision [T, R, K, A, M]`` and ``recall [T, K, A, M]``, ``-1`` where a
    category has no countable ground truth in that area range; ``stats [12]``, the summary."""

    precision: np.ndarray
    recall: np.ndarray
    stats: np.ndarray


def coco_accumulate(
    det_category: np.ndarray,
    det_score: np.ndarray,
    det_image: np.ndarray,
    det_rank: np.ndarray,
    det_matched: np.ndarray,
    det_ignore: np.ndarray,
    num_positive: np.ndarray,
    max_dets: tuple[int, ...] = COCO_MAX_DETS,
) -> CocoAccumulation:
    """pycocotools' ``accumulate`` and ``summarize`` over a whole dataset's matching, vectorised in numpy.

    Args:
        det_category: ``[N]`` category *index* (0..K-1) of each kept detection (rank < ``max(max_dets)``).
        det_score: ``[N]`` float64 scores.
        det_image: ``[N]`` image position (pycocotools' sorted image-id order).
        det_rank: ``[N]`` rank within its (image, category), from :func:`coco_match`.
        det_matched: ``[N, A, T]`` bool, matched to a ground truth (``det_match >= 0``).
        det_ignore: ``[N, A, T]`` bool, :func:`coco_match`'s ``det_ignore``.
        num_positive: ``[K, A]`` ground truths that are not ignored (pycocotools' ``npig``).
        max_dets: pycocotools' ``maxDets``.

    One stable sort on (category, descending score, image, rank), pycocotools' order, serves every
    ``max_dets`` (a cut by rank keeps it); cumulative true and false positives per category; recall
    ``tp / npig`` and precision ``tp / (tp + fp + 2^-52)``; the precision read at the first position whose
    recall reaches each of the 101 recall points is the largest precision from there on (pycocotools'
    reverse running maximum), 0 where the recall is never reached.
    """
    num_categories, num_areas = num_positive.shape
    num_thresholds, num_recalls = len(COCO_IOU_THRESHOLDS), len(COCO_REC_THRESHOLDS)
    rec_thresholds = np.array(COCO_REC_THRESHOLDS)
    precision = -np.ones((num_thresholds, num_recalls, num_categories, num_areas, len(max_dets)))
    recall = -np.ones((num_thresholds, num_categories, num_areas, len(max_dets)))
    order = np.lexsort((det_rank, det_image, -np.asarray(det_score, np.float64), det_category))
    starts = np.searchsorted(det_category[order], np.arange(num_categories + 1))
    rows_flat = np.arange(num_areas * num_thresholds).reshape(num_areas, num_thresholds, 1)
    for k in range(num_categories):
        npig = np.asarray(num_positive[k], np.int64)[:, None, None]  # [A, 1, 1]
        if not npig.any():
            continue
        # The smallest true-positive count whose recall v / npig reaches each recall point [A, 1, R], found with
        # pycocotools' float64 division, so that the read-out position is exact.
        need = np.ceil(rec_thresholds * npig).astype(np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            need += need / npig < rec_thresholds  # one up where rounding left it short
            need -= ((need - 1) / npig >= rec_thresholds) & (need > 0)  # one down where it overshot
        category_rows = order[starts[k]: starts[k + 1]]
        for m, max_det in enumerate(max_dets):
            rows = category_rows[det_rank[category_rows] < max_det]
            counted = ~det_ignore[rows].transpose(1, 2, 0)  # [A, T, n]
            hits = det_matched[rows].transpose(1, 2, 0)
            tp = np.cumsum(hits & counted, axis=-1)
            fp = np.cumsum(~hits & counted, axis=-1)
            n = len(rows)
            tp_f = tp.astype(np.float64)
            pr = tp_f / (fp.astype(np.float64) + tp_f + np.spacing(1))
            best_after = np.maximum.accumulate(pr[..., ::-1], axis=-1)[..., ::-1]  # pycocotools' reverse running max
            # First position whose true-positive count reaches `need`: one search on keys increasing across rows.
            keys = (tp + rows_flat * (n + 2)).reshape(-1)
            at = np.searchsorted(keys, (need + rows_flat * (n + 2)).reshape(-1), side="left").reshape(
                num_areas, num_thresholds, num_recalls) - rows_flat * n
            q = np.take_along_axis(best_after, np.minimum(at, max(n - 1, 0)), axis=-1) if n else np.zeros(at.shape)
            q = np.where(at < n, q, 0.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                rc = tp_f[..., -1] / npig[..., 0] if n else np.zeros((num_areas, num_thresholds))
            has_gt = num_positive[k] > 0  # [A]; the others stay -1 (no countable ground truth)
            precision[:, :, k, has_gt, m] = q[has_gt].transpose(1, 2, 0)
            recall[:, k, has_gt, m] = rc[has_gt].T
    return CocoAccumulation(precision, recall, coco_summarize(precision, recall, max_dets))


SUMMARY_ROWS = (
    # (average precision?, IoU threshold or None for all, area range, max_dets)
    (True, None, "all", 100), (True, 0.5, "all", 100), (True, 0.75, "all", 100),
    (True, None, "small", 100), (True, None, "medium", 100), (True, None, "large", 100),
    (False, None, "all", 1), (False, None, "all", 10), (False, None, "all", 100),
    (False, None, "small", 100), (False, None, "medium", 100), (False, None, "large", 100),
)
"""pycocotools' 12 summary numbers (``_summarizeDets``), in order."""


def coco_summarize(precision: np.ndarray, recall: np.ndarray, max_dets: tuple[int, ...] = COCO_MAX_DETS) -> np.ndarray:
    """pycocotools' ``summarize``: each of :data:`SUMMARY_ROWS` is the mean over the entries that are not ``-1``
    (categories without a countable ground truth are left out), ``-1`` when there are none."""
    stats = np.zeros(len(SUMMARY_ROWS))
    thresholds = np.array(COCO_IOU_THRESHOLDS)
    for i, (is_ap, iou_thr, area, max_det) in enumerate(SUMMARY_ROWS):
        a, m = [COCO_AREA_NAMES.index(area)], [list(max_dets).index(max_det)] if max_det in max_dets else []
        s = precision if is_ap else recall
        if iou_thr is not None:
            s = s[np.where(iou_thr == thresholds)[0]]
        s = s[:, :, :, a, m] if is_ap else s[:, :, a, m]
        stats[i] = np.mean(s[s > -1]) if (s > -1).any() else -1.0
    return stats
