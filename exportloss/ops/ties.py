"""Tie rules that hold on every backend: arg-extrema through unique keys instead of ArgMax/ArgMin.

ONNX specifies that ArgMax returns the first maximum, but a deployment backend may not honour it
(TensorRT's reductions promise no index order among equal values, and the CUDA TopK's order depends
on the size). Here the index is read off by a ReduceMax over unique integer keys, which has one
answer on any backend.
"""

from __future__ import annotations

import torch


def first_argmax(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, index)`` of the maximum along ``dim`` (keeping ``dim``), the **lowest index** on ties.

    Each position ``i`` of a maximum gets the key ``L - i`` (``L = x.shape[dim]``, exact in float32
    below 2**24), every other position 0, and the largest key names the lowest such index. A slice
    containing NaN (where no element equals the maximum) gets index ``L - 1``, always a valid index.
    """
    dim = dim % x.dim()
    extent = x.shape[dim]
    values = x.amax(dim, keepdim=True)
    position_shape = [1] * x.dim()
    position_shape[dim] = extent
    reverse_position = (extent - torch.arange(extent, device=x.device)).to(torch.float32).reshape(position_shape)
    key = torch.where(x == values, reverse_position, 0.0).amax(dim, keepdim=True)
    return values, (extent - key.clamp_min(1.0)).to(torch.int64)
