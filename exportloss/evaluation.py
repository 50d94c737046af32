"""COCO bbox evaluation with :func:`exportloss.coco_match` graphs: ``exportloss evaluate GT.json DETS.json``.

Data path: COCO files (standard-library ``json``) -> checked flat arrays (:func:`exportloss.detection.coco_data.coco_arrays`)
-> (image, category) groups padded into a few bucket sizes -> ``coco_match`` in onnxruntime (or eagerly in
PyTorch) -> :func:`exportloss.detection.coco.coco_accumulate` -> pycocotools' 12 numbers.

Each (image, category) pair is one row of the graph: matching never crosses categories, so the rows stay small
(most hold a few detections and ground truths) and the padding cheap. A bucket of at most ``rounds`` detections
per row is exact by construction; rows of larger buckets still open after the rounds (``unsettled > 0``) run
again with ``rounds = max_dets``, so every result equals pycocotools'. Nothing here imports onnxruntime or
the exporter until an onnxruntime backend runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .detection.coco import SUMMARY_ROWS, CocoAccumulation, coco_accumulate, coco_match, coco_summarize
from .detection.coco_data import CocoArrays, CocoGroups, coco_arrays, coco_groups
from .detection.options import COCO_AREA_NAMES, COCO_AREA_RANGES, COCO_IOU_THRESHOLDS, COCO_MAX_DETS, DEFAULT_COCO_ROUNDS

INPUT_NAMES = ("det_boxes", "det_scores", "det_categories", "gt_boxes", "gt_categories", "gt_crowd", "gt_areas")
OUTPUT_NAMES = ("det_rank", "det_kept", "det_match", "det_ignore", "gt_ignore", "gt_match", "unsettled")
BACKENDS = ("ort-cpu", "ort-cuda", "torch")
DET_BUCKETS = (2, 4, 8, 16, 64)
"""Detections per row of the graphs (then ``max_dets``); a bucket of at most ``rounds`` is exact by construction."""
GT_BUCKETS = (1, 4, 16, 64, 256)
"""Ground truths per row of the graphs (then the next power of two that holds the largest group)."""
EXACT_BUCKET = 16
"""Buckets of at most this many detections per row run with ``rounds`` = detections (exact by construction, no
second graph); larger ones run the default rounds and rerun their open rows with ``rounds = detections``."""
PAIRS_PER_CALL = 1 << 15
"""Rows per call: about this many (detection, ground-truth) slots, so that small rows come in large batches."""

Runner = Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]]
"""``run(inputs, rounds) -> outputs``: one ``coco_match`` call on padded inputs (names of :data:`INPUT_NAMES`)."""


@dataclass
class Matching:
    """The matching of a whole dataset, per kept detection (rows of ``groups.det_rows``) and per ground truth
    (rows of ``groups.gt_rows``): ``det_rank [n]``, ``det_match [n, A, T]`` (row of the ground truth in the
    :class:`CocoArrays` columns, ``-1``), ``det_ignore [n, A, T]``, ``gt_ignore [g, A]``, ``gt_match [g, A, T]``
    (row of the detection in the columns, ``-1``); ``rounds_needed``: the most settling rounds a row needed
    (pycocotools' answer reached), ``calls``: graph calls."""

    groups: CocoGroups
    det_rank: np.ndarray
    det_match: np.ndarray
    det_ignore: np.ndarray
    gt_ignore: np.ndarray
    gt_match: np.ndarray
    calls: int = 0
    reruns: int = 0


def _bucket(count: int, sizes: tuple[int, ...], last: int) -> int:
    for size in sizes:
        if count <= size:
            return size
    return max(last, count)


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, int(n - 1).bit_length())


