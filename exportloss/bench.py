"""Side-by-side speed and memory of exported graphs, measured in one run and interleaved.

For each graph and size the benchmark exports the graph at that size (dynamo, default opset) and times
the backends below in interleaved rounds, so that machine noise hits all of them alike. In each round
every backend runs one untimed call and then a burst of timed calls: onnxruntime's and PyTorch's
worker threads go on spinning on the two cores for a while after a call, which would otherwise be
charged to whichever backend runs next.

(a) ``ort``: onnxruntime on the exported graph (``ORT_ENABLE_ALL``, ``threads`` intra-op threads);
(b) ``eager``: the same trace-friendly module in eager PyTorch (``torch.set_num_threads(threads)``);
(c) ``reference``: the float64 eager reference (skipped where it is a pure-Python loop over millions of pairs);
(d) ``anchor``: the implementation the graph replaces (torchvision.ops), when importable.

It reports medians with the interquartile range, the ratios (a)/(b) and (a)/(d), the exported graph's node
count, the peak memory of one cold call of (a) and (b), and for the box family a bandwidth floor: the bytes
the graph must read and write divided by a memory bandwidth measured in the same run. Targets are
ratios, checked at the end; a missed target makes ``exportloss bench`` exit with status 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import onnx
import torch

from . import catalog
from .export import export_graph, to_torch

MiB = 1 << 20
BURST = 3
"""Timed calls per backend per round; rounds rotate the backends' order."""


@dataclass(frozen=True)
class Target:
    """``ratio`` (``"ort/eager"``, ``"ort/anchor"`` or ``"ort/floor"``) must not exceed ``limit``."""

    ratio: str
    limit: float

    def describe(self) -> str:
        return f"{self.ratio} <= {self.limit:.3g}"


@dataclass(frozen=True)
class BenchCase:
    graph: str
    size: str
    shapes: dict[str, tuple[int, ...]]
    anchor: Callable[..., object] | None = None
    """Called with the float32 torch inputs in catalog order; ``None`` where no anchor exists."""
    anchor_name: str = ""
    targets: tuple[Target, ...] = ()
    build: Callable[[], object] | None = None
    """Replaces the catalog entry's module where the size needs other constructor arguments (class counts)."""
    memory_bound: bool = False
    """Report a bandwidth floor: bytes of all inputs and outputs over the measured bandwidth."""
    time_reference: bool = True


@dataclass
class Timing:
    median_ms: float
    q1_ms: float
    q3_ms: float
    samples: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Timing":
        ms = sorted(s * 1e3 for s in seconds)
        q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
        return cls(statistics.median(ms), q[0], q[2], len(ms))


@dataclass
class BenchRow:
    graph: str
    size: str
    nodes: int
    timings: dict[str, Timing]
    peak_mib: dict[str, float | None]
    anchor_name: str = ""
    floor_ms: float | None = None
    ratios: dict[str, float] = field(default_factory=dict)
    verdicts: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(ok for _, ok in self.verdicts)


def _torchvision_ops():
    try:
        import torchvision.ops
    except Exception:  # noqa: BLE001 - torchvision fails to import beside mismatched torch builds
        return None
    return torchvision.ops


NO_SLOWER_THAN_EAGER = Target("ort/eager", 1.0)


