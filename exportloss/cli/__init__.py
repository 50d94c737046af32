"""The ``exportloss`` command line: ``list``, ``export``, ``verify``, ``attach``, ``evaluate``, ``check``,
``check-trt``, ``check-ort-cuda``, ``build-engine`` and ``bench``; each command is a module of this package
(``add_parser`` and ``run``), its logic lives in the library.

Exit status: 0 success; 1 a check or verification failed; 2 bad usage or unusable input (an unknown
graph, a malformed option, a missing, empty or foreign model file, a corrupt manifest, an output
directory that cannot be written); 3 an internal error (a bug); 130 interrupted (Ctrl-C: one line, no
traceback; an interrupted export leaves the models and the manifest as they were). Every error is one line
on stderr that names the argument or file; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Sequence

from .._extras import missing_export_extra
from ..model_files import ModelFileError
from . import attach, bench, build_engine, check, check_ort_cuda, check_trt, evaluate, export, list_graphs, verify
from .common import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, OneLineParser, UsageError

COMMANDS = (list_graphs, export, verify, attach, evaluate, check, check_trt, check_ort_cuda, build_engine, bench)
"""The command modules, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="exportloss", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        command.add_parser(sub)
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
    except KeyboardInterrupt:
        status, message, trace = EXIT_INTERRUPTED, "interrupted", traceback.format_exc()
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