def match_groups(groups: CocoGroups, run: Runner, max_dets: int = 100, rounds: int = DEFAULT_COCO_ROUNDS,
                 progress: Callable[[int], None] | None = None, rows_per_call: int | None = None) -> Matching:
    """Run ``coco_match`` over every group of ``groups`` through ``run``, bucket by bucket (module docstring)."""
    det_counts, gt_counts = groups.det_counts, groups.gt_counts
    largest_gt = _next_power_of_two(int(gt_counts.max(initial=1)))
    det_bucket = np.array([_bucket(n, DET_BUCKETS, max_dets) for n in range(max_dets + 1)])[det_counts]
    gt_bucket = np.array([_bucket(int(n), GT_BUCKETS, largest_gt) for n in gt_counts]) if len(gt_counts) else gt_counts
    num_det_rows, num_gt_rows = len(groups.det_rows), len(groups.gt_rows)
    shape = (len(COCO_AREA_RANGES), len(COCO_IOU_THRESHOLDS))
    result = Matching(
        groups=groups, det_rank=np.full(num_det_rows, -1, np.int64), det_match=np.full((num_det_rows, *shape), -1, np.int64),
        det_ignore=np.zeros((num_det_rows, *shape), bool), gt_ignore=np.zeros((num_gt_rows, shape[0]), bool),
        gt_match=np.full((num_gt_rows, *shape), -1, np.int64),
    )
    # Position of each detection/ground-truth row of the columns in the grouped order.
    det_position = np.empty(len(groups.arrays.det_ids), np.int64)
    det_position[groups.det_rows] = np.arange(num_det_rows)
    gt_position = np.empty(len(groups.arrays.gt_ids), np.int64)
    gt_position[groups.gt_rows] = np.arange(num_gt_rows)
    for num_dets, num_gts in sorted(set(zip(det_bucket.tolist(), gt_bucket.tolist()))):
        members = np.flatnonzero((det_bucket == num_dets) & (gt_bucket == num_gts))
        # Rows per call: a power of two (so that other data sets reuse the cached graphs), at most PAIRS_PER_CALL slots.
        most = rows_per_call or max(PAIRS_PER_CALL // (num_dets * num_gts), 1)
        rows = int(min(most, _next_power_of_two(len(members))))
        bucket_rounds = num_dets if num_dets <= EXACT_BUCKET else min(rounds, num_dets)
        for start in range(0, len(members), rows):
            chunk = members[start: start + rows]
            open_rows = _match_chunk(groups, chunk, run, num_dets, num_gts, rows, bucket_rounds, result, det_position, gt_position)
            result.calls += 1
            if len(open_rows):  # still unsettled after the rounds: exact by construction with rounds = detections
                _match_chunk(groups, chunk[open_rows], run, num_dets, num_gts, rows, num_dets, result,
                             det_position, gt_position)
                result.calls += 1
                result.reruns += len(open_rows)
            if progress is not None:
                progress(len(chunk))
    return result


def _match_chunk(groups, chunk, run, num_dets, num_gts, rows, rounds, result, det_position, gt_position) -> np.ndarray:
    outputs = run(groups.batch(chunk, num_dets, num_gts, rows), rounds)
    det_row, det_slot, det_source = groups.slots(chunk, "det")
    gt_row, gt_slot, gt_source = groups.slots(chunk, "gt")
    # Group slot -> row of the columns, for the match indices.
    gt_of_slot = np.full((rows, num_gts + 1), -1, np.int64)
    gt_of_slot[gt_row, gt_slot] = gt_source
    det_of_slot = np.full((rows, num_dets + 1), -1, np.int64)
    det_of_slot[det_row, det_slot] = det_source
    into_det, into_gt = det_position[det_source], gt_position[gt_source]
    match = outputs["det_match"][det_row, :, :, det_slot]  # [n, A, T]
    result.det_rank[into_det] = outputs["det_rank"][det_row, det_slot]
    result.det_match[into_det] = np.take_along_axis(gt_of_slot[det_row], np.where(match < 0, num_gts, match).reshape(len(det_row), int(np.prod(match.shape[1:]))),
                                                    axis=1).reshape(match.shape)
    result.det_ignore[into_det] = outputs["det_ignore"][det_row, :, :, det_slot]
    result.gt_ignore[into_gt] = outputs["gt_ignore"][gt_row, :, gt_slot]
    taken = outputs["gt_match"][gt_row, :, :, gt_slot]
    result.gt_match[into_gt] = np.take_along_axis(det_of_slot[gt_row], np.where(taken < 0, num_dets, taken).reshape(len(gt_row), int(np.prod(taken.shape[1:]))),
                                                  axis=1).reshape(taken.shape)
    return np.flatnonzero(outputs["unsettled"][: len(chunk)] > 0)


ACCUMULATE_INPUT_NAMES = ("det_category", "det_score", "det_image", "det_rank", "det_matched", "det_ignore", "num_positive")
ACCUMULATE_OUTPUT_NAMES = ("precision", "recall")
ACCUMULATE_CHOICES = ("numpy", "graph")


def accumulate_inputs(matching: Matching) -> dict[str, np.ndarray]:
    """The inputs of ``coco_accumulate`` (numpy) and of the ``coco_accumulate`` graph, unpadded (names of
    :data:`ACCUMULATE_INPUT_NAMES`): per kept detection its category index, score, image position, rank, matched and
    ignore flags ``[n, A, T]``; per category and area range the countable ground truths ``[K, A]``."""
    groups, a = matching.groups, matching.groups.arrays
    gt_category = np.searchsorted(a.category_ids, a.gt_categories[groups.gt_rows])
    num_positive = np.zeros((len(a.category_ids), len(COCO_AREA_RANGES)), np.int64)
    for area in range(len(COCO_AREA_RANGES)):
        num_positive[:, area] = np.bincount(gt_category[~matching.gt_ignore[:, area]], minlength=len(a.category_ids))
    return {"det_category": np.searchsorted(a.category_ids, a.det_categories[groups.det_rows]).astype(np.int64),
            "det_score": np.asarray(a.det_scores[groups.det_rows], np.float64),
            "det_image": np.asarray(a.det_image[groups.det_rows], np.int64), "det_rank": matching.det_rank,
            "det_matched": matching.det_match >= 0, "det_ignore": matching.det_ignore, "num_positive": num_positive}


def pad_accumulate_inputs(inputs: dict[str, np.ndarray], slots: int) -> dict[str, np.ndarray]:
    """``inputs`` (:func:`accumulate_inputs`) padded to ``slots`` detections: category ``-1``, everything else 0."""
    count = len(inputs["det_category"])
    if count > slots:
        raise ValueError(f"{count} detections do not fit the {slots} slots of the coco_accumulate graph")
    padded = {"num_positive": inputs["num_positive"]}
    for name in ACCUMULATE_INPUT_NAMES[:-1]:
        value = inputs[name]
        padded[name] = np.full((slots, *value.shape[1:]), -1 if name == "det_category" else 0, value.dtype)
        padded[name][:count] = value
    return padded


def accumulate_matching(matching: Matching, how: str = "numpy", backend: str = "ort-cpu",
                        cache_dir: str | os.PathLike | None = None) -> CocoAccumulation:
    """pycocotools' ``accumulate`` and ``summarize`` over ``matching``: ``how="numpy"``
    (:func:`~exportloss.detection.coco.coco_accumulate`) or ``"graph"`` (the ``coco_accumulate`` graph in
    onnxruntime ``backend``, ``"torch"`` for the same module eagerly; exported into ``cache_dir`` as :func:`ort_runner`
    does), equal to each other and to pycocotools."""
    inputs = accumulate_inputs(matching)
    if how == "numpy":
        return coco_accumulate(*(inputs[name] for name in ACCUMULATE_INPUT_NAMES), COCO_MAX_DETS)
    if how != "graph":
        raise ValueError(f"accumulate must be one of {', '.join(ACCUMULATE_CHOICES)}; got {how!r}")
    padded = pad_accumulate_inputs(inputs, _next_power_of_two(max(len(inputs["det_category"]), 2)))
    if backend == "torch":
        from .detection.coco_accumulate import coco_accumulate_graph

        with torch.no_grad():
            precision, recall = (t.numpy() for t in coco_accumulate_graph(*(torch.from_numpy(padded[n]) for n in ACCUMULATE_INPUT_NAMES)))
    else:
        precision, recall = _accumulate_session(backend, len(padded["det_category"]), len(padded["num_positive"]), cache_dir).run(
            list(ACCUMULATE_OUTPUT_NAMES), padded)
    return CocoAccumulation(precision, recall, coco_summarize(precision, recall, COCO_MAX_DETS))


def _accumulate_session(backend: str, slots: int, categories: int, cache_dir: str | os.PathLike | None = None):
    """An onnxruntime session of the ``coco_accumulate`` graph at (slots, categories), exported on first use and
    cached like :func:`ort_runner`'s graphs."""
    import onnxruntime as ort

    from . import __version__
    from .catalog import get
    from .export import export_model

    providers = _providers(backend)
    cache = _cache_dir(cache_dir) / f"coco-{__version__}-{_graph_code_hash()}"
    path = cache / f"coco_accumulate-{slots}x{categories}.onnx"
    if not path.exists():
        entry = get("coco_accumulate").at(sizes={"detections": slots, "categories": categories})
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")  # atomic: never a half-written model
        partial.write_bytes(export_model(entry).SerializeToString())
        os.replace(partial, path)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=providers)


