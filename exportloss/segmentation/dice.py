"""The Dice family for segmentation as trace-friendly modules: soft Dice, Dice / Jaccard, Tversky
(focal Tversky with ``gamma > 1``) and a per-class Dice score metric.

Input modes (``B`` samples, ``C`` classes, ``*spatial`` any number of spatial dimensions):

* ``"multiclass"``: ``logits [B, C, *spatial]`` and integer labels ``target [B, *spatial]``
  (int64 or int32); probabilities are ``softmax`` over ``C``, the target is one-hot by comparison
  with ``arange(C)`` (no OneHot or Scatter operator).
* ``"multilabel"``: ``logits [B, C, *spatial]`` and a floating ``target`` of the same shape;
  each channel is an independent ``sigmoid`` class.
* ``"binary"``: ``logits [B, *]`` and a floating ``target`` of the same shape; everything after the
  batch axis is one class (``C = 1``).

With ``from_logits=False`` the first input already holds probabilities and no activation is applied.

Per class ``c``, with probabilities ``p`` and targets ``t`` over the valid (not ignored) pixels of
one sample (of the whole batch with ``reduce_batch=True``)::

    I = Σ p·t        P = Σ p   (Σ p² with squared=True)        T = Σ t   (Σ t² with squared=True)

    dice    = (2·I + smooth) / (P + T + smooth)
    jaccard = (I + smooth) / (P + T − I + smooth)
    tversky = (I + smooth) / (I + α·(P − I) + β·(T − I) + smooth)     α weighs false positives, β false negatives

The losses ``1 − score`` are computed from the mismatch itself, never as ``1 − score``: a near-perfect class has
a loss far below float32's spacing near 1 (1e-6 would keep 1 digit), and ``P − I``, ``T − I`` cancel the same way.
With ``q = 1 − p`` formed without rounding ``p`` (``σ(−x)``; the softmax mass of the other classes; ``1 − p`` for
given probabilities), the per-class mismatch is a sum of non-negative terms::

    W = Σ α·p·(1 − t) + β·q·t             (W = α·(P − I) + β·(T − I); α = β = 1 for Dice and Jaccard)
    W = Σ (p − t)·(α·p − β·t)             with squared=True, p − t taken as (1 − t) − q where t >= 1/2

    1 − dice = W / (2·I + W + smooth)   1 − jaccard = W / (I + W + smooth)   1 − tversky = W / (I + W + smooth)

(squared with ``α != β`` is the one case whose terms can differ in sign). ``smooth`` (> 0) enters exactly there,
in numerator and denominator, and nowhere else. Hence the
empty-mask conventions: a class that is absent from both prediction and target scores exactly 1
(loss 0); a class absent from the target but predicted with mass ``P`` scores ``smooth / (P + smooth)``,
about 0; a sample whose pixels are all ignored scores 1 in every class (it still counts in the mean).

Ignored pixels (``target == ignore_index``) are masked: their prediction and target are multiplied
by 0, never dropped, so shapes stay static. In multiclass mode a label outside ``[0, C)`` that is not
``ignore_index`` is rejected in eager mode; inside an exported graph it has an all-zero one-hot row
(it counts as a pixel of no class).

Options: one :class:`~exportloss.segmentation.options.OverlapOptions` holds them all, validated once.
:func:`overlap_scores` and :class:`OverlapScore` give the per-class scores, :class:`OverlapLoss`
``(1 − score) ** gamma`` per class, weighted and reduced; ``DiceScore``, ``dice_score``, ``DiceLoss``,
``SoftDiceLoss`` and ``TverskyLoss`` are these with the score (and defaults) named.

Nothing branches on tensor values: Python branches depend only on options fixed at construction
and on static shapes.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ..ops.checks import check_float_tensor, check_label_tensor, check_labels_in_range
from ..ops.non_finite import non_finite_marker
from ..ops.numerics import focal_power, sigmoid
from ..ops.options import DEFAULT
from ..ops.reduction import reduce_loss
from ..ops.select import select
from .options import SEGMENTATION_MODES, OverlapOptions  # noqa: F401 (SEGMENTATION_MODES: exportloss.segmentation.dice's too)


class OverlapSums(NamedTuple):
    """Per-class sums ``I``, ``P``, ``T`` and the mismatch ``W`` (see the module docstring), each ``[B, C]`` or ``[C]``;
    ``mismatch`` is ``None`` unless asked for (Tversky's score always asks)."""

    intersection: torch.Tensor
    prediction: torch.Tensor
    target: torch.Tensor
    mismatch: torch.Tensor | None = None


def overlap_sums(logits: torch.Tensor, target: torch.Tensor, options: OverlapOptions, mismatch: bool = False) -> OverlapSums:
    """The sums every score is made of, over spatial axes (and the batch with ``options.reduce_batch``).

    Args:
        logits: prediction, shaped as described for ``options.mode`` in the module docstring.
        target: labels (multiclass) or a target shaped like ``logits`` (binary, multilabel).
        options: ``mode``, ``from_logits``, ``squared``, ``reduce_batch`` and ``ignore_index`` apply (``score``,
            ``alpha`` and ``beta`` to the mismatch).
        mismatch: also sum the mismatch ``W`` (a loss needs it; always done for Tversky).

    Returns:
        :class:`OverlapSums` of ``[B, C]`` tensors (``[C]`` with ``reduce_batch``); ``C = 1`` in binary mode.
    """
    mode, squared, ignore_index = options.mode, options.squared, options.ignore_index
    num_classes = _check_inputs(logits, target, mode, ignore_index)
    batch = logits.shape[0]
    flat = logits.reshape(batch, num_classes, -1)
    if mode == "multiclass":
        probs, complement = _softmax_and_complement(flat) if options.from_logits else (flat, 1.0 - flat)
        labels = target.reshape(batch, 1, -1)
        # Comparison with arange keeps OneHot/Scatter out of the graph (TensorRT, see the README).
        one_hot = labels == torch.arange(num_classes, device=labels.device).view(1, num_classes, 1)
        valid = None if ignore_index is None else labels != ignore_index
        truth = (one_hot if valid is None else one_hot & valid).to(probs.dtype)
        truth_squared = truth  # one-hot: t² = t
    else:
        # Relatively exact: Σp can be as small as smooth, and Σ(1 − p) as small as a near-perfect loss.
        probs, complement = (sigmoid(flat), sigmoid(-flat)) if options.from_logits else (flat, 1.0 - flat)
        truth = target.reshape(batch, num_classes, -1).to(probs.dtype)
        valid = None if ignore_index is None else target.reshape(batch, num_classes, -1) != ignore_index
        if valid is not None:
            truth = truth * valid.to(probs.dtype)
        truth_squared = truth * truth if squared else truth
    # truth is already 0 at ignored pixels, so only P needs the mask.
    probs_valid = probs if valid is None else probs * valid.to(probs.dtype)
    # The non-finite policy: a sigmoid or softmax would turn ±inf into an honest 0 or 1; the sample's sums become NaN.
    marker = non_finite_marker(flat, (1, 2)).unsqueeze(1)
    errors = None
    if mismatch or options.score == "tversky":
        errors = _mismatch(probs_valid, complement, truth, options).sum(2) + marker
    sums = OverlapSums(
        intersection=(probs * truth).sum(2) + marker,
        prediction=(probs_valid * probs_valid if squared else probs_valid).sum(2),
        target=truth_squared.sum(2),
        mismatch=errors,
    )
    # Pooling the small [B, C] sums afterwards is much faster in onnxruntime than one ReduceSum over axes (0, 2).
    return OverlapSums(*(None if s is None else s.sum(0) for s in sums)) if options.reduce_batch else sums


def _mismatch(probs: torch.Tensor, complement: torch.Tensor, truth: torch.Tensor, options: OverlapOptions) -> torch.Tensor:
    """Per-pixel terms of ``W`` (module docstring): ``probs`` masked, ``complement`` = 1 − p relatively exact."""
    alpha, beta = (options.alpha, options.beta) if options.score == "tversky" else (1.0, 1.0)
    if not options.squared:
        return alpha * probs * (1.0 - truth) + beta * complement * truth
    gap = select(truth >= 0.5, (1.0 - truth) - complement, probs - truth)  # p − t, exact where p ≈ t ≈ 1
    return alpha * gap * gap if alpha == beta else gap * (alpha * probs - beta * truth)


def score_from_sums(sums: OverlapSums, options: OverlapOptions) -> torch.Tensor:
    """``options.score`` of the sums (formulas in the module docstring; ``smooth``, ``alpha``, ``beta`` apply)."""
    inter, smooth = sums.intersection, options.smooth
    if options.score == "dice":
        return (2.0 * inter + smooth) / (sums.prediction + sums.target + smooth)
    if options.score == "jaccard":
        return (inter + smooth) / (sums.prediction + sums.target - inter + smooth)
    return (inter + smooth) / (inter + sums.mismatch + smooth)


def loss_from_sums(sums: OverlapSums, options: OverlapOptions) -> torch.Tensor:
    """``1 − score`` from the mismatch (module docstring): relatively exact however near-perfect the score is.

    The denominators are written with ``W`` too (``P + T = 2·I + W``, ``P + T − I = I + W``): a sum of ``W`` over
    itself plus ``I`` and smooth, so a confidently wrong class (``I ≈ 0``) gets ``W / (W + smooth) ≈ 1`` to an ulp,
    where ``W / (P + T + smooth)`` would divide two differently rounded sums of 4096 terms (4e-6 off)."""
    inter = 2.0 * sums.intersection if options.score == "dice" else sums.intersection
    return sums.mismatch / (inter + sums.mismatch + options.smooth)


def overlap_scores(logits: torch.Tensor, target: torch.Tensor, options: OverlapOptions) -> torch.Tensor:
    """Per-class scores in ``[0, 1]`` (1 is perfect): ``[B, C']`` (``[C']`` with ``reduce_batch``), without
    channel 0 when ``include_background=False``. ``gamma``, ``class_weights`` and ``reduction`` do not apply."""
    return _scored_classes(score_from_sums(overlap_sums(logits, target, options), options), options.include_background)


def dice_score(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = DEFAULT,
    from_logits: bool = DEFAULT,
    squared: bool = DEFAULT,
    jaccard: bool = False,
    smooth: float = DEFAULT,
    reduce_batch: bool = DEFAULT,
    include_background: bool = DEFAULT,
    ignore_index: int | None = DEFAULT,
    *,
    options: OverlapOptions | None = None,
) -> torch.Tensor:
    """Per-class soft Dice (or Jaccard) scores in ``[0, 1]``, 1 being perfect; arguments as for :class:`DiceLoss`
    (defaults those of :class:`~exportloss.segmentation.options.OverlapOptions`: multiclass, from logits, smooth 1e-5).

    ``options``: a prepared :class:`~exportloss.segmentation.options.OverlapOptions` instead of the keywords (its
    ``score`` must be ``"dice"`` or ``"jaccard"``; ``jaccard=True`` with it is an error, as is any other keyword).

    Returns:
        ``[B, C]`` (``[C]`` with ``reduce_batch``), without channel 0 when ``include_background=False``.
    """
    if not isinstance(jaccard, bool):
        raise TypeError(f"jaccard must be True or False; got {jaccard!r}")
    keywords = dict(mode=mode, from_logits=from_logits, squared=squared, smooth=smooth, reduce_batch=reduce_batch,
                    include_background=include_background, ignore_index=ignore_index)
    if options is None:
        keywords["score"] = "jaccard" if jaccard else "dice"
    elif jaccard:
        keywords["jaccard"] = jaccard  # named in the "not both" error
    options = OverlapOptions.resolve(options, **keywords)
    if options.score not in ("dice", "jaccard"):
        raise ValueError(f"dice_score scores Dice or Jaccard; options.score is {options.score!r} (use overlap_scores)")
    return overlap_scores(logits, target, options)


class OverlapScore(nn.Module):
    """Module form of :func:`overlap_scores`: ``forward(logits, target) -> [B, C']`` (``[C']`` with ``reduce_batch``).

    Takes an :class:`~exportloss.segmentation.options.OverlapOptions` or its fields as keywords; kept as
    ``self.options``. A monitoring metric for deployment: the per-class scores themselves, no loss and no reduction.
    """

    def __init__(self, options: OverlapOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = OverlapOptions.resolve(options, **keywords)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return overlap_scores(logits, target, self.options)

    def extra_repr(self) -> str:
        return self.options.fields_repr()


class DiceScore(OverlapScore):
    """Per-class Dice (or Jaccard) scores, :func:`dice_score` as a module: ``DiceScore(mode, jaccard=..., **options)``
    with the other :class:`~exportloss.segmentation.options.OverlapOptions` fields as keywords."""

    def __init__(self, mode: str = "multiclass", *, jaccard: bool = False, **options) -> None:
        super().__init__(mode=mode, score="jaccard" if jaccard else "dice", **options)


class OverlapLoss(nn.Module):
    """``loss = (1 − score) ** gamma`` per sample and class, times ``class_weights``, then the reduction.

    Takes an :class:`~exportloss.segmentation.options.OverlapOptions` or its fields as keywords; kept as
    ``self.options``. ``forward(logits, target)``: a scalar, or the per-class losses ``[B, C']`` (``[C']``
    with ``reduce_batch``) with ``reduction="none"``.
    """

    def __init__(self, options: OverlapOptions | None = None, **keywords) -> None:
        super().__init__()
        self.options = OverlapOptions.resolve(options, **keywords)
        weights = self.options.class_weights
        self.register_buffer("class_weights", None if weights is None else torch.tensor(weights, dtype=torch.float32),
                             persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        options, weights = self.options, self.class_weights
        if weights is not None:
            num_classes = 1 if options.mode == "binary" else logits.shape[1]
            if weights.numel() != num_classes:
                raise ValueError(
                    f"class_weights has {weights.numel()} entries but the input has C={num_classes} classes; "
                    "give one weight per channel, background included"
                )
            weights = _scored_classes(weights.to(logits.dtype), options.include_background)
        loss = _scored_classes(loss_from_sums(overlap_sums(logits, target, options, mismatch=True), options),
                               options.include_background)
        if options.gamma != 1.0:
            # Squared Tversky with alpha != beta can leave the mismatch a hair below 0, where a fractional power is
            # NaN; a perfect class (loss 0) needs the gradient-safe power when gamma < 1.
            loss = focal_power(loss.clamp_min(0.0), options.gamma)
        return reduce_loss(loss, options.reduction, weights)

    def extra_repr(self) -> str:
        return self.options.fields_repr()


class DiceLoss(OverlapLoss):
    """``1 − dice`` (or ``1 − jaccard``) per sample and class, then the class-weighted reduction.

    ``DiceLoss(mode="multiclass", jaccard=False, **options)``: ``jaccard`` scores with Jaccard (soft IoU)
    instead of Dice; the other keywords are fields of :class:`~exportloss.segmentation.options.OverlapOptions`
    (``from_logits``, ``squared``, ``smooth``, ``reduce_batch``, ``include_background``, ``ignore_index``,
    ``class_weights``, ``reduction``; documented there), with its defaults.

    Shapes:
        ``forward(logits, target)``: a scalar, or the per-class losses with ``reduction="none"``.
    """

    def __init__(self, mode: str = "multiclass", *, jaccard: bool = False, **options) -> None:
        super().__init__(mode=mode, score="jaccard" if jaccard else "dice", **options)


class SoftDiceLoss(DiceLoss):
    """The seed's soft Dice loss, fixed: ``1 − (2·Σ p·t + smooth) / (Σ p² + Σ t² + smooth)`` over the whole batch.

    ``forward(input [B, ...], target [B, ...]) -> []``: ``input`` holds probabilities, or logits with
    ``sigmoid=True``; ``target`` has the same shape. Sums run over every element of the batch (one
    pooled score). Two empty masks give loss 0 (the seed gave −1: its ``smooth`` was doubled in the
    numerator only). This is ``DiceLoss(mode="binary", squared=True, reduce_batch=True)``.
    """

    def __init__(self, smooth: float = 1.0, sigmoid: bool = False) -> None:
        super().__init__("binary", from_logits=sigmoid, squared=True, smooth=smooth, reduce_batch=True)


class TverskyLoss(OverlapLoss):
    """``(1 − tversky) ** gamma`` per sample and class, then the class-weighted reduction.

    ``alpha`` weighs false positives ``P − I`` and ``beta`` false negatives ``T − I`` (MONAI's and
    segmentation_models_pytorch's convention); ``alpha = beta = 0.5`` is Dice with ``smooth`` doubled,
    ``alpha = beta = 1`` is Jaccard. ``gamma != 1`` gives the focal Tversky loss, with the power
    taken per class before the reduction (``gamma = 0.75`` is the focal Tversky paper's setting; for
    ``gamma < 1`` the power is :func:`exportloss.ops.numerics.focal_power`, so a perfectly scored class has
    a zero gradient, not NaN). ``TverskyLoss(alpha=0.5, beta=0.5, gamma=1.0, mode="multiclass", **options)``:
    the other keywords are those of :class:`DiceLoss`.
    """

    def __init__(self, alpha: float = 0.5, beta: float = 0.5, gamma: float = 1.0, mode: str = "multiclass", **options) -> None:
        super().__init__(score="tversky", alpha=alpha, beta=beta, gamma=gamma, mode=mode, **options)


def _softmax_and_complement(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over axis 1 of ``[B, C, N]`` and ``1 − softmax`` as the other classes' mass: the classes before
    and the classes after each one, each an exclusive running sum of non-negative terms (``1 − p`` would keep
    no digits of a near-certain class's remainder; a ``C x C`` MatMul would let TF32 round it on GPUs).
    Written out: onnxruntime's Softmax on a non-last axis transposes internally and runs about 4x slower than
    these elementwise, reduce and running-sum nodes."""
    # The shift is a constant of the softmax, so it carries no gradient.
    shifted = torch.exp(logits - logits.amax(dim=1, keepdim=True).detach())
    total = shifted.sum(dim=1, keepdim=True)
    none = torch.zeros_like(shifted[:, :1])
    before = torch.cat([none, torch.cumsum(shifted[:, :-1], dim=1)], dim=1)
    after = torch.cat([none, torch.cumsum(shifted.flip(1)[:, :-1], dim=1)], dim=1).flip(1)
    return shifted / total, (before + after) / total


def _scored_classes(per_class: torch.Tensor, include_background: bool) -> torch.Tensor:
    """Drop channel 0 (the last axis of scores and weights) unless the background is scored."""
    if include_background:
        return per_class
    if per_class.shape[-1] < 2:
        raise ValueError("include_background=False needs at least 2 classes (channel 0 is the background)")
    return per_class[..., 1:]


def _check_inputs(logits: torch.Tensor, target: torch.Tensor, mode: str, ignore_index: int | None) -> int:
    """Shapes and dtypes for ``mode``; returns the number of classes ``C``."""
    check_float_tensor("logits", logits)
    min_dim = 1 if mode == "binary" else 2
    if logits.dim() < min_dim or logits.shape[0] == 0:
        layout = "[B, ...]" if mode == "binary" else "[B, C, *spatial]"
        raise ValueError(f"logits must have shape {layout} with B >= 1 for mode={mode!r}; got {list(logits.shape)}")
    if mode == "multiclass":
        check_label_tensor("target", target)
        num_classes = logits.shape[1]
        expected = (logits.shape[0], *logits.shape[2:])
        if tuple(target.shape) != expected:
            raise ValueError(
                f"target must have shape [B, *spatial] = {list(expected)} for logits {list(logits.shape)} "
                f"in mode='multiclass'; got {list(target.shape)}"
            )
        check_labels_in_range("target", target, num_classes, ignore_index)
        return num_classes
    check_float_tensor("target", target)
    if target.shape != logits.shape:
        raise ValueError(
            f"target must have the shape of logits {list(logits.shape)} in mode={mode!r}; got {list(target.shape)}"
        )
    return 1 if mode == "binary" else logits.shape[1]
