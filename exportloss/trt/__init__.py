"""TensorRT: a static compatibility check against the parser's support tables, engine building and engine runs.

:mod:`.check` works everywhere; :mod:`.engine` and :mod:`.runner` need the ``tensorrt`` package and a
CUDA device and raise :class:`TensorRTUnavailable` (one line, no traceback in the CLI) without them.
"""

from .check import Finding, TrtReport, check_model, check_versions
from .profiles import ShapeRange, make_profile
from .support import DEFAULT_TRT_VERSION, TRT_VERSIONS, load_support

__all__ = [
    "DEFAULT_TRT_VERSION",
    "TRT_VERSIONS",
    "Finding",
    "ShapeRange",
    "TrtReport",
    "check_model",
    "check_versions",
    "load_support",
    "make_profile",
]
