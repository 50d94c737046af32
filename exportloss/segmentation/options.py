"""The options of the overlap family (Dice, Jaccard, Tversky), written once as a validated frozen dataclass.

:class:`OverlapOptions` says how logits and targets become per-class sums, which score is made of them,
and how a loss is made of the scores; formulas and conventions in :mod:`exportloss.segmentation.dice`.
The keyword function :func:`exportloss.dice_score` and the modules (``DiceLoss``, ``TverskyLoss``, ...)
build one and keep it as ``module.options``; :mod:`exportloss.reference.segmentation` reads the same object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from ..ops.checks import check_choice, check_number
from ..ops.options import Options
from ..ops.reduction import check_reduction

SEGMENTATION_MODES = ("binary", "multiclass", "multilabel")
OVERLAP_SCORES = ("dice", "jaccard", "tversky")


@dataclasses.dataclass(frozen=True, kw_only=True)
class OverlapOptions(Options):
    """Options of the overlap scores and losses (keyword fields; module docstring of :mod:`exportloss.segmentation.dice`)."""

    mode: str = "multiclass"
    """``"binary"``, ``"multiclass"`` or ``"multilabel"``: the input shapes and the activation."""
    score: str = "dice"
    """``"dice"``, ``"jaccard"`` or ``"tversky"``."""
    alpha: float = 0.5
    """Tversky's weight of false positives ``P − I``, >= 0; unused by Dice and Jaccard."""
    beta: float = 0.5
    """Tversky's weight of false negatives ``T − I``, >= 0; unused by Dice and Jaccard."""
    gamma: float = 1.0
    """The loss is ``(1 − score) ** gamma`` per class (focal Tversky for ``gamma != 1``), > 0."""
    from_logits: bool = True
    """Apply softmax (multiclass) or sigmoid first; False when the input holds probabilities."""
    squared: bool = False
    """``Σ p²`` and ``Σ t²`` in the denominator (V-Net, MONAI's ``squared_pred``)."""
    smooth: float = 1e-5
    """> 0, added to numerator and denominator."""
    reduce_batch: bool = False
    """Pool each class's sums over the batch before dividing (scores ``[C]``)."""
    include_background: bool = True
    """Score channel 0; False drops it (not allowed in binary mode)."""
    ignore_index: int | None = None
    """Target value whose pixels are masked out of every sum."""
    class_weights: Sequence[float] | torch.Tensor | None = None
    """One non-negative weight per channel (``C`` entries, background included), multiplying the per-class
    losses; stored as a tuple of float32 values (the precision the loss applies them in)."""
    reduction: str = "mean"
    """``"mean"`` (weighted sum / number of per-class losses), ``"sum"`` or ``"none"``."""

    def __post_init__(self) -> None:
        check_choice("mode", self.mode, SEGMENTATION_MODES)
        check_choice("score", self.score, OVERLAP_SCORES)
        smooth = check_number("smooth", self.smooth, minimum=0.0, strict=True)
        if self.mode == "binary" and not self.include_background:
            raise ValueError("include_background=False needs mode 'multiclass' or 'multilabel'; binary mode has one class")
        check_reduction(self.reduction)
        self._normalise(
            smooth=smooth,
            class_weights=_checked_class_weights(self.class_weights),
            alpha=check_number("alpha", self.alpha, minimum=0.0),
            beta=check_number("beta", self.beta, minimum=0.0),
            gamma=check_number("gamma", self.gamma, minimum=0.0, strict=True),
        )


def _checked_class_weights(class_weights: Sequence[float] | torch.Tensor | None) -> tuple[float, ...] | None:
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.dim() != 1 or weights.numel() == 0:
        raise ValueError(f"class_weights must be a non-empty 1-D sequence, one weight per class; got shape {list(weights.shape)}")
    if not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"class_weights must be finite and >= 0; got {weights.tolist()}")
    return tuple(weights.tolist())
