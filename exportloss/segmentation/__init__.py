"""Segmentation losses and metric: Dice, soft Dice, Tversky losses and the Dice score.

Float64 references: :mod:`exportloss.reference.segmentation`; catalog entries: :mod:`exportloss.catalog.segmentation`.
"""

from .dice import SEGMENTATION_MODES, DiceLoss, DiceScore, SoftDiceLoss, TverskyLoss, dice_score

__all__ = ["SEGMENTATION_MODES", "DiceLoss", "DiceScore", "SoftDiceLoss", "TverskyLoss", "dice_score"]
