"""The IoU family (IoU, GIoU, DIoU, CIoU), pairwise and aligned, as trace-friendly functions.

Formulas, for boxes ``a`` and ``b`` with intersection ``I``, union ``U = area_a + area_b - I``,
smallest enclosing box of width ``cw`` and height ``ch`` and area ``C = cw · ch``, squared centre
distance ``ρ²`` and eps (default ``1e-7``):

* IoU  = ``I / (U + eps)``
* GIoU = ``IoU - (C - U) / (C + eps)``
* DIoU = ``IoU - ρ² / (cw² + ch² + eps)``
* CIoU = ``DIoU - α · v`` with ``v = 4/π² · (atan(w_a / (h_a + eps)) - atan(w_b / (h_b + eps)))²``
  and ``α = v / (1 - IoU + v + eps)``; α carries no gradient (it is detached), as in torchvision,
  mmdet and ultralytics.

Three more kinds, each as its source defines it (``dx, dy`` = centre of ``b`` minus centre of ``a``):

* EIoU, mmdet's ``eiou_loss`` (Extended-IoU of Peng & Yu, *not* the Focal-EIoU of Zhang et al.):
  ``I_s / (area_a + area_b − I_s + eps)`` with the *signed* intersection ``I_s``, which equals ``I``
  for overlapping boxes and turns negative for disjoint ones (so EIoU < 0 there). With the enclosing box's top-left ``(ex, ey)`` and the
  intersection's corner coordinates ``lo_x = max(x1)``, ``hi_x = min(x2)`` (likewise y), measured
  from ``(ex, ey)``: ``I_s = hi_x·hi_y + min(lo_x, hi_x)·min(lo_y, hi_y) − lo_x·max(lo_y, hi_y) −
  max(lo_x, hi_x)·lo_y``. :class:`~exportloss.IoULoss` applies mmdet's smooth knee to it.
* SIoU (Gevorgyan 2022; mmdet's ``siou_loss`` with ``neg_gamma=True``, the paper's sign):
  ``IoU − (Δ + Ω)/2``; angle cost ``Λ = sin 2α = 2·|dx·dy| / (dx² + dy² + eps)`` (mmdet writes it
  ``cos(2·asin(sin α) − π/2)``, the same number), ``γ = Λ − 2``, distance cost
  ``Δ = 2 − exp(γ·dx²/(cw² + eps)) − exp(γ·dy²/(ch² + eps))``, shape cost
  ``Ω = Σ_{w,h} (1 − exp(−|w_a − w_b| / (max(w_a, w_b) + eps)))⁴``. mmdet's default
  ``neg_gamma=False`` flips γ's sign, which makes Δ negative and unbounded; this kind follows the paper.
  mmdet clamps its loss to ``1 − clamp(SIoU, −1, 1)``; here SIoU is not clamped (it stays above −1.1).
* α-IoU (He et al. 2021): ``max(IoU, eps)^α``, ``alpha`` (default 3, the paper's and YOLO recipes'
  choice) being the power; only plain IoU is raised to it. The floor at eps keeps the gradient
  finite for ``α < 1``.

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

from ._checks import broadcast_batch, check_boxes, check_choice, check_number
from .boxes import BOX_FORMATS, BoxTerms, box_terms

IOU_KINDS = ("iou", "giou", "diou", "ciou", "eiou", "siou", "alpha_iou")


def pairwise_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7,
    alpha: float = 3.0,
) -> torch.Tensor:
    """Overlap of every box in ``boxes1`` with every box in ``boxes2``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt``.
        boxes2: ``[..., M, 4]`` floating boxes in ``fmt``; leading dimensions broadcast with ``boxes1``'s.
        kind: ``"iou"``, ``"giou"``, ``"diou"`` or ``"ciou"`` (formulas in the module docstring).
        fmt: ``"xyxy"``, ``"xywh"`` or ``"cxcywh"``.
        eps: stabiliser, placed as in the module docstring.
        alpha: the power of ``kind="alpha_iou"``; ignored by the other kinds.

    Returns:
        ``[..., N, M]``: entry ``(n, m)`` is the metric of ``boxes1[..., n, :]`` and ``boxes2[..., m, :]``.
    """
    a, b = _pairwise_terms(boxes1, boxes2, kind, fmt, eps)
    return _overlap(a, b, kind, eps, alpha)


def pairwise_iou_and_distance(
    boxes1: torch.Tensor, boxes2: torch.Tensor, fmt: str = "xyxy", eps: float = 1e-7
) -> tuple[torch.Tensor, torch.Tensor]:
    """IoU and DIoU's distance penalty ``ρ² / (cw² + ch² + eps)`` of every pair, from one pass over the pairs.

    ``DIoU = IoU - distance``; DIoU-NMS uses ``IoU - distance ** β``. Shapes as for :func:`pairwise_iou`:
    ``[..., N, 4]`` and ``[..., M, 4]`` give two ``[..., N, M]`` tensors.
    """
    a, b = _pairwise_terms(boxes1, boxes2, "diou", fmt, eps)
    iou, _, excess_x, excess_y = _iou_and_excess(a, b, eps)
    return iou, _centre_distance(a, b, b.w + excess_x, b.h + excess_y, eps)


def _pairwise_terms(boxes1: object, boxes2: object, kind: str, fmt: str, eps: float) -> tuple[BoxTerms, BoxTerms]:
    """Checked per-box terms, ``boxes1``'s as columns ``[..., N, 1]`` and ``boxes2``'s as rows ``[..., 1, M]``."""
    _check_args(boxes1, boxes2, kind, fmt, min_dim=2)
    broadcast_batch("boxes1", boxes1.shape[:-2], "boxes2", boxes2.shape[:-2])
    with_aspect = kind == "ciou"
    return (box_terms(boxes1, fmt, eps, with_aspect, layout="column"),
            box_terms(boxes2, fmt, eps, with_aspect, layout="row"))


def aligned_iou(
    boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7,
    alpha: float = 3.0,
) -> torch.Tensor:
    """Overlap of corresponding boxes: ``boxes1[..., n, :]`` with ``boxes2[..., n, :]``.

    Args:
        boxes1: ``[..., N, 4]`` floating boxes in ``fmt`` (a single box ``[4]`` works too).
        boxes2: ``[..., N, 4]``; all leading dimensions broadcast with ``boxes1``'s.
        kind, fmt, eps, alpha: as for :func:`pairwise_iou`.

    Returns:
        ``[..., N]``, the broadcast leading shape.
    """
    _check_args(boxes1, boxes2, kind, fmt, min_dim=1)
    broadcast_batch("boxes1", boxes1.shape[:-1], "boxes2", boxes2.shape[:-1])
    with_aspect = kind == "ciou"
    return _overlap(box_terms(boxes1, fmt, eps, with_aspect), box_terms(boxes2, fmt, eps, with_aspect), kind, eps, alpha)


def _check_args(boxes1: object, boxes2: object, kind: str, fmt: str, min_dim: int) -> None:
    check_choice("kind", kind, IOU_KINDS)
    check_choice("fmt", fmt, BOX_FORMATS)
    check_boxes("boxes1", boxes1, min_dim)
    check_boxes("boxes2", boxes2, min_dim)


def _overlap(a: BoxTerms, b: BoxTerms, kind: str, eps: float, alpha: float = 3.0) -> torch.Tensor:
    if kind == "eiou":
        return _extended_iou(a, b, eps)
    iou, union_eps, excess_x, excess_y = _iou_and_excess(a, b, eps)
    if kind == "iou":
        return iou
    if kind == "alpha_iou":
        return iou.clamp(min=eps).pow(alpha)
    if kind == "siou":
        return iou - _siou_costs(a, b, b.w + excess_x, b.h + excess_y, eps)
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
    alpha = (v / (((1.0 + eps) - iou) + v)).detach()
    return diou - alpha * v


def _extended_iou(a: BoxTerms, b: BoxTerms, eps: float) -> torch.Tensor:
    """EIoU: signed intersection over ``union + eps`` (module docstring)."""
    ex, ey = torch.minimum(a.x1, b.x1), torch.minimum(a.y1, b.y1)
    lo_x, lo_y = torch.maximum(a.x1, b.x1) - ex, torch.maximum(a.y1, b.y1) - ey
    hi_x, hi_y = torch.minimum(a.x2, b.x2) - ex, torch.minimum(a.y2, b.y2) - ey
    signed = (hi_x * hi_y + torch.minimum(lo_x, hi_x) * torch.minimum(lo_y, hi_y)
              - lo_x * torch.maximum(lo_y, hi_y) - torch.maximum(lo_x, hi_x) * lo_y)
    return signed / (((a.area + eps) + b.area) - signed)


def _siou_costs(a: BoxTerms, b: BoxTerms, enclose_w: torch.Tensor, enclose_h: torch.Tensor, eps: float) -> torch.Tensor:
    """SIoU's ``(Δ + Ω) / 2`` (module docstring)."""
    dx, dy = b.cx - a.cx, b.cy - a.cy
    dx2, dy2 = dx * dx, dy * dy
    gamma = 2.0 * (dx * dy).abs() / (dx2 + dy2 + eps) - 2.0
    distance = 2.0 - torch.exp(gamma * dx2 / (enclose_w * enclose_w + eps)) - torch.exp(gamma * dy2 / (enclose_h * enclose_h + eps))
    shape_w = 1.0 - torch.exp(-(a.w - b.w).abs() / (torch.maximum(a.w, b.w) + eps))
    shape_h = 1.0 - torch.exp(-(a.h - b.h).abs() / (torch.maximum(a.h, b.h) + eps))
    return 0.5 * (distance + shape_w.pow(4) + shape_h.pow(4))


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


