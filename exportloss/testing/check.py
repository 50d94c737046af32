"""Export verification of any ``nn.Module`` in one call: :func:`check_exports` and :func:`assert_exports`.

The module is described to the catalog's pipeline as a :class:`~exportloss.catalog.GraphEntry` built from
its example inputs (names from ``forward``'s parameters, static shapes and dtypes from the tensors), and
exported by :func:`exportloss.export.export_model` (the exporters' errors in one line, the graph checks).
Every graph then goes through these checks, each a row of the report:

==============  =========================================================================================
check           what must hold
==============  =========================================================================================
export          the exporter writes a graph that passes the graph checks (checker, strict shape
                inference, banned operators, static shapes)
example         each backend's outputs match the reference on the example inputs
fresh inputs    ... and on fresh seeded inputs drawn like them: a graph that passes on the example and
                fails here holds a value the exporter baked into a constant
cases           ... and on the caller's own cases (ties, degenerate boxes)
ties            :func:`~exportloss.testing.flip_ties` (TopK/ArgMax/ArgMin break ties the other way)
                leaves onnxruntime's outputs within tolerance, on all of the above inputs
tf32            :func:`~exportloss.testing.emulate_tf32` (MatMul/Gemm/Conv inputs in TF32, a GPU's
                default) leaves them within tolerance
trt             TensorRT's ONNX parser takes every node (the static check of :mod:`exportloss.trt`,
                every supported TensorRT version)
ort-cuda        onnxruntime's CUDA provider has a kernel for every node (:mod:`exportloss.ort_cuda`)
==============  =========================================================================================

An element passes when ``|got - want| <= atol + rtol * |want|`` (:class:`~exportloss.tolerance.Tolerance`);
NaN must meet NaN and an infinity the same infinity. A backend that cannot run here gives rows that
are skipped with the reason, never passed.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from ..backends import Backend, BackendUnavailable, SessionError, make_backend
from ..backends.ort import CPU, OrtBackend
from ..catalog import VERIFICATION_SEED, Case, GraphEntry, TensorSpec
from ..catalog.entry import Inputs
from ..export import DEFAULT_OPSET, EXPORTERS, export_model
from ..tolerance import Tolerance
from ..verify import VerifyRow, reference_outputs
from .tf32 import emulate_tf32
from .ties import flip_ties, tie_nodes

ADVERSARIES = ("ties", "tf32")
FRESH_DRAWS = 3
"""Fresh seeded input sets per call, besides the example and the caller's cases."""
EXAMPLE, FRESH, CASES = "example", "fresh inputs", "cases"
BAKED_HINT = "passes on the export example, fails on fresh inputs: a value the exporter baked into a constant?"
_TABLE_LIMIT = 40
"""Failures listed in an assertion message; the report holds them all."""


@dataclass(frozen=True)
class Failure:
    """One failed comparison (``case``, ``output``, errors and the worst element) or one failed check (``detail``)."""

    check: str
    exporter: str
    backend: str = "-"
    case: str = "-"
    output: str = "-"
    out_of_tolerance: str = "-"
    """``"3 of 256"`` elements."""
    max_abs: float | None = None
    max_rel: float | None = None
    worst: str = ""
    """The worst element: its index, what ran and what it was compared with."""
    detail: str = ""

    def __str__(self) -> str:
        where = "/".join(part for part in (self.exporter, self.backend, self.case, self.output) if part != "-")
        count = "" if self.out_of_tolerance == "-" else f"{self.out_of_tolerance} element(s) out of tolerance"
        return f"{self.check} [{where}]: {'; '.join(part for part in (count, self.worst, self.detail) if part)}"


@dataclass
class CheckRow(VerifyRow):
    """A :class:`~exportloss.verify.VerifyRow` of one check (``check``) of one exporter's graph."""

    check: str = ""
    exporter: str = ""

    @property
    def verdict(self) -> str:
        if self.unavailable is not None:
            return f"SKIP ({self.unavailable})"
        return "FAIL" if self.failures else "PASS"


