"""The benchmark's outputs: the short judged table, the full table (CLI ``--wide`` and Markdown alike), the
rows that need more rounds, JSON, and the README's results block.

The README's results are written by :func:`update_readme` between :data:`README_START` and
:data:`README_END`, from a run or from the JSON a run wrote; never by hand.
"""

from __future__ import annotations

import datetime
import json
import re
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import asdict

from .cases import ANCHOR, ANCHOR_WARM, EAGER, EAGER_WARM, FLOOR, PER_PAIR, PER_PAIR_OVER_FLOOR, REFERENCE, \
    SCALING_SIZES, BANDWIDTHS_CHECKED
from .intervals import CONFIDENCE, FAIL, NOISE, PASS, rounds_to_decide
from .runner import BenchRow, Judgement
from .timing import PAUSE_S
from .warm import WARM

FORMAT = "exportloss-bench/2"
"""The ``format`` of the JSON a run writes; :func:`from_json` reads no other."""

TIMES = ["ort ms", "ns/pair", "eager ms", "eager warm", "anchor ms", "anchor warm", "ref ms"]
FULL_RATIOS = [EAGER, EAGER_WARM, ANCHOR, ANCHOR_WARM, FLOOR, PER_PAIR, PER_PAIR_OVER_FLOOR, REFERENCE]
HEADERS = ["graph", "size", "nodes", *TIMES, "floor ms", *FULL_RATIOS, "rounds", "verdict"]
"""The full table: times are medians ± half the interquartile range in percent of the median; ratios are
the ratio of the medians with its interval."""

SHORT_HEADERS = ["graph, size", "target", "measured", "verdict"]
"""The default terminal table: one row per (graph, size), one line per judged target."""

README_START = "<!-- bench-results:start (written by `exportloss bench --readme`) -->"
README_END = "<!-- bench-results:end -->"

INTERVAL = f"{CONFIDENCE:.0%} interval"

MAX_SUGGESTED_ROUNDS = 200
"""Beyond this many rounds a row within noise is reported as sitting on its limit, with no command."""


def _ms(row: BenchRow, name: str) -> str:
    t = row.timings.get(name)
    if t is None:
        return "—"
    spread = (t.q3_ms - t.q1_ms) / 2 / t.median_ms * 100 if t.median_ms else 0.0
    return f"{t.median_ms:.3g} ±{spread:.0f}%"


def _ratio(row: BenchRow, name: str) -> str:
    return row.estimate(name).text() if name in row.ratios else "—"


def rounds_text(row: BenchRow) -> str:
    return f"{row.rounds_kept}/{row.rounds_run}" + ("" if row.quiet else " busy")


def target_text(judgement: Judgement) -> str:
    return f"{judgement.ratio} ≤ {judgement.limit:.3g}"


def summary_rows(rows: Sequence[BenchRow]) -> list[list[str]]:
    """Cells of the full table (:data:`HEADERS`), shared by ``--wide`` and the Markdown table."""
    return [
        [row.graph, row.size, str(row.nodes), _ms(row, "ort"),
         "—" if row.ns_per_pair is None else f"{row.ns_per_pair:.2f}",
         _ms(row, "eager"), _ms(row, "eager" + WARM), _ms(row, "anchor"), _ms(row, "anchor" + WARM), _ms(row, "reference"),
         "—" if row.floor_ms is None else f"{row.floor_ms:.3g}", *(_ratio(row, name) for name in FULL_RATIOS),
         rounds_text(row), verdicts_text(row)]
        for row in rows
    ]


def verdicts_text(row: BenchRow) -> str:
    """Every target with its verdict, ``; ``-separated; ``reported only`` without targets."""
    if not row.verdicts:
        return "reported only"
    return "; ".join(f"{j.verdict}: {target_text(j)}" for j in row.verdicts)


def short_rows(rows: Sequence[BenchRow]) -> list[list[str]]:
    """Cells of the default table (:data:`SHORT_HEADERS`): one line per judged target in each cell."""
    cells = []
    for row in rows:
        judged = row.verdicts
        cells.append([
            f"{row.graph}\n{row.size}\n{row.rounds_kept}/{row.rounds_run} rounds" + ("" if row.quiet else ", busy"),
            "\n".join(target_text(j) for j in judged) or "reported only",
            "\n".join(row.estimate(j.ratio).text() for j in judged) or "—",
            "\n".join(j.verdict for j in judged) or "—",
        ])
    return cells


def counts(rows: Sequence[BenchRow]) -> dict[str, int]:
    """Rows by verdict (:data:`PASS`, :data:`NOISE`, :data:`FAIL`); rows without targets are not counted."""
    statuses = [row.status for row in rows if row.verdicts]
    return {v: statuses.count(v) for v in (PASS, NOISE, FAIL)}


def counts_line(rows: Sequence[BenchRow]) -> str:
    found = counts(rows)
    return f"rows with targets: {found[PASS]} PASS, {found[NOISE]} within noise, {found[FAIL]} FAIL"


