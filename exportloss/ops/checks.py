"""Argument checks shared by the public API.

Every check raises ``ValueError`` (or ``TypeError`` for a wrong dtype) with a message that names the
argument and says what was expected, so users never see a stack trace from inside torch. The checks
look only at shapes, dtypes and Python values, never at tensor contents, so they are free during
tracing and leave no trace in an exported graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

REDUCTIONS = ("mean", "sum", "none")


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def check_number(name: str, value: object, minimum: float, strict: bool = False) -> float:
    """A finite real ``value >= minimum`` (``> minimum`` with ``strict``), returned as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    if not (value > minimum if strict else value >= minimum) or value == float("inf"):
        raise ValueError(f"{name} must be finite and {'>' if strict else '>='} {minimum:g}; got {value!r}")
    return value


def check_float_tensor(name: str, tensor: object) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {tensor.dtype}")
    return tensor


def check_label_tensor(name: str, tensor: object) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(tensor).__name__}")
    if tensor.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an int64 or int32 tensor of class indices; got dtype {tensor.dtype}")
    return tensor


def check_boxes(name: str, boxes: object, min_dim: int = 1, width: int = 4, layout: str = "") -> torch.Tensor:
    """Boxes are a floating tensor ``[..., width]`` with at least ``min_dim`` dimensions; ``layout`` names the
    coordinates in the error (rotated boxes: ``" (cx, cy, w, h, theta)"``)."""
    boxes = check_float_tensor(name, boxes)
    if boxes.dim() < min_dim or boxes.shape[-1] != width:
        lead = "..., " if min_dim <= 1 else "..., N, "
        raise ValueError(f"{name} must have shape [{lead}{width}]{layout}; got {list(boxes.shape)}")
    return boxes


def check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape; got {list(a.shape)} and {list(b.shape)}")


def broadcast_batch(name_a: str, shape_a: Sequence[int], name_b: str, shape_b: Sequence[int]) -> torch.Size:
    try:
        return torch.broadcast_shapes(torch.Size(shape_a), torch.Size(shape_b))
    except RuntimeError:
        raise ValueError(
            f"leading dimensions of {name_a} {list(shape_a)} and {name_b} {list(shape_b)} do not broadcast"
        ) from None


def check_labels_in_range(name: str, labels: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> None:
    """Eager-only range check; skipped while tracing, where the graph's documented behaviour applies."""
    if is_tracing() or labels.numel() == 0:
        return
    valid = labels if ignore_index is None else labels[labels != ignore_index]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= num_classes):
        allowed = f"[0, {num_classes - 1}]" + ("" if ignore_index is None else f" or ignore_index={ignore_index}")
        raise ValueError(f"{name} must lie in {allowed}; got values in [{int(valid.min())}, {int(valid.max())}]")


def is_tracing() -> bool:
    """True while torch.jit.trace, torch.export / the dynamo exporter, torch.compile or torch.fx trace the code."""
    return (
        torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or torch.compiler.is_exporting()
        or _is_fx_symbolic_tracing()
    )


def _is_fx_symbolic_tracing() -> bool:
    try:
        from torch.fx._symbolic_trace import is_fx_symbolic_tracing
    except ImportError:  # older torch: fx symbolic tracing cannot be detected, and nothing here needs it
        return False
    return is_fx_symbolic_tracing()


def check_interval(name: str, value: object, low: float = -math.inf, high: float = math.inf,
                   low_open: bool = False, high_open: bool = False) -> float:
    """A finite real in ``[low, high]`` (an end open with ``low_open`` / ``high_open``), returned as float.

    NaN and infinities are refused even where an end is infinite: an option must be a usable number.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number; got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (math.isfinite(value) and above and below):
        opening = "(" if low_open or low == -math.inf else "["
        closing = ")" if high_open or high == math.inf else "]"
        interval = f"{opening}{low:g}, {high:g}{closing}".replace("inf", "∞")
        raise ValueError(f"{name} must be finite and lie in {interval}; got {value!r}")
    return value


def check_eps(eps: object) -> float:
    """A stabiliser ``eps``: a finite number > 0 (0 would let an empty box divide 0 by 0)."""
    return check_number("eps", eps, 0.0, strict=True)


def check_count(name: str, value: object, minimum: int) -> int:
    """An int ``>= minimum`` (a class count, a feature dimension); the error names this argument alone."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value
