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

``smooth`` (> 0) enters exactly there, in numerator and denominator, and nowhere else. Hence the
empty-mask conventions: a class that is absent from both prediction and target scores exactly 1
(loss 0); a class absent from the target but predicted with mass ``P`` scores ``smooth / (P + smooth)``,
about 0; a sample whose pixels are all ignored scores 1 in every class (it still counts in the mean).

Ignored pixels (``target == ignore_index``) are masked: their prediction and target are multiplied
by 0, never dropped, so shapes stay static. In multiclass mode a label outside ``[0, C)`` that is not
``ignore_index`` is rejected in eager mode; inside an exported graph it has an all-zero one-hot row
(it counts as a pixel of no class).

Nothing branches on tensor values: Python branches depend only on options fixed at construction
and on static shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

from ..ops.checks import check_choice, check_float_tensor, check_label_tensor, check_labels_in_range, check_number
from ..ops.numerics import focal_power
from ..ops.reduction import check_reduction, reduce_loss

SEGMENTATION_MODES = ("binary", "multiclass", "multilabel")


class OverlapSums(NamedTuple):
    """Per-class sums ``I``, ``P`` and ``T`` (see the module docstring), each ``[B, C]`` or ``[C]``."""

    intersection: torch.Tensor
    prediction: torch.Tensor
    target: torch.Tensor


def overlap_sums(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "multiclass",
    from_logits: bool = True,
    squared: bool = False,
    reduce_batch: bool = False,
    ignore_index: int | None = None,
) -> OverlapSums:
    """The sums every score of the family is made of, over spatial axes (and the batch with ``reduce_batch``).

    Args:
        logits: prediction, shaped as described for ``mode`` in the module docstring.
        target: labels (multiclass) or a target shaped like ``logits`` (binary, multilabel).
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        from_logits: apply softmax (multiclass) or sigmoid (binary, multilabel) to ``logits`` first.
        squared: sum ``p²`` and ``t²`` instead of ``p`` and ``t`` in ``P`` and ``T``.
        reduce_batch: pool the batch into one sum per class.
        ignore_index: target value whose pixels are masked out, or None.

    Returns:
        :class:`OverlapSums` of ``[B, C]`` tensors (``[C]`` with ``reduce_batch``); ``C = 1`` in binary mode.
    """
    num_classes = _check_inputs(logits, target, mode, ignore_index)
    batch = logits.shape[0]
    flat = logits.reshape(batch, num_classes, -1)
    if mode == "multiclass":
        probs = _softmax_over_classes(flat) if from_logits else flat
        labels = target.reshape(batch, 1, -1)
        # Comparison with arange keeps OneHot/Scatter out of the graph (TensorRT, see the README).
        one_hot = labels == torch.arange(num_classes, device=labels.device).view(1, num_classes, 1)
        valid = None if ignore_index is None else labels != ignore_index
        truth = (one_hot if valid is None else one_hot & valid).to(probs.dtype)
        truth_squared = truth  # one-hot: t² = t
    else:
        probs = flat.sigmoid() if from_logits else flat
        truth = target.reshape(batch, num_classes, -1).to(probs.dtype)
        valid = None if ignore_index is None else target.reshape(batch, num_classes, -1) != ignore_index
        if valid is not None:
            truth = truth * valid.to(probs.dtype)
        truth_squared = truth * truth if squared else truth
    # truth is already 0 at ignored pixels, so only P needs the mask.
    probs_valid = probs if valid is None else probs * valid.to(probs.dtype)
    sums = OverlapSums(
        intersection=(probs * truth).sum(2),
        prediction=(probs_valid * probs_valid if squared else probs_valid).sum(2),
        target=truth_squared.sum(2),
    )
    # Pooling the small [B, C] sums afterwards is much faster in onnxruntime than one ReduceSum over axes (0, 2).
    return OverlapSums(*(s.sum(0) for s in sums)) if reduce_batch else sums


def dice_from_sums(sums: OverlapSums, smooth: float, jaccard: bool = False) -> torch.Tensor:
    """``(2I + smooth) / (P + T + smooth)``, or ``(I + smooth) / (P + T − I + smooth)`` with ``jaccard``."""
    inter = sums.intersection
    if jaccard:
        return (inter + smooth) / (sums.prediction + sums.target - inter + smooth)
    return (2.0 * inter + smooth) / (sums.prediction + sums.target + smooth)


def tversky_from_sums(sums: OverlapSums, smooth: float, alpha: float, beta: float) -> torch.Tensor:
    """``(I + smooth) / (I + α·(P − I) + β·(T − I) + smooth)``."""
    inter = sums.intersection
    false_pos = sums.prediction - inter
    false_neg = sums.target - inter
    return (inter + smooth) / (inter + alpha * false_pos + beta * false_neg + smooth)