@dataclass
class ExportReport:
    """What :func:`check_exports` found: one row per check, the failures, and the exported graphs by exporter."""

    module: str
    rows: list[CheckRow] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    models: dict[str, onnx.ModelProto] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """No check failed (skipped rows do not fail, and do not pass either: see :attr:`skipped`)."""
        return not self.failures

    @property
    def skipped(self) -> list[CheckRow]:
        return [row for row in self.rows if row.unavailable is not None]

    def table(self) -> str:
        """Every row, as text."""
        body = [[row.check, row.exporter, row.backend, row.precision, row.against if row.cases else "-", str(row.cases),
                 _number(row.max_abs if row.cases else None), _number(row.max_rel if row.cases else None), row.verdict]
                for row in self.rows]
        notes = [f"{row.check} ({row.exporter}): {note}" for row in self.rows for note in row.notes]
        return "\n".join([
            format_table(["check", "exporter", "backend", "precision", "against", "cases", "max abs", "max rel", "verdict"], body),
            *notes,
        ])

    def failure_table(self) -> str:
        """The failures as text: check, exporter, backend, case, output, max abs/rel error, worst element."""
        shown = self.failures[:_TABLE_LIMIT]
        body = [[f.check, f.exporter, f.backend, f.case, f.output, f.out_of_tolerance, _number(f.max_abs),
                 _number(f.max_rel), f.worst or f.detail] for f in shown]
        lines = [format_table(["check", "exporter", "backend", "case", "output", "out of tol", "max abs", "max rel",
                               "worst element (or what failed)"], body)]
        lines += dict.fromkeys(f"{f.check} ({f.exporter}): {f.detail}" for f in shown if f.worst and f.detail)
        if len(self.failures) > len(shown):
            lines.append(f"... and {len(self.failures) - len(shown)} more failure(s) in the report")
        return "\n".join(lines)

    def message(self) -> str:
        """The assertion message: what failed, then what was skipped and why."""
        checks = sorted({f.check for f in self.failures}, key=_CHECK_ORDER.index)
        if checks:
            lines = [f"{self.module}: {len(self.failures)} failure(s) in {', '.join(checks)}", self.failure_table()]
        else:
            lines = [f"{self.module}: every check that ran passed"]
        skipped: dict[tuple[str, str, str], list[str]] = {}
        for row in self.skipped:
            skipped.setdefault((row.backend, row.exporter, row.unavailable), []).append(row.check)
        lines += [f"skipped: {backend} ({exporter}: {', '.join(names)}): {reason}"
                  for (backend, exporter, reason), names in skipped.items()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


_CHECK_ORDER = ["export", EXAMPLE, FRESH, CASES, "ties", "tf32", "trt", "ort-cuda"]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain-text columns (assertion messages and logs carry no markup)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(line, widths)).rstrip()
                     for line in (header, *rows))


def assert_exports(module: nn.Module, example_inputs, *, reference: Callable | None = None, cases=None,
                   exporters: Sequence[str] = ("dynamo",), backends: Sequence[str | Backend] = ("ort-cpu",),
                   rtol: float = 1e-5, atol: float = 1e-5, adversaries: Sequence[str] = ADVERSARIES,
                   check_trt: bool = True, check_ort_cuda: bool = True, opset: int | None = None,
                   seed: int = VERIFICATION_SEED) -> ExportReport:
    """Export ``module`` and verify the graph as deployment will run it; raise ``AssertionError`` if anything fails.

    Args:
        module: the ``nn.Module`` to export (it is copied, never changed).
        example_inputs: a tensor or a tuple of tensors, ``module``'s positional arguments; their shapes are
            the graph's static input shapes. Fresh inputs are drawn like them, from ``seed``: the same dtype,
            shape and value range; float inputs whose values are all integers stay integer-valued (so ties
            occur), int and bool inputs stay in the example's range.
        reference: ``reference(*inputs)`` -> tensor or tuple of tensors, the expected outputs from float64
            inputs (integer and bool inputs keep their dtype). Default: a deep copy of ``module`` in float64.
        cases: more inputs to check, each like ``example_inputs`` (ties, degenerate boxes): a list, or a
            mapping from case name to inputs.
        exporters: ``"dynamo"`` and/or ``"torchscript"``.
        backends: backend names (``"ort-cpu"``, ``"ort-cuda"``, ``"ort-trt"``, ``"trt"``) or
            :class:`~exportloss.backends.Backend` values; one that cannot run here is skipped with the reason.
        rtol, atol: an element passes when ``|got - want| <= atol + rtol * |want|``.
        adversaries: ``"ties"`` (:func:`~exportloss.testing.flip_ties`) and ``"tf32"``
            (:func:`~exportloss.testing.emulate_tf32`), run in onnxruntime on the CPU.
        check_trt: the static TensorRT parser check (every supported TensorRT version).
        check_ort_cuda: the static check against onnxruntime's CUDA kernels (no CPU fallback).
        opset: the ONNX opset (default 18).
        seed: seed of the fresh inputs.

    Returns the :class:`ExportReport` when every check passed or was skipped; raises ``AssertionError``
    whose message is a table of the failures (check, exporter, backend, case, output, max abs and rel
    error, worst element) otherwise. ``ValueError``/``TypeError`` for arguments it cannot use.
    """
    __tracebackhide__ = True  # pytest shows the table, not this frame
    report = check_exports(module, example_inputs, reference=reference, cases=cases, exporters=exporters,
                           backends=backends, rtol=rtol, atol=atol, adversaries=adversaries, check_trt=check_trt,
                           check_ort_cuda=check_ort_cuda, opset=opset, seed=seed)
    if not report.passed:
        raise AssertionError(report.message())
    return report


