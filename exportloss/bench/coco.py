"""The ``exportloss evaluate`` row: COCO evaluation against faster-coco-eval and pycocotools, interleaved.

:func:`coco_case` is a :class:`~.cases.BenchCase` timed without the catalog (:attr:`~.cases.BenchCase.backends`):
on one :func:`~exportloss.detection.coco_data.synthetic_coco` set (5,000 images by default) it times, in the
bench's paired rounds, ``evaluate + accumulate + summarize`` on in-memory data for

- ``ort``: :func:`exportloss.evaluation.evaluate_arrays` (checks, grouping, the ``coco_match`` graphs in
  onnxruntime CPU with the bench's threads, accumulation);
- ``anchor``: faster-coco-eval's ``COCOeval_faster`` (C++), the target's anchor;
- ``reference``: pycocotools' ``COCOeval``, the reference the numbers must equal.

Each call gets fresh deep copies of the data, made before its clock starts (pycocotools' ``loadRes`` edits the
results list). The first call of each backend is untimed: onnxruntime's graphs are exported into the cache then.
A missing anchor leaves its column and its target out of the row, which says so.

``python -m exportloss.bench.coco [IMAGES] [ROUNDS] [THREADS]`` runs this row alone and prints images per second.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io

from ..detection.coco_data import coco_arrays, synthetic_coco
from .cases import ANCHOR, REFERENCE, BenchCase, Target

COCO_IMAGES = 5000
EVALUATE = "evaluate"
"""The row's name in the table (``exportloss bench evaluate``)."""


def _pycocotools(data: tuple[dict, list]):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt, dets = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def _faster_coco_eval(data: tuple[dict, list]):
    from faster_coco_eval import COCO, COCOeval_faster

    gt, dets = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        evaluation = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation.stats


def coco_backends(num_images: int, threads: int, seed: int = 0):
    """``({role: (fn, prepare)}, {role: why missing})`` as :attr:`~.cases.BenchCase.backends` wants them."""
    from ..evaluation import evaluate_arrays, ort_runner

    gt, dets = synthetic_coco(seed, num_images)
    runner = ort_runner("ort-cpu", None, threads)

    def prepare() -> tuple[dict, list]:
        return copy.deepcopy(gt), copy.deepcopy(dets)

    backends = {"ort": (lambda data: evaluate_arrays(coco_arrays(*data), runner).stats, prepare)}
    missing = {}
    for role, module, fn in (("anchor", "faster_coco_eval", _faster_coco_eval), ("reference", "pycocotools", _pycocotools)):
        try:
            __import__(module)
        except ImportError as err:
            missing[role] = f"{module} not installed ({err})"
            continue
        backends[role] = (fn, prepare)
    return backends, missing


def coco_case(num_images: int = COCO_IMAGES) -> BenchCase:
    return BenchCase(
        graph=EVALUATE, size=f"{num_images} images", shapes={}, anchor_name="faster_coco_eval.COCOeval_faster",
        targets=(Target(ANCHOR, 1.0, "issue 21: faster than faster-coco-eval (C++) on this machine's CPU"),
                 Target(REFERENCE, 1.0, "faster than pycocotools, the reference its numbers equal")),
        time_reference=True, backends=functools.partial(coco_backends, num_images))


def images_per_second(row) -> dict[str, float]:
    """Images per second of each timed backend of an ``evaluate`` row (from its median)."""
    images = int(row.size.split()[0])
    return {name: images / (t.median_ms / 1e3) for name, t in row.timings.items() if t.median_ms > 0}


if __name__ == "__main__":  # python -m exportloss.bench.coco [IMAGES] [ROUNDS] [THREADS]
    import json
    import sys
    import tempfile
    from dataclasses import asdict
    from pathlib import Path

    from .runner import run_case

    images, rounds, threads = [int(a) for a in sys.argv[1:4]] + [COCO_IMAGES, 3, 2][len(sys.argv[1:4]):]
    with tempfile.TemporaryDirectory() as tmp:
        row = run_case(coco_case(images), threads, 0.0, Path(tmp), min_rounds=rounds, time_limit_s=0.0)
    record = asdict(row)
    del record["rounds"]
    print(json.dumps({"images_per_s": images_per_second(row), **record}, indent=1))
