"""The benchmark's mechanics on tiny cases (no timing assertions: speed targets live in `make bench`)."""

from __future__ import annotations

import dataclasses
import io
import json

import numpy as np
import pytest
from rich.console import Console

from exportloss import bench
from exportloss.bench import cuda, intervals, report, timing
from exportloss.bench.cases import (ANCHOR_WARM, EAGER_WARM, FLOOR, PAIRWISE_ANCHOR, PER_PAIR, PER_PAIR_OVER_FLOOR,
                                    RATIOS, SCALING, SCALING_SIZES, Target, find_case)
from exportloss.bench.intervals import FAIL, NOISE, PASS, Estimate
from exportloss.bench.runner import AT_BASE, BenchRow, judge, ratio_functions
from exportloss.bench.timing import Backend, Timing
from exportloss.cli import main
from exportloss.cli.bench import print_results


def pairwise(n: int) -> dict:
    return {"boxes1": (1, n, 4), "boxes2": (1, n, 4)}


def tiny(graph: str, size: str, n: int = 40, base: int | None = None):
    return dataclasses.replace(find_case(graph, size), shapes=pairwise(n), time_reference=True,
                               scaling_base=pairwise(base) if base else None)


def test_run_case_times_every_backend_in_both_allocator_states(tmp_path):
    case = dataclasses.replace(tiny("pairwise_giou", "N=M=1000"), targets=(Target(EAGER_WARM, 1e9), Target(FLOOR, 0.0)))
    row = bench.run_case(case, threads=1, bandwidth=1e10, workdir=tmp_path, min_rounds=2, time_limit_s=0.1, quiet_share=1.0)
    assert {"ort", "eager", "eager warm", "reference", "floor fill", "floor fresh"} <= set(row.timings)
    assert ("anchor" in row.timings) == ("anchor warm" in row.timings) == (case.anchor is not None)
    assert all(t.samples >= 2 and t.q1_ms <= t.median_ms <= t.q3_ms for t in row.timings.values())
    assert row.rounds_kept == 2 and row.quiet and len(row.rounds) == 2
    assert row.ratios[EAGER_WARM] == pytest.approx(row.timings["ort"].median_ms / row.timings["eager warm"].median_ms)
    assert all(row.intervals[r][0] <= row.ratios[r] <= row.intervals[r][1] for r in row.ratios)
    # The floor: 2 inputs of 40x4 floats read at 10 GB/s + a fresh 40x40 output allocated and written.
    read_ms = 2 * 40 * 4 * 4 / 1e10 * 1e3
    assert row.floor_ms == pytest.approx(read_ms + row.timings["floor fresh"].median_ms)
    assert row.ns_per_pair == row.timings["ort"].median_ms * 1e6 / 1600
    assert [(j.ratio, j.verdict) for j in row.verdicts] == [(EAGER_WARM, PASS), (FLOOR, FAIL)] and row.failed


def test_run_case_times_the_scaling_base_in_the_same_rounds(tmp_path):
    case = dataclasses.replace(tiny("pairwise_iou", "N=M=4000", n=48, base=24), targets=(Target(PER_PAIR_OVER_FLOOR, 1e9),))
    row = bench.run_case(case, threads=1, bandwidth=1e10, workdir=tmp_path, min_rounds=2, time_limit_s=0.0, quiet_share=1.0)
    assert {"ort", "ort" + AT_BASE, "fresh" + AT_BASE, "floor fresh"} <= set(row.timings) and "eager" not in row.timings
    assert all({"ort", "ort" + AT_BASE} <= set(r) for r in row.rounds)
    per_pair = (row.timings["ort"].median_ms / 48**2) / (row.timings["ort" + AT_BASE].median_ms / 24**2)
    assert row.ratios[PER_PAIR] == pytest.approx(per_pair)
    assert [(j.ratio, j.verdict) for j in row.verdicts] == [(PER_PAIR_OVER_FLOOR, PASS)]


