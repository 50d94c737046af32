"""The IoU family (IoU, GIoU, DIoU, CIoU), pairwise and aligned, as trace-friendly functions.

Formulas, for boxes ``a`` and ``b`` with intersection ``I``, union ``U = area_a + area_b - I``,
smallest enclosing box of width ``cw`` and height ``ch`` and area ``C = cw · ch``, squared centre
distance ``ρ²`` and eps (default ``1e-7``):

* IoU  = ``I / (U + eps)``
* GIoU = ``IoU - (C - U) / (C + eps)``
* DIoU = ``IoU - ρ² / (cw² + ch² + eps)``
* CIoU = ``DIoU - α · v`` with ``v = 4/π² · (atan(w_a / (h_a + eps)) - atan(w_b / (h_b + eps)))²``
  and ``α = v / ((v + (1 - IoU)) + eps)``; α carries no gradient (it is detached), as in torchvision,
  mmdet and ultralytics. The denominator adds eps last, to a sum of two non-negative terms: written
  ``(1 + eps) - IoU + v``, eps is lost to rounding in fp16 (``1 + 1e-7 == 1``) and identical boxes give
  ``0 / 0``; this order gives ``0 / eps = 0`` for them in every dtype. The angles come from
  :func:`exportloss.boxes.atan_ratio` (no ``Atan`` node, which onnxruntime's CUDA provider lacks).

Gradients on degenerate boxes are finite but can be large: for identical zero-height boxes the GIoU
penalty ``(C - U) / (C + eps)`` rises from 0 to about 1 when one box moves by ``eps / side``, so its slope
there is up to ``side / eps``. That is the slope of the eps-regularised metric (the exact one is 0/0).

Precision: fp16 and bf16 boxes are computed in float32 and the result is returned in the input dtype
(as torchvision's ``_upcast``): box areas of 256-px boxes already exceed fp16's 65504.

eps enters exactly where written above and nowhere else. On ordinary boxes the values equal
torchvision.ops (``box_iou``, ``generalized_box_iou``, ``distance_box_iou``, ``complete_box_iou``)
within 1e-5; unlike torchvision they stay finite, with finite gradients, on zero-area boxes: two
empty boxes have IoU 0 and GIoU 0, and a zero-height box has a finite aspect angle. Inverted boxes
(``x2 < x1``) are treated as zero-width.

Nothing here branches on tensor values, calls ``.item()`` or indexes with masks: the Python
branches depend only on ``kind`` and ``fmt``, fixed when a graph is exported.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import broadcast_batch, check_boxes, check_choice, check_eps
from .boxes import BOX_FORMATS, BoxTerms, box_terms

IOU_KINDS = ("iou", "giou", "diou", "ciou")


def pairwise_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7
) -> torch.Tensor:
    """Overlap of every box in ``boxes1`` with every box in ``boxes2``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt``.
        boxes2: ``[..., M, 4]`` floating boxes in ``fmt``; leading dimensions broadcast with ``boxes1``'s.
        kind: ``"iou"``, ``"giou"``, ``"diou"`` or ``"ciou"`` (formulas in the module docstring).
        fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
        eps: stabiliser, placed as in the module docstring.

    Returns:
        ``[..., N, M]``: entry ``(n, m)`` is the metric of ``boxes1[..., n, :]`` and ``boxes2[..., m, :]``.
    """
    a, b = _pairwise_terms(boxes1, boxes2, kind, fmt, eps)
    return _in_input_dtype(_overlap(a, b, kind, eps), boxes1, boxes2)


def pairwise_iou_and_distance(
    boxes1: torch.Tensor, boxes2: torch.Tensor, fmt: str = "xyxy", eps: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and DIoU's distance penalty ``ρ² / (cw² + ch² + eps)`` of every pair, from one pass over the pairs.

    ``DIoU = IoU - distance``; DIoU-NMS uses ``IoU - distance ** β``. Shapes as for :func:`pairwise_iou`:
    ``[..., N, 4]`` and ``[..., M, 4]`` give two ``[..., N, M]`` tensors.
    """
    a, b = _pairwise_terms(boxes1, boxes2, "diou", fmt, eps)
    iou, _, excess_x, excess_y = _iou_and_excess(a, b, eps)
    distance = _centre_distance(a, b, b.w + excess_x, b.h + excess_y, eps)
    return _in_input_dtype(iou, boxes1, boxes2), _in_input_dtype(distance, boxes1, boxes2)


def _pairwise_terms(boxes1: object, boxes2: object, kind: str, fmt: str, eps: float) -> tuple[BoxTerms, BoxTerms]:
    """Checked per-box terms, ``boxes1``'s as columns ``[..., N, 1]`` and ``boxes2``'s as rows ``[..., 1, M]``."""
    _check_args(boxes1, boxes2, kind, fmt, eps, min_dim=2)
    broadcast_batch("boxes1", boxes1.shape[:-2], "boxes2", boxes2.shape[:-2])
    with_aspect = kind == "ciou"
    return (box_terms(boxes1, fmt, eps, with_aspect, layout="column"),
            box_terms(boxes2, fmt, eps, with_aspect, layout="row"))


