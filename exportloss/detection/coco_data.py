"""COCO-format data for :func:`exportloss.coco_match`: checked flat arrays, padded batches, a synthetic set.

:func:`coco_arrays` reads a ground-truth dict (``images``, ``annotations``, ``categories``) and a results list
(``image_id``, ``category_id``, ``bbox`` xywh, ``score``) as pycocotools does (images and categories in
sorted-id order, annotations and detections in file order within an image) into :class:`CocoArrays`, and
rejects with a one-line ``ValueError`` what pycocotools would silently miscount or crash on: a missing key,
a ground-truth id of 0 or a repeated one (pycocotools records matches by id, 0 meaning none), an image or
category id that the ground truth does not declare, a negative width, height or area, a non-finite number.
:func:`synthetic_coco` draws a seeded set with the cases on which COCO evaluation is easy to get wrong.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CocoArrays:
    """A COCO ground truth and results list as flat arrays, images in sorted-id order.

    Per detection (``det_*``, in results-file order within each image): image position, xywh box, score,
    category id, and its 1-based position in the results list (pycocotools' ``loadRes`` id). Per ground truth
    (``gt_*``, in annotation order within each image): image position, xywh box, category id, ``iscrowd``,
    annotation ``area`` and ``id``. ``det_start``/``gt_start`` ``[N + 1]`` delimit each image's rows.
    """

    image_ids: np.ndarray
    category_ids: np.ndarray
    det_image: np.ndarray
    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_categories: np.ndarray
    det_ids: np.ndarray
    gt_image: np.ndarray
    gt_boxes: np.ndarray
    gt_categories: np.ndarray
    gt_crowd: np.ndarray
    gt_areas: np.ndarray
    gt_ids: np.ndarray
    det_start: np.ndarray
    gt_start: np.ndarray

    @property
    def num_images(self) -> int:
        return len(self.image_ids)


def _number(value, where: str, what: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{where}: {what} must be a finite number; got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}: {what} must be >= {minimum:g}; got {value!r}")
    return float(value)


def _integer(value, where: str, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {what} must be an integer; got {value!r}")
    return value


def _field(record, key: str, where: str):
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected an object; got {type(record).__name__}")
    if key not in record:
        raise ValueError(f"{where}: missing key {key!r}")
    return record[key]


def _box(value, where: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise ValueError(f"{where}: bbox must be [x, y, width, height]; got {value!r}")
    x, y, w, h = (_number(v, where, "bbox") for v in value)
    if w < 0 or h < 0:
        raise ValueError(f"{where}: bbox width and height must be >= 0; got {value!r}")
    return [x, y, w, h]


def coco_arrays(gt: dict, dets: list, gt_name: str = "ground truth", dets_name: str = "detections") -> CocoArrays:
    """Check ``gt`` (a COCO dict) and ``dets`` (a results list) and return them as :class:`CocoArrays`.

    Raises ``ValueError`` with one line naming ``gt_name`` or ``dets_name`` and the offending record.
    """
    if not isinstance(gt, dict):
        raise ValueError(f"{gt_name}: expected a COCO object with images, annotations and categories; got {type(gt).__name__}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(gt.get(key), list):
            raise ValueError(f"{gt_name}: missing list {key!r}")
    if not isinstance(dets, list):
        raise ValueError(f"{dets_name}: expected a list of detections; got {type(dets).__name__}")
    image_ids = [_integer(_field(im, "id", f"{gt_name} images[{i}]"), f"{gt_name} images[{i}]", "id") for i, im in enumerate(gt["images"])]
    category_ids = [_integer(_field(c, "id", f"{gt_name} categories[{i}]"), f"{gt_name} categories[{i}]", "id")
                    for i, c in enumerate(gt["categories"])]
    for name, ids in (("image", image_ids), ("category", category_ids)):
        if len(set(ids)) != len(ids):
            raise ValueError(f"{gt_name}: {name} id {next(i for i in ids if ids.count(i) > 1)} is declared twice")
    if any(c < 0 for c in category_ids):
        raise ValueError(f"{gt_name}: category ids must be >= 0; got {min(category_ids)}")
    image_position = {image_id: p for p, image_id in enumerate(sorted(image_ids))}
    known_categories = set(category_ids)

    def image_and_category(record, where: str) -> tuple[int, int]:
        image_id = _integer(_field(record, "image_id", where), where, "image_id")
        category_id = _integer(_field(record, "category_id", where), where, "category_id")
        if image_id not in image_position:
            raise ValueError(f"{where}: image_id {image_id} is not an image of the ground truth")
        if category_id not in known_categories:
            raise ValueError(f"{where}: category_id {category_id} is not a category of the ground truth")
        return image_position[image_id], category_id

    gt_rows, seen_ids = [], set()
    for i, ann in enumerate(gt["annotations"]):
        where = f"{gt_name} annotations[{i}]"
        position, category = image_and_category(ann, where)
        ann_id = _integer(_field(ann, "id", where), where, "id")
        if ann_id == 0:
            raise ValueError(f"{where}: annotation id 0 (pycocotools would count its matches as unmatched); renumber from 1")
        if ann_id in seen_ids:
            raise ValueError(f"{where}: annotation id {ann_id} is used twice")
        seen_ids.add(ann_id)
        crowd = _field(ann, "iscrowd", where)
        if crowd not in (0, 1, True, False):
            raise ValueError(f"{where}: iscrowd must be 0 or 1; got {crowd!r}")
        area = _number(_field(ann, "area", where), where, "area", minimum=0.0)
        gt_rows.append((position, _box(_field(ann, "bbox", where), where), category, bool(crowd), area, ann_id))
    det_columns = _det_columns(dets, image_position, known_categories)
    if det_columns is None:  # something is off: the record-by-record checks name it
        det_rows = []
        for i, det in enumerate(dets):
            where = f"{dets_name}[{i}]"
            position, category = image_and_category(det, where)
            score = _number(_field(det, "score", where), where, "score")
            det_rows.append((position, _box(_field(det, "bbox", where), where), score, category))
        det_columns = (np.array([r[0] for r in det_rows], np.int64), np.array([r[1] for r in det_rows], np.float64).reshape(-1, 4),
                       np.array([r[2] for r in det_rows], np.float64), np.array([r[3] for r in det_rows], np.int64))
    det_position, det_boxes, det_scores, det_categories = det_columns
    det_order = np.argsort(det_position, kind="stable")
    gt_order = np.argsort(np.array([r[0] for r in gt_rows], np.int64), kind="stable")
    gt_rows = [gt_rows[i] for i in gt_order]

    def column(rows, index, dtype, width=None):
        shape = (len(rows), width) if width else (len(rows),)
        return np.array([r[index] for r in rows], dtype).reshape(shape)

    num_images = len(image_ids)
    det_image, gt_image = det_position[det_order], column(gt_rows, 0, np.int64)
    return CocoArrays(
        image_ids=np.array(sorted(image_ids), np.int64), category_ids=np.array(sorted(category_ids), np.int64),
        det_image=det_image, det_boxes=det_boxes[det_order], det_scores=det_scores[det_order],
        det_categories=det_categories[det_order], det_ids=det_order.astype(np.int64) + 1,
        gt_image=gt_image, gt_boxes=column(gt_rows, 1, np.float64, 4), gt_categories=column(gt_rows, 2, np.int64),
        gt_crowd=column(gt_rows, 3, bool), gt_areas=column(gt_rows, 4, np.float64), gt_ids=column(gt_rows, 5, np.int64),
        det_start=np.searchsorted(det_image, np.arange(num_images + 1)),
        gt_start=np.searchsorted(gt_image, np.arange(num_images + 1)),
    )


def _det_columns(dets: list, image_position: dict, known_categories: set):
    """The results list as columns (image position, boxes, scores, categories) when every record is well formed,
    else None: the fast path for large files; the record-by-record checks then find and name the fault."""
    try:
        image_ids = [d["image_id"] for d in dets]
        categories = [d["category_id"] for d in dets]
        scores = [d["score"] for d in dets]
        boxes = [d["bbox"] for d in dets]
    except (KeyError, TypeError):
        return None
    if not (all(type(v) is int for v in image_ids) and all(type(v) is int for v in categories)
            and all(type(v) in (int, float) for v in scores)
            and all(type(b) in (list, tuple) and len(b) == 4 and all(type(v) in (int, float) for v in b) for b in boxes)):
        return None
    box = np.array(boxes, np.float64).reshape(-1, 4)
    score = np.array(scores, np.float64)
    positions = [image_position.get(i) for i in image_ids]
    if (not np.isfinite(box).all() or not np.isfinite(score).all() or (box[:, 2:] < 0).any() or None in positions
            or not set(categories) <= known_categories):
        return None
    return np.array(positions, np.int64), box, score, np.array(categories, np.int64)


def synthetic_coco(seed: int, num_images: int = 500, num_categories: int = 80) -> tuple[dict, list]:
    """A seeded COCO ground truth and results list with the hard cases of COCO evaluation.

    Category ids are 1..90 with gaps (like COCO's), some categories have no ground truth, some images none;
    boxes sit on a 0.5-pixel grid, so equal IoUs and IoUs exactly on a threshold occur (and some detections are
    built to sit exactly on 0.5, 0.75 and other thresholds); scores come in 1/20 steps (ties); about 5 % of the
    ground truths are crowd; some annotation areas are exactly 32² and 96²; some images carry more than 100
    detections of one category, some none; detections are duplicated (same box, same score).
    """
    rng = np.random.default_rng(seed)
    category_ids = sorted(rng.choice(np.arange(1, 91), size=num_categories, replace=False).tolist())
    used_categories = category_ids[: max(1, num_categories - 5)]  # the last five never have a ground truth
    images, annotations, dets = [], [], []
    image_ids = rng.choice(np.arange(1, 10 * num_images + 1), size=num_images, replace=False)  # not in order
    for image_id in image_ids.tolist():
        width, height = 640, 480
        images.append({"id": image_id, "width": width, "height": height, "file_name": f"{image_id}.jpg"})
        num_gt = 0 if rng.uniform() < 0.08 else int(rng.integers(1, 16))
        gts = []
        for _ in range(num_gt):
            side = float(np.exp(rng.uniform(np.log(4), np.log(400))))
            w = min(np.round(side * np.exp(rng.normal(0, 0.3)) * 2) / 2, width)
            h = min(np.round(side * np.exp(rng.normal(0, 0.3)) * 2) / 2, height)
            x, y = np.round(rng.uniform(0, width - w / 2) * 2) / 2, np.round(rng.uniform(0, height - h / 2) * 2) / 2
            area = float(w * h * rng.uniform(0.6, 1.0)) if rng.uniform() < 0.5 else float(w * h)
            pick = rng.uniform()
            if pick < 0.04:
                area = 32.0**2
            elif pick < 0.08:
                area = 96.0**2
            category = int(rng.choice(used_categories[: max(3, len(used_categories) // 3)])) if rng.uniform() < 0.5 \
                else int(rng.choice(used_categories))
            crowd = int(rng.uniform() < 0.05)
            gts.append((float(x), float(y), float(w), float(h), category))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "bbox": [float(x), float(y), float(w), float(h)], "area": area, "iscrowd": crowd})
        image_dets = []
        if rng.uniform() < 0.06:
            pass  # an image without detections
        else:
            for x, y, w, h, category in gts:
                for _ in range(int(rng.integers(0, 5))):
                    kind = rng.uniform()
                    if kind < 0.15:  # on a threshold: the same height, a width fraction of the ground truth
                        fraction = float(rng.choice([0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]))
                        box = [x, y, w * fraction, h]
                    elif kind < 0.25:
                        box = [x, y, w, h]
                    else:
                        jitter = rng.normal(0, 0.12, 4)
                        box = [np.round((x + jitter[0] * w) * 2) / 2, np.round((y + jitter[1] * h) * 2) / 2,
                               np.round(w * np.exp(jitter[2]) * 2) / 2, np.round(h * np.exp(jitter[3]) * 2) / 2]
                    cat = category if rng.uniform() < 0.9 else int(rng.choice(category_ids))
                    image_dets.append((box, cat, float(np.round(rng.uniform(0.05, 1.0) * 20) / 20)))
            for _ in range(int(rng.integers(0, 12))):  # background
                w, h = float(rng.integers(2, 200)), float(rng.integers(2, 200))
                box = [float(rng.integers(0, width)), float(rng.integers(0, height)), w, h]
                image_dets.append((box, int(rng.choice(category_ids)), float(np.round(rng.uniform(0.0, 0.6) * 20) / 20)))
            if gts and rng.uniform() < 0.05:  # more than 100 detections of one category
                x, y, w, h, category = gts[0]
                for _ in range(int(rng.integers(101, 140))):
                    jitter = rng.normal(0, 0.2, 4)
                    box = [np.round((x + jitter[0] * w) * 2) / 2, np.round((y + jitter[1] * h) * 2) / 2,
                           np.round(w * np.exp(jitter[2]) * 2) / 2, np.round(h * np.exp(jitter[3]) * 2) / 2]
                    image_dets.append((box, category, float(np.round(rng.uniform(0.0, 1.0) * 20) / 20)))
            if image_dets and rng.uniform() < 0.2:  # exact duplicates
                image_dets += [image_dets[i] for i in rng.integers(0, len(image_dets), size=3)]
        rng.shuffle(image_dets)
        for box, category, score in image_dets:
            dets.append({"image_id": image_id, "category_id": category, "bbox": [float(v) for v in box], "score": score})
    order = rng.permutation(len(dets))  # results files need not be grouped by image
    return {"images": images, "annotations": annotations, "categories": [{"id": c, "name": f"c{c}"} for c in category_ids]}, \
        [dets[i] for i in order]


@dataclass(frozen=True)
class CocoGroups:
    """The (image, category) pairs of :class:`CocoArrays` that have a detection or a ground truth, sorted.

    Matching never crosses categories, so each group can be one row of :func:`exportloss.coco_match`
    (small rows, little padding). Detections are cut to the first ``max_dets`` of their group by
    pycocotools' order (descending score, file order on ties) and keep file order. ``det_rows``/``gt_rows``
    index the :class:`CocoArrays` columns, grouped; ``det_start``/``gt_start`` ``[NG + 1]`` delimit the groups.
    """

    arrays: CocoArrays
    image: np.ndarray
    category: np.ndarray
    det_rows: np.ndarray
    gt_rows: np.ndarray
    det_start: np.ndarray
    gt_start: np.ndarray

    @property
    def det_counts(self) -> np.ndarray:
        return np.diff(self.det_start)

    @property
    def gt_counts(self) -> np.ndarray:
        return np.diff(self.gt_start)

    def batch(self, groups: np.ndarray, num_dets: int, num_gts: int, rows: int | None = None) -> dict[str, np.ndarray]:
        """``groups`` as :func:`exportloss.coco_match` inputs of ``rows`` (default ``len(groups)``) rows; the rows
        after the groups are padding."""
        rows = len(groups) if rows is None else rows
        a = self.arrays
        out = {
            "det_boxes": np.zeros((rows, num_dets, 4)), "det_scores": np.zeros((rows, num_dets)),
            "det_categories": np.full((rows, num_dets), -1, np.int64),
            "gt_boxes": np.zeros((rows, num_gts, 4)), "gt_categories": np.full((rows, num_gts), -1, np.int64),
            "gt_crowd": np.zeros((rows, num_gts), bool), "gt_areas": np.zeros((rows, num_gts)),
        }
        det_row, det_slot, det_source = self.slots(groups, "det")
        gt_row, gt_slot, gt_source = self.slots(groups, "gt")
        for name, column in (("det_boxes", a.det_boxes), ("det_scores", a.det_scores), ("det_categories", a.det_categories)):
            out[name][det_row, det_slot] = column[det_source]
        for name, column in (("gt_boxes", a.gt_boxes), ("gt_categories", a.gt_categories), ("gt_crowd", a.gt_crowd),
                             ("gt_areas", a.gt_areas)):
            out[name][gt_row, gt_slot] = column[gt_source]
        return out

    def slots(self, groups: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For the detections (``kind="det"``) or ground truths of ``groups``: batch row, slot in the row, and
        row of the :class:`CocoArrays` columns."""
        start, rows = (self.det_start, self.det_rows) if kind == "det" else (self.gt_start, self.gt_rows)
        counts = start[groups + 1] - start[groups]
        row = np.repeat(np.arange(len(groups)), counts)
        slot = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return row, slot, rows[np.repeat(start[groups], counts) + slot]


def coco_groups(arrays: CocoArrays, max_dets: int = 100) -> CocoGroups:
    """Group ``arrays`` by (image, category) and cut each group's detections to its first ``max_dets``."""
    span = int(max(arrays.category_ids.max(initial=0), 0)) + 1
    det_key = arrays.det_image * span + arrays.det_categories
    gt_key = arrays.gt_image * span + arrays.gt_categories
    keys = np.unique(np.concatenate([det_key, gt_key]))
    det_group, gt_group = np.searchsorted(keys, det_key), np.searchsorted(keys, gt_key)
    file_order = np.arange(len(det_key))  # the columns keep file order within an image
    by_score = np.lexsort((file_order, -arrays.det_scores, det_group))
    first = np.searchsorted(det_group[by_score], np.arange(len(keys)))
    rank = np.empty(len(det_key), np.int64)
    rank[by_score] = np.arange(len(det_key)) - first[det_group[by_score]]
    kept = np.flatnonzero(rank < max_dets)
    det_rows = kept[np.argsort(det_group[kept], kind="stable")]
    gt_rows = np.argsort(gt_group, kind="stable")
    return CocoGroups(
        arrays=arrays, image=keys // span, category=keys % span, det_rows=det_rows, gt_rows=gt_rows,
        det_start=np.searchsorted(det_group[det_rows], np.arange(len(keys) + 1)),
        gt_start=np.searchsorted(gt_group[gt_rows], np.arange(len(keys) + 1)),
    )


def image_groups(arrays: CocoArrays) -> CocoGroups:
    """One group per image (every category in it), detections uncut: rows of a per-image ``coco_match``."""
    images = np.arange(arrays.num_images)
    return CocoGroups(arrays=arrays, image=images, category=np.full(len(images), -1), det_rows=np.arange(len(arrays.det_ids)),
                      gt_rows=np.arange(len(arrays.gt_ids)), det_start=arrays.det_start, gt_start=arrays.gt_start)
