"""Catalog entries of the classification and embedding losses: focal, sigmoid focal, center, ArcFace/CosFace.

Parameters (centers, class weights) are drawn from a fixed ``torch.Generator`` so that every build is
identical; the exported graphs carry them as initializers. Labels enter the graphs as int64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from ..classification.arcface import ArcFaceLoss, ArcSoftmax, CosFaceLoss
from ..classification.center import CenterLoss, CenterUpdate
from ..classification.focal import FocalLoss, SigmoidFocalLoss
from ..reference.classification import (
    arc_softmax_reference,
    arcface_loss_reference,
    center_loss_reference,
    center_update_reference,
    focal_reference,
    sigmoid_focal_reference,
)
from .entry import Case, GraphEntry, Inputs, InputShapes, Sizes, TensorSpec

PARAMETER_SEED = 1234
FOCAL_SIZES = {"batch": 8, "anchors": 64, "classes": 21}
CENTER_SIZES = {"batch": 64, "classes": 10, "dim": 32}
ARC_SIZES = {"batch": 32, "dim": 64, "classes": 100}


def seeded(module: nn.Module) -> nn.Module:
    """Redraw every parameter of ``module`` from a standard normal with a fixed seed."""
    generator = torch.Generator().manual_seed(PARAMETER_SEED)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return module


def random_labels(rng: np.random.Generator, shape: tuple[int, ...], num_classes: int) -> np.ndarray:
    return rng.integers(0, num_classes, size=shape, dtype=np.int64)


def _replace(inputs: Inputs, **arrays: np.ndarray) -> Inputs:
    return {**inputs, **{name: np.asarray(value, dtype=inputs[name].dtype) for name, value in arrays.items()}}


def _label_cases(inputs: Inputs, num_classes: int, rng: np.random.Generator) -> list[Case]:
    """Label edge cases shared by every labelled graph: ends of the range, one class, absent classes, out of range."""
    labels = inputs["labels"]
    ends = np.where(rng.random(labels.shape) < 0.5, 0, num_classes - 1)
    out_of_range = labels.copy()
    out_of_range.reshape(-1)[::3] = num_classes  # the graph counts these samples as absent
    out_of_range.reshape(-1)[1::7] = -1
    return [
        Case("labels-0-and-last", _replace(inputs, labels=ends)),
        Case("one-class", _replace(inputs, labels=np.full_like(labels, num_classes // 2))),
        Case("out-of-range-labels", _replace(inputs, labels=out_of_range)),
    ]


# --- focal ---------------------------------------------------------------------------------------

def _focal_inputs(shapes: InputShapes, rng: np.random.Generator) -> Inputs:
    logits_shape = shapes["logits"]
    return {
        "logits": rng.normal(0.0, 3.0, size=logits_shape).astype(np.float32),
        "labels": random_labels(rng, shapes["labels"], logits_shape[-1]),
    }


def _focal_edge_cases(shapes: InputShapes, rng: np.random.Generator) -> list[Case]:
    inputs = _focal_inputs(shapes, rng)
    num_classes = shapes["logits"][-1]
    saturated = np.where(rng.random(shapes["logits"]) < 0.5, 50.0, -50.0)
    # The label's own logit at +50 (p_y = 1) in half the rows, at -50 (p_y ~ e^-100) elsewhere.
    confident = saturated.copy()
    np.put_along_axis(confident, inputs["labels"][..., None], np.where(rng.random(shapes["labels"]) < 0.5, 50.0, -50.0)[..., None], -1)
    return [
        Case("logits-pm50", _replace(inputs, logits=saturated)),
        Case("label-logit-pm50", _replace(inputs, logits=confident)),
        Case("uniform-logits", _replace(inputs, logits=np.zeros(shapes["logits"]))),
        *_label_cases(inputs, num_classes, rng),
    ]


def focal_entry(name: str, sizes: Sizes = FOCAL_SIZES, **options) -> GraphEntry:
    """A :class:`FocalLoss` graph at ``sizes`` (batch, anchors, classes); ``options`` go to the module
    (alpha, gamma, reduction, ignore_index)."""
    return GraphEntry(
        name=name,
        summary="softmax focal loss -alpha[y] (1-p_y)^gamma log p_y, alpha=0.25 on class 0 (the seed's)",
        readme="softmax focal loss, alpha 0.25 on class 0 (the seed's): `FocalLoss(21)`",
        sizes=sizes,
        make=lambda sizes: FocalLoss(sizes["classes"], **options),
        inputs=(TensorSpec("logits", ("batch", "anchors", "classes")), TensorSpec("labels", ("batch", "anchors"), "int64")),
        outputs=(TensorSpec("loss", ("batch", "anchors") if options.get("reduction") == "none" else ()),),
        reference=lambda module, logits, labels: focal_reference(
            logits, labels, module.alpha.tolist(), module.gamma, module.reduction, module.ignore_index
        ),
        random_inputs=_focal_inputs,
        edge_cases=_focal_edge_cases,
    )


def _sigmoid_focal_inputs(shapes: InputShapes, rng: np.random.Generator) -> Inputs:
    return {
        "logits": rng.normal(0.0, 3.0, size=shapes["logits"]).astype(np.float32),
        "targets": (rng.random(shapes["targets"]) < 0.2).astype(np.float32),
    }


def _sigmoid_focal_edge_cases(shapes: InputShapes, rng: np.random.Generator) -> list[Case]:
    inputs = _sigmoid_focal_inputs(shapes, rng)
    saturated = np.where(rng.random(shapes["logits"]) < 0.5, 50.0, -50.0)
    return [
        Case("logits-pm50", _replace(inputs, logits=saturated)),
        Case("logits-pm50-agreeing", _replace(inputs, logits=np.where(inputs["targets"] > 0, 50.0, -50.0))),
        Case("soft-targets", _replace(inputs, targets=rng.random(shapes["targets"]))),
        Case("all-negative", _replace(inputs, targets=np.zeros(shapes["targets"]))),
    ]


# --- center --------------------------------------------------------------------------------------

def _center_inputs(shapes: InputShapes, rng: np.random.Generator) -> Inputs:
    inputs = {
        "features": rng.normal(0.0, 1.0, size=shapes["features"]).astype(np.float32),
        "labels": random_labels(rng, shapes["labels"], shapes.sizes["classes"]),
    }
    if "centers" in shapes:
        inputs["centers"] = rng.normal(0.0, 1.0, size=shapes["centers"]).astype(np.float32)
    return inputs


def _center_edge_cases(shapes: InputShapes, rng: np.random.Generator) -> list[Case]:
    inputs = _center_inputs(shapes, rng)
    num_classes = shapes.sizes["classes"]
    centers = inputs["centers"] if "centers" in inputs else _built_parameter(CenterLoss(num_classes, shapes.sizes["dim"]))
    at_centers = centers[inputs["labels"]]
    absent = np.where(inputs["labels"] < num_classes // 2, 1, num_classes - 2)
    cases = [
        Case("features-at-centers", _replace(inputs, features=at_centers)),
        Case("absent-classes", _replace(inputs, labels=absent)),
        Case("large-features", _replace(inputs, features=inputs["features"] * 1e3)),
        # Features 2**12 + odd small integers: 13+ significant bits that a TF32 one-hot MatMul would round away.
        Case("features-beyond-tf32", _replace(inputs, features=4096.0 + 2.0 * rng.integers(0, 64, size=inputs["features"].shape) + 1.0)),
        *_label_cases(inputs, num_classes, rng),
    ]
    if "centers" in inputs:  # center_update's policy: only classes holding a non-finite feature keep their center
        poisoned = inputs["features"].copy()
        poisoned[0, 0], poisoned[1, -1], poisoned[2, 1] = np.nan, np.inf, -np.inf
        cases.append(Case("non-finite-features", _replace(inputs, features=poisoned)))
    return cases


def _built_parameter(module: nn.Module) -> np.ndarray:
    return next(seeded(module).parameters()).detach().numpy()


# --- ArcFace / CosFace ---------------------------------------------------------------------------

def _arc_inputs(shapes: InputShapes, rng: np.random.Generator) -> Inputs:
    inputs = {"features": rng.normal(0.0, 1.0, size=shapes["features"]).astype(np.float32)}
    if "labels" in shapes:
        inputs["labels"] = random_labels(rng, shapes["labels"], shapes.sizes["classes"])
    return inputs


def _at_angles(directions: np.ndarray, rng: np.random.Generator, low: float = 0.2, high: float = 1.2) -> np.ndarray:
    """Features at angles uniform in ``[low, high]`` radians from ``directions`` [B, D], where ``P`` of that class
    sweeps from nearly 1 to nearly 0 at ``s = 64``, ``m = 0.5`` (random features give only ``P ~ 0``)."""
    unit = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    other = rng.normal(size=unit.shape)
    other -= (other * unit).sum(1, keepdims=True) * unit
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    angle = rng.uniform(low, high, size=(len(unit), 1))
    return np.cos(angle) * unit + np.sin(angle) * other


def _arc_edge_cases(head: Callable[[Sizes], nn.Module]) -> Callable[[InputShapes, np.random.Generator], list[Case]]:
    def edge_cases(shapes: InputShapes, rng: np.random.Generator) -> list[Case]:
        inputs = _arc_inputs(shapes, rng)
        weight = _built_parameter(head(shapes.sizes))
        num_classes = shapes.sizes["classes"]
        batch = shapes["features"][0]
        classes = inputs["labels"] if "labels" in inputs else rng.integers(0, num_classes, batch)
        # Scaled copies of the class weight (cos ~ 1) and of its opposite (cos ~ -1), labelled with that class.
        near = weight.T[classes] * rng.uniform(0.01, 100.0, size=(batch, 1))
        zero = inputs["features"].copy()
        zero[::2] = 0.0
        cases = [
            Case("near-class-weight", _replace(inputs, features=near)),
            Case("angles-around-the-margin", _replace(inputs, features=_at_angles(weight.T[classes], rng))),
            Case("opposite-class-weight", _replace(inputs, features=-near)),
            Case("zero-features", _replace(inputs, features=zero)),
            Case("tiny-and-huge-norms", _replace(inputs, features=inputs["features"] * np.where(rng.random((batch, 1)) < 0.5, 1e-6, 1e6))),
        ]
        if "labels" in inputs:
            cases += _label_cases(inputs, num_classes, rng)
        return cases

    return edge_cases


def _arc_loss_entry(name: str, summary: str, readme: str, make: Callable[[Sizes], nn.Module]) -> GraphEntry:
    return GraphEntry(
        name=name,
        summary=summary,
        readme=readme,
        sizes=ARC_SIZES,
        make=lambda sizes: seeded(make(sizes)),
        inputs=(TensorSpec("features", ("batch", "dim")), TensorSpec("labels", ("batch",), "int64")),
        outputs=(TensorSpec("loss", ()),),
        reference=lambda module, features, labels: arcface_loss_reference(
            features, labels, module.weight.detach(), module.s, module.m, module.margin, module.reduction
        ),
        random_inputs=_arc_inputs,
        edge_cases=_arc_edge_cases(make),
    )


ENTRIES = (
    focal_entry("focal_loss"),
    GraphEntry(
        name="sigmoid_focal_loss",
        summary="torchvision's sigmoid focal loss per element (alpha=0.25 on positives, gamma=2)",
        readme="torchvision's sigmoid focal loss per element: `SigmoidFocalLoss()`",
        sizes=FOCAL_SIZES,
        make=lambda sizes: SigmoidFocalLoss(),
        inputs=(TensorSpec("logits", ("batch", "anchors", "classes")), TensorSpec("targets", ("batch", "anchors", "classes"))),
        outputs=(TensorSpec("loss", ("batch", "anchors", "classes")),),
        reference=lambda module, logits, targets: sigmoid_focal_reference(
            logits, targets, module.alpha, module.gamma, module.reduction
        ),
        random_inputs=_sigmoid_focal_inputs,
        edge_cases=_sigmoid_focal_edge_cases,
    ),
    GraphEntry(
        name="center_loss",
        summary="lambda/2 mean_i ||f_i - c_y||^2 / n_y with learned centers [10, 32] (the seed's center loss)",
        readme="λ/2 · mean ‖f − c_y‖² / n_y, centers [10,32] stored in the graph: `CenterLoss(10, 32)`",
        sizes=CENTER_SIZES,
        make=lambda sizes: seeded(CenterLoss(sizes["classes"], sizes["dim"])),
        inputs=(TensorSpec("features", ("batch", "dim")), TensorSpec("labels", ("batch",), "int64")),
        outputs=(TensorSpec("loss", ()),),
        reference=lambda module, features, labels: center_loss_reference(
            features, labels, module.centers.detach(), module.lambda_c
        ),
        random_inputs=_center_inputs,
        edge_cases=_center_edge_cases,
    ),
    GraphEntry(
        name="center_update",
        summary="new centers after Wen et al.'s eq. 4, alpha=0.5 (centers carried as state)",
        readme="Wen et al.'s center update, centers carried as state: `CenterUpdate(alpha=0.5)`",
        sizes=CENTER_SIZES,
        make=lambda sizes: CenterUpdate(),
        inputs=(TensorSpec("features", ("batch", "dim")), TensorSpec("labels", ("batch",), "int64"),
                TensorSpec("centers", ("classes", "dim"))),
        outputs=(TensorSpec("new_centers", ("classes", "dim")),),
        reference=lambda module, features, labels, centers: center_update_reference(features, labels, centers, module.alpha),
        random_inputs=_center_inputs,
        edge_cases=_center_edge_cases,
    ),
    GraphEntry(
        name="arc_softmax",
        summary="ArcNet head: P_ij = e^{s cos(θ_ij+m)} / (others + e^{s cos(θ_ij+m)}), s=64, m=0.5, 100 classes",
        readme="the seed's ArcNet head (s=64, m=0.5), weights in the graph: `ArcSoftmax(64, 100)`",
        sizes=ARC_SIZES,
        make=lambda sizes: seeded(ArcSoftmax(sizes["dim"], sizes["classes"])),
        inputs=(TensorSpec("features", ("batch", "dim")),),
        outputs=(TensorSpec("probs", ("batch", "classes")),),
        reference=lambda module, features: arc_softmax_reference(
            features, module.weight.detach(), module.s, module.m, module.margin
        ),
        random_inputs=_arc_inputs,
        edge_cases=_arc_edge_cases(lambda sizes: ArcSoftmax(sizes["dim"], sizes["classes"])),
    ),
    _arc_loss_entry(
        "arcface_loss", "ArcFace loss mean -log P_{i,y_i}, s=64, m=0.5, 100 classes",
        "ArcFace loss (m=0.5), s=64: `ArcFaceLoss(64, 100)`",
        lambda sizes: ArcFaceLoss(sizes["dim"], sizes["classes"]),
    ),
    _arc_loss_entry(
        "cosface_loss", "CosFace loss, label logit s (cos θ - m), s=64, m=0.35, 100 classes",
        "CosFace loss (m=0.35), s=64: `CosFaceLoss(64, 100)`",
        lambda sizes: CosFaceLoss(sizes["dim"], sizes["classes"]),
    ),
)
"""The classification family's catalog entries, in ``exportloss list`` order."""
