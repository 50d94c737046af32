"""Float64 references for the classification and embedding losses.

Each follows the formula as the papers and the seed state it, with the seed's bugs fixed: explicit
softmax probabilities, per-class loops, ``acos`` for the angle, and the ArcSoftmax denominator summed
over the other classes term by term. Conventions match the modules (alpha per class, where eps
enters, labels outside ``[0, C)`` or equal to ``ignore_index`` counted as absent) so that
verification compares like with like. Inputs and outputs are float64 torch tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..classification.arcface import NORM_EPS  # the convention where eps enters, shared so that both compare like with like
from ..classification.center import MAX_FEATURE


def _is_valid(label: int, num_classes: int, ignore_index: int | None) -> bool:
    return 0 <= label < num_classes and label != ignore_index


def _reduce(per_item: list[float], valid: list[bool], reduction: str, shape: tuple[int, ...]) -> torch.Tensor:
    values = [v if ok else 0.0 for v, ok in zip(per_item, valid)]
    if reduction == "none":
        return torch.tensor(values, dtype=torch.float64).reshape(shape)
    total = math.fsum(values)
    if reduction == "sum":
        return torch.tensor(total, dtype=torch.float64)
    return torch.tensor(total / max(sum(valid), 1), dtype=torch.float64)


def focal_reference(logits: torch.Tensor, labels: torch.Tensor, alpha: list[float], gamma: float,
                    reduction: str = "mean", ignore_index: int | None = None) -> torch.Tensor:
    """Softmax focal loss ``-alpha[y] (1 - p_y)^gamma log p_y``, row by row; ``alpha`` is the per-class list."""
    num_classes = logits.shape[-1]
    rows = logits.double().reshape(-1, num_classes).numpy()
    ys = labels.reshape(-1).tolist()
    per_item, valid = [], []
    for row, y in zip(rows, ys):
        ok = _is_valid(y, num_classes, ignore_index)
        valid.append(ok)
        if not ok:
            per_item.append(0.0)
            continue
        shifted = row - row.max()
        # log Σ e^shifted = log1p(Σ e^shifted − 1), the sum exactly rounded: log(Σ) would lose the digits of the
        # other classes' share below 1e-16 (a confident label), and 1 − p_y as 1 − exp(log p_y) likewise.
        log_p = shifted[y] - math.log1p(math.fsum([*np.exp(shifted), -1.0]))
        per_item.append(-alpha[y] * (-math.expm1(log_p)) ** gamma * log_p)
    return _reduce(per_item, valid, reduction, tuple(labels.shape))


def _log1p_exp(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def sigmoid_focal_reference(logits: torch.Tensor, targets: torch.Tensor, alpha: float, gamma: float,
                            reduction: str = "none") -> torch.Tensor:
    """torchvision's ``sigmoid_focal_loss`` in float64 with ``log sigmoid`` from ``logaddexp``."""
    x = logits.double().numpy()
    t = targets.double().numpy()
    log_p, log_not_p = -_log1p_exp(-x), -_log1p_exp(x)
    ce = -(t * log_p + (1 - t) * log_not_p)
    # 1 - p_t with p_t = p t + (1 - p)(1 - t), expanded: 1 - p_t formed by subtraction keeps no digit of a p_t
    # within 1e-16 of 1 (a logit of 37), and only 4 digits at a logit of -29.
    miss = np.exp(log_not_p) * t + np.exp(log_p) * (1 - t)
    loss = ce * miss ** gamma
    if alpha >= 0:
        loss = loss * (alpha * t + (1 - alpha) * (1 - t))
    out = torch.from_numpy(loss)
    if reduction == "none":
        return out
    return out.sum() if reduction == "sum" else out.mean()


