"""The ``exportloss`` command line: ``list``, ``export`` and ``verify``.

Errors a user can fix (an unknown graph name, a malformed ``--shape``, a missing file) print one line
and exit with status 2; a verification failure exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from . import catalog
from .catalog import GraphEntry, UnknownGraphError

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


class UsageError(Exception):
    """A mistake in the command line, reported as one line."""


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """``"boxes1=2x100x4"`` -> ``("boxes1", (2, 100, 4))``."""
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x"))
    except ValueError:
        shape = ()
    if not sep or not name or not shape or min(shape) < 1:
        raise UsageError(f"--shape expects INPUT=D1xD2x... with positive integers, like boxes1=2x100x4; got {text!r}")
    return name, shape


def selected_entries(args: argparse.Namespace) -> list[GraphEntry]:
    if not args.names and not args.all:
        raise UsageError("name one or more graphs, or pass --all (`exportloss list` shows the catalog)")
    try:
        return catalog.resolve(args.names, args.all)
    except UnknownGraphError as err:
        raise UsageError(str(err)) from None


def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from .export import to_torch

    table = Table(title="exportloss catalog")
    for column in ("graph", "inputs", "outputs", "summary"):
        table.add_column(column)
    for entry in catalog.resolve((), True):
        module = entry.build().eval()
        inputs = to_torch(entry.example_inputs())
        with torch.no_grad():
            out = module(*(inputs[spec.name] for spec in entry.inputs))
        outs = out if isinstance(out, tuple) else (out,)
        table.add_row(
            entry.name,
            "\n".join(f"{s.name} {s.dtype}[{','.join(map(str, s.shape))}]" for s in entry.inputs),
            "\n".join(
                f"{name} {str(o.dtype).removeprefix('torch.')}[{','.join(map(str, o.shape))}]"
                for name, o in zip(entry.outputs, outs)
            ),
            entry.summary,
        )
    console.print(table)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export_graph

    entries = selected_entries(args)
    shapes = dict(parse_shape(s) for s in args.shape)
    if shapes and len(entries) > 1:
        raise UsageError("--shape applies to one graph at a time")
    for entry in entries:
        try:
            result = export_graph(entry, args.output, args.exporter, args.opset, entry.shapes(shapes))
        except ValueError as err:
            raise UsageError(str(err)) from None
        console.print(f"exported {entry.name:<24} -> {result.path}  (opset {result.opset}, {args.exporter})")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify_graphs, verify_model

    table = Table(title="onnxruntime vs eager reference (fresh seeded inputs + edge cases, ORT_DISABLE_ALL and ORT_ENABLE_ALL)")
    for column, justify in (("graph", "left"), ("backend", "left"), ("cases", "right"),
                            ("max abs err", "right"), ("max rel err", "right"), ("verdict", "left")):
        table.add_column(column, justify=justify)
    rows = []

    def add(row) -> None:
        rows.append(row)
        verdict = "[green]PASS[/green]" if row.passed else "[red]FAIL[/red]"
        table.add_row(row.graph, row.backend, str(row.cases), f"{row.max_abs:.2e}", f"{row.max_rel:.2e}", verdict)

    paths = [Path(n) for n in args.names if n.endswith(".onnx")]
    names = [n for n in args.names if not n.endswith(".onnx")]
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")
        try:
            for row in verify_model(path, seed=args.seed):
                add(row)
        except UnknownGraphError as err:
            raise UsageError(f"{path}: {err}") from None
    if names or args.all or not paths:
        args.names = names
        verify_graphs(selected_entries(args), args.models, seed=args.seed, on_row=add)
    console.print(table)
    failed = [row for row in rows if not row.passed]
    for row in failed:
        for failure in row.failures[:5]:
            console.print(f"[red]{row.graph} ({row.backend})[/red]: {failure}")
    console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench

    known = {case.graph for case in bench.default_cases()}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        raise UsageError(f"no benchmark for {', '.join(unknown)}; benchmarked graphs: {', '.join(sorted(known))}")
    table = Table(title=f"exportloss bench: medians (interquartile range), {args.threads} threads, interleaved rounds")
    for header in bench.HEADERS:
        table.add_column(header)
    with console.status("benchmarking") as status:
        def add(row) -> None:
            cells = bench.summary_rows([row])[0]
            cells[-1] = "[green]PASS[/green]" if row.passed else f"[red]{cells[-1]}[/red]"
            table.add_row(*cells)
            status.update(f"benchmarked {row.graph} {row.size}")

        rows, bandwidth = bench.run(args.names, args.sizes, args.threads, on_row=add)
    console.print(table)
    console.print(f"memory bandwidth measured in this run: {bandwidth / 1e9:.1f} GB/s")
    if args.json:
        Path(args.json).write_text(bench.to_json(rows, bandwidth, args.threads))
    if args.markdown:
        Path(args.markdown).write_text(bench.markdown_table(rows) + "\n")
    failed = [row for row in rows if not row.passed]
    console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    from .export import DEFAULT_OPSET, EXPORTERS

    parser = argparse.ArgumentParser(prog="exportloss", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="the catalog with input and output shapes")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export", help="export graphs to ONNX and update the manifest")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("-o", "--output", default="models", help="output directory (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--shape", action="append", default=[], metavar="INPUT=D1xD2...",
                   help="override an input's static shape, e.g. boxes1=1x100x4 (one graph only)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify", help="run exported graphs in onnxruntime against the eager references")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph in --models")
    p.add_argument("--models", default="models", help="directory holding NAME.onnx (default: models)")
    p.add_argument("--seed", type=int, default=20261128, help="seed of the fresh verification inputs")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("bench", help="time exported graphs against eager PyTorch, the reference and torchvision")
    p.add_argument("names", nargs="*", metavar="NAME", help="graphs to benchmark (default: all benchmarked graphs)")
    p.add_argument("--sizes", nargs="*", default=[], help="size labels to run, e.g. N=M=1000 (default: all)")
    p.add_argument("--threads", type=int, default=2, help="threads for onnxruntime and PyTorch (default: 2)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", metavar="PATH", help="write the results table as Markdown")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UsageError as err:
        print(f"exportloss {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
