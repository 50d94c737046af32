"""One benchmark row per case: export, build every backend, time them interleaved, judge the targets."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch

from .. import catalog
from ..export import export_graph, to_torch
from ..onnx_graph import model_nodes
from .cases import ANCHOR, ANCHOR_WARM, EAGER, EAGER_WARM, FLOOR, PER_PAIR, PER_PAIR_OVER_FLOOR, REFERENCE, BenchCase, \
    Target, default_cases, pair_count
from .intervals import FAIL, NOISE, PASS, Estimate, RatioFn, bootstrap, verdict
from .timing import (QUIET_SHARE, Backend, Measurement, Timing, burst_calls, floor_backends, interleaved, local_backend,
                     measure_bandwidth, peak_memory_mib, torch_threads)
from .warm import WARM, WarmWorker

REFERENCE_LIMIT_S = 0.5
"""The float64 reference is timed only where one call takes less (it is a pure-Python loop on large inputs)."""

AT_BASE = " at 1000²"
"""Suffix of the backends that time the same graph at N = M = 1000 beside a pairwise row (``ort at 1000²``)."""


@dataclass(frozen=True)
class Judgement:
    """One target's verdict: the ratio, its interval and :data:`~.intervals.PASS`, ``FAIL`` or ``within noise``."""

    ratio: str
    limit: float
    value: float
    low: float
    high: float
    verdict: str


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
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Each ratio's interval (:mod:`.intervals`) from the kept rounds."""
    verdicts: list[Judgement] = field(default_factory=list)
    rounds_kept: int = 0
    rounds_run: int = 0
    quiet: bool = True
    others_share: float | None = None
    rounds: list[dict[str, list[float]]] = field(default_factory=list)
    """The kept rounds' timed calls in seconds, per backend: the samples of every interval."""

    @property
    def status(self) -> str:
        """``FAIL`` if a target failed, else ``within noise`` if one could not be told, else ``PASS``; ``""``
        without targets."""
        found = {j.verdict for j in self.verdicts}
        return next((v for v in (FAIL, NOISE, PASS) if v in found), "")

    @property
    def failed(self) -> bool:
        return self.status == FAIL

    @property
    def ns_per_pair(self) -> float | None:
        return None if self.pairs is None else self.timings["ort"].median_ms * 1e6 / self.pairs

    def estimate(self, ratio: str) -> Estimate:
        return Estimate(self.ratios[ratio], *self.intervals[ratio])

    @classmethod
    def from_dict(cls, record: dict) -> "BenchRow":
        """The row :func:`dataclasses.asdict` wrote; ``TypeError``/``KeyError``/``ValueError`` on anything else."""
        names = {f.name for f in dataclasses.fields(cls)}
        row = cls(**{k: v for k, v in record.items() if k in names})
        row.timings = {k: Timing(**v) for k, v in row.timings.items()}
        row.intervals = {k: (float(low), float(high)) for k, (low, high) in row.intervals.items()}
        row.verdicts = [Judgement(**v) for v in row.verdicts]
        if set(row.intervals) != set(row.ratios) or any(j.verdict not in (PASS, FAIL, NOISE) for j in row.verdicts):
            raise ValueError(f"row {row.graph} {row.size}: ratios without intervals or an unknown verdict")
        return row


def judge(row: BenchRow, targets: Sequence[Target]) -> None:
    """Verdicts of the targets whose ratio the row has, from each ratio's interval."""
    row.verdicts = [Judgement(t.ratio, t.limit, row.ratios[t.ratio], *row.intervals[t.ratio],
                              verdict(row.estimate(t.ratio), t.limit))
                    for t in targets if t.ratio in row.ratios]


