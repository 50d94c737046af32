"""Catalog entries of the Dice family at ``[2, 4, 64, 64]`` (multiclass labels ``[2, 64, 64]`` int64).

Inputs and edge cases are generated for any shape and rank: ``logits [B, C, *spatial]`` with the
target shaped for the graph's mode. ``--shape`` keeps each input's rank, so a 3-D volume graph
``[B, C, D, H, W]`` is an entry with 5-D input specs (``dataclasses.replace``), as the tests do.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from torch import nn

from ..segmentation.dice import DiceLoss, DiceScore, SoftDiceLoss, TverskyLoss
from ..reference.segmentation import overlap_loss_reference, overlap_scores_reference
from ._registry import Case, GraphEntry, Inputs, Shapes, TensorSpec, register

IGNORE_INDEX = 255
LOGIT_SCALE = 50.0
"""Edge cases use logits of ±50: saturated softmax / sigmoid."""

LOGITS_SHAPE = (2, 4, 64, 64)


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


def _register(name: str, summary: str, build: Callable[[], nn.Module], mode: str, ignore_index: int | None,
              output: str = "loss") -> None:
    target = TensorSpec("target", (2, 64, 64), "int64") if mode == "multiclass" else TensorSpec("target", LOGITS_SHAPE)
    random_inputs, edge_cases = segmentation_io(mode, ignore_index)
    reference = overlap_scores_reference if output == "score" else overlap_loss_reference
    register(GraphEntry(
        name=name,
        summary=summary,
        build=build,
        inputs=(TensorSpec("logits", LOGITS_SHAPE), target),
        outputs=(output,),
        reference=lambda module, logits, target: reference(logits, target, module.options),
        random_inputs=random_inputs,
        edge_cases=edge_cases,
    ))


def _register_segmentation_family() -> None:
    _register("soft_dice_loss", "the seed's soft Dice, fixed: 1 - batch-pooled squared Dice of sigmoid(logits), smooth 1",
              lambda: SoftDiceLoss(smooth=1.0, sigmoid=True), "binary", None)
    _register("dice_loss", "mean over samples and classes of 1 - Dice(softmax(logits), labels), 255 ignored",
              lambda: DiceLoss("multiclass", ignore_index=IGNORE_INDEX), "multiclass", IGNORE_INDEX)
    _register("jaccard_loss", "weighted mean of 1 - Jaccard over foreground classes, softmax, 255 ignored",
              lambda: DiceLoss("multiclass", jaccard=True, include_background=False, ignore_index=IGNORE_INDEX,
                               class_weights=(0.0, 1.0, 1.5, 0.5)),
              "multiclass", IGNORE_INDEX)
    _register("tversky_loss", "focal Tversky (alpha 0.3, beta 0.7, gamma 4/3), multilabel sigmoid, 255 ignored",
              lambda: TverskyLoss(alpha=0.3, beta=0.7, gamma=4.0 / 3.0, mode="multilabel", ignore_index=IGNORE_INDEX),
              "multilabel", IGNORE_INDEX)
    _register("dice_score", "per-sample, per-class Dice score [B, C] of softmax(logits) and labels, 255 ignored",
              lambda: DiceScore("multiclass", ignore_index=IGNORE_INDEX), "multiclass", IGNORE_INDEX, output="score")


_register_segmentation_family()
