"""Catalog entries of rotated boxes: exact IoU and ProbIoU (pairwise, aligned, losses) and rotated Cluster-NMS.

Boxes are ``(cx, cy, w, h, θ)`` (:mod:`exportloss.rotated`). Shapes are kept small because the
float64 references clip polygons pair by pair in Python; ``exportloss bench`` times the sizes users run.
"""

from __future__ import annotations

import math

import numpy as np

from ..reference.rotated import rotated_aligned_reference, rotated_iou_loss_reference, rotated_nms_reference, rotated_pairwise_reference
from ..rotated import RotatedAlignedIoU, RotatedIoULoss, RotatedPairwiseIoU
from ..rotated_nms import RotatedClusterNMS
from ._registry import Case, GraphEntry, Inputs, Shapes, TensorSpec, register

PI = math.pi
SQRT2 = math.sqrt(2.0)
DEGENERATE_ROTATED_PAIRS = (
    ((50.0, 50.0, 30.0, 20.0, 0.3), (50.0, 50.0, 30.0, 20.0, 0.3)),  # identical
    ((50.0, 50.0, 30.0, 20.0, 0.3), (50.0, 50.0, 30.0, 20.0, 0.3 + PI)),  # θ and θ + π
    ((50.0, 50.0, 30.0, 20.0, 0.3), (50.0, 50.0, 20.0, 30.0, 0.3 + PI / 2)),  # w, h swapped with θ + π/2
    ((50.0, 50.0, 60.0, 40.0, 0.5), (52.0, 49.0, 10.0, 8.0, -1.0)),  # one inside the other
    ((0.0, 0.0, 10.0, 10.0, 0.0), (10.0, 0.0, 10.0, 10.0, 0.0)),  # touching edges
    ((0.0, 0.0, 10.0, 10.0, 0.0), (10.0, 10.0, 10.0, 10.0, 0.0)),  # touching corners
    ((0.0, 0.0, 10.0, 10.0, 0.0), (5.0 + 5.0 * SQRT2, 0.0, 10.0, 10.0, PI / 4)),  # a corner touching an edge
    ((0.0, 0.0, 10.0, 10.0, 0.0), (5.0, 2.0, 10.0, 6.0, 0.0)),  # collinear top edges
    ((0.0, 0.0, 10.0, 10.0, 0.7), (3.0, 0.0, 10.0, 10.0, 0.7)),  # parallel edges, shifted
    ((50.0, 50.0, 0.0, 20.0, 0.4), (50.0, 50.0, 30.0, 20.0, 0.1)),  # zero width
    ((50.0, 50.0, 10.0, 0.0, 0.4), (50.0, 50.0, 10.0, 0.0, 0.4)),  # two identical segments
    ((5.0, 5.0, 0.0, 0.0, 0.0), (5.0, 5.0, 10.0, 10.0, 0.0)),  # a point inside a box
    ((0.0, 0.0, 10.0, 10.0, 0.2), (9000.0, 9000.0, 10.0, 10.0, 1.0)),  # far apart
    ((50.0, 50.0, 30.0, 10.0, PI / 2), (50.0, 50.0, 30.0, 10.0, -PI / 2)),  # θ = ±π/2
    ((50.0, 50.0, 30.0, 10.0, PI), (52.0, 50.0, 30.0, 10.0, -PI)),  # θ = ±π
    ((50.0, 50.0, 30.0, 10.0, 1e-7), (50.0, 50.0, 30.0, 10.0, 0.0)),  # a tiny angle
    ((9990.0, 9995.0, 12.0, 7.0, 0.3), (9992.0, 9994.0, 10.0, 9.0, 1.2)),  # coordinates near 1e4
    ((0.0, 0.0, 100.0, 10.0, 0.0), (0.0, 0.0, 100.0, 10.0, PI / 2)),  # a cross
)


def random_rotated_boxes(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 100.0,
                         offset: float = 0.0) -> np.ndarray:
    """Ordinary rotated boxes ``shape`` (last dim 5): centres in ``offset + [0, scale)``, sides in
    ``[0.02, 0.5) * scale``, θ in ``[-π, π)``."""
    lead = shape[:-1]
    centre = offset + rng.uniform(0.0, scale, size=(*lead, 2))
    sides = rng.uniform(0.02 * scale, 0.5 * scale, size=(*lead, 2))
    theta = rng.uniform(-PI, PI, size=(*lead, 1))
    return np.concatenate([centre, sides, theta], axis=-1).astype(np.float32)


def _pair_inputs(shapes: Shapes, rng: np.random.Generator, names: tuple[str, str], offset: float = 0.0) -> Inputs:
    return {name: random_rotated_boxes(rng, shapes[name], offset=offset) for name in names}


