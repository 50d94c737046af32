"""Segmentation losses and metric: one overlap loss (Dice, Jaccard, Tversky scores) and the Dice score.

Their options are one validated frozen dataclass, :class:`~exportloss.segmentation.options.OverlapOptions`.
Float64 references: :mod:`exportloss.reference.segmentation`; catalog entries: :mod:`exportloss.catalog.segmentation`.
"""

from .dice import DiceLoss, DiceScore, OverlapLoss, OverlapScore, SoftDiceLoss, TverskyLoss, dice_score, overlap_scores
from .options import OVERLAP_SCORES, SEGMENTATION_MODES, OverlapOptions

__all__ = [
    "SEGMENTATION_MODES", "DiceLoss", "DiceScore", "SoftDiceLoss", "TverskyLoss", "dice_score",
    "OVERLAP_SCORES", "OverlapLoss", "OverlapOptions", "OverlapScore", "overlap_scores",
]
