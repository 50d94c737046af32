"""Center loss (Wen et al. 2016) in the seed's per-class-normalised form, and the paper's center update.

Loss, for features ``f_i`` with labels ``y_i`` and learnable centers ``c``:

    ``L = lambda_c / 2 * mean_i( ||f_i - c_{y_i}||^2 / n_{y_i} )``

where ``n_y`` is the number of samples of class ``y`` in the batch, so each class present contributes
its mean squared distance once however many samples it has (the seed's intent; the paper's plain
``1/2 sum`` weights classes by their frequency). Counts come from a one-hot built by comparing the
labels with ``arange(C)`` and summed over the batch, never from ``histc`` / ``bincount``.

Center update (the paper's eq. 4, a pure function so a deployment can carry the centers as state):

    ``c_j <- c_j - alpha * sum_{i: y_i = j}(c_j - f_i) / (1 + n_j)``

Classes absent from the batch keep their center. No eps enters: ``n_{y_i} >= 1`` for every valid
sample, and ``1 + n_j >= 1``. Labels outside ``[0, C)`` raise in the Python API; in an exported graph
such a sample is treated as absent from the batch (it counts nowhere and leaves the mean).

**Exact per-class sums under any matmul precision.** ``sum_{y_i = j} f_i`` is a one-hot MatMul
``[C, B] x [B, D]`` (memory ``O(CD + BD)``, unlike a ``[B, C, D]`` product). GPU backends run float32
MatMul in TF32 by default (onnxruntime's CUDA provider, TensorRT), which rounds each input to 11
significant bits. The features are therefore split into three float32 parts of at most 8
significant bits each (bfloat16 roundings), ``f = f_hi + f_mid + f_lo`` exactly; each part's one-hot
product is then exact under TF32 as in float32, and only the float32 accumulation over the batch
rounds, as in any sum. Cost: three MatMuls instead of one, and ``[B, D]`` elementwise work.

**Non-finite features** (NaN, ±inf, or ``|f| > MAX_FEATURE``, about float32's largest) in :func:`center_update`: a class
with such a feature among its samples keeps its center unchanged this step (the centers are state;
a NaN must not poison them for good), and every other class is updated exactly as if the sample were
not there, so classes without a non-finite feature are untouched by it. :class:`CenterLoss`, a loss,
propagates NaN (it must not hide bad input): a non-finite feature makes the loss NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.checks import check_count, check_float_tensor, check_number, check_label_tensor, check_labels_in_range
from ..ops.labels import class_one_hot, valid_labels
from ..ops.non_finite import non_finite_marker
from ..ops.reduction import reduce_valid

MAX_FEATURE = 3.38e38
"""Largest feature magnitude :func:`center_update` takes as finite: float32 values above bfloat16's
largest (3.3895e38) would round to inf in the exact split."""


def _check_features_and_labels(features: object, labels: object, feat_dim: int, num_classes: int) -> None:
    features = check_float_tensor("features", features)
    labels = check_label_tensor("labels", labels)
    if features.dim() != 2 or features.shape[1] != feat_dim:
        raise ValueError(f"features must have shape [B, feat_dim={feat_dim}]; got {list(features.shape)}")
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape [B] with B={features.shape[0]} as in features; got {list(labels.shape)}")
    check_labels_in_range("labels", labels, num_classes)


def center_update(features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """New centers after one step of eq. 4 (module docstring); the inputs are not modified.

    Args:
        features: ``[B, D]`` floating features.
        labels: ``[B]`` int64 or int32 class indices in ``[0, C)``.
        centers: ``[C, D]`` current centers (``C`` is the number of classes).
        alpha: center learning rate (0.5 in the paper's experiments), finite and ``>= 0``.

    Returns:
        ``[C, D]`` updated centers, in ``centers``' dtype (float16/bfloat16 inputs are computed in float32).

    A class with a non-finite feature among its samples keeps its center; all other classes are
    updated as if that sample were absent (module docstring).
    """
    alpha = check_number("alpha", alpha, 0.0)
    centers = check_float_tensor("centers", centers)
    if centers.dim() != 2:
        raise ValueError(f"centers must have shape [num_classes, feat_dim]; got {list(centers.shape)}")
    _check_features_and_labels(features, labels, centers.shape[1], centers.shape[0])
    out_dtype = centers.dtype
    dtype = torch.promote_types(torch.promote_types(features.dtype, centers.dtype), torch.float32)
    features, centers = features.to(dtype), centers.to(dtype)
    finite = features.abs() <= MAX_FEATURE  # False for NaN, ±inf and the few values bfloat16 rounds to inf
    one_hot = class_one_hot(labels, centers.shape[0], dtype)
    counts = one_hot.sum(0).unsqueeze(1)
    feature_sums = _class_sums(one_hot.t(), torch.where(finite, features, 0.0))
    # A class holding a non-finite sample: it counts at least one bad sample. A sum, not a max, so that an empty
    # batch (B = 0) reduces to 0 like every other reduction here instead of raising.
    bad_sample = (~finite).any(dim=1, keepdim=True).to(dtype)
    poisoned = (one_hot * bad_sample).sum(dim=0).unsqueeze(1) > 0.5
    updated = centers - alpha * (counts * centers - feature_sums) / (1.0 + counts)
    return torch.where(poisoned, centers, updated).to(out_dtype)


def _class_sums(one_hot_t: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """``one_hot_t [C, B] @ features [B, D]`` whose float32 result does not depend on TF32 (module docstring).

    A float32 has 24 significant bits; rounding it to bfloat16 (8 bits, float32's exponent range)
    leaves an exact float32 remainder of at most 16 bits, and rounding that again a remainder of at
    most 8, so ``f = high + mid + low`` exactly with 8 bits in each part (under round-to-nearest or
    truncating casts alike). TF32 keeps 11 bits, so it changes no part, and each one-hot product is
    exact. The split uses casts and subtractions only: no multiply-add that a compiler could contract
    into an FMA and so undo. Float64 needs no split (no backend lowers float64 MatMul to TF32).
    """
    if features.dtype != torch.float32:
        return one_hot_t @ features
    high = features.to(torch.bfloat16).to(torch.float32)
    rest = features - high
    mid = rest.to(torch.bfloat16).to(torch.float32)
    return (one_hot_t @ high + one_hot_t @ mid) + one_hot_t @ (rest - mid)


class CenterUpdate(nn.Module):
    """Module form of :func:`center_update`: ``forward(features [B, D], labels [B], centers [C, D]) -> [C, D]``."""

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = check_number("alpha", alpha, 0.0)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return center_update(features, labels, centers, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class CenterLoss(nn.Module):
    """The seed's center loss ``lambda_c / 2 * mean_i(||f_i - c_{y_i}||^2 / n_{y_i})`` (module docstring).

    Args:
        num_classes: ``C``, fixed at construction.
        feat_dim: ``D``.
        lambda_c: weight of the loss, finite and ``>= 0``.

    Attributes:
        centers: ``nn.Parameter [C, D]``, drawn from a standard normal as in the seed. Train it with
            the loss's gradient, or with eq. 4 through :meth:`update_centers` / :func:`center_update`.

    Shapes:
        ``forward(features [B, D], labels [B]) -> []``; labels int64 or int32.
    """

    def __init__(self, num_classes: int, feat_dim: int, lambda_c: float = 1.0) -> None:
        super().__init__()
        check_count("num_classes", num_classes, 1)
        check_count("feat_dim", feat_dim, 1)
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.lambda_c = check_number("lambda_c", lambda_c, 0.0)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_features_and_labels(features, labels, self.feat_dim, self.num_classes)
        safe, valid = valid_labels(labels, self.num_classes)
        counts = class_one_hot(labels, self.num_classes, features.dtype).sum(0)
        offsets = features - F.embedding(safe, self.centers)
        # Invalid samples may pick a class with count 0; the clamp keeps their (masked) term finite.
        per_sample = (offsets * offsets).sum(1) / counts.clamp_min(1.0).index_select(0, safe)
        per_sample = per_sample + non_finite_marker(features, 1)  # the non-finite policy: NaN, not inf
        return (0.5 * self.lambda_c) * reduce_valid(per_sample, valid, "mean")

    @torch.no_grad()
    def update_centers(self, features: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> None:
        """Apply eq. 4 to :attr:`centers` in place (eager training; export :class:`CenterUpdate` instead)."""
        self.centers.copy_(center_update(features.detach(), labels, self.centers, alpha))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, lambda_c={self.lambda_c}"