def test_ratio_functions_of_the_medians():
    case = find_case("pairwise_ciou", "N=M=4000")
    medians = {"ort": 48e-3, "fresh": 16e-3, "ort" + AT_BASE: 2.5e-3, "fresh" + AT_BASE: 0.5e-3}
    fns = ratio_functions(case, [*medians, "fill"], read_s=0.0, base_read_s=0.0)
    assert set(fns) == {FLOOR, PER_PAIR, PER_PAIR_OVER_FLOOR}
    assert fns[PER_PAIR](medians) == pytest.approx((48 / 16) / 2.5)
    assert fns[PER_PAIR_OVER_FLOOR](medians) == pytest.approx((32 / 16) / 2.0)
    assert fns[FLOOR](medians) == pytest.approx(3.0)
    # At or below its floor the 1000² row has no net cost to divide by: undefined, so within noise, not huge.
    at_floor = {**medians, "ort" + AT_BASE: 0.5e-3}
    assert np.isnan(fns[PER_PAIR_OVER_FLOOR](at_floor))
    undefined = intervals.bootstrap([{k: [v] for k, v in at_floor.items()}] * 3, fns[PER_PAIR_OVER_FLOOR])
    assert (undefined.low, undefined.high) == (-np.inf, np.inf) and intervals.verdict(undefined, 1.25) == NOISE
    assert intervals.rounds_to_decide(undefined, 1.25, 3) is None


def rounds_of(ort, other, name="eager warm"):
    return [{"ort": [a], name: [b]} for a, b in zip(ort, other)]


def test_bootstrap_pairs_the_rounds():
    # Every round slowed by its own factor (another process, a frequency step): the ratio is exact
    # because numerator and denominator are resampled together.
    factors = [1.0, 1.7, 1.1, 2.0, 1.3, 1.05]
    paired = intervals.bootstrap(rounds_of([f * 1e-3 for f in factors], [f * 2e-3 for f in factors]),
                                 lambda m: m["ort"] / m["eager warm"])
    assert (paired.value, paired.low, paired.high) == pytest.approx((0.5, 0.5, 0.5))
    # Independent noise on each side gives an interval around the ratio of the medians, the same every time.
    rng = np.random.default_rng(1)
    noisy = rounds_of(1e-3 * rng.uniform(0.8, 1.2, 9), 2e-3 * rng.uniform(0.8, 1.2, 9))
    estimate = intervals.bootstrap(noisy, lambda m: m["ort"] / m["eager warm"])
    assert estimate.low < estimate.value < estimate.high and 0.35 < estimate.low and estimate.high < 0.7
    assert intervals.bootstrap(noisy, lambda m: m["ort"] / m["eager warm"]) == estimate
    # Resamples in which the ratio is undefined leave the interval open above.
    partly = intervals.bootstrap(rounds_of([1e-3] * 6, [2e-3] * 3 + [0.0] * 3), lambda m: np.where(
        m["eager warm"] > 0, m["ort"] / np.where(m["eager warm"] > 0, m["eager warm"], 1.0), np.nan))
    assert partly.value == 1.0 and partly.high == np.inf
    with pytest.raises(ValueError, match="no rounds"):
        intervals.bootstrap([], lambda m: m["ort"])


@pytest.mark.parametrize("low, high, expected", [(0.8, 0.95, PASS), (0.9, 1.0, PASS), (1.01, 1.2, FAIL), (0.9, 1.1, NOISE)])
def test_the_three_verdicts(low, high, expected):
    assert intervals.verdict(Estimate((low + high) / 2, low, high), 1.0) == expected


def test_rounds_to_decide():
    assert intervals.rounds_to_decide(Estimate(0.9, 0.8, 1.1), 1.0, 5) == 20  # half-width 0.2 over a margin of 0.1
    assert intervals.rounds_to_decide(Estimate(1.05, 0.99, 1.1), 1.0, 5) == 8
    assert intervals.rounds_to_decide(Estimate(1.0, 0.9, 1.1), 1.0, 5) is None


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


