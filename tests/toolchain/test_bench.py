"""The benchmark's mechanics on tiny cases (no timing assertions: speed targets live in `make bench`)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from exportloss import bench
from exportloss.bench import cuda, report, timing
from exportloss.bench.cases import SCALING, SCALING_SIZES, Target, find_case
from exportloss.bench.runner import BenchRow, add_scaling_ratios, judge
from exportloss.bench.timing import Backend, Timing
from exportloss.cli import main

RATIOS = {"ort/eager", "ort/eager warm", "ort/anchor", "ort/anchor warm", "ort/floor", SCALING.ratio}


def tiny(graph: str, size: str, n: int = 40):
    return dataclasses.replace(find_case(graph, size), shapes={"boxes1": (1, n, 4), "boxes2": (1, n, 4)}, time_reference=True)


def test_run_case_times_every_backend_in_both_allocator_states(tmp_path):
    case = dataclasses.replace(tiny("pairwise_giou", "N=M=1000"), targets=(Target("ort/eager warm", 1e9), Target("ort/floor", 0.0)))
    row = bench.run_case(case, threads=1, bandwidth=1e10, workdir=tmp_path, min_rounds=2, time_limit_s=0.1, quiet_share=1.0)
    assert {"ort", "eager", "eager warm", "reference", "floor fill", "floor fresh"} <= set(row.timings)
    assert ("anchor" in row.timings) == ("anchor warm" in row.timings) == (case.anchor is not None)
    assert all(t.samples >= 2 and t.q1_ms <= t.median_ms <= t.q3_ms for t in row.timings.values())
    assert row.rounds_kept == 2 and row.quiet
    assert row.ratios["ort/eager warm"] == row.timings["ort"].median_ms / row.timings["eager warm"].median_ms
    # The floor: 2 inputs of 40x4 floats read at 10 GB/s + a fresh 40x40 output allocated and written.
    read_ms = 2 * 40 * 4 * 4 / 1e10 * 1e3
    assert row.floor_ms == pytest.approx(read_ms + row.timings["floor fresh"].median_ms)
    assert row.ns_per_pair == row.timings["ort"].median_ms * 1e6 / 1600
    assert row.verdicts == [("ort/eager warm <= 1e+09", True), ("ort/floor <= 0", False)] and not row.passed


def fake_backend(name: str, seconds: float = 1e-3) -> Backend:
    return Backend(name, lambda calls: [seconds] * calls, 0)


def test_quiet_gate_discards_busy_rounds_and_reruns(monkeypatch):
    shares = iter([0.5, 0.02, 0.9, 0.03, 0.01])
    monkeypatch.setattr(timing, "others_share", lambda before, after: next(shares))
    monkeypatch.setattr(timing, "PAUSE_S", 0.0)
    measured = timing.interleaved([fake_backend("a"), fake_backend("b")], {"a": 2, "b": 1}, min_rounds=3, time_limit_s=60)
    assert (measured.rounds_kept, measured.rounds_run, measured.quiet) == (3, 5, True)
    assert measured.others_share == 0.03
    assert measured.timings["a"].samples == 6 and measured.timings["b"].samples == 3


def test_quiet_gate_keeps_the_quietest_rounds_at_the_time_limit(monkeypatch):
    shares = iter([0.5, 0.3, 0.9, 0.4] + [0.6] * 1000)
    monkeypatch.setattr(timing, "others_share", lambda before, after: next(shares))
    monkeypatch.setattr(timing, "PAUSE_S", 0.0)
    measured = timing.interleaved([fake_backend("a")], {"a": 1}, min_rounds=2, time_limit_s=0.0)
    assert (measured.rounds_kept, measured.rounds_run, measured.quiet, measured.others_share) == (2, 2, False, 0.5)


def test_cpu_sample_reads_proc_and_the_own_process():
    import os

    before = timing.cpu_sample([os.getpid()])
    sum(i * i for i in range(200_000))
    after = timing.cpu_sample([os.getpid()])
    if before is None:
        pytest.skip("no /proc")
    assert after.own >= before.own and after.total > before.total
    share = timing.others_share(before, after)
    assert share is None or 0.0 <= share <= 1.0


def test_burst_calls_and_bandwidth():
    assert [timing.burst_calls(s) for s in (1e-5, 0.1, 0.2, 3.0)] == [3, 2, 1, 1]
    assert bench.measure_bandwidth(threads=1, nbytes=8 << 20, repeats=2) > 1e8


def test_default_cases_cover_the_issue_sizes_and_targets():
    cases = bench.default_cases()
    sizes = {(c.graph, c.size) for c in cases}
    for kind in ("iou", "giou", "diou", "ciou"):
        assert {(f"pairwise_{kind}", f"N=M={n}") for n in (1000, 3000, 4000)} <= sizes
        assert (f"{kind}_loss", "1e6 pairs") in sizes
        assert SCALING in find_case(f"pairwise_{kind}", "N=M=4000").targets
    assert {("pairwise_iou", f"N=M={n}") for n in SCALING_SIZES} <= sizes
    iou_3000 = {t.ratio: t.limit for t in find_case("pairwise_iou", "N=M=3000").targets}
    assert iou_3000["ort/floor"] <= 12 and iou_3000.get("ort/anchor", 0.0) <= 0.15  # anchors need torchvision
    assert all(t.ratio in RATIOS for c in cases for t in c.targets)
    assert all(c.scaling_only or any(t.ratio.startswith("ort/eager") for t in c.targets) for c in cases)


def test_scaling_ratio_against_the_n_1000_row():
    def row(size, n, ms):
        return BenchRow("pairwise_ciou", size, 10, {"ort": Timing(ms, ms, ms, 3)}, {}, pairs=n * n)

    rows = [row("N=M=1000", 1000, 2.0), row("N=M=4000", 4000, 48.0)]
    cases = [find_case("pairwise_ciou", "N=M=1000"), find_case("pairwise_ciou", "N=M=4000")]
    add_scaling_ratios(rows, cases)
    assert rows[1].ratios[SCALING.ratio] == pytest.approx(1.5)
    assert rows[1].verdicts == [(SCALING.describe(), False)]


def synthetic_rows() -> list[BenchRow]:
    t = Timing(2.0, 1.5, 2.5, 9)
    good = BenchRow("pairwise_iou", "N=M=1000", 81, {"ort": t, "eager warm": t}, {"ort": 1.0, "eager": 2.0}, pairs=10**6,
                    ratios={"ort/eager warm": 1.0}, rounds_kept=5, rounds_run=6)
    judge(good, [Target("ort/eager warm", 2.0)])
    bad = BenchRow("focal_loss", "32x8732x21", 23, {"ort": t}, {}, ratios={"ort/eager warm": 3.0}, rounds_kept=5,
                   rounds_run=40, quiet=False)
    judge(bad, [Target("ort/eager warm", 1.0)])
    return [good, bad]


META = {"date": "2026-11-28", "threads": 2, "bandwidth_gb_s": 24.0, "quiet_share": 0.1, "versions": {"torch": "x"}}


def test_markdown_block_json_roundtrip_and_readme_update():
    rows = synthetic_rows()
    block = report.markdown(rows, META)
    assert "24.0 GB/s" in block and "2026-11-28" in block and "10 of 46 rounds kept" in block
    assert "not reached within the time limit for focal_loss 32x8732x21" in block
    assert "| pairwise_iou | 2.00 | — |" not in block and "| pairwise_iou | — | 2.00 |" in block  # scaling table
    assert "FAIL: ort/eager warm <= 1" in block and "5/40 busy" in block
    again, meta = report.from_json(report.to_json(rows, META))
    assert report.markdown(again, meta) == block
    readme = f"intro\n{report.README_START}\nold table\n{report.README_END}\nrest\n"
    updated = report.update_readme(readme, block)
    assert updated.startswith("intro\n") and updated.endswith("rest\n") and "old table" not in updated
    assert report.update_readme(updated, block) == updated
    with pytest.raises(ValueError, match="results block"):
        report.update_readme("no markers", block)


@pytest.mark.parametrize("argv, message", [
    (["bench", "--threads", "0"], "--threads must be a positive integer"),
    (["bench", "--sizes", "bogus"], "no benchmark size 'bogus'"),
    (["bench", "pairwise_ciou", "--sizes", "1e6 pairs"], "no benchmark size '1e6 pairs' for pairwise_ciou"),
    (["bench", "no_such_graph"], "no benchmark for no_such_graph"),
    (["bench", "--quiet-share", "0"], "--quiet-share"),
    (["bench", "--device", "cuda", "--sizes", "N=M=7"], "no GPU benchmark size"),
])
def test_bench_usage_errors_are_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_bench_device_cuda_reports_unavailable(capsys):
    try:
        cuda.check_available()
    except cuda.Unavailable:
        pass
    else:
        pytest.skip("a CUDA device and provider are available here")
    assert main(["bench", "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "unavailable: " in err and err.count("\n") == 1


def test_report_only_never_fails_and_readme_is_written_from_json(tmp_path, capsys):
    results = tmp_path / "bench-results.json"
    results.write_text(report.to_json(synthetic_rows(), META))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.README_START}\n{report.README_END}\n")
    assert main(["bench", "--from-json", str(results)]) == 1  # a missed target fails
    assert main(["bench", "--from-json", str(results), "--report-only", "--readme", str(readme)]) == 0
    assert "| focal_loss | 32x8732x21 |" in readme.read_text()
    assert main(["bench", "--from-json", str(tmp_path / "missing.json")]) == 2


def test_cuda_selection_rows_table_and_json_without_a_gpu():
    assert {(c.graph, c.size) for c in cuda.select()} >= {
        ("pairwise_iou", "N=M=10000"), ("pairwise_ciou", "N=M=3000"), ("ciou_loss", "1e6 pairs"),
        ("sigmoid_focal_loss", "32x8732x21")}
    assert [c.size for c in cuda.select(["pairwise_iou"], ["N=M=1000"])] == ["N=M=1000"]
    with pytest.raises(ValueError, match="no GPU benchmark for focal_loss"):
        cuda.select(["focal_loss"])
    fast = cuda.CudaRow("pairwise_iou", "N=M=1000", {"ort": 2.0, "ort graph": 1.0, "eager": 1.5, "compiled": None, "floor": 0.1})
    slow = cuda.CudaRow("ciou_loss", "1e6 pairs", {"ort": 4.4, "ort graph": None, "eager": 1.5, "compiled": 1.0, "floor": 0.1},
                        notes={"ort graph": "capture failed"})
    assert fast.passed and fast.ratio == pytest.approx(1 / 1.5) and not slow.passed
    cells = cuda.table_rows([fast, slow])
    assert len(cells[0]) == len(cuda.TABLE_HEADERS) and cells[0][-1] == "PASS" and cells[1][3] == "—"
    record = json.loads(cuda.to_json([fast, slow], {"nms": "ok", "ciou_loss": "Atan on CPU"}, "H200", {}))
    assert record["capture_failures"] == ["ciou_loss"] and record["rows"][1]["notes"]["ort graph"] == "capture failed"