def summary_lines(stats: np.ndarray) -> list[str]:
    """pycocotools' 12 summary lines for ``stats``, character for character."""
    lines = []
    for value, (is_ap, iou_thr, area, max_det) in zip(stats, SUMMARY_ROWS):
        title, kind = ("Average Precision", "(AP)") if is_ap else ("Average Recall", "(AR)")
        iou = f"{COCO_IOU_THRESHOLDS[0]:0.2f}:{COCO_IOU_THRESHOLDS[-1]:0.2f}" if iou_thr is None else f"{iou_thr:0.2f}"
        lines.append(f" {title:<18} {kind} @[ IoU={iou:<9} | area={area:>6s} | maxDets={max_det:>3d} ] = {value:0.3f}")
    return lines


@dataclass(frozen=True)
class CocoResult:
    """``stats``: pycocotools' 12 numbers; ``precision [T, R, K, A, M]``, ``recall [T, K, A, M]``; ``per_category_ap``
    ``{category id: AP@[.5:.95] (all areas, 100 detections), -1 without ground truth}``; ``matching``; timings."""

    stats: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    per_category_ap: dict[int, float]
    matching: Matching
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        return "\n".join(summary_lines(self.stats))

    def to_json(self) -> dict:
        names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"]
        return {"stats": dict(zip(names, map(float, self.stats))),
                "per_category_ap": {str(k): v for k, v in self.per_category_ap.items()},
                "images": int(self.matching.groups.arrays.num_images)}


