"""``exportloss list``: the catalog with its sizes, input and output shapes; ``list NAME``: one graph's sizes and options."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from .. import catalog
from ..catalog import GraphEntry
from .common import UsageError, console, selected_entries


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="the catalog with its sizes, input and output shapes; NAME: its sizes and options")
    p.add_argument("names", nargs="*", metavar="NAME", help="show these graphs' sizes (--size) and options (--option)")
    p.add_argument("--markdown", action="store_true", help="print the catalog as the README's Markdown table")
    p.add_argument("--readme", metavar="PATH", help="regenerate the catalog tables of this README (between catalog-table markers)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..catalog.tables import BLOCK, family_table, with_tables

    if args.markdown:
        print(family_table("all"), end="")
        return 0
    if args.readme:
        path = Path(args.readme)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--readme {path}: not a UTF-8 text file") from None
        except OSError as err:
            raise UsageError(f"--readme {path}: cannot be read ({err.strerror or err})") from None
        if not BLOCK.search(text):
            raise UsageError(f"--readme {path}: no catalog-table markers (<!-- catalog-table: FAMILY --> ... "
                             "<!-- /catalog-table -->), so nothing to regenerate")
        try:
            new = with_tables(text)
        except ValueError as err:
            raise UsageError(f"--readme {path}: {err}") from None
        if new == text:
            console.print(f"{path}: catalog tables up to date")
        else:
            path.write_text(new, encoding="utf-8")
            console.print(f"{path}: catalog tables regenerated")
        return 0
    if args.names:
        args.all = False
        for entry in selected_entries(args):
            show_graph(entry)
        return 0
    table = Table(title="exportloss catalog")
    for column in ("graph", "sizes", "inputs", "outputs", "summary"):
        table.add_column(column)

    for entry in catalog.resolve((), True):
        sizes = " ".join(f"{name}={value}" for name, value in entry.sizes.items())
        table.add_row(entry.name, sizes, specs(entry, entry.inputs), specs(entry, entry.outputs), escape(entry.summary))
    console.print(table)
    return 0


def specs(entry: GraphEntry, specs) -> str:
    return "\n".join(f"{s.name} {s.dtype}[{','.join(map(str, s.resolve(entry.sizes)))}]" for s in specs)


def show_graph(entry: GraphEntry) -> None:
    """One graph: its summary, sizes (``--size``), inputs, outputs and options (``--option``) with values and what they accept."""
    console.print(f"[bold]{escape(entry.name)}[/bold]: {escape(entry.summary)}")
    console.print("sizes (--size NAME=N): " + " ".join(f"{name}={value}" for name, value in entry.sizes.items()))
    console.print("inputs:  " + escape(specs(entry, entry.inputs).replace("\n", ", ")))
    console.print("outputs: " + escape(specs(entry, entry.outputs).replace("\n", ", ")) + " (at these options)")
    table = Table(title=f"options of {entry.name} (--option KEY=VALUE)")
    for column in ("option", "value", "type", "accepts"):
        table.add_column(column)
    for spec in entry.option_specs().values():
        table.add_row(spec.name, escape(_shown(spec.value)), escape(spec.annotation), escape(spec.allowed))
    console.print(table)


def _shown(value: object) -> str:
    """An option's value as ``--option`` takes it (a long per-class list shortened)."""
    if isinstance(value, (list, tuple)):
        items = [str(v) for v in value]
        return ",".join(items) if len(items) <= 6 else ",".join(items[:4]) + f",… ({len(items)} values)"
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
