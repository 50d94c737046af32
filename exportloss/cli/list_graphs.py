"""``exportloss list``: the catalog with its sizes, input and output shapes."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from .. import catalog
from ..catalog import GraphEntry
from .common import UsageError, console


def add_parser(sub) -> None:
    p = sub.add_parser("list", help="the catalog with its sizes, input and output shapes")
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
    table = Table(title="exportloss catalog")
    for column in ("graph", "sizes", "inputs", "outputs", "summary"):
        table.add_column(column)

    def specs(entry: GraphEntry, specs) -> str:
        return "\n".join(f"{s.name} {s.dtype}[{','.join(map(str, s.resolve(entry.sizes)))}]" for s in specs)

    for entry in catalog.resolve((), True):
        sizes = " ".join(f"{name}={value}" for name, value in entry.sizes.items())
        table.add_row(entry.name, sizes, specs(entry, entry.inputs), specs(entry, entry.outputs), escape(entry.summary))
    console.print(table)
    return 0