def _per_category_ap(precision: np.ndarray, category_ids: np.ndarray) -> dict[int, float]:
    s = precision[:, :, :, COCO_AREA_NAMES.index("all"), COCO_MAX_DETS.index(100)]  # [T, R, K]
    return {int(c): float(np.mean(s[:, :, k][s[:, :, k] > -1])) if (s[:, :, k] > -1).any() else -1.0
            for k, c in enumerate(category_ids)}


def torch_runner() -> Runner:
    """Eager PyTorch ``coco_match`` (float64 on the CPU): the same module the graphs are exported from."""
    def run(inputs: dict[str, np.ndarray], rounds: int) -> dict[str, np.ndarray]:
        with torch.no_grad():
            outputs = coco_match(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES), rounds=rounds)
        return {name: value.numpy() for name, value in zip(OUTPUT_NAMES, outputs)}
    return run


def ort_runner(backend: str = "ort-cpu", cache_dir: str | os.PathLike | None = None, threads: int = 0) -> Runner:
    """``coco_match`` graphs in onnxruntime (``ort-cpu`` or ``ort-cuda``), one per (rows, detections, ground
    truths, rounds), exported on first use and cached in ``cache_dir`` (default ``$EXPORTLOSS_CACHE`` or
    ``~/.cache/exportloss``) under the exportloss version and a digest of the graph code; ``threads``: onnxruntime's
    intra-op threads (0: its default)."""
    import onnxruntime as ort

    from . import __version__
    from .catalog import get
    from .export import export_model

    providers = _providers(backend)
    cache = _cache_dir(cache_dir) / f"coco-{__version__}-{_graph_code_hash()}"
    sessions: dict[tuple[int, ...], ort.InferenceSession] = {}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads  # 0: onnxruntime's default (the machine's cores)

    def session(rows: int, num_dets: int, num_gts: int, rounds: int):
        key = (rows, num_dets, num_gts, rounds)
        if key not in sessions:
            path = cache / f"coco_match-{rows}x{num_dets}x{num_gts}-r{rounds}.onnx"
            if not path.exists():
                entry = get("coco_match").at(sizes={"batch": rows, "detections": num_dets, "ground_truths": num_gts})
                entry = dataclasses.replace(entry, make=lambda sizes, r=rounds: _module(r))
                path.parent.mkdir(parents=True, exist_ok=True)
                partial = path.with_suffix(f".{os.getpid()}.partial")  # atomic: never a half-written model
                partial.write_bytes(export_model(entry).SerializeToString())
                os.replace(partial, path)
            sessions[key] = ort.InferenceSession(str(path), options, providers=providers)
        return sessions[key]

    def run(inputs: dict[str, np.ndarray], rounds: int) -> dict[str, np.ndarray]:
        rows, num_dets = inputs["det_scores"].shape
        outputs = session(rows, num_dets, inputs["gt_areas"].shape[1], rounds).run(list(OUTPUT_NAMES), inputs)
        return dict(zip(OUTPUT_NAMES, outputs))
    return run


