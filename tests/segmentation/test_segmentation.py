"""The Dice family against independent float64 math, hand-worked values, MONAI's and SMP's formulas,
degenerate masks, bad input, and a 3-D volume export verified in onnxruntime."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import exportloss
from exportloss import catalog
from exportloss.catalog import Case
from exportloss.catalog.segmentation import volume
from exportloss.export import export_graph
from exportloss.graph_checks import banned_ops, op_histogram
from exportloss.reference.segmentation import overlap_loss_reference
from exportloss.verify import verify

SEGMENTATION_MODES = ("binary", "multiclass", "multilabel")
SEGMENTATION_GRAPHS = ("soft_dice_loss", "dice_loss", "jaccard_loss", "tversky_loss", "dice_score")
IGNORE = 255


def dense_float64(logits, target, mode, from_logits=True, ignore_index=None):
    """``(p, t, valid)`` as float64 ``[B, C, N]`` tensors, built with F.one_hot and torch's activations."""
    batch = logits.shape[0]
    x = logits.double().reshape(batch, 1, -1) if mode == "binary" else logits.double().flatten(2)
    if mode == "multiclass":
        p = torch.softmax(x, dim=1) if from_logits else x
        labels = target.reshape(batch, -1)
        valid = torch.ones_like(labels, dtype=torch.float64) if ignore_index is None else (labels != ignore_index).double()
        safe = torch.where(valid.bool(), labels, torch.zeros_like(labels))
        t = F.one_hot(safe, x.shape[1]).permute(0, 2, 1).double() * valid[:, None]
        return p, t, valid[:, None].expand_as(p)
    p = torch.sigmoid(x) if from_logits else x
    raw = target.double().reshape(p.shape)
    valid = torch.ones_like(raw) if ignore_index is None else (raw != ignore_index).double()
    return p, raw * valid, valid


def expected_scores(logits, target, mode, kind="dice", from_logits=True, squared=False, smooth=1e-5,
                    reduce_batch=False, include_background=True, ignore_index=None, alpha=0.5, beta=0.5):
    p, t, valid = dense_float64(logits, target, mode, from_logits, ignore_index)
    p = p * valid
    dims = (0, 2) if reduce_batch else 2
    inter = (p * t).sum(dims)
    pred = (p**2 if squared else p).sum(dims)
    true = (t**2 if squared else t).sum(dims)
    if kind == "dice":
        score = (2 * inter + smooth) / (pred + true + smooth)
    elif kind == "jaccard":
        score = (inter + smooth) / (pred + true - inter + smooth)
    else:
        score = (inter + smooth) / (inter + alpha * (pred - inter) + beta * (true - inter) + smooth)
    return score if include_background else score[..., 1:]


def make_inputs(mode, shape=(3, 4, 7, 5), seed=0, ignore_fraction=0.0, scale=3.0):
    gen = torch.Generator().manual_seed(seed)
    logits = scale * torch.randn(shape, generator=gen)
    if mode == "multiclass":
        target = torch.randint(0, shape[1], (shape[0], *shape[2:]), generator=gen)
    else:
        target = (torch.rand(shape, generator=gen) < 0.4).float()
    if ignore_fraction:
        target[torch.rand(target.shape, generator=gen) < ignore_fraction] = IGNORE
    return logits, target


# ---------------------------------------------------------------- against independent float64 math

OPTION_SETS = [(False, False, False, True, False), (True, False, True, True, True), (False, True, False, False, True),
               (True, True, True, False, False), (False, False, True, False, True), (True, True, False, True, True)]


