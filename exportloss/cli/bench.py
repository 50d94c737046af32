"""``exportloss bench``: exported graphs timed against eager PyTorch, the reference and torchvision."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from .common import UsageError, console


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time exported graphs against eager PyTorch, the reference and torchvision")
    p.add_argument("names", nargs="*", metavar="NAME", help="graphs to benchmark (default: all benchmarked graphs)")
    p.add_argument("--sizes", nargs="*", default=[], help="size labels to run, e.g. N=M=1000 (default: all)")
    p.add_argument("--threads", type=int, default=2, help="threads for onnxruntime and PyTorch (default: 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: onnxruntime's CUDA provider against torchvision and torch.compile on the GPU")
    p.add_argument("--rounds", type=int, default=5, help="quiet rounds to keep per row at least (default: 5)")
    p.add_argument("--time-limit", type=float, default=20.0, metavar="S",
                   help="seconds per row for quiet rounds, and for more rounds while a verdict is within noise (default: 20)")
    p.add_argument("--quiet-share", type=float, default=0.10, metavar="F",
                   help="discard rounds in which other processes used more than this share of the CPUs (default: 0.10)")
    p.add_argument("--wide", action="store_true", help="print the full table (every time and ratio) instead of the judged one")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the results block (conditions, tables) as Markdown")
    p.add_argument("--readme", metavar="PATH", help="replace the results block of this README with the results")
    p.add_argument("--from-json", metavar="PATH", help="report the results a run wrote with --json instead of running")
    p.add_argument("--report-only", action="store_true", help="exit 0 even when a target fails")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import bench
    from ..bench import report

    if args.threads < 1:
        raise UsageError(f"--threads must be a positive integer; got {args.threads}")
    if not 0 < args.quiet_share <= 1:
        raise UsageError(f"--quiet-share must lie in (0, 1]; got {args.quiet_share}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be a positive integer; got {args.rounds}")
    if not 0 <= args.time_limit < math.inf:
        raise UsageError(f"--time-limit must be a non-negative number of seconds; got {args.time_limit}")
    if args.device == "cuda":
        from ..bench import cuda

        try:
            return cuda.main(args.names, args.sizes, args.json, console)
        except (ValueError, cuda.Unavailable) as err:
            raise UsageError(str(err)) from None
    if args.from_json:
        if args.json:
            raise UsageError("--json writes the results of a run; with --from-json nothing runs "
                             "(report them with --markdown or --readme)")
        if args.names or args.sizes:
            raise UsageError("--from-json reports every row the run wrote; it takes no graph names or --sizes")
        try:
            rows, meta = report.from_json(Path(args.from_json).read_text())
        except (OSError, ValueError) as err:
            raise UsageError(f"--from-json {args.from_json}: {err}") from None
    else:
        try:
            bench.select_cases(args.names, args.sizes)
        except ValueError as err:
            raise UsageError(str(err)) from None
        rows, meta = _run_bench(args, bench, report)
    print_results(rows, meta, args.wide, args.report_only)
    block = report.markdown(rows, meta)
    if args.json:
        Path(args.json).write_text(report.to_json(rows, meta))
    if args.markdown:
        Path(args.markdown).write_text(block)
    if args.readme:
        try:
            Path(args.readme).write_text(report.update_readme(Path(args.readme).read_text(), block))
        except (OSError, ValueError) as err:
            raise UsageError(f"--readme {args.readme}: {err}") from None
    failed = [row for row in rows if row.failed]
    return 1 if failed and not args.report_only else 0


VERDICT_STYLES = {"PASS": "green", "FAIL": "red", "within noise": "yellow"}


def short_table(rows, meta: dict) -> Table:
    """The default table: judged ratios and verdicts, one row per (graph, size), at any terminal width."""
    from ..bench import report

    table = Table(title=f"exportloss bench: {meta['threads']} threads, {meta['bandwidth_gb_s']:.1f} GB/s",
                  caption=f"measured: ratio of the medians ({report.INTERVAL}, bootstrap over paired rounds); "
                          "--wide shows every time and ratio",
                  box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    body = report.short_rows(rows)
    table.add_column(report.SHORT_HEADERS[0], overflow="fold", min_width=len(report.SHORT_HEADERS[0]))
    for i, header in enumerate(report.SHORT_HEADERS[1:], 1):  # never narrower than its longest line
        longest = max((len(line) for cells in body for line in cells[i].split("\n")), default=0)
        table.add_column(header, no_wrap=True, min_width=max(len(header), longest))
    for cells in body:
        verdicts = cells[-1].split("\n")
        cells[-1] = "\n".join(f"[{VERDICT_STYLES[v]}]{v}[/]" if v in VERDICT_STYLES else v for v in verdicts)
        table.add_row(*(escape(c) for c in cells[:-1]), cells[-1])
    return table


def wide_table(rows) -> Table:
    from ..bench import report

    table = Table(title="exportloss bench: medians ± half the IQR; ratios of the medians with their "
                        f"{report.INTERVAL}", box=box.SIMPLE_HEAD, title_justify="left")
    for header in report.HEADERS:
        table.add_column(header, no_wrap=True)
    for cells in report.summary_rows(rows):
        table.add_row(*map(escape, cells))
    return table


def print_results(rows, meta: dict, wide: bool = False, report_only: bool = False, out: Console | None = None) -> None:
    """The judged table (or with ``wide`` the full one, at its own width: nothing cut), the verdict counts and
    the rows within noise."""
    from ..bench import report

    out = out or console
    if wide:
        _print_uncut(out, wide_table(rows), natural=True)
    else:
        _print_uncut(out, short_table(rows, meta), natural=False)
    failed = any(row.failed for row in rows)
    out.print(escape(report.counts_line(rows)) + (" (--report-only: not failing)" if report_only and failed else ""))
    pending = report.undecided(rows)
    if pending:
        out.print("Within noise, not failing; these rows need more rounds:")
        for line in pending:
            out.print(escape("  " + line), overflow="fold")


def _print_uncut(out: Console, table: Table, natural: bool) -> None:
    """``table`` at least as wide as it needs (its natural width with ``natural``, else its narrowest without
    cutting a cell or header): where the terminal is narrower, it wraps the lines instead of rich cutting them."""
    measured = Measurement.get(out, out.options.update_width(1 << 16), table)
    saved, out.width = out.width, max(out.width, measured.maximum if natural else measured.minimum)
    try:
        out.print(table, crop=False)  # print clamps a width to the console's, hence the console's width above
    finally:
        out.width = saved


def _run_bench(args: argparse.Namespace, bench, report):
    with console.status("benchmarking") as status:
        def progress(row) -> None:
            status.update(f"benchmarked {row.graph} {row.size}: {row.status or 'reported only'}")

        rows, bandwidth = bench.run(args.names, args.sizes, args.threads, on_row=progress, min_rounds=args.rounds,
                                    time_limit_s=args.time_limit, quiet_share=args.quiet_share)
    return rows, report.metadata(bandwidth, args.threads, args.quiet_share)