def ratio_functions(case: BenchCase, names: Sequence[str], read_s: float, base_read_s: float = 0.0) -> dict[str, RatioFn]:
    """Every ratio the row reports, as a function of the backends' medians (seconds), for :func:`.intervals.bootstrap`.

    ``read_s``: the inputs read at the run's copy bandwidth, part of the output floor; ``base_read_s`` likewise
    for the N = M = 1000 graph beside a pairwise row.
    """
    fns: dict[str, RatioFn] = {}
    for ratio, name in ((EAGER, "eager"), (EAGER_WARM, "eager" + WARM), (ANCHOR, "anchor"), (ANCHOR_WARM, "anchor" + WARM)):
        if name in names:
            fns[ratio] = lambda m, name=name: m["ort"] / m[name]
    if case.backends is not None and "reference" in names:
        fns[REFERENCE] = lambda m: m["ort"] / m["reference"]
    if "fresh" in names:
        fns[FLOOR] = lambda m: m["ort"] / (read_s + m["fresh"])
    base = case.base_entry()
    if base is not None:
        pairs, base_pairs = case.pairs, pair_count(base)
        fns[PER_PAIR] = lambda m: (m["ort"] / pairs) / (m["ort" + AT_BASE] / base_pairs)

        def net_per_pair(m):
            base_net = np.asarray(m["ort" + AT_BASE] - base_read_s - m["fresh" + AT_BASE], dtype=float)
            safe = np.where(base_net > 0, base_net, np.nan)  # at or below its floor: undefined, not huge
            return ((m["ort"] - read_s - m["fresh"]) / pairs) / (safe / base_pairs)

        fns[PER_PAIR_OVER_FLOOR] = net_per_pair
    return fns


def _export(entry: catalog.GraphEntry, workdir: Path) -> Path:
    """The entry exported into its own folder of ``workdir`` (one per graph and shapes), exported once per run."""
    key = hashlib.sha1(repr((entry.name, sorted(entry.shapes().items()), sorted(entry.sizes.items()))).encode())
    path = workdir / key.hexdigest()[:12] / f"{entry.name}.onnx"
    return path if path.exists() else export_graph(entry, path.parent).path


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _input_bytes(inputs: dict) -> int:
    return sum(a.nbytes for a in inputs.values())


def _first_calls(fns: dict[str, Callable[[], object]]) -> dict[str, float]:
    """Seconds of each function's first call (exports, caches and lazy imports happen here, untimed)."""
    first = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
    return first


def _measure(case: BenchCase, backends: list[Backend], first: dict[str, float], ratios: dict[str, RatioFn],
             min_rounds: int, time_limit_s: float, quiet_share: float) -> Measurement:
    """Interleaved rounds of ``backends``, more while a target of ``case`` is within noise."""
    calls = {b.name: burst_calls(first.get(b.name, 0.0)) for b in backends}
    judged = [(ratios[t.ratio], t.limit) for t in case.targets if t.ratio in ratios]

    def undecided(rounds) -> bool:
        return any(verdict(bootstrap(rounds, fn), limit) == NOISE for fn, limit in judged)

    return interleaved(backends, calls, min_rounds, time_limit_s, quiet_share, undecided)


def _row(case: BenchCase, measured, ratios: dict[str, RatioFn], nodes: int, peaks: dict, pairs: int | None) -> BenchRow:
    """The row of a measurement: timings (the floor's parts renamed), ratios with intervals, verdicts."""
    timings = dict(measured.timings)
    for part in ("fill", "fresh"):
        if part in timings:
            timings["floor " + part] = timings.pop(part)
    row = BenchRow(case.graph, case.size, nodes, timings, peaks, case.anchor_name, pairs,
                   rounds_kept=measured.rounds_kept, rounds_run=measured.rounds_run, quiet=measured.quiet,
                   others_share=measured.others_share, rounds=measured.rounds)
    for ratio, fn in ratios.items():
        estimate = bootstrap(measured.rounds, fn)
        row.ratios[ratio] = estimate.value
        row.intervals[ratio] = (estimate.low, estimate.high)
    judge(row, case.targets)
    return row


def _call(fn: Callable, prepare: Callable | None) -> object:
    return fn() if prepare is None else fn(prepare())


