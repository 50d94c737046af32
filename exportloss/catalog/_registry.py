"""The registry of named exportable graphs.

A :class:`GraphEntry` ties together everything the pipeline needs for one graph: how to build the
trace-friendly module, its inputs at a stated static shape, how to draw fresh seeded inputs and edge
cases for any shape, the float64 eager reference to verify against, and the tolerances.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

Shapes = Mapping[str, tuple[int, ...]]
Inputs = dict[str, np.ndarray]

EXAMPLE_SEED = 0
"""Seed of the export example. Verification seeds differ from it, so values baked into a graph show up."""

VERIFICATION_SEED = 20261128
"""Default seed of the fresh verification inputs (``exportloss verify --seed`` overrides it)."""


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    """A numpy dtype name: ``"float32"``, ``"int64"`` or ``"bool"``."""


@dataclass(frozen=True)
class Case:
    name: str
    inputs: Inputs


@dataclass(frozen=True)
class GraphEntry:
    """One named graph of the catalog.

    Attributes:
        name: catalog name, also the ONNX file stem.
        summary: one line for ``exportloss list``.
        build: returns the trace-friendly module, deterministic (parameters drawn from a fixed seed).
        inputs: input names, static shapes and dtypes of the catalog graph.
        outputs: output names.
        reference: ``reference(module, *inputs)`` -> tensor or tuple of tensors, computed in float64
            (integer inputs stay integer); ``module`` supplies parameters such as centers or weights.
        random_inputs: ``random_inputs(shapes, rng)`` -> fresh ordinary inputs for the given shapes.
        edge_cases: ``edge_cases(shapes, rng)`` -> degenerate but valid inputs for the given shapes.
        atol, rtol: an output element passes when ``|onnx - reference| <= atol + rtol * |reference|``.
        allowed_ops: operators that are otherwise banned from exported graphs but this graph may use.
    """

    name: str
    summary: str
    build: Callable[[], nn.Module]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[str, ...]
    reference: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    random_inputs: Callable[[Shapes, np.random.Generator], Inputs]
    edge_cases: Callable[[Shapes, np.random.Generator], list[Case]]
    atol: float = 1e-5
    rtol: float = 1e-5
    allowed_ops: frozenset[str] = field(default_factory=frozenset)

    def shapes(self, overrides: Shapes | None = None) -> dict[str, tuple[int, ...]]:
        """Input shapes: the catalog's, with ``overrides`` (from ``--shape``) applied."""
        shapes = {spec.name: spec.shape for spec in self.inputs}
        for name, shape in (overrides or {}).items():
            if name not in shapes:
                raise ValueError(f"graph {self.name!r} has no input {name!r}; its inputs are {', '.join(shapes)}")
            if len(shape) != len(shapes[name]):
                raise ValueError(
                    f"--shape {name}: graph {self.name!r} expects rank {len(shapes[name])} "
                    f"(like {'x'.join(map(str, shapes[name]))}); got {'x'.join(map(str, shape))}"
                )
            shapes[name] = tuple(shape)
        return shapes

    def example_inputs(self, shapes: Shapes | None = None) -> Inputs:
        return self.random_inputs(self.shapes(shapes), np.random.default_rng(EXAMPLE_SEED))

    def verification_cases(self, shapes: Shapes | None = None, seed: int = VERIFICATION_SEED, n_random: int = 3) -> list[Case]:
        """Fresh seeded inputs (never the export example) followed by the edge cases."""
        shapes = self.shapes(shapes)
        rng = np.random.default_rng(seed)
        cases = [Case(f"random-{i}", self.random_inputs(shapes, rng)) for i in range(n_random)]
        return cases + self.edge_cases(shapes, rng)

    def dtype_of(self, name: str) -> str:
        return next(spec.dtype for spec in self.inputs if spec.name == name)


class UnknownGraphError(LookupError):
    """A graph name that is not in the catalog."""


_REGISTRY: dict[str, GraphEntry] = {}


def register(entry: GraphEntry) -> GraphEntry:
    if entry.name in _REGISTRY:
        raise ValueError(f"graph {entry.name!r} is registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def get(name: str) -> GraphEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownGraphError(f"unknown graph {name!r}; `exportloss list` shows the catalog") from None


def names() -> list[str]:
    return list(_REGISTRY)


def resolve(names_or_all: Sequence[str], all_graphs: bool) -> list[GraphEntry]:
    if all_graphs:
        return list(_REGISTRY.values())
    return [get(name) for name in names_or_all]
