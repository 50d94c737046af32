"""Float64 references for the IoU family, box by box.

Each metric is written the way the papers state it, for one pair of boxes at a time, and then
mapped over pairs. Conventions match :mod:`exportloss.boxes.iou` (inverted boxes treated as zero-width) so
that verification compares like with like. eps enters every formula exactly where the module docstring of
:mod:`exportloss.boxes.iou` states it (and the README's IoU table); its default is the shared convention
constant :data:`~exportloss.boxes.iou.BOX_EPS`. On pixel-scale boxes eps changes nothing visible, but on
normalised coordinates (boxes 1e-4 wide, squared extents 1e-8) it moves SIoU and DIoU by whole percent, so a
reference without it would disagree with the graph exactly where users with normalised boxes look.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..boxes.iou import BOX_EPS  # the default stabiliser; where it enters is the documented convention


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


def box_pair_metric(box_a: list[float], box_b: list[float], kind: str, fmt: str = "xyxy", eps: float = BOX_EPS,
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
        sigma2 = dx * dx + dy * dy
        # The paper's angle cost sin 2α, α the smaller angle between the centre line and an axis, written
        # 2·sin α·cos α = 2|dx·dy|/σ² with eps entering σ² + eps (the convention, as in the graph module).
        sin_alpha = min(abs(dx), abs(dy)) / math.sqrt(sigma2) if sigma2 > 0 else 0.0
        angle_cost = 2 * sin_alpha * math.sqrt(1 - sin_alpha**2) * sigma2 / (sigma2 + eps)
        gamma = angle_cost - 2
        distance = 2.0 - math.exp(gamma * dx**2 / (cw**2 + eps)) - math.exp(gamma * dy**2 / (ch**2 + eps))
        shape = sum((1 - math.exp(-abs(p - q) / (max(p, q) + eps))) ** 4 for p, q in ((aw, bw), (ah, bh)))
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


def pairwise_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str, fmt: str = "xyxy", eps: float = BOX_EPS) -> torch.Tensor:
    """``[..., N, 4] x [..., M, 4] -> [..., N, M]`` in float64, one box pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    b1 = boxes1.double().expand(*lead, *boxes1.shape[-2:]).reshape(-1, boxes1.shape[-2], 4).tolist()
    b2 = boxes2.double().expand(*lead, *boxes2.shape[-2:]).reshape(-1, boxes2.shape[-2], 4).tolist()
    out = [[[box_pair_metric(a, b, kind, fmt, eps) for b in bs2] for a in bs1] for bs1, bs2 in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(*lead, boxes1.shape[-2], boxes2.shape[-2])


def aligned_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str, fmt: str = "xyxy", eps: float = BOX_EPS) -> torch.Tensor:
    """``[..., N, 4] x [..., N, 4] -> [..., N]`` in float64, one box pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-1], boxes2.shape[:-1])
    b1 = boxes1.double().expand(*lead, 4).reshape(-1, 4).tolist()
    b2 = boxes2.double().expand(*lead, 4).reshape(-1, 4).tolist()
    out = [box_pair_metric(a, b, kind, fmt, eps) for a, b in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(lead)


def iou_loss_reference(pred: torch.Tensor, target: torch.Tensor, kind: str, reduction: str = "mean",
                       fmt: str = "xyxy", eps: float = BOX_EPS, weight: torch.Tensor | None = None) -> torch.Tensor:
    loss = 1 - aligned_reference(pred, target, kind, fmt, eps)
    if kind == "eiou":  # mmdet's smooth knee at 0.1
        loss = torch.where(loss < 0.1, 0.5 * loss**2 / 0.1, loss - 0.05)
    if weight is not None:
        loss = loss * weight.double()
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else total / max(loss.numel(), 1)


# Rotated boxes (cx, cy, w, h, θ): written independently of :mod:`exportloss.boxes.rotated`. The exact IoU
# clips one box's polygon by the other's four half-planes (Sutherland–Hodgman) in plain Python floats;
# ProbIoU follows the paper's matrix form (inverse and determinants of 2x2 covariances). Conventions
# (corner formula, eps placement, zero-area boxes giving IoU 0) are those of the graph module.


def corners(box: list[float]) -> list[tuple[float, float]]:
    """Counter-clockwise (y up) corners of ``(cx, cy, w, h, θ)``; negative sides count as zero."""
    cx, cy, w, h, theta = box
    w, h = max(w, 0.0), max(h, 0.0)
    c, s = math.cos(theta), math.sin(theta)
    return [(cx + su * w / 2 * c - sv * h / 2 * s, cy + su * w / 2 * s + sv * h / 2 * c)
            for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


def clip_polygon(subject: list[tuple[float, float]], clip: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sutherland–Hodgman: ``subject`` clipped by the counter-clockwise convex polygon ``clip``."""
    output = subject
    for i in range(len(clip)):
        (x1, y1), (x2, y2) = clip[i], clip[(i + 1) % len(clip)]
        inputs, output = output, []
        if not inputs:
            break

        def side(p):  # > 0: left of the clip edge, i.e. inside
            return (x2 - x1) * (p[1] - y1) - (y2 - y1) * (p[0] - x1)

        for j in range(len(inputs)):
            p, q = inputs[j], inputs[(j + 1) % len(inputs)]
            sp, sq = side(p), side(q)
            if sp >= 0:
                output.append(p)
            if (sp >= 0) != (sq >= 0):
                t = sp / (sp - sq)
                output.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
    return output