def _providers(backend: str) -> list[str]:
    import onnxruntime as ort

    if backend == "ort-cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ValueError("--backend ort-cuda: onnxruntime's CUDA provider is not available (install onnxruntime-gpu)")
    return ["CPUExecutionProvider"] if backend == "ort-cpu" else ["CUDAExecutionProvider"]


def _cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    return Path(cache_dir or os.environ.get("EXPORTLOSS_CACHE") or Path.home() / ".cache" / "exportloss")


def _graph_code_hash() -> str:
    """A digest of the code the cached graphs are exported from, so that a changed graph is never read from the cache."""
    from .detection import coco, coco_accumulate as accumulate_module, options

    digest = hashlib.sha256()
    for module in (coco, accumulate_module, options):
        digest.update(Path(module.__file__).read_bytes())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:12]


def _module(rounds: int):
    from .detection.coco import CocoMatch

    return CocoMatch(rounds=rounds)


def make_runner(backend: str) -> Runner:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}")
    return torch_runner() if backend == "torch" else ort_runner(backend)


def evaluate(gt: dict | str | os.PathLike, dets: list | str | os.PathLike, backend: str = "ort-cpu",
             rounds: int = DEFAULT_COCO_ROUNDS, progress: Callable[[int], None] | None = None,
             runner: Runner | None = None, rows_per_call: int | None = None, accumulate: str = "numpy",
             cache_dir: str | os.PathLike | None = None) -> CocoResult:
    """COCO bbox evaluation of ``dets`` (a results list or its JSON file) against ``gt`` (a COCO dict or its
    JSON file), equal to pycocotools' ``COCOeval(gt, dets, "bbox")`` ``evaluate(); accumulate(); summarize()``.

    ``backend``: ``"ort-cpu"`` (default), ``"ort-cuda"`` or ``"torch"`` (eager, no onnxruntime); ``accumulate``:
    ``"numpy"`` (default, on the host) or ``"graph"`` (the ``coco_accumulate`` graph on ``backend``); ``cache_dir``: where
    the exported graphs are kept (default ``$EXPORTLOSS_CACHE`` or ``~/.cache/exportloss``). Raises
    ``ValueError`` (one line naming the file and record) for malformed input (see
    :func:`~exportloss.detection.coco_data.coco_arrays`).
    """
    seconds = {}
    tic = time.perf_counter()
    gt_name, dets_name = (str(gt) if not isinstance(gt, dict) else "ground truth"), (str(dets) if not isinstance(dets, list) else "detections")
    arrays = coco_arrays(load_json(gt), load_json(dets), gt_name, dets_name)
    seconds["load"] = time.perf_counter() - tic
    run = runner or (ort_runner(backend, cache_dir) if backend in ("ort-cpu", "ort-cuda") else make_runner(backend))
    return evaluate_arrays(arrays, run, rounds, progress, seconds, rows_per_call, accumulate=accumulate,
                           accumulate_backend=backend, cache_dir=cache_dir)


def evaluate_arrays(arrays: CocoArrays, run: Runner, rounds: int = DEFAULT_COCO_ROUNDS,
                    progress: Callable[[int], None] | None = None, seconds: dict | None = None,
                    rows_per_call: int | None = None, accumulate: str = "numpy", accumulate_backend: str = "ort-cpu",
                    cache_dir: str | os.PathLike | None = None) -> CocoResult:
    """:func:`evaluate` on checked arrays with a given runner; ``seconds`` collects the time of each step;
    ``accumulate``, ``accumulate_backend`` and ``cache_dir``: :func:`accumulate_matching`'s ``how``, ``backend`` and
    ``cache_dir``."""
    if accumulate not in ACCUMULATE_CHOICES:
        raise ValueError(f"accumulate must be one of {', '.join(ACCUMULATE_CHOICES)}; got {accumulate!r}")
    seconds = {} if seconds is None else seconds
    tic = time.perf_counter()
    matching = match_groups(coco_groups(arrays), run, rounds=rounds, progress=progress, rows_per_call=rows_per_call)
    seconds["match"] = time.perf_counter() - tic
    tic = time.perf_counter()
    acc = accumulate_matching(matching, accumulate, accumulate_backend, cache_dir)
    seconds["accumulate"] = time.perf_counter() - tic
    return CocoResult(acc.stats, acc.precision, acc.recall, _per_category_ap(acc.precision, arrays.category_ids), matching, seconds)


