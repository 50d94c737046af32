"""Optimization profiles: the min / opt / max shape TensorRT builds for, per dynamic input.

An engine whose ONNX inputs have dynamic dimensions (``dim_param`` or unset) needs a shape range for each
such input; static inputs need none, and a range given for one must equal its static shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..onnx_graph import Dims


@dataclass(frozen=True)
class ShapeRange:
    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]


def make_profile(
    min_shapes: Mapping[str, tuple[int, ...]] | None = None,
    opt_shapes: Mapping[str, tuple[int, ...]] | None = None,
    max_shapes: Mapping[str, tuple[int, ...]] | None = None,
) -> dict[str, ShapeRange]:
    """Ranges from per-input min / opt / max shapes; a missing one is filled from the others.

    ``opt`` defaults to ``max`` (else ``min``); ``min`` and ``max`` default to ``opt``. Raises
    ``ValueError`` unless ``min <= opt <= max`` in every dimension with equal ranks.
    """
    mins, opts, maxs = dict(min_shapes or {}), dict(opt_shapes or {}), dict(max_shapes or {})
    profile = {}
    for name in dict.fromkeys([*mins, *opts, *maxs]):
        opt = opts.get(name) or maxs.get(name) or mins[name]
        lo, hi = mins.get(name, opt), maxs.get(name, opt)
        if not len(lo) == len(opt) == len(hi):
            raise ValueError(f"profile of {name!r}: min, opt and max shapes must have the same rank; got {lo}, {opt}, {hi}")
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise ValueError(f"profile of {name!r} must satisfy min <= opt <= max in every dimension; got {lo}, {opt}, {hi}")
        profile[name] = ShapeRange(tuple(lo), tuple(opt), tuple(hi))
    return profile


def fit_profile(dims: Mapping[str, Dims], profile: Mapping[str, ShapeRange]) -> list[str]:
    """Check ``profile`` against the model's inputs; return the dynamic inputs it leaves without a range.

    Raises ``ValueError`` for a range of an input the model does not have, a rank that differs from
    the input's, or a range that does not keep a static dimension at its size.
    """
    for name, shape_range in profile.items():
        if name not in dims:
            raise ValueError(f"profile names input {name!r}, but the model's inputs are {', '.join(dims) or 'none'}")
        expected = dims[name]
        for label, shape in (("min", shape_range.min), ("opt", shape_range.opt), ("max", shape_range.max)):
            if len(shape) != len(expected):
                raise ValueError(f"{label} shape of {name!r} has rank {len(shape)}; the input has rank {len(expected)}")
            fixed = [(i, d) for i, d in enumerate(expected) if d is not None and shape[i] != d]
            if fixed:
                i, d = fixed[0]
                raise ValueError(f"{label} shape of {name!r} sets static dimension {i} to {shape[i]}; the model fixes it at {d}")
    return [name for name, shape in dims.items() if None in shape and name not in profile]
