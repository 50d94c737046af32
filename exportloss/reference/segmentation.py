"""Float64 references for the Dice family, one (sample, class) pair at a time.

Written apart from :mod:`exportloss.segmentation.dice`: probabilities come from an explicit max-shifted softmax
or ``1 / (1 + exp(−x))``, ignored pixels are dropped by boolean selection instead of masked, and
each score is computed from plain Python sums over one class's pixels. Conventions are the same
(``smooth`` in numerator and denominator, every class of every sample counts in the mean).
"""

from __future__ import annotations

import torch

from ..segmentation.options import OverlapOptions


def probabilities(logits: torch.Tensor, mode: str, from_logits: bool) -> torch.Tensor:
    """``[B, C, N]`` float64 class probabilities (``C = 1`` in binary mode)."""
    x = logits.double().reshape(logits.shape[0], 1 if mode == "binary" else logits.shape[1], -1)
    if not from_logits:
        return x
    if mode == "multiclass":
        shifted = torch.exp(x - x.max(dim=1, keepdim=True).values)
        return shifted / shifted.sum(dim=1, keepdim=True)
    return 1.0 / (1.0 + torch.exp(-x))


def complements(logits: torch.Tensor, mode: str, from_logits: bool) -> torch.Tensor:
    """``[B, C, N]`` float64 ``1 − p``, taken from the other outcomes' mass rather than subtracted from 1: the sum of
    the other classes' max-shifted exponentials over their total, or ``1 / (1 + exp(x))``."""
    x = logits.double().reshape(logits.shape[0], 1 if mode == "binary" else logits.shape[1], -1)
    if not from_logits:
        return 1.0 - x
    if mode == "multiclass":
        shifted = torch.exp(x - x.max(dim=1, keepdim=True).values)
        others = torch.stack([shifted[:, [k for k in range(x.shape[1]) if k != c]].sum(dim=1) for c in range(x.shape[1])], dim=1)
        return others / shifted.sum(dim=1, keepdim=True)
    return 1.0 / (1.0 + torch.exp(x))


def class_targets(target: torch.Tensor, mode: str, num_classes: int, ignore_index: int | None):
    """``(t [B, C, N] float64, keep [B, C, N] bool)``: per-class targets and the pixels that count."""
    batch = target.shape[0]
    if mode == "multiclass":
        labels = target.reshape(batch, -1)
        t = torch.stack([(labels == c).double() for c in range(num_classes)], dim=1)
        keep = (labels != ignore_index) if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
        return t, keep.unsqueeze(1).expand(-1, num_classes, -1)
    t = target.double().reshape(batch, num_classes, -1)
    keep = (t != ignore_index) if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    return t, keep


def pair_score(p: list[float], t: list[float], kind: str, smooth: float, squared: bool, alpha: float, beta: float) -> float:
    """Dice, Jaccard or Tversky of one class's kept pixels (plain Python floats)."""
    inter = sum(a * b for a, b in zip(p, t))
    pred = sum(a * a for a in p) if squared else sum(p)
    true = sum(b * b for b in t) if squared else sum(t)
    if kind == "dice":
        return (2 * inter + smooth) / (pred + true + smooth)
    if kind == "jaccard":
        return (inter + smooth) / (pred + true - inter + smooth)
    if kind == "tversky":
        return (inter + smooth) / (inter + alpha * (pred - inter) + beta * (true - inter) + smooth)
    raise ValueError(f"unknown score kind {kind!r}")


def pair_loss(p: list[float], q: list[float], t: list[float], kind: str, smooth: float, squared: bool, alpha: float,
              beta: float) -> float:
    """``1 − score`` of one class's kept pixels, from its false positives and false negatives (``q = 1 − p``), so
    that a near-perfect class keeps its digits: ``P − I = Σ p·(1 − t)``, ``T − I = Σ (1 − p)·t``; squared,
    ``Σ p² − p·t = Σ p·(p − t)`` and ``Σ t² − p·t = Σ t·(t − p)`` with ``p − t = (1 − t) − q`` for ``t = 1``."""
    inter = sum(a * b for a, b in zip(p, t))
    pred = sum(a * a for a in p) if squared else sum(p)
    true = sum(b * b for b in t) if squared else sum(t)
    if squared:
        gaps = [-c if b == 1.0 else a - b for a, b, c in zip(p, t, q)]
        false_pos = sum(a * g for a, g in zip(p, gaps))
        false_neg = -sum(b * g for b, g in zip(t, gaps))
        both = sum(g * g for g in gaps)  # false_pos + false_neg, a sum of squares
    else:
        false_pos = sum(a * (1 - b) for a, b in zip(p, t))
        false_neg = sum(c * b for b, c in zip(t, q))
        both = false_pos + false_neg
    if kind == "dice":
        return both / (pred + true + smooth)
    if kind == "jaccard":
        return both / (pred + true - inter + smooth)
    if kind == "tversky":
        weighted = alpha * false_pos + beta * false_neg
        return weighted / (inter + weighted + smooth)
    raise ValueError(f"unknown score kind {kind!r}")


def overlap_scores_reference(logits: torch.Tensor, target: torch.Tensor, options: OverlapOptions = OverlapOptions(),
                             loss: bool = False) -> torch.Tensor:
    """Per-class scores ``[B, C']`` (``[C']`` with ``reduce_batch``) in float64; ``loss``: ``1 − score`` instead,
    by :func:`pair_loss`."""
    p = probabilities(logits, options.mode, options.from_logits)
    q = complements(logits, options.mode, options.from_logits)
    t, keep = class_targets(target, options.mode, p.shape[1], options.ignore_index)
    first = 0 if options.include_background else 1
    groups = [list(range(p.shape[0]))] if options.reduce_batch else [[b] for b in range(p.shape[0])]
    scores = []
    for samples in groups:
        row = []
        for c in range(first, p.shape[1]):
            kept_p = torch.cat([p[b, c][keep[b, c]] for b in samples]).tolist()
            kept_t = torch.cat([t[b, c][keep[b, c]] for b in samples]).tolist()
            terms = (options.score, options.smooth, options.squared, options.alpha, options.beta)
            if loss:
                kept_q = torch.cat([q[b, c][keep[b, c]] for b in samples]).tolist()
                row.append(pair_loss(kept_p, kept_q, kept_t, *terms))
            else:
                row.append(pair_score(kept_p, kept_t, *terms))
        scores.append(row)
    out = torch.tensor(scores, dtype=torch.float64)
    return out[0] if options.reduce_batch else out


def overlap_loss_reference(logits: torch.Tensor, target: torch.Tensor, options: OverlapOptions = OverlapOptions()) -> torch.Tensor:
    """``(1 − score) ** gamma`` per class, weighted, then reduced (mean over every per-class loss)."""
    loss = overlap_scores_reference(logits, target, options, loss=True)
    loss = torch.clamp(loss, min=0.0) ** options.gamma if options.gamma != 1.0 else loss
    if options.class_weights is not None:
        weights = torch.tensor(options.class_weights, dtype=torch.float64)
        loss = loss * (weights if options.include_background else weights[1:])
    if options.reduction == "none":
        return loss
    return loss.sum() if options.reduction == "sum" else loss.sum() / loss.numel()
