"""exportloss: training losses and box-overlap metrics as static ONNX graphs.

Each metric comes three ways: a float64 eager reference (:mod:`exportloss.reference`), a
trace-friendly module in its family's package (:mod:`exportloss.boxes`, :mod:`exportloss.classification`,
:mod:`exportloss.segmentation`, :mod:`exportloss.detection`; re-exported here), and a catalog entry
(:mod:`exportloss.catalog`) that :mod:`exportloss.export` writes to ONNX and :mod:`exportloss.verify`
checks on every backend (:mod:`exportloss.backends`: onnxruntime's CPU, CUDA and TensorRT providers,
TensorRT engines). ARCHITECTURE.md maps the layers.
"""

__version__ = "0.1.0"

from .boxes import *  # noqa: E402,F403
from .boxes import __all__ as _boxes
from .classification import *  # noqa: E402,F403
from .classification import __all__ as _classification
from .detection import *  # noqa: E402,F403
from .detection import __all__ as _detection
from .segmentation import *  # noqa: E402,F403
from .segmentation import __all__ as _segmentation

from .evaluation import CocoMetric, evaluate  # noqa: E402

__all__ = [*_boxes, *_classification, *_segmentation, *_detection, "CocoMetric", "evaluate"]


def __getattr__(name: str):
    """``exportloss.attach`` (:func:`exportloss.detector_nms.join.attach`) needs onnx, the ``export`` extra:
    it is imported on first use, so ``import exportloss`` stays torch and numpy only."""
    if name == "attach":
        from .detector_nms.join import attach

        return attach
    raise AttributeError(f"module 'exportloss' has no attribute {name!r}")