def center_loss_reference(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, lambda_c: float) -> torch.Tensor:
    """``lambda_c / 2 * mean_i(||f_i - c_{y_i}||^2 / n_{y_i})`` over valid samples, counting with a Python loop."""
    num_classes = centers.shape[0]
    ys = labels.tolist()
    counts = {y: ys.count(y) for y in set(ys)}
    f, c = features.double().tolist(), centers.double().tolist()
    terms = [
        math.fsum((a - b) ** 2 for a, b in zip(f[i], c[y])) / counts[y]
        for i, y in enumerate(ys) if 0 <= y < num_classes
    ]
    return torch.tensor(lambda_c / 2 * math.fsum(terms) / max(len(terms), 1), dtype=torch.float64)


def center_update_reference(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, alpha: float) -> torch.Tensor:
    """Eq. 4 of Wen et al., class by class: ``c_j -= alpha * sum_{y_i=j}(c_j - f_i) / (1 + n_j)``.

    A class with a non-finite feature among its samples (or one above ``MAX_FEATURE`` in magnitude)
    keeps its center, as :func:`exportloss.center_update` documents.
    """
    f, ys = features.double(), labels.tolist()
    new = centers.double().clone()
    for j in range(centers.shape[0]):
        members = [i for i, y in enumerate(ys) if y == j]
        if any(not bool((f[i].abs() <= MAX_FEATURE).all()) for i in members):
            continue
        if members:
            delta = sum(new[j] - f[i] for i in members) / (1 + len(members))
            new[j] = new[j] - alpha * delta
    return new


def _angles(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    x = features.double()
    w = weight.double()
    x_hat = x / x.norm(dim=1, keepdim=True).clamp_min(NORM_EPS)
    w_hat = w / w.norm(dim=0, keepdim=True).clamp_min(NORM_EPS)
    return torch.acos((x_hat @ w_hat).clamp(-1.0, 1.0))


def _margined(theta: torch.Tensor, m: float, margin: str) -> torch.Tensor:
    if margin == "cosface":
        return torch.cos(theta) - m
    return torch.where(theta + m <= math.pi, torch.cos(theta + m), torch.cos(theta) - m * math.sin(m))


def arc_softmax_reference(features: torch.Tensor, weight: torch.Tensor, s: float, m: float, margin: str = "arcface") -> torch.Tensor:
    """``P_ij = e^{s φ_ij} / (sum_{k != j} e^{s cos θ_ik} + e^{s φ_ij})`` with ``θ`` from ``acos``.

    The sum over ``k != j`` multiplies by the all-ones-but-the-diagonal matrix, so no term is subtracted.
    Every exponent is shifted by the row's ``s · max cos θ``.
    """
    others, own = _others_and_own(features, weight, s, m, margin)
    return own / (others + own)


def _others_and_own(features: torch.Tensor, weight: torch.Tensor, s: float, m: float, margin: str):
    """``(Σ_{k != j} e^{s cos θ_ik}, e^{s φ_ij})``, both scaled by the row's ``e^{-s · max cos θ}``."""
    theta = _angles(features, weight)
    logits = s * torch.cos(theta)
    margined = s * _margined(theta, m, margin)
    shift = logits.amax(1, keepdim=True)
    num_classes = logits.shape[1]
    others = torch.exp(logits - shift) @ (torch.ones(num_classes, num_classes, dtype=torch.float64) - torch.eye(num_classes, dtype=torch.float64))
    return others, torch.exp(margined - shift)


def arcface_loss_reference(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, s: float, m: float,
                           margin: str = "arcface", reduction: str = "mean") -> torch.Tensor:
    """``-log P_{i, y_i}`` of :func:`arc_softmax_reference` as ``log1p(others / own)`` (``-log`` of a ``P`` within
    1e-16 of 1 would be 0), reduced over samples with a valid label."""
    others, own = _others_and_own(features, weight, s, m, margin)
    ys = labels.tolist()
    valid = [0 <= y < weight.shape[1] for y in ys]
    per_item = [math.log1p((others[i, y] / own[i, y]).item()) if ok else 0.0 for i, (y, ok) in enumerate(zip(ys, valid))]
    return _reduce(per_item, valid, reduction, tuple(labels.shape))
