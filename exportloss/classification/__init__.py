"""Classification and embedding losses: focal losses, center loss (and its center update), ArcFace/CosFace.

Float64 references: :mod:`exportloss.reference.classification`; catalog entries: :mod:`exportloss.catalog.classification`.
"""

from .arcface import ANGULAR_MARGINS, ArcFaceLoss, ArcSoftmax, CosFaceLoss
from .center import CenterLoss, CenterUpdate, center_update
from .focal import FocalLoss, SigmoidFocalLoss

__all__ = [
    "ANGULAR_MARGINS", "ArcFaceLoss", "ArcSoftmax", "CosFaceLoss", "CenterLoss", "CenterUpdate", "center_update",
    "FocalLoss", "SigmoidFocalLoss",
]