def test_more_rounds_while_undecided_up_to_the_time_limit(monkeypatch):
    monkeypatch.setattr(timing, "others_share", lambda before, after: 0.0)
    monkeypatch.setattr(timing, "PAUSE_S", 0.0)
    backends, calls = [fake_backend("a")], {"a": 1}
    decided_at_7 = timing.interleaved(backends, calls, min_rounds=3, time_limit_s=60, undecided=lambda kept: len(kept) < 7)
    assert (decided_at_7.rounds_kept, decided_at_7.rounds_run, len(decided_at_7.rounds)) == (7, 7, 7)
    never = timing.interleaved(backends, calls, min_rounds=3, time_limit_s=0.05, undecided=lambda kept: True)
    assert never.rounds_kept > 3 and never.quiet
    assert timing.interleaved(backends, calls, min_rounds=3, time_limit_s=0.0, undecided=lambda kept: True).rounds_run == 3


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
        assert find_case(f"pairwise_{kind}", "N=M=1000").scaling_base is None
        assert find_case(f"pairwise_{kind}", "N=M=4000").scaling_base == pairwise(1000)
    assert {("pairwise_iou", f"N=M={n}") for n in SCALING_SIZES} <= sizes
    iou_3000 = {t.ratio: t.limit for t in find_case("pairwise_iou", "N=M=3000").targets}
    assert iou_3000[FLOOR] <= 12 and iou_3000.get("ort/anchor", 0.0) <= 0.15  # anchors need torchvision
    assert PAIRWISE_ANCHOR.ratio == ANCHOR_WARM and PAIRWISE_ANCHOR.limit <= 0.45
    assert all(t.ratio in RATIOS for c in cases for t in c.targets)
    assert all(c.scaling_only or c.backends or any(t.ratio.startswith("ort/eager") for t in c.targets) for c in cases)
    assert {("cluster_nms_best_class", f"N={n}, 80 classes") for n in (2100, 8400)} | {("evaluate", "5000 images")} <= sizes
    assert all(t.note for c in cases for t in c.targets if t.limit > 1 and t.ratio == EAGER_WARM)  # bounds say why


def test_every_target_has_its_ratio():
    # The backends run_case times for each case; a target whose ratio no backend supplies would go unjudged.
    for case in bench.default_cases():
        names = ["ort"]
        if case.backends is not None:
            names += ["anchor", "reference"]
        elif not case.scaling_only:
            names += ["eager", "eager warm"] + (["anchor", "anchor warm"] if case.anchor is not None else [])
        names += ["fill", "fresh"] if case.memory_bound else []
        names += [n + AT_BASE for n in ("ort", "fill", "fresh")] if case.scaling_base else []
        ratios = ratio_functions(case, names, read_s=0.0)
        assert {t.ratio for t in case.targets} <= set(ratios), (case.graph, case.size)


def judged_row(graph, size, ratio, limit, value, low, high, **fields) -> BenchRow:
    t = Timing(2.0, 1.5, 2.5, 9)
    row = BenchRow(graph, size, 81, {"ort": t, "eager warm": t}, {"ort": 1.0}, ratios={ratio: value},
                   intervals={ratio: (low, high)}, rounds_kept=5, rounds_run=6,
                   rounds=[{"ort": [2e-3], "eager warm": [2e-3]}] * 5, **fields)
    judge(row, [Target(ratio, limit)])
    return row


def synthetic_rows() -> list[BenchRow]:
    good = judged_row("pairwise_iou", "N=M=1000", EAGER_WARM, 2.0, 1.0, 0.9, 1.1, pairs=10**6)
    bad = judged_row("focal_loss", "32x8732x21", EAGER_WARM, 1.0, 3.0, 2.5, 3.5, quiet=False)
    bad.rounds_run = 40
    noisy = judged_row("arcface_loss", "512x512, 10000 classes", EAGER_WARM, 1.4, 1.35, 1.2, 1.5)
    scaling = judged_row("pairwise_ciou", "N=M=4000", PER_PAIR_OVER_FLOOR, 1.25, 1.3, 1.1, 1.6, pairs=16 * 10**6)
    unjudged = BenchRow("pairwise_iou", "N=M=500", 30, {"ort": Timing(0.6, 0.5, 0.7, 5)}, {}, pairs=250_000)
    return [good, bad, noisy, scaling, unjudged]


META = {"format": report.FORMAT, "date": "2026-11-28", "threads": 2, "bandwidth_gb_s": 24.0, "quiet_share": 0.1,
        "versions": {"torch": "x"}}


def test_row_status_and_counts():
    rows = synthetic_rows()
    assert [r.status for r in rows] == [PASS, FAIL, NOISE, NOISE, ""]
    assert report.counts(rows) == {PASS: 1, NOISE: 2, FAIL: 1}
    pending = report.undecided(rows)
    assert len(pending) == 2 and pending[0].startswith("arcface_loss 512x512, 10000 classes: ort/eager warm 1.35 (1.20–1.50)")
    assert "about 45 rounds would tell" in pending[0]
    assert "`exportloss bench arcface_loss --sizes '512x512, 10000 classes' --rounds 45 --time-limit" in pending[0]