def aligned_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7
) -> torch.Tensor:
    """Overlap of corresponding boxes: ``boxes1[..., n, :]`` with ``boxes2[..., n, :]``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt`` (a single box ``[4]`` works too).
        boxes2: ``[..., N, 4]``; all leading dimensions broadcast with ``boxes1``'s.
        kind, fmt, eps: as for :func:`pairwise_iou`.

    Returns:
        ``[..., N]``, the broadcast leading shape.
    """
    _check_args(boxes1, boxes2, kind, fmt, eps, min_dim=1)
    broadcast_batch("boxes1", boxes1.shape[:-1], "boxes2", boxes2.shape[:-1])
    with_aspect = kind == "ciou"
    overlap = _overlap(box_terms(boxes1, fmt, eps, with_aspect), box_terms(boxes2, fmt, eps, with_aspect), kind, eps)
    return _in_input_dtype(overlap, boxes1, boxes2)


def _check_args(boxes1: object, boxes2: object, kind: str, fmt: str, eps: object, min_dim: int) -> None:
    check_choice("kind", kind, IOU_KINDS)
    check_choice("fmt", fmt, BOX_FORMATS)
    check_eps(eps)
    check_boxes("boxes1", boxes1, min_dim)
    check_boxes("boxes2", boxes2, min_dim)


def _overlap(a: BoxTerms, b: BoxTerms, kind: str, eps: float) -> torch.Tensor:
    iou, union_eps, excess_x, excess_y = _iou_and_excess(a, b, eps)
    if kind == "iou":
        return iou
    enclose_w = b.w + excess_x
    enclose_h = b.h + excess_y
    if kind == "giou":
        enclose_area = enclose_w * enclose_h
        # (C - U) / (C + eps), with U = union_eps - eps.
        return iou - (enclose_area - (union_eps - eps)) / (enclose_area + eps)
    diou = iou - _centre_distance(a, b, enclose_w, enclose_h, eps)
    if kind == "diou":
        return diou
    angle_gap = a.aspect_angle - b.aspect_angle
    v = angle_gap * angle_gap
    alpha = (v / ((v + (1.0 - iou)) + eps)).detach()
    return diou - alpha * v


def _iou_and_excess(a: BoxTerms, b: BoxTerms, eps: float) -> tuple[torch.Tensor, ...]:
    """``(iou, union + eps, excess_x, excess_y)``; ``b.w + excess_x`` is the enclosing box's width.

    Every line runs on the broadcast [..., N, M] shape, so each is written to cost one cheap pass: eps
    is folded into per-box terms, and the intersection and enclosing spans come from
      min(hi_a, hi_b) - max(lo_a, lo_b) = w_a - excess,  max(hi_a, hi_b) - min(lo_a, lo_b) = w_b + excess,
      excess = relu(hi_a - hi_b) + relu(lo_b - lo_a),
    because a broadcast Sub plus Relu is several times cheaper than a broadcast Min or Max in onnxruntime.
    """
    excess_x = torch.relu(a.x2 - b.x2) + torch.relu(b.x1 - a.x1)
    excess_y = torch.relu(a.y2 - b.y2) + torch.relu(b.y1 - a.y1)
    inter = torch.relu(a.w - excess_x) * torch.relu(a.h - excess_y)
    union_eps = ((a.area + eps) + b.area) - inter
    return inter / union_eps, union_eps, excess_x, excess_y


def _in_input_dtype(result: torch.Tensor, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """``result`` (computed in float32 for fp16/bf16 boxes, see :func:`box_terms`) in the inputs' promoted dtype."""
    dtype = torch.promote_types(boxes1.dtype, boxes2.dtype)
    return result if result.dtype == dtype else result.to(dtype)


def _centre_distance(a: BoxTerms, b: BoxTerms, enclose_w: torch.Tensor, enclose_h: torch.Tensor, eps: float) -> torch.Tensor:
    """``ρ² / (cw² + ch² + eps)``: squared centre distance over the enclosing box's squared diagonal."""
    dx = a.cx - b.cx
    dy = a.cy - b.cy
    return (dx * dx + dy * dy) / (enclose_w * enclose_w + enclose_h * enclose_h + eps)


class PairwiseIoU(nn.Module):
    """Module form of :func:`pairwise_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., M, 4]) -> [..., N, M]``."""

    def __init__(self, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, IOU_KINDS)
        self.fmt = check_choice("fmt", fmt, BOX_FORMATS)
        self.eps = check_eps(eps)

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return pairwise_iou(boxes1, boxes2, self.kind, self.fmt, self.eps)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, fmt={self.fmt!r}, eps={self.eps}"


class AlignedIoU(PairwiseIoU):
    """Module form of :func:`aligned_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., N, 4]) -> [..., N]``."""

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return aligned_iou(boxes1, boxes2, self.kind, self.fmt, self.eps)
