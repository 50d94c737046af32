"""``exportloss.ops.select``: exported without ``Where``, equal to ``torch.where`` bit for bit on finite branches."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from exportloss import catalog
from exportloss.export import export_graph
from exportloss.ops.select import select


class Select(nn.Module):
    """Both branches tensors, or one of them a Python number (``which``)."""

    def __init__(self, which: str, number: float | int) -> None:
        super().__init__()
        self.which, self.number = which, number

    def forward(self, condition, a, b):
        if self.which == "true-number":
            return select(condition, self.number, b)
        if self.which == "false-number":
            return select(condition, a, self.number)
        return select(condition, a, b)


def _inputs(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(0)
    condition = torch.rand(3, 1, 40, generator=generator) > 0.5  # broadcast over the middle axis
    if dtype.is_floating_point:
        # Values across the whole range, negative zero and subnormals included: every one must come through unchanged.
        scale = torch.tensor([1e-40, -0.0, 1e-4, 1.0, 3e4, -2e30, 5e37], dtype=torch.float64)
        a = (torch.randn(3, 7, 40, generator=generator, dtype=torch.float64) * scale.view(1, -1, 1)).to(dtype)
        b = (torch.randn(1, 7, 40, generator=generator, dtype=torch.float64) * 1e5).to(dtype)
    else:
        a = torch.randint(-2**30, 2**30, (3, 7, 40), generator=generator).to(dtype)
        b = torch.randint(-2**30, 2**30, (1, 7, 40), generator=generator).to(dtype)
    return condition, a, b


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64])
@pytest.mark.parametrize("which", ["tensors", "true-number", "false-number"])
def test_select_exports_without_where_and_equals_torch_where(dtype, which):
    number = 0 if which == "false-number" else -7
    module = Select(which, float(number) if dtype.is_floating_point else number).eval()
    inputs = _inputs(dtype)
    buffer = io.BytesIO()
    torch.onnx.export(module, inputs, buffer, input_names=["condition", "a", "b"], dynamo=True)
    model = onnx.load_from_string(buffer.getvalue())
    assert "Where" not in {node.op_type for node in model.graph.node}
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: t.numpy() for name, t in zip(("condition", "a", "b"), inputs) if name in
             {i.name for i in session.get_inputs()}}
    got = session.run(None, feeds)[0]
    want = module(*inputs).numpy()
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)  # equal values (a zero's sign may differ: -0 + 0 is +0)


# Largest tensor each graph may still Where (coco_match: its [D, G, B] IoU plane, whose unused branch may divide by 0;
# its rounds work on [A, T, D, G, B] planes 40 times larger).
WHERE_ALLOWED = {"soft_dice_loss": 4096, "coco_match": 100 * 50 * 8, "coco_accumulate": 4096, "sigmoid_focal_loss": 4096}


@pytest.mark.parametrize("graph", sorted(WHERE_ALLOWED))
def test_hot_graphs_keep_where_off_their_large_planes(graph, tmp_path):
    """onnxruntime's CPU Where costs 30 to 90 Muls (ops.select): these graphs keep it off their large planes."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(export_graph(catalog.get(graph), tmp_path).path)))
    sizes = {v.name: np.prod([d.dim_value for d in v.type.tensor_type.shape.dim])
             for v in (*model.graph.value_info, *model.graph.output)}
    large = [node.name for node in model.graph.node if node.op_type == "Where" and sizes.get(node.output[0], 0) > WHERE_ALLOWED[graph]]
    assert not large, f"{graph}: Where on large planes: {large}"