def test_markdown_block_json_roundtrip_and_readme_update():
    rows = synthetic_rows()
    block = report.markdown(rows, META)
    assert "24.0 GB/s" in block and "2026-11-28" in block and "20 of 58 rounds kept" in block
    assert "not reached within the time limit for focal_loss 32x8732x21" in block
    assert "| pairwise_iou | 2.00 | — |" not in block and "| pairwise_iou | 2.40 | 2.00 |" in block  # scaling table
    assert "FAIL: ort/eager warm ≤ 1" in block and "5/40 busy" in block and "3.00 (2.50–3.50)" in block
    assert "**rows with targets: 1 PASS, 2 within noise, 1 FAIL.**" in block and "Within noise (more rounds" in block
    again, meta = report.from_json(report.to_json(rows, META))
    assert report.markdown(again, meta) == block and again[0].verdicts == rows[0].verdicts
    readme = f"intro\n{report.README_START}\nold table\n{report.README_END}\nrest\n"
    updated = report.update_readme(readme, block)
    assert updated.startswith("intro\n") and updated.endswith("rest\n") and "old table" not in updated
    assert report.update_readme(updated, block) == updated
    with pytest.raises(ValueError, match="results block"):
        report.update_readme("no markers", block)


def rendered(rows, width: int, wide: bool = False) -> str:
    out = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    print_results(rows, META, wide=wide, out=out)
    return out.export_text()


@pytest.mark.parametrize("width", [80, 100])
def test_judged_table_fits_the_terminal_without_cutting_a_header_ratio_or_verdict(width):
    rows = synthetic_rows()
    text = rendered(rows, width)
    lines = text.splitlines()
    assert "…" not in text and max(map(len, lines)) <= width
    assert all(any(h in line for line in lines) for h in report.SHORT_HEADERS)
    for row in rows:
        for j in row.verdicts:  # each judged target on one line with its estimate and verdict
            assert any(report.target_text(j) in line and row.estimate(j.ratio).text() in line and j.verdict in line
                       for line in lines), report.target_text(j)
    assert "rows with targets: 1 PASS, 2 within noise, 1 FAIL" in text and "need more rounds" in text


def test_a_terminal_too_narrow_for_the_judged_table_gets_it_uncut():
    text = rendered(synthetic_rows(), 40)
    assert "…" not in text and "net ns/pair ÷ 1000² ≤ 1.25   1.30 (1.10–1.60)   within noise" in text


def test_wide_table_keeps_every_header_at_a_narrow_terminal():
    text = rendered(synthetic_rows(), 80, wide=True)
    assert "…" not in text
    header = next(line for line in text.splitlines() if "graph" in line and "nodes" in line)
    assert all(h in header for h in report.HEADERS)


