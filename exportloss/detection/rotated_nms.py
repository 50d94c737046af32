"""Cluster-NMS for rotated boxes, with the fixed-shape outputs and tie rule of :func:`exportloss.cluster_nms`.

Everything but the overlap is :mod:`exportloss.detection.nms`'s: candidates are the top-scoring (box, class)
pairs (equal scores: lower flat index first), classes never suppress each other, and the outputs are
``num_dets [B]``, ``det_boxes [B, max_det, 5]``, ``det_scores [B, max_det]``, ``det_classes [B, max_det]``
(padding: zero boxes, zero scores, class -1). The criterion is the exact rotated IoU or ProbIoU of
:mod:`exportloss.boxes.rotated` (ultralytics' OBB NMS uses ProbIoU). The exact IoU costs ~100 bytes per
candidate pair at its peak (``[B, K, K, 24]`` intermediates): keep ``candidates`` near 1000 or below.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.checks import check_choice
from .nms import Detections, _check_config, _cluster_nms, _Config
from ..boxes.rotated import ROTATED_KINDS, rotated_pairwise_iou


def _rotated_overlap(boxes: torch.Tensor, config: _Config) -> torch.Tensor:
    return rotated_pairwise_iou(boxes, boxes, config.kind, config.eps)


def _rotated_config(iou_thr, criterion, score_thr, max_det, iterations, candidates, eps) -> _Config:
    check_choice("criterion", criterion, ROTATED_KINDS)
    return _check_config(iou_thr, "iou", 1.0, score_thr, max_det, iterations, candidates, eps)._replace(kind=criterion)


def rotated_cluster_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thr: float = 0.5,
    criterion: str = "iou",
    score_thr: float = 0.05,
    max_det: int = 100,
    iterations: int | None = None,
    candidates: int | None = None,
    eps: float = 1e-7,
) -> Detections:
    """Batched multi-class Cluster-NMS of rotated boxes.

    Args:
        boxes: ``[B, N, 5]`` (cx, cy, w, h, θ) boxes (see :mod:`exportloss.boxes.rotated`).
        scores: ``[B, N, C]`` per-class scores, or ``[B, N]`` (one class, reported as class 0).
        iou_thr: a candidate is suppressed when its overlap with a kept one is ``> iou_thr``.
        criterion: ``"iou"`` (exact polygon IoU) or ``"probiou"``.
        score_thr, max_det, iterations, candidates, eps: as for :func:`exportloss.cluster_nms`.

    Returns:
        :class:`~exportloss.detection.nms.Detections` with ``det_boxes [B, max_det, 5]``.
    """
    config = _rotated_config(iou_thr, criterion, score_thr, max_det, iterations, candidates, eps)
    return _cluster_nms(boxes, scores, config, _rotated_overlap, box_size=5)


class RotatedClusterNMS(nn.Module):
    """Module form of :func:`rotated_cluster_nms`: ``forward(boxes [B, N, 5], scores [B, N(, C)]) -> Detections``."""

    def __init__(
        self,
        iou_thr: float = 0.5,
        criterion: str = "iou",
        score_thr: float = 0.05,
        max_det: int = 100,
        iterations: int | None = None,
        candidates: int | None = None,
        eps: float = 1e-7,
    ) -> None:
        super().__init__()
        self.config = _rotated_config(iou_thr, criterion, score_thr, max_det, iterations, candidates, eps)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> Detections:
        return _cluster_nms(boxes, scores, self.config, _rotated_overlap, box_size=5)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={value!r}" for name, value in self.config._asdict().items())
