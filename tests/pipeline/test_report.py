"""The report writer: seed aggregation, gap recovered, report.json/.md and readable plots."""
import json

import pytest

from distill.pipeline.report import gap_recovered, merge_seeds, render_markdown, write_report


def _export(fmt, size, acc, lat, thr, accepted=True, reason=""):
    return {"format": fmt, "size_bytes": size, "test": {"accuracy": acc}, "latency_ms_b1": lat,
            "throughput_b32": thr, "accepted": accepted, "reason": reason}


def sample_report():
    return {
        "recipe": {"name": "unit", "path": None, "seeds": [0, 1]},
        "dataset": {"name": "toy", "num_labels": 2,
                    "sizes": {"train": 100, "dev": 20, "test": 20, "augmented": 400}},
        "teacher": {"name": "tiny", "params": 1_200_000, "test": {"accuracy": 0.9, "macro_f1": 0.89},
                    "latency_ms_b1": 8.0, "throughput_b32": 300.0,
                    "exports": [_export("onnx", 4_800_000, 0.9, 8.0, 300.0)]},
        "students": [{
            "name": "bow", "kind": "bow", "params": 50_000,
            "baseline": {"test": {"accuracy": 0.7, "macro_f1": 0.69}},
            "distilled": {"test": {"accuracy": 0.8, "macro_f1": 0.79}},
            "gap_recovered": 0.5, "speedup_b1": 80.0, "speedup_b32": 30.0,
            "latency_ms_b1": 0.1, "throughput_b32": 9000.0,
            "exports": [_export("onnx", 200_000, 0.8, 0.1, 9000.0),
                        _export("onnx-int8", 52_000, 0.75, 0.09, 9500.0, False, "accuracy drop 5.00 > 0.50 points")],
        }],
        "package": "/tmp/x/bow.tar.gz",
        "stage_seconds": {"data": 0.1, "teacher": 2.0},
    }


def test_merge_seeds_mean_and_std():
    merged = merge_seeds([{"test": {"accuracy": 0.8, "macro_f1": 0.7}},
                          {"test": {"accuracy": 0.6, "macro_f1": 0.7}}])
    assert merged["test"]["accuracy"] == pytest.approx(0.7)
    assert merged["test"]["accuracy_std"] == pytest.approx(0.1)
    assert merged["test"]["macro_f1_std"] == pytest.approx(0.0)
    assert merge_seeds([{"a": 1.0}]) == {"a": 1.0}  # one seed: no _std keys


def test_gap_recovered():
    assert gap_recovered(0.9, 0.7, 0.8) == pytest.approx(0.5)
    assert gap_recovered(0.9, 0.9, 0.8) is None  # no gap to recover
    assert gap_recovered(None, 0.7, 0.8) is None


def test_write_report_files_and_plots(tmp_path):
    curves = {"bow": {"plain": [{"epoch": 1, "dev": 0.6, "train_loss": 0.7},
                                {"epoch": 2, "dev": 0.7, "train_loss": 0.5}],
                      "distilled": [{"epoch": 1, "dev": 0.7, "train_loss": 0.3},
                                    {"epoch": 2, "dev": 0.8, "train_loss": 0.2}]}}
    out = write_report(sample_report(), tmp_path, curves)
    data = json.loads((tmp_path / "report.json").read_text())
    assert data["students"][0]["gap_recovered"] == 0.5
    assert sorted(out["plots"]) == ["accuracy_vs_latency.png", "accuracy_vs_size.png", "curves_bow.png"]
    for name in out["plots"]:
        png = (tmp_path / "plots" / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    md = (tmp_path / "report.md").read_text()
    assert "| bow (distilled) | bow |" in md and "80.00" in md and "50.00 %" in md
    assert "accuracy drop 5.00 > 0.50 points" in md and "![accuracy_vs_latency.png]" in md


def test_token_reports_plot_entity_f1(tmp_path):
    from distill.pipeline import report as rep

    export = lambda fmt, f1: {"format": fmt, "latency_ms_b1": 2.0, "size_bytes": 2 ** 20,
                              "test": {"f1": f1}, "accepted": True}
    report = {"task": "token", "teacher": {"test": {"f1": 0.6}, "exports": []},
              "students": [{"name": "lstm", "exports": [export("onnx", 0.5), export("onnx-int8", 0.49)],
                            "baseline": {"test": {"f1": 0.4}}}]}
    assert rep.score_key(report) == "f1" and rep.score_key({"teacher": {}}) == "accuracy"
    points = rep._points(report, "latency_ms_b1", "f1")
    assert [(p[0], p[2]) for p in points] == [("lstm onnx", 0.5), ("lstm onnx-int8", 0.49),
                                             ("lstm plain", 0.4)]
    curves = {"lstm": {"distilled": [{"epoch": 1, "dev": 0.3, "train_loss": 1.0}]}}
    assert rep.write_plots(report, tmp_path, curves) == ["f1_vs_latency.png", "f1_vs_size.png",
                                                          "curves_lstm.png"]


def test_markdown_without_exports_or_package():
    report = sample_report()
    report["students"][0]["exports"] = []
    report["teacher"]["exports"] = []
    report["package"] = None
    md = render_markdown(report)
    assert "## Exports" not in md and "none" in md
