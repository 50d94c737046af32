"""Float64 reference of an attached NMS: layout decoding written again in numpy, then greedy NMS.

Independent of :mod:`exportloss.detector_nms.layouts` (numpy, index arithmetic written out per layout);
the NMS itself is :func:`exportloss.reference.detection.nms_reference` (or the rotated one) at the same
options. One convention is shared with the graph and stated here: ``yolo-obj`` scores are the product
``objectness · class probability`` *rounded to float32*, as the graph computes it, so that both order and
threshold the same numbers (in float64 two products one float32 ulp apart could swap places).

:func:`suppression_stats` measures what decides whether a fixed-shape Cluster-NMS can equal greedy NMS on
an image: how many pairs score above ``score_thr`` (more than the ``candidates`` cap and greedy NMS over
all pairs may keep boxes the graph never saw) and the longest suppression chain among the candidates
(Cluster-NMS decides a candidate exactly once its iterations exceed the chain leading to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..reference.boxes import rotated_pair_iou
from ..reference.detection import nms_criterion, nms_reference, rotated_nms_reference


def decode(layout: str, outputs: list[np.ndarray], box_format: str = "xyxy",
           num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(boxes [B, N, 4|5] float64, scores [B, N(, C)] float64)`` from a detector's raw outputs in ``layout``."""
    raw = [np.asarray(output, dtype=np.float64) for output in outputs]
    if layout == "boxes-scores":
        boxes, scores = raw
        if num_classes is not None and scores.ndim == 3:
            scores = scores[:, :, :num_classes]
        return _to_xyxy(boxes, box_format), scores
    prediction = raw[0]
    if layout == "yolo-obj":
        classes = prediction.shape[2] - 5 if num_classes is None else num_classes
        product = prediction[:, :, 4:5] * prediction[:, :, 5: 5 + classes]
        return _to_xyxy(prediction[:, :, 0:4], "cxcywh"), product.astype(np.float32).astype(np.float64)
    channels_last = np.swapaxes(prediction, 1, 2)
    if layout == "yolo":
        classes = channels_last.shape[2] - 4 if num_classes is None else num_classes
        return _to_xyxy(channels_last[:, :, 0:4], "cxcywh"), channels_last[:, :, 4: 4 + classes]
    if layout == "obb":
        classes = channels_last.shape[2] - 5 if num_classes is None else num_classes
        angle = channels_last[:, :, 4 + classes: 5 + classes]
        return np.concatenate([channels_last[:, :, 0:4], angle], axis=2), channels_last[:, :, 4: 4 + classes]
    raise ValueError(f"unknown layout {layout!r}")


def _to_xyxy(boxes: np.ndarray, box_format: str) -> np.ndarray:
    a, b, c, d = (boxes[:, :, i] for i in range(4))
    if box_format == "xyxy":
        corners = (a, b, c, d)
    elif box_format == "xywh":
        corners = (a, b, a + c, b + d)
    elif box_format == "cxcywh":
        corners = (a - c / 2, b - d / 2, a + c / 2, b + d / 2)
    else:
        raise ValueError(f"unknown box format {box_format!r}")
    return np.stack(corners, axis=2)


def nms_detections(boxes: np.ndarray, scores: np.ndarray, options, rotated: bool):
    """The graph's seven outputs in float64 at ``options``: Cluster-NMS at its iteration count, its ``converged``
    and ``num_capped`` flags (:func:`exportloss.reference.detection.nms_reference`)."""
    run = rotated_nms_reference if rotated else nms_reference
    return [t.numpy() for t in run(torch.from_numpy(boxes), torch.from_numpy(scores), options)]


def greedy_detections(boxes: np.ndarray, scores: np.ndarray, options, rotated: bool, all_candidates: bool = False):
    """Greedy NMS (float64) with the graph's outputs, over its top ``candidates`` pairs or, with ``all_candidates``,
    over every pair."""
    return nms_detections(boxes, scores, _Greedy(options, all_candidates), rotated)


class _Greedy:
    """``options`` with as many iterations as candidates (greedy NMS by construction) and, with ``every_pair``,
    no candidate cap: the reference then ranks every (box, class) pair."""

    def __init__(self, options, every_pair: bool) -> None:
        self._options, self._every_pair = options, every_pair

    def __getattr__(self, name: str):
        return getattr(self._options, name)

    def candidate_count(self, num_pairs: int) -> int:
        return num_pairs if self._every_pair else self._options.candidate_count(num_pairs)

    def iteration_count(self, num_candidates: int) -> int:
        return max(num_candidates, 1)


@dataclass(frozen=True)
class SuppressionStats:
    above_score_thr: int
    """(box, class) pairs scoring above ``score_thr``."""
    candidates: int
    """How many pairs the graph ranks (its cap)."""
    longest_chain: int
    """The longest chain ``a`` suppresses-candidate ``b`` suppresses-candidate ... among the candidates above
    ``score_thr`` (0: nothing overlaps); Cluster-NMS with more iterations than this equals greedy NMS."""

    @property
    def above_cap(self) -> bool:
        return self.above_score_thr > self.candidates


def suppression_stats(boxes: np.ndarray, scores: np.ndarray, options, rotated: bool) -> list[SuppressionStats]:
    """:class:`SuppressionStats` per image (float64, the reference's candidate order and overlap)."""
    batch, num_boxes = scores.shape[:2]
    flat = np.nan_to_num(scores.reshape(batch, num_boxes, -1), nan=-np.inf)
    classes_mode = getattr(options, "classes", "all")  # the class modes, where the NMS options have them
    if classes_mode == "best":  # each box's best class only (the first on ties, as argmax)
        best = flat.argmax(axis=2)[:, :, None]
        flat = np.where(np.arange(flat.shape[2]) == best, flat, -np.inf)
    flat = flat.reshape(batch, -1)
    num_classes = flat.shape[1] // num_boxes
    cap = options.candidate_count(flat.shape[1])
    stats = []
    for b in range(batch):
        order = np.argsort(-flat[b], kind="stable")[:cap]
        order = order[flat[b][order] > options.score_thr]
        cand_boxes, cand_classes = boxes[b][order // num_classes], order % num_classes
        depth = np.zeros(len(order), dtype=np.int64)  # longest chain of candidates that may suppress each one
        for j in range(1, len(order)):
            same_class = cand_classes[:j] == cand_classes[j] if classes_mode != "agnostic" else np.ones(j, bool)
            earlier = np.flatnonzero(same_class)
            if earlier.size:
                overlaps = _overlaps(cand_boxes[j], cand_boxes[earlier], options, rotated)
                suppressors = earlier[overlaps > options.iou_thr]
                if suppressors.size:
                    depth[j] = depth[suppressors].max() + 1
        stats.append(SuppressionStats(int((flat[b] > options.score_thr).sum()), cap, int(depth.max(initial=0))))
    return stats


def _overlaps(box: np.ndarray, others: np.ndarray, options, rotated: bool) -> np.ndarray:
    if rotated:
        return np.array([rotated_pair_iou(list(other), list(box), options.criterion, options.eps) for other in others])
    return nms_criterion(box, others, options.kind, options.diou_beta, options.eps)
