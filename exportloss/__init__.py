"""exportloss: training losses and box-overlap metrics as static ONNX graphs.

Each metric comes three ways: a float64 eager reference (:mod:`exportloss.reference`), a
trace-friendly module (this package's top level), and a catalog entry (:mod:`exportloss.catalog`)
that :mod:`exportloss.export` writes to ONNX and :mod:`exportloss.verify` checks on every backend
(:mod:`exportloss.backends`: onnxruntime's CPU, CUDA and TensorRT providers, TensorRT engines).
"""

__version__ = "0.1.0"

# Box overlap family
from .boxes import BOX_FORMATS, convert_boxes
from .iou import IOU_KINDS, AlignedIoU, PairwiseIoU, aligned_iou, pairwise_iou, pairwise_iou_and_distance
from .iou_loss import IoULoss

# Classification and embedding losses
from .focal_loss import FocalLoss, SigmoidFocalLoss
from .center_loss import CenterLoss, CenterUpdate, center_update
from .arcface import ANGULAR_MARGINS, ArcFaceLoss, ArcSoftmax, CosFaceLoss

# Segmentation losses and metric
from .dice import SEGMENTATION_MODES, DiceLoss, DiceScore, SoftDiceLoss, TverskyLoss, dice_score

# Detection post-processing
from .assign import Assignment, MaxIoUAssigner, max_iou_assign
from .nms import NMS_KINDS, ClusterNMS, Detections, FastNMS, cluster_nms, fast_nms
from .match_metrics import MatchMetrics, Metrics, match_metrics

# Rotated boxes
from .rotated import (
    ROTATED_KINDS, RotatedAlignedIoU, RotatedIoULoss, RotatedPairwiseIoU, polygon_to_rotated, probiou,
    rotated_aligned_iou, rotated_pairwise_iou, rotated_to_polygon, to_mmrotate,
)
from .rotated_nms import RotatedClusterNMS, rotated_cluster_nms

__all__ = [
    "BOX_FORMATS", "IOU_KINDS", "AlignedIoU", "IoULoss", "PairwiseIoU", "aligned_iou", "convert_boxes", "pairwise_iou",
    "pairwise_iou_and_distance",
    "FocalLoss", "SigmoidFocalLoss", "CenterLoss", "CenterUpdate", "center_update",
    "ANGULAR_MARGINS", "ArcFaceLoss", "ArcSoftmax", "CosFaceLoss",
    "SEGMENTATION_MODES", "DiceLoss", "DiceScore", "SoftDiceLoss", "TverskyLoss", "dice_score",
    "Assignment", "MaxIoUAssigner", "max_iou_assign",
    "NMS_KINDS", "ClusterNMS", "Detections", "FastNMS", "cluster_nms", "fast_nms",
    "MatchMetrics", "Metrics", "match_metrics",
    "ROTATED_KINDS", "RotatedAlignedIoU", "RotatedIoULoss", "RotatedPairwiseIoU", "polygon_to_rotated", "probiou",
    "rotated_aligned_iou", "rotated_pairwise_iou", "rotated_to_polygon", "to_mmrotate",
    "RotatedClusterNMS", "rotated_cluster_nms",
]
