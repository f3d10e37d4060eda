"""Token taggers: ONNX export guarded on entity F1, a package, spans with offsets without Paddle."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.export.exporter import ExportConfig
from distill.export.measure import ArtifactReport
from distill.export.token_export import export_token_model, judge_tokens, package_token_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(train_smoke_tagger):
    return train_smoke_tagger("cnn", {"emb_dim": 32, "num_filters": 32}, epochs=4)


def test_export_package_and_predict_spans(trained, tmp_path):
    task, student, result = trained
    export = export_token_model(student, tmp_path / "export", eval_examples=task.dev,
                                test_examples=task.test, calib_examples=task.train, tags=task.tags, scheme=task.scheme,
                                config=ExportConfig(formats=("onnx", "onnx-int8"), timed=False,
                                                    threads=1))
    by_format = {r.format: r for r in export.reports}
    assert by_format["onnx"].accepted, by_format["onnx"].reason
    assert by_format["onnx"].test["f1"] == pytest.approx(result["test"]["f1"], abs=1e-9)
    assert by_format["onnx"].dev["f1"] == pytest.approx(result["dev"]["f1"], abs=1e-9)
    assert export.reference["dev"]["f1"] == pytest.approx(result["dev"]["f1"], abs=1e-9)
    assert "f1_drop_points" in by_format["onnx-int8"].details
    path = package_token_model(export.reports, tmp_path / "export" / "encoder",
                               tmp_path / "ner.tar.gz", task.tags, task.scheme, task.unit,
                               max_len=export.reference["max_len"], student="cnn")
    code = (
        "import json, sys\n"
        "from distill.serve.predict import load_package\n"
        "p = load_package(sys.argv[1], threads=1)\n"
        "print(json.dumps(p.predict(['今天张三去北京了', '  ', '联合国 和 新华社']), ensure_ascii=False))\n"
        "print('paddle' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.splitlines()
    predictions, paddle_loaded = json.loads(out[0]), out[1]
    assert paddle_loaded == "False"
    assert predictions[1] == {"text": "  ", "entities": []}
    for row in predictions:
        for e in row["entities"]:
            assert row["text"][e["start"]:e["end"]] == e["text"] and 0 < e["score"] <= 1
            assert e["type"] in {"PER", "LOC", "ORG"}
    found = {(e["type"], e["text"]) for row in predictions for e in row["entities"]}
    assert ("PER", "张三") in found or ("LOC", "北京") in found, predictions


def test_guard_rejects_an_entity_f1_drop_beyond_the_limit():
    def report(f1, agreement=1.0, int8=True):
        return ArtifactReport("onnx-int8", "m", 1, {"max_abs_diff": 0.1, "argmax_agreement": agreement},
                              None, {"p50": 0, "p95": 0}, 0.0,
                              details={"int8": int8, "quantized_weight_fraction": 0.9},
                              dev={"f1": f1})
    ok = judge_tokens(report(0.902), {"f1": 0.905}, max_f1_drop=0.5)
    assert ok.accepted and ok.details["f1_drop_points"] == pytest.approx(0.3)
    bad = judge_tokens(report(0.10), {"f1": 0.94}, max_f1_drop=0.5)
    assert not bad.accepted and "drop 84.00 points" in bad.reason
    assert not judge_tokens(report(0.905, agreement=0.9), {"f1": 0.905}).accepted
