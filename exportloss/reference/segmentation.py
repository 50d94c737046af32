"""Float64 references for the Dice family, one (sample, class) pair at a time.

Written apart from :mod:`exportloss.segmentation.dice`: probabilities come from an explicit max-shifted softmax
or ``1 / (1 + exp(−x))``, ignored pixels are dropped by boolean selection instead of masked, and
each score is computed from plain Python sums over one class's pixels. Conventions are the same
(``smooth`` in numerator and denominator, every class of every sample counts in the mean).
"""

from __future__ import annotations

import torch


def probabilities(logits: torch.Tensor, mode: str, from_logits: bool) -> torch.Tensor:
    """``[B, C, N]`` float64 class probabilities (``C = 1`` in binary mode)."""
    x = logits.double().reshape(logits.shape[0], 1 if mode == "binary" else logits.shape[1], -1)
    if not from_logits:
        return x
    if mode == "multiclass":
        shifted = torch.exp(x - x.max(dim=1, keepdim=True).values)
        return shifted / shifted.sum(dim=1, keepdim=True)
    return 1.0 / (1.0 + torch.exp(-x))


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


def pair_score(p: list[float], t: list[float], kind: str, smooth: float, squared: bool = False,
               alpha: float = 0.5, beta: float = 0.5) -> float:
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


def overlap_scores_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    kind: str = "dice",
    from_logits: bool = True,
    squared: bool = False,
    smooth: float = 1e-5,
    reduce_batch: bool = False,
    include_background: bool = True,
    ignore_index: int | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
) -> torch.Tensor:
    """Per-class scores ``[B, C']`` (``[C']`` with ``reduce_batch``) in float64."""
    p = probabilities(logits, mode, from_logits)
    t, keep = class_targets(target, mode, p.shape[1], ignore_index)
    first = 0 if include_background else 1
    groups = [list(range(p.shape[0]))] if reduce_batch else [[b] for b in range(p.shape[0])]
    scores = []
    for samples in groups:
        row = []
        for c in range(first, p.shape[1]):
            kept_p = torch.cat([p[b, c][keep[b, c]] for b in samples]).tolist()
            kept_t = torch.cat([t[b, c][keep[b, c]] for b in samples]).tolist()
            row.append(pair_score(kept_p, kept_t, kind, smooth, squared, alpha, beta))
        scores.append(row)
    out = torch.tensor(scores, dtype=torch.float64)
    return out[0] if reduce_batch else out


def overlap_loss_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    kind: str = "dice",
    gamma: float = 1.0,
    class_weights: torch.Tensor | None = None,
    reduction: str = "mean",
    include_background: bool = True,
    **score_options,
) -> torch.Tensor:
    """``(1 − score) ** gamma`` per class, weighted, then reduced (mean over every per-class loss)."""
    scores = overlap_scores_reference(logits, target, mode, kind, include_background=include_background, **score_options)
    loss = torch.clamp(1.0 - scores, min=0.0) ** gamma if gamma != 1.0 else 1.0 - scores
    if class_weights is not None:
        weights = class_weights.double()
        loss = loss * (weights if include_background else weights[1:])
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.sum() / loss.numel()


def module_reference(module, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The reference for any module of :mod:`exportloss.segmentation.dice`, read off its options."""
    options = dict(
        from_logits=module.from_logits, squared=module.squared, smooth=module.smooth,
        reduce_batch=module.reduce_batch, include_background=module.include_background,
        ignore_index=module.ignore_index,
    )
    kind = "jaccard" if getattr(module, "jaccard", False) else "dice"
    if hasattr(module, "alpha"):
        kind = "tversky"
        options.update(alpha=module.alpha, beta=module.beta)
    if not hasattr(module, "reduction"):
        return overlap_scores_reference(logits, target, module.mode, kind, **options)
    return overlap_loss_reference(
        logits, target, module.mode, kind, gamma=module.gamma, class_weights=module.class_weights,
        reduction=module.reduction, **options,
    )
