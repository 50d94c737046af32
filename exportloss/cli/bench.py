"""``exportloss bench``: exported graphs timed against eager PyTorch, the reference and torchvision."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from .common import UsageError, console


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="time exported graphs against eager PyTorch, the reference and torchvision")
    p.add_argument("names", nargs="*", metavar="NAME", help="graphs to benchmark (default: all benchmarked graphs)")
    p.add_argument("--sizes", nargs="*", default=[], help="size labels to run, e.g. N=M=1000 (default: all)")
    p.add_argument("--threads", type=int, default=2, help="threads for onnxruntime and PyTorch (default: 2)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: onnxruntime's CUDA provider against torchvision and torch.compile on the GPU")
    p.add_argument("--rounds", type=int, default=5, help="quiet rounds to keep per row (default: 5)")
    p.add_argument("--time-limit", type=float, default=12.0, metavar="S",
                   help="seconds per row to wait for quiet rounds before keeping the quietest (default: 12)")
    p.add_argument("--quiet-share", type=float, default=0.10, metavar="F",
                   help="discard rounds in which other processes used more than this share of the CPUs (default: 0.10)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the results block (conditions, tables) as Markdown")
    p.add_argument("--readme", metavar="PATH", help="replace the results block of this README with the results")
    p.add_argument("--from-json", metavar="PATH", help="report the results a run wrote with --json instead of running")
    p.add_argument("--report-only", action="store_true", help="exit 0 even when a target is missed")
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
    if not 0 < args.time_limit < float("inf"):
        raise UsageError(f"--time-limit must be a positive number of seconds; got {args.time_limit}")
    if args.device == "cuda":
        from ..bench import cuda

        try:
            return cuda.main(args.names, args.sizes, args.json, console)
        except (ValueError, cuda.Unavailable) as err:
            raise UsageError(str(err)) from None
    if args.from_json:
        try:
            rows, meta = report.from_json(Path(args.from_json).read_text())
        except OSError as err:
            raise UsageError(f"--from-json {args.from_json}: cannot be read ({err.strerror or err})") from None
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # foreign JSON, or rows that are not BenchRows
            detail = str(err) if isinstance(err, ValueError) else f"not a report of `exportloss bench --json` ({type(err).__name__}: {err})"
            raise UsageError(f"--from-json {args.from_json}: {detail}") from None
    else:
        try:
            bench.select_cases(args.names, args.sizes)
        except ValueError as err:
            raise UsageError(str(err)) from None
        rows, meta = _run_bench(args, bench, report)
    block = report.markdown(rows, meta)
    if args.json:  # with --from-json too: the report read, written again (nothing given is silently ignored)
        Path(args.json).write_text(report.to_json(rows, meta))
    if args.markdown:
        Path(args.markdown).write_text(block)
    if args.readme:
        try:
            Path(args.readme).write_text(report.update_readme(Path(args.readme).read_text(), block))
        except (OSError, ValueError) as err:
            raise UsageError(f"--readme {args.readme}: {err}") from None
    judged = [row for row in rows if row.verdicts]
    failed = [row for row in judged if not row.passed]
    console.print(f"{len(judged) - len(failed)} rows met their targets, {len(failed)} missed"
                  + (" (--report-only: not failing)" if args.report_only and failed else ""))
    return 1 if failed and not args.report_only else 0


def _run_bench(args: argparse.Namespace, bench, report):
    table = Table(title=f"exportloss bench: medians ± half the IQR, {args.threads} threads, interleaved quiet rounds")
    for header in report.HEADERS:
        table.add_column(header)
    with console.status("benchmarking") as status:
        def add(row) -> None:
            cells = report.summary_rows([row])[0]
            cells[-1] = f"[green]{cells[-1]}[/green]" if row.passed else f"[red]{cells[-1]}[/red]"
            table.add_row(*cells)
            status.update(f"benchmarked {row.graph} {row.size}")

        rows, bandwidth = bench.run(args.names, args.sizes, args.threads, on_row=add, min_rounds=args.rounds,
                                    time_limit_s=args.time_limit, quiet_share=args.quiet_share)
    console.print(table)
    meta = report.metadata(bandwidth, args.threads, args.quiet_share)
    console.print(f"memory bandwidth measured in this run: {bandwidth / 1e9:.1f} GB/s")
    return rows, meta
