"""Catalog entries of detection post-processing: max-IoU assignment, Cluster/Fast NMS, match metrics.

Inputs imitate a detector's output: :func:`detection_scene` draws objects, clusters of jittered
boxes around each with scores that fall with the jitter, a confusable second class on some boxes,
and background boxes with low scores. Every output of these graphs is either an input value passed
through (boxes, scores), an integer, or an overlap; the tolerances are the defaults.
"""

from __future__ import annotations

import numpy as np
import torch

from ..detection.assign import MaxIoUAssigner
from ..detection.coco import CocoMatch, coco_accumulate
from ..detection.coco_accumulate import CocoAccumulate
from ..detection.coco_data import coco_arrays, coco_groups, image_groups, synthetic_coco
from ..detection.match_metrics import MatchMetrics
from ..detection.nms import ClusterNMS, FastNMS
from ..detection.options import COCO_MAX_DETS
from ..detection.rotated_nms import RotatedClusterNMS
from ..reference.coco import coco_match_reference
from ..reference.detection import match_metrics_reference, max_iou_assign_reference, nms_reference, rotated_nms_reference
from .entry import Case, GraphEntry, Inputs, Shapes, TensorSpec
from .boxes import PI, random_boxes, random_rotated_boxes

IMAGE_SIZE = 640.0