def _seconds_per_round(row: BenchRow) -> float:
    """A typical round: each backend's pause, untimed call and timed calls at its median over the kept rounds."""
    if not row.rounds:
        return 1.0
    calls = {name: [s for r in row.rounds for s in r[name]] for name in row.rounds[0]}
    return sum((len(row.rounds[0][name]) + 1) * statistics.median(seconds) + PAUSE_S for name, seconds in calls.items())


def undecided(rows: Sequence[BenchRow]) -> list[str]:
    """One line per target whose interval straddles its limit: the estimate, about how many rounds would
    decide it, and the command that runs them."""
    lines = []
    for row in rows:
        for j in row.verdicts:
            if j.verdict != NOISE:
                continue
            needed = rounds_to_decide(row.estimate(j.ratio), j.limit, row.rounds_kept)
            if needed is None or needed > MAX_SUGGESTED_ROUNDS:
                lines.append(f"{row.graph} {row.size}: {j.ratio} {row.estimate(j.ratio).text()} against "
                             f"≤ {j.limit:.3g}: on the limit or unbounded, more than {MAX_SUGGESTED_ROUNDS} rounds "
                             "would be needed (rerun it on a quiet machine)")
                continue
            seconds = max(20, round(needed * _seconds_per_round(row) * 1.5))
            command = (f"exportloss bench {row.graph} --sizes {shlex.quote(row.size)} --rounds {needed} "
                       f"--time-limit {seconds}")
            lines.append(f"{row.graph} {row.size}: {j.ratio} {row.estimate(j.ratio).text()} against "
                         f"≤ {j.limit:.3g} after {row.rounds_kept} rounds; about {needed} rounds would tell "
                         f"(`{command}`)")
    return lines


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


def conditions(rows: Sequence[BenchRow], meta: dict) -> str:
    kept = sum(r.rounds_kept for r in rows)
    run = sum(r.rounds_run for r in rows)
    busy = [f"{r.graph} {r.size}" for r in rows if not r.quiet]
    versions = ", ".join(f"{k} {v}" for k, v in meta.get("versions", {}).items())
    return (f"Results of `exportloss bench` on {meta['date']}, {meta['threads']} threads, {versions}. "
            f"Copy bandwidth measured in the run: {meta['bandwidth_gb_s']:.1f} GB/s (targets checked on "
            f"{BANDWIDTHS_CHECKED}). Quiet gate: {kept} of {run} rounds kept (other processes used at most "
            f"{meta['quiet_share']:.0%} of the CPUs' time"
            + (f"; not reached within the time limit for {', '.join(busy)}, whose quietest rounds are shown)." if busy
               else ")."))


def markdown(rows: Sequence[BenchRow], meta: dict) -> str:
    """The results block: conditions, verdict counts, the full table, the scaling table, the undecided rows."""
    lines = [
        conditions(rows, meta),
        "`eager`/`anchor` run with the process's default allocator, `warm` in a process that keeps freed buffers "
        "mapped (`MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296`); targets apply to the warm "
        f"columns. Times: median ±half the IQR. Ratios: ratio of the medians ({INTERVAL}, bootstrap over the "
        "interleaved rounds).",
        "",
        f"**{counts_line(rows)}.**",
        "",
        *_table(HEADERS, summary_rows(rows)),
    ]
    scaling = scaling_table(rows)
    if scaling:
        lines += ["", "Cost per pair of the pairwise graphs in onnxruntime (ns/pair, same run):", "", *scaling]
    pending = undecided(rows)
    if pending:
        lines += ["", "Within noise (more rounds would tell):", "", *(f"- {line}" for line in pending)]
    return "\n".join(lines) + "\n"


def metadata(bandwidth: float, threads: int, quiet_share: float) -> dict:
    from ..export import versions

    return {"format": FORMAT, "date": datetime.date.today().isoformat(), "threads": threads,
            "bandwidth_gb_s": bandwidth / 1e9, "quiet_share": quiet_share, "confidence": CONFIDENCE,
            "versions": versions()}


def to_json(rows: Sequence[BenchRow], meta: dict) -> str:
    return json.dumps({**meta, "rows": [asdict(row) | {"status": row.status} for row in rows]}, indent=2)


META_KEYS = {"date": str, "threads": int, "bandwidth_gb_s": float, "quiet_share": float, "versions": dict}


def from_json(text: str) -> tuple[list[BenchRow], dict]:
    """Rows and conditions of a run's ``--json``; ``ValueError`` saying why for any other JSON."""
    record = json.loads(text)
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        found = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise ValueError(f"not the results of `exportloss bench --json` ({FORMAT}); found format {found!r}")
    bad = [k for k, kind in META_KEYS.items() if not isinstance(record.get(k), (int, float) if kind is float else kind)]
    rows = record.pop("rows", None)
    if bad or not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"results of `exportloss bench --json` with a missing or malformed {', '.join(bad) or 'rows'}")
    try:
        return [BenchRow.from_dict(r) for r in rows], record
    except (TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"a malformed row ({type(err).__name__}: {err})") from None


def update_readme(readme: str, block: str) -> str:
    """``readme`` with the text between the results markers replaced by ``block``."""
    pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"the README has no results block: add the lines {README_START!r} and {README_END!r}")
    return pattern.sub(lambda _: f"{README_START}\n{block}{README_END}", readme)
