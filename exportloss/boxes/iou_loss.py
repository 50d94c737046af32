"""``1 - metric`` losses over the IoU family, for aligned prediction/target pairs."""

from __future__ import annotations

import torch
from torch import nn

from ..ops.checks import check_choice, check_eps
from ..ops.non_finite import non_finite_marker
from ..ops.reduction import check_reduction, reduce_box_loss
from .formats import BOX_FORMATS
from .iou import BOX_EPS, IOU_KINDS, aligned_iou, check_alpha


EIOU_SMOOTH_POINT = 0.1
"""Knee of the EIoU loss, mmdet's ``smooth_point`` default."""


class IoULoss(nn.Module):
    """``loss = 1 - aligned_iou(pred, target, kind, fmt, eps)``, then an optional weight and the reduction.

    Values lie in ``[0, 1]`` for ``kind="iou"`` and in ``[0, 2]`` for GIoU/DIoU; CIoU can exceed 2 by
    at most ``α·v <= 1``. Formulas and the place of eps are those of :mod:`exportloss.boxes.iou`; the values
    equal torchvision's ``generalized_box_iou_loss`` / ``distance_box_iou_loss`` /
    ``complete_box_iou_loss`` within 1e-5 on ordinary boxes.

    The other kinds, as :mod:`exportloss.boxes.iou` defines them: ``"siou"`` gives ``1 − SIoU`` (mmdet's
    ``siou_loss`` with ``neg_gamma=True``, unclamped); ``"alpha_iou"`` gives ``1 − IoU^α`` (α-IoU);
    ``"eiou"`` gives mmdet's ``eiou_loss``: ``l = 1 − EIoU`` through a smooth knee at
    :data:`EIOU_SMOOTH_POINT` ``s = 0.1``, ``0.5·l²/s`` for ``l < s`` and ``l − 0.5·s`` above.

    Args:
        kind: one of :data:`exportloss.IOU_KINDS`.
        fmt: box format of both inputs: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
        reduction: ``"mean"`` (sum over boxes / number of boxes), ``"sum"`` or ``"none"``.
        eps: stabiliser, see :mod:`exportloss.boxes.iou`.
        alpha: the power of ``kind="alpha_iou"`` (default 3); ignored by the other kinds.

    Shapes:
        ``forward(pred [..., N, 4], target [..., N, 4], weight [..., N] | None)``: a scalar, or
        ``[..., N]`` with ``reduction="none"``. ``weight`` multiplies each box's loss before reducing.
    """

    def __init__(self, kind: str = "ciou", fmt: str = "xyxy", reduction: str = "mean", eps: float = BOX_EPS,
                 alpha: float = 3.0) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, IOU_KINDS)
        self.fmt = check_choice("fmt", fmt, BOX_FORMATS)
        self.reduction = check_reduction(reduction)
        self.eps = check_eps(eps)
        self.alpha = check_alpha(alpha)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        return reduce_box_loss(lambda: self._per_box(pred, target), self.reduction, weight)

    def _per_box(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = 1.0 - aligned_iou(pred, target, self.kind, self.fmt, self.eps, self.alpha)
        if self.kind == "eiou":
            # mmdet's smooth knee: 0.5·l²/s below s, l − 0.5·s above (continuous value and slope).
            loss = torch.where(loss < EIOU_SMOOTH_POINT, 0.5 / EIOU_SMOOTH_POINT * loss * loss, loss - 0.5 * EIOU_SMOOTH_POINT)
        # The non-finite policy: IoU, EIoU and α-IoU would give a finite loss for an infinite coordinate.
        return loss + (non_finite_marker(pred, -1) + non_finite_marker(target, -1)).to(loss.dtype)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, fmt={self.fmt!r}, reduction={self.reduction!r}, eps={self.eps}"
