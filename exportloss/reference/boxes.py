"""Float64 references for the IoU family, box by box.

Each metric is written the way the papers state it, for one pair of boxes at a time, and then
mapped over pairs. Conventions match :mod:`exportloss.iou` (eps placement, inverted boxes treated as
zero-width) so that verification compares like with like.
"""

from __future__ import annotations

import math

import torch


def to_xyxy(box: list[float], fmt: str) -> tuple[float, float, float, float]:
    a, b, c, d = box
    if fmt == "xyxy":
        x1, y1, x2, y2 = a, b, c, d
    elif fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif fmt == "cxcywh":
        x1, y1, x2, y2 = a - c / 2, b - d / 2, a + c / 2, b + d / 2
    else:
        raise ValueError(f"unknown box format {fmt!r}")
    return x1, y1, max(x1, x2), max(y1, y2)


def box_pair_metric(box_a: list[float], box_b: list[float], kind: str, fmt: str = "xyxy", eps: float = 1e-7,
                    alpha: float = 3.0) -> float:
    """IoU / GIoU / DIoU / CIoU / EIoU / SIoU / α-IoU of two boxes, in float64 Python arithmetic."""
    ax1, ay1, ax2, ay2 = to_xyxy(box_a, fmt)
    bx1, by1, bx2, by2 = to_xyxy(box_b, fmt)
    aw, ah, bw, bh = ax2 - ax1, ay2 - ay1, bx2 - bx1, by2 - by1
    if kind == "eiou":
        return extended_iou((ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2), eps)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = aw * ah + bw * bh - inter
    iou = inter / (union + eps)
    if kind == "iou":
        return iou
    if kind == "alpha_iou":
        return max(iou, eps) ** alpha
    cw = max(ax2, bx2) - min(ax1, bx1)
    ch = max(ay2, by2) - min(ay1, by1)
    if kind == "siou":
        dx, dy = (bx1 + bx2 - ax1 - ax2) / 2, (by1 + by2 - ay1 - ay2) / 2
        sigma = math.hypot(dx, dy)
        # The paper's angle cost: α is the smaller angle between the centre line and an axis.
        sin_alpha = min(abs(dx), abs(dy)) / sigma if sigma > 0 else 0.0
        angle_cost = math.sin(2 * math.asin(sin_alpha))
        gamma = angle_cost - 2
        distance = 2.0 - math.exp(gamma * (dx / cw) ** 2 if cw > 0 else 0.0) - math.exp(gamma * (dy / ch) ** 2 if ch > 0 else 0.0)
        shape = sum((1 - math.exp(-abs(p - q) / max(p, q))) ** 4 if max(p, q) > 0 else 0.0 for p, q in ((aw, bw), (ah, bh)))
        return iou - (distance + shape) / 2
    if kind == "giou":
        return iou - (cw * ch - union) / (cw * ch + eps)
    centre_dist2 = ((ax1 + ax2) / 2 - (bx1 + bx2) / 2) ** 2 + ((ay1 + ay2) / 2 - (by1 + by2) / 2) ** 2
    diou = iou - centre_dist2 / (cw**2 + ch**2 + eps)
    if kind == "diou":
        return diou
    if kind != "ciou":
        raise ValueError(f"unknown kind {kind!r}")
    v = 4 / math.pi**2 * (math.atan(aw / (ah + eps)) - math.atan(bw / (bh + eps))) ** 2
    alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


def extended_iou(a: tuple[float, ...], b: tuple[float, ...], eps: float) -> float:
    """EIoU (Extended-IoU of Peng & Yu, mmdet's ``eiou_loss``) of two xyxy boxes: ``I_s / (A + B − I_s + eps)``.

    The signed intersection ``I_s``, case by case, with ``lo``/``hi`` the larger start and smaller
    end per axis measured from the enclosing box's top-left corner: the overlap area when both axes
    overlap; ``(lo_x + hi_x)·(hi_y − lo_y)`` when only x overlaps (and symmetrically); and
    ``2·(hi_x·hi_y − lo_x·lo_y)`` when neither does.
    """
    ex, ey = min(a[0], b[0]), min(a[1], b[1])
    lo_x, lo_y = max(a[0], b[0]) - ex, max(a[1], b[1]) - ey
    hi_x, hi_y = min(a[2], b[2]) - ex, min(a[3], b[3]) - ey
    if hi_x >= lo_x and hi_y >= lo_y:
        signed = (hi_x - lo_x) * (hi_y - lo_y)
    elif hi_x >= lo_x:
        signed = (lo_x + hi_x) * (hi_y - lo_y)
    elif hi_y >= lo_y:
        signed = (lo_y + hi_y) * (hi_x - lo_x)
    else:
        signed = 2 * (hi_x * hi_y - lo_x * lo_y)
    area_a, area_b = (a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1])
    return signed / (area_a + area_b - signed + eps)


def pairwise_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str, fmt: str = "xyxy", eps: float = 1e-7) -> torch.Tensor:
    """``[..., N, 4] x [..., M, 4] -> [..., N, M]`` in float64, one box pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    b1 = boxes1.double().expand(*lead, *boxes1.shape[-2:]).reshape(-1, boxes1.shape[-2], 4).tolist()
    b2 = boxes2.double().expand(*lead, *boxes2.shape[-2:]).reshape(-1, boxes2.shape[-2], 4).tolist()
    out = [[[box_pair_metric(a, b, kind, fmt, eps) for b in bs2] for a in bs1] for bs1, bs2 in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(*lead, boxes1.shape[-2], boxes2.shape[-2])


def aligned_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str, fmt: str = "xyxy", eps: float = 1e-7) -> torch.Tensor:
    """``[..., N, 4] x [..., N, 4] -> [..., N]`` in float64, one box pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-1], boxes2.shape[:-1])
    b1 = boxes1.double().expand(*lead, 4).reshape(-1, 4).tolist()
    b2 = boxes2.double().expand(*lead, 4).reshape(-1, 4).tolist()
    out = [box_pair_metric(a, b, kind, fmt, eps) for a, b in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(lead)


def iou_loss_reference(pred: torch.Tensor, target: torch.Tensor, kind: str, reduction: str = "mean",
                       fmt: str = "xyxy", eps: float = 1e-7, weight: torch.Tensor | None = None) -> torch.Tensor:
    loss = 1 - aligned_reference(pred, target, kind, fmt, eps)
    if kind == "eiou":  # mmdet's smooth knee at 0.1
        loss = torch.where(loss < 0.1, 0.5 * loss**2 / 0.1, loss - 0.05)
    if weight is not None:
        loss = loss * weight.double()
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / max(loss.numel(), 1)
