"""One exportable graph as data: :class:`GraphEntry`, its named sizes and its tensor specs.

A :class:`GraphEntry` ties together everything the pipeline needs for one graph: named sizes (batch,
boxes, classes, feature dim, spatial dims) with their catalog defaults, how to build the trace-friendly
module at those sizes, its input and output specs written in those sizes, how to draw fresh seeded
inputs and edge cases for any size, the float64 eager reference to verify against, and the
:class:`~exportloss.tolerance.Tolerance`. ``entry.at(sizes=..., shapes=...)`` is the same graph at other
sizes (``--size``, ``--shape``); everything else derives from ``entry.sizes``. ``entry.at(options=...)``
(``--option``) sets options of its module (:mod:`.graph_options`); the reference reads them from the module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..tolerance import Tolerance
from .graph_options import OptionSpec, configure, option_specs, option_values

Sizes = Mapping[str, int]
OptionValues = Mapping[str, object]
Shapes = Mapping[str, tuple[int, ...]]
Inputs = dict[str, np.ndarray]
Dim = int | str
"""A dimension of a :class:`TensorSpec`: a fixed extent (the 4 of an xyxy box) or the name of a size."""

EXAMPLE_SEED = 0
"""Seed of the export example. Verification seeds differ from it, so values baked into a graph show up."""

VERIFICATION_SEED = 20261128
"""Default seed of the fresh verification inputs (``exportloss verify --seed`` overrides it)."""


def _format(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: its name, its shape in named sizes and fixed extents, and its dtype."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str = "float32"
    """A numpy dtype name: ``"float32"``, ``"int64"`` or ``"bool"``."""

    def resolve(self, sizes: Sizes) -> tuple[int, ...]:
        """The static shape at ``sizes``."""
        return tuple(sizes[dim] if isinstance(dim, str) else dim for dim in self.shape)


class InputShapes(dict):
    """``{input name: static shape}`` of an entry at some sizes; ``.sizes`` holds those sizes for input
    generators that need one the shapes do not show (the class count of a label)."""

    def __init__(self, shapes: Shapes, sizes: Sizes) -> None:
        super().__init__(shapes)
        self.sizes = dict(sizes)


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
        sizes: the named sizes and their catalog values; ``at()`` changes them.
        make: ``make(sizes)`` -> the trace-friendly module, deterministic (parameters drawn from a fixed seed).
        inputs, outputs: names, shapes (in ``sizes``) and dtypes; ``exportloss list`` needs no forward pass.
        reference: ``reference(module, *inputs)`` -> tensor or tuple of tensors, computed in float64
            (integer inputs stay integer); ``module`` supplies parameters such as centers or weights.
        random_inputs: ``random_inputs(shapes, rng)`` -> fresh ordinary inputs; ``shapes`` is an
            :class:`InputShapes` (``shapes.sizes`` holds the sizes).
        edge_cases: ``edge_cases(shapes, rng)`` -> degenerate but valid inputs for the given shapes.
        tolerance: an output element passes when ``|onnx - reference| <= atol + rtol * |reference|``.
        readme: what the README's catalog tables say about the graph (default: ``summary``); consecutive
            entries with the same text and shapes share a row.
        allowed_ops: operators that are otherwise banned from exported graphs but this graph may use.
        options: option values set with ``at(options=...)`` (``--option``), applied to the module ``make``
            builds; empty for the catalog's own settings.
        outputs_at: for graphs whose options change their outputs (NMS ``outputs="efficientnms"``):
            ``outputs_at(options)`` -> the output specs at those option values; ``at(options=...)`` applies it.
    """

    name: str
    summary: str
    sizes: Sizes
    make: Callable[[Sizes], nn.Module]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    reference: Callable[..., torch.Tensor | tuple[torch.Tensor, ...]]
    random_inputs: Callable[[InputShapes, np.random.Generator], Inputs]
    edge_cases: Callable[[InputShapes, np.random.Generator], list[Case]]
    tolerance: Tolerance = Tolerance()
    readme: str = ""
    allowed_ops: frozenset[str] = field(default_factory=frozenset)
    options: OptionValues = field(default_factory=dict)
    outputs_at: Callable[[OptionValues], tuple[TensorSpec, ...]] | None = None

    def at(self, sizes: Sizes | None = None, shapes: Shapes | None = None, options: OptionValues | None = None, *,
           size_label: str = "--size", shape_label: str = "--shape") -> GraphEntry:
        """This graph at other sizes: ``sizes`` by name (``--size``), and the sizes each of ``shapes`` names
        (``--shape``: every named dimension sets its size, every fixed one must match); with ``options``
        (``--option``) set on top of any set before.

        Raises ``ValueError`` (one line naming the argument) for an unknown size, input or option, a rank or
        fixed extent that differs, a negative size, two arguments that give one size different values,
        and an option value the graph's module refuses. The messages call the arguments ``size_label NAME=N``
        and ``shape_label INPUT=...`` (the command line's options by default; a model file's stamp when
        :func:`exportloss.model_files.load_model` asks).
        """
        if options:
            entry = self.at(sizes, shapes)
            checked = entry._checked_options(options)
            outputs = entry.outputs if entry.outputs_at is None else entry.outputs_at(checked)
            return dataclasses.replace(entry, options=checked, outputs=outputs)
        unknown = [name for name in (sizes or {}) if name not in self.sizes]
        if unknown:
            raise ValueError(f"graph {self.name!r} has no size {', '.join(unknown)}; its sizes are {', '.join(self.sizes)}")
        given: dict[str, tuple[int, str]] = {}
        for name, value in (sizes or {}).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{size_label} {name}: expected a non-negative integer; got {value!r}")
            given[name] = (value, f"{size_label} {name}={value}")
        specs = {spec.name: spec for spec in self.inputs}
        for name, shape in (shapes or {}).items():
            if name not in specs:
                raise ValueError(f"graph {self.name!r} has no input {name!r}; its inputs are {', '.join(specs)}")
            spec, argument = specs[name], f"{shape_label} {name}={_format(shape)}"
            default = spec.resolve(self.sizes)
            if len(shape) != len(spec.shape):
                raise ValueError(f"{argument}: graph {self.name!r} expects rank {len(spec.shape)} (like {_format(default)})")
            for axis, (dim, extent) in enumerate(zip(spec.shape, shape)):
                if isinstance(dim, int):
                    if extent != dim:
                        raise ValueError(f"{argument}: graph {self.name!r} fixes dimension {axis} of {name} at {dim} "
                                         f"(like {_format(default)})")
                elif dim in given and given[dim][0] != extent:
                    raise ValueError(f"{argument}: dimension {axis} of {name} is size {dim!r}, which {given[dim][1]} "
                                     f"sets to {given[dim][0]}")
                else:
                    given[dim] = (extent, argument)
        if not given:
            return self
        return dataclasses.replace(self, sizes={**self.sizes, **{name: value for name, (value, _) in given.items()}})

    def _checked_options(self, options: OptionValues) -> dict[str, object]:
        """``self.options`` updated with ``options``, each checked alone (the error names it), then all together."""
        module = self.make(self.sizes)
        known = option_values(module)
        unknown = [name for name in options if name not in known]
        if unknown:
            raise ValueError(f"graph {self.name!r} has no option {', '.join(unknown)}; its options are {', '.join(known) or 'none'}")
        merged = {**self.options, **options}
        for name, value in options.items():
            try:
                configure(module, {**self.options, name: value})
            except (ValueError, TypeError) as err:
                raise ValueError(f"--option {name}={_text(value)}: {_first_line(err)}") from None
        try:
            configure(module, merged)
        except (ValueError, TypeError) as err:
            given = " ".join(f"--option {name}={_text(value)}" for name, value in options.items())
            raise ValueError(f"{given}: {_first_line(err)}") from None
        return merged

    def option_specs(self) -> dict[str, OptionSpec]:
        """Every option of this graph's module (``--option KEY=VALUE``), at this entry's values."""
        return option_specs(self.build())

    def parse_options(self, texts: Mapping[str, str]) -> dict[str, object]:
        """``{option: text}`` from the command line as typed values (each option's annotation decides);
        ``ValueError`` (one line) for an unknown option or a value of the wrong type."""
        specs = self.option_specs()
        unknown = [name for name in texts if name not in specs]
        if unknown:
            raise ValueError(f"graph {self.name!r} has no option {', '.join(unknown)}; its options are {', '.join(specs) or 'none'}")
        return {name: specs[name].parse(text) for name, text in texts.items()}

    def shapes(self, overrides: Shapes | None = None) -> InputShapes:
        """Input shapes at this entry's sizes (after ``overrides``, from ``--shape``, when given)."""
        entry = self.at(shapes=overrides)
        return InputShapes({spec.name: spec.resolve(entry.sizes) for spec in entry.inputs}, entry.sizes)

    def output_shapes(self) -> dict[str, tuple[int, ...]]:
        return {spec.name: spec.resolve(self.sizes) for spec in self.outputs}

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def build(self) -> nn.Module:
        """The module at this entry's sizes and options (change them with :meth:`at` first)."""
        return configure(self.make(self.sizes), self.options)

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


def _text(value: object) -> str:
    return ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


class UnknownGraphError(LookupError):
    """A graph name that is not in the catalog."""