def rotated_edge_cases(names: tuple[str, str]):
    def edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
        ordinary = _pair_inputs(shapes, rng, names)
        first, second = (ordinary[name].copy() for name in names)
        rows = min(first.shape[-2], second.shape[-2], len(DEGENERATE_ROTATED_PAIRS))
        first[..., :rows, :] = [a for a, _ in DEGENERATE_ROTATED_PAIRS[:rows]]
        second[..., :rows, :] = [b for _, b in DEGENERATE_ROTATED_PAIRS[:rows]]
        identical = dict(ordinary)
        common = min(first.shape[-2], second.shape[-2])
        identical[names[1]] = ordinary[names[1]].copy()
        identical[names[1]][..., :common, :] = ordinary[names[0]][..., :common, :]
        return [
            Case("degenerate", {names[0]: first, names[1]: second}),
            Case("identical", identical),
            Case("large-coords", _pair_inputs(shapes, rng, names, offset=9900.0)),
        ]

    return edge_cases


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


def _atol(kind: str) -> float:
    # ProbIoU is 1 − √(B + …) near B = 0, so float32 rounding of B (~1e-8) moves it by up to ~1e-4 there.
    return 2e-4 if kind == "probiou" else 1e-5


def _register_rotated_family() -> None:
    pair = ("boxes1", "boxes2")
    loss = ("pred", "target")
    for name, summary, module_class, reference, kind, shapes, output in (
        ("rotated_pairwise_iou", "exact rotated IoU of every boxes1 box with every boxes2 box (cx, cy, w, h, theta)",
         RotatedPairwiseIoU, rotated_pairwise_reference, "iou", ((2, 40, 5), (2, 32, 5)), "iou"),
        ("rotated_aligned_iou", "exact rotated IoU of boxes1[i] with boxes2[i] (cx, cy, w, h, theta)",
         RotatedAlignedIoU, rotated_aligned_reference, "iou", ((2, 256, 5), (2, 256, 5)), "iou"),
        ("probiou_pairwise", "ProbIoU (Gaussian Bhattacharyya) of every boxes1 box with every boxes2 box",
         RotatedPairwiseIoU, rotated_pairwise_reference, "probiou", ((2, 40, 5), (2, 32, 5)), "probiou"),
    ):
        register(GraphEntry(
            name=name,
            summary=summary,
            build=lambda module_class=module_class, kind=kind: module_class(kind),
            inputs=(TensorSpec("boxes1", shapes[0]), TensorSpec("boxes2", shapes[1])),
            outputs=(output,),
            reference=lambda module, b1, b2, reference=reference: reference(b1, b2, module.kind, module.eps),
            random_inputs=lambda shapes, rng: _pair_inputs(shapes, rng, pair),
            edge_cases=rotated_edge_cases(pair),
            atol=_atol(kind),
        ))
    for name, kind in (("rotated_iou_loss", "iou"), ("probiou_loss", "probiou")):
        register(GraphEntry(
            name=name,
            summary=f"mean of 1 - {'exact rotated IoU' if kind == 'iou' else 'ProbIoU'}(pred[i], target[i])",
            build=lambda kind=kind: RotatedIoULoss(kind),
            inputs=(TensorSpec("pred", (1024, 5)), TensorSpec("target", (1024, 5))),
            outputs=("loss",),
            reference=lambda module, pred, target: rotated_iou_loss_reference(pred, target, module.kind, module.reduction, module.eps),
            random_inputs=lambda shapes, rng: _pair_inputs(shapes, rng, loss),
            edge_cases=rotated_edge_cases(loss),
            atol=_atol(kind),
        ))
    register(GraphEntry(
        name="rotated_cluster_nms",
        summary="rotated Cluster-NMS (exact IoU 0.5, 15 classes, top 256 pairs) to 100 fixed-shape detections",
        build=lambda: RotatedClusterNMS(criterion="iou", candidates=256),
        inputs=(TensorSpec("boxes", (2, 128, 5)), TensorSpec("scores", (2, 128, 15))),
        outputs=("num_dets", "det_boxes", "det_scores", "det_classes"),
        reference=lambda module, boxes, scores: rotated_nms_reference(
            boxes, scores, module.config.iou_thr, module.config.kind, module.config.score_thr, module.config.max_det,
            module.config.candidates, module.config.eps,
        ),
        random_inputs=lambda shapes, rng: rotated_scene(rng, shapes["boxes"], shapes["scores"]),
        edge_cases=rotated_nms_edge_cases,
    ))


_register_rotated_family()
