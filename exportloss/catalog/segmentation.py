"""Catalog entries of the Dice family at ``[2, 4, 64, 64]`` (multiclass labels ``[2, 64, 64]`` int64).

Inputs and edge cases are generated for any shape and rank: ``logits [B, C, *spatial]`` with the
target shaped for the graph's mode. ``--shape`` keeps each input's rank, so a 3-D volume graph
``[B, C, D, H, W]`` is :func:`volume` of an entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
from torch import nn

from ..segmentation.dice import DiceLoss, DiceScore, SoftDiceLoss, TverskyLoss
from ..reference.segmentation import overlap_loss_reference, overlap_scores_reference
from .entry import Case, GraphEntry, Inputs, Shapes, Sizes, TensorSpec

IGNORE_INDEX = 255
LOGIT_SCALE = 50.0
"""Edge cases use logits of ±50: saturated softmax / sigmoid."""

SIZES = {"batch": 2, "classes": 4, "height": 64, "width": 64}
SPATIAL = ("height", "width")


def _random_target(mode: str, shape: tuple[int, ...], num_classes: int, rng: np.random.Generator,
                   ignore_index: int | None, classes: int | None = None) -> np.ndarray:
    """Labels in ``[0, classes)`` (multiclass) or a 0/1 mask; about 5% of pixels ignored when there is an ignore_index."""
    if mode == "multiclass":
        target = rng.integers(0, classes or num_classes, size=shape).astype(np.int64)
    else:
        target = (rng.uniform(size=shape) < 0.4).astype(np.float32)
    if ignore_index is not None:
        target[rng.uniform(size=shape) < 0.05] = ignore_index
    return target


def _logits_for(mode: str, target: np.ndarray, logits_shape: tuple[int, ...], sign: float) -> np.ndarray:
    """±50 logits that predict ``target`` (``sign=1``) or its opposite (``sign=-1``) everywhere."""
    if mode == "multiclass":
        classes = np.arange(logits_shape[1]).reshape(1, -1, *([1] * (len(logits_shape) - 2)))
        positive = np.expand_dims(target, 1) == classes
    else:
        positive = target > 0.5
    return (np.where(positive, 1.0, -1.0) * sign * LOGIT_SCALE).astype(np.float32)


def segmentation_io(mode: str, ignore_index: int | None):
    """``(random_inputs, edge_cases)`` for a graph whose inputs are ``logits`` and ``target`` in ``mode``."""

    def random_inputs(shapes: Shapes, rng: np.random.Generator) -> Inputs:
        logits_shape = shapes["logits"]
        num_classes = logits_shape[1] if len(logits_shape) > 1 else 1
        return {
            "logits": (3.0 * rng.standard_normal(logits_shape)).astype(np.float32),
            "target": _random_target(mode, shapes["target"], num_classes, rng, ignore_index),
        }

    def edge_cases(shapes: Shapes, rng: np.random.Generator) -> list[Case]:
        logits_shape, target_shape = shapes["logits"], shapes["target"]
        num_classes = logits_shape[1] if len(logits_shape) > 1 else 1
        empty_target = np.zeros(target_shape, dtype=np.int64 if mode == "multiclass" else np.float32)
        ordinary = random_inputs(shapes, rng)
        cases = [
            # Multiclass: all background, so every other class is empty in prediction and target.
            Case("empty-prediction-and-target", {"logits": _logits_for(mode, empty_target, logits_shape, 1.0),
                                                 "target": empty_target}),
            Case("empty-target", {"logits": ordinary["logits"], "target": empty_target}),
            Case("perfect-prediction", {"logits": _logits_for(mode, ordinary["target"], logits_shape, 1.0),
                                        "target": ordinary["target"]}),
            Case("confidently-wrong", {"logits": _logits_for(mode, ordinary["target"], logits_shape, -1.0),
                                       "target": ordinary["target"]}),
        ]
        if mode == "multiclass" and num_classes > 1:
            absent = _random_target(mode, target_shape, num_classes, rng, ignore_index, classes=num_classes - 1)
            cases.append(Case("class-absent-from-batch", {"logits": ordinary["logits"], "target": absent}))
        if ignore_index is not None:
            one_sample_ignored = ordinary["target"].copy()
            one_sample_ignored[0] = ignore_index
            cases.append(Case("all-pixels-ignored-in-one-sample", {"logits": ordinary["logits"], "target": one_sample_ignored}))
        return cases

    return random_inputs, edge_cases


def _specs(mode: str, spatial: tuple[str, ...]) -> tuple[TensorSpec, TensorSpec]:
    """``logits [batch, classes, *spatial]`` and the target of ``mode``: int64 labels ``[batch, *spatial]``
    (multiclass) or a float mask shaped like the logits."""
    logits = TensorSpec("logits", ("batch", "classes", *spatial))
    if mode == "multiclass":
        return logits, TensorSpec("target", ("batch", *spatial), "int64")
    return logits, TensorSpec("target", logits.shape)


def _entry(name: str, summary: str, readme: str, make: Callable[[Sizes], nn.Module], mode: str,
           ignore_index: int | None, output: TensorSpec = TensorSpec("loss", ())) -> GraphEntry:
    random_inputs, edge_cases = segmentation_io(mode, ignore_index)
    reference = overlap_scores_reference if output.name == "score" else overlap_loss_reference
    return GraphEntry(
        name=name,
        summary=summary,
        readme=readme,
        sizes=SIZES,
        make=make,
        inputs=_specs(mode, SPATIAL),
        outputs=(output,),
        reference=lambda module, logits, target: reference(logits, target, module.options),
        random_inputs=random_inputs,
        edge_cases=edge_cases,
    )


def volume(entry: GraphEntry, depth: int, height: int, width: int, **sizes: int) -> GraphEntry:
    """``entry`` (a graph of this family) on 3-D volumes ``[B, C, depth, height, width]``; ``sizes`` sets others."""
    mode = "multiclass" if entry.dtype_of("target") == "int64" else "multilabel"
    return dataclasses.replace(entry, inputs=_specs(mode, ("depth", *SPATIAL)),
                               sizes={**entry.sizes, "depth": depth, "height": height, "width": width, **sizes})


ENTRIES = (
    _entry("soft_dice_loss", "the seed's soft Dice, fixed: 1 - batch-pooled squared Dice of sigmoid(logits), smooth 1",
           "the seed's soft Dice, fixed: logits (sigmoid) and a 0/1 target",
           lambda sizes: SoftDiceLoss(smooth=1.0, sigmoid=True), "binary", None),
    _entry("dice_loss", "mean over samples and classes of 1 - Dice(softmax(logits), labels), 255 ignored",
           "multiclass Dice loss, label 255 ignored",
           lambda sizes: DiceLoss("multiclass", ignore_index=IGNORE_INDEX), "multiclass", IGNORE_INDEX),
    _entry("jaccard_loss", "weighted mean of 1 - Jaccard over foreground classes, softmax, 255 ignored",
           "multiclass Jaccard loss over foreground classes, weights (0, 1, 1.5, 0.5), label 255 ignored",
           lambda sizes: DiceLoss("multiclass", jaccard=True, include_background=False, ignore_index=IGNORE_INDEX,
                                  class_weights=(0.0, 1.0, 1.5, 0.5)),
           "multiclass", IGNORE_INDEX),
    _entry("tversky_loss", "focal Tversky (alpha 0.3, beta 0.7, gamma 4/3), multilabel sigmoid, 255 ignored",
           "focal Tversky (α 0.3, β 0.7, γ 4/3), multilabel, 255 ignored",
           lambda sizes: TverskyLoss(alpha=0.3, beta=0.7, gamma=4.0 / 3.0, mode="multilabel", ignore_index=IGNORE_INDEX),
           "multilabel", IGNORE_INDEX),
    _entry("dice_score", "per-sample, per-class Dice score [B, C] of softmax(logits) and labels, 255 ignored",
           "per-sample, per-class Dice score for monitoring, label 255 ignored",
           lambda sizes: DiceScore("multiclass", ignore_index=IGNORE_INDEX), "multiclass", IGNORE_INDEX,
           output=TensorSpec("score", ("batch", "classes"))),
)
"""The segmentation family's catalog entries, in ``exportloss list`` order."""
