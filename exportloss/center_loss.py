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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_float_tensor, check_label_tensor, check_labels_in_range
from ._labels import class_one_hot, valid_labels
from ._reduction import reduce_valid


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
        alpha: center learning rate (0.5 in the paper's experiments).

    Returns:
        ``[C, D]`` updated centers.
    """
    centers = check_float_tensor("centers", centers)
    if centers.dim() != 2:
        raise ValueError(f"centers must have shape [num_classes, feat_dim]; got {list(centers.shape)}")
    _check_features_and_labels(features, labels, centers.shape[1], centers.shape[0])
    one_hot = class_one_hot(labels, centers.shape[0], features.dtype)
    counts = one_hot.sum(0).unsqueeze(1)
    feature_sums = one_hot.t() @ features
    return centers - alpha * (counts * centers - feature_sums) / (1.0 + counts)


class CenterUpdate(nn.Module):
    """Module form of :func:`center_update`: ``forward(features [B, D], labels [B], centers [C, D]) -> [C, D]``."""

    def __init__(self, alpha: float = 0.5) -> None:
        super().__init__()
        self.alpha = float(alpha)

    def forward(self, features: torch.Tensor, labels: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
        return center_update(features, labels, centers, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class CenterLoss(nn.Module):
    """The seed's center loss ``lambda_c / 2 * mean_i(||f_i - c_{y_i}||^2 / n_{y_i})`` (module docstring).

    Args:
        num_classes: ``C``, fixed at construction.
        feat_dim: ``D``.
        lambda_c: weight of the loss.

    Attributes:
        centers: ``nn.Parameter [C, D]``, drawn from a standard normal as in the seed. Train it with
            the loss's gradient, or with eq. 4 through :meth:`update_centers` / :func:`center_update`.

    Shapes:
        ``forward(features [B, D], labels [B]) -> []``; labels int64 or int32.
    """

    def __init__(self, num_classes: int, feat_dim: int, lambda_c: float = 1.0) -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ValueError(f"num_classes and feat_dim must be >= 1; got {num_classes} and {feat_dim}")
        self.num_classes = int(num_classes)
        self.feat_dim = int(feat_dim)
        self.lambda_c = float(lambda_c)
        self.centers = nn.Parameter(torch.randn(self.num_classes, self.feat_dim))

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_features_and_labels(features, labels, self.feat_dim, self.num_classes)
        safe, valid = valid_labels(labels, self.num_classes)
        counts = class_one_hot(labels, self.num_classes, features.dtype).sum(0)
        offsets = features - F.embedding(safe, self.centers)
        # Invalid samples may pick a class with count 0; the clamp keeps their (masked) term finite.
        per_sample = (offsets * offsets).sum(1) / counts.clamp_min(1.0).index_select(0, safe)
        return (0.5 * self.lambda_c) * reduce_valid(per_sample, valid, "mean")

    @torch.no_grad()
    def update_centers(self, features: torch.Tensor, labels: torch.Tensor, alpha: float = 0.5) -> None:
        """Apply eq. 4 to :attr:`centers` in place (eager training; export :class:`CenterUpdate` instead)."""
        self.centers.copy_(center_update(features.detach(), labels, self.centers, alpha))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, feat_dim={self.feat_dim}, lambda_c={self.lambda_c}"
