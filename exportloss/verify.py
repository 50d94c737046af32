"""The verification harness: run exported graphs on a backend and compare with the float64 eager reference.

Each graph runs on fresh seeded inputs (never the export example: the TorchScript exporter can bake
tensor values into constants, and only new inputs catch that) and on the catalog entry's edge cases, in
every session the backend opens for it (onnxruntime: ``ORT_DISABLE_ALL`` and ``ORT_ENABLE_ALL``). Where
the graph runs is a value, a :class:`~exportloss.backends.Backend`; :func:`verify` and
:func:`verify_all` take one (or several) and know nothing else about runtimes. ``against=`` compares a
backend with another backend on the same inputs instead of with the reference (TensorRT engines against
onnxruntime on the CPU, for example).

An output element passes when ``|got - want| <= atol + rtol * |want|`` with the backend's
:class:`~exportloss.tolerance.Tolerance` for the entry; the report's relative error is
``|got - want| / max(|want|, atol)``. A backend that did not run gives a row whose verdict is
``unavailable: <reason>``, never PASS.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from ._files import atomic_write
from .backends import Backend, BackendUnavailable, SessionError
from .backends.ort import OrtBackend
from .catalog import VERIFICATION_SEED, Case, GraphEntry
from .export import to_torch
from .model_files import ModelFileError, ModelMismatchError, load_model
from .tolerance import Tolerance

REFERENCE = "reference"
"""What a row is compared with when no other backend is: the float64 eager reference."""


@dataclass
class VerifyRow:
    """One graph on one backend, compared with the reference or with another backend (``against``)."""

    graph: str
    backend: str
    precision: str = ""
    provider: str = ""
    """What actually ran the graph; empty when nothing did."""
    against: str = REFERENCE
    tolerance: Tolerance | None = None
    """What each element was held to; None when nothing ran."""
    cases: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_case: str = ""
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unavailable: str | None = None
    """Why the backend did not run the graph; such a row never passes."""

    @property
    def passed(self) -> bool:
        return self.unavailable is None and not self.failures

    @property
    def verdict(self) -> str:
        if self.unavailable is not None:
            return f"unavailable: {self.unavailable}"
        return "FAIL" if self.failures else "PASS"


def load_catalog_model(path: str | os.PathLike, entry: GraphEntry | None = None) -> tuple[onnx.ModelProto, GraphEntry]:
    """Load an exported graph and its catalog entry (``entry``, else the name stamped into the model at export),
    the entry at the sizes the model was exported at.

    :func:`exportloss.model_files.load_model` does the checks (a readable ONNX file, its sha256 against the
    manifest, the catalog stamp and interface); each failure is one line naming the file.
    """
    return load_model(path, entry)


def reference_outputs(entry: GraphEntry, module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The eager reference in float64 (integer and boolean inputs keep their dtype)."""
    tensors = to_torch(inputs)
    args = [t.double() if t.is_floating_point() else t for t in (tensors[spec.name] for spec in entry.inputs)]
    with torch.no_grad():
        out = entry.reference(module, *args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().cpu().numpy() for o in outs]