def polygon_area(points: list[tuple[float, float]]) -> float:
    return abs(sum(p[0] * q[1] - q[0] * p[1] for p, q in zip(points, points[1:] + points[:1]))) / 2


def rotated_pair_iou(box_a: list[float], box_b: list[float], kind: str = "iou", eps: float = BOX_EPS) -> float:
    """Exact IoU (``kind="iou"``) or ProbIoU of two rotated boxes, in float64."""
    if kind == "probiou":
        return probiou_pair(box_a, box_b, eps)
    if kind != "iou":
        raise ValueError(f"unknown kind {kind!r}")
    area_a = max(box_a[2], 0.0) * max(box_a[3], 0.0)
    area_b = max(box_b[2], 0.0) * max(box_b[3], 0.0)
    if area_a == 0 or area_b == 0:
        return 0.0
    # Clip about the midpoint of the centres, as coordinates near 1e4 would otherwise cost digits.
    mx, my = (box_a[0] + box_b[0]) / 2, (box_a[1] + box_b[1]) / 2
    a = [box_a[0] - mx, box_a[1] - my, *box_a[2:]]
    b = [box_b[0] - mx, box_b[1] - my, *box_b[2:]]
    inter = polygon_area(clip_polygon(corners(a), corners(b)))
    return inter / (area_a + area_b - inter + eps)


def probiou_pair(box_a: list[float], box_b: list[float], eps: float = BOX_EPS) -> float:
    """ProbIoU from the Bhattacharyya distance of the boxes' Gaussians, in 2x2 matrix form."""

    def gaussian(box):
        cx, cy, w, h, theta = box
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        return np.array([cx, cy]), rot @ np.diag([max(w, 0.0) ** 2 / 12, max(h, 0.0) ** 2 / 12]) @ rot.T

    mu_a, cov_a = gaussian(box_a)
    mu_b, cov_b = gaussian(box_b)
    cov_sum = cov_a + cov_b
    det_sum = float(np.linalg.det(cov_sum))
    delta = mu_a - mu_b
    adjugate = np.array([[cov_sum[1, 1], -cov_sum[0, 1]], [-cov_sum[1, 0], cov_sum[0, 0]]])
    quadratic = 0.25 * float(delta @ adjugate @ delta) / (det_sum + eps)  # ⅛ Δμᵀ ((Σa+Σb)/2)⁻¹ Δμ
    root_dets = max(box_a[2], 0.0) * max(box_a[3], 0.0) * max(box_b[2], 0.0) * max(box_b[3], 0.0) / 144
    log_term = 0.5 * math.log(det_sum / (4 * root_dets + eps) + eps)
    distance = min(max(quadratic + log_term, eps), 100.0)
    return 1.0 - math.sqrt(1.0 - math.exp(-distance) + eps)


def rotated_pairwise_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = BOX_EPS) -> torch.Tensor:
    """``[..., N, 5] x [..., M, 5] -> [..., N, M]`` in float64, one pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    b1 = boxes1.double().expand(*lead, *boxes1.shape[-2:]).reshape(-1, boxes1.shape[-2], 5).tolist()
    b2 = boxes2.double().expand(*lead, *boxes2.shape[-2:]).reshape(-1, boxes2.shape[-2], 5).tolist()
    out = [[[rotated_pair_iou(a, b, kind, eps) for b in bs2] for a in bs1] for bs1, bs2 in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(*lead, boxes1.shape[-2], boxes2.shape[-2])


def rotated_aligned_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = BOX_EPS) -> torch.Tensor:
    """``[..., N, 5] x [..., N, 5] -> [..., N]`` in float64, one pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-1], boxes2.shape[:-1])
    b1 = boxes1.double().expand(*lead, 5).reshape(-1, 5).tolist()
    b2 = boxes2.double().expand(*lead, 5).reshape(-1, 5).tolist()
    return torch.tensor([rotated_pair_iou(a, b, kind, eps) for a, b in zip(b1, b2)], dtype=torch.float64).reshape(lead)


def rotated_iou_loss_reference(pred: torch.Tensor, target: torch.Tensor, kind: str = "iou", reduction: str = "mean",
                               eps: float = BOX_EPS) -> torch.Tensor:
    loss = 1 - rotated_aligned_reference(pred, target, kind, eps)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(loss.numel(), 1)