@pytest.mark.parametrize(
    "mode, jaccard, squared, reduce_batch, include_background, ignore",
    # Binary mode has one class, so no background channel to drop.
    [(mode, *options) for mode in SEGMENTATION_MODES for options in OPTION_SETS if mode != "binary" or options[3]],
)
def test_dice_score_matches_float64_math(mode, jaccard, squared, reduce_batch, include_background, ignore):
    logits, target = make_inputs(mode, ignore_fraction=0.1 if ignore else 0.0)
    options = dict(squared=squared, reduce_batch=reduce_batch, include_background=include_background,
                   ignore_index=IGNORE if ignore else None)
    got = exportloss.dice_score(logits, target, mode, jaccard=jaccard, **options)
    want = expected_scores(logits, target, mode, "jaccard" if jaccard else "dice", **options)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert got.shape[-1] == (1 if mode == "binary" else 4 - (not include_background))
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("mode", ["multiclass", "multilabel"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_losses_apply_weights_then_reduction(mode, reduction):
    logits, target = make_inputs(mode, ignore_fraction=0.05)
    weights = torch.tensor([0.0, 1.0, 2.5, 0.5])
    for include_background in (True, False):
        kept = weights if include_background else weights[1:]
        common = dict(mode=mode, include_background=include_background, ignore_index=IGNORE,
                      class_weights=weights.tolist(), reduction=reduction)
        dice = 1 - expected_scores(logits, target, mode, "dice", include_background=include_background, ignore_index=IGNORE)
        tversky = (1 - expected_scores(logits, target, mode, "tversky", alpha=0.2, beta=0.8,
                                       include_background=include_background, ignore_index=IGNORE)) ** 1.5
        for module, per_class in ((exportloss.DiceLoss(**common), dice),
                                  (exportloss.TverskyLoss(0.2, 0.8, 1.5, **common), tversky)):
            weighted = per_class * kept.double()
            want = {"none": weighted, "sum": weighted.sum(), "mean": weighted.sum() / weighted.numel()}[reduction]
            torch.testing.assert_close(module(logits, target).double(), want, atol=1e-6, rtol=1e-6)


def test_soft_dice_loss_is_the_seed_formula_over_the_whole_batch():
    probs = torch.rand(3, 2, 6, 5, generator=torch.Generator().manual_seed(1))
    target = (torch.rand(3, 2, 6, 5, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    p, t = probs.double(), target.double()
    want = 1 - (2 * (p * t).sum() + 1.0) / ((p**2).sum() + (t**2).sum() + 1.0)
    got = exportloss.SoftDiceLoss()(probs, target)
    assert got.shape == ()
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=0)
    logits = torch.logit(probs)
    torch.testing.assert_close(exportloss.SoftDiceLoss(sigmoid=True)(logits, target).double(), want, atol=1e-6, rtol=0)


@settings(max_examples=40, deadline=None)
@given(
    mode=st.sampled_from(["binary", "multiclass", "multilabel"]),
    spatial=st.lists(st.integers(1, 5), min_size=0, max_size=3),
    batch=st.integers(1, 3),
    classes=st.integers(2, 4),
    kind=st.sampled_from(["dice", "jaccard", "tversky"]),
    reduce_batch=st.booleans(),
    ignore=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_fuzz_modules_match_the_float64_reference(mode, spatial, batch, classes, kind, reduce_batch, ignore, seed):
    shape = (batch, classes, *spatial)
    logits, target = make_inputs(mode, shape, seed, ignore_fraction=0.2 if ignore else 0.0, scale=10.0)
    options = dict(mode=mode, reduce_batch=reduce_batch, ignore_index=IGNORE if ignore else None, reduction="none")
    module = (exportloss.TverskyLoss(0.3, 0.7, 2.0, **options) if kind == "tversky"
              else exportloss.DiceLoss(jaccard=kind == "jaccard", **options))
    got = module(logits, target)
    assert torch.isfinite(got).all() and (got >= 0).all() and (got <= 1 + 1e-6).all()
    want = overlap_loss_reference(logits.double(), target, module.options)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- hand-worked values

def test_hand_worked_multiclass_scores():
    # One sample, two classes, two pixels; probabilities given directly. Labels: pixel 0 -> class 0, pixel 1 -> class 1.
    probs = torch.tensor([[[0.8, 0.3], [0.2, 0.7]]])
    labels = torch.tensor([[0, 1]])
    # class 0: I = 0.8, P = 1.1, T = 1; class 1: I = 0.7, P = 0.9, T = 1.
    s = 1e-5
    dice = exportloss.dice_score(probs, labels, from_logits=False, smooth=s)
    torch.testing.assert_close(dice, torch.tensor([[(1.6 + s) / (2.1 + s), (1.4 + s) / (1.9 + s)]]))
    jac = exportloss.dice_score(probs, labels, from_logits=False, jaccard=True, smooth=s)
    torch.testing.assert_close(jac, torch.tensor([[(0.8 + s) / (1.3 + s), (0.7 + s) / (1.2 + s)]]))
    # Tversky alpha 0.3 (on FP), beta 0.7 (on FN): class 0 FP = 0.3, FN = 0.2; class 1 FP = 0.2, FN = 0.3.
    tversky = exportloss.TverskyLoss(0.3, 0.7, mode="multiclass", from_logits=False, smooth=s, reduction="none")
    ti = torch.tensor([[(0.8 + s) / (0.8 + 0.09 + 0.14 + s), (0.7 + s) / (0.7 + 0.06 + 0.21 + s)]])
    torch.testing.assert_close(tversky(probs, labels), 1 - ti)
    focal = exportloss.TverskyLoss(0.3, 0.7, gamma=4 / 3, mode="multiclass", from_logits=False, smooth=s, reduction="none")
    torch.testing.assert_close(focal(probs, labels), (1 - ti) ** (4 / 3))
    # squared: class 0 P = 0.64 + 0.09 = 0.73.
    squared = exportloss.dice_score(probs, labels, from_logits=False, squared=True, smooth=s)
    torch.testing.assert_close(squared[0, 0], torch.tensor((1.6 + s) / (1.73 + s)))


def test_hand_worked_soft_dice():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    target = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # sum p*t = 1.5, sum p^2 = 1.5, sum t^2 = 2, smooth 1: dice = 4 / 4.5.
    assert exportloss.SoftDiceLoss()(probs, target).item() == pytest.approx(1 - 4 / 4.5, abs=1e-7)


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_empty_and_perfect_masks(mode):
    shape = (2, 3, 4, 4)
    empty = torch.zeros(shape[:1] + shape[2:], dtype=torch.int64) if mode == "multiclass" else torch.zeros(shape)
    if mode == "multiclass":
        # All background, predicted with logits of +-50: classes 1 and 2 are empty in prediction and target.
        logits = torch.full(shape, -50.0)
        logits[:, 0] = 50.0
    else:
        logits = torch.full(shape, -50.0)
    for module in (exportloss.DiceLoss(mode), exportloss.DiceLoss(mode, jaccard=True, squared=True),
                   exportloss.TverskyLoss(0.3, 0.7, 2.0, mode=mode), exportloss.SoftDiceLoss(sigmoid=True)):
        if isinstance(module, exportloss.SoftDiceLoss) and mode == "multiclass":
            continue
        # σ(−50) ≈ 2e-22 of predicted mass per pixel against smooth 1e-5: a loss below 1e-15, no longer rounded
        # to 0 by 1 − score (the losses are formed from the mismatch, relatively exact).
        assert 0.0 <= module(logits, empty).item() <= 1e-15, module
    assert (exportloss.dice_score(logits, empty, mode) == 1.0).all()
    # Perfect prediction of an ordinary target, logits +-50.
    _, target = make_inputs(mode, shape)
    hit = (target[:, None] == torch.arange(3).view(1, 3, 1, 1)) if mode == "multiclass" else target > 0.5
    perfect = torch.where(hit, 50.0, -50.0)
    assert exportloss.DiceLoss(mode)(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    assert exportloss.TverskyLoss(mode=mode, gamma=4 / 3)(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    # Empty target, ordinary prediction: each class scores smooth / (P + smooth), loss about 1 off the background.
    logits, _ = make_inputs(mode, shape)
    p, _, _ = dense_float64(logits, empty, mode)
    s = 1e-5
    score = exportloss.dice_score(logits, empty, mode, smooth=s)
    first = 1 if mode == "multiclass" else 0
    want = s / (p.sum(2) + s)
    torch.testing.assert_close(score[:, first:].double(), want[:, first:], atol=1e-7, rtol=1e-4)


def test_seed_bug_is_fixed_two_empty_masks_give_zero_not_minus_one():
    empty = torch.zeros(2, 1, 8, 8)
    seed_dice = 2.0 * (0 + 1) / (0 + 0 + 1)  # the seed doubled smooth in the numerator only
    assert 1 - seed_dice == -1.0
    assert exportloss.SoftDiceLoss()(empty, empty).item() == 0.0


def test_all_pixels_ignored_in_one_sample_scores_one_and_ignored_pixels_do_not_matter():
    logits, target = make_inputs("multiclass", ignore_fraction=0.2)
    target[0] = IGNORE
    score = exportloss.dice_score(logits, target, ignore_index=IGNORE)
    assert (score[0] == 1.0).all()
    loss = exportloss.DiceLoss(ignore_index=IGNORE, reduction="none")
    before = loss(logits, target)
    changed = logits.clone()
    changed[(target == IGNORE).unsqueeze(1).expand_as(logits)] = 40.0  # only ignored pixels change
    torch.testing.assert_close(loss(changed, target), before)
    for mode in ("binary", "multilabel"):
        logits, target = make_inputs(mode, ignore_fraction=0.3)
        module = exportloss.TverskyLoss(mode=mode, ignore_index=IGNORE, reduction="none")
        changed = torch.where(target == IGNORE, -logits, logits)
        torch.testing.assert_close(module(changed, target), module(logits, target))


def test_class_absent_from_batch():
    logits, target = make_inputs("multiclass")
    target[target == 3] = 1
    p, _, _ = dense_float64(logits, target, "multiclass")
    s = 1e-5
    score = exportloss.dice_score(logits, target, smooth=s, reduce_batch=True)
    assert score[3].item() == pytest.approx(s / (p[:, 3].sum().item() + s), rel=1e-4)
    assert score[3].item() < 1e-4


@pytest.mark.parametrize("mode", ["binary", "multiclass", "multilabel"])
def test_saturated_logits_give_finite_values_and_gradients(mode):
    plain_logits, plain_target = make_inputs(mode)
    ignored_logits, ignored_target = make_inputs(mode, ignore_fraction=0.1)
    for module, logits, target in (
        (exportloss.DiceLoss(mode, ignore_index=IGNORE), ignored_logits, ignored_target),
        (exportloss.DiceLoss(mode, jaccard=True, squared=True), plain_logits, plain_target),
        (exportloss.TverskyLoss(0.3, 0.7, 0.75, mode=mode, ignore_index=IGNORE), ignored_logits, ignored_target),
    ):
        saturated = (torch.sign(logits) * 50.0).requires_grad_(True)
        loss = module(saturated, target)
        (grad,) = torch.autograd.grad(loss, saturated)
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), module


# ---------------------------------------------------------------- conventions of other libraries

def test_tversky_special_cases_are_dice_and_jaccard():
    logits, target = make_inputs("multiclass")
    s = 1e-4
    half = exportloss.TverskyLoss(0.5, 0.5, smooth=s, reduction="none")(logits, target)
    torch.testing.assert_close(half, exportloss.DiceLoss(smooth=2 * s, reduction="none")(logits, target))
    one = exportloss.TverskyLoss(1.0, 1.0, smooth=s, reduction="none")(logits, target)
    torch.testing.assert_close(one, exportloss.DiceLoss(jaccard=True, smooth=s, reduction="none")(logits, target))


def monai_dice_loss(probs, onehot, jaccard, smooth_nr, smooth_dr, batch, weight=None):
    """MONAI's DiceLoss formula (losses/dice.py): sums over spatial (and batch), 'mean' reduction."""
    axes = [0, 2] if batch else [2]
    inter = (onehot * probs).sum(axes)
    denominator = onehot.sum(axes) + probs.sum(axes)
    if jaccard:
        denominator = 2.0 * (denominator - inter)
    f = 1.0 - (2.0 * inter + smooth_nr) / (denominator + smooth_dr)
    return (f * weight if weight is not None else f).mean()


def smp_dice_loss(probs, onehot, smooth, eps=1e-7, jaccard=False):
    """segmentation_models_pytorch's DiceLoss / JaccardLoss formula: dims (0, 2), absent classes zeroed."""
    inter = (probs * onehot).sum((0, 2))
    card = (probs + onehot).sum((0, 2))
    denom = card - inter if jaccard else card
    score = ((1 if jaccard else 2) * inter + smooth) / (denom + smooth).clamp_min(eps)
    return ((1 - score) * (onehot.sum((0, 2)) > 0)).mean()


@pytest.mark.parametrize("jaccard", [False, True])
@pytest.mark.parametrize("reduce_batch", [False, True])
def test_option_mapping_to_monai(jaccard, reduce_batch):
    logits, target = make_inputs("multiclass")
    p, t, _ = dense_float64(logits, target, "multiclass")
    s = 1e-3
    weights = torch.tensor([0.5, 1.0, 2.0, 1.5])
    ours = exportloss.DiceLoss(jaccard=jaccard, smooth=s, reduce_batch=reduce_batch, class_weights=weights)(logits, target)
    # Jaccard: MONAI doubles the denominator, so its smoothing constants are twice ours.
    k = 2 if jaccard else 1
    theirs = monai_dice_loss(p, t, jaccard, k * s, k * s, reduce_batch, weights.double())
    torch.testing.assert_close(ours.double(), theirs, atol=1e-6, rtol=0)
    # include_background=False: MONAI's weight omits class 0, ours is indexed by channel.
    ours = exportloss.DiceLoss(jaccard=jaccard, smooth=s, reduce_batch=reduce_batch, include_background=False,
                               class_weights=weights)(logits, target)
    theirs = monai_dice_loss(p[:, 1:], t[:, 1:], jaccard, k * s, k * s, reduce_batch, weights[1:].double())
    torch.testing.assert_close(ours.double(), theirs, atol=1e-6, rtol=0)


@pytest.mark.parametrize("jaccard", [False, True])
def test_option_mapping_to_smp_when_every_class_is_present(jaccard):
    logits, target = make_inputs("multiclass", ignore_fraction=0.1)
    p, t, valid = dense_float64(logits, target, "multiclass", ignore_index=IGNORE)
    assert (t.sum((0, 2)) > 0).all()
    ours = exportloss.DiceLoss(jaccard=jaccard, smooth=1.0, reduce_batch=True, ignore_index=IGNORE)(logits, target)
    theirs = smp_dice_loss(p * valid, t, smooth=1.0, jaccard=jaccard)
    torch.testing.assert_close(ours.double(), theirs, atol=1e-6, rtol=0)


# ---------------------------------------------------------------- bad input

LOGITS = torch.randn(2, 4, 8, 8)
LABELS = torch.randint(0, 4, (2, 8, 8))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: exportloss.DiceLoss(mode="semantic"), ValueError, r"mode must be one of 'binary', 'multiclass', 'multilabel'; got 'semantic'"),
        (lambda: exportloss.dice_score(LOGITS, LABELS, mode="onehot"), ValueError, r"mode must be one of"),
        (lambda: exportloss.DiceLoss()(LOGITS, LABELS[:, :7]), ValueError, r"target must have shape \[B, \*spatial\] = \[2, 8, 8\] for logits \[2, 4, 8, 8\] in mode='multiclass'; got \[2, 7, 8\]"),
        (lambda: exportloss.DiceLoss("multilabel")(LOGITS, torch.rand(2, 3, 8, 8)), ValueError, r"target must have the shape of logits \[2, 4, 8, 8\] in mode='multilabel'; got \[2, 3, 8, 8\]"),
        (lambda: exportloss.SoftDiceLoss()(torch.rand(2, 8), torch.rand(2, 9)), ValueError, r"target must have the shape of logits"),
        (lambda: exportloss.DiceLoss()(LOGITS, LABELS + 1), ValueError, r"target must lie in \[0, 3\]; got values in \[1, 4\]"),
        (lambda: exportloss.DiceLoss()(LOGITS, LABELS - 1), ValueError, r"target must lie in \[0, 3\]"),
        (lambda: exportloss.DiceLoss(ignore_index=IGNORE)(LOGITS, torch.where(LABELS == 0, 9, LABELS)), ValueError, r"target must lie in \[0, 3\] or ignore_index=255"),
        (lambda: exportloss.DiceLoss(class_weights=[1.0, 2.0, 3.0])(LOGITS, LABELS), ValueError, r"class_weights has 3 entries but the input has C=4 classes"),
        (lambda: exportloss.TverskyLoss(class_weights=[1.0] * 5, mode="multilabel")(LOGITS, torch.rand(2, 4, 8, 8)), ValueError, r"class_weights has 5 entries but the input has C=4"),
        (lambda: exportloss.DiceLoss(class_weights=[1.0, -1.0]), ValueError, r"class_weights must be finite and >= 0"),
        (lambda: exportloss.DiceLoss(class_weights=[[1.0]]), ValueError, r"class_weights must be a non-empty 1-D sequence"),
        (lambda: exportloss.DiceLoss()(LOGITS, LABELS.float()), TypeError, r"target must be an int64 or int32 tensor"),
        (lambda: exportloss.DiceLoss("binary")(LOGITS, LABELS.unsqueeze(1).expand(2, 4, 8, 8)), TypeError, r"target must be a floating-point tensor"),
        (lambda: exportloss.DiceLoss()(LOGITS.long(), LABELS), TypeError, r"logits must be a floating-point tensor"),
        (lambda: exportloss.DiceLoss()(torch.randn(4), LABELS), ValueError, r"logits must have shape \[B, C, \*spatial\]"),
        (lambda: exportloss.DiceLoss(smooth=0.0), ValueError, r"smooth must be finite and > 0; got 0.0"),
        (lambda: exportloss.SoftDiceLoss(smooth=-1), ValueError, r"smooth must be finite and > 0"),
        (lambda: exportloss.TverskyLoss(alpha=-0.1), ValueError, r"alpha must be finite and >= 0"),
        (lambda: exportloss.TverskyLoss(gamma=0), ValueError, r"gamma must be finite and > 0"),
        (lambda: exportloss.DiceLoss("binary", include_background=False), ValueError, r"include_background=False needs mode 'multiclass' or 'multilabel'"),
        (lambda: exportloss.DiceLoss(include_background=False)(torch.randn(2, 1, 4), torch.zeros(2, 4, dtype=torch.long)), ValueError, r"include_background=False needs at least 2 classes"),
        (lambda: exportloss.DiceLoss(ignore_index=2.5), TypeError, r"ignore_index must be an int or None"),
        (lambda: exportloss.DiceLoss(reduction="avg"), ValueError, r"reduction must be one of 'mean', 'sum', 'none'"),
    ],
)
def test_bad_input_names_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- graphs

@pytest.mark.parametrize("name", SEGMENTATION_GRAPHS)
def test_graphs_avoid_one_hot_and_scatter(exported, name):
    import onnx

    model = onnx.load(str(exported(name)))
    ops = op_histogram(model)
    assert not banned_ops(model) and "ArgMax" not in ops, ops
    assert "Equal" in ops or name == "soft_dice_loss"


def _volume_entry(name: str, spatial=(6, 10, 12), classes=3):
    return volume(catalog.get(name), *spatial, classes=classes)


@pytest.mark.parametrize("name, exporter", [("dice_loss", "dynamo"), ("dice_score", "torchscript"),
                                            ("tversky_loss", "dynamo"), ("soft_dice_loss", "torchscript")])
def test_3d_volume_graph_exports_and_verifies(tmp_path, name, exporter):
    entry = _volume_entry(name)
    path = export_graph(entry, tmp_path, exporter=exporter).path
    rows = verify(path, entry=entry)
    assert rows and all(row.passed for row in rows), [row.failures for row in rows]
    case_names = {case.name for case in entry.verification_cases()}
    assert {"perfect-prediction", "empty-prediction-and-target", "confidently-wrong"} <= case_names


def test_jaccard_loss_graph_at_3d_needs_its_four_class_weights(tmp_path):
    entry = _volume_entry("jaccard_loss", classes=4)
    assert all(row.passed for row in verify(export_graph(entry, tmp_path).path, entry=entry))
    with pytest.raises(ValueError, match="class_weights has 4 entries but the input has C=3"):
        entry.build()(torch.randn(2, 3, 6, 10, 12), torch.zeros(2, 6, 10, 12, dtype=torch.int64))


def test_edge_cases_work_for_any_rank():
    rng = np.random.default_rng(0)
    for name, spatial in itertools.product(SEGMENTATION_GRAPHS, [(), (9,), (3, 4, 5)]):
        entry = catalog.get(name)
        logits = (2, 4, *spatial)
        target = logits if entry.dtype_of("target") == "float32" else (2, *spatial)
        shapes = {"logits": logits, "target": target}
        cases = [Case("random", entry.random_inputs(shapes, rng)), *entry.edge_cases(shapes, rng)]
        for case in cases:
            assert case.inputs["logits"].shape == logits and case.inputs["target"].shape == target, (name, case.name)
            module = entry.build()
            out = module(torch.from_numpy(case.inputs["logits"]), torch.from_numpy(case.inputs["target"]))
            assert torch.isfinite(out).all(), (name, case.name)
