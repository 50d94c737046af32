"""TensorRT's ONNX-parser support tables, one per supported TensorRT version, shipped as package data.

The tables are written by ``tools/make_trt_tables.py`` from the parser's own operator table
(onnx-tensorrt ``docs/operators.md`` at 10.1) plus the rows later releases document as changed. Each
operator has ``supported``, the parser's ``types`` and ``restrictions`` text, the restrictions turned
into machine-checkable ``checks`` and the sentences left ``unchecked``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

TRT_VERSIONS = ("10.1", "10.15", "11")
"""TensorRT versions with a support table, oldest first."""

DEFAULT_TRT_VERSION = "10.15"


@dataclass(frozen=True)
class OperatorSupport:
    supported: bool
    types: tuple[str, ...]
    restrictions: str
    checks: tuple[MappingProxyType, ...]
    unchecked: tuple[str, ...]


@dataclass(frozen=True)
class SupportTable:
    tensorrt: str
    source: str
    opset_min: int
    opset_max: int
    precision_flags: bool
    """Whether the builder has precision flags (``BuilderFlag.FP16``): TensorRT 10 yes, 11 no."""
    operators: MappingProxyType

    def get(self, op_type: str) -> OperatorSupport | None:
        return self.operators.get(op_type)


def check_trt_version(version: str) -> str:
    if version not in TRT_VERSIONS:
        raise ValueError(f"trt_version must be one of {', '.join(TRT_VERSIONS)}; got {version!r}")
    return version


@cache
def load_support(version: str = DEFAULT_TRT_VERSION) -> SupportTable:
    """The support table of TensorRT ``version`` (one of :data:`TRT_VERSIONS`)."""
    check_trt_version(version)
    raw: dict[str, Any] = json.loads(resources.files(__package__).joinpath(f"tensorrt-{version}.json").read_text())
    operators = {
        op: OperatorSupport(
            supported=row["supported"],
            types=tuple(row["types"]),
            restrictions=row["restrictions"],
            checks=tuple(MappingProxyType(check) for check in row["checks"]),
            unchecked=tuple(row["unchecked"]),
        )
        for op, row in raw["operators"].items()
    }
    return SupportTable(
        tensorrt=raw["tensorrt"],
        source=raw["source"],
        opset_min=raw["opset"]["min"],
        opset_max=raw["opset"]["max"],
        precision_flags=raw["precision_flags"],
        operators=MappingProxyType(operators),
    )


def table_for_installed(version_string: str) -> str:
    """The support table that covers an installed TensorRT (``tensorrt.__version__``), e.g. ``"10.8.0.43"`` -> ``"10.1"``."""
    try:
        major, minor = (int(part) for part in version_string.split(".")[:2])
    except ValueError:
        raise ValueError(f"not a TensorRT version string: {version_string!r}") from None
    if major >= 11:
        return "11"
    if major == 10:
        return "10.15" if minor >= 15 else "10.1"
    raise ValueError(f"TensorRT {version_string} is older than 10.1, the oldest supported version")
