"""The benchmark's mechanics on a tiny case (no timing assertions: speed targets live in `make bench`)."""

from __future__ import annotations

import json

from exportloss import bench
from exportloss.bench import BenchCase, Target


def test_run_case_reports_every_backend_ratio_and_verdict(tmp_path):
    case = BenchCase(
        graph="pairwise_giou", size="N=M=50", shapes={"boxes1": (1, 50, 4), "boxes2": (1, 50, 4)},
        anchor=lambda b1, b2: b1[0] @ b2[0].T, anchor_name="matmul",
        targets=(Target("ort/eager", 1e9), Target("ort/anchor", 0.0)), memory_bound=True,
    )
    row = bench.run_case(case, threads=1, bandwidth=1e10, workdir=tmp_path, min_rounds=3, budget_s=0.05)
    assert set(row.timings) == {"ort", "eager", "reference", "anchor"}
    assert all(t.samples >= 3 and t.q1_ms <= t.median_ms <= t.q3_ms for t in row.timings.values())
    assert row.nodes > 10
    assert row.ratios["ort/eager"] == row.timings["ort"].median_ms / row.timings["eager"].median_ms
    # 2 inputs of 50x4 floats + one 50x50 output at 10 GB/s.
    assert abs(row.floor_ms - (2 * 50 * 4 * 4 + 50 * 50 * 4) / 1e10 * 1e3) < 1e-12
    assert row.verdicts == [("ort/eager <= 1e+09", True), ("ort/anchor <= 0", False)]
    assert not row.passed
    record = json.loads(bench.to_json([row], 1e10, 1))["rows"][0]
    assert record["graph"] == "pairwise_giou" and record["passed"] is False
    assert "FAIL: ort/anchor <= 0" in bench.markdown_table([row])


def test_default_cases_cover_the_issue_sizes():
    sizes = {(c.graph, c.size) for c in bench.default_cases()}
    for kind in ("iou", "giou", "diou", "ciou"):
        assert {(f"pairwise_{kind}", "N=M=1000"), (f"pairwise_{kind}", "N=M=3000"), (f"{kind}_loss", "1e6 pairs")} <= sizes


def test_bandwidth_is_positive():
    assert bench.measure_bandwidth(threads=1, nbytes=8 << 20, repeats=2) > 1e8