def check_exports(module: nn.Module, example_inputs, *, reference: Callable | None = None, cases=None,
                  exporters: Sequence[str] = ("dynamo",), backends: Sequence[str | Backend] = ("ort-cpu",),
                  rtol: float = 1e-5, atol: float = 1e-5, adversaries: Sequence[str] = ADVERSARIES,
                  check_trt: bool = True, check_ort_cuda: bool = True, opset: int | None = None,
                  seed: int = VERIFICATION_SEED) -> ExportReport:
    """:func:`assert_exports` without the raise: the report, failed or not."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module; got {type(module).__name__}")
    unknown = [name for name in exporters if name not in EXPORTERS]
    if unknown or not exporters:
        raise ValueError(f"exporters must be among {', '.join(EXPORTERS)}; got {list(exporters)}")
    unknown = [name for name in adversaries if name not in ADVERSARIES]
    if unknown:
        raise ValueError(f"adversaries must be among {', '.join(ADVERSARIES)}; got {unknown}")
    backend_values = [name if isinstance(name, Backend) else make_backend(name) for name in backends]
    tolerance = Tolerance(atol=atol, rtol=rtol)
    entry = module_entry(module, example_inputs, reference, cases, tolerance)
    drawn = entry.verification_cases(seed=seed, n_random=FRESH_DRAWS)  # random-0..2, then the example and the cases
    groups = {case.name: FRESH if case.name.startswith("random-") else EXAMPLE if case.name == EXAMPLE else CASES
              for case in drawn}
    # The example first: whether it passed decides what a failure on fresh inputs suggests.
    case_list = sorted(drawn, key=lambda case: _CHECK_ORDER.index(groups[case.name]))
    expected = reference_results(entry, case_list)
    report = ExportReport(entry.name)
    constant = [name for name, array in entry.example.items() if array.size and np.all(array == array.flat[0])]
    with tempfile.TemporaryDirectory(prefix="exportloss-check-") as tmp:
        for exporter in exporters:
            run = _Run(entry, exporter, case_list, groups, expected, tolerance, report, Path(tmp))
            model = run.export(DEFAULT_OPSET if opset is None else opset)
            if model is None:
                continue
            for backend in backend_values:
                run.backend(backend, constant)
            for adversary in adversaries:
                run.adversary(adversary)
            if check_trt:
                run.trt()
            if check_ort_cuda:
                run.ort_cuda()
    return report


def reference_results(entry: ModuleEntry, cases: list[Case]) -> list[list[np.ndarray]]:
    """The reference's outputs per case, float inputs in float64 (one-line ``ValueError`` when it fails)."""
    with _float64_defaults():
        module = entry.reference_module()
        try:
            expected = [reference_outputs(entry, module, case.inputs) for case in cases]
        except Exception as err:  # the user's code: its error in one line, naming what ran
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            if entry.user_reference is not None:
                raise ValueError(f"reference failed on float64 inputs: {first}") from err
            raise ValueError(
                f"the float64 copy of {entry.name} failed: {first} (make the module follow its inputs' dtype, "
                f"e.g. .to(x.dtype) instead of .float(), or pass reference=)") from err
    wanted = len(entry.outputs)
    if any(len(outputs) != wanted for outputs in expected):
        raise ValueError(f"reference returns {len(expected[0])} output(s); {entry.name} returns {wanted}")
    return expected


