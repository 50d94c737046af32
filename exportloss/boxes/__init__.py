"""Box overlap family: box formats, the IoU family (IoU, GIoU, DIoU, CIoU, EIoU, SIoU, α-IoU) pairwise and
aligned, IoU losses, and rotated boxes (exact polygon IoU, ProbIoU).

Float64 references: :mod:`exportloss.reference.boxes`; catalog entries: :mod:`exportloss.catalog.boxes`.
"""

from .formats import BOX_FORMATS, convert_boxes
from .iou import IOU_KINDS, AlignedIoU, PairwiseIoU, aligned_iou, pairwise_iou, pairwise_iou_and_distance
from .iou_loss import IoULoss
from .rotated import (
    ROTATED_KINDS, RotatedAlignedIoU, RotatedIoULoss, RotatedPairwiseIoU, polygon_to_rotated, probiou,
    rotated_aligned_iou, rotated_pairwise_iou, rotated_to_polygon, to_mmrotate,
)

__all__ = [
    "BOX_FORMATS", "IOU_KINDS", "AlignedIoU", "IoULoss", "PairwiseIoU", "aligned_iou", "convert_boxes", "pairwise_iou",
    "pairwise_iou_and_distance",
    "ROTATED_KINDS", "RotatedAlignedIoU", "RotatedIoULoss", "RotatedPairwiseIoU", "polygon_to_rotated", "probiou",
    "rotated_aligned_iou", "rotated_pairwise_iou", "rotated_to_polygon", "to_mmrotate",
]
