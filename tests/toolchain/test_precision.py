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
* **Overlap scores** (Dice, Jaccard, Tversky) are ratios of sums of same-sign terms: relative; so are their
  losses ``(1 − score)^γ``, whose ``1 − score`` the graphs form from the mismatch (false positives and
  negatives, themselves sums of same-sign terms), never by subtracting the score from 1: relative however
  near-perfect the prediction.
* **Reductions** sum same-sign terms: onnxruntime's vectorised ``ReduceSum`` adds ``~log2(n)`` ulps
  (blocked, pairwise-like summation), counted in each reducing graph's bound.

Each bound counts the formula's roundings after the cancellations ``M`` accounts for: one ulp per rounded
operation (two for onnxruntime's ``Exp`` and ``Log``), ``log2(n)`` for a sum of ``n`` same-sign terms, a power ``γ``
multiplying its base's error by ``γ``; the count is in ``Precision.why`` and the failure message. Box graphs are
held at every scale of :data:`HELD_BOX_SCALES`, 1e-4 to 1e5, and on near-identical pairs (a converged prediction);
the pairwise graphs run at 16 x 16 boxes (8 x 8 rotated), whose float64 references the condition estimate can afford.

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
from exportloss.boxes.rotated import RotatedIoULoss
from exportloss.catalog.boxes import random_boxes, random_rotated_boxes
from exportloss.catalog.classification import focal_entry
from exportloss.catalog.entry import GraphEntry
from exportloss.classification.focal import SigmoidFocalLoss
from exportloss.export import export_model
from exportloss.reference.boxes import (aligned_reference, iou_loss_reference, pairwise_reference, rotated_aligned_reference,
                                        rotated_iou_loss_reference, rotated_pairwise_reference)
from exportloss.reference.classification import arcface_loss_reference

Inputs = dict[str, np.ndarray]
TINY = float(np.finfo(np.float32).tiny)
"""float32's smallest normal number: ``M`` never goes below it, and results below it may be flushed to 0."""

LOGIT_RANGE = 80.0
BOX_SCALES = (1e-4, 1e-2, 1.0, 1e2, 1e5)
"""Box scales the issue asks about: normalised coordinates (1e-4) to 1e5 px."""
HELD_BOX_SCALES = BOX_SCALES
"""Scales at which the bound is held: all of them. Module and reference put eps at the same places
(:data:`exportloss.boxes.iou.BOX_EPS`), so below scale 1 eps is part of the formula, not a difference between
them: at 1e-4 areas (below 4e-9) and squared extents sit far below eps = 1e-7, IoU is about ``I / eps``, and ``M``
(the inputs' own condition, of the eps-regularised formula) still bounds what the graph may add. Two graphs
had to change to meet it there: GIoU recovered the union as ``(U + eps) − eps`` (62 ulps at 1e-4), ProbIoU took
``1 − exp(−B)`` for a B clamped at eps (176 ulps at 1e-4 and 1e-2). ProbIoU saturates below scale ~1e-2: every
pair's determinants are below eps, B is clamped to eps and the value is ``1 − √(2·eps)``, which these scales
check to the last ulp; its conditioning near identical boxes is held by the near-identical case."""


def ulps(got: np.ndarray, want: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """``|got − want|`` in float32 ulps of ``magnitude`` (at least of :data:`TINY`). Equal values (infinities too)
    give 0, and so does a subnormal ``want`` met by a subnormal or zero ``got``: below :data:`TINY` float32 keeps
    no relative precision, and GPU backends flush such numbers to 0."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.maximum(np.abs(np.asarray(magnitude, np.float64)), TINY)
    with np.errstate(invalid="ignore", over="ignore"):
        error = np.abs(got - want) / np.spacing(scale.astype(np.float32)).astype(np.float64)
    flushed = (np.abs(want) < TINY) & (np.abs(got) < TINY)
    return np.where((got == want) | flushed, 0.0, error)


# --- hard inputs ------------------------------------------------------------------------------------------


def _logits(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Logits over ``[-80, 80]``: an even grid (every exponent range of ``e^{-|x|}``) in random order, then uniform."""
    grid = np.linspace(-LOGIT_RANGE, LOGIT_RANGE, int(np.prod(shape)))
    return np.where(rng.random(shape) < 0.5, rng.permutation(grid).reshape(shape),
                    rng.uniform(-LOGIT_RANGE, LOGIT_RANGE, size=shape)).astype(np.float32)


def sigmoid_cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
    shapes = entry.shapes()
    logits = _logits(rng, shapes["logits"])
    return [(f"logits in ±80, {what} targets", {"logits": logits, "targets": targets.astype(np.float32)})
            for what, targets in (("0/1", rng.random(shapes["targets"]) < 0.5), ("soft", rng.random(shapes["targets"])))]


def softmax_cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
    shapes = entry.shapes()
    logits = _logits(rng, shapes["logits"])
    random = rng.integers(0, shapes["logits"][-1], size=shapes["labels"])
    return [("logits in ±80, random labels", {"logits": logits, "labels": random}),
            ("logits in ±80, label at the largest logit", {"logits": logits, "labels": logits.argmax(-1)})]


def box_cases(names: tuple[str, str], rotated: bool = False):
    def cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
        shapes, out = entry.shapes(), []
        for scale in HELD_BOX_SCALES:
            draw = (lambda shape: random_rotated_boxes(rng, shape, scale)) if rotated else (lambda shape: random_boxes(rng, shape, scale))
            out.append((f"boxes at scale {scale:g}", {name: draw(shapes[name]) for name in names}))
        # A converged prediction: the second boxes within 1e-3 relative of the first (rotated: same θ, or the
        # same box described with swapped sides and θ + π/2), where a metric sits at its optimum.
        assert shapes[names[0]] == shapes[names[1]]
        first = (random_rotated_boxes if rotated else random_boxes)(rng, shapes[names[0]])
        second = first * (1.0 + rng.uniform(-1e-3, 1e-3, size=first.shape))
        if rotated:
            second[..., 4] = first[..., 4]
            swapped = rng.random(first.shape[:-1]) < 0.5
            second[swapped] = second[swapped][..., [0, 1, 3, 2, 4]] + [0.0, 0.0, 0.0, 0.0, math.pi / 2]
        out.append(("near-identical boxes at scale 100", dict(zip(names, (first, second.astype(np.float32))))))
        return out

    return cases


def center_cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
    """The catalog's inputs with features (and centers) scaled: distances from 1e-3 to 1e3."""
    base = entry.random_inputs(entry.shapes(), rng)
    return [(f"features at scale {scale:g}", {name: (value * scale).astype(np.float32) if name in ("features", "centers") else value
                                              for name, value in base.items()})
            for scale in (1e-3, 1.0, 1e3)]


def arc_cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
    """The catalog's edge cases where the label's probability sweeps from 1 to e^-100: near its class and around the margin."""
    return [(case.name, case.inputs) for case in entry.edge_cases(entry.shapes(), rng)
            if case.name in ("near-class-weight", "angles-around-the-margin")]


def segmentation_cases(entry: GraphEntry, rng: np.random.Generator) -> list[tuple[str, Inputs]]:
    shapes = entry.shapes()
    ordinary = entry.random_inputs(shapes, rng)
    # Confidently negative everywhere: Σp is a sum of e^x ~ 1e-13..1e-4, comparable with smooth, so σ must be
    # relatively exact (onnxruntime's Sigmoid gives 0 below x ≈ -17).
    negative = rng.uniform(-30.0, -10.0, size=shapes["logits"]).astype(np.float32)
    empty = np.zeros_like(ordinary["target"])
    # Near-perfect: every logit on the target's side by 5 to 20, so each loss is between ~1e-9 and ~1e-2, far below
    # float32's spacing near 1 where it is small (what ``1 − score`` would round away).
    target, margin = ordinary["target"], rng.uniform(5.0, 20.0, size=shapes["logits"])
    if np.issubdtype(target.dtype, np.integer):  # class labels: the labelled class's logit is the largest
        labels = np.arange(shapes["logits"][1]).reshape(1, -1, *([1] * (len(shapes["logits"]) - 2)))
        agree = target[:, None] == labels
    else:
        agree = target == 1
    near = np.where(agree, margin, -margin).astype(np.float32)
    return [("logits in ±80", dict(ordinary, logits=_logits(rng, shapes["logits"]))),
            ("logits in [-30, -10]", dict(ordinary, logits=negative)),
            ("logits in [-30, -10], empty target", dict(ordinary, logits=negative, target=empty)),
            ("near-perfect logits (|x| in [5, 20] on the target's side)", dict(ordinary, logits=near))]


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


def box_magnitude(per_output: Callable[..., torch.Tensor], names: tuple[str, str], one_minus: bool = False,
                  mean: bool = False):
    """``M`` of a box metric: ``|m| + condition`` per output. ``one_minus``: the value is formed as ``1 − x``
    (a loss ``1 − m``, ProbIoU's ``1 − sqrt(…)``), whose rounding costs an ulp of ``x``: ``+ |1 − m|``. ``mean``:
    the graph averages the per-box values (``per_output(module, *inputs)`` gives them), and ``M`` is the mean of theirs."""

    def magnitude(module, inputs: Inputs, want: np.ndarray) -> np.ndarray:
        function = lambda *tensors: per_output(module, *tensors)
        per_box = function(*(torch.from_numpy(inputs[name].astype(np.float64)) for name in names)).numpy()
        result = np.abs(per_box) + _condition(function, {name: inputs[name] for name in names}, names)
        if one_minus:
            result = result + np.abs(1.0 - per_box)
        return np.mean(result) if mean else result

    return magnitude


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
    """Cosines come from a normalised dot product, to a few ulps of 1; scaled by ``s`` the logits carry an absolute
    error ``δ`` of a few ulps of ``s``. ArcFace's ``φ = cos θ cos m − sin θ sin m`` takes ``sin θ = sqrt(1 − cos²θ)``,
    which multiplies the cosine's error by ``|cot θ|`` (θ itself is ill-conditioned in ``cos θ`` near 0 and π):
    ``δ_φ = s·(1 + sin m·|cot θ|)``. ``−log P_y`` moves by ``Σ_k |P_k − [k = y]|·δ_k <= (−log P_y)·(2δ + δ_φ)``
    (``1 − P_y <= −log P_y``), and ``P`` relatively by as much; the mean of positive terms keeps the bound."""
    features = inputs["features"].astype(np.float64)
    weight = module.weight.detach().double().numpy()
    cos = (features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)) @ (
        weight / np.maximum(np.linalg.norm(weight, axis=0, keepdims=True), 1e-6))
    if "labels" in inputs:
        cos = np.take_along_axis(cos, inputs["labels"][:, None], 1)[:, 0]
    sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
    # A float32 cosine within ε of ±1 leaves 1 − cos² >= ε: sin θ is never below sqrt(ε) in the graph.
    cot = np.abs(cos) / np.maximum(sin, math.sqrt(np.finfo(np.float32).eps)) if module.margin == "arcface" else 0.0
    spread = module.s * (3.0 + math.sin(module.m) * cot)
    if "labels" not in inputs:  # ArcSoftmax: every entry is its own class's P
        return np.abs(want) * (1.0 + spread)
    per_sample = arcface_loss_reference(torch.from_numpy(features), torch.from_numpy(inputs["labels"]), module.weight.detach(),
                                        module.s, module.m, module.margin, "none").numpy()
    return np.mean(per_sample * (1.0 + spread))


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
    """The loss of each box (``reduction="none"``) by the float64 reference of ``module``'s graph."""
    if isinstance(module, RotatedIoULoss):
        return rotated_iou_loss_reference(pred, target, module.kind, "none", module.eps)
    return iou_loss_reference(pred, target, module.kind, "none", module.fmt, module.eps)


def _small(name: str, **sizes: int) -> GraphEntry:
    """A catalog graph at sizes whose float64 reference (pair by pair in Python) the condition estimate can afford."""
    return catalog.get(name).at(sizes)


BOX_BOUND = 8.0
"""Box metrics: ``M`` already carries the cancellation; the few roundings after it (products, the ratio, the
penalty terms, CIoU's arctangent polynomial) add an ulp of ``M`` each."""

KINDS = ("iou", "giou", "diou", "ciou", "eiou", "siou", "alpha_iou")
EIOU_WHY = ("EIoU's signed intersection is a signed sum of four products of coordinate differences; for separated "
            "boxes it subtracts products whose own roundings (ulps of the products, not of the inputs) the condition "
            "does not count: twice the bound")


def _box_bound(kind: str) -> float:
    return 2 * BOX_BOUND if kind == "eiou" else BOX_BOUND


PRECISION: dict[str, Precision] = {
    "bce": Precision(
        dataclasses.replace(catalog.get("sigmoid_focal_loss"), name="bce",
                            make=lambda sizes: SigmoidFocalLoss(alpha=-1.0, gamma=0.0)),
        sigmoid_cases, relative, 4.0,
        "issue 22's done-when (torchvision's test_correct_ratio): alpha=-1, gamma=0 is BCE, equal to float64 within "
        "4 ulps: e^{-|x|} (Exp), log1p (relative error carried at u/((1+u)·log1p u) <= 1, plus its own) and one Add"),
    "sigmoid_focal_loss": Precision(
        catalog.get("sigmoid_focal_loss"), sigmoid_cases, relative, 16.0,
        "BCE (4) times (t σ(-x) + (1-t) σ(x))², σ from Exp, Add, Reciprocal, Mul (5 each, doubled by the square: 10), "
        "alpha_t and the two products (2)"),
    "focal_loss_none": Precision(
        focal_entry("focal_loss_none", reduction="none"), softmax_cases, relative, 32.0,
        "log p_y = z_y − log1p(Σ others): 20 Exps summed (2 + 5) and log1p (2), 9; 1 − p_y = −expm1(log p_y) "
        "(condition <= 1) adds 3: 12, squared 24; times log p_y and alpha"),
    "focal_loss": Precision(
        catalog.get("focal_loss"), softmax_cases, relative, 48.0,
        "focal_loss_none's bound (32) plus the mean of 512 same-sign terms (9) and the division"),
    "center_loss": Precision(catalog.get("center_loss"), center_cases, center_magnitude, 16.0,
                             "(f − c)² summed over 32 dims (5), divided by n_y, averaged over 64 samples (6), scaled"),
    "center_update": Precision(catalog.get("center_update"), center_cases, center_magnitude, 8.0,
                               "one-hot MatMul sums of exact products and four roundings of the update"),
    "arc_softmax": Precision(catalog.get("arc_softmax"), arc_cases, arc_magnitude, 16.0,
                             "normalised dot products over 64 dims, then log-space steps of a few ulps each"),
    "arcface_loss": Precision(catalog.get("arcface_loss"), arc_cases, arc_magnitude, 16.0,
                              "as arc_softmax, then the mean over 32 samples (5)"),
    "cosface_loss": Precision(catalog.get("cosface_loss"), arc_cases, arc_magnitude, 16.0, "as arcface_loss"),
    **{name: Precision(catalog.get(name), segmentation_cases, relative, 2 * math.log2(summed) + 8,
                       f"a ratio of two sums of {summed} same-sign terms per class (log2 of it each, 2·{math.log2(summed):g}), "
                       "σ or the softmax and its complement (3), the ratio (1), the power (2), the mean (2)")
       for name, summed in (("soft_dice_loss", 2 * 4 * 64 * 64), ("dice_loss", 64 * 64), ("jaccard_loss", 64 * 64),
                            ("tversky_loss", 64 * 64), ("dice_score", 64 * 64))},
    **{f"aligned_{kind}": Precision(catalog.get(f"aligned_{kind}"), box_cases(PAIR),
                                    box_magnitude(lambda module, b1, b2: aligned_reference(b1, b2, module.kind, module.fmt, module.eps), PAIR),
                                    _box_bound(kind), EIOU_WHY if kind == "eiou" else "roundings after the cancelling differences")
       for kind in KINDS},
    **{f"pairwise_{kind}": Precision(_small(f"pairwise_{kind}", batch=1, boxes1=16, boxes2=16), box_cases(PAIR),
                                     box_magnitude(lambda module, b1, b2: pairwise_reference(b1, b2, module.kind, module.fmt, module.eps), PAIR),
                                     _box_bound(kind), "the aligned graph's formula, on every pair")
       for kind in KINDS},
    **{f"{kind}_loss": Precision(catalog.get(f"{kind}_loss"), box_cases(LOSS),
                                 box_magnitude(_per_box_loss, LOSS, one_minus=True, mean=True), _box_bound(kind) + 12.0,
                                 "the metric's bound, 1 − m (1), and the mean of 1024 boxes (10) and its division")
       for kind in KINDS},
    "rotated_aligned_iou": Precision(
        _small("rotated_aligned_iou", boxes=64), box_cases(PAIR, rotated=True),
        box_magnitude(lambda module, b1, b2: rotated_aligned_reference(b1, b2, module.kind, module.eps), PAIR),
        32.0, "corners from cos θ and sin θ, vertices from edge intersections (a ratio of cross products), and a "
              "shoelace sum of up to 8 cross products (3 + 3 + 2 roundings, each on magnitudes the condition counts once)"),
    "rotated_pairwise_iou": Precision(
        _small("rotated_pairwise_iou", batch=1, boxes1=8, boxes2=8), box_cases(PAIR, rotated=True),
        box_magnitude(lambda module, b1, b2: rotated_pairwise_reference(b1, b2, module.kind, module.eps), PAIR),
        32.0, "rotated_aligned_iou's formula, on every pair"),
    "rotated_iou_loss": Precision(
        _small("rotated_iou_loss", boxes=64), box_cases(LOSS, rotated=True), box_magnitude(_per_box_loss, LOSS, one_minus=True, mean=True),
        40.0, "rotated_aligned_iou's bound, 1 − m and the mean of 64 boxes (6)"),
    "probiou_pairwise": Precision(
        _small("probiou_pairwise", batch=1, boxes1=8, boxes2=8), box_cases(PAIR, rotated=True),
        box_magnitude(lambda module, b1, b2: rotated_pairwise_reference(b1, b2, module.kind, module.eps), PAIR, one_minus=True),
        32.0, "the Bhattacharyya distance from sums of non-negative terms, exp, sqrt and 1 − sqrt(…) (counted in M)"),
    "probiou_loss": Precision(
        _small("probiou_loss", boxes=64), box_cases(LOSS, rotated=True), box_magnitude(_per_box_loss, LOSS, one_minus=True, mean=True),
        40.0, "probiou_pairwise's bound and the mean of 64 boxes (6)"),
}
"""Every loss and metric graph outside detection, by name; the pairwise graphs share their aligned twin's formula."""


@pytest.fixture(scope="module")
def sessions(exported):
    """``sessions(name)`` -> an onnxruntime CPU session of the graph exported from the current code (not ``models/``):
    catalog graphs through the session's shared exports, resized and variant graphs exported here."""

    def get(name: str) -> ort.InferenceSession:
        entry = PRECISION[name].entry
        model = exported(name) if entry is catalog.CATALOG.get(name) else export_model(entry).SerializeToString()
        return ort.InferenceSession(str(model) if not isinstance(model, bytes) else model, providers=["CPUExecutionProvider"])

    return get


def measure(name: str, session: ort.InferenceSession, seed: int = 22) -> tuple[float, str]:
    """The worst error of graph ``name`` in ulps of its magnitude, over its hard cases, and where it occurred."""
    spec = PRECISION[name]
    entry, module = spec.entry, spec.entry.build()
    worst, where = 0.0, ""
    for label, inputs in spec.cases(entry, np.random.default_rng(seed)):
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


# --- the accurate primitives themselves -------------------------------------------------------------------


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_log1p_survives_the_exporter_and_the_optimizer(exporter):
    """``(1 + u) − 1`` must reach the graph: folded to ``u``, the correction would divide by the wrong number.
    BCE at alpha=-1, gamma=0 on a dense grid of logits in [-80, 80], both exporters (TorchScript's output goes
    through onnxscript's optimizer), within the 4 ulps of the done-when."""
    entry = PRECISION["bce"].entry
    model = export_model(entry, exporter=exporter)
    ops = [node.op_type for node in model.graph.node]
    assert "Softplus" not in ops and ops.count("Sub") >= 1 and ops.count("Equal") >= 1
    shape = entry.shapes()["logits"]
    logits = np.linspace(-LOGIT_RANGE, LOGIT_RANGE, int(np.prod(shape)), dtype=np.float32).reshape(shape)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for target in (0.0, 1.0):
        targets = np.full(shape, target, np.float32)
        (got,) = session.run(None, {"logits": logits, "targets": targets})
        x = logits.astype(np.float64)
        want = np.logaddexp(0.0, -x) if target else np.logaddexp(0.0, x)
        assert ulps(got, want, want).max() <= 4.0


def test_the_onnx_forms_of_log1p_expm1_and_sigmoid_are_relatively_exact_in_float32():
    """The forms exported graphs use, evaluated by torch in float32 (eager modules use torch's own kernels)."""
    from exportloss.ops.numerics import onnx_expm1 as expm1, onnx_log1p as log1p, onnx_sigmoid as sigmoid

    u = torch.cat([torch.logspace(-45, 30, 4000), -torch.logspace(-45, -1e-7, 2000), torch.tensor([0.0, -1.0])]).float()
    u = u[u >= -1]
    want = torch.log1p(u.double())
    assert ulps(log1p(u).numpy(), want.numpy(), want.numpy()).max() <= 4.0
    v = torch.linspace(-120.0, 88.0, 20001).float()
    want = torch.expm1(v.double())
    assert ulps(expm1(v).numpy(), want.numpy(), want.numpy()).max() <= 4.0
    want = torch.sigmoid(v.double())
    assert ulps(sigmoid(v).numpy(), want.numpy(), want.numpy()).max() <= 4.0
    assert torch.isnan(log1p(torch.tensor([float("nan")]))).all() and log1p(torch.tensor([-1.0])).item() == -math.inf