@contextmanager
def _float64_defaults():
    """Tensors the reference module makes itself (``torch.tensor(0.5)``) are float64 too."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


# --- the module as a graph entry -----------------------------------------------------------------

@dataclass(frozen=True)
class ModuleEntry(GraphEntry):
    """A user's module as a :class:`GraphEntry`: no named sizes, the caller's example, the caller's cases."""

    example: Inputs = field(default_factory=dict)
    module: nn.Module | None = None
    user_reference: Callable | None = None

    def example_inputs(self, shapes=None) -> Inputs:
        """The caller's example (the catalog draws its own from a seed)."""
        return self.example

    def reference_module(self) -> nn.Module | None:
        """The float64 copy of the module that :attr:`reference` runs (None with the caller's reference)."""
        if self.user_reference is not None:
            return None
        return copy.deepcopy(self.module).eval().double()


def module_entry(module: nn.Module, example_inputs, reference: Callable | None, cases, tolerance: Tolerance) -> ModuleEntry:
    """``module`` with its example inputs, reference and cases as a graph entry (see the module docstring)."""
    example_tensors = _as_tuple(example_inputs, "example_inputs")
    names = input_names(module, len(example_tensors))
    example = dict(zip(names, (_as_array(t, f"example_inputs[{i}]") for i, t in enumerate(example_tensors))))
    user_cases = _named_cases(cases)
    extra = []
    for case_name, inputs in user_cases:
        tensors = _as_tuple(inputs, f"cases[{case_name!r}]")
        if len(tensors) != len(names):
            raise ValueError(f"cases[{case_name!r}] has {len(tensors)} input(s); the example has {len(names)}")
        arrays = {}
        for name, tensor in zip(names, tensors):
            array = _as_array(tensor, f"cases[{case_name!r}]")
            if array.shape != example[name].shape or array.dtype != example[name].dtype:
                raise ValueError(f"cases[{case_name!r}]: input {name!r} is {array.dtype}{list(array.shape)}, the example "
                                 f"{example[name].dtype}{list(example[name].shape)}; the exported graph has static shapes")
            arrays[name] = array
        extra.append(Case(case_name, arrays))
    outputs = _output_specs(module, example)

    def run_reference(reference_module: nn.Module | None, *args: torch.Tensor):
        return reference(*args) if reference is not None else reference_module(*args)

    return ModuleEntry(
        name=type(module).__name__,
        summary=f"{type(module).__name__} (checked by exportloss.testing)",
        sizes={},
        make=lambda sizes: copy.deepcopy(module),
        inputs=tuple(TensorSpec(name, array.shape, str(array.dtype)) for name, array in example.items()),
        outputs=outputs,
        reference=run_reference,
        random_inputs=lambda shapes, rng: {name: draw_like(array, rng) for name, array in example.items()},
        edge_cases=lambda shapes, rng: [Case(EXAMPLE, example), *extra],
        tolerance=tolerance,
        example=example,
        module=module,
        user_reference=reference,
    )


def exporter_reason(err: ValueError) -> str:
    """:func:`~exportloss.export.export_model`'s one line, with the root cause's first line when the exporter's
    own first line is a generic banner ("Failed to export the model with torch.export ...")."""
    root = err
    while root.__cause__ is not None:
        root = root.__cause__
    text = str(err)
    if root is not err:
        cause = (str(root).strip().splitlines() or [""])[0]
        text = f"{text.split(': ', 1)[0]}: {type(root).__name__}: {cause}"
    return _ANSI.sub("", text)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def input_names(module: nn.Module, count: int) -> list[str]:
    """``forward``'s positional parameter names for ``count`` inputs, else ``input_0``, ``input_1``, ..."""
    try:
        parameters = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    positional = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return positional[:count] if len(positional) >= count else [f"input_{i}" for i in range(count)]


