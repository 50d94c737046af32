"""``exportloss evaluate GT.json DETS.json``: COCO bbox evaluation equal to pycocotools, through ``coco_match`` graphs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .common import UsageError, console, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="COCO bbox evaluation (pycocotools' numbers) through coco_match graphs")
    p.add_argument("gt", metavar="GT.json", help="COCO ground truth (images, annotations, categories)")
    p.add_argument("dets", metavar="DETS.json", help="COCO results: a list of {image_id, category_id, bbox, score}")
    p.add_argument("--iou-type", choices=("bbox",), default="bbox", help="what is evaluated (bbox only)")
    p.add_argument("--backend", choices=("ort-cpu", "ort-cuda", "torch"), default="ort-cpu",
                   help="where coco_match runs: onnxruntime CPU (default) or CUDA, or eager PyTorch")
    p.add_argument("--batch", type=positive_int, default=None,
                   help="most (image, category) rows per graph call (default: about 32768 detection x ground-truth slots)")
    p.add_argument("--cache", metavar="DIR", default=None,
                   help="where the exported graphs are kept (default: $EXPORTLOSS_CACHE or ~/.cache/exportloss)")
    p.add_argument("--accumulate", choices=("numpy", "graph"), default="numpy",
                   help="pycocotools' accumulate on the host in numpy (default) or as the coco_accumulate graph on --backend")
    p.add_argument("--json", metavar="PATH", help="also write the 12 stats and the AP of each category as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate, make_runner, ort_runner

    progress = _progress_bar() if sys.stderr.isatty() else None
    try:
        runner = ort_runner(args.backend, args.cache) if args.backend.startswith("ort") else make_runner(args.backend)
        with progress or _nothing():
            tick = None
            if progress is not None:
                task = progress.add_task("matching", total=None)
                tick = lambda rows: progress.update(task, advance=rows)  # noqa: E731
            result = evaluate(args.gt, args.dets, backend=args.backend, runner=runner, progress=tick, rows_per_call=args.batch,
                              accumulate=args.accumulate, cache_dir=args.cache)
    except ValueError as err:
        raise UsageError(str(err)) from None
    print(result.summary())
    if args.json:
        path = Path(args.json)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")  # nothing half-written
        partial.write_text(json.dumps(result.to_json(), indent=1) + "\n")
        os.replace(partial, path)
        console.print(f"wrote {path}", markup=False)
    return 0


def _progress_bar():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console.__class__(stderr=True), transient=True)


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
