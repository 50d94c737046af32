"""``exportloss bench --device cuda``: onnxruntime's CUDA provider against torchvision and torch.compile on the GPU.

Per row (:data:`CUDA_CASES`), all on device 0 with inputs already on the device:

* ``ort``: the exported graph in onnxruntime's CUDA provider through IO binding (inputs and outputs
  bound to device memory, so no host copies are timed);
* ``ort graph``: the same with the provider option ``enable_cuda_graph`` (one captured CUDA graph
  replayed per run; needs every node on the CUDA provider); ``—`` with the reason where capture fails;
* ``eager``: the torchvision function on CUDA tensors; ``compiled``: ``torch.compile`` of that function;
* ``floor``: a device-to-device copy of as many bytes as the inputs and the output together (every
  byte the graph must touch, read once and written once).

Every timing synchronises the device before the clock stops. The target of each row: the faster of
``ort`` and ``ort graph`` is no slower than ``eager``. :func:`capture_report` tries CUDA-graph capture
for every catalog graph at its catalog shape; a graph that cannot be captured is a missed target.

Only :func:`main` and the ``_time_*`` helpers touch a GPU; selection, rows, tables and JSON are plain
Python and are tested on CPU-only machines, and so is the "unavailable" path.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import catalog

BACKENDS = ("ort", "ort graph", "eager", "compiled", "floor")


class Unavailable(RuntimeError):
    """The CUDA provider, a CUDA device or torchvision is missing: the GPU bench cannot run here."""


@dataclass(frozen=True)
class CudaCase:
    graph: str
    size: str
    shapes: dict[str, tuple[int, ...]]
    anchor: str
    """Name of the torchvision.ops function the graph replaces."""
    unbatched: bool = False
    """The catalog input is ``[1, N, 4]`` and the anchor takes ``[N, 4]``."""
    anchor_kwargs: dict = field(default_factory=dict)


def _cases() -> list[CudaCase]:
    cases = []
    for kind, fn in (("iou", "box_iou"), ("ciou", "complete_box_iou")):
        for n in (1000, 3000, 10_000):
            cases.append(CudaCase(f"pairwise_{kind}", f"N=M={n}", {"boxes1": (1, n, 4), "boxes2": (1, n, 4)}, fn, True))
    cases.append(CudaCase("ciou_loss", "1e6 pairs", {"pred": (1_000_000, 4), "target": (1_000_000, 4)},
                          "complete_box_iou_loss", anchor_kwargs={"reduction": "mean"}))
    focal = (32, 8732, 21)
    cases.append(CudaCase("sigmoid_focal_loss", "32x8732x21", {"logits": focal, "targets": focal}, "sigmoid_focal_loss",
                          anchor_kwargs={"reduction": "none"}))
    return cases


CUDA_CASES = _cases()


def select(names: Sequence[str] = (), sizes: Sequence[str] = ()) -> list[CudaCase]:
    """Cases of the named graphs at the given sizes (all by default); ``ValueError`` naming what is unknown."""
    graphs = list(dict.fromkeys(c.graph for c in CUDA_CASES))
    unknown = [n for n in names if n not in graphs]
    if unknown:
        raise ValueError(f"no GPU benchmark for {', '.join(unknown)}; GPU-benchmarked graphs: {', '.join(graphs)}")
    named = [c for c in CUDA_CASES if not names or c.graph in names]
    labels = list(dict.fromkeys(c.size for c in named))
    bad = [s for s in sizes if s not in labels]
    if bad:
        raise ValueError(f"no GPU benchmark size {', '.join(map(repr, bad))}; sizes: {', '.join(labels)}")
    return [c for c in named if not sizes or c.size in sizes]


@dataclass
class CudaRow:
    graph: str
    size: str
    ms: dict[str, float | None]
    """Median milliseconds per backend of :data:`BACKENDS`; ``None`` where it did not run."""
    notes: dict[str, str] = field(default_factory=dict)
    """Why a backend did not run (for example the CUDA-graph capture error)."""

    @property
    def best_ort_ms(self) -> float | None:
        times = [t for t in (self.ms.get("ort"), self.ms.get("ort graph")) if t is not None]
        return min(times) if times else None

    @property
    def ratio(self) -> float | None:
        """Best onnxruntime time over torchvision eager's."""
        eager = self.ms.get("eager")
        return None if self.best_ort_ms is None or not eager else self.best_ort_ms / eager

    @property
    def passed(self) -> bool:
        return self.ratio is not None and self.ratio <= 1.0


def table_rows(rows: Sequence[CudaRow]) -> list[list[str]]:
    def ms(row: CudaRow, name: str) -> str:
        value = row.ms.get(name)
        return f"{value:.3g}" if value is not None else "—"

    return [[row.graph, row.size, *(ms(row, b) for b in BACKENDS),
             "—" if row.ratio is None else f"{row.ratio:.2f}", "PASS" if row.passed else "FAIL: ort <= eager"]
            for row in rows]


TABLE_HEADERS = ["graph", "size", *(f"{b} ms" for b in BACKENDS), "ort/eager", "target"]


def to_json(rows: Sequence[CudaRow], capture: dict[str, str], device: str, versions: dict) -> str:
    return json.dumps({
        "device": device, "versions": versions,
        "rows": [asdict(r) | {"ort/eager": r.ratio, "passed": r.passed} for r in rows],
        "cuda_graph_capture": capture,
        "capture_failures": sorted(name for name, result in capture.items() if result != "ok"),
    }, indent=2)


