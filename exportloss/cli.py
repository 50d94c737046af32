"""The ``exportloss`` command line: ``list``, ``export``, ``verify``, ``check-trt``, ``build-engine`` and ``bench``.

Exit status: 0 success; 1 a check or verification failed; 2 bad usage or unusable input (an unknown
graph, a malformed option, a missing, empty or foreign model file, a corrupt manifest, an output
directory that cannot be written); 3 an internal error (a bug). Every error is one line on stderr that
names the argument or file; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import catalog
from ._extras import missing_export_extra
from .catalog import GraphEntry, UnknownGraphError
from .model_files import ModelFileError

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


EXIT_USAGE, EXIT_INTERNAL = 2, 3
"""Exit statuses besides 0 (success) and 1 (a check or verification failed), which commands return themselves."""


class UsageError(Exception):
    """A mistake in the command line, reported as one line."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (naming the argument) instead of the usage text plus a line."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (`{self.prog} --help` shows the usage)\n")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer; got {value}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected a positive integer; got 0")
    return value


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


def parse_size(text: str) -> tuple[str, int]:
    """``"classes=10000"`` -> ``("classes", 10000)``."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isdigit():
        raise UsageError(f"--size expects NAME=N with a non-negative integer, like classes=10000; got {text!r}")
    return name, int(value)


def cmd_list(args: argparse.Namespace) -> int:
    from .catalog.tables import family_table, with_tables

    if args.markdown:
        print(family_table("all"), end="")
        return 0
    if args.readme:
        path = Path(args.readme)
        text = path.read_text()
        new = with_tables(text)
        if new == text:
            console.print(f"{path}: catalog tables up to date")
        else:
            path.write_text(new)
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


def cmd_export(args: argparse.Namespace) -> int:
    from .catalog.boxes import with_tile_rows
    from .export import export_graph

    entries = selected_entries(args)
    shapes = dict(parse_shape(s) for s in args.shape)
    sizes = dict(parse_size(s) for s in args.size)
    if (shapes or sizes) and len(entries) > 1:
        raise UsageError("--shape and --size apply to one graph at a time")
    for entry in entries:
        try:
            if args.tile_rows is not None:
                entry = with_tile_rows(entry, args.tile_rows)
            result = export_graph(entry, args.output, args.exporter, args.opset, shapes, sizes)
        except ModelFileError:
            raise
        except ValueError as err:
            raise UsageError(str(err)) from None
        except OSError as err:
            raise UsageError(f"-o {args.output}: cannot write there ({err.strerror or err})") from None
        console.print(f"exported {entry.name:<24} -> {result.path}  (opset {result.opset}, {args.exporter})")
    return 0


def verify_backends(args: argparse.Namespace):
    """``(backends to run, {name: reason} of default backends that cannot run here, the --against backend)``.

    A backend named with ``--backend`` or ``--against`` that cannot run here is a usage error: one line, exit 2.
    """
    from .backends import BACKEND_NAMES, make_backend, split_available

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


def cmd_verify(args: argparse.Namespace) -> int:
    from .verify import verify, verify_all, write_json_report

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
        for backend in backends:
            try:
                for row in verify(path, backend, seed=args.seed, against=against):
                    add(row)
            except UnknownGraphError as err:
                raise UsageError(f"{path}: {err}") from None
    if names or args.all or not paths:
        args.names = names
        verify_all(selected_entries(args), args.models, backends, seed=args.seed, against=against, on_row=add)
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


def shape_profile(args: argparse.Namespace):
    """The optimization profile from ``--min-shape/--opt-shape/--max-shape``."""
    from .trt import make_profile

    try:
        return make_profile(*(dict(parse_shape(s) for s in getattr(args, f"{bound}_shape")) for bound in ("min", "opt", "max")))
    except ValueError as err:
        raise UsageError(str(err)) from None


def trt_models(args: argparse.Namespace):
    """``(label, source, model)`` per PATH.onnx, and per NAME: ``--models/NAME.onnx``, else exported in memory."""
    from .export import export_model
    from .model_files import load_model

    paths = [Path(n) for n in args.names if n.endswith(".onnx")]
    args.names = [n for n in args.names if not n.endswith(".onnx")]
    entries = selected_entries(args) if args.names or args.all or not paths else []
    # Every file is validated before the first is checked: a bad one fails the run at once.
    models = [(str(path), "file", load_model(path, catalog_graph=False)[0]) for path in paths]
    yield from models
    for entry in entries:
        file = Path(args.models) / f"{entry.name}.onnx"
        if file.exists():
            yield entry.name, str(file), load_model(file, entry)[0]
        else:
            yield entry.name, f"exported ({args.exporter})", export_model(entry, args.exporter)


def cmd_check_trt(args: argparse.Namespace) -> int:
    from .trt import TRT_VERSIONS, check_versions

    versions = list(dict.fromkeys(args.trt_version)) or list(TRT_VERSIONS)
    unknown = [v for v in versions if v not in TRT_VERSIONS]
    if unknown:
        raise UsageError(f"--trt-version must be one of {', '.join(TRT_VERSIONS)}; got {', '.join(unknown)}")
    profile = shape_profile(args)
    table = Table(title="TensorRT static check against the ONNX parser's support tables (no GPU needed)")
    for column in ("graph", "source", *(f"TensorRT {v}" for v in versions)):
        table.add_column(column)
    details: dict[str, list[str]] = {}
    checked = incompatible = 0
    for label, source, model in trt_models(args):
        try:
            reports = check_versions(model, versions, profile, name=label)
        except ValueError as err:
            raise UsageError(f"{label}: {err}") from None
        table.add_row(label, source, *(f"[{'green' if r.compatible else 'red'}]{r.verdict}[/]" for r in reports))
        checked += 1
        incompatible += not all(r.compatible for r in reports)
        for report in reports:
            for finding in report.findings:
                details.setdefault(f"{label}: {finding}", []).append(report.trt_version)
    console.print(table)
    for text, found_in in details.items():
        console.print(f"{text}  (TensorRT {', '.join(found_in)})", markup=False)
    console.print(f"{checked} graph(s) checked, {incompatible} incompatible with at least one TensorRT version")
    return 1 if incompatible else 0


def cmd_check_ort_cuda(args: argparse.Namespace) -> int:
    import json

    from .ort_cuda import check_model, load_table

    table = Table(title="onnxruntime CUDA provider: nodes without a CUDA kernel (static, no GPU needed)")
    for column in ("graph", "source", "verdict"):
        table.add_column(column)
    reports, details = [], []
    for label, source, model in trt_models(args):
        report = check_model(model, name=label)
        reports.append(report)
        table.add_row(label, source, f"[{'green' if report.compatible else 'red'}]{report.verdict}[/]")
        details += [f"{label}: {finding}" for finding in report.findings]
    if args.json:
        Path(args.json).write_text(json.dumps({"table": load_table().source, "reports": [r.to_dict() for r in reports]}, indent=1) + "\n")
    console.print(table)
    for text in details:
        console.print(text, markup=False)
    failed = sum(not r.compatible for r in reports)
    console.print(f"{len(reports)} graph(s) checked against {load_table().source}; {failed} with CPU fallback nodes")
    return 1 if failed else 0


def cmd_build_engine(args: argparse.Namespace) -> int:
    from .trt.engine import EngineBuildError, TensorRTUnavailable, build_engine, require_tensorrt
    from .trt.runner import engine_file_name

    check_tf32(args)
    try:
        require_tensorrt()
    except TensorRTUnavailable as err:
        raise UsageError(str(err)) from None
    profile = shape_profile(args)
    models = list(trt_models(args))
    if args.output and len(models) > 1:
        raise UsageError("-o/--output names one plan; with several graphs, plans go to --engines DIR")
    failed = 0
    for label, _, model in models:
        plan_precision = "tf32" if args.tf32 else args.precision
        output = Path(args.output) if args.output else Path(args.engines) / engine_file_name(Path(label).stem, plan_precision)
        try:
            result = build_engine(model, output, args.precision, args.workspace, profile, args.tf32)
        except ValueError as err:
            raise UsageError(f"{label}: {err}") from None
        except EngineBuildError as err:
            console.print(f"{label}: {err}", markup=False)
            failed += 1
            continue
        console.print(f"built {label:<24} -> {result.path}  (TensorRT {result.tensorrt}, {result.precision}, "
                      f"{result.seconds:.1f} s, {result.bytes / 1e6:.1f} MB)")
    return 1 if failed else 0


def add_profile_arguments(p: argparse.ArgumentParser) -> None:
    for bound in ("min", "opt", "max"):
        p.add_argument(f"--{bound}-shape", action="append", default=[], metavar="INPUT=D1xD2...",
                       help=f"{bound} shape of a dynamic input in the optimization profile")


def check_tf32(args: argparse.Namespace) -> None:
    if args.tf32 and args.precision != "fp32":
        raise UsageError("--tf32 applies to fp32 only; --precision fp16 computes in fp16")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32", help="TensorRT engine precision (default: fp32)")
    p.add_argument("--workspace", type=positive_int, default=1024, metavar="MiB", help="builder workspace limit (default: 1024)")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 for float32 matmuls on GPUs (the providers' default); without it ort-cuda and fp32 engines compute in float32")


def cmd_bench(args: argparse.Namespace) -> int:
    from . import bench
    from .bench import report

    if args.threads < 1:
        raise UsageError(f"--threads must be a positive integer; got {args.threads}")
    if not 0 < args.quiet_share <= 1:
        raise UsageError(f"--quiet-share must lie in (0, 1]; got {args.quiet_share}")
    if args.rounds < 1:
        raise UsageError(f"--rounds must be a positive integer; got {args.rounds}")
    if args.device == "cuda":
        from .bench import cuda

        try:
            return cuda.main(args.names, args.sizes, args.json, console)
        except (ValueError, cuda.Unavailable) as err:
            raise UsageError(str(err)) from None
    if args.from_json:
        try:
            rows, meta = report.from_json(Path(args.from_json).read_text())
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise UsageError(f"--from-json {args.from_json}: {err}") from None
    else:
        try:
            bench.select_cases(args.names, args.sizes)
        except ValueError as err:
            raise UsageError(str(err)) from None
        rows, meta = _run_bench(args, bench, report)
    block = report.markdown(rows, meta)
    if args.json and not args.from_json:
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


def build_parser() -> argparse.ArgumentParser:
    from .backends import BACKEND_NAMES
    from .export import DEFAULT_OPSET, EXPORTERS

    parser = OneLineParser(prog="exportloss", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("list", help="the catalog with its sizes, input and output shapes")
    p.add_argument("--markdown", action="store_true", help="print the catalog as the README's Markdown table")
    p.add_argument("--readme", metavar="PATH", help="regenerate the catalog tables of this README (between catalog-table markers)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("export", help="export graphs to ONNX and update the manifest")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("-o", "--output", default="models", help="output directory (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET)
    p.add_argument("--shape", action="append", default=[], metavar="INPUT=D1xD2...",
                   help="an input's static shape, e.g. boxes1=1x100x4: sets the sizes its dimensions name (one graph only)")
    p.add_argument("--size", action="append", default=[], metavar="NAME=N",
                   help="a named size, e.g. classes=10000 (`exportloss list` shows each graph's sizes; one graph only)")
    p.add_argument("--tile-rows", type=int, metavar="R",
                   help="pairwise graphs: boxes1 rows per row tile (default: sized to a 2 MiB per-core cache; >= N: untiled)")
    p.set_defaults(func=cmd_export)

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
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("check-trt", help="static TensorRT compatibility check against the parser's support tables")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("--trt-version", action="append", default=[], metavar="10.1|10.15|11",
                   help="TensorRT version to check against (repeatable; default: every supported version)")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    add_profile_arguments(p)
    p.set_defaults(func=cmd_check_trt)

    p = sub.add_parser("check-ort-cuda", help="static check: nodes onnxruntime's CUDA provider would run on the CPU")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    p.add_argument("--json", metavar="PATH", help="also write the findings as JSON")
    p.set_defaults(func=cmd_check_ort_cuda)

    p = sub.add_parser("build-engine", help="build TensorRT engines (needs tensorrt and a CUDA device)")
    p.add_argument("names", nargs="*", metavar="NAME|PATH.onnx")
    p.add_argument("--all", action="store_true", help="every catalog graph")
    p.add_argument("-o", "--output", help="plan file (one graph only; default: --engines/NAME.plan)")
    p.add_argument("--engines", default="models", help="directory for plans (default: models)")
    p.add_argument("--models", default="models", help="NAME is read from here as NAME.onnx, else exported (default: models)")
    p.add_argument("--exporter", choices=EXPORTERS, default="dynamo", help="exporter for graphs not in --models")
    add_profile_arguments(p)
    add_engine_arguments(p)
    p.set_defaults(func=cmd_build_engine)

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
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [arg for arg in argv if arg != "--debug"]
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # argparse's own exits: --help (0) and usage errors (2)
        return int(stop.code or 0)
    try:
        return args.func(args)
    except (UsageError, ModelFileError, OSError) as err:
        status = getattr(err, "exit_code", EXIT_USAGE)
        message = f"{err.filename}: {err.strerror}" if isinstance(err, OSError) and err.filename else str(err)
        trace = traceback.format_exc()
    except Exception as err:
        status, message = EXIT_USAGE, missing_export_extra(err)
        if message is None:
            status = EXIT_INTERNAL
            message = f"internal error: {type(err).__name__}: {err}".splitlines()[0] + " (a bug in exportloss; --debug shows the traceback)"
        trace = traceback.format_exc()
    if debug:
        print(trace, end="", file=sys.stderr)
    print(f"exportloss {args.command}: error: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
