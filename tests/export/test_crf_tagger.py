"""A CRF tagger (config crf: true) end to end: trained by the crf loss, saved and reloaded, exported
to ONNX / ONNX INT8 / Paddle with Viterbi-decoded F1 in the guard, packaged with its transitions,
and the package (no Paddle) predicts the spans the dygraph model's Viterbi path gives."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distill.export.exporter import ExportConfig
from distill.export.token_export import export_token_model, package_token_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained(train_smoke_tagger):
    return train_smoke_tagger("lstm", {"emb_dim": 16, "hidden_size": 16, "crf": True}, epochs=3)


def test_crf_tagger_trains_saves_and_reloads(trained):
    from students.io import load_student

    task, student, result = trained
    assert result["loss"] == "1*crf" and result["config"]["crf"] is True
    model, _, _ = load_student(student)
    arrays = model.crf.arrays()
    assert arrays["transitions"].shape == (len(task.tags), len(task.tags))
    assert np.abs(arrays["transitions"]).max() > 0  # trained away from its zero start
    assert 0.0 <= result["dev"]["f1"] <= 1.0


def test_crf_tagger_exports_and_its_package_decodes_viterbi(trained, tmp_path):
    from distill.text.tags import decode_spans
    from distill.train.token_eval import crf_of, tags_from_logits
    from students.io import load_student
    from teachers.token_model import token_logits

    task, student, result = trained
    export = export_token_model(student, tmp_path / "export", eval_examples=task.dev,
                                test_examples=task.test, calib_examples=task.train,
                                tags=task.tags, scheme=task.scheme,
                                config=ExportConfig(formats=("onnx", "onnx-int8", "paddle"),
                                                    timed=False, threads=1))
    by_format = {r.format: r for r in export.reports}
    for fmt in ("onnx", "paddle"):
        assert by_format[fmt].accepted, by_format[fmt].reason
        assert by_format[fmt].dev["f1"] == pytest.approx(result["dev"]["f1"], abs=1e-9)
    assert "f1_drop_points" in by_format["onnx-int8"].details
    crf = export.reference["crf"]
    assert np.asarray(crf["transitions"]).shape == (len(task.tags), len(task.tags))
    path = package_token_model(export.reports, tmp_path / "export" / "encoder",
                               tmp_path / "ner.tar.gz", task.tags, task.scheme, task.unit,
                               max_len=export.reference["max_len"], student="lstm", crf=crf)

    rows = task.test[:20]
    model, encoder, _ = load_student(student)
    logits = token_logits(model, encoder, rows, max_len=export.reference["max_len"])
    want = [sorted(decode_spans(tags_from_logits(x, task.tags, task.scheme, crf=crf_of(model))))
            for x in logits]
    code = ("import json, sys\n"
            "from distill.serve.predict import load_package\n"
            "p = load_package(sys.argv[1], threads=1)\n"
            "print(json.dumps(p.predict(json.loads(sys.argv[2]))))\n"
            "print('paddle' in sys.modules, type(p.crf).__name__)\n")
    texts = json.dumps(["".join(ex.tokens) for ex in rows], ensure_ascii=False)
    out = subprocess.run([sys.executable, "-c", code, str(path), texts], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.splitlines()
    assert out[1] == "False dict"
    got = [sorted((e["start"], e["end"], e["type"]) for e in row["entities"])
           for row in json.loads(out[0])]
    assert got == [[tuple(s) for s in spans] for spans in want]
