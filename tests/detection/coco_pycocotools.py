"""pycocotools as the anchor of the COCO tests: run it quietly, and compare its ``evalImgs`` with a :class:`Matching`."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from exportloss.evaluation import Matching


def run_pycocotools(gt: dict, dets: list) -> COCOeval:
    """``COCOeval(gt, dets, "bbox")`` after evaluate, accumulate and summarize, on copies (loadRes edits its input)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(dets))
        evaluation = COCOeval(coco_gt, coco_dt, "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def evalimgs_mismatches(evaluation: COCOeval, matching: Matching) -> tuple[int, int, set[int]]:
    """``(entries compared, entries differing, image positions with a difference)``: every non-None ``evalImgs``
    entry (category, area range, image) against the same entry rebuilt from ``matching``."""
    groups, a = matching.groups, matching.groups.arrays
    num_images, num_areas = a.num_images, 4
    category_index = {int(c): k for k, c in enumerate(a.category_ids)}
    compared, differing, images = 0, 0, set()
    seen = set()
    det_ids = np.concatenate([a.det_ids, [0]])  # row -1 -> id 0 (pycocotools' "no match")
    gt_ids = np.concatenate([a.gt_ids, [0]])
    for g in range(len(groups.image)):
        image, k = int(groups.image[g]), category_index[int(groups.category[g])]
        dets = np.arange(groups.det_start[g], groups.det_start[g + 1])
        dets = dets[np.argsort(matching.det_rank[dets], kind="stable")]
        gts = np.arange(groups.gt_start[g], groups.gt_start[g + 1])
        for area in range(num_areas):
            index = k * num_areas * num_images + area * num_images + image
            seen.add(index)
            entry = evaluation.evalImgs[index]
            ordered = gts[np.argsort(matching.gt_ignore[gts, area], kind="stable")]
            mine = {
                "dtIds": det_ids[groups.det_rows[dets]].tolist(), "gtIds": gt_ids[groups.gt_rows[ordered]].tolist(),
                "dtMatches": gt_ids[matching.det_match[dets, area].T], "gtMatches": det_ids[matching.gt_match[ordered, area].T],
                "gtIgnore": matching.gt_ignore[ordered, area].astype(int), "dtIgnore": matching.det_ignore[dets, area].T,
            }
            compared += 1
            same = entry is not None and all(np.array_equal(np.asarray(entry[key]), value) for key, value in mine.items())
            if not same:
                differing += 1
                images.add(image)
    extra = [i for i, e in enumerate(evaluation.evalImgs) if e is not None and i not in seen]
    return compared + len(extra), differing + len(extra), images
