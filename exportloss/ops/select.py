"""``select``: ``torch.where`` for branches that are finite, exported as arithmetic.

onnxruntime's CPU ``Where`` costs 8 to 20 ns per element (measured with onnxruntime 1.32 on [8, 4, 65536] float32
and [10, 100, 50, 8] float64/int64 planes: 30 to 90 times a ``Mul`` of the same tensors), more than the rest of a
Dice loss or of a COCO matching round together. Where both branches are finite, the selection is exact in
arithmetic, with ``s`` the condition as 0 or 1 in the branches' dtype:

* floating point: ``a·s + b·(1 − s)``: each product is the branch itself or a zero, and adding a zero is exact;
* integers: ``b + (a − b)·s``, exact while ``a − b`` does not overflow.

An infinite or NaN branch would poison the other side (``0 · inf`` is NaN), so callers pass only branches that are
finite for finite inputs; a non-finite input may then give NaN where ``Where`` would not, which the losses' policy
(:mod:`exportloss.ops.non_finite`: NaN in, NaN out) already allows. Eagerly it is ``torch.where`` itself.
"""

from __future__ import annotations

import torch


def select(condition: torch.Tensor, if_true: torch.Tensor | float | int, if_false: torch.Tensor | float | int) -> torch.Tensor:
    """``torch.where(condition, if_true, if_false)`` eagerly; the exact arithmetic form (module docstring) while a
    graph is being exported. Branches broadcast as in ``torch.where``; at least one of them is a tensor, and a Python
    number takes the other branch's dtype. Both branches must be finite wherever they are read."""
    if not torch.onnx.is_in_onnx_export():
        return torch.where(condition, if_true, if_false)
    dtype = torch.result_type(if_true, if_false)
    a = torch.as_tensor(if_true, dtype=dtype, device=condition.device)
    chosen = condition.to(dtype)
    if not isinstance(if_false, torch.Tensor) and if_false == 0:  # the common masking case: one product
        return a * chosen
    b = torch.as_tensor(if_false, dtype=dtype, device=condition.device)
    if dtype.is_floating_point:
        return a * chosen + b * (1 - chosen)
    return b + (a - b) * chosen