def draw_like(example: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fresh values with ``example``'s dtype, shape and range (min to max over its finite values).

    Floats whose finite values are all integers are drawn as integers (ties stay likely); other floats
    uniformly; ints uniformly in ``[min, max]``; bools with the example's fraction of True. Non-finite
    values stay where they are. A constant example gives itself back.
    """
    if example.size == 0:
        return example.copy()
    if example.dtype == np.bool_:
        if example.all() or not example.any():
            return example.copy()
        return rng.random(example.shape) < example.mean()
    if np.issubdtype(example.dtype, np.integer):
        return rng.integers(example.min(), example.max(), size=example.shape, endpoint=True).astype(example.dtype)
    finite = np.isfinite(example)
    if not finite.any():
        return example.copy()
    values = example[finite].astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if np.all(values == np.round(values)) and high - low < 2**53:
        draw = rng.integers(int(low), int(high), size=example.shape, endpoint=True).astype(np.float64)
    else:
        draw = rng.uniform(low, high, size=example.shape)
    return np.where(finite, draw, example).astype(example.dtype)


def _as_tuple(inputs, what: str) -> tuple:
    if isinstance(inputs, torch.Tensor):
        return (inputs,)
    if isinstance(inputs, (tuple, list)) and inputs:
        return tuple(inputs)
    raise TypeError(f"{what} must be a tensor or a non-empty tuple of tensors; got {type(inputs).__name__}")


def _as_array(tensor, what: str) -> np.ndarray:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{what} must be a tensor; got {type(tensor).__name__} (the graph's inputs are tensors)")
    try:
        return tensor.detach().cpu().numpy().copy()
    except TypeError as err:  # bfloat16 has no numpy dtype
        raise TypeError(f"{what}: {tensor.dtype} inputs are not supported ({err})") from None


def _named_cases(cases) -> list[tuple[str, object]]:
    if cases is None:
        return []
    if isinstance(cases, Mapping):
        return [(str(name), inputs) for name, inputs in cases.items()]
    if isinstance(cases, (list, tuple)):
        return [(f"case-{i}", inputs) for i, inputs in enumerate(cases)]
    raise TypeError(f"cases must be a list of inputs or a mapping from name to inputs; got {type(cases).__name__}")


def _output_specs(module: nn.Module, example: Inputs) -> tuple[TensorSpec, ...]:
    """Names, shapes and dtypes of the module's outputs on the example (a namedtuple's field names, else ``output``)."""
    args = [torch.from_numpy(array.copy()) for array in example.values()]
    try:
        with torch.no_grad():
            out = copy.deepcopy(module).eval()(*args)
    except Exception as err:  # the user's module: its error in one line
        first = (str(err).strip().splitlines() or [""])[0]
        raise ValueError(f"{type(module).__name__} fails on the example inputs: {type(err).__name__}: {first}") from err
    outs = out if isinstance(out, (tuple, list)) else (out,)
    if not all(isinstance(o, torch.Tensor) for o in outs):
        raise TypeError(f"{type(module).__name__} must return a tensor or a tuple of tensors; got {type(out).__name__}")
    fields = getattr(out, "_fields", None)
    names = list(fields) if fields else ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    return tuple(TensorSpec(name, tuple(o.shape), str(o.dtype).removeprefix("torch.")) for name, o in zip(names, outs))


# --- the checks of one exporter's graph ----------------------------------------------------------

class _Run:
    """One exporter's graph through every check; rows and failures go into ``report``."""

    def __init__(self, entry: ModuleEntry, exporter: str, cases: list[Case], groups: dict[str, str],
                 expected: list[list[np.ndarray]], tolerance: Tolerance, report: ExportReport, tmp: Path):
        self.entry, self.exporter, self.cases, self.groups = entry, exporter, cases, groups
        self.expected, self.tolerance, self.report, self.tmp = expected, tolerance, report, tmp
        self.model: onnx.ModelProto | None = None
        self.path: Path | None = None

    def row(self, check: str, backend: str = "-", precision: str = "", against: str = "reference") -> CheckRow:
        row = CheckRow(self.entry.name, backend, precision, against=against, check=check, exporter=self.exporter)
        self.report.rows.append(row)
        return row

    def fail(self, row: CheckRow, failure: Failure) -> None:
        """Record ``failure``; one that repeats the previous in another session of the backend joins it."""
        row.failures.append(str(failure))
        failures = self.report.failures
        backend, _, session = failure.backend.partition("/")
        for i, earlier in enumerate(failures):
            if session and earlier.backend.startswith(f"{backend}/") and dataclasses.replace(earlier, backend=failure.backend) == failure:
                failures[i] = dataclasses.replace(earlier, backend=f"{earlier.backend}+{session}")
                return
        failures.append(failure)

    def export(self, opset: int) -> onnx.ModelProto | None:
        row = self.row("export")
        try:
            model = export_model(self.entry, self.exporter, opset)
        except ValueError as err:  # the exporter's error or a graph check, in one line
            self.fail(row, Failure("export", self.exporter, detail=exporter_reason(err)))
            return None
        row.notes.append(f"opset {opset}, {len(model.graph.node)} nodes")
        self.model = model
        self.path = self.save(model, "graph")
        self.report.models[self.exporter] = model
        return model

    def save(self, model: onnx.ModelProto, what: str) -> Path:
        path = self.tmp / f"{self.entry.name}.{self.exporter}.{what}.onnx"
        onnx.save(model, str(path))
        return path

    def backend(self, backend: Backend, constant_inputs: list[str]) -> None:
        present = set(self.groups.values())
        rows = {group: self.row(group, backend.name, backend.precision) for group in (EXAMPLE, FRESH, CASES) if group in present}
        if constant_inputs and FRESH in rows:
            rows[FRESH].notes.append(f"constant in the example, so also in the fresh inputs: {', '.join(constant_inputs)}")
        outputs = self.outputs_on(backend, self.path, self.model, list(rows.values()))
        if outputs is None:
            return
        for session_label, per_case in outputs.items():
            for case, got, want in zip(self.cases, per_case, self.expected):
                group = self.groups[case.name]
                hint = BAKED_HINT if group == FRESH and rows[EXAMPLE].passed else ""
                self.compare(rows[group], group, f"{backend.name}/{session_label}", case.name, got, want, hint)

    def outputs_on(self, backend: Backend, path: Path, model: onnx.ModelProto,
                   rows: list[CheckRow]) -> dict[str, list[list[np.ndarray]]] | None:
        """``{session label: outputs per case}``, or None after marking ``rows`` skipped or failed."""
        reason = backend.unavailable_reason()
        try:
            if reason is not None:
                raise BackendUnavailable(reason)
            with backend.sessions(path, model, self.entry) as sessions:
                outputs = {}
                for session in sessions:
                    for row in rows:
                        row.provider = session.provider
                        row.tolerance = self.tolerance
                        row.notes.extend(note for note in session.notes if note not in row.notes)
                    outputs[session.label] = [self.run_case(session, case) for case in self.cases]
                return outputs
        except BackendUnavailable as err:
            for row in rows:
                row.unavailable = str(err)
        except SessionError as err:
            self.fail(rows[0], Failure(rows[0].check, self.exporter, backend.name, detail=str(err)))
            for row in rows[1:]:
                row.failures.append(str(err))
        return None

    def run_case(self, session, case: Case) -> list[np.ndarray]:
        got = session.run({name: case.inputs[name] for name in self.graph_inputs})
        return [got[name] for name in self.entry.output_names]

    @property
    def graph_inputs(self) -> list[str]:
        """The inputs the exported graph kept (an exporter may drop one the outputs do not use)."""
        return [value.name for value in self.model.graph.input]

    def compare(self, row: CheckRow, check: str, backend: str, case: str, got: Sequence[np.ndarray],
                want: Sequence[np.ndarray], hint: str = "", against: str = "reference") -> None:
        row.cases += 1
        for name, actual, expected in zip(self.entry.output_names, got, want):
            result = compare_arrays(actual, expected, self.tolerance, against)
            if result.max_abs > row.max_abs:
                row.worst_case = f"{case}/{name}"
            row.max_abs = max(row.max_abs, result.max_abs)
            row.max_rel = max(row.max_rel, result.max_rel)
            if result.bad:
                self.fail(row, Failure(check, self.exporter, backend, case, name, f"{result.bad} of {actual.size}",
                                       result.max_abs, result.max_rel, result.worst, hint))

    def adversary(self, name: str) -> None:
        cpu = OrtBackend("ort-cpu", [CPU], levels=("ORT_DISABLE_ALL",))
        row = self.row(name, cpu.name, "tf32" if name == "tf32" else "fp32", against="ort-cpu, graph as exported")
        if name == "ties" and not tie_nodes(self.model):
            row.notes.append("no TopK/ArgMax/ArgMin node: no tie order to depend on")
            return
        try:
            changed = flip_ties(self.model) if name == "ties" else emulate_tf32(self.model)
        except (NotImplementedError, ValueError) as err:
            row.unavailable = f"the {name} rewrite cannot take this graph: {err}"
            return
        if name == "tf32" and len(changed.graph.node) == len(self.model.graph.node):
            row.notes.append("no float32 MatMul/Gemm/Conv: nothing runs in TF32")
            return
        plain = self.outputs_on(cpu, self.path, self.model, [row])
        if plain is None:
            return
        adversarial = self.outputs_on(cpu, self.save(changed, name), changed, [row])
        if adversarial is None:
            return
        for case, got, want in zip(self.cases, adversarial["ORT_DISABLE_ALL"], plain["ORT_DISABLE_ALL"]):
            self.compare(row, name, "ort-cpu", case.name, got, want, against="as exported")

    def trt(self) -> None:
        from ..trt import TRT_VERSIONS, check_versions

        row = self.row("trt", "static", against="parser tables")
        found: dict[tuple, tuple[object, list[str]]] = {}  # one finding per rule and node, with its TensorRT versions
        for report in check_versions(self.model, TRT_VERSIONS, name=self.entry.name):
            for finding in report.findings:
                key = (finding.rule, finding.severity, finding.where, finding.node, finding.op)
                found.setdefault(key, (finding, []))[1].append(report.trt_version)
        for finding, versions in found.values():
            text = f"{finding} (TensorRT {', '.join(versions)})"
            if finding.severity == "error":
                self.fail(row, Failure("trt", self.exporter, "static", detail=text))
            else:
                row.notes.append(text)

    def ort_cuda(self) -> None:
        from ..ort_cuda import check_model

        row = self.row("ort-cuda", "static", against="kernel table")
        report = check_model(self.model, self.entry.name)
        for finding in report.fallbacks:
            self.fail(row, Failure("ort-cuda", self.exporter, "static", detail=str(finding)))
        if report.host_by_design:
            row.notes.append(f"{len(report.host_by_design)} shape node(s) on the CPU by design")


