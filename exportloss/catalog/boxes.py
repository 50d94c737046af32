"""Catalog entries of the IoU family: pairwise and aligned metrics and the IoU losses (xyxy boxes)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..boxes.iou import IOU_KINDS, AlignedIoU, PairwiseIoU, check_tile_rows
from ..boxes.iou_loss import IoULoss
from ..boxes.rotated import RotatedAlignedIoU, RotatedIoULoss, RotatedPairwiseIoU
from ..reference.boxes import (
    aligned_reference, iou_loss_reference, pairwise_reference, rotated_aligned_reference, rotated_iou_loss_reference,
    rotated_pairwise_reference,
)
from ..tolerance import Tolerance
from .entry import Case, GraphEntry, Inputs, Shapes, TensorSpec

DEGENERATE_PAIRS = (
    ((10.0, 10.0, 10.0, 30.0), (5.0, 5.0, 20.0, 20.0)),  # zero width
    ((10.0, 10.0, 30.0, 10.0), (5.0, 5.0, 20.0, 20.0)),  # zero height
    ((10.0, 10.0, 10.0, 10.0), (10.0, 10.0, 10.0, 10.0)),  # two identical points
    ((10.0, 10.0, 10.0, 10.0), (0.0, 0.0, 20.0, 20.0)),  # a point inside a box
    ((5.0, 5.0, 5.0, 9.0), (7.0, 5.0, 7.0, 9.0)),  # two zero-area boxes apart
    ((3.0, 4.0, 50.0, 60.0), (3.0, 4.0, 50.0, 60.0)),  # identical
    ((0.0, 0.0, 10.0, 10.0), (10.0, 0.0, 20.0, 10.0)),  # touching edges
    ((0.0, 0.0, 100.0, 100.0), (40.0, 40.0, 60.0, 60.0)),  # nested
    ((0.0, 40.0, 100.0, 60.0), (40.0, 0.0, 60.0, 100.0)),  # a cross: same centre, other aspect
    ((0.0, 0.0, 1.0, 1.0), (9000.0, 9000.0, 9001.0, 9001.0)),  # far apart
    ((9990.0, 9990.0, 10000.0, 10000.0), (9995.0, 9991.0, 10000.0, 9999.5)),  # coordinates near 1e4
    ((20.0, 20.0, 10.0, 30.0), (12.0, 22.0, 18.0, 28.0)),  # inverted box (x2 < x1): zero width at x1
)


def random_boxes(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 100.0) -> np.ndarray:
    """Ordinary xyxy boxes ``shape`` (last dim 4): corners in [0, scale), sides in [0.01, 0.6) * scale."""
    xy = rng.uniform(0.0, scale, size=(*shape[:-1], 2))
    wh = rng.uniform(0.01 * scale, 0.6 * scale, size=(*shape[:-1], 2))
    return np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)


def normalised_boxes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Small xyxy boxes in normalised coordinates ``shape`` (last dim 4): sides in [1e-4, 1e-3), corners within
    1e-3 of (0.5, 0.5), so that pairs overlap, touch and miss. Squared extents (1e-8 to 1e-6) sit below and near
    eps = 1e-7 here, which is where graph and reference must put eps at the same places, and where a centre
    rounded to an ulp of 0.5 would lose 3 digits of the centre offsets."""
    xy = 0.5 + rng.uniform(-1e-3, 1e-3, size=(*shape[:-1], 2))
    wh = rng.uniform(1e-4, 1e-3, size=(*shape[:-1], 2))
    return np.concatenate([xy, xy + wh], axis=-1).astype(np.float32)


def _box_inputs(shapes: Shapes, rng: np.random.Generator, names: tuple[str, str], scale: float = 100.0) -> Inputs:
    return {name: random_boxes(rng, shapes[name], scale) for name in names}


def _with_degenerate_pairs(inputs: Inputs, names: tuple[str, str]) -> Inputs:
    """Write the degenerate pairs into matching rows of both inputs (row i of one against row i of the other)."""
    first, second = (inputs[name].copy() for name in names)
    rows = min(first.shape[-2], second.shape[-2], len(DEGENERATE_PAIRS))
    first[..., :rows, :] = [a for a, _ in DEGENERATE_PAIRS[:rows]]
    second[..., :rows, :] = [b for _, b in DEGENERATE_PAIRS[:rows]]
    return {names[0]: first, names[1]: second}


