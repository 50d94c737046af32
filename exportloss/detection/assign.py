"""Max-IoU assignment of anchors (or predictions) to padded ground truths, as a static graph.

The semantics are those of mmdet's ``MaxIoUAssigner`` (``gt_max_assign_all=True``), in this order:

1. Each anchor takes its best *valid* ground truth by overlap (the lowest index on ties);
   ``max_overlap`` is that overlap.
2. ``max_overlap < neg_thr`` → background (``-1``); ``max_overlap >= pos_thr`` → that ground truth's
   index; otherwise ignored (``-2``). ``neg_thr > pos_thr`` is refused (mmdet lets matching win); an unset
   ``neg_thr`` is 0.4, or ``pos_thr`` when that is lower.
3. With ``allow_low_quality``, each valid ground truth whose best overlap over all anchors is
   ``> min_pos_thr`` is given to *every* anchor that attains that best overlap, overriding step 2;
   when several ground truths claim one anchor, the highest index wins (mmdet loops over ground truths
   in order and later ones overwrite).

Differences from mmdet, both for degenerate input: mmdet tests ``>= min_pos_iou``, which with the
default 0 makes a ground truth that overlaps no anchor at all claim every anchor; here the test is
``>``, so such a ground truth claims nothing. mmdet only marks anchors with ``0 <= max_overlap <
neg_thr`` as background, which leaves DIoU's negative overlaps ignored; here every overlap below
``neg_thr`` is background (identical for IoU, which is never negative).

Padded ground truths (``gt_valid`` False) never match and do not count. An image without any valid
ground truth gets ``assigned_gt = -1`` and ``max_overlap = 0`` for every anchor.

**Ties** (any backend): an anchor's best ground truth is the lowest index among equal overlaps (a
ReduceMax over unique keys, :mod:`exportloss.ops.ties`, not ArgMax); a shared anchor goes to the highest
claiming index (a ReduceMax over ground-truth numbers).

**Non-finite input**: a ground truth with a non-finite coordinate is treated as invalid (padding);
an anchor with one is background, claims nothing and reports ``max_overlap = NaN``. Overlap is IoU
``I / (U + eps)`` or DIoU (:mod:`exportloss.boxes.iou`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..boxes.iou import pairwise_iou
from ..ops.checks import broadcast_batch, check_boxes
from ..ops.numerics import is_finite
from ..ops.options import DEFAULT
from ..ops.ties import first_argmax
from .options import AssignOptions

BACKGROUND = -1
IGNORED = -2
_PADDING_PENALTY = 3.0
"""Subtracted from the overlaps with a padded ground truth, putting them below any IoU or DIoU (both lie in
[-1, 1]). A per-ground-truth [B, 1, M] penalty and one broadcast Sub are much cheaper in onnxruntime than
a Where over [B, N, M]."""


class Assignment(NamedTuple):
    assigned_gt: torch.Tensor
    max_overlap: torch.Tensor


def max_iou_assign(
    anchors: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_valid: torch.Tensor,
    pos_thr: float = DEFAULT,
    neg_thr: float = DEFAULT,
    min_pos_thr: float = DEFAULT,
    allow_low_quality: bool = DEFAULT,
    kind: str = DEFAULT,
    eps: float = DEFAULT,
    *,
    options: AssignOptions | None = None,
) -> Assignment:
    """Assign each anchor to a ground truth, to background or to "ignore" (see the module docstring).

    Args:
        anchors: ``[B, N, 4]`` xyxy anchors or predicted boxes (``[1, N, 4]`` broadcasts over the batch).
        gt_boxes: ``[B, M, 4]`` xyxy ground truths, padded to M.
        gt_valid: ``[B, M]`` bool, False for padding.
        pos_thr, neg_thr, min_pos_thr: thresholds of steps 2 and 3, each in (-1, 1], ``neg_thr <= pos_thr``
            (defaults 0.5, 0.4 or ``pos_thr`` when that is lower, 0.0).
        allow_low_quality: run step 3 (default True).
        kind: ``"iou"`` (default) or ``"diou"``.
        eps: stabiliser of the overlap, see :mod:`exportloss.boxes.iou`; finite and > 0 (default 1e-7).
        options: a prepared :class:`~exportloss.detection.options.AssignOptions` instead of the keywords above.

    Returns:
        :class:`Assignment` ``(assigned_gt [B, N] int64: ground-truth index, -1 background,
        -2 ignored; max_overlap [B, N], the best valid overlap, 0 without valid ground truths,
        NaN for an anchor with a non-finite coordinate)``.

    Non-finite input: a ground truth with a non-finite coordinate is invalid (as if padded); an
    anchor with one is background with ``max_overlap = NaN`` and claims nothing. ``M = 0`` ground
    truths give all background; ``N = 0`` anchors give empty ``[B, 0]`` outputs.
    """
    options = AssignOptions.resolve(options, pos_thr=pos_thr, neg_thr=neg_thr, min_pos_thr=min_pos_thr,
                                    allow_low_quality=allow_low_quality, kind=kind, eps=eps)
    return _assign(anchors, gt_boxes, gt_valid, options)


def _check_inputs(anchors: object, gt_boxes: object, gt_valid: object) -> None:
    for name, boxes in (("anchors", anchors), ("gt_boxes", gt_boxes)):
        if check_boxes(name, boxes, min_dim=3).dim() != 3:
            raise ValueError(f"{name} must have shape [B, N, 4]; got {list(boxes.shape)}")
    broadcast_batch("anchors", anchors.shape[:1], "gt_boxes", gt_boxes.shape[:1])
    if not isinstance(gt_valid, torch.Tensor) or gt_valid.dtype != torch.bool:
        raise TypeError(f"gt_valid must be a bool tensor; got {getattr(gt_valid, 'dtype', type(gt_valid).__name__)}")
    if gt_valid.shape != gt_boxes.shape[:2]:
        raise ValueError(f"gt_valid must have shape {list(gt_boxes.shape[:2])} (gt_boxes' [B, M]); got {list(gt_valid.shape)}")


def _assign(anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_valid: torch.Tensor, options: AssignOptions) -> Assignment:
    _check_inputs(anchors, gt_boxes, gt_valid)
    batch, num_anchors = gt_boxes.shape[0], anchors.shape[1]
    if num_anchors == 0 or gt_boxes.shape[1] == 0:  # static shapes: decided at trace time
        dtype = torch.promote_types(anchors.dtype, gt_boxes.dtype)
        return Assignment(torch.full((batch, num_anchors), BACKGROUND, dtype=torch.int64, device=anchors.device),
                          torch.zeros(batch, num_anchors, dtype=dtype, device=anchors.device))
    # Non-finite boxes become zero boxes (finite overlaps) that the penalty below then disqualifies.
    gt_finite = is_finite(gt_boxes).all(dim=-1)
    anchor_finite = is_finite(anchors).all(dim=-1)
    gt_valid = gt_valid & gt_finite
    gt_boxes = torch.where(gt_finite.unsqueeze(-1), gt_boxes, 0.0)
    anchors = torch.where(anchor_finite.unsqueeze(-1), anchors, 0.0)
    overlaps = pairwise_iou(anchors, gt_boxes, options.kind, eps=options.eps)  # [B, N, M]
    # Two broadcast Subs of small [B, 1, M] and [B, N, 1] penalties, cheaper than forming [B, N, M] masks.
    overlaps = overlaps - (~gt_valid).unsqueeze(1).to(overlaps.dtype) * _PADDING_PENALTY
    overlaps = overlaps - (~anchor_finite).unsqueeze(2).to(overlaps.dtype) * _PADDING_PENALTY
    max_overlap, best_gt = first_argmax(overlaps, dim=2)  # ties to the lower ground-truth index
    max_overlap, best_gt = max_overlap.squeeze(2), best_gt.squeeze(2)
    assigned = torch.where(
        max_overlap >= options.pos_thr,
        best_gt,
        torch.where(max_overlap < options.neg_thr, BACKGROUND, IGNORED),
    )
    if options.allow_low_quality:
        gt_best = overlaps.amax(dim=1, keepdim=True)  # [B, 1, M]
        claims = (overlaps == gt_best) & ((gt_best > options.min_pos_thr) & gt_valid.unsqueeze(1))
        # The highest claiming index wins: number ground truths from 1, take the max, 0 = no claim.
        gt_number = torch.arange(1, gt_boxes.shape[1] + 1, device=gt_boxes.device)
        claimant = (claims * gt_number).amax(dim=2) - 1
        assigned = torch.where(claimant >= 0, claimant, assigned)
    has_gt = gt_valid.any(dim=1, keepdim=True)
    max_overlap = torch.where(has_gt, max_overlap, 0.0)
    return Assignment(assigned, torch.where(anchor_finite, max_overlap, float("nan")))


class MaxIoUAssigner(nn.Module):
    """Module form of :func:`max_iou_assign`: ``forward(anchors, gt_boxes, gt_valid) -> Assignment``.

    Takes an :class:`~exportloss.detection.options.AssignOptions` or its fields as keywords; kept as ``self.options``.
    """

    def __init__(self, options: AssignOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = AssignOptions.resolve(options, **keywords)

    def forward(self, anchors: torch.Tensor, gt_boxes: torch.Tensor, gt_valid: torch.Tensor) -> Assignment:
        return _assign(anchors, gt_boxes, gt_valid, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()
