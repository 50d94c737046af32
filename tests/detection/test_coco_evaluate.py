"""``exportloss evaluate`` (command line and Python) and the stateful CocoMetric against pycocotools."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coco_pycocotools import run_pycocotools
from exportloss import evaluate as evaluate_function
from exportloss.cli import main
from exportloss.detection.coco_data import synthetic_coco
from exportloss.evaluation import CocoMetric, evaluate, summary_lines


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    gt, dets = synthetic_coco(11, 60)
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "dets.json").write_text(json.dumps(dets))
    return folder, gt, dets


def test_the_command_prints_pycocotools_summary(files, capsys):
    folder, gt, dets = files
    out_json = folder / "stats.json"
    status = main(["evaluate", str(folder / "gt.json"), str(folder / "dets.json"), "--backend", "torch", "--json", str(out_json)])
    printed = capsys.readouterr().out.splitlines()
    anchor = run_pycocotools(gt, dets)
    assert status == 0
    assert printed[:12] == summary_lines(np.array(anchor.stats))
    written = json.loads(out_json.read_text())
    np.testing.assert_allclose(list(written["stats"].values()), anchor.stats, rtol=0, atol=1e-12)
    assert set(written["per_category_ap"]) == {str(c["id"]) for c in gt["categories"]}


def test_the_summary_format_is_pycocotools(files, capsys):
    _, gt, dets = files
    anchor = run_pycocotools(gt, dets)
    import contextlib
    import io
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        anchor.summarize()
    assert buffer.getvalue().splitlines() == summary_lines(np.array(anchor.stats))


def test_python_api_takes_dicts_and_files(files):
    folder, gt, dets = files
    assert evaluate_function is evaluate
    a = evaluate(gt, dets, backend="torch")
    b = evaluate(folder / "gt.json", folder / "dets.json", backend="torch")
    np.testing.assert_array_equal(a.stats, b.stats)


def _broken(gt, dets, change):
    gt, dets = json.loads(json.dumps(gt)), json.loads(json.dumps(dets))
    change(gt, dets)
    return gt, dets


@pytest.mark.parametrize("change, message", [
    (lambda gt, dets: gt["annotations"][0].update(id=0), "annotation id 0"),
    (lambda gt, dets: gt["annotations"][1].update(id=gt["annotations"][0]["id"]), "used twice"),
    (lambda gt, dets: dets[0].update(image_id=10**9), "is not an image"),
    (lambda gt, dets: dets[0].update(category_id=10**6), "is not a category"),
    (lambda gt, dets: dets[0]["bbox"].__setitem__(3, -1.0), "width and height"),
    (lambda gt, dets: gt["annotations"][0].update(area=-5.0), "area"),
    (lambda gt, dets: dets[0].pop("score"), "missing key 'score'"),
    (lambda gt, dets: gt["annotations"][0].pop("iscrowd"), "missing key 'iscrowd'"),
    (lambda gt, dets: dets[0].update(score=float("nan")), "finite"),
    (lambda gt, dets: gt.pop("categories"), "categories"),
])
def test_malformed_files_exit_2_with_one_line_and_write_nothing(files, tmp_path, capsys, change, message):
    _, gt, dets = files
    gt, dets = _broken(gt, dets, change)
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    status = main(["evaluate", str(tmp_path / "gt.json"), str(tmp_path / "dets.json"), "--backend", "torch",
                   "--json", str(tmp_path / "out.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "out.json").exists()


def test_not_json_is_one_line(tmp_path, capsys):
    (tmp_path / "gt.json").write_text("{not json")
    (tmp_path / "dets.json").write_text("[]")
    assert main(["evaluate", str(tmp_path / "gt.json"), str(tmp_path / "dets.json"), "--backend", "torch"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_empty_results_give_zero_not_a_crash(files):
    _, gt, _ = files
    result = evaluate(gt, [], backend="torch")
    assert (result.stats[result.stats > -1] == 0).all()


def test_the_metric_equals_pycocotools_over_batches(files):
    _, gt, dets = files
    metric = CocoMetric(box_format="xyxy")
    image_ids = [image["id"] for image in gt["images"]]
    for start in range(0, len(image_ids), 16):
        preds, targets = [], []
        for image_id in image_ids[start: start + 16]:
            d = [x for x in dets if x["image_id"] == image_id]
            t = [a for a in gt["annotations"] if a["image_id"] == image_id]
            xyxy = lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]  # noqa: E731
            preds.append({"boxes": torch.tensor([xyxy(x["bbox"]) for x in d], dtype=torch.float64).reshape(-1, 4),
                          "scores": torch.tensor([x["score"] for x in d], dtype=torch.float64),
                          "labels": torch.tensor([x["category_id"] for x in d])})
            targets.append({"boxes": torch.tensor([xyxy(a["bbox"]) for a in t], dtype=torch.float64).reshape(-1, 4),
                            "labels": torch.tensor([a["category_id"] for a in t], dtype=torch.int64),
                            "iscrowd": torch.tensor([a["iscrowd"] for a in t]), "area": torch.tensor([a["area"] for a in t])})
        metric.update(preds, targets)
    # The same data as pycocotools sees it through the metric: xyxy -> xywh, images renumbered, seen categories.
    gt_seen = {"images": metric._images, "annotations": metric._annotations,
               "categories": [{"id": c} for c in sorted(metric._categories)]}
    anchor = run_pycocotools(gt_seen, metric._detections)
    values = metric.compute()
    np.testing.assert_allclose(list(values.values()), anchor.stats, rtol=0, atol=1e-12)
    metric.reset()
    assert metric._detections == []


def test_rows_left_open_run_again_exactly(files):
    """With 1 round, rows of the large buckets stay open and run again with rounds = detections: still exact."""
    _, gt, dets = files
    result = evaluate(gt, dets, backend="torch", rounds=1)
    assert result.matching.reruns > 0
    np.testing.assert_allclose(result.stats, run_pycocotools(gt, dets).stats, rtol=0, atol=1e-12)


def test_rows_per_call_do_not_change_the_result(files):
    _, gt, dets = files
    np.testing.assert_array_equal(evaluate(gt, dets, backend="torch", rows_per_call=3).stats,
                                  evaluate(gt, dets, backend="torch").stats)


def test_an_unavailable_backend_is_a_usage_error(files, capsys):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("the CUDA provider is available here")
    folder, _, _ = files
    assert main(["evaluate", str(folder / "gt.json"), str(folder / "dets.json"), "--backend", "ort-cuda"]) == 2
    assert "CUDA provider is not available" in capsys.readouterr().err