def box_edge_cases(names: tuple[str, str]):
    def edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
        ordinary = _box_inputs(shapes, rng, names)
        identical = dict(ordinary)
        rows = min(shapes[names[0]][-2], shapes[names[1]][-2])
        identical[names[1]] = ordinary[names[1]].copy()
        identical[names[1]][..., :rows, :] = ordinary[names[0]][..., :rows, :]
        return [
            Case("degenerate", _with_degenerate_pairs(ordinary, names)),
            Case("identical", identical),
            Case("large-coords", _box_inputs(shapes, rng, names, scale=1e4)),
            Case("normalised-small", {name: normalised_boxes(rng, shapes[name]) for name in names}),
        ]

    return edge_cases


TILED_GRAPHS = tuple(f"pairwise_{kind}" for kind in IOU_KINDS)
"""Graphs whose ``boxes1`` rows are tiled (see :mod:`exportloss.boxes.iou`); ``--tile-rows`` overrides their tile height."""


def with_tile_rows(entry: GraphEntry, tile_rows: int) -> GraphEntry:
    """``entry``, one of :data:`TILED_GRAPHS`, built with ``tile_rows`` rows per tile instead of the cache-sized default."""
    if entry.name not in TILED_GRAPHS:
        raise ValueError(f"--tile-rows applies to {', '.join(TILED_GRAPHS)}; got {entry.name!r}")
    check_tile_rows(tile_rows)

    def make(sizes):
        module = entry.make(sizes)
        module.tile_rows = tile_rows
        return module

    return dataclasses.replace(entry, make=make)


PAIR = ("boxes1", "boxes2")
LOSS = ("pred", "target")
PAIRWISE_SIZES = {"batch": 2, "boxes1": 128, "boxes2": 96}
ALIGNED_SIZES = {"batch": 2, "boxes": 256}
LOSS_SIZES = {"boxes": 1024}


def _pair_specs(names: tuple[str, str], width: int, layout: str) -> tuple[TensorSpec, TensorSpec]:
    """Two box inputs ``[..., width]``: ``pairwise`` [batch, boxes1|boxes2, width], ``aligned`` [batch, boxes, width],
    ``loss`` [boxes, width]."""
    if layout == "pairwise":
        return TensorSpec(names[0], ("batch", "boxes1", width)), TensorSpec(names[1], ("batch", "boxes2", width))
    lead = ("batch", "boxes") if layout == "aligned" else ("boxes",)
    return TensorSpec(names[0], (*lead, width)), TensorSpec(names[1], (*lead, width))


OUTPUT_DIMS = {"pairwise": ("batch", "boxes1", "boxes2"), "aligned": ("batch", "boxes"), "loss": ()}

BOX_ENTRIES = (
    *(
        GraphEntry(
            name=f"{prefix}_{kind}",
            summary=f"{kind.upper()} {what} (xyxy)",
            readme=readme,
            sizes=sizes,
            make=lambda sizes, kind=kind, module_class=module_class: module_class(kind),
            inputs=_pair_specs(PAIR, 4, prefix),
            outputs=(TensorSpec(kind, OUTPUT_DIMS[prefix]),),
            reference=lambda module, b1, b2, reference=reference: reference(b1, b2, module.kind, module.fmt, module.eps),
            random_inputs=lambda shapes, rng: _box_inputs(shapes, rng, PAIR),
            edge_cases=box_edge_cases(PAIR),
        )
        for prefix, what, readme, module_class, reference, sizes in (
            ("pairwise", "of every boxes1 box with every boxes2 box", "the metric of every boxes1 box with every boxes2 box",
             PairwiseIoU, pairwise_reference, PAIRWISE_SIZES),
            ("aligned", "of boxes1[i] with boxes2[i]", "the metric of boxes1[i] with boxes2[i]",
             AlignedIoU, aligned_reference, ALIGNED_SIZES),
        )
        for kind in IOU_KINDS
    ),
    *(
        GraphEntry(
            name=f"{kind}_loss",
            summary=f"mean of 1 - {kind.upper()}(pred[i], target[i]) (xyxy)",
            readme="mean of 1 − metric (EIoU: mmdet's smooth knee)",
            sizes=LOSS_SIZES,
            make=lambda sizes, kind=kind: IoULoss(kind),
            inputs=_pair_specs(LOSS, 4, "loss"),
            outputs=(TensorSpec("loss", ()),),
            reference=lambda module, pred, target: iou_loss_reference(
                pred, target, module.kind, module.reduction, module.fmt, module.eps
            ),
            random_inputs=lambda shapes, rng: _box_inputs(shapes, rng, LOSS),
            edge_cases=box_edge_cases(LOSS),
        )
        for kind in IOU_KINDS
    ),
)