def default_cases() -> list[BenchCase]:
    """The sizes and targets of the performance issue; every other catalog graph runs at its catalog shape.

    Every case carries the target ``ort/eager <= 1``: a graph must not be slower in onnxruntime than
    its own module in eager PyTorch.
    """
    from .arcface import ArcFaceLoss
    from .catalog.classification import seeded
    from .center_loss import CenterLoss

    ops = _torchvision_ops()
    cases: list[BenchCase] = []

    def add(graph: str, size: str, shapes: dict, anchor_fn: str = "", anchor=None, targets=(), **options) -> None:
        available = ops is not None and anchor_fn
        cases.append(BenchCase(
            graph=graph, size=size, shapes=shapes,
            anchor=anchor(getattr(ops, anchor_fn)) if available else None,
            anchor_name=f"torchvision.ops.{anchor_fn}" if anchor_fn else "",
            targets=(NO_SLOWER_THAN_EAGER, *(t for t in targets if available or t.ratio != "ort/anchor")),
            **options,
        ))

    pairwise = {"iou": "box_iou", "giou": "generalized_box_iou", "diou": "distance_box_iou", "ciou": "complete_box_iou"}
    for kind, fn in pairwise.items():
        for n in (1000, 3000):
            add(f"pairwise_{kind}", f"N=M={n}", {"boxes1": (1, n, 4), "boxes2": (1, n, 4)}, fn,
                lambda f: lambda b1, b2: f(b1[0], b2[0]),
                (Target("ort/anchor", 1 / 3), Target("ort/floor", 10.0)), memory_bound=True, time_reference=n <= 1000)
    losses = {"iou": "", "giou": "generalized_box_iou_loss", "diou": "distance_box_iou_loss", "ciou": "complete_box_iou_loss"}
    pairs = 1_000_000
    for kind, fn in losses.items():
        add(f"{kind}_loss", "1e6 pairs", {"pred": (pairs, 4), "target": (pairs, 4)}, fn,
            lambda f: lambda p, t: f(p, t, reduction="mean"), (Target("ort/anchor", 0.5),),
            memory_bound=True, time_reference=False)
        add(f"aligned_{kind}", "1e6 pairs", {"boxes1": (1, pairs, 4), "boxes2": (1, pairs, 4)},
            memory_bound=True, time_reference=False)

    focal = (32, 8732, 21)
    add("focal_loss", "32x8732x21", {"logits": focal, "labels": focal[:2]})
    add("sigmoid_focal_loss", "32x8732x21", {"logits": focal, "targets": focal}, "sigmoid_focal_loss",
        lambda f: lambda x, t: f(x, t, reduction="none"), (Target("ort/anchor", 1 / 1.5),))
    for graph in ("soft_dice_loss", "dice_loss", "jaccard_loss", "tversky_loss", "dice_score"):
        label_map = len(catalog.get(graph).shapes()["target"]) == 3  # multiclass: [B, H, W] labels
        add(graph, "8x4x256x256", {"logits": (8, 4, 256, 256), "target": (8, 256, 256) if label_map else (8, 4, 256, 256)})
    add("arcface_loss", "512x512, 10000 classes", {"features": (512, 512), "labels": (512,)},
        build=lambda: seeded(ArcFaceLoss(512, 10_000)))
    add("center_loss", "4096x512, 1000 classes", {"features": (4096, 512), "labels": (4096,)},
        build=lambda: seeded(CenterLoss(1000, 512)))

    for graph in ("cluster_nms", "fast_nms"):
        # Reported against greedy NMS, without a target: the gap is explained in the README.
        add(graph, "B=2, N=1000, 80 classes", {}, "batched_nms", _greedy_nms_anchor)

    add("rotated_pairwise_iou", "N=M=1000", {"boxes1": (1, 1000, 5), "boxes2": (1, 1000, 5)}, time_reference=False)

    known = {case.graph for case in cases}
    for graph in catalog.names():
        if graph not in known:
            add(graph, "catalog", {})
    return cases


def _greedy_nms_anchor(batched_nms, candidates: int = 1000, score_thr: float = 0.05, iou_thr: float = 0.5,
                       max_det: int = 100):
    """torchvision's greedy C++ NMS on the same candidates as the graph: top pairs, threshold, NMS, cut."""

    def run(boxes, scores):
        detections = []
        for image_boxes, image_scores in zip(boxes, scores):
            top, index = image_scores.reshape(-1).topk(candidates)
            above = top > score_thr
            top, index = top[above], index[above]
            box_index, classes = index // image_scores.shape[-1], index % image_scores.shape[-1]
            keep = batched_nms(image_boxes[box_index], top, classes, iou_thr)[:max_det]
            detections.append((image_boxes[box_index[keep]], top[keep], classes[keep]))
        return detections

    return run


