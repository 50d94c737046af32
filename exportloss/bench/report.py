"""The benchmark's outputs: table cells (CLI and Markdown alike), JSON, and the README's results block.

The README's results are written by :func:`update_readme` between :data:`README_START` and
:data:`README_END`, from a run or from the JSON a run wrote; never by hand.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Sequence
from dataclasses import asdict

from .cases import SCALING_SIZES
from .runner import BenchRow
from .warm import WARM

HEADERS = ["graph", "size", "nodes", "ort ms", "ns/pair", "eager ms", "eager warm", "anchor ms", "anchor warm",
           "ref ms", "ort/eager", "ort/eager warm", "ort/anchor", "ort/anchor warm", "floor ms", "ort/floor",
           "rounds", "targets"]
"""Times are medians ± half the interquartile range, in percent of the median."""

README_START = "<!-- bench-results:start (written by `exportloss bench --readme`) -->"
README_END = "<!-- bench-results:end -->"


def _ms(row: BenchRow, name: str) -> str:
    t = row.timings.get(name)
    if t is None:
        return "—"
    spread = (t.q3_ms - t.q1_ms) / 2 / t.median_ms * 100 if t.median_ms else 0.0
    return f"{t.median_ms:.3g} ±{spread:.0f}%"


def _ratio(row: BenchRow, name: str) -> str:
    return f"{row.ratios[name]:.2f}" if name in row.ratios else "—"


def verdict_text(row: BenchRow) -> str:
    if not row.verdicts:
        return "—"
    return "PASS" if row.passed else "FAIL: " + "; ".join(t for t, ok in row.verdicts if not ok)


def summary_rows(rows: Sequence[BenchRow]) -> list[list[str]]:
    """Table cells, shared by the CLI table and the Markdown table."""
    return [
        [row.graph, row.size, str(row.nodes), _ms(row, "ort"),
         "—" if row.ns_per_pair is None else f"{row.ns_per_pair:.2f}",
         _ms(row, "eager"), _ms(row, "eager" + WARM), _ms(row, "anchor"), _ms(row, "anchor" + WARM), _ms(row, "reference"),
         _ratio(row, "ort/eager"), _ratio(row, "ort/eager" + WARM), _ratio(row, "ort/anchor"), _ratio(row, "ort/anchor" + WARM),
         "—" if row.floor_ms is None else f"{row.floor_ms:.3g}", _ratio(row, "ort/floor"),
         f"{row.rounds_kept}/{row.rounds_run}" + ("" if row.quiet else " busy"), verdict_text(row)]
        for row in rows
    ]


def _table(headers: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(cells) + " |" for cells in body)]


def scaling_table(rows: Sequence[BenchRow]) -> list[str]:
    """ns/pair of onnxruntime per pairwise graph (rows) and N = M (columns); empty without pairwise rows."""
    ns = {(row.graph, row.size): row.ns_per_pair for row in rows if row.pairs}
    graphs = list(dict.fromkeys(graph for graph, _ in ns))
    if not graphs:
        return []
    sizes = [f"N=M={n}" for n in SCALING_SIZES]
    body = [[graph, *(f"{ns[graph, s]:.2f}" if (graph, s) in ns else "—" for s in sizes)] for graph in graphs]
    return _table(["ns/pair (ort)", *(s.removeprefix("N=M=") for s in sizes)], body)


def markdown(rows: Sequence[BenchRow], meta: dict) -> str:
    """The results block: conditions, the results table and the scaling table."""
    kept = sum(r.rounds_kept for r in rows)
    run = sum(r.rounds_run for r in rows)
    busy = [f"{r.graph} {r.size}" for r in rows if not r.quiet]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    lines = [
        f"Results of `exportloss bench` on {meta['date']}, {meta['threads']} threads, {versions}. "
        f"Copy bandwidth measured in the run: {meta['bandwidth_gb_s']:.1f} GB/s. "
        f"Quiet gate: {kept} of {run} rounds kept (other processes used at most {meta['quiet_share']:.0%} of the CPUs' time"
        + (f"; not reached within the time limit for {', '.join(busy)}, whose quietest rounds are shown)." if busy else ")."),
        "`eager`/`anchor` run with the process's default allocator, `warm` in a process that keeps freed buffers "
        "mapped (`MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296`); targets apply to the warm columns.",
        "",
        *_table(HEADERS, summary_rows(rows)),
    ]
    scaling = scaling_table(rows)
    if scaling:
        lines += ["", "Cost per pair of the pairwise graphs in onnxruntime (ns/pair, same run):", "", *scaling]
    return "\n".join(lines) + "\n"


def metadata(bandwidth: float, threads: int, quiet_share: float) -> dict:
    from ..export import versions

    return {"date": datetime.date.today().isoformat(), "threads": threads, "bandwidth_gb_s": bandwidth / 1e9,
            "quiet_share": quiet_share, "versions": versions()}


def to_json(rows: Sequence[BenchRow], meta: dict) -> str:
    return json.dumps({**meta, "rows": [asdict(row) | {"passed": row.passed} for row in rows]}, indent=2)


def from_json(text: str) -> tuple[list[BenchRow], dict]:
    """The rows and metadata :func:`to_json` wrote; ``ValueError`` (one line) for any other JSON."""
    record = json.loads(text)
    if not isinstance(record, dict) or not isinstance(record.get("rows"), list):
        raise ValueError('not a report of `exportloss bench --json` (expected an object with a "rows" list)')
    rows = [BenchRow.from_dict(r) for r in record.pop("rows")]
    return rows, record


def update_readme(readme: str, block: str) -> str:
    """``readme`` with the text between the results markers replaced by ``block``."""
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"the README has no results block: add the lines {README_START!r} and {README_END!r}")
    return pattern.sub(lambda _: f"{README_START}\n{block}{README_END}", readme)