# Rotated boxes (cx, cy, w, h, θ), :mod:`exportloss.boxes.rotated`. Shapes are kept small because the float64
# references clip polygons pair by pair in Python; ``exportloss bench`` times the sizes users run.

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


def _rotated_pair_inputs(shapes: Shapes, rng: np.random.Generator, names: tuple[str, str], offset: float = 0.0) -> Inputs:
    return {name: random_rotated_boxes(rng, shapes[name], offset=offset) for name in names}


def rotated_edge_cases(names: tuple[str, str]):
    def edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
        ordinary = _rotated_pair_inputs(shapes, rng, names)
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
            Case("large-coords", _rotated_pair_inputs(shapes, rng, names, offset=9900.0)),
        ]

    return edge_cases


# ProbIoU is 1 − √(B + …) near B = 0, so float32 rounding of B (~1e-8) moves it by up to ~1e-4 there.
ROTATED_TOLERANCE = {"iou": Tolerance(), "probiou": Tolerance(atol=2e-4)}

ROTATED_ENTRIES = (
    *(
        GraphEntry(
            name=name,
            summary=summary,
            readme=readme,
            sizes=sizes,
            make=lambda sizes, module_class=module_class, kind=kind: module_class(kind),
            inputs=_pair_specs(PAIR, 5, layout),
            outputs=(TensorSpec(kind, OUTPUT_DIMS[layout]),),
            reference=lambda module, b1, b2, reference=reference: reference(b1, b2, module.kind, module.eps),
            random_inputs=lambda shapes, rng: _rotated_pair_inputs(shapes, rng, PAIR),
            edge_cases=rotated_edge_cases(PAIR),
            tolerance=ROTATED_TOLERANCE[kind],
        )
        for name, summary, readme, module_class, reference, kind, layout, sizes in (
            ("rotated_pairwise_iou", "exact rotated IoU of every boxes1 box with every boxes2 box (cx, cy, w, h, theta)",
             "exact rotated IoU / ProbIoU of every pair, boxes (cx, cy, w, h, θ)",
             RotatedPairwiseIoU, rotated_pairwise_reference, "iou", "pairwise", {"batch": 2, "boxes1": 40, "boxes2": 32}),
            ("rotated_aligned_iou", "exact rotated IoU of boxes1[i] with boxes2[i] (cx, cy, w, h, theta)",
             "exact rotated IoU of boxes1[i] with boxes2[i]",
             RotatedAlignedIoU, rotated_aligned_reference, "iou", "aligned", ALIGNED_SIZES),
            ("probiou_pairwise", "ProbIoU (Gaussian Bhattacharyya) of every boxes1 box with every boxes2 box",
             "exact rotated IoU / ProbIoU of every pair, boxes (cx, cy, w, h, θ)",
             RotatedPairwiseIoU, rotated_pairwise_reference, "probiou", "pairwise", {"batch": 2, "boxes1": 40, "boxes2": 32}),
        )
    ),
    *(
        GraphEntry(
            name=name,
            summary=f"mean of 1 - {'exact rotated IoU' if kind == 'iou' else 'ProbIoU'}(pred[i], target[i])",
            readme="mean of 1 − exact rotated IoU / ProbIoU",
            sizes=LOSS_SIZES,
            make=lambda sizes, kind=kind: RotatedIoULoss(kind),
            inputs=_pair_specs(LOSS, 5, "loss"),
            outputs=(TensorSpec("loss", ()),),
            reference=lambda module, pred, target: rotated_iou_loss_reference(pred, target, module.kind, module.reduction, module.eps),
            random_inputs=lambda shapes, rng: _rotated_pair_inputs(shapes, rng, LOSS),
            edge_cases=rotated_edge_cases(LOSS),
            tolerance=ROTATED_TOLERANCE[kind],
        )
        for name, kind in (("rotated_iou_loss", "iou"), ("probiou_loss", "probiou"))
    ),
)

ENTRIES = (*BOX_ENTRIES, *ROTATED_ENTRIES)
"""The boxes family's catalog entries, in ``exportloss list`` order."""
