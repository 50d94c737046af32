"""``exportloss export``: catalog graphs to checked ONNX files and the manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model_files import ModelFileError
from .common import (
    UsageError, console, output_directory, parse_shape, parse_size, positive_int, selected_entries, unique_arguments,
)


def add_parser(sub) -> None:
    from ..export import DEFAULT_OPSET, EXPORTERS

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
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the graph's module, e.g. iou_thr=0.6 or reduction=none; repeatable "
                        "(`exportloss list NAME` shows each graph's options; one graph only)")
    p.add_argument("--tile-rows", type=positive_int, metavar="R",
                   help="pairwise graphs: boxes1 rows per row tile (default: sized to a 2 MiB per-core cache; >= N: untiled)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..catalog.boxes import with_tile_rows
    from ..export import check_export_arguments, export_graph

    entries = selected_entries(args)
    output = output_directory(args.output)
    shapes = unique_arguments("--shape", map(parse_shape, args.shape), show=lambda dims: "x".join(map(str, dims)))
    sizes = unique_arguments("--size", map(parse_size, args.size))
    options = option_texts(args.option)
    if (shapes or sizes or options) and len(entries) > 1:
        raise UsageError("--shape, --size and --option apply to one graph at a time")
    try:
        # Every argument is checked before the first graph is written: a bad one fails the run, not its eighth graph.
        if args.tile_rows is not None:
            entries = [with_tile_rows(entry, args.tile_rows) for entry in entries]
        if options:  # at the graph's new sizes: an option may depend on them (one alpha per class)
            entries = [entry.at(sizes, shapes) for entry in entries]
            entries = [entry.at(options=entry.parse_options(options)) for entry in entries]
        check_export_arguments(entries, output, args.exporter, args.opset, shapes, sizes)
        for entry in entries:
            result = export_graph(entry, output, args.exporter, args.opset, shapes, sizes)
            console.print(f"exported {entry.name:<24} -> {result.path}  (opset {result.opset}, {args.exporter})")
    except ModelFileError:
        raise
    except ValueError as err:
        raise UsageError(str(err)) from None
    except OSError as err:
        named = f": {err.filename}" if err.filename and Path(err.filename) != output else ""
        raise UsageError(f"-o {args.output}: cannot write there ({err.strerror or err}{named})") from None
    return 0


def option_texts(texts: list[str]) -> dict[str, str]:
    """``["iou_thr=0.6", ...]`` -> ``{"iou_thr": "0.6", ...}``; a malformed or repeated KEY is a usage error."""
    options: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key or not value.strip():
            raise UsageError(f"--option expects KEY=VALUE, like iou_thr=0.6; got {text!r}")
        if key in options:
            raise UsageError(f"--option {key} is given twice ({key}={options[key]} and {text})")
        options[key] = value.strip()
    return options
