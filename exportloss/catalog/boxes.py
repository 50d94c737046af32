"""Catalog entries of the IoU family: pairwise and aligned metrics and the IoU losses (xyxy boxes)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..iou import IOU_KINDS, AlignedIoU, PairwiseIoU, check_tile_rows
from ..iou_loss import IoULoss
from ..reference.boxes import aligned_reference, iou_loss_reference, pairwise_reference
from ._registry import Case, GraphEntry, Inputs, Shapes, TensorSpec, register

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
        ]

    return edge_cases


TILED_GRAPHS = tuple(f"pairwise_{kind}" for kind in IOU_KINDS)
"""Graphs whose ``boxes1`` rows are tiled (see :mod:`exportloss.iou`); ``--tile-rows`` overrides their tile height."""


def with_tile_rows(entry: GraphEntry, tile_rows: int) -> GraphEntry:
    """``entry``, one of :data:`TILED_GRAPHS`, built with ``tile_rows`` rows per tile instead of the cache-sized default."""
    if entry.name not in TILED_GRAPHS:
        raise ValueError(f"--tile-rows applies to {', '.join(TILED_GRAPHS)}; got {entry.name!r}")
    check_tile_rows(tile_rows)

    def build():
        module = entry.build()
        module.tile_rows = tile_rows
        return module

    return dataclasses.replace(entry, build=build)


def _register_box_family() -> None:
    pair_names = ("boxes1", "boxes2")
    loss_names = ("pred", "target")
    metric_layouts = (
        ("pairwise", "of every boxes1 box with every boxes2 box", PairwiseIoU, pairwise_reference, (2, 128, 4), (2, 96, 4)),
        ("aligned", "of boxes1[i] with boxes2[i]", AlignedIoU, aligned_reference, (2, 256, 4), (2, 256, 4)),
    )
    for prefix, what, module_class, reference, shape1, shape2 in metric_layouts:
        for kind in IOU_KINDS:
            register(GraphEntry(
                name=f"{prefix}_{kind}",
                summary=f"{kind.upper()} {what} (xyxy)",
                build=lambda kind=kind, module_class=module_class: module_class(kind),
                inputs=(TensorSpec("boxes1", shape1), TensorSpec("boxes2", shape2)),
                outputs=(kind,),
                reference=lambda module, b1, b2, reference=reference: reference(b1, b2, module.kind, module.fmt, module.eps),
                random_inputs=lambda shapes, rng: _box_inputs(shapes, rng, pair_names),
                edge_cases=box_edge_cases(pair_names),
            ))
    for kind in IOU_KINDS:
        register(GraphEntry(
            name=f"{kind}_loss",
            summary=f"mean of 1 - {kind.upper()}(pred[i], target[i]) (xyxy)",
            build=lambda kind=kind: IoULoss(kind),
            inputs=(TensorSpec("pred", (1024, 4)), TensorSpec("target", (1024, 4))),
            outputs=("loss",),
            reference=lambda module, pred, target: iou_loss_reference(
                pred, target, module.kind, module.reduction, module.fmt, module.eps
            ),
            random_inputs=lambda shapes, rng: _box_inputs(shapes, rng, loss_names),
            edge_cases=box_edge_cases(loss_names),
        ))


_register_box_family()
