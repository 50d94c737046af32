"""Integer class labels inside trace-friendly graphs: validity masks and one-hot by comparison."""

from __future__ import annotations

import torch


def valid_labels(labels: torch.Tensor, num_classes: int, ignore_index: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(safe, valid)`` for integer ``labels`` of any shape.

    ``valid`` (bool) is true where ``0 <= label < num_classes`` and ``label != ignore_index``;
    ``safe`` (int64) is the label where valid and 0 elsewhere, so it can always index a class axis.
    """
    labels = labels.long()
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_index is not None and 0 <= ignore_index < num_classes:
        valid = valid & (labels != ignore_index)
    return torch.where(valid, labels, 0), valid


def class_one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``[..., C]`` one-hot of ``labels`` by comparison with ``arange(C)``; labels outside ``[0, C)`` give a zero row."""
    return (labels.unsqueeze(-1) == torch.arange(num_classes, device=labels.device)).to(dtype)
