"""pycocotools' ``accumulate`` (bbox) as a static graph: :class:`CocoAccumulate`.

Input: the matching of a whole dataset (:func:`exportloss.coco_match`), one slot per kept detection, padded to
``N`` slots (category ``-1``). Output: pycocotools' ``precision [T, R, K, A, M]`` and ``recall [T, K, A, M]``
(``T = 10`` IoU thresholds, ``R = 101`` recall points, ``A = 4`` area ranges, ``M = 3`` maxDets), ``-1`` where
a category has no countable ground truth. Everything is float64 or int64; no Loop, NonZero or data-dependent
shape:

* **Order.** pycocotools sorts each category's detections by descending score, ties by image position, then by
  rank in the image (a stable sort of the per-image lists). A first TopK over the scores gives each detection its
  *dense* score rank (equal scores, equal rank: the tie order of that TopK cannot matter); one TopK over the
  unique int64 key ``((category · N + dense score rank) · images + image) · ranks + rank`` then puts every slot
  in pycocotools' order (``K · N · images · ranks`` must stay below 2^63: 80 categories, 2^20 slots, 10^6
  images and 100 ranks fit). That one order serves all three maxDets: a detection beyond a maxDet only repeats the
  running sums before it, which changes neither the reverse maximum nor the first position reaching a recall.
* **Running sums** per category: one CumSum over all slots minus its value at the category's first slot.
* **Precision** ``tp / ((fp + tp) + 2^-52)`` as pycocotools; its reverse running maximum within each category by
  ``ceil(log2 N)`` doubling steps (``max(p[i], p[i + s])`` where slot ``i + s`` is of the same category).
* **Read-out**: the smallest true-positive count ``v`` with ``v / npig >= r`` (pycocotools' float64 division,
  found by ``ceil`` and one correction each way) for each recall point ``r``; the slot holding the ``v``-th true
  positive of the category comes from one ScatterElements (max) of slot positions over the global true-positive
  ordinals; ``v = 0`` reads the category's first slot; a ``v`` beyond the category's true positives reads 0.

TensorRT's TopK needs a constant ``K < 3840`` (:data:`~exportloss.detection.options.TOPK_LIMIT`) and TensorRT
has no float64: the graph is for onnxruntime (CPU, CUDA), where TopK has no such limit. The scores must stay
float64: a float32 score merges distinct scores into ties and changes pycocotools' order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..ops.select import select
from .options import COCO_MAX_DETS, COCO_REC_THRESHOLDS

EPS = 2.0**-52
"""``np.spacing(1)``, pycocotools' guard in ``tp / (fp + tp + eps)``."""


