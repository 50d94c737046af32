"""Run exported graphs in onnxruntime and compare them with the float64 eager references.

Each graph runs on fresh seeded inputs (never the export example: the TorchScript exporter can bake
tensor values into constants, and only new inputs catch that) and on the catalog entry's edge
cases, at both ``ORT_DISABLE_ALL`` (what the exporter wrote) and ``ORT_ENABLE_ALL`` (what
onnxruntime's optimiser makes of it), on the CPU provider and on CUDA / TensorRT providers when the
installed onnxruntime has them.

An output element passes when ``|onnx - reference| <= atol + rtol * |reference|`` with the entry's
tolerances; the report's relative error is ``|onnx - reference| / max(|reference|, atol)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from . import catalog
from .catalog import Case, GraphEntry
from .export import METADATA_GRAPH, to_torch
from .model_files import load_model

OPT_LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_ALL")
PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


@dataclass
class VerifyRow:
    graph: str
    backend: str
    cases: int = 0
    max_abs: float = 0.0
    max_rel: float = 0.0
    worst_case: str = ""
    failures: list[str] | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


def graph_name(model: onnx.ModelProto, path: Path) -> str:
    """The catalog name stamped into the model at export, else the file stem."""
    props = {p.key: p.value for p in model.metadata_props}
    return props.get(METADATA_GRAPH, path.stem)


def input_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    return {
        value.name: tuple(dim.dim_value for dim in value.type.tensor_type.shape.dim)
        for value in model.graph.input
    }


def reference_outputs(entry: GraphEntry, module: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The eager reference in float64 (integer and boolean inputs keep their dtype)."""
    tensors = to_torch(inputs)
    args = [t.double() if t.is_floating_point() else t for t in (tensors[spec.name] for spec in entry.inputs)]
    with torch.no_grad():
        out = entry.reference(module, *args)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o.detach().cpu().numpy() for o in outs]


def available_providers() -> list[str]:
    import onnxruntime as ort

    return [p for p in PROVIDERS if p in ort.get_available_providers()]


def compare(entry: GraphEntry, row: VerifyRow, case: Case, label: str, got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    """Fold one case's outputs into ``row``."""
    row.cases += 1
    for name, actual, expected in zip(entry.outputs, got, want):
        where = f"{case.name}/{label}/{name}"
        if actual.shape != expected.shape:
            row.failures.append(f"{where}: shape {list(actual.shape)} != reference {list(expected.shape)}")
            continue
        actual64 = actual.astype(np.float64)
        expected64 = expected.astype(np.float64)
        if not np.all(np.isfinite(actual64)):
            row.failures.append(f"{where}: non-finite output")
            continue
        err = np.abs(actual64 - expected64)
        max_abs = float(err.max(initial=0.0))
        max_rel = float((err / np.maximum(np.abs(expected64), entry.atol)).max(initial=0.0))
        if max_abs > row.max_abs:
            row.worst_case = where
        row.max_abs = max(row.max_abs, max_abs)
        row.max_rel = max(row.max_rel, max_rel)
        bad = err > entry.atol + entry.rtol * np.abs(expected64)
        if bad.any():
            index = np.unravel_index(int(np.argmax(err - entry.rtol * np.abs(expected64))), err.shape)
            row.failures.append(
                f"{where}: {int(bad.sum())} element(s) out of tolerance; at {list(index)} "
                f"got {actual64[index]:.8g}, reference {expected64[index]:.8g}"
            )


def verify_model(
    path: str | os.PathLike,
    seed: int = 20261128,
    providers: Sequence[str] | None = None,
    entry: GraphEntry | None = None,
) -> list[VerifyRow]:
    """Verify one ONNX file; returns one row per execution provider."""
    import onnxruntime as ort

    path = Path(path)
    model, entry = load_model(path, entry)
    module = entry.build().eval()
    cases = entry.verification_cases(input_shapes(model), seed=seed)
    expected = [reference_outputs(entry, module, case.inputs) for case in cases]
    rows = []
    for provider in providers or available_providers():
        row = VerifyRow(entry.name, _short(provider), failures=[])
        for level in OPT_LEVELS:
            options = ort.SessionOptions()
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
            options.log_severity_level = 3
            session = ort.InferenceSession(str(path), options, providers=[provider])
            for case, want in zip(cases, expected):
                got = session.run(list(entry.outputs), case.inputs)
                compare(entry, row, case, level, got, want)
        rows.append(row)
    return rows


def _short(provider: str) -> str:
    return "ort-" + provider.removesuffix("ExecutionProvider").lower()


def verify_graphs(
    entries: Sequence[GraphEntry],
    models_dir: str | os.PathLike = "models",
    seed: int = 20261128,
    on_row: Callable[[VerifyRow], None] | None = None,
) -> list[VerifyRow]:
    """:func:`verify_model` on ``models_dir/NAME.onnx`` of each entry."""
    return for_each_graph(entries, models_dir, lambda entry, path: verify_model(path, seed=seed, entry=entry), on_row)


def for_each_graph(
    entries: Sequence[GraphEntry],
    models_dir: str | os.PathLike,
    verify_one: Callable[[GraphEntry, Path], list[VerifyRow]],
    on_row: Callable[[VerifyRow], None] | None,
) -> list[VerifyRow]:
    """``verify_one(entry, models_dir/NAME.onnx)`` for each entry; a missing file is a failed row."""
    rows = []
    for entry in entries:
        path = Path(models_dir) / f"{entry.name}.onnx"
        if path.exists():
            new_rows = verify_one(entry, path)
        else:
            new_rows = [VerifyRow(entry.name, "-", failures=[f"{path} does not exist; run `exportloss export {entry.name}`"])]
        for row in new_rows:
            if on_row:
                on_row(row)
        rows.extend(new_rows)
    return rows