def _centre_distance(a: BoxTerms, b: BoxTerms, enclose_w: torch.Tensor, enclose_h: torch.Tensor, eps: float) -> torch.Tensor:
    """``ρ² / (cw² + ch² + eps)``: squared centre distance over the enclosing box's squared diagonal."""
    dx = a.cx - b.cx
    dy = a.cy - b.cy
    return (dx * dx + dy * dy) / (enclose_w * enclose_w + enclose_h * enclose_h + eps)


class PairwiseIoU(nn.Module):
    """Module form of :func:`pairwise_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., M, 4]) -> [..., N, M]``."""

    def __init__(self, kind: str = "iou", fmt: str = "xyxy", eps: float = 1e-7, alpha: float = 3.0) -> None:
        super().__init__()
        self.kind = check_choice("kind", kind, IOU_KINDS)
        self.fmt = check_choice("fmt", fmt, BOX_FORMATS)
        self.eps = float(eps)
        self.alpha = check_number("alpha", alpha, 0.0, strict=True)

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return pairwise_iou(boxes1, boxes2, self.kind, self.fmt, self.eps, self.alpha)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, fmt={self.fmt!r}, eps={self.eps}" + (f", alpha={self.alpha}" if self.kind == "alpha_iou" else "")


class AlignedIoU(PairwiseIoU):
    """Module form of :func:`aligned_iou`: ``forward(boxes1 [..., N, 4], boxes2 [..., N, 4]) -> [..., N]``."""

    def forward(self, boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
        return aligned_iou(boxes1, boxes2, self.kind, self.fmt, self.eps, self.alpha)