def coco_accumulate_graph(det_category: torch.Tensor, det_score: torch.Tensor, det_image: torch.Tensor,
                          det_rank: torch.Tensor, det_matched: torch.Tensor, det_ignore: torch.Tensor,
                          num_positive: torch.Tensor, max_dets: Sequence[int] = COCO_MAX_DETS) -> tuple[torch.Tensor, torch.Tensor]:
    """pycocotools' ``accumulate`` over padded per-detection matching (module docstring).

    Args:
        det_category: ``[N]`` int64 category index ``0..K-1`` of each kept detection, ``-1`` for padding.
        det_score: ``[N]`` float64 scores.
        det_image: ``[N]`` int64 image position (pycocotools' sorted image-id order), ``>= 0``.
        det_rank: ``[N]`` int64 rank within its (image, category), ``0 <= rank < 100``.
        det_matched: ``[N, A, T]`` bool, matched to a ground truth.
        det_ignore: ``[N, A, T]`` bool, :func:`exportloss.coco_match`'s ``det_ignore``.
        num_positive: ``[K, A]`` int64 ground truths not ignored (pycocotools' ``npig``).
        max_dets: pycocotools' ``maxDets`` (``M`` of them; the inputs hold ranks below the largest).

    Returns:
        ``precision [T, R, K, A, M]`` and ``recall [T, K, A, M]`` float64.
    """
    n = det_category.shape[0]
    num_categories = num_positive.shape[0]
    device = det_category.device
    slot = torch.arange(n, device=device)
    valid = det_category >= 0

    # Dense rank of the scores (descending): 0 for the highest; equal scores share a rank.
    scores = det_score.double()
    sorted_scores, by_score = torch.topk(scores, n)
    dense_sorted = torch.cumsum(torch.cat([sorted_scores.new_zeros(1, dtype=torch.int64),
                                           (sorted_scores[1:] != sorted_scores[:-1]).long()]), 0)
    dense = (dense_sorted * 0).scatter(0, by_score, dense_sorted)

    # One ascending sort on the unique key (category, dense score rank, image, rank); padding last, by slot.
    images = torch.where(valid, det_image, 0).amax(0) + 1
    ranks = torch.where(valid, det_rank, 0).amax(0) + 1
    category = torch.where(valid, det_category, num_categories)
    key = ((category * n + dense) * images + det_image) * ranks + det_rank
    padding_key = ((num_categories + 1) * n * images) * ranks + slot
    key = torch.where(valid, key, padding_key)
    _, order = torch.topk(key, n, largest=False)
    category = category[order]
    rank = det_rank[order]

    # Counted true and false positives per maxDet [M, A, T, N]; padding counts nowhere.
    max_dets = torch.tensor(tuple(max_dets), device=device).view(-1, 1, 1, 1)
    kept = valid[order] & (rank.view(1, 1, 1, -1) < max_dets)  # [M, 1, 1, N]
    counted = kept & ~det_ignore[order].permute(1, 2, 0).unsqueeze(0)
    matched = det_matched[order].permute(1, 2, 0).unsqueeze(0)
    tp_flags = (counted & matched).long()
    fp_flags = (counted & ~matched).long()
    tp_total = torch.cumsum(tp_flags, -1)  # [M, A, T, N]: true positives up to each slot, all categories
    fp_total = torch.cumsum(fp_flags, -1)

    # First slot of each category [K + 1] (the last entry: number of valid slots).
    starts = (category.view(1, -1) < torch.arange(num_categories + 1, device=device).view(-1, 1)).long().sum(1)
    shape = tp_total.shape
    zero = tp_total.new_zeros((*shape[:-1], 1))
    tp_before = torch.cat([zero, tp_total], -1)  # [M, A, T, N + 1]: true positives before slot j
    fp_before = torch.cat([zero, fp_total], -1)
    tp_base = tp_before.index_select(-1, starts)  # [M, A, T, K + 1]: true positives before each category
    slot_start = starts.index_select(0, category)  # [N]: first slot of each slot's category
    tp = (tp_total - tp_before.index_select(-1, slot_start)).double()
    fp = (fp_total - fp_before.index_select(-1, slot_start)).double()
    # onnxscript's optimizer removes an Add of a constant this small, so the guard is added as a computed tensor: for a
    # whole count s, s + 2^-52 rounds back to s from s = 2 on (a tie to even at 2 and 3, under half an ulp after).
    counted_total = fp + tp
    precision_at = tp / (counted_total + select(counted_total < 2, torch.tensor(EPS, dtype=torch.float64), 0.0))

    # Reverse running maximum within each category: after step s, slot i holds the max over [i, i + 2s).
    step = 1
    while step < n:
        same = torch.cat([category[step:] == category[:-step], torch.zeros(step, dtype=torch.bool, device=device)])
        ahead = torch.cat([precision_at[..., step:], precision_at[..., -step:]], -1)  # the tail is masked by `same`
        precision_at = torch.maximum(precision_at, select(same, ahead, 0.0))  # precisions are >= 0: a 0 never wins
        step *= 2

    # The smallest true-positive count reaching each recall point [K, A, R], with pycocotools' division.
    npig = num_positive.double().unsqueeze(-1)  # [K, A, 1]
    recall_points = torch.tensor(COCO_REC_THRESHOLDS, dtype=torch.float64, device=device)
    need = torch.ceil(recall_points * npig)
    need = need + (need / npig < recall_points).double()  # one up where rounding left it short
    need = need - (((need - 1) / npig >= recall_points) & (need > 0)).double()  # one down where it overshot
    need = need.long().permute(1, 0, 2).unsqueeze(0).unsqueeze(2)  # [1, A, 1, K, R]

    # Slot of the g-th true positive overall (ordinal g - 1), by one scatter; slots that are no true positive
    # write into a spare last entry.
    ordinal = select(tp_flags > 0, tp_total - 1, n)
    # (the buffers are built from the data, not as constants, so that the exporter does not store them in the model)
    slot_of_tp = (tp_before * 0 - 1).scatter_reduce(-1, ordinal, tp_total * 0 + slot, reduce="amax")
    base = tp_base[..., :num_categories].unsqueeze(-1)  # [M, A, T, K, 1]: true positives before the category
    totals = tp_base[..., 1:] - tp_base[..., :num_categories]  # [M, A, T, K]
    wanted = (base + need - 1).clamp(0, n)  # [M, A, T, K, R]
    read_slot = slot_of_tp.gather(-1, wanted.flatten(-2)).view(wanted.shape)
    first_slot = starts[:num_categories].view(1, 1, 1, -1, 1)
    read_slot = select(need == 0, first_slot, read_slot)
    nonempty = (starts[1:] > starts[:num_categories]).view(1, 1, 1, -1, 1)
    reached = nonempty & (need <= totals.unsqueeze(-1))
    values = precision_at.gather(-1, read_slot.clamp(0, n - 1).flatten(-2)).view(read_slot.shape)
    has_gt = (num_positive > 0).T.unsqueeze(0).unsqueeze(2)  # [1, A, 1, K]
    precision = select(has_gt.unsqueeze(-1), select(reached, values, 0.0), -1.0)
    recall = torch.where(has_gt, totals.double() / num_positive.double().T.unsqueeze(0).unsqueeze(2), -1.0)
    return precision.permute(2, 4, 3, 1, 0), recall.permute(2, 3, 1, 0)


class CocoAccumulate(nn.Module):
    """Module form of :func:`coco_accumulate_graph`: ``forward(det_category, det_score, det_image, det_rank,
    det_matched, det_ignore, num_positive) -> (precision, recall)``.

    Args:
        max_dets: pycocotools' ``maxDets``, positive and increasing (default 1, 10, 100).
    """

    def __init__(self, max_dets: Sequence[int] = COCO_MAX_DETS) -> None:
        super().__init__()
        max_dets = tuple(max_dets)
        if not max_dets or any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in max_dets) or list(max_dets) != sorted(set(max_dets)):
            raise ValueError(f"max_dets must be positive increasing integers; got {max_dets}")
        self.max_dets = max_dets

    def forward(self, det_category, det_score, det_image, det_rank, det_matched, det_ignore, num_positive):
        return coco_accumulate_graph(det_category, det_score, det_image, det_rank, det_matched, det_ignore, num_positive,
                                     self.max_dets)

    def extra_repr(self) -> str:
        return f"max_dets={self.max_dets}"
