"""Relative precision of the exported loss graphs: onnxruntime CPU against the float64 reference on hard inputs.

Each graph's error is measured in float32 ulps of a magnitude ``M`` that the formula itself sets, and held to
a bound stated with the graph below. The inputs are exact float32 numbers, so every error is the graph's own:

* **Logits enter exactly** (``exp(x)``, ``x - max``), and every later step is well conditioned when written
  right: sums of same-sign terms, products, ``log1p`` near 0 (condition <= 1), ``exp`` of an exact argument.
  So the classification losses are held to a few ulps of the result itself, ``M = |reference|``, for
  logits anywhere in ``[-80, 80]``; each bound counts the roundings of the formula (about one ulp per
  correctly rounded operation, two for onnxruntime's ``Exp`` and ``Log``).
* **Boxes enter through sums and differences of coordinates** (centres, widths, enclosing boxes), which
  cancel: no float32 evaluation can beat the problem's own condition number. ``M = |f| + Σ_i |x_i ∂f/∂x_i|``
  (the componentwise condition, derived in float64 by central differences of the reference) bounds what
  rounding the inputs by one ulp would do; the graph must stay within a few ulps of that. A ``1 − metric``
  loss adds the metric's magnitude ``|m|`` (rounding ``m`` costs an ulp of ``m``, not of ``1 − m``).
* **Overlap scores** (Dice, Jaccard, Tversky) are ratios of sums of same-sign terms: relative; their losses
  ``(1 − score)^γ`` add ``γ·|score|``-worth of the score's rounding, as for boxes.
* **Reductions** sum same-sign terms: onnxruntime's vectorised ``ReduceSum`` adds ``~log2(n)`` ulps
  (blocked, pairwise-like summation), counted in each reducing graph's bound.

Detection graphs are left out: their outputs are indices, counts and kept boxes (verified exactly elsewhere).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pytest
import torch

from exportloss import catalog
from exportloss.catalog.boxes import random_boxes, random_rotated_boxes
from exportloss.catalog.classification import focal_entry
from exportloss.catalog.entry import GraphEntry
from exportloss.classification.focal import SigmoidFocalLoss
from exportloss.export import export_model
from exportloss.reference.boxes import aligned_reference, iou_loss_reference, rotated_aligned_reference, rotated_iou_loss_reference
from exportloss.reference.segmentation import overlap_scores_reference

Inputs = dict[str, np.ndarray]
TINY = float(np.finfo(np.float32).tiny)
"""Below float32's smallest normal number a float32 result has absolute precision only: ``M`` never goes below it."""

LOGIT_RANGE = 80.0
BOX_SCALES = (1e-4, 1e-2, 1.0, 1e2, 1e5)
EPS_FREE_SCALES = (1e-2, 1.0, 1e2, 1e5)
"""Box scales at which the metrics' ``eps = 1e-7`` (added to areas and squared lengths) is below float32 rounding."""


