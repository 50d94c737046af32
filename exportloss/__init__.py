"""exportloss: training losses and box-overlap metrics as static ONNX graphs.

Each metric comes three ways: a float64 eager reference (:mod:`exportloss.reference`), a
trace-friendly module (this package's top level), and a catalog entry (:mod:`exportloss.catalog`)
that :mod:`exportloss.export` writes to ONNX and :mod:`exportloss.verify` checks in onnxruntime.
"""

__version__ = "0.1.0"

from .boxes import BOX_FORMATS, convert_boxes
from .arcface import ANGULAR_MARGINS, ArcFaceLoss, ArcSoftmax, CosFaceLoss
from .center_loss import CenterLoss, CenterUpdate, center_update
from .focal_loss import FocalLoss, SigmoidFocalLoss
from .dice import SEGMENTATION_MODES, DiceLoss, DiceScore, SoftDiceLoss, TverskyLoss, dice_score
from .iou import IOU_KINDS, AlignedIoU, PairwiseIoU, aligned_iou, pairwise_iou
from .iou_loss import IoULoss
from .assign import Assignment, MaxIoUAssigner, max_iou_assign
from .match_metrics import MatchMetrics, Metrics, match_metrics
from .nms import NMS_KINDS, ClusterNMS, Detections, FastNMS, cluster_nms, fast_nms

__all__ = [
    "ANGULAR_MARGINS",
    "ArcFaceLoss",
    "ArcSoftmax",
    "CenterLoss",
    "CenterUpdate",
    "CosFaceLoss",
    "FocalLoss",
    "SigmoidFocalLoss",
    "center_update",
    "BOX_FORMATS",
    "IOU_KINDS",
    "AlignedIoU",
    "IoULoss",
    "PairwiseIoU",
    "aligned_iou",
    "convert_boxes",
    "pairwise_iou",
    "SEGMENTATION_MODES",
    "DiceLoss",
    "DiceScore",
    "SoftDiceLoss",
    "TverskyLoss",
    "dice_score",
    "Assignment",
    "MaxIoUAssigner",
    "max_iou_assign",
    "MatchMetrics",
    "Metrics",
    "match_metrics",
    "NMS_KINDS",
    "ClusterNMS",
    "Detections",
    "FastNMS",
    "cluster_nms",
    "fast_nms",
]
