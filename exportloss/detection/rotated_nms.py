"""Cluster-NMS for rotated boxes, with the fixed-shape outputs and tie rule of :func:`exportloss.cluster_nms`.

Everything but the overlap is :mod:`exportloss.detection.nms`'s: candidates are the top-scoring (box, class)
pairs (equal scores: lower flat index first), classes never suppress each other, and the outputs are
``num_dets [B]``, ``det_boxes [B, max_det, 5]``, ``det_scores [B, max_det]``, ``det_classes [B, max_det]``
(padding: zero boxes, zero scores, class -1), ``det_indices``, ``converged`` and ``num_capped``; ``classes`` and
``outputs="efficientnms"`` work as there. The criterion is the exact rotated IoU or ProbIoU of
:mod:`exportloss.boxes.rotated` (ultralytics' OBB NMS uses ProbIoU). The exact IoU costs ~100 bytes per
candidate pair at its peak (``[B, K, K, 24]`` intermediates): keep ``candidates`` near 1000 or below.
"""

from __future__ import annotations

import torch
from torch import nn

from ..boxes.rotated import rotated_pairwise_iou
from .nms import Detections, EfficientNMSDetections, _cluster_nms
from ..ops.options import DEFAULT
from .options import RotatedNMSOptions


def _rotated_overlap(boxes: torch.Tensor, options: RotatedNMSOptions) -> torch.Tensor:
    return rotated_pairwise_iou(boxes, boxes, options.criterion, options.eps)


def rotated_cluster_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    iou_thr: float = DEFAULT,
    criterion: str = DEFAULT,
    score_thr: float = DEFAULT,
    max_det: int = DEFAULT,
    iterations: int | str = DEFAULT,
    candidates: int | None = DEFAULT,
    classes: str = DEFAULT,
    outputs: str = DEFAULT,
    eps: float = DEFAULT,
    *,
    options: RotatedNMSOptions | None = None,
) -> Detections | EfficientNMSDetections:
    """Batched multi-class Cluster-NMS of rotated boxes.

    Args:
        boxes: ``[B, N, 5]`` (cx, cy, w, h, θ) boxes (see :mod:`exportloss.boxes.rotated`).
        scores: ``[B, N, C]`` per-class scores, or ``[B, N]`` (one class, reported as class 0).
        iou_thr: a candidate is suppressed when its overlap with a kept one is ``> iou_thr``.
        criterion: ``"iou"`` (exact polygon IoU) or ``"probiou"``.
        score_thr, max_det, iterations, candidates, classes, outputs, eps: as for :func:`exportloss.cluster_nms`.
        options: a prepared :class:`~exportloss.detection.options.RotatedNMSOptions` instead of the keywords above.

    Returns:
        :class:`~exportloss.detection.nms.Detections` with ``det_boxes [B, max_det, 5]`` (or
        :class:`~exportloss.detection.nms.EfficientNMSDetections` with ``outputs="efficientnms"``).
    """
    options = RotatedNMSOptions.resolve(options, iou_thr=iou_thr, criterion=criterion, score_thr=score_thr, max_det=max_det,
                                        iterations=iterations, candidates=candidates, classes=classes, outputs=outputs,
                                        eps=eps)
    return _cluster_nms(boxes, scores, options, _rotated_overlap, box_size=5)


class RotatedClusterNMS(nn.Module):
    """Module form of :func:`rotated_cluster_nms`: ``forward(boxes [B, N, 5], scores [B, N(, C)]) -> Detections``.

    Takes a :class:`~exportloss.detection.options.RotatedNMSOptions` or its fields as keywords; kept as ``self.options``.
    """

    def __init__(self, options: RotatedNMSOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = RotatedNMSOptions.resolve(options, **keywords)

    def forward(self, boxes: torch.Tensor, scores: torch.Tensor) -> Detections | EfficientNMSDetections:
        return _cluster_nms(boxes, scores, self.options, _rotated_overlap, box_size=5)

    def extra_repr(self) -> str:
        return self.options.fields_repr()