def jitter_boxes(rng: np.random.Generator, boxes: np.ndarray, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes ``[..., 4]`` with centres moved and sides scaled by about ``spread`` of their size, and the
    jitter's magnitude ``[...]`` (0 = unchanged)."""
    wh = boxes[..., 2:] - boxes[..., :2]
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2
    shift = rng.normal(0.0, spread, size=wh.shape)
    log_scale = rng.normal(0.0, spread, size=wh.shape)
    centre = centre + shift * wh
    wh = wh * np.exp(log_scale)
    jittered = np.concatenate([centre - wh / 2, centre + wh / 2], axis=-1)
    return jittered.astype(np.float32), np.sqrt((shift**2).sum(-1) + (log_scale**2).sum(-1))


def detection_scene(rng: np.random.Generator, boxes_shape: tuple[int, ...], scores_shape: tuple[int, ...]) -> Inputs:
    """A detector-like scene: ``boxes [B, N, 4]`` (xyxy, in a 640-pixel image) and ``scores [B, N(, C)]``.

    3 to 12 objects per image; 80 % of the boxes are jittered copies of an object scoring
    ``confidence · exp(-2 · jitter)`` for its class (30 % of them also score a confusable class at a
    fraction of that); the rest are background boxes scoring under 0.3 for a random class. Every other
    score is noise under 0.02.
    """
    batch, num_boxes = boxes_shape[:2]
    num_classes = scores_shape[2] if len(scores_shape) == 3 else 1
    boxes = np.empty((batch, num_boxes, 4), np.float32)
    scores = rng.uniform(0.0, 0.02, size=(batch, num_boxes, num_classes))
    for b in range(batch):
        num_objects = int(rng.integers(3, 13))
        objects = random_boxes(rng, (num_objects, 4), scale=IMAGE_SIZE)
        owner = rng.integers(0, num_objects, size=num_boxes)
        jittered, jitter = jitter_boxes(rng, objects[owner], spread=0.12)
        is_object = rng.uniform(size=num_boxes) < 0.8
        boxes[b] = np.where(is_object[:, None], jittered, random_boxes(rng, (num_boxes, 4), scale=IMAGE_SIZE))
        object_class = rng.integers(0, num_classes, size=num_objects)[owner]
        confidence = rng.uniform(0.4, 1.0, size=num_objects)[owner]
        score = np.where(is_object, confidence * np.exp(-2.0 * jitter), rng.uniform(0.0, 0.3, size=num_boxes))
        cls = np.where(is_object, object_class, rng.integers(0, num_classes, size=num_boxes))
        scores[b, np.arange(num_boxes), cls] = score
        confusable = is_object & (rng.uniform(size=num_boxes) < 0.3)
        other = (cls + rng.integers(1, max(num_classes, 2), size=num_boxes)) % num_classes
        scores[b, confusable, other[confusable]] = score[confusable] * rng.uniform(0.3, 0.9, size=int(confusable.sum()))
    return {"boxes": boxes, "scores": scores.reshape(scores_shape).astype(np.float32)}


def nms_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    scene = detection_scene(rng, shapes["boxes"], shapes["scores"])
    boxes, scores = scene["boxes"], scene["scores"]
    half = boxes.shape[1] // 2
    # The first half's boxes again in the second half, each copy scoring only another class.
    cross_boxes = boxes.copy()
    cross_boxes[:, half: 2 * half] = boxes[:, :half]
    cross_scores = scores.copy()
    if scores.ndim == 3:
        cross_scores[:, half: 2 * half] = np.roll(scores[:, :half], 1, axis=-1)
    identical = np.broadcast_to(boxes[:, :1], boxes.shape).copy()
    crowded = random_boxes(rng, boxes.shape, scale=IMAGE_SIZE) * np.float32(0.05)  # small, rarely overlapping
    crowded += np.tile(rng.uniform(0.0, IMAGE_SIZE, size=(*boxes.shape[:2], 2)).astype(np.float32), 2)
    degenerate = boxes.copy()
    degenerate[:, ::3, 2:] = degenerate[:, ::3, :2]  # every third box is a point
    # Tie-heavy cases (the tie rule, not the backend's TopK, must decide them): each box twice in a
    # row with the same scores; every class of a box at the box's best score; scores in uint8 steps.
    doubled_boxes = np.repeat(boxes[:, : (boxes.shape[1] + 1) // 2], 2, axis=1)[:, : boxes.shape[1]]
    doubled_scores = np.repeat(scores[:, : (scores.shape[1] + 1) // 2], 2, axis=1)[:, : scores.shape[1]]
    nan_scores = scores.copy()
    nan_scores.reshape(-1)[::7] = np.nan  # never kept, and no candidate slot taken from a real pair
    # A suppression chain as long as the image has boxes, each overlapping only its neighbours (IoU 0.54):
    # greedy NMS keeps every other box; "auto" iterations fall short, and `converged` must say so.
    step = np.arange(boxes.shape[1], dtype=np.float32)[:, None]
    chain_boxes = np.broadcast_to(np.concatenate([3 * step, 0 * step, 3 * step + 10, 0 * step + 10], axis=1), boxes.shape).copy()
    chain_scores = np.zeros_like(scores)
    chain_scores.reshape(*boxes.shape[:2], -1)[:, :, 0] = np.linspace(0.9, 0.1, boxes.shape[1], dtype=np.float32)  # class 0
    cases = [
        Case("nothing-above-score-thr", {"boxes": boxes, "scores": scores * np.float32(0.04)}),
        Case("all-boxes-identical", {"boxes": identical, "scores": scores}),
        Case("more-candidates-than-max-det", {"boxes": crowded, "scores": rng.uniform(0.5, 1.0, scores.shape).astype(np.float32)}),
        Case("same-box-other-class", {"boxes": cross_boxes, "scores": cross_scores}),
        Case("tied-scores", {"boxes": boxes, "scores": np.round(scores * 4) / np.float32(4)}),
        Case("all-scores-equal", {"boxes": boxes, "scores": np.full_like(scores, 0.5)}),
        Case("zero-area-boxes", {"boxes": degenerate, "scores": scores}),
        Case("scores-in-eighths", {"boxes": boxes, "scores": np.round(scores * 8) / np.float32(8)}),
        Case("uint8-scores", {"boxes": boxes, "scores": np.round(scores * 255) / np.float32(255)}),
        Case("duplicated-boxes-tied-scores", {"boxes": doubled_boxes, "scores": np.round(doubled_scores * 8) / np.float32(8)}),
        Case("nan-scores", {"boxes": boxes, "scores": nan_scores}),
        Case("long-suppression-chain", {"boxes": chain_boxes, "scores": chain_scores}),
    ]
    if scores.ndim == 3:
        best = scores.max(axis=2, keepdims=True)
        cases.append(Case("equal-scores-across-classes", {"boxes": boxes, "scores": np.broadcast_to(best, scores.shape).copy()}))
    return cases


def prefix_valid(rng: np.random.Generator, shape: tuple[int, ...], min_valid: int = 1) -> np.ndarray:
    """``[B, M]`` bool: a random number (at least ``min_valid``) of leading True per row, the padding after."""
    counts = rng.integers(min(min_valid, shape[1]), shape[1] + 1, size=shape[0])
    return np.arange(shape[1]) < counts[:, None]


def assign_inputs(shapes: Shapes, rng: np.random.Generator) -> Inputs:
    """Ground truths anywhere; half the anchors are jittered ground truths (so some match), half random."""
    gt_boxes = random_boxes(rng, shapes["gt_boxes"], scale=IMAGE_SIZE)
    num_anchors = shapes["anchors"][1]
    if gt_boxes.shape[1] == 0:  # no ground truths: random anchors only
        anchors = random_boxes(rng, shapes["anchors"], scale=IMAGE_SIZE)
        return {"anchors": anchors, "gt_boxes": gt_boxes, "gt_valid": np.zeros(shapes["gt_valid"], bool)}
    pick = rng.integers(0, gt_boxes.shape[1], size=(gt_boxes.shape[0], num_anchors))
    near, _ = jitter_boxes(rng, np.take_along_axis(gt_boxes, pick[..., None], axis=1), spread=0.2)
    anchors = np.where(
        (np.arange(num_anchors) % 2 == 0)[:, None], near, random_boxes(rng, near.shape, scale=IMAGE_SIZE)
    )[: shapes["anchors"][0]]
    return {"anchors": anchors, "gt_boxes": gt_boxes, "gt_valid": prefix_valid(rng, shapes["gt_valid"])}


def assign_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    ordinary = assign_inputs(shapes, rng)
    no_gt = dict(ordinary, gt_valid=np.zeros_like(ordinary["gt_valid"]))
    one_padded_image = dict(ordinary, gt_valid=ordinary["gt_valid"].copy())
    one_padded_image["gt_valid"][0] = False
    identical_anchors = dict(ordinary, anchors=np.broadcast_to(ordinary["anchors"][:, :1], ordinary["anchors"].shape).copy())
    far_gts = dict(ordinary, gt_boxes=ordinary["gt_boxes"] + np.float32(10 * IMAGE_SIZE))
    rows = min(shapes["anchors"][1], shapes["gt_boxes"][1])
    exact = dict(ordinary, anchors=ordinary["anchors"].copy())
    exact["anchors"][:, :rows] = ordinary["gt_boxes"][: exact["anchors"].shape[0], :rows]
    duplicated_gts = dict(ordinary, gt_boxes=ordinary["gt_boxes"].copy())
    duplicated_gts["gt_boxes"][:, 1::2] = ordinary["gt_boxes"][:, ::2][:, : shapes["gt_boxes"][1] // 2]  # equal overlaps
    non_finite_gts = dict(ordinary, gt_boxes=ordinary["gt_boxes"].copy())  # these ground truths count as padding
    non_finite_gts["gt_boxes"][:, 0, 0] = np.nan
    non_finite_gts["gt_boxes"][:, 1, 3] = np.inf
    return [
        Case("no-valid-gt", no_gt),
        Case("one-image-all-padding", one_padded_image),
        Case("duplicated-gts", duplicated_gts),
        Case("non-finite-gts", non_finite_gts),
        Case("identical-anchors", identical_anchors),
        Case("gts-overlap-no-anchor", far_gts),
        Case("anchors-equal-gts", exact),
    ]


def match_inputs(shapes: Shapes, rng: np.random.Generator) -> Inputs:
    """Predictions: jittered copies of the ground truths (some close, some not) followed by random boxes."""
    gt_boxes = random_boxes(rng, shapes["gt_boxes"], scale=IMAGE_SIZE)
    num_preds = shapes["pred_boxes"][1]
    if gt_boxes.shape[1] == 0:  # no ground truths: random predictions only
        return {"pred_boxes": random_boxes(rng, shapes["pred_boxes"], scale=IMAGE_SIZE),
                "pred_valid": prefix_valid(rng, shapes["pred_valid"], min_valid=0),
                "gt_boxes": gt_boxes, "gt_valid": np.zeros(shapes["gt_valid"], bool)}
    pick = np.arange(num_preds) % gt_boxes.shape[1]
    spread = rng.uniform(0.02, 0.4, size=(gt_boxes.shape[0], num_preds, 1))
    near, _ = jitter_boxes(rng, gt_boxes[:, pick], spread=1.0)
    near = gt_boxes[:, pick] + (near - gt_boxes[:, pick]) * spread.astype(np.float32)
    far = random_boxes(rng, near.shape, scale=IMAGE_SIZE)
    pred_boxes = np.where((np.arange(num_preds) < 2 * gt_boxes.shape[1])[:, None], near, far).astype(np.float32)
    return {
        "pred_boxes": pred_boxes,
        "pred_valid": prefix_valid(rng, shapes["pred_valid"], min_valid=0),
        "gt_boxes": gt_boxes,
        "gt_valid": prefix_valid(rng, shapes["gt_valid"], min_valid=0),
    }


def match_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    ordinary = match_inputs(shapes, rng)
    rows = min(shapes["pred_boxes"][1], shapes["gt_boxes"][1])
    perfect = dict(ordinary, pred_boxes=ordinary["pred_boxes"].copy(), pred_valid=np.ones_like(ordinary["pred_valid"]),
                   gt_valid=np.ones_like(ordinary["gt_valid"]))
    perfect["pred_boxes"][:, :rows] = ordinary["gt_boxes"][:, :rows]
    points = dict(ordinary, gt_boxes=ordinary["gt_boxes"].copy())
    points["gt_boxes"][..., 2:] = points["gt_boxes"][..., :2]
    duplicated = dict(ordinary, pred_boxes=np.repeat(ordinary["pred_boxes"][:, : (shapes["pred_boxes"][1] + 1) // 2], 2, axis=1)[:, : shapes["pred_boxes"][1]])
    non_finite = dict(ordinary, pred_boxes=ordinary["pred_boxes"].copy(), gt_boxes=ordinary["gt_boxes"].copy())
    non_finite["pred_boxes"][:, ::4, 0] = np.nan
    non_finite["pred_boxes"][:, 1::9, 2] = np.inf
    non_finite["gt_boxes"][:, ::5, 1] = np.nan
    return [
        Case("duplicated-predictions", duplicated),
        Case("non-finite-boxes", non_finite),
        Case("no-valid-prediction", dict(ordinary, pred_valid=np.zeros_like(ordinary["pred_valid"]))),
        Case("no-valid-gt", dict(ordinary, gt_valid=np.zeros_like(ordinary["gt_valid"]))),
        Case("predictions-equal-gts", perfect),
        Case("point-gts", points),
    ]


NMS_SIZES = {"batch": 2, "boxes": 1000, "classes": 80, "max_det": 100, "candidates": 1000}
"""``max_det`` (detections per image) and ``candidates`` (pairs that enter NMS, at most all of them) are sizes: any
value exports (``--size max_det=300``); TensorRT's TopK needs both below 3840, which ``check-trt`` reports."""


def nms_specs(box_width: int, outputs: str = "default") -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """Inputs and outputs of a fixed-shape NMS graph whose boxes have ``box_width`` coordinates, in the
    ``outputs`` convention of :class:`~exportloss.detection.options.NMSOptions`."""
    inputs = (TensorSpec("boxes", ("batch", "boxes", box_width)), TensorSpec("scores", ("batch", "boxes", "classes")))
    if outputs == "efficientnms":
        return inputs, (
            TensorSpec("num_detections", ("batch", 1), "int32"), TensorSpec("detection_boxes", ("batch", "max_det", box_width)),
            TensorSpec("detection_scores", ("batch", "max_det")), TensorSpec("detection_classes", ("batch", "max_det"), "int32"),
            TensorSpec("detection_indices", ("batch", "max_det"), "int32"), TensorSpec("converged", ("batch",), "bool"),
            TensorSpec("num_capped", ("batch",), "int32"))
    return inputs, (
        TensorSpec("num_dets", ("batch",), "int64"), TensorSpec("det_boxes", ("batch", "max_det", box_width)),
        TensorSpec("det_scores", ("batch", "max_det")), TensorSpec("det_classes", ("batch", "max_det"), "int64"),
        TensorSpec("det_indices", ("batch", "max_det"), "int64"), TensorSpec("converged", ("batch",), "bool"),
        TensorSpec("num_capped", ("batch",), "int64"))


def nms_entry(name: str, summary: str, readme: str, make_nms, **options) -> GraphEntry:
    """An axis-aligned NMS entry at :data:`NMS_SIZES`: ``make_nms(max_det=..., candidates=..., **options)``."""
    return GraphEntry(
        name=name,
        summary=summary,
        readme=readme,
        sizes=NMS_SIZES,
        make=lambda sizes: make_nms(max_det=sizes["max_det"], candidates=sizes["candidates"], **options),
        inputs=nms_specs(4)[0],
        outputs=nms_specs(4, options.get("outputs", "default"))[1],
        outputs_at=lambda set_options: nms_specs(4, set_options.get("outputs", options.get("outputs", "default")))[1],
        reference=lambda module, boxes, scores: nms_reference(boxes, scores, module.options),
        random_inputs=lambda shapes, rng: detection_scene(rng, shapes["boxes"], shapes["scores"]),
        edge_cases=nms_edge_cases,
    )


NMS_ENTRIES = (
    nms_entry("cluster_nms", "Cluster-NMS (IoU 0.5, 80 classes, top 1000 pairs) to 100 fixed-shape detections",
              "fixed-shape multi-class NMS", ClusterNMS, kind="iou"),
    nms_entry("cluster_diou_nms", "Cluster-DIoU-NMS (IoU - rho^2/c^2 > 0.5) to 100 fixed-shape detections",
              "fixed-shape multi-class NMS", ClusterNMS, kind="diou"),
    nms_entry("fast_nms", "Fast NMS (one Cluster-NMS iteration, IoU 0.5) to 100 fixed-shape detections",
              "fixed-shape multi-class NMS", FastNMS, kind="iou"),
    nms_entry("cluster_nms_best_class", "Cluster-NMS of each box's best class (ultralytics' NMS) to 100 detections",
              "NMS of each box's best class (ultralytics)", ClusterNMS, classes="best"),
    nms_entry("cluster_nms_efficientnms", "Cluster-NMS with TensorRT EfficientNMS's outputs (int32 counts, classes)",
              "NMS with EfficientNMS's outputs", ClusterNMS, outputs="efficientnms"),
)

MATCHING_ENTRIES = (
    GraphEntry(
        name="max_iou_assign",
        summary="mmdet MaxIoUAssigner: anchor -> gt index / -1 background / -2 ignored, padded gts",
        readme="mmdet's MaxIoUAssigner with padded ground truths",
        sizes={"batch": 2, "anchors": 1000, "gts": 20},
        make=lambda sizes: MaxIoUAssigner(),
        inputs=(TensorSpec("anchors", ("batch", "anchors", 4)), TensorSpec("gt_boxes", ("batch", "gts", 4)),
                TensorSpec("gt_valid", ("batch", "gts"), "bool")),
        outputs=(TensorSpec("assigned_gt", ("batch", "anchors"), "int64"), TensorSpec("max_overlap", ("batch", "anchors"))),
        reference=lambda module, anchors, gt_boxes, gt_valid: max_iou_assign_reference(
            anchors, gt_boxes, gt_valid, module.options
        ),
        random_inputs=assign_inputs,
        edge_cases=assign_edge_cases,
    ),
    GraphEntry(
        name="match_metrics",
        summary="per image: mean best IoU of valid gts, recall@0.5/0.75, CIoU loss of matched pairs",
        readme="in-graph evaluation per image",
        sizes={"batch": 2, "preds": 100, "gts": 20},
        make=lambda sizes: MatchMetrics(),
        inputs=(TensorSpec("pred_boxes", ("batch", "preds", 4)), TensorSpec("pred_valid", ("batch", "preds"), "bool"),
                TensorSpec("gt_boxes", ("batch", "gts", 4)), TensorSpec("gt_valid", ("batch", "gts"), "bool")),
        outputs=(TensorSpec("mean_best_iou", ("batch",)), TensorSpec("recall", ("batch", 2)),
                 TensorSpec("matched_loss", ("batch",)), TensorSpec("num_gt", ("batch",), "int64")),
        reference=lambda module, pred_boxes, pred_valid, gt_boxes, gt_valid: match_metrics_reference(
            pred_boxes, pred_valid, gt_boxes, gt_valid, module.options
        ),
        random_inputs=match_inputs,
        edge_cases=match_edge_cases,
    ),
)


def rotated_scene(rng: np.random.Generator, boxes_shape: tuple[int, ...], scores_shape: tuple[int, ...]) -> Inputs:
    """An oriented-detector-like scene: jittered copies of 3 to 12 objects per image (80 %) and background
    boxes, scoring ``confidence · exp(-2 · jitter)`` for the object's class; other scores are noise under 0.02."""
    batch, num_boxes = boxes_shape[:2]
    num_classes = scores_shape[2] if len(scores_shape) == 3 else 1
    boxes = np.empty((batch, num_boxes, 5), np.float32)
    scores = rng.uniform(0.0, 0.02, size=(batch, num_boxes, num_classes))
    for b in range(batch):
        num_objects = int(rng.integers(3, 13))
        objects = random_rotated_boxes(rng, (num_objects, 5), scale=640.0)
        owner = rng.integers(0, num_objects, size=num_boxes)
        spread = rng.normal(0.0, 0.1, size=(num_boxes, 4))
        jittered = objects[owner].copy()
        jittered[:, :2] += spread[:, :2] * jittered[:, 2:4]
        jittered[:, 2:4] *= np.exp(spread[:, 2:3] * np.array([1.0, 0.5]))
        jittered[:, 4] += spread[:, 3]
        jitter = np.sqrt((spread**2).sum(-1))
        is_object = rng.uniform(size=num_boxes) < 0.8
        boxes[b] = np.where(is_object[:, None], jittered, random_rotated_boxes(rng, (num_boxes, 5), scale=640.0))
        cls = rng.integers(0, num_classes, size=num_objects)[owner]
        confidence = rng.uniform(0.4, 1.0, size=num_objects)[owner]
        score = np.where(is_object, confidence * np.exp(-2.0 * jitter), rng.uniform(0.0, 0.3, size=num_boxes))
        scores[b, np.arange(num_boxes), cls] = score
    return {"boxes": boxes, "scores": scores.reshape(scores_shape).astype(np.float32)}


def rotated_nms_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    scene = rotated_scene(rng, shapes["boxes"], shapes["scores"])
    boxes, scores = scene["boxes"], scene["scores"]
    turned = boxes.copy()
    turned[:, 1::2, 4] += np.float32(PI)  # the same boxes, half of them written with θ + π
    degenerate = boxes.copy()
    degenerate[:, ::3, 2] = 0.0  # every third box has zero width
    identical = np.broadcast_to(boxes[:, :1], boxes.shape).copy()
    return [
        Case("nothing-above-score-thr", {"boxes": boxes, "scores": scores * np.float32(0.04)}),
        Case("all-boxes-identical", {"boxes": identical, "scores": scores}),
        Case("theta-plus-pi", {"boxes": turned, "scores": scores}),
        Case("tied-scores", {"boxes": boxes, "scores": np.round(scores * 4) / np.float32(4)}),
        Case("zero-width-boxes", {"boxes": degenerate, "scores": scores}),
    ]


ROTATED_NMS_ENTRY = GraphEntry(
    name="rotated_cluster_nms",
    summary="rotated Cluster-NMS (exact IoU 0.5, 15 classes, top 256 pairs) to 100 fixed-shape detections",
    readme="Cluster-NMS with the exact rotated IoU, top 256 pairs",
    sizes={"batch": 2, "boxes": 128, "classes": 15, "max_det": 100, "candidates": 256},
    make=lambda sizes: RotatedClusterNMS(criterion="iou", max_det=sizes["max_det"], candidates=sizes["candidates"]),
    inputs=nms_specs(5)[0],
    outputs=nms_specs(5)[1],
    outputs_at=lambda set_options: nms_specs(5, set_options.get("outputs", "default"))[1],
    reference=lambda module, boxes, scores: rotated_nms_reference(boxes, scores, module.options),
    random_inputs=lambda shapes, rng: rotated_scene(rng, shapes["boxes"], shapes["scores"]),
    edge_cases=rotated_nms_edge_cases,
)

ENTRIES = (*NMS_ENTRIES, *MATCHING_ENTRIES, ROTATED_NMS_ENTRY)
"""The detection family's catalog entries, in ``exportloss list`` order."""


COCO_SIZES = {"batch": 8, "detections": 100, "ground_truths": 50}


def coco_inputs(shapes: Shapes, rng: np.random.Generator) -> Inputs:
    """Images of :func:`~exportloss.detection.coco_data.synthetic_coco` (ties, on-threshold IoUs, crowds, areas of
    exactly 32² and 96²) that fit the padded sizes, padded as ``exportloss evaluate`` pads them; at sizes too small
    for whole images, its (image, category) groups (the rows ``exportloss evaluate`` runs)."""
    batch, num_dets, num_gts = shapes["det_scores"][0], shapes["det_scores"][1], shapes["gt_areas"][1]
    arrays = coco_arrays(*synthetic_coco(int(rng.integers(2**31)), num_images=min(max(2 * batch, 8), 64)))
    for groups in (image_groups(arrays), coco_groups(arrays)):
        fits = np.flatnonzero((groups.det_counts <= num_dets) & (groups.gt_counts <= num_gts))
        if len(fits):
            chosen = np.sort(rng.choice(fits, size=batch, replace=len(fits) < batch))
            return groups.batch(chosen, num_dets, num_gts, batch)
    return groups.batch(np.zeros(0, np.int64), num_dets, num_gts, batch)


def coco_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    ordinary = coco_inputs(shapes, rng)
    no_gt = dict(ordinary, gt_categories=np.full_like(ordinary["gt_categories"], -1))
    no_dets = dict(ordinary, det_categories=np.full_like(ordinary["det_categories"], -1))
    all_crowd = dict(ordinary, gt_crowd=np.ones_like(ordinary["gt_crowd"]))
    tied = dict(ordinary, det_scores=np.full_like(ordinary["det_scores"], 0.5))
    one_category = dict(ordinary, det_categories=np.where(ordinary["det_categories"] >= 0, ordinary["gt_categories"][:, :1], -1),
                        gt_categories=np.where(ordinary["gt_categories"] >= 0, ordinary["gt_categories"][:, :1], -1))
    exact = dict(ordinary, det_boxes=ordinary["det_boxes"].copy())
    rows = min(shapes["det_boxes"][1], shapes["gt_boxes"][1])
    exact["det_boxes"][:, :rows] = ordinary["gt_boxes"][:, :rows]  # IoU 1 with its own ground truth, ties elsewhere
    exact["det_categories"] = ordinary["det_categories"].copy()
    exact["det_categories"][:, :rows] = np.where(ordinary["gt_categories"][:, :rows] >= 0, ordinary["gt_categories"][:, :rows],
                                                 ordinary["det_categories"][:, :rows])
    areas = dict(ordinary, gt_areas=np.where(np.arange(shapes["gt_areas"][1]) % 2 == 0, 32.0**2, 96.0**2) * np.ones_like(ordinary["gt_areas"]))
    nan_scores = dict(ordinary, det_scores=ordinary["det_scores"].copy())
    nan_scores["det_scores"][:, ::7] = np.nan  # NaN scores count as padding
    return [
        Case("no-gt", no_gt), Case("no-detections", no_dets), Case("all-crowd", all_crowd), Case("all-scores-tied", tied),
        Case("one-category", one_category), Case("detections-equal-gts", exact), Case("areas-on-range-bounds", areas),
        Case("nan-scores", nan_scores),
    ]


COCO_ENTRY = GraphEntry(
    name="coco_match",
    summary="pycocotools' per-image bbox matching (float64): ranks, TP/FP/ignore for 4 areas x 10 IoUs, 8 rounds",
    readme="COCO evaluation's per-image matching (pycocotools evaluateImg), float64",
    sizes=COCO_SIZES,
    make=lambda sizes: CocoMatch(),
    inputs=(TensorSpec("det_boxes", ("batch", "detections", 4), "float64"), TensorSpec("det_scores", ("batch", "detections"), "float64"),
            TensorSpec("det_categories", ("batch", "detections"), "int64"),
            TensorSpec("gt_boxes", ("batch", "ground_truths", 4), "float64"),
            TensorSpec("gt_categories", ("batch", "ground_truths"), "int64"), TensorSpec("gt_crowd", ("batch", "ground_truths"), "bool"),
            TensorSpec("gt_areas", ("batch", "ground_truths"), "float64")),
    outputs=(TensorSpec("det_rank", ("batch", "detections"), "int64"), TensorSpec("det_kept", ("batch", "detections"), "bool"),
             TensorSpec("det_match", ("batch", 4, 10, "detections"), "int64"),
             TensorSpec("det_ignore", ("batch", 4, 10, "detections"), "bool"),
             TensorSpec("gt_ignore", ("batch", 4, "ground_truths"), "bool"),
             TensorSpec("gt_match", ("batch", 4, 10, "ground_truths"), "int64"), TensorSpec("unsettled", ("batch",), "int64")),
    reference=lambda module, *inputs: coco_match_reference(*inputs, options=module.options),
    random_inputs=coco_inputs,
    edge_cases=coco_edge_cases,
)

ENTRIES = (*ENTRIES, COCO_ENTRY)


COCO_ACCUMULATE_SIZES = {"detections": 1024, "categories": 8}


def coco_accumulate_outputs(num_max_dets: int = len(COCO_MAX_DETS)) -> tuple[TensorSpec, ...]:
    return (TensorSpec("precision", (10, 101, "categories", 4, num_max_dets), "float64"),
            TensorSpec("recall", (10, "categories", 4, num_max_dets), "float64"))


def coco_accumulate_inputs(shapes: Shapes, rng: np.random.Generator) -> Inputs:
    """The matching of a :func:`~exportloss.detection.coco_data.synthetic_coco` set (eager ``coco_match``) with
    ``categories`` categories, as ``exportloss evaluate`` hands it to the accumulation, padded to ``detections``
    slots; detections beyond the slots are left out (the reference sees the same inputs)."""
    from ..evaluation import accumulate_inputs, match_groups, pad_accumulate_inputs, torch_runner

    slots, categories = shapes["det_category"][0], shapes["num_positive"][0]
    arrays = coco_arrays(*synthetic_coco(int(rng.integers(2**31)), num_images=max(4, min(16, slots // 64)), num_categories=categories))
    inputs = accumulate_inputs(match_groups(coco_groups(arrays), torch_runner()))
    kept = {name: value[:slots] for name, value in inputs.items() if name != "num_positive"}
    return pad_accumulate_inputs({**kept, "num_positive": inputs["num_positive"]}, slots)


def coco_accumulate_edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
    ordinary = coco_accumulate_inputs(shapes, rng)
    valid = ordinary["det_category"] >= 0
    tied = dict(ordinary, det_score=np.where(valid, 0.5, 0.0))  # ties across images: image order, then rank decides
    few_scores = dict(ordinary, det_score=np.round(ordinary["det_score"] * 3) / 3)
    no_gt = dict(ordinary, num_positive=np.where(np.arange(len(ordinary["num_positive"]))[:, None] % 2 == 0, 0, ordinary["num_positive"]))
    empty = dict(ordinary, det_category=np.full_like(ordinary["det_category"], -1))
    all_hits = dict(ordinary, det_matched=np.ones_like(ordinary["det_matched"]), det_ignore=np.zeros_like(ordinary["det_ignore"]))
    all_ignored = dict(ordinary, det_ignore=np.ones_like(ordinary["det_ignore"]))
    return [
        Case("scores-tied-across-images", tied), Case("three-score-levels", few_scores), Case("categories-without-gt", no_gt),
        Case("no-detections", empty), Case("no-gt-at-all", dict(ordinary, num_positive=np.zeros_like(ordinary["num_positive"]))),
        Case("every-detection-a-hit", all_hits), Case("every-detection-ignored", all_ignored),
    ]


def _coco_accumulate_reference(module, *inputs):
    """The host implementation (:func:`~exportloss.detection.coco.coco_accumulate`, numpy) on the valid slots."""
    arrays = [np.asarray(value.cpu()) if hasattr(value, "cpu") else np.asarray(value) for value in inputs]
    valid = arrays[0] >= 0
    result = coco_accumulate(*(value[valid] for value in arrays[:-1]), arrays[-1], tuple(module.max_dets))
    return torch.from_numpy(result.precision), torch.from_numpy(result.recall)


COCO_ACCUMULATE_ENTRY = GraphEntry(
    name="coco_accumulate",
    summary="pycocotools' accumulate (float64): precision [10,101,K,4,3], recall [10,K,4,3] from a dataset's matching",
    readme="COCO evaluation's accumulation (pycocotools accumulate), float64, onnxruntime only (TopK over all slots)",
    sizes=COCO_ACCUMULATE_SIZES,
    make=lambda sizes: CocoAccumulate(),
    inputs=(TensorSpec("det_category", ("detections",), "int64"), TensorSpec("det_score", ("detections",), "float64"),
            TensorSpec("det_image", ("detections",), "int64"), TensorSpec("det_rank", ("detections",), "int64"),
            TensorSpec("det_matched", ("detections", 4, 10), "bool"), TensorSpec("det_ignore", ("detections", 4, 10), "bool"),
            TensorSpec("num_positive", ("categories", 4), "int64")),
    outputs=coco_accumulate_outputs(),
    outputs_at=lambda set_options: coco_accumulate_outputs(len(set_options.get("max_dets", COCO_MAX_DETS))),
    reference=_coco_accumulate_reference,
    random_inputs=coco_accumulate_inputs,
    edge_cases=coco_accumulate_edge_cases,
    # One ScatterElements writes a permutation (no duplicate index); the other reduces by max, where only the
    # discarded spare entry receives duplicates: neither leaves a result to a backend's write order.
    allowed_ops=frozenset({"ScatterElements"}),
)

ENTRIES = (*ENTRIES, COCO_ACCUMULATE_ENTRY)