def measure_bandwidth(threads: int, nbytes: int = 256 * MiB, repeats: int = 5) -> float:
    """Bytes per second of a large copy (read + write) with ``threads`` threads."""
    src = torch.ones(nbytes // 4, dtype=torch.float32)
    dst = torch.empty_like(src)
    best = float("inf")
    with _torch_threads(threads):
        for _ in range(repeats):
            start = time.perf_counter()
            dst.copy_(src)
            best = min(best, time.perf_counter() - start)
    return 2 * nbytes / best


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def peak_memory_mib(fn: Callable[[], object]) -> float | None:
    """Growth of the resident set's high-water mark during one call (Linux; ``None`` elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return None
    base = _proc_status_kib("VmRSS")
    fn()
    return max(_proc_status_kib("VmHWM") - base, 0) / 1024


def _proc_status_kib(key: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def run_case(case: BenchCase, threads: int, bandwidth: float, workdir: Path, min_rounds: int = 7,
             budget_s: float = 4.0) -> BenchRow:
    import onnxruntime as ort

    entry = catalog.get(case.graph)
    if case.build is not None:
        entry = dataclasses.replace(entry, build=case.build)
    path = export_graph(entry, workdir, shapes=entry.shapes(case.shapes)).path
    nodes = len(onnx.load(str(path)).graph.node)
    inputs = entry.example_inputs(case.shapes)
    tensors = to_torch(inputs)
    args = [tensors[spec.name] for spec in entry.inputs]
    args64 = [a.double() if a.is_floating_point() else a for a in args]
    module = entry.build().eval()

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    backends: dict[str, Callable[[], object]] = {
        "ort": lambda: session.run(None, inputs),
        "eager": lambda: module(*args),
    }
    if case.time_reference:
        backends["reference"] = lambda: entry.reference(module, *args64)
    if case.anchor is not None:
        backends["anchor"] = lambda: case.anchor(*args)

    samples: dict[str, list[float]] = {name: [] for name in backends}
    peaks: dict[str, float | None] = {}
    with _torch_threads(threads), torch.inference_mode():
        for name in ("ort", "eager"):
            peaks[name] = peak_memory_mib(backends[name])
        for fn in backends.values():
            fn()
        start = time.perf_counter()
        rounds = 0
        while rounds < min_rounds or (time.perf_counter() - start < budget_s and rounds < 200):
            order = list(backends.items())
            order = order[rounds % len(order):] + order[: rounds % len(order)]
            for name, fn in order:
                if name == "reference" and sum(samples[name]) > budget_s / 2 and len(samples[name]) >= 3:
                    continue
                # The first call of a burst is not timed: it pays for the previous backend's worker
                # threads, which keep spinning on the cores for a while after their call returns.
                fn()
                for _ in range(BURST if name != "reference" else 1):
                    t0 = time.perf_counter()
                    fn()
                    samples[name].append(time.perf_counter() - t0)
            rounds += 1

    timings = {name: Timing.of(values) for name, values in samples.items()}
    row = BenchRow(case.graph, case.size, nodes, timings, peaks, case.anchor_name)
    ort_ms = timings["ort"].median_ms
    row.ratios["ort/eager"] = ort_ms / timings["eager"].median_ms
    if "anchor" in timings:
        row.ratios["ort/anchor"] = ort_ms / timings["anchor"].median_ms
    if case.memory_bound:
        moved = sum(a.nbytes for a in inputs.values()) + sum(o.nbytes for o in session.run(None, inputs))
        row.floor_ms = moved / bandwidth * 1e3
        row.ratios["ort/floor"] = ort_ms / row.floor_ms
    for target in case.targets:
        if target.ratio in row.ratios:
            row.verdicts.append((target.describe(), row.ratios[target.ratio] <= target.limit))
    return row


def run(names: Sequence[str] = (), sizes: Sequence[str] = (), threads: int = 2,
        on_row: Callable[[BenchRow], None] | None = None) -> tuple[list[BenchRow], float]:
    cases = [c for c in default_cases() if (not names or c.graph in names) and (not sizes or c.size in sizes)]
    bandwidth = measure_bandwidth(threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            row = run_case(case, threads, bandwidth, Path(tmp))
            rows.append(row)
            if on_row:
                on_row(row)
    return rows, bandwidth


def to_json(rows: Sequence[BenchRow], bandwidth: float, threads: int) -> str:
    from .export import versions

    return json.dumps({
        "threads": threads,
        "bandwidth_gb_s": bandwidth / 1e9,
        "versions": versions(),
        "rows": [asdict(row) | {"passed": row.passed} for row in rows],
    }, indent=2)


def summary_rows(rows: Sequence[BenchRow]) -> list[list[str]]:
    """Table cells, shared by the CLI table and the README's results table."""
    def ms(row: BenchRow, name: str) -> str:
        t = row.timings.get(name)
        if t is None:
            return "—"
        spread = (t.q3_ms - t.q1_ms) / 2 / t.median_ms * 100
        return f"{t.median_ms:.3g} ±{spread:.0f}%"

    def ratio(row: BenchRow, name: str) -> str:
        return f"{row.ratios[name]:.2f}" if name in row.ratios else "—"

    def mem(row: BenchRow) -> str:
        values = [row.peak_mib.get(k) for k in ("ort", "eager")]
        return "/".join("—" if v is None else f"{v:.0f}" for v in values)

    return [
        [row.graph, row.size, str(row.nodes), ms(row, "ort"), ms(row, "eager"), ms(row, "reference"), ms(row, "anchor"),
         ratio(row, "ort/eager"), ratio(row, "ort/anchor"),
         "—" if row.floor_ms is None else f"{row.floor_ms:.3g}", ratio(row, "ort/floor"), mem(row),
         "PASS" if row.passed else "FAIL: " + "; ".join(t for t, ok in row.verdicts if not ok)]
        for row in rows
    ]


HEADERS = ["graph", "size", "nodes", "ort ms", "eager ms", "ref ms", "anchor ms", "ort/eager", "ort/anchor",
           "floor ms", "ort/floor", "peak MiB ort/eager", "targets"]
"""Times are medians ± half the interquartile range, in percent of the median."""


def markdown_table(rows: Sequence[BenchRow]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(cells) + " |" for cells in summary_rows(rows)]
    return "\n".join(lines)


__all__ = ["BenchCase", "BenchRow", "Target", "default_cases", "markdown_table", "run", "to_json"]