# --- comparing one output ------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    max_abs: float
    max_rel: float
    bad: int
    """Elements out of tolerance (or NaN/infinity where the other has none)."""
    worst: str


def compare_arrays(got: np.ndarray, want: np.ndarray, tolerance: Tolerance, against: str = "reference") -> Comparison:
    """``got`` against ``want`` element by element: errors over the finite pairs, non-finite values must agree.

    The relative error is ``|got - want| / max(|want|, atol)``, as in ``exportloss verify``; the worst element
    is the one furthest out of tolerance (else the largest error).
    """
    if got.shape != want.shape:
        return Comparison(0.0, 0.0, 1, f"shape {list(got.shape)} != {against} {list(want.shape)}")
    got64, want64 = got.astype(np.float64), want.astype(np.float64)
    both_finite = np.isfinite(got64) & np.isfinite(want64)
    same_special = ~both_finite & ((got64 == want64) | (np.isnan(got64) & np.isnan(want64)))
    err = np.where(both_finite, np.abs(got64 - want64), np.where(same_special, 0.0, np.inf))
    bound = tolerance.atol + tolerance.rtol * np.where(both_finite, np.abs(want64), 0.0)
    bad = err > bound
    finite_err = np.where(both_finite, err, 0.0)
    max_abs = float(finite_err.max(initial=0.0))
    max_rel = float((finite_err / np.maximum(np.abs(np.where(both_finite, want64, 0.0)), tolerance.atol)).max(initial=0.0))
    if not bad.any():
        return Comparison(max_abs, max_rel, 0, "")
    excess = np.where(bad, np.where(np.isinf(err), np.inf, err - bound), -np.inf)
    index = np.unravel_index(int(np.argmax(excess)), err.shape)
    worst = f"{list(map(int, index))}: got {got64[index]:.8g}, {against} {want64[index]:.8g}"
    return Comparison(max_abs, max_rel, int(bad.sum()), worst)
