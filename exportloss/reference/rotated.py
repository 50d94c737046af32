"""Float64 references for rotated boxes: polygon clipping, ProbIoU and greedy rotated NMS, pair by pair.

Written independently of :mod:`exportloss.rotated`: the exact IoU here clips one box's polygon by
the other's four half-planes (Sutherland–Hodgman) in plain Python floats, branching freely; ProbIoU
follows the paper's matrix form (inverse and determinants of 2x2 covariances). Conventions (corner
formula, eps placement, zero-area boxes giving IoU 0) are those of :mod:`exportloss.rotated`.
"""

from __future__ import annotations

import math

import numpy as np
import torch


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


def rotated_pair_iou(box_a: list[float], box_b: list[float], kind: str = "iou", eps: float = 1e-7) -> float:
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


def probiou_pair(box_a: list[float], box_b: list[float], eps: float = 1e-7) -> float:
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


def rotated_pairwise_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = 1e-7) -> torch.Tensor:
    """``[..., N, 5] x [..., M, 5] -> [..., N, M]`` in float64, one pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    b1 = boxes1.double().expand(*lead, *boxes1.shape[-2:]).reshape(-1, boxes1.shape[-2], 5).tolist()
    b2 = boxes2.double().expand(*lead, *boxes2.shape[-2:]).reshape(-1, boxes2.shape[-2], 5).tolist()
    out = [[[rotated_pair_iou(a, b, kind, eps) for b in bs2] for a in bs1] for bs1, bs2 in zip(b1, b2)]
    return torch.tensor(out, dtype=torch.float64).reshape(*lead, boxes1.shape[-2], boxes2.shape[-2])


def rotated_aligned_reference(boxes1: torch.Tensor, boxes2: torch.Tensor, kind: str = "iou", eps: float = 1e-7) -> torch.Tensor:
    """``[..., N, 5] x [..., N, 5] -> [..., N]`` in float64, one pair at a time."""
    lead = torch.broadcast_shapes(boxes1.shape[:-1], boxes2.shape[:-1])
    b1 = boxes1.double().expand(*lead, 5).reshape(-1, 5).tolist()
    b2 = boxes2.double().expand(*lead, 5).reshape(-1, 5).tolist()
    return torch.tensor([rotated_pair_iou(a, b, kind, eps) for a, b in zip(b1, b2)], dtype=torch.float64).reshape(lead)


def rotated_iou_loss_reference(pred: torch.Tensor, target: torch.Tensor, kind: str = "iou", reduction: str = "mean",
                               eps: float = 1e-7) -> torch.Tensor:
    loss = 1 - rotated_aligned_reference(pred, target, kind, eps)
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / max(loss.numel(), 1)


def rotated_nms_reference(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thr: float = 0.5,
    criterion: str = "iou",
    score_thr: float = 0.05,
    max_det: int = 100,
    candidates: int = 1000,
    eps: float = 1e-7,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Greedy rotated NMS with the outputs and candidate/tie rules of :func:`exportloss.cluster_nms`."""
    batch, num_boxes = boxes.shape[:2]
    flat_scores = scores.reshape(batch, -1).double().numpy()
    num_classes = flat_scores.shape[1] // num_boxes
    num_dets = torch.zeros(batch, dtype=torch.int64)
    det_boxes = torch.zeros(batch, max_det, 5, dtype=torch.float64)
    det_scores = torch.zeros(batch, max_det, dtype=torch.float64)
    det_classes = torch.full((batch, max_det), -1, dtype=torch.int64)
    for b in range(batch):
        order = np.argsort(-flat_scores[b], kind="stable")[:candidates]
        cand_scores, cand_classes = flat_scores[b][order], order % num_classes
        cand_boxes = boxes[b].double().numpy()[order // num_classes].tolist()
        kept: list[int] = []
        for j in range(len(order)):
            if cand_scores[j] <= score_thr or len(kept) == max_det:
                break
            if not any(cand_classes[i] == cand_classes[j]
                       and rotated_pair_iou(cand_boxes[i], cand_boxes[j], criterion, eps) > iou_thr for i in kept):
                kept.append(j)
        num_dets[b] = len(kept)
        if kept:
            det_boxes[b, : len(kept)] = torch.tensor([cand_boxes[i] for i in kept], dtype=torch.float64)
            det_scores[b, : len(kept)] = torch.from_numpy(cand_scores[kept])
            det_classes[b, : len(kept)] = torch.from_numpy(cand_classes[kept])
    return num_dets, det_boxes, det_scores, det_classes