@pytest.mark.parametrize("argv, message", [
    (["bench", "--threads", "0"], "--threads must be a positive integer"),
    (["bench", "--sizes", "bogus"], "no benchmark size 'bogus'"),
    (["bench", "pairwise_ciou", "--sizes", "1e6 pairs"], "no benchmark size '1e6 pairs' for pairwise_ciou"),
    (["bench", "no_such_graph"], "no benchmark for no_such_graph"),
    (["bench", "--quiet-share", "0"], "--quiet-share"),
    (["bench", "--time-limit", "-1"], "--time-limit must be a non-negative number of seconds; got -1.0"),
    (["bench", "--time-limit", "nan"], "--time-limit must be a non-negative number"),
    (["bench", "--from-json", "r.json", "--json", "out.json"], "with --from-json nothing runs"),
    (["bench", "--from-json", "r.json", "pairwise_iou"], "--from-json reports every row"),
    (["bench", "--device", "cuda", "--sizes", "N=M=7"], "no GPU benchmark size"),
])
def test_bench_usage_errors_are_one_line_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("content, message", [
    ("null", "found format 'NoneType'"),
    ("[1, 2]", "found format 'list'"),
    ('{"rows": []}', "found format None"),
    ('{"format": "exportloss-bench/1", "rows": []}', "found format 'exportloss-bench/1'"),
    (json.dumps({**META, "rows": None}), "missing or malformed rows"),
    (json.dumps({**META, "threads": "two", "rows": []}), "missing or malformed threads"),
    (json.dumps({**META, "rows": [{"graph": "x"}]}), "a malformed row"),
    ("{not json", "Expecting property name"),
])
def test_bench_from_json_refuses_other_json_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    path.write_text(content)
    assert main(["bench", "--from-json", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and str(path) in err


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


def test_only_fail_fails_and_readme_is_written_from_json(tmp_path, capsys):
    results = tmp_path / "bench-results.json"
    results.write_text(report.to_json(synthetic_rows(), META))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n{report.README_START}\n{report.README_END}\n")
    assert main(["bench", "--from-json", str(results)]) == 1  # a failed target fails
    assert main(["bench", "--from-json", str(results), "--report-only", "--readme", str(readme)]) == 0
    assert "| focal_loss | 32x8732x21 |" in readme.read_text()
    assert main(["bench", "--from-json", str(tmp_path / "missing.json")]) == 2
    noisy = [row for row in synthetic_rows() if row.status != FAIL]
    results.write_text(report.to_json(noisy, META))
    assert main(["bench", "--from-json", str(results)]) == 0  # within noise does not fail
    out = capsys.readouterr().out
    assert "2 within noise, 0 FAIL" in out and "need more rounds" in out


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


def test_backends_case_times_prepared_calls_and_skips_a_missing_anchor(monkeypatch):
    # A case timed without the catalog (the evaluate row): prepare runs outside the clock, a missing anchor is
    # named in the row and its target goes unjudged instead of failing.
    prepared = []

    def backends(threads):
        return ({"ort": (lambda data: sum(data), lambda: prepared.append(1) or [1, 2]),
                 "reference": (lambda: None, None)}, {"anchor": "faster_coco_eval not installed"})

    case = dataclasses.replace(find_case("evaluate", "5000 images"), backends=backends)
    row = bench.run_case(case, threads=1, bandwidth=1e10, workdir=None, min_rounds=2, time_limit_s=0.0, quiet_share=1.0)
    assert set(row.timings) == {"ort", "reference"} and len(prepared) >= 5  # first call + 2 bursts of 2
    assert [j.ratio for j in row.verdicts] == ["ort/ref"] and "not installed" in row.anchor_name


def test_evaluate_row_against_both_coco_anchors(tmp_path):
    pytest.importorskip("pycocotools")
    from exportloss.bench.coco import coco_case, images_per_second

    row = bench.run_case(coco_case(12), threads=1, bandwidth=1e10, workdir=tmp_path, min_rounds=2, time_limit_s=0.0,
                         quiet_share=1.0)
    assert {"ort", "reference"} <= set(row.timings) and {"ort/ref"} <= {j.ratio for j in row.verdicts}
    assert ("anchor" in row.timings) == ("ort/anchor" in row.ratios)
    assert set(images_per_second(row)) == set(row.timings)


def test_attached_nms_rows_anchor_keeps_what_the_graph_keeps():
    # The anchor does the attached graph's work (best class, top candidates, threshold, greedy NMS, first 100):
    # on the row's kind of inputs both keep the same boxes, so the ratio compares equal work.
    tv = pytest.importorskip("torchvision.ops")
    from exportloss.bench.cases import _best_class_nms_anchor
    from exportloss.export import to_torch

    case = find_case("cluster_nms_best_class", "N=2100, 80 classes")
    assert case.anchor_name == "torchvision.ops.batched_nms" and case.sizes == {"candidates": 1000}
    entry = dataclasses.replace(case, shapes={"boxes": (1, 300, 4), "scores": (1, 300, 80)}, sizes={"candidates": 100}).entry()
    tensors = to_torch(entry.example_inputs())
    args = [tensors[spec.name] for spec in entry.inputs]
    num_dets, _, _, _, indices, converged, _ = entry.build().eval()(*args)
    (_, _, _, kept), = _best_class_nms_anchor(tv.batched_nms, candidates=100)(*args)
    assert bool(converged[0]) and sorted(indices[0, :int(num_dets[0])].tolist()) == sorted(kept.tolist())
