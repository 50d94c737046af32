"""One benchmark row per case: export, build every backend, time them interleaved, judge the targets."""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import onnx
import torch

from ..export import export_graph, to_torch
from ..onnx_graph import model_nodes
from .cases import SCALING, BenchCase, Target, default_cases
from .timing import (QUIET_SHARE, Backend, Timing, burst_calls, floor_backends, interleaved, local_backend,
                     measure_bandwidth, peak_memory_mib, torch_threads)
from .warm import WARM, WarmWorker

REFERENCE_LIMIT_S = 0.5
"""The float64 reference is timed only where one call takes less (it is a pure-Python loop on large inputs)."""


@dataclass
class BenchRow:
    graph: str
    size: str
    nodes: int
    timings: dict[str, Timing]
    peak_mib: dict[str, float | None]
    anchor_name: str = ""
    pairs: int | None = None
    floor_ms: float | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    verdicts: list[tuple[str, bool]] = field(default_factory=list)
    rounds_kept: int = 0
    rounds_run: int = 0
    quiet: bool = True
    others_share: float | None = None

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts)

    @property
    def ns_per_pair(self) -> float | None:
        return None if self.pairs is None else self.timings["ort"].median_ms * 1e6 / self.pairs

    @classmethod
    def from_dict(cls, record: dict) -> "BenchRow":
        names = {f.name for f in dataclasses.fields(cls)}
        row = cls(**{k: v for k, v in record.items() if k in names})
        row.timings = {k: Timing(**v) for k, v in row.timings.items()}
        row.verdicts = [tuple(v) for v in row.verdicts]
        return row


def judge(row: BenchRow, targets: Sequence[Target]) -> None:
    """Verdicts of the targets whose ratio the row has (a ratio another row supplies may come later)."""
    row.verdicts = [(t.describe(), row.ratios[t.ratio] <= t.limit) for t in targets if t.ratio in row.ratios]


def run_case(case: BenchCase, threads: int, bandwidth: float, workdir: Path, min_rounds: int = 5,
             time_limit_s: float = 12.0, quiet_share: float = QUIET_SHARE, warm: bool = True) -> BenchRow:
    import onnxruntime as ort

    entry = case.entry()
    path = export_graph(entry, workdir).path
    nodes = sum(1 for _ in model_nodes(onnx.load(str(path))))
    inputs = entry.example_inputs()
    tensors = to_torch(inputs)
    args = [tensors[spec.name] for spec in entry.inputs]
    args64 = [a.double() if a.is_floating_point() else a for a in args]
    module = entry.build().eval()

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    fns: dict[str, Callable[[], object]] = {"ort": lambda: session.run(None, inputs)}
    if not case.scaling_only:
        fns["eager"] = lambda: module(*args)
        if case.time_reference:
            fns["reference"] = lambda: entry.reference(module, *args64)
        if case.anchor is not None:
            fns["anchor"] = lambda: case.anchor(*args)
    outputs = session.run(None, inputs)

    worker = WarmWorker(case.graph, case.size, case.shapes, threads) if warm and not case.scaling_only else None
    try:
        with torch_threads(threads), torch.inference_mode():
            first: dict[str, float] = {}
            for name, fn in fns.items():
                start = time.perf_counter()
                fn()
                first[name] = time.perf_counter() - start
            if first.get("reference", 0.0) > REFERENCE_LIMIT_S:
                del fns["reference"]
            peaks = {name: peak_memory_mib(fns[name]) for name in ("ort", "eager") if name in fns}
            backends: list[Backend] = [local_backend(name, fn) for name, fn in fns.items()]
            if case.memory_bound:
                backends += floor_backends([o.size for o in outputs])
            if worker is not None:
                backends += worker.backends()
                first |= {name + WARM: s for name, s in worker.first_calls.items()}
            calls = {b.name: burst_calls(first.get(b.name, 0.0)) for b in backends}
            measured = interleaved(backends, calls, min_rounds, time_limit_s, quiet_share)
    finally:
        if worker is not None:
            worker.close()

    timings = measured.timings
    row = BenchRow(case.graph, case.size, nodes, {k: v for k, v in timings.items() if k not in ("fill", "fresh")},
                   peaks, case.anchor_name, case.pairs, rounds_kept=measured.rounds_kept, rounds_run=measured.rounds_run,
                   quiet=measured.quiet, others_share=measured.others_share)
    ort_ms = timings["ort"].median_ms
    for name in ("eager", "eager" + WARM, "anchor", "anchor" + WARM):
        if name in timings:
            row.ratios[f"ort/{name}"] = ort_ms / timings[name].median_ms
    if case.memory_bound:
        read_ms = sum(a.nbytes for a in inputs.values()) / bandwidth * 1e3
        row.timings["floor fill"] = timings["fill"]
        row.timings["floor fresh"] = timings["fresh"]
        row.floor_ms = read_ms + timings["fresh"].median_ms
        row.ratios["ort/floor"] = ort_ms / row.floor_ms
    judge(row, case.targets)
    return row


def add_scaling_ratios(rows: Sequence[BenchRow], cases: Sequence[BenchCase]) -> None:
    """``ns/pair ÷ N=M=1000`` for every pairwise row, against the same graph's N = M = 1000 row, and its verdict."""
    base = {row.graph: row.ns_per_pair for row in rows if row.size == "N=M=1000" and row.pairs}
    for row, case in zip(rows, cases):
        if row.pairs and row.graph in base:
            row.ratios[SCALING.ratio] = row.ns_per_pair / base[row.graph]
            judge(row, case.targets)


def select_cases(names: Sequence[str] = (), sizes: Sequence[str] = ()) -> list[BenchCase]:
    """Cases of the named graphs (all by default) at the given size labels (all by default).

    Raises ``ValueError`` naming the unknown graphs or sizes, or a combination that selects nothing.
    """
    cases = default_cases()
    graphs = {c.graph for c in cases}
    unknown = [n for n in names if n not in graphs]
    if unknown:
        raise ValueError(f"no benchmark for {', '.join(unknown)}; benchmarked graphs: {', '.join(sorted(graphs))}")
    named = [c for c in cases if not names or c.graph in names]
    labels = list(dict.fromkeys(c.size for c in named))
    bad = [s for s in sizes if s not in labels]
    if bad:
        raise ValueError(f"no benchmark size {', '.join(map(repr, bad))}"
                         f"{' for ' + ', '.join(names) if names else ''}; sizes: {', '.join(labels)}")
    return [c for c in named if not sizes or c.size in sizes]


def run(names: Sequence[str] = (), sizes: Sequence[str] = (), threads: int = 2,
        on_row: Callable[[BenchRow], None] | None = None, **options) -> tuple[list[BenchRow], float]:
    """Every selected case (see :func:`select_cases`), in order; ``options`` go to :func:`run_case`."""
    cases = select_cases(names, sizes)
    bandwidth = measure_bandwidth(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rows.append(run_case(case, threads, bandwidth, Path(tmp), **options))
            add_scaling_ratios(rows, cases)
            if on_row:
                on_row(rows[-1])
    return rows, bandwidth