def check_available() -> None:
    """Raise :class:`Unavailable` with a one-line reason unless the CUDA provider, a device and torchvision load."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise Unavailable(f"unavailable: onnxruntime does not import ({err})") from None
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise Unavailable("unavailable: onnxruntime's CUDA provider is not in this build "
                          f"(providers: {', '.join(ort.get_available_providers())}); install onnxruntime-gpu")
    import torch

    if not torch.cuda.is_available():
        raise Unavailable("unavailable: torch sees no CUDA device")
    try:
        import torchvision.ops  # noqa: F401
    except Exception as err:  # noqa: BLE001 - torchvision fails to import beside mismatched torch builds
        raise Unavailable(f"unavailable: torchvision does not import ({err})") from None


def main(names: Sequence[str], sizes: Sequence[str], json_path: str | None, console) -> int:
    from rich.table import Table

    from ..export import versions

    cases = select(names, sizes)
    check_available()
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            rows.append(_run_case(case, Path(tmp)))
        capture = capture_report(Path(tmp))
    table = Table(title=f"exportloss bench --device cuda ({torch.cuda.get_device_name(0)}): medians in ms")
    for header in TABLE_HEADERS:
        table.add_column(header)
    for cells in table_rows(rows):
        table.add_row(*cells)
    console.print(table)
    failures = [name for name, result in capture.items() if result != "ok"]
    console.print(f"CUDA-graph capture: {len(capture) - len(failures)}/{len(capture)} catalog graphs"
                  + "".join(f"\n  {name}: {capture[name]}" for name in failures))
    if json_path:
        Path(json_path).write_text(to_json(rows, capture, torch.cuda.get_device_name(0), versions()))
    return 1 if failures or not all(r.passed for r in rows) else 0


# --- the parts that need a GPU -------------------------------------------------------------------------


def _time(fn: Callable[[], object], repeats: int = 20) -> float:
    """Median milliseconds of ``fn`` with the device synchronised around each call (after 3 warm-up calls)."""
    import statistics

    import torch

    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def _ort_runner(path: Path, inputs: dict, cuda_graph: bool) -> Callable[[], object]:
    """A zero-argument run of ``path`` in the CUDA provider with inputs and outputs bound to device memory."""
    import numpy as np
    import onnxruntime as ort

    provider = ("CUDAExecutionProvider", {"device_id": 0, "enable_cuda_graph": "1" if cuda_graph else "0"})
    options = ort.SessionOptions()
    session = ort.InferenceSession(str(path), options, providers=[provider])
    plain = ort.InferenceSession(str(path), providers=[provider[0]]) if cuda_graph else session
    shapes = [o.shape for o in plain.run(None, inputs)]
    binding = session.io_binding()
    keep = [ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0) for array in inputs.values()]
    for name, value in zip(inputs, keep):
        binding.bind_ortvalue_input(name, value)
    for meta, shape in zip(session.get_outputs(), shapes):
        dtype = np.float32 if "float" in meta.type else np.int64 if "int64" in meta.type else np.bool_
        out = ort.OrtValue.ortvalue_from_shape_and_type(list(shape), dtype, "cuda", 0)
        keep.append(out)
        binding.bind_ortvalue_output(meta.name, out)

    def run() -> None:
        session.run_with_iobinding(binding)

    run.keep = keep  # the bound device buffers live as long as the runner
    run()  # the first run of a CUDA-graph session captures the graph; a failure raises here
    return run


def _run_case(case: CudaCase, workdir: Path) -> CudaRow:
    import torch
    import torchvision.ops

    from ..export import export_graph

    entry = catalog.get(case.graph).at(shapes=case.shapes)
    path = export_graph(entry, workdir).path
    inputs = entry.example_inputs()
    device_inputs = [torch.from_numpy(inputs[spec.name]).cuda() for spec in entry.inputs]
    if case.unbatched:
        device_inputs = [t[0] for t in device_inputs]
    fn = getattr(torchvision.ops, case.anchor)

    def eager():
        return fn(*device_inputs, **case.anchor_kwargs)

    row = CudaRow(case.graph, case.size, dict.fromkeys(BACKENDS))
    row.ms["ort"] = _time(_ort_runner(path, inputs, cuda_graph=False))
    try:
        row.ms["ort graph"] = _time(_ort_runner(path, inputs, cuda_graph=True))
    except Exception as err:  # noqa: BLE001 - the provider reports capture failures as generic errors
        row.notes["ort graph"] = str(err).splitlines()[0][:200]
    with torch.inference_mode():
        output = eager()
        row.ms["eager"] = _time(eager)
        try:
            compiled = torch.compile(lambda: fn(*device_inputs, **case.anchor_kwargs))
            row.ms["compiled"] = _time(compiled)
        except Exception as err:  # noqa: BLE001 - report, do not abort the table
            row.notes["compiled"] = str(err).splitlines()[0][:200]
        moved = sum(t.numel() for t in device_inputs) + output.numel()
        source = torch.ones(moved, dtype=torch.float32, device="cuda")
        target = torch.empty_like(source)
        row.ms["floor"] = _time(lambda: target.copy_(source))
    return row


def capture_report(workdir: Path) -> dict[str, str]:
    """``{graph: "ok" or the capture error}`` for every catalog graph at its catalog shape."""
    from ..export import export_graph

    report = {}
    for entry in catalog.resolve((), True):
        path = export_graph(entry, workdir).path
        try:
            _ort_runner(path, entry.example_inputs(), cuda_graph=True)()
            report[entry.name] = "ok"
        except Exception as err:  # noqa: BLE001
            report[entry.name] = str(err).splitlines()[0][:200]
    return report