def dice_score(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str = "multiclass",
    from_logits: bool = True,
    squared: bool = False,
    jaccard: bool = False,
    smooth: float = 1e-5,
    reduce_batch: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
) -> torch.Tensor:
    """Per-class soft Dice (or Jaccard) scores in ``[0, 1]``, 1 being perfect; arguments as for :class:`DiceLoss`.

    Returns:
        ``[B, C]`` (``[C]`` with ``reduce_batch``), without channel 0 when ``include_background=False``.
    """
    _check_options(mode, smooth, include_background)
    sums = overlap_sums(logits, target, mode, from_logits, squared, reduce_batch, ignore_index)
    return _scored_classes(dice_from_sums(sums, smooth, jaccard), include_background)


class _SegmentationOverlap(nn.Module):
    """Options shared by every graph of the family: how inputs become the per-class sums."""

    def __init__(
        self,
        mode: str,
        from_logits: bool,
        squared: bool,
        smooth: float,
        reduce_batch: bool,
        include_background: bool,
        ignore_index: int | None,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.from_logits = bool(from_logits)
        self.squared = bool(squared)
        self.smooth = float(smooth)
        self.reduce_batch = bool(reduce_batch)
        self.include_background = bool(include_background)
        self.ignore_index = ignore_index
        _check_options(mode, smooth, include_background)
        if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
            raise TypeError(f"ignore_index must be an int or None; got {ignore_index!r}")

    def scores(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-class scores ``[B, C']`` (``[C']`` with ``reduce_batch``), background dropped if asked."""
        sums = overlap_sums(logits, target, self.mode, self.from_logits, self.squared, self.reduce_batch, self.ignore_index)
        return _scored_classes(self.score_from_sums(sums), self.include_background)

    def score_from_sums(self, sums: OverlapSums) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, from_logits={self.from_logits}, squared={self.squared}, smooth={self.smooth}, "
            f"reduce_batch={self.reduce_batch}, include_background={self.include_background}, "
            f"ignore_index={self.ignore_index}"
        )


class DiceScore(_SegmentationOverlap):
    """Module form of :func:`dice_score`: ``forward(logits, target) -> [B, C']`` (``[C']`` with ``reduce_batch``).

    A monitoring metric for deployment: the per-class scores themselves, no loss and no reduction.
    """

    def __init__(
        self,
        mode: str = "multiclass",
        from_logits: bool = True,
        squared: bool = False,
        jaccard: bool = False,
        smooth: float = 1e-5,
        reduce_batch: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
    ) -> None:
        super().__init__(mode, from_logits, squared, smooth, reduce_batch, include_background, ignore_index)
        self.jaccard = bool(jaccard)

    def score_from_sums(self, sums: OverlapSums) -> torch.Tensor:
        return dice_from_sums(sums, self.smooth, self.jaccard)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.scores(logits, target)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, jaccard={self.jaccard}"


class _OverlapLoss(_SegmentationOverlap):
    """``loss = (1 − score) ** gamma`` per class, times ``class_weights``, then the reduction."""

    gamma = 1.0

    def __init__(self, mode: str, from_logits: bool, squared: bool, smooth: float, reduce_batch: bool,
                 include_background: bool, ignore_index: int | None,
                 class_weights: Sequence[float] | torch.Tensor | None, reduction: str) -> None:
        super().__init__(mode, from_logits, squared, smooth, reduce_batch, include_background, ignore_index)
        self.reduction = check_reduction(reduction)
        self.register_buffer("class_weights", _check_class_weights(class_weights), persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weights = self.class_weights
        if weights is not None:
            num_classes = 1 if self.mode == "binary" else logits.shape[1]
            if weights.numel() != num_classes:
                raise ValueError(
                    f"class_weights has {weights.numel()} entries but the input has C={num_classes} classes; "
                    "give one weight per channel, background included"
                )
            weights = _scored_classes(weights.to(logits.dtype), self.include_background)
        loss = 1.0 - self.scores(logits, target)
        if self.gamma != 1.0:
            # Rounding can leave 1 − score a hair below 0, where a fractional power is NaN; a perfect
            # class (1 − score = 0) needs the gradient-safe power when gamma < 1.
            loss = focal_power(loss.clamp_min(0.0), self.gamma)
        return reduce_loss(loss, self.reduction, weights)

    def extra_repr(self) -> str:
        weights = None if self.class_weights is None else self.class_weights.tolist()
        return f"{super().extra_repr()}, class_weights={weights}, reduction={self.reduction!r}"


class DiceLoss(_OverlapLoss):
    """``1 − dice`` (or ``1 − jaccard``) per sample and class, then the class-weighted reduction.

    Args:
        mode: ``"binary"``, ``"multiclass"`` or ``"multilabel"`` (input shapes in the module docstring).
        from_logits: apply softmax (multiclass) or sigmoid first; False when the input holds probabilities.
        squared: ``Σ p²`` and ``Σ t²`` in the denominator (V-Net, MONAI's ``squared_pred``).
        jaccard: score with Jaccard (soft IoU) instead of Dice.
        smooth: > 0, added to numerator and denominator (formulas in the module docstring).
        reduce_batch: pool each class's sums over the batch before dividing (scores ``[C]``).
        include_background: score channel 0; False drops it (not allowed in binary mode).
        ignore_index: target value whose pixels are masked out of every sum.
        class_weights: one non-negative weight per channel (``C`` entries, background included; its
            weight is unused when the background is dropped). They multiply the per-class losses.
        reduction: ``"mean"`` (weighted sum / number of per-class losses), ``"sum"`` or ``"none"``
            (``[B, C']``, or ``[C']`` with ``reduce_batch``).

    Shapes:
        ``forward(logits, target)``: a scalar, or the per-class losses with ``reduction="none"``.
    """

    def __init__(
        self,
        mode: str = "multiclass",
        from_logits: bool = True,
        squared: bool = False,
        jaccard: bool = False,
        smooth: float = 1e-5,
        reduce_batch: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(mode, from_logits, squared, smooth, reduce_batch, include_background, ignore_index,
                         class_weights, reduction)
        self.jaccard = bool(jaccard)

    def score_from_sums(self, sums: OverlapSums) -> torch.Tensor:
        return dice_from_sums(sums, self.smooth, self.jaccard)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, jaccard={self.jaccard}"


class SoftDiceLoss(DiceLoss):
    """The seed's soft Dice loss, fixed: ``1 − (2·Σ p·t + smooth) / (Σ p² + Σ t² + smooth)`` over the whole batch.

    ``forward(input [B, ...], target [B, ...]) -> []``: ``input`` holds probabilities, or logits with
    ``sigmoid=True``; ``target`` has the same shape. Sums run over every element of the batch (one
    pooled score). Two empty masks give loss 0 (the seed gave −1: its ``smooth`` was doubled in the
    numerator only). This is ``DiceLoss(mode="binary", squared=True, reduce_batch=True)``.
    """

    def __init__(self, smooth: float = 1.0, sigmoid: bool = False) -> None:
        super().__init__(mode="binary", from_logits=sigmoid, squared=True, smooth=smooth, reduce_batch=True)


class TverskyLoss(_OverlapLoss):
    """``(1 − tversky) ** gamma`` per sample and class, then the class-weighted reduction.

    ``alpha`` weighs false positives ``P − I`` and ``beta`` false negatives ``T − I`` (MONAI's and
    segmentation_models_pytorch's convention); ``alpha = beta = 0.5`` is Dice with ``smooth`` doubled,
    ``alpha = beta = 1`` is Jaccard. ``gamma != 1`` gives the focal Tversky loss, with the power
    taken per class before the reduction (``gamma = 0.75`` is the focal Tversky paper's setting; for
    ``gamma < 1`` the power is :func:`exportloss.ops.numerics.focal_power`, so a perfectly scored class has
    a zero gradient, not NaN). The other arguments are those of :class:`DiceLoss`.
    """

    def __init__(
        self,
        alpha: float = 0.5,
        beta: float = 0.5,
        gamma: float = 1.0,
        mode: str = "multiclass",
        from_logits: bool = True,
        smooth: float = 1e-5,
        reduce_batch: bool = False,
        include_background: bool = True,
        ignore_index: int | None = None,
        class_weights: Sequence[float] | torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(mode, from_logits, False, smooth, reduce_batch, include_background, ignore_index,
                         class_weights, reduction)
        self.alpha = check_number("alpha", alpha, minimum=0.0)
        self.beta = check_number("beta", beta, minimum=0.0)
        self.gamma = check_number("gamma", gamma, minimum=0.0, strict=True)

    def score_from_sums(self, sums: OverlapSums) -> torch.Tensor:
        return tversky_from_sums(sums, self.smooth, self.alpha, self.beta)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, {super().extra_repr()}"


def _softmax_over_classes(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over axis 1 of ``[B, C, N]``, written out: onnxruntime's Softmax on a non-last axis
    transposes internally and runs about 4x slower than these five elementwise and reduce nodes."""
    # The shift is a constant of the softmax, so it carries no gradient.
    shifted = torch.exp(logits - logits.amax(dim=1, keepdim=True).detach())
    return shifted / shifted.sum(dim=1, keepdim=True)


def _scored_classes(per_class: torch.Tensor, include_background: bool) -> torch.Tensor:
    """Drop channel 0 (the last axis of scores and weights) unless the background is scored."""
    if include_background:
        return per_class
    if per_class.shape[-1] < 2:
        raise ValueError("include_background=False needs at least 2 classes (channel 0 is the background)")
    return per_class[..., 1:]


def _check_options(mode: str, smooth: float, include_background: bool) -> None:
    check_choice("mode", mode, SEGMENTATION_MODES)
    check_number("smooth", smooth, minimum=0.0, strict=True)
    if mode == "binary" and not include_background:
        raise ValueError("include_background=False needs mode 'multiclass' or 'multilabel'; binary mode has one class")


def _check_class_weights(class_weights: Sequence[float] | torch.Tensor | None) -> torch.Tensor | None:
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.dim() != 1 or weights.numel() == 0:
        raise ValueError(f"class_weights must be a non-empty 1-D sequence, one weight per class; got shape {list(weights.shape)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"class_weights must be finite and >= 0; got {weights.tolist()}")
    return weights


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