def run_backends_case(case: BenchCase, threads: int, min_rounds: int = 5, time_limit_s: float = 20.0,
                      quiet_share: float = QUIET_SHARE) -> BenchRow:
    """A case timed without the catalog (:attr:`BenchCase.backends`): its backends in this process, one untimed
    call each first; a missing anchor is named in the row's anchor column and its targets go unjudged."""
    roles, missing = case.backends(threads)
    with torch_threads(threads):
        # The first calls (the one-time exports among them) only size the bursts; the copies count there, not later.
        first = _first_calls({name: functools.partial(_call, fn, prepare) for name, (fn, prepare) in roles.items()})
        backends = [local_backend(name, fn, prepare) for name, (fn, prepare) in roles.items()]
        ratios = ratio_functions(case, list(roles), 0.0)
        measured = _measure(case, backends, first, ratios, min_rounds, time_limit_s, quiet_share)
    row = _row(case, measured, ratios, 0, {}, None)
    if missing:
        row.anchor_name = "; ".join([*([case.anchor_name] if "anchor" in roles else []), *missing.values()])
    return row


def run_case(case: BenchCase, threads: int, bandwidth: float, workdir: Path, min_rounds: int = 5,
             time_limit_s: float = 20.0, quiet_share: float = QUIET_SHARE, warm: bool = True) -> BenchRow:
    if case.backends is not None:
        return run_backends_case(case, threads, min_rounds, time_limit_s, quiet_share)
    entry = case.entry()
    path = _export(entry, workdir)
    nodes = sum(1 for _ in model_nodes(onnx.load(str(path))))
    inputs = entry.example_inputs()
    tensors = to_torch(inputs)
    args = [tensors[spec.name] for spec in entry.inputs]
    args64 = [a.double() if a.is_floating_point() else a for a in args]
    module = entry.build().eval()
    session = _session(path, threads)

    fns: dict[str, Callable[[], object]] = {"ort": lambda: session.run(None, inputs)}
    if not case.scaling_only:
        fns["eager"] = lambda: module(*args)
        if case.time_reference:
            fns["reference"] = lambda: entry.reference(module, *args64)
        if case.anchor is not None:
            fns["anchor"] = lambda: case.anchor(*args)
    outputs = session.run(None, inputs)
    base = case.base_entry()
    base_read_s = 0.0
    if base is not None:
        base_inputs = base.example_inputs()
        base_session = _session(_export(base, workdir), threads)
        fns["ort" + AT_BASE] = lambda: base_session.run(None, base_inputs)
        base_outputs = base_session.run(None, base_inputs)
        base_read_s = _input_bytes(base_inputs) / bandwidth

    worker = WarmWorker(case.graph, case.size, case.shapes, threads) if warm and not case.scaling_only else None
    try:
        with torch_threads(threads), torch.inference_mode():
            first = _first_calls(fns)
            if first.get("reference", 0.0) > REFERENCE_LIMIT_S:
                del fns["reference"]
            peaks = {name: peak_memory_mib(fns[name]) for name in ("ort", "eager") if name in fns}
            backends: list[Backend] = [local_backend(name, fn) for name, fn in fns.items()]
            if case.memory_bound:
                backends += floor_backends([o.size for o in outputs])
            if base is not None:
                backends += floor_backends([o.size for o in base_outputs], AT_BASE)
            if worker is not None:
                backends += worker.backends()
                first |= {name + WARM: s for name, s in worker.first_calls.items()}
            read_s = _input_bytes(inputs) / bandwidth
            ratios = ratio_functions(case, [b.name for b in backends], read_s, base_read_s)
            measured = _measure(case, backends, first, ratios, min_rounds, time_limit_s, quiet_share)
    finally:
        if worker is not None:
            worker.close()

    row = _row(case, measured, ratios, nodes, peaks, case.pairs)
    if case.memory_bound:
        row.floor_ms = read_s * 1e3 + row.timings["floor fresh"].median_ms
    return row


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
            if on_row:
                on_row(rows[-1])
    return rows, bandwidth
