"""``exportloss verify``: exported graphs on every available backend against the eager references."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from .. import catalog
from ..catalog import UnknownGraphError
from .common import UsageError, add_engine_arguments, check_tf32, console, non_negative_int, selected_entries


def add_parser(sub) -> None:
    from ..backends import BACKEND_NAMES

    p = sub.add_parser("verify", help="run exported graphs on every available backend against the eager references")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph in --models")
    p.add_argument("--models", default="models", help="directory holding NAME.onnx (default: models)")
    p.add_argument("--seed", type=non_negative_int, default=catalog.VERIFICATION_SEED,
                   help=f"seed of the fresh verification inputs (default: {catalog.VERIFICATION_SEED})")
    p.add_argument("--backend", action="append", default=[], choices=(*BACKEND_NAMES, "ort"), metavar="BACKEND",
                   help="ort-cpu (alias ort), ort-cuda, ort-trt (onnxruntime providers) or trt (TensorRT engines); "
                        "repeatable; default: every backend that loads here")
    p.add_argument("--against", choices=(*BACKEND_NAMES, "ort"), metavar="BACKEND",
                   help="also compare each backend's outputs with this backend's on the same inputs, e.g. trt against ort-cpu")
    p.add_argument("--engines", help="with --backend trt: verify the plans `build-engine` wrote here (default: build fresh ones)")
    p.add_argument("--json", metavar="PATH", help="write every row (and the unavailable backends) as JSON")
    add_engine_arguments(p)
    p.set_defaults(func=run)


def verify_backends(args: argparse.Namespace):
    """``(backends to run, {name: reason} of default backends that cannot run here, the --against backend)``.

    A backend named with ``--backend`` or ``--against`` that cannot run here is a usage error: one line, exit 2.
    """
    from ..backends import BACKEND_NAMES, make_backend, split_available

    check_tf32(args)
    options = {"tf32": args.tf32, "precision": args.precision, "engines_dir": args.engines, "workspace_mib": args.workspace}
    against = make_backend(args.against, **options) if args.against else None
    named = [make_backend(name, **options) for name in dict.fromkeys("ort-cpu" if n == "ort" else n for n in args.backend)]
    for backend in (*named, *([against] if against else [])):
        reason = backend.unavailable_reason()
        if reason is not None:
            raise UsageError(f"backend {backend.name} is unavailable: {reason}")
    if named:
        return named, {}, against
    available, unavailable = split_available([make_backend(name, **options) for name in BACKEND_NAMES])
    return available, unavailable, against


def run(args: argparse.Namespace) -> int:
    from .._files import check_writable
    from ..verify import verify, verify_all, write_json_report

    if args.json:
        try:
            check_writable(args.json)  # now, not after the whole run
        except OSError as err:
            raise UsageError(f"--json {args.json}: cannot write there ({err.strerror})") from None
    backends, unavailable, against = verify_backends(args)
    compared = f"vs {against.name} and vs eager reference" if against else "vs eager reference"
    table = Table(title=f"exportloss verify: {', '.join(b.name for b in backends)} {compared} "
                        f"(seed {args.seed}: fresh inputs + edge cases)")
    for column, justify in (("graph", "left"), ("backend", "left"), ("precision", "left"), ("provider", "left"),
                            ("against", "left"), ("cases", "right"), ("max abs err", "right"), ("max rel err", "right"),
                            ("verdict", "left")):
        table.add_column(column, justify=justify)
    rows = []

    def add(row) -> None:
        rows.append(row)
        verdict = "[green]PASS[/green]" if row.passed else f"[red]{row.verdict}[/red]"
        table.add_row(row.graph, row.backend, row.precision, row.provider, row.against, str(row.cases),
                      f"{row.max_abs:.2e}", f"{row.max_rel:.2e}", verdict)

    paths = [Path(n) for n in args.names if n.endswith(".onnx")]
    names = [n for n in args.names if not n.endswith(".onnx")]
    for path in paths:
        if not path.exists():
            raise UsageError(f"{path} does not exist")
    entries = []
    if names or args.all or not paths:
        args.names = names
        entries = selected_entries(args)
        models = Path(args.models)
        if not models.is_dir():
            raise UsageError(f"--models {args.models}: {'not a directory' if models.exists() else 'no such directory'}")
        missing = [entry.name for entry in entries if not (models / f"{entry.name}.onnx").exists()]
        if missing:
            shown = ", ".join(f"{name}.onnx" for name in missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise UsageError(f"--models {args.models}: no {shown}; run `exportloss export {' '.join(missing[:3])}`"
                             + (" (or --all)" if len(missing) > 3 else ""))
    for path in paths:
        for backend in backends:
            try:
                for row in verify(path, backend, seed=args.seed, against=against):
                    add(row)
            except UnknownGraphError as err:
                raise UsageError(f"{path}: {err}") from None
    if entries:
        verify_all(entries, args.models, backends, seed=args.seed, against=against, on_row=add)
    console.print(table)
    if unavailable:
        console.print("not run (unavailable here): " + "; ".join(f"{name}: {reason}" for name, reason in unavailable.items()),
                      markup=False, soft_wrap=True)
    for row in rows:
        for note in row.notes:
            console.print(f"{row.graph} ({row.backend}): {note}", markup=False, soft_wrap=True)
    failed = [row for row in rows if not row.passed]
    for row in failed:
        for failure in row.failures[:5]:
            console.print(f"[red]{row.graph} ({row.backend} vs {row.against})[/red]: {failure}")
    if args.json:
        write_json_report(args.json, rows, args.seed, unavailable)
    console.print(f"{len(rows) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0
