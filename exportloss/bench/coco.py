"""Speed of ``exportloss evaluate`` against pycocotools and faster-coco-eval on one synthetic COCO set, interleaved.

:func:`bench_coco` draws :func:`~exportloss.detection.coco_data.synthetic_coco` (5,000 images by default), runs
each evaluator ``repeats`` times in interleaved rounds (exportloss, pycocotools, faster-coco-eval, then again), and
reports images per second from the median wall time of ``evaluate + accumulate + summarize`` on in-memory data
(each run on its own deep copy, made before the clock starts)
(exportloss: checks, grouping, the ``coco_match`` graphs in onnxruntime, accumulation; the graphs' one-time export
into the cache happens in a warm-up call and is reported apart). It also reports the largest difference of the 12
summary numbers from pycocotools'. faster-coco-eval is optional: missing, its row says so.
"""

from __future__ import annotations

import contextlib
import copy
import io
import statistics
import time

import numpy as np

from ..detection.coco_data import coco_arrays, synthetic_coco


def _pycocotools(gt: dict, dets: list) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluation = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.array(evaluation.stats)


def _faster_coco_eval(gt: dict, dets: list) -> np.ndarray:
    from faster_coco_eval import COCO, COCOeval_faster

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt)
        evaluation = COCOeval_faster(coco_gt, coco_gt.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return np.array(evaluation.stats)


def bench_coco(num_images: int = 5000, seed: int = 0, repeats: int = 3, backend: str = "ort-cpu",
               cache_dir: str | None = None, threads: int = 0) -> dict:
    """Images per second of each evaluator (median of ``repeats`` interleaved runs) and the stats' deviations."""
    from ..evaluation import evaluate_arrays, make_runner, ort_runner

    gt, dets = synthetic_coco(seed, num_images)
    runner = ort_runner(backend, cache_dir, threads) if backend.startswith("ort") else make_runner(backend)

    tic = time.perf_counter()
    evaluate_arrays(coco_arrays(gt, dets), runner)  # warm-up: exports the bucket graphs into the cache on a first run
    warm_up = time.perf_counter() - tic
    # Each evaluator gets fresh copies made before its clock starts (pycocotools' loadRes edits the results list).
    evaluators = {"exportloss": lambda data: evaluate_arrays(coco_arrays(*data), runner).stats,
                  "pycocotools": lambda data: _pycocotools(*data),
                  "faster-coco-eval": lambda data: _faster_coco_eval(*data)}
    times: dict[str, list[float]] = {name: [] for name in evaluators}
    stats: dict[str, np.ndarray] = {}
    missing: dict[str, str] = {}
    for _ in range(repeats):
        for name, run in evaluators.items():
            if name in missing:
                continue
            try:
                data = (copy.deepcopy(gt), copy.deepcopy(dets))
                tic = time.perf_counter()
                stats[name] = run(data)
                times[name].append(time.perf_counter() - tic)
            except ImportError as err:
                missing[name] = f"not installed ({err.name})"
    rows = {}
    for name in evaluators:
        if name in missing:
            rows[name] = {"status": missing[name]}
            continue
        median = statistics.median(times[name])
        rows[name] = {"seconds": median, "images_per_s": num_images / median,
                      "max_abs_stats_diff_vs_pycocotools": float(np.abs(stats[name] - stats["pycocotools"]).max())}
    return {"images": num_images, "detections": len(dets), "repeats": repeats, "backend": backend, "threads": threads,
            "first_run_seconds_with_exports": warm_up, "rows": rows}


if __name__ == "__main__":  # python -m exportloss.bench.coco [IMAGES] [REPEATS] [ORT_THREADS]
    import json
    import sys

    numbers = [int(a) for a in sys.argv[1:4]] + [5000, 3, 0][len(sys.argv[1:4]):]
    print(json.dumps(bench_coco(num_images=numbers[0], repeats=numbers[1], threads=numbers[2]), indent=1))