def compare(entry: GraphEntry, tolerance: Tolerance, row: VerifyRow, case: Case, label: str,
            got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    """Fold one case's outputs into ``row``."""
    row.cases += 1
    for name, actual, expected in zip(entry.output_names, got, want):
        where = f"{case.name}/{label}/{name}"
        if actual.shape != expected.shape:
            row.failures.append(f"{where}: shape {list(actual.shape)} != {row.against} {list(expected.shape)}")
            continue
        actual64 = actual.astype(np.float64)
        expected64 = expected.astype(np.float64)
        if not np.all(np.isfinite(actual64)):
            row.failures.append(f"{where}: non-finite output")
            continue
        err = np.abs(actual64 - expected64)
        max_abs = float(err.max(initial=0.0))
        max_rel = float((err / np.maximum(np.abs(expected64), tolerance.atol)).max(initial=0.0))
        if max_abs > row.max_abs:
            row.worst_case = where
        row.max_abs = max(row.max_abs, max_abs)
        row.max_rel = max(row.max_rel, max_rel)
        bad = err > tolerance.atol + tolerance.rtol * np.abs(expected64)
        if bad.any():
            index = np.unravel_index(int(np.argmax(err - tolerance.rtol * np.abs(expected64))), err.shape)
            row.failures.append(
                f"{where}: {int(bad.sum())} element(s) out of tolerance; at {list(index)} "
                f"got {actual64[index]:.8g}, {row.against} {expected64[index]:.8g}"
            )


def verify(
    path: str | os.PathLike,
    backend: Backend | None = None,
    seed: int = VERIFICATION_SEED,
    entry: GraphEntry | None = None,
    against: Backend | None = None,
) -> list[VerifyRow]:
    """Verify one ONNX file on ``backend`` (default: onnxruntime on the CPU).

    Returns the row against the reference and, with ``against``, a second row comparing ``backend``'s
    outputs with ``against``'s on the same inputs. A model written by ``exportloss attach`` is verified end
    to end instead (:func:`exportloss.detector_nms.verify.verify_attached`; ``against`` does not apply).
    """
    from .detector_nms.verify import is_attached, verify_attached

    if entry is None and is_attached(path):
        if against is not None:
            raise ModelFileError(f"{path}: --against does not apply to a model written by `exportloss attach` "
                                 "(it is verified against greedy NMS on its detector's outputs)")
        return verify_attached(path, backend, seed)
    model, entry = load_catalog_model(path, entry)
    return _verify_loaded(Path(path), model, entry, [backend or OrtBackend.cpu()], seed, against)


def verify_all(
    entries: Sequence[GraphEntry],
    models_dir: str | os.PathLike,
    backends: Sequence[Backend],
    seed: int = VERIFICATION_SEED,
    against: Backend | None = None,
    on_row: Callable[[VerifyRow], None] | None = None,
) -> list[VerifyRow]:
    """:func:`verify` of ``models_dir/NAME.onnx`` for each entry on each backend; a missing file is a failed row."""
    rows = []
    for entry in entries:
        path = Path(models_dir) / f"{entry.name}.onnx"
        if path.exists():
            try:
                model, entry = load_catalog_model(path, entry)
            except ModelMismatchError as err:
                new_rows = [VerifyRow(entry.name, "-", failures=[str(err)])]
            else:
                new_rows = _verify_loaded(path, model, entry, backends, seed, against)
        else:
            new_rows = [VerifyRow(entry.name, "-", failures=[f"{path} does not exist; run `exportloss export {entry.name}`"])]
        for row in new_rows:
            if on_row:
                on_row(row)
        rows.extend(new_rows)
    return rows


def _verify_loaded(path: Path, model: onnx.ModelProto, entry: GraphEntry, backends: Sequence[Backend],
                   seed: int, against: Backend | None) -> list[VerifyRow]:
    """Rows of each backend for one loaded graph: against the reference, then (with ``against``) against that backend."""
    cases = entry.verification_cases(seed=seed)  # load_model gave the entry at the model's sizes
    module = entry.build().eval()
    expected = [reference_outputs(entry, module, case.inputs) for case in cases]
    cross_rows = [VerifyRow(entry.name, b.name, _precision(b, entry), against=against.name) for b in backends] if against else []
    against_outputs = _outputs_of(against, path, model, entry, cases, cross_rows) if against else None
    rows = []
    for i, backend in enumerate(backends):
        row = VerifyRow(entry.name, backend.name, _precision(backend, entry))
        comparisons = [(row, expected)]
        if against_outputs is not None:
            comparisons.append((cross_rows[i], against_outputs))
        _run_backend(backend, path, model, entry, cases, comparisons)
        rows.append(row)
        if cross_rows:
            rows.append(cross_rows[i])
    return rows


def _precision(backend: Backend, entry: GraphEntry) -> str:
    """The precision that runs: a float64 graph (``coco_match``) computes in float64 on a float32 backend."""
    floats = {spec.dtype for spec in entry.inputs if spec.dtype.startswith("float")}
    return "fp64" if floats == {"float64"} and backend.precision == "fp32" else backend.precision


def _run_backend(backend: Backend, path: Path, model: onnx.ModelProto, entry: GraphEntry, cases: Sequence[Case],
                 comparisons: list[tuple[VerifyRow, list[list[np.ndarray]]]]) -> None:
    """Run every case in every session of ``backend``; fold the outputs into each ``(row, wanted outputs)``."""
    rows = [row for row, _ in comparisons]
    reason = backend.unavailable_reason()
    if reason is not None:
        _mark(rows, unavailable=reason)
        return
    tolerance = backend.tolerance(entry)
    for row in rows:
        row.tolerance = tolerance
    try:
        with backend.sessions(path, model, entry) as sessions:
            for session in sessions:
                for row in rows:
                    row.provider = session.provider
                    row.notes.extend(note for note in session.notes if note not in row.notes)
                for case_index, case in enumerate(cases):
                    outputs = session.run(case.inputs)
                    got = [outputs[name] for name in entry.output_names]
                    for row, wanted in comparisons:
                        compare(entry, tolerance, row, case, session.label, got, wanted[case_index])
    except BackendUnavailable as err:
        _mark(rows, unavailable=str(err))
    except SessionError as err:
        _mark(rows, failure=str(err))


def _outputs_of(backend: Backend, path: Path, model: onnx.ModelProto, entry: GraphEntry, cases: Sequence[Case],
                rows: list[VerifyRow]) -> list[list[np.ndarray]] | None:
    """``backend``'s outputs per case (its first session), or None after marking ``rows`` with why not."""
    reason = backend.unavailable_reason()
    try:
        if reason is not None:
            raise BackendUnavailable(reason)
        with backend.sessions(path, model, entry) as sessions:
            first = sessions[0]
            return [[first.run(case.inputs)[name] for name in entry.output_names] for case in cases]
    except BackendUnavailable as err:
        _mark(rows, unavailable=f"{backend.name} (compared with) is unavailable: {err}")
    except SessionError as err:
        _mark(rows, failure=f"{backend.name} (compared with): {err}")
    return None


def _mark(rows: Sequence[VerifyRow], unavailable: str | None = None, failure: str | None = None) -> None:
    for row in rows:
        if unavailable is not None and row.unavailable is None:
            row.unavailable = unavailable
            row.provider = ""
            row.tolerance = None
        if failure is not None:
            row.failures.append(failure)


def write_json_report(path: str | os.PathLike, rows: Sequence[VerifyRow], seed: int, unavailable: dict[str, str]) -> None:
    """Every row (graph, backend, provider that ran, precision, cases, errors, verdict, failures) as JSON, atomically."""
    import onnxruntime

    report = {
        "seed": seed,
        "onnxruntime": onnxruntime.__version__,
        "unavailable_backends": unavailable,
        "rows": [{**asdict(row), "verdict": "unavailable" if row.unavailable is not None else row.verdict} for row in rows],
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(report, indent=2) + "\n").encode())