def ulps(got: np.ndarray, want: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """``|got − want|`` in float32 ulps of ``magnitude`` (at least of :data:`TINY`); equal values (infinities too) give 0."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.maximum(np.abs(np.asarray(magnitude, np.float64)), TINY)
    error = np.where(got == want, 0.0, np.abs(got - want))
    return error / np.spacing(scale.astype(np.float32)).astype(np.float64)


# --- hard inputs ------------------------------------------------------------------------------------------


def _logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Logits over ``[-80, 80]``: an even grid (every exponent range of ``e^{-|x|}``) in random order, then uniform."""
    grid = np.linspace(-LOGIT_RANGE, LOGIT_RANGE, int(np.prod(shape)))
    return np.where(rng.random(shape) < 0.5, rng.permutation(grid).reshape(shape),
                    rng.uniform(-LOGIT_RANGE, LOGIT_RANGE, size=shape)).astype(np.float32)


def sigmoid_cases(shapes, rng) -> list[tuple[str, Inputs]]:
    logits = _logits(rng, shapes["logits"])
    return [(f"logits in ±80, {what} targets", {"logits": logits, "targets": targets.astype(np.float32)})
            for what, targets in (("0/1", rng.random(shapes["targets"]) < 0.5), ("soft", rng.random(shapes["targets"])))]


def softmax_cases(shapes, rng) -> list[tuple[str, Inputs]]:
    logits = _logits(rng, shapes["logits"])
    random = rng.integers(0, shapes["logits"][-1], size=shapes["labels"])
    return [("logits in ±80, random labels", {"logits": logits, "labels": random}),
            ("logits in ±80, label at the largest logit", {"logits": logits, "labels": logits.argmax(-1)})]


def box_cases(names: tuple[str, str], rotated: bool = False, scales=BOX_SCALES):
    def cases(shapes, rng) -> list[tuple[str, Inputs]]:
        out = []
        for scale in scales:
            draw = (lambda shape: random_rotated_boxes(rng, shape, scale)) if rotated else (lambda shape: random_boxes(rng, shape, scale))
            out.append((f"boxes at scale {scale:g}", {name: draw(shapes[name]) for name in names}))
        return out

    return cases


def center_cases(shapes, rng) -> list[tuple[str, Inputs]]:
    base = {name: value for name, value in catalog.get("center_loss").random_inputs(shapes, rng).items()}
    cases = []
    for scale in (1e-3, 1.0, 1e3):
        inputs = dict(base, features=(base["features"] * scale).astype(np.float32))
        if "centers" in shapes:
            inputs["centers"] = (rng.normal(size=shapes["centers"]) * scale).astype(np.float32)
        cases.append((f"features at scale {scale:g}", inputs))
    return cases


def arc_cases(shapes, rng) -> list[tuple[str, Inputs]]:
    entry_cases = catalog.get("arcface_loss").edge_cases(shapes, rng) if "labels" in shapes else \
        catalog.get("arc_softmax").edge_cases(shapes, rng)
    return [(case.name, case.inputs) for case in entry_cases if case.name in ("near-class-weight", "angles-around-the-margin")]


def segmentation_cases(shapes, rng) -> list[tuple[str, Inputs]]:
    entry_inputs = catalog.get("dice_loss" if len(shapes["target"]) < len(shapes["logits"]) else "tversky_loss")
    ordinary = entry_inputs.random_inputs(shapes, rng)
    # Confidently negative everywhere: Σp is a sum of e^x ~ 1e-13..1e-4, comparable with smooth, so σ must be
    # relatively exact (onnxruntime's Sigmoid gives 0 below x ≈ -17).
    negative = rng.uniform(-30.0, -10.0, size=shapes["logits"]).astype(np.float32)
    empty = np.zeros_like(ordinary["target"])
    return [("logits in ±80", dict(ordinary, logits=_logits(rng, shapes["logits"]))),
            ("logits in [-30, -10]", dict(ordinary, logits=negative)),
            ("logits in [-30, -10], empty target", dict(ordinary, logits=negative, target=empty))]


# --- magnitudes -------------------------------------------------------------------------------------------


def relative(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
    return np.abs(want)


def _condition(function: Callable[..., torch.Tensor], inputs: Inputs, names: tuple[str, ...], step: float = 1e-6) -> np.ndarray:
    """``Σ_i |x_i ∂f/∂x_i|`` over every coordinate of ``names``, by central differences of the float64 ``function``.

    ``function`` maps each output element to one box of each input (aligned, pairwise or per-box), so moving one
    coordinate of every box at once gives each output its own partial derivative.
    """
    base = {name: torch.from_numpy(value.astype(np.float64)) for name, value in inputs.items()}
    total = 0.0
    for name in names:
        for coordinate in range(inputs[name].shape[-1]):
            moved = []
            for sign in (1.0, -1.0):
                shifted = dict(base)
                shifted[name] = base[name].clone()
                shifted[name][..., coordinate] *= 1.0 + sign * step
                moved.append(function(*shifted.values()).double().numpy())
            total = total + np.abs(moved[0] - moved[1]) / (2.0 * step)
    return total


def box_magnitude(per_output: Callable[..., torch.Tensor], names: tuple[str, str], loss: bool = False):
    """``M`` of a box metric (``|m| + condition``) or, with ``loss``, of the mean of ``1 − m`` over boxes
    (``|l| + |1 − l| + condition`` per box, averaged); ``per_output(module, *inputs)`` gives the per-box values."""

    def magnitude(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
        function = lambda *tensors: per_output(module, *tensors)
        per_box = function(*(torch.from_numpy(inputs[name].astype(np.float64)) for name in names)).numpy()
        condition = _condition(function, {name: inputs[name] for name in names}, names)
        if not loss:
            return np.abs(per_box) + condition
        return np.mean(np.abs(per_box) + np.abs(1.0 - per_box) + condition)

    return magnitude


def overlap_magnitude(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
    """``(1 − s)^γ`` per class, weighted and averaged: ``|loss|`` plus the share of the scores' own rounding,
    ``γ·(1 − s)^(γ−1)·|s|`` per class (γ = 1: ``|s|``); a score graph is relative."""
    options = module.options
    scores = overlap_scores_reference(*(torch.from_numpy(inputs[name]) for name in ("logits", "target")), options).numpy()
    if not hasattr(module, "class_weights"):
        return np.abs(want)
    gamma = options.gamma
    spread = gamma * np.clip(1.0 - scores, 0.0, None) ** (gamma - 1.0) * np.abs(scores) if gamma != 1.0 else np.abs(scores)
    weights = module.class_weights
    if weights is not None:
        weights = weights.double().numpy() if options.include_background else weights.double().numpy()[1:]
        spread = spread * weights
    return np.abs(want) + spread.mean()


def center_magnitude(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
    """Squared distances and centre means are formed from ``f − c``, which cancels when a feature sits on its
    centre: ``M`` counts ``|f| + |c|`` where the formula has ``|f − c|`` (and ``n·|c| + Σ|f|`` for the update)."""
    features, labels = inputs["features"].astype(np.float64), inputs["labels"]
    if "centers" in inputs:  # center_update: c − α (n c − Σ f) / (1 + n)
        centers = inputs["centers"].astype(np.float64)
        counts = np.bincount(labels, minlength=len(centers))[:, None]
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, np.abs(features))
        return np.abs(want) + np.abs(centers) + module.alpha * (counts * np.abs(centers) + sums) / (1.0 + counts)
    centers = module.centers.detach().double().numpy()[labels]
    counts = np.bincount(labels)[labels]
    spread = (2.0 * (np.abs(features) + np.abs(centers)) * np.abs(features - centers)).sum(1) / counts
    return np.abs(want) + 0.5 * module.lambda_c * spread.mean()


def arc_magnitude(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
    """Cosines come from a normalised dot product, to a few ulps of 1, then scaled by ``s``: the logits carry an
    absolute error of a few ulps of ``s``, which moves ``−log P`` by at most twice that, and ``P`` by that relatively."""
    if want.ndim:  # ArcSoftmax's probabilities
        return np.abs(want) * (1.0 + 2.0 * module.s)
    return np.abs(want) + 2.0 * module.s


# --- the graphs and their bounds --------------------------------------------------------------------------


@dataclass(frozen=True)
class Precision:
    """One graph's precision property: hard inputs, the magnitude its error is measured in, and the bound (ulps)."""

    entry: GraphEntry
    cases: Callable
    magnitude: Callable
    bound: float
    why: str


PAIR, LOSS = ("boxes1", "boxes2"), ("pred", "target")


def _per_box_loss(module, pred, target):
    reference = rotated_iou_loss_reference if module.__class__.__name__.startswith("Rotated") else None
    if reference is not None:
        return reference(pred, target, module.kind, "none", module.eps)
    return iou_loss_reference(pred, target, module.kind, "none", module.fmt, module.eps)


def _small(name: str, **sizes: int) -> GraphEntry:
    """A catalog graph at sizes whose float64 reference (pair by pair in Python) the condition estimate can afford."""
    return catalog.get(name).at(sizes)


BOX_BOUND = 8.0
"""Box metrics: each of the few roundings after the cancelling differences adds at most an ulp of ``M``."""

PRECISION: dict[str, Precision] = {
    "bce": Precision(
        dataclasses.replace(catalog.get("sigmoid_focal_loss"), name="bce",
                            make=lambda sizes: SigmoidFocalLoss(alpha=-1.0, gamma=0.0)),
        sigmoid_cases, relative, 4.0,
        "torchvision's test_correct_ratio: alpha=-1, gamma=0 is BCE; Exp (2 ulps) then log1p (<= 2) then one Add"),
    "sigmoid_focal_loss": Precision(
        catalog.get("sigmoid_focal_loss"), sigmoid_cases, relative, 12.0,
        "BCE (4) times (t σ(-x) + (1-t) σ(x))² (2 x 3) times alpha_t (1) and the products (2)"),
    "focal_loss_none": Precision(
        focal_entry("focal_loss_none", reduction="none"), softmax_cases, relative, 12.0,
        "-log p_y = log1p(Σ others) − (x_y − max) (4), 1 − p_y by expm1 (4), squared (x2), alpha and products (2)"),
    "focal_loss": Precision(
        catalog.get("focal_loss"), softmax_cases, relative, 24.0,
        "the per-element bound (12) plus the mean over 512 same-sign terms (log2 512 = 9) and the division"),
    "center_loss": Precision(catalog.get("center_loss"), center_cases, center_magnitude, 16.0,
                             "||f − c||² over 32 dims (5) then / n_y and the mean over 64 samples (6) and the scale"),
    "center_update": Precision(catalog.get("center_update"), center_cases, center_magnitude, 8.0,
                               "one-hot MatMul sums (exact products) and four roundings of the update"),
    "arc_softmax": Precision(catalog.get("arc_softmax"), arc_cases, arc_magnitude, 16.0,
                             "cosines to a few ulps of 1 (normalised dot products over 64 dims), exp of a log-space result"),
    "arcface_loss": Precision(catalog.get("arcface_loss"), arc_cases, arc_magnitude, 16.0,
                              "log-softmax of logits carrying a few ulps of s, then the mean over 32 samples"),
    "cosface_loss": Precision(catalog.get("cosface_loss"), arc_cases, arc_magnitude, 16.0,
                              "as arcface_loss"),
    **{name: Precision(catalog.get(name), segmentation_cases, overlap_magnitude, 32.0,
                       "sums of 4096 same-sign terms per class (12), the score's ratio (3), 1 − s and the power (4), the mean (2)")
       for name in ("soft_dice_loss", "dice_loss", "jaccard_loss", "tversky_loss", "dice_score")},
    **{f"aligned_{kind}": Precision(catalog.get(f"aligned_{kind}"), box_cases(PAIR),
                                    box_magnitude(lambda module, b1, b2: aligned_reference(b1, b2, module.kind, module.fmt, module.eps), PAIR),
                                    BOX_BOUND, "a few roundings after the cancelling coordinate differences")
       for kind in ("iou", "giou", "diou", "ciou", "eiou", "siou", "alpha_iou")},
    **{f"{kind}_loss": Precision(catalog.get(f"{kind}_loss"), box_cases(LOSS),
                                 box_magnitude(_per_box_loss, LOSS, loss=True), BOX_BOUND + 12.0,
                                 "the metric's bound, 1 − m, and the mean over 1024 boxes (10)")
       for kind in ("iou", "giou", "diou", "ciou", "eiou", "siou", "alpha_iou")},
    "rotated_aligned_iou": Precision(
        _small("rotated_aligned_iou", boxes=64), box_cases(PAIR, rotated=True),
        box_magnitude(lambda module, b1, b2: rotated_aligned_reference(b1, b2, module.kind, module.eps), PAIR),
        32.0, "polygon vertices from edge intersections and a shoelace sum of up to 8 cross products"),
    "rotated_iou_loss": Precision(
        _small("rotated_iou_loss", boxes=64), box_cases(LOSS, rotated=True), box_magnitude(_per_box_loss, LOSS, loss=True),
        40.0, "rotated_aligned_iou's bound, 1 − m and the mean over 64 boxes"),
    "probiou_loss": Precision(
        _small("probiou_loss", boxes=64), box_cases(LOSS, rotated=True), box_magnitude(_per_box_loss, LOSS, loss=True),
        40.0, "Bhattacharyya distance from sums of non-negative terms, 1 − sqrt(1 − exp(−d) + eps)"),
}
"""Every loss and metric graph outside detection, by name; the pairwise graphs share their aligned twin's formula."""


@pytest.fixture(scope="module")
def sessions():
    """``sessions(name)`` -> an onnxruntime CPU session of the graph exported from the current code (cached)."""
    cache: dict[str, ort.InferenceSession] = {}

    def get(name: str) -> ort.InferenceSession:
        if name not in cache:
            model = export_model(PRECISION[name].entry)
            cache[name] = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        return cache[name]

    return get


def measure(name: str, session: ort.InferenceSession, seed: int = 22) -> tuple[float, str]:
    """The worst error of graph ``name`` in ulps of its magnitude, over its hard cases, and where it occurred."""
    spec = PRECISION[name]
    entry, module = spec.entry, spec.entry.build()
    worst, where = 0.0, ""
    for label, inputs in spec.cases(entry.shapes(), np.random.default_rng(seed)):
        (got,) = session.run(None, {k: inputs[k] for k in entry.input_names})
        want = entry.reference(module, *(torch.from_numpy(inputs[k]) for k in entry.input_names))
        want = (want[0] if isinstance(want, tuple) else want).detach().double().numpy()
        errors = ulps(got, want, spec.magnitude(module, inputs, want))
        index = int(np.argmax(errors))
        if errors.reshape(-1)[index] > worst:
            worst = float(errors.reshape(-1)[index])
            at = {k: v.reshape(-1)[index] for k, v in inputs.items() if v.shape == got.shape}
            where = f"{label}" + "".join(f", {k}={v:.6g}" for k, v in at.items()) + f": got {got.reshape(-1)[index]:.9g}, want {want.reshape(-1)[index]:.9g}"
    return worst, where


@pytest.mark.parametrize("name", list(PRECISION))
def test_graph_error_stays_within_its_bound_on_hard_inputs(sessions, name):
    worst, where = measure(name, sessions(name))
    assert worst <= PRECISION[name].bound, f"{name}: {worst:.3g} ulps > {PRECISION[name].bound:g} ({PRECISION[name].why}); at {where}"
