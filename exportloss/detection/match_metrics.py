"""In-graph evaluation of detections against padded ground truths: an evaluation graph a deployment
can run next to its detector (for example on ``cluster_nms``'s fixed-shape outputs).

Per image, over the *valid* ground truths (``gt_valid``) and *valid* predictions (``pred_valid``):

* ``best_iou[m] = max_k IoU(gt_m, pred_k)``, 0 when the image has no valid prediction; the best
  prediction is the lowest index on ties. A prediction may be the best of several ground truths (no
  one-to-one assignment, no scores).
* ``mean_best_iou = Σ_m best_iou[m] / num_gt``.
* ``recall[t] = #{m : best_iou[m] >= thresholds[t]} / num_gt``.
* ``matched_loss``: the mean over *matched* ground truths (``best_iou >= match_thr``) of
  ``1 − loss_kind(best prediction, gt)``, i.e. the IoU loss a training step would report on them.
* ``num_gt``: the number of valid ground truths.

An image with no valid ground truth reports 0 for every metric (and ``num_gt = 0``, so a consumer can
tell); an image with no matched pair reports ``matched_loss = 0``. Empty axes work: ``K = 0``
predictions give best IoU 0 for every ground truth, ``M = 0`` ground truths give ``num_gt = 0``.

**Ties** (any backend): a ground truth's best prediction is the lowest index among equal IoUs (a
ReduceMax over unique keys, :mod:`exportloss.ops.ties`, not ArgMax).

**Non-finite input**: a prediction or ground truth with a non-finite coordinate counts as padding
(overlaps nothing, is not counted in ``num_gt``), so every output stays finite. IoU is ``I / (U + eps)``
(:mod:`exportloss.boxes.iou`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..boxes.iou import aligned_iou, pairwise_iou
from ..ops.checks import check_boxes
from ..ops.numerics import is_finite
from ..ops.options import DEFAULT
from ..ops.ties import first_argmax
from .options import MatchOptions

_NO_PREDICTION = -1.0
"""Stands in for the IoU with a padded prediction: below any IoU."""


class Metrics(NamedTuple):
    mean_best_iou: torch.Tensor
    recall: torch.Tensor
    matched_loss: torch.Tensor
    num_gt: torch.Tensor


def match_metrics(
    pred_boxes: torch.Tensor,
    pred_valid: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_valid: torch.Tensor,
    thresholds: Sequence[float] = DEFAULT,
    match_thr: float = DEFAULT,
    loss_kind: str = DEFAULT,
    eps: float = DEFAULT,
    *,
    options: MatchOptions | None = None,
) -> Metrics:
    """Evaluation metrics per image (see the module docstring).

    Args:
        pred_boxes: ``[B, K, 4]`` xyxy predictions, padded to K.
        pred_valid: ``[B, K]`` bool, False for padding.
        gt_boxes: ``[B, M, 4]`` xyxy ground truths, padded to M.
        gt_valid: ``[B, M]`` bool, False for padding.
        thresholds: IoU thresholds of the recall output, each in (0, 1] (default ``(0.5, 0.75)``).
        match_thr: the best IoU at which a ground truth counts as matched for ``matched_loss``, in (0, 1] (default 0.5).
        loss_kind: one of :data:`exportloss.IOU_KINDS` (default ``"ciou"``).
        eps: stabiliser, see :mod:`exportloss.boxes.iou`; finite and > 0 (default 1e-7).
        options: a prepared :class:`~exportloss.detection.options.MatchOptions` instead of the keywords above.

    Returns:
        :class:`Metrics` ``(mean_best_iou [B], recall [B, len(thresholds)], matched_loss [B],
        num_gt [B] int64)``.
    """
    options = MatchOptions.resolve(options, thresholds=thresholds, match_thr=match_thr, loss_kind=loss_kind, eps=eps)
    return _match_metrics(pred_boxes, pred_valid, gt_boxes, gt_valid, options)


def _check_inputs(pred_boxes, pred_valid, gt_boxes, gt_valid) -> None:
    for boxes_name, boxes, valid_name, valid in (("pred_boxes", pred_boxes, "pred_valid", pred_valid),
                                                 ("gt_boxes", gt_boxes, "gt_valid", gt_valid)):
        if check_boxes(boxes_name, boxes, min_dim=3).dim() != 3:
            raise ValueError(f"{boxes_name} must have shape [B, K, 4]; got {list(boxes.shape)}")
        if not isinstance(valid, torch.Tensor) or valid.dtype != torch.bool:
            raise TypeError(f"{valid_name} must be a bool tensor; got {getattr(valid, 'dtype', type(valid).__name__)}")
        if valid.shape != boxes.shape[:2]:
            raise ValueError(f"{valid_name} must have shape {list(boxes.shape[:2])} ({boxes_name}' [B, K]); got {list(valid.shape)}")
    if pred_boxes.shape[0] != gt_boxes.shape[0]:
        raise ValueError(f"pred_boxes and gt_boxes must have the same batch size; got {pred_boxes.shape[0]} and {gt_boxes.shape[0]}")


def _match_metrics(pred_boxes, pred_valid, gt_boxes, gt_valid, options: MatchOptions) -> Metrics:
    _check_inputs(pred_boxes, pred_valid, gt_boxes, gt_valid)
    # Boxes with a non-finite coordinate count as padding (zeroed so that no NaN enters the sums).
    pred_valid, pred_boxes = _finite_only(pred_valid, pred_boxes)
    gt_valid, gt_boxes = _finite_only(gt_valid, gt_boxes)
    dtype = torch.promote_types(pred_boxes.dtype, gt_boxes.dtype)
    if pred_boxes.shape[1] == 0:  # K = 0 (static): every ground truth has best IoU 0 and no match
        batch, num_gt = gt_boxes.shape[0], gt_valid.sum(dim=1)
        zeros = torch.zeros(batch, dtype=dtype, device=gt_boxes.device)
        return Metrics(zeros, zeros.unsqueeze(1).expand(batch, len(options.thresholds)).clone(), zeros.clone(), num_gt)
    ious = pairwise_iou(gt_boxes, pred_boxes, "iou", eps=options.eps)  # [B, M, K]
    ious = torch.where(pred_valid.unsqueeze(1), ious, _NO_PREDICTION)
    best_iou, best_pred = first_argmax(ious, dim=2)  # ties to the lower prediction index
    best_iou, best_pred = best_iou.squeeze(2).clamp(min=0.0), best_pred.squeeze(2)
    num_gt = gt_valid.sum(dim=1)
    per_gt = num_gt.clamp(min=1).to(dtype).reciprocal()
    gt_weight = gt_valid.to(dtype)
    mean_best_iou = (best_iou * gt_weight).sum(dim=1) * per_gt
    hits = torch.stack([best_iou >= thr for thr in options.thresholds], dim=-1)  # [B, M, T]
    recall = (hits.to(dtype) * gt_weight.unsqueeze(-1)).sum(dim=1) * per_gt.unsqueeze(-1)

    matched = gt_weight * (best_iou >= options.match_thr).to(dtype)
    best_boxes = pred_boxes.gather(1, best_pred.unsqueeze(-1).expand(-1, -1, 4))
    # Unmatched rows pair a ground truth with an arbitrary box; the IoU family stays finite on any
    # boxes, so multiplying by the 0 weight removes them exactly.
    loss = 1.0 - aligned_iou(best_boxes, gt_boxes, options.loss_kind, eps=options.eps)
    matched_loss = (loss * matched).sum(dim=1) / matched.sum(dim=1).clamp(min=1.0)
    return Metrics(mean_best_iou, recall, matched_loss, num_gt)


def _finite_only(valid: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    finite = is_finite(boxes).all(dim=-1)
    return valid & finite, torch.where(finite.unsqueeze(-1), boxes, 0.0)


class MatchMetrics(nn.Module):
    """Module form of :func:`match_metrics`: ``forward(pred_boxes, pred_valid, gt_boxes, gt_valid) -> Metrics``.

    Takes a :class:`~exportloss.detection.options.MatchOptions` or its fields as keywords; kept as ``self.options``.
    """

    def __init__(self, options: MatchOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = MatchOptions.resolve(options, **keywords)

    def forward(self, pred_boxes, pred_valid, gt_boxes, gt_valid) -> Metrics:
        return _match_metrics(pred_boxes, pred_valid, gt_boxes, gt_valid, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()
