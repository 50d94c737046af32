"""Float64 reference of COCO's per-image matching (pycocotools ``COCOeval.evaluateImg``, bbox), as the plain loop.

:func:`coco_match_reference` takes :func:`exportloss.coco_match`'s padded inputs and returns its outputs,
computed as pycocotools documents it: per (image, category) the detections stably sorted by descending
score and cut to ``max_dets``; ``bbIou`` on xywh boxes (crowd: the union is the detection's area); the
ground truths sorted ignored-last; then, per area range and threshold, detection after detection, the
scan over the ground truths that skips used-up non-crowd ones, stops at the first ignored one once a
non-ignored one matched, and takes any IoU ``>=`` the best so far (so the last of equal IoUs wins).
"""

from __future__ import annotations

import numpy as np
import torch

from ..detection.options import COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, CocoMatchOptions


def _bb_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray, box_format: str) -> np.ndarray:
    """``[D, G]`` IoUs in ``bbIou``'s operation order (one float64 pair at a time)."""
    ious = np.zeros((len(det), len(gt)))
    for g, gbox in enumerate(gt):
        gx2, gy2 = (gbox[2] + gbox[0], gbox[3] + gbox[1]) if box_format == "xywh" else (gbox[2], gbox[3])
        ga = gbox[2] * gbox[3] if box_format == "xywh" else (gbox[2] - gbox[0]) * (gbox[3] - gbox[1])
        for d, dbox in enumerate(det):
            dx2, dy2 = (dbox[2] + dbox[0], dbox[3] + dbox[1]) if box_format == "xywh" else (dbox[2], dbox[3])
            da = dbox[2] * dbox[3] if box_format == "xywh" else (dbox[2] - dbox[0]) * (dbox[3] - dbox[1])
            w = min(dx2, gx2) - max(dbox[0], gbox[0])
            if not w > 0:
                continue
            h = min(dy2, gy2) - max(dbox[1], gbox[1])
            if not h > 0:
                continue
            i = w * h
            ious[d, g] = i / (da if crowd[g] else (da + ga) - i)
    return ious


def coco_match_reference(det_boxes, det_scores, det_categories, gt_boxes, gt_categories, gt_crowd, gt_areas,
                         options: CocoMatchOptions = CocoMatchOptions()) -> tuple[torch.Tensor, ...]:
    """The outputs of :func:`exportloss.coco_match` (every entry settled: ``unsettled`` is 0), as float64/int64/bool tensors."""
    det_boxes, gt_boxes = det_boxes.double().numpy(), gt_boxes.double().numpy()
    scores, areas = det_scores.double().numpy(), gt_areas.double().numpy()
    det_cat, gt_cat, crowd_all = det_categories.numpy(), gt_categories.numpy(), gt_crowd.numpy()
    batch, num_dets, num_gts = det_boxes.shape[0], det_boxes.shape[1], gt_boxes.shape[1]
    num_areas, num_thr = len(COCO_AREA_RANGES), len(COCO_IOU_THRESHOLDS)
    rank = np.full((batch, num_dets), -1, np.int64)
    det_match = np.full((batch, num_areas, num_thr, num_dets), -1, np.int64)
    det_ignore = np.zeros((batch, num_areas, num_thr, num_dets), bool)
    gt_ignore = np.ones((batch, num_areas, num_gts), bool)
    gt_match = np.full((batch, num_areas, num_thr, num_gts), -1, np.int64)
    for b in range(batch):
        valid_dets = [d for d in range(num_dets) if det_cat[b, d] >= 0 and not np.isnan(scores[b, d])]
        for category in sorted({int(det_cat[b, d]) for d in valid_dets} | {int(c) for c in gt_cat[b] if c >= 0}):
            dets = [d for d in valid_dets if det_cat[b, d] == category]
            order = [dets[i] for i in np.argsort([-scores[b, d] for d in dets], kind="mergesort")]
            for r, d in enumerate(order):
                rank[b, d] = r
            dets = order[: options.max_dets]
            gts = [g for g in range(num_gts) if gt_cat[b, g] == category]
            crowd = crowd_all[b, gts]
            ious = _bb_iou(det_boxes[b, dets], gt_boxes[b, gts], crowd, options.box_format)
            for a, (low, high) in enumerate(COCO_AREA_RANGES):
                ignored = np.array([bool(crowd_all[b, g]) or areas[b, g] < low or areas[b, g] > high for g in gts], bool)
                gt_ignore[b, a, gts] = ignored
                scan = np.argsort(ignored, kind="mergesort")  # ignored last, file order otherwise
                for t, threshold in enumerate(COCO_IOU_THRESHOLDS):
                    used = np.zeros(len(gts), bool)
                    for i, d in enumerate(dets):
                        best, m = min(threshold, 1 - 1e-10), -1
                        for j in scan:
                            if used[j] and not crowd[j]:
                                continue
                            if m > -1 and not ignored[m] and ignored[j]:
                                break
                            if ious[i, j] < best:
                                continue
                            best, m = ious[i, j], j
                        if m == -1:
                            box = det_boxes[b, d]
                            area = box[2] * box[3] if options.box_format == "xywh" else (box[2] - box[0]) * (box[3] - box[1])
                            det_ignore[b, a, t, d] = area < low or area > high
                            continue
                        used[m] = True
                        det_match[b, a, t, d] = gts[m]
                        det_ignore[b, a, t, d] = ignored[m]
                        gt_match[b, a, t, gts[m]] = d
    kept = (rank >= 0) & (rank < options.max_dets)
    unsettled = np.zeros(batch, np.int64)
    return tuple(torch.from_numpy(x) for x in (rank, kept, det_match, det_ignore, gt_ignore, gt_match, unsettled))
