"""How many Cluster-NMS iterations detector-like scenes need, and how often the graphs' flags call an image exact.

``iterations``: for each seeded scene (``exportloss.catalog.detection.detection_scene``) it finds the smallest
iteration count whose keep set equals the exact one (``iterations = candidates``), which it first checks against
the plain-loop greedy reference, and prints the distribution, once for the whole keep set and once for the first
``max_det`` detections. ``exportloss.detection.options.AUTO_ITERATIONS`` was chosen from its output (see the README).

``exactness``: dense scenes with score ties (scores in 1/32 steps) through ``cluster_nms`` at its defaults (1000
candidates, ``iterations="auto"``), against float64 greedy NMS over *all* pairs: how many images equal it, how
many the outputs ``converged`` and ``num_capped`` call exact, and (which must be none) how many they call exact
wrongly.

    python tools/measure_cluster_iterations.py iterations --boxes 1000 --classes 1 --scenes 200
    python tools/measure_cluster_iterations.py exactness --boxes 1000 --classes 80 --scenes 100
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from exportloss import cluster_nms
from exportloss.catalog.detection import detection_scene
from exportloss.detection import NMSOptions
from exportloss.detection.options import AUTO_ITERATIONS, DEFAULT_CANDIDATES, NMS_CLASSES
from exportloss.reference.detection import nms_reference


def same(a, b) -> bool:
    return all(torch.equal(x.double(), y.double()) for x, y in zip(a, b))


def iterations_needed(boxes: torch.Tensor, scores: torch.Tensor, kind: str, max_det: int) -> tuple[int, int]:
    """(iterations for the whole keep set, iterations for the first ``max_det`` detections)."""
    k = min(DEFAULT_CANDIDATES, scores[0].numel())
    exact_all = cluster_nms(boxes, scores, kind=kind, max_det=k, iterations=k)
    greedy = nms_reference(boxes.double(), scores.double(), NMSOptions(kind=kind, max_det=k, iterations=k))
    assert same(exact_all, greedy), "exact Cluster-NMS differs from greedy NMS"
    exact_top = cluster_nms(boxes, scores, kind=kind, max_det=max_det, iterations=k)
    needed_top = None
    for t in range(1, k + 1):
        if needed_top is None and same(cluster_nms(boxes, scores, kind=kind, max_det=max_det, iterations=t), exact_top):
            needed_top = t
        if same(cluster_nms(boxes, scores, kind=kind, max_det=k, iterations=t), exact_all):
            return t, needed_top
    raise AssertionError("unreachable: iterations = candidates is exact")


def measure_iterations(args: argparse.Namespace, rng: np.random.Generator) -> None:
    scores_shape = (1, args.boxes, args.classes) if args.classes > 1 else (1, args.boxes)
    for kind in ("iou", "diou"):
        whole, top = Counter(), Counter()
        for _ in range(args.scenes):
            scene = detection_scene(rng, (1, args.boxes, 4), scores_shape)
            t_all, t_top = iterations_needed(torch.from_numpy(scene["boxes"]), torch.from_numpy(scene["scores"]), kind, args.max_det)
            whole[t_all] += 1
            top[t_top] += 1
        covered = sum(n for t, n in top.items() if t <= AUTO_ITERATIONS)
        print(f"{kind:>4}  N={args.boxes} C={args.classes}  whole keep set: {dict(sorted(whole.items()))}  "
              f"first {args.max_det}: {dict(sorted(top.items()))}  "
              f"auto ({AUTO_ITERATIONS}) reaches greedy on {covered}/{args.scenes}")


def measure_exactness(args: argparse.Namespace, rng: np.random.Generator) -> None:
    scores_shape = (2, args.boxes, args.classes) if args.classes > 1 else (2, args.boxes)
    scenes = [detection_scene(rng, (2, args.boxes, 4), scores_shape) for _ in range(args.scenes)]
    for classes in NMS_CLASSES:
        counts = Counter()
        for scene in scenes:
            boxes, scores = torch.from_numpy(scene["boxes"]), torch.round(torch.from_numpy(scene["scores"]) * 32) / 32
            got = cluster_nms(boxes, scores, max_det=args.max_det, classes=classes)
            want = nms_reference(boxes.double(), scores.double(), NMSOptions(
                max_det=args.max_det, classes=classes, candidates=scores[0].numel(), iterations=scores[0].numel()))
            claims = got.converged & ((got.num_capped == 0) | (got.num_dets == args.max_det))
            for b in range(2):
                equal = all(torch.equal(g[b].double(), w[b].double()) for g, w in zip(got[:5], want[:5]))
                counts["images"] += 1
                counts["equal"] += equal
                counts["claimed"] += bool(claims[b])
                counts["capped"] += bool(got.num_capped[b] > 0)
                counts["not converged"] += not bool(got.converged[b])
                counts["claimed wrongly"] += bool(claims[b]) and not equal
        print(f"classes={classes:<8} N={args.boxes} C={args.classes}  " + ", ".join(f"{k}: {v}" for k, v in counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("measure", choices=("iterations", "exactness"))
    parser.add_argument("--boxes", type=int, default=1000)
    parser.add_argument("--classes", type=int, default=1, help="1 = class-agnostic scores [B, N]")
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--max-det", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    (measure_iterations if args.measure == "iterations" else measure_exactness)(args, rng)


if __name__ == "__main__":
    main()
