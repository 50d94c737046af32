"""coco_match and coco_accumulate against pycocotools 2.0.11 (the anchor) and the float64 loop reference.

The synthetic sets (:func:`exportloss.detection.coco_data.synthetic_coco`, three seeds of 500 images) hold the
hard cases: score ties, IoUs exactly on thresholds, annotation areas exactly 32² and 96², crowd ground truths,
more than 100 detections of one category in an image, images and categories without ground truths, images
without detections, duplicated detections, results not grouped by image.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coco_pycocotools import evalimgs_mismatches, run_pycocotools
from exportloss import catalog
from exportloss.detection import CocoMatchOptions, coco_match
from exportloss.detection.coco_data import coco_arrays, coco_groups, image_groups, synthetic_coco
from exportloss.detection.options import COCO_IOU_THRESHOLDS
from exportloss.evaluation import INPUT_NAMES, OUTPUT_NAMES, evaluate_arrays, torch_runner
from exportloss.reference.coco import coco_match_reference

SEEDS = (0, 1, 2)
NUM_IMAGES = 500


@pytest.fixture(scope="module", params=SEEDS[:1])
def dataset(request):
    """One seed eagerly (test_coco_ort.py runs all three through onnxruntime)."""
    gt, dets = synthetic_coco(request.param, NUM_IMAGES)
    return gt, dets, coco_arrays(gt, dets), run_pycocotools(gt, dets)


def test_the_synthetic_sets_hold_the_hard_cases():
    gt, dets = synthetic_coco(0, 150)
    arrays = coco_arrays(gt, dets)
    groups = coco_groups(arrays, max_dets=10**6)
    areas = arrays.gt_areas
    assert (areas == 32.0**2).any() and (areas == 96.0**2).any() and arrays.gt_crowd.any()
    assert groups.det_counts.max() > 100  # more than 100 detections of one category in an image
    assert (np.diff(arrays.gt_start) == 0).any() and (np.diff(arrays.det_start) == 0).any()
    assert len(set(arrays.gt_categories.tolist())) < len(arrays.category_ids)  # categories without ground truth
    assert len(np.unique(arrays.det_scores)) < 30  # score ties
    boxes_d, boxes_g = arrays.det_boxes, arrays.gt_boxes
    same_image = arrays.det_image[:, None] == arrays.gt_image[None, :]
    x2 = np.minimum(boxes_d[:, None, 0] + boxes_d[:, None, 2], boxes_g[None, :, 0] + boxes_g[None, :, 2])
    w = x2 - np.maximum(boxes_d[:, None, 0], boxes_g[None, :, 0])
    y2 = np.minimum(boxes_d[:, None, 1] + boxes_d[:, None, 3], boxes_g[None, :, 1] + boxes_g[None, :, 3])
    h = y2 - np.maximum(boxes_d[:, None, 1], boxes_g[None, :, 1])
    inter = np.where((w > 0) & (h > 0), w * h, 0.0)
    iou = inter / ((boxes_d[:, None, 2] * boxes_d[:, None, 3] + boxes_g[None, :, 2] * boxes_g[None, :, 3]) - inter)
    on_threshold = int((np.isin(iou, COCO_IOU_THRESHOLDS) & same_image).sum())
    assert on_threshold > 20


def test_eager_matching_equals_pycocotools_evalimgs_and_summary(dataset):
    """Per (category, area, image) entry: dtIds, gtIds, dtMatches, gtMatches, gtIgnore, dtIgnore; then the 12 numbers."""
    gt, dets, arrays, anchor = dataset
    result = evaluate_arrays(arrays, torch_runner())
    compared, differing, _ = evalimgs_mismatches(anchor, result.matching)
    assert compared > 20000 and differing == 0
    np.testing.assert_allclose(result.stats, anchor.stats, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.precision, anchor.eval["precision"])
    np.testing.assert_array_equal(result.recall, anchor.eval["recall"])


def test_default_rounds_settle_whole_images(dataset):
    """The default 8 rounds leave nothing open on whole images of the synthetic sets up to 100 detections."""
    _, _, arrays, _ = dataset
    groups = image_groups(arrays)
    small = np.flatnonzero(groups.det_counts <= 100)[:64]
    inputs = groups.batch(small, 100, int(groups.gt_counts.max()))
    out = coco_match(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    assert int(out.unsettled.sum()) == 0


def test_per_image_rows_equal_the_reference():
    """Whole images (every category in one row) through the module equal the loop reference."""
    gt, dets = synthetic_coco(5, 40)
    arrays = coco_arrays(gt, dets)
    groups = image_groups(arrays)
    rows = np.flatnonzero(groups.det_counts <= 64)
    inputs = groups.batch(rows, int(groups.det_counts.max()), int(groups.gt_counts.max()))
    tensors = [torch.from_numpy(inputs[name]) for name in INPUT_NAMES]
    options = CocoMatchOptions(rounds=int(groups.det_counts.max()))
    got = coco_match(*tensors, options=options)
    want = coco_match_reference(*tensors, options=options)
    for name, g, w in zip(OUTPUT_NAMES, got, want):
        assert torch.equal(g, w), name


def test_xyxy_boxes_match_like_xywh_on_integer_boxes():
    gt, dets = synthetic_coco(3, 30)
    arrays = coco_arrays(gt, dets)
    groups = image_groups(arrays)
    rows = np.flatnonzero(groups.det_counts <= 64)
    inputs = groups.batch(rows, int(groups.det_counts[rows].max()), int(groups.gt_counts.max()))
    xyxy = dict(inputs)
    for name in ("det_boxes", "gt_boxes"):
        inputs[name] = np.round(inputs[name] * 2) / 2  # on the 0.5 grid x + w and (x + w) - x are exact
        xyxy[name] = inputs[name].copy()
        xyxy[name][..., 2:] += inputs[name][..., :2]
    rounds = int(groups.det_counts[rows].max())
    a = coco_match(*(torch.from_numpy(inputs[n]) for n in INPUT_NAMES), rounds=rounds)
    b = coco_match(*(torch.from_numpy(xyxy[n]) for n in INPUT_NAMES), box_format="xyxy", rounds=rounds)
    for name, x, y in zip(OUTPUT_NAMES, a, b):
        assert torch.equal(x, y), name


def test_too_few_rounds_are_flagged_never_silent():
    """One ground truth, eight identical detections: each round settles one, so 3 rounds leave entries open."""
    det_boxes = torch.tensor([[[10.0, 10.0, 50.0, 50.0]] * 8], dtype=torch.float64)
    gt_boxes = torch.tensor([[[10.0, 10.0, 50.0, 50.0]] * 8], dtype=torch.float64)
    args = (det_boxes, torch.linspace(0.9, 0.2, 8, dtype=torch.float64)[None], torch.zeros(1, 8, dtype=torch.int64),
            gt_boxes, torch.zeros(1, 8, dtype=torch.int64), torch.zeros(1, 8, dtype=torch.bool), torch.full((1, 8), 2500.0, dtype=torch.float64))
    short, exact = coco_match(*args, rounds=3), coco_match(*args, rounds=8)
    assert int(short.unsettled) > 0 and int(exact.unsettled) == 0
    want = coco_match_reference(*args)
    for name, x, y in zip(OUTPUT_NAMES, exact, want):
        assert torch.equal(x, y), name
    assert (short.det_match[short.det_match >= 0] == exact.det_match[short.det_match >= 0]).all()  # what settled is final


@pytest.mark.parametrize("keywords, message", [
    ({"box_format": "cxcywh"}, "box_format"), ({"max_dets": 0}, "max_dets"), ({"rounds": 0}, "rounds"),
])
def test_options_are_checked(keywords, message):
    with pytest.raises(ValueError, match=message):
        CocoMatchOptions(**keywords)


def test_the_catalog_entry_matches_its_reference_eagerly():
    entry = catalog.get("coco_match")
    module = entry.build()
    for case in entry.verification_cases(n_random=1):
        inputs = [torch.from_numpy(case.inputs[name]) for name in entry.input_names]
        got, want = module(*inputs), entry.reference(module, *inputs)
        for name, g, w in zip(entry.output_names, got, want):
            assert torch.equal(g, w), f"{case.name}/{name}"


def test_accumulate_alone_equals_pycocotools_on_its_own_evalimgs(dataset):
    """coco_accumulate fed pycocotools' own evalImgs reproduces its precision, recall and 12 numbers exactly."""
    from exportloss.detection.coco import coco_accumulate

    _, _, arrays, anchor = dataset
    num_images, num_areas = arrays.num_images, 4
    category, score, image, rank, matched, ignore = [], [], [], [], [], []
    num_positive = np.zeros((len(arrays.category_ids), num_areas), np.int64)
    for k in range(len(arrays.category_ids)):
        for i in range(num_images):
            entries = [anchor.evalImgs[k * num_areas * num_images + a * num_images + i] for a in range(num_areas)]
            if entries[0] is None:
                continue
            for a, entry in enumerate(entries):
                num_positive[k, a] += int((np.asarray(entry["gtIgnore"]) == 0).sum())
            n = len(entries[0]["dtIds"])
            category += [k] * n
            score += entries[0]["dtScores"]
            image += [i] * n
            rank += list(range(n))
            matched.append(np.stack([e["dtMatches"] > 0 for e in entries], axis=1).transpose(2, 1, 0))  # [D, A, T]
            ignore.append(np.stack([e["dtIgnore"] for e in entries], axis=1).transpose(2, 1, 0))  # [D, A, T]
    result = coco_accumulate(np.array(category), np.array(score), np.array(image), np.array(rank),
                             np.concatenate(matched), np.concatenate(ignore).astype(bool), num_positive)
    np.testing.assert_array_equal(result.precision, anchor.eval["precision"])
    np.testing.assert_array_equal(result.recall, anchor.eval["recall"])
    np.testing.assert_array_equal(result.stats, anchor.stats)