def load_json(source) -> dict | list:
    """``source`` itself when already loaded, else its JSON (``ValueError`` naming the file when it is not JSON)."""
    if isinstance(source, (dict, list)):
        return source
    try:
        with open(source, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{source}: not valid JSON ({err.msg} at line {err.lineno})") from None


class CocoMetric:
    """A stateful COCO bbox metric for training loops (torchmetrics' ``MeanAveragePrecision`` interface):
    ``update(preds, targets)`` per batch, ``compute()`` at the end, ``reset()`` between epochs.

    ``preds``: one dict per image with ``boxes [N, 4]``, ``scores [N]``, ``labels [N]``; ``targets``: one dict per
    image with ``boxes [M, 4]``, ``labels [M]`` and optionally ``iscrowd [M]`` and ``area [M]`` (default: box area).
    Boxes are ``box_format`` (``"xyxy"``, torchmetrics' default, or ``"xywh"``), tensors or arrays. ``compute()``
    returns pycocotools' 12 numbers under torchmetrics' names (``map``, ``map_50``, ..., ``mar_large``), equal to
    pycocotools on the same data; categories are the labels seen in targets or predictions.
    """

    STAT_NAMES = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                  "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")

    def __init__(self, box_format: str = "xyxy", backend: str = "torch") -> None:
        if box_format not in ("xyxy", "xywh"):
            raise ValueError(f"box_format must be 'xyxy' or 'xywh'; got {box_format!r}")
        self.box_format, self.backend = box_format, backend
        self.reset()

    def reset(self) -> None:
        self._images: list[dict] = []
        self._annotations: list[dict] = []
        self._detections: list[dict] = []
        self._categories: set[int] = set()

    def _xywh(self, boxes) -> np.ndarray:
        boxes = np.asarray(boxes.detach().cpu() if isinstance(boxes, torch.Tensor) else boxes, np.float64).reshape(-1, 4)
        if self.box_format == "xyxy":
            boxes = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)
        return boxes

    @staticmethod
    def _array(values, dtype) -> np.ndarray:
        return np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype).reshape(-1)

    def update(self, preds: Iterable[Mapping], targets: Iterable[Mapping]) -> None:
        preds, targets = list(preds), list(targets)
        if len(preds) != len(targets):
            raise ValueError(f"preds and targets must hold the same number of images; got {len(preds)} and {len(targets)}")
        for pred, target in zip(preds, targets):
            image_id = len(self._images) + 1
            self._images.append({"id": image_id})
            boxes, labels = self._xywh(target["boxes"]), self._array(target["labels"], np.int64)
            crowd = self._array(target["iscrowd"], np.int64) if "iscrowd" in target else np.zeros(len(labels), np.int64)
            area = self._array(target["area"], np.float64) if "area" in target else boxes[:, 2] * boxes[:, 3]
            for box, label, is_crowd, a in zip(boxes.tolist(), labels.tolist(), crowd.tolist(), area.tolist()):
                self._annotations.append({"id": len(self._annotations) + 1, "image_id": image_id, "category_id": label,
                                          "bbox": box, "area": a, "iscrowd": int(is_crowd)})
            det_boxes, scores = self._xywh(pred["boxes"]), self._array(pred["scores"], np.float64)
            det_labels = self._array(pred["labels"], np.int64)
            for box, score, label in zip(det_boxes.tolist(), scores.tolist(), det_labels.tolist()):
                self._detections.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
            self._categories.update(labels.tolist(), det_labels.tolist())

    def compute(self) -> dict[str, float]:
        gt = {"images": self._images, "annotations": self._annotations,
              "categories": [{"id": c} for c in sorted(self._categories)]}
        result = evaluate(gt, self._detections, backend=self.backend)
        return dict(zip(self.STAT_NAMES, map(float, result.stats)))
