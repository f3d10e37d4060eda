"""Package: archive layout, manifest hashes and metrics, choice of the shipped model, atomicity."""
import json
import subprocess
import sys
import tarfile

import pytest

from distill.core.errors import PackageError, UserError
from distill.export.exporter import ExportConfig, export_model
from distill.core.io import sha256_file
from distill.export.measure import ArtifactReport
from distill.export.package import PackageMeta, best_student, build_package, choose_best


@pytest.fixture(scope="module")
def exported(toy_sentiment, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    config = ExportConfig(formats=("paddle", "onnx", "onnx-int8"), timed=False, threads=1,
                          max_len=24, eval_batch_size=16)
    result = export_model(toy_sentiment["model"], toy_sentiment["vocab"], out,
                          eval_examples=toy_sentiment["test"], labels=toy_sentiment["labels"],
                          config=config)
    return result


def _report(fmt, p50, size, accepted=True, dev=0.9, test=0.9):
    return ArtifactReport(format=fmt, path=f"/x/{fmt}", size_bytes=size,
                          parity={"max_abs_diff": 0.0, "argmax_agreement": 1.0},
                          test={"accuracy": test, "macro_f1": test},
                          latency_ms_b1={"p50": p50, "p95": p50}, throughput_b32=1.0,
                          accepted=accepted, reason="" if accepted else "drop",
                          dev={"accuracy": dev, "macro_f1": dev})


def test_archive_holds_model_encoder_settings_and_a_manifest_hashing_every_file(exported,
                                                                                tmp_path):
    meta = PackageMeta(teacher="toy-teacher", student="bow", max_len=24)
    path = build_package(exported.reports, exported.out_dir / "encoder", ["neg", "pos"],
                         tmp_path / "toy-bow.tar.gz", meta)
    assert path == tmp_path / "toy-bow.tar.gz"
    with tarfile.open(path) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "x", filter="data")
    root = tmp_path / "x" / "toy-bow"
    assert {"toy-bow/manifest.json", "toy-bow/model.onnx", "toy-bow/config.json",
            "toy-bow/encoder/encoder.json", "toy-bow/encoder/vocab.txt"} <= set(names)
    assert "toy-bow/tokenizer.json" not in names  # word students: vocabulary + settings instead
    manifest = json.loads((root / "manifest.json").read_text())
    files = [p.relative_to(root).as_posix() for p in root.rglob("*")
             if p.is_file() and p.name != "manifest.json"]
    assert sorted(manifest["files"]) == sorted(files)
    for rel, entry in manifest["files"].items():
        assert entry["sha256"] == sha256_file(root / rel)
        assert entry["size_bytes"] == (root / rel).stat().st_size
    assert manifest["toolkit_version"] and manifest["created"].endswith("+00:00")
    assert manifest["teacher"] == "toy-teacher" and manifest["student"] == "bow"
    assert [a["format"] for a in manifest["artifacts"]] == ["paddle", "onnx", "onnx-int8"]
    assert all({"size_bytes", "parity", "test", "latency_ms_b1", "throughput_b32", "accepted"}
               <= set(a) for a in manifest["artifacts"])
    shipped = manifest["model"]["format"]
    assert shipped in ("onnx", "onnx-int8")
    shipped_report = exported.report(shipped)
    assert sha256_file(root / "model.onnx") == sha256_file(shipped_report.path)
    config = json.loads((root / "config.json").read_text())
    assert config["id2label"] == {"0": "neg", "1": "pos"} and config["max_length"] == 24
    assert config["label2id"] == {"neg": 0, "pos": 1} and config["task"] == "text-classification"
    assert config["text_pairs"] is False and config["format"] == shipped
    assert config["model_file"] == "model.onnx" and "input_ids" in config["input_names"]
    assert config["encoder"]["type"] == "words" and config["encoder"]["language"] == "en"
    assert config["encoder"]["vocab_file"] == "encoder/vocab.txt"


def test_choice_skips_rejected_and_paddle_and_breaks_latency_ties_by_size():
    fast_rejected = _report("onnx-int8", 0.1, 10, accepted=False)
    paddle = _report("paddle", 0.05, 5)
    fp32 = _report("onnx", 1.0, 400)
    assert choose_best([fast_rejected, paddle, fp32]) is fp32
    int8 = _report("onnx-int8", 1.05, 100)  # within 10 % of the fastest: a tie, smaller wins
    assert choose_best([fp32, int8]) is int8
    slow_int8 = _report("onnx-int8", 2.0, 100)
    assert choose_best([fp32, slow_int8]) is fp32
    tiny_fp32, tiny_int8 = _report("onnx", 0.07, 400), _report("onnx-int8", 0.08, 100)
    assert choose_best([tiny_fp32, tiny_int8]) is tiny_int8  # 0.01 ms apart: timing noise
    assert choose_best([tiny_fp32, _report("onnx-int8", 0.2, 100)]) is tiny_fp32
    assert choose_best([paddle, fast_rejected]) is None


def test_the_packaged_student_is_chosen_by_dev_accuracy_never_test():
    """Student a is better on dev, b on test: a is packaged, whatever the test numbers say."""
    a = [_report("onnx", 0.5, 100, dev=0.85, test=0.70)]
    b = [_report("onnx", 0.5, 100, dev=0.80, test=0.99)]
    assert best_student({"a": a, "b": b})[0] == "a"
    assert best_student({"b": b, "a": a})[0] == "a"
    worse_test = [_report("onnx", 0.5, 100, dev=0.85, test=0.01)]
    assert best_student({"a": worse_test, "b": b})[0] == "a"
    tie = [_report("onnx", 0.3, 100, dev=0.85, test=0.0)]  # equal dev: the faster one
    assert best_student({"a": a, "c": tie})[0] == "c"
    rejected = [_report("onnx", 0.1, 100, accepted=False, dev=0.99, test=0.99)]
    assert best_student({"r": rejected, "b": b})[0] == "b"
    assert best_student({"r": rejected}) is None


def test_no_accepted_onnx_artifact_is_refused_and_nothing_is_written(exported, tmp_path):
    rejected = [_report("onnx-int8", 0.1, 10, accepted=False), _report("paddle", 0.1, 10)]
    with pytest.raises(PackageError, match="no accepted ONNX artifact"):
        build_package(rejected, exported.out_dir / "encoder", ["neg", "pos"],
                      tmp_path / "p.tar.gz")
    with pytest.raises(PackageError, match="encoder.json"):
        build_package(exported.reports, tmp_path, ["neg", "pos"], tmp_path / "p.tar.gz")
    with pytest.raises(UserError, match="tar.gz"):
        build_package(exported.reports, exported.out_dir / "encoder", ["neg", "pos"],
                      tmp_path / "p.zip")
    with pytest.raises(UserError, match="unknown key"):
        build_package(exported.reports, exported.out_dir / "encoder", ["neg", "pos"],
                      tmp_path / "p.tar.gz", {"studnet": "bow"})
    assert list(tmp_path.iterdir()) == []


def test_rebuilding_replaces_the_archive_atomically(exported, tmp_path):
    out = tmp_path / "toy.tar.gz"
    build_package(exported.reports, exported.out_dir / "encoder", ["neg", "pos"], out,
                  {"student": "bow"})
    first = sha256_file(out)
    build_package(exported.reports, exported.out_dir / "encoder", ["neg", "pos"], out,
                  {"student": "bow", "extra": {"note": "rebuilt"}})
    assert sha256_file(out) != first
    assert [p.name for p in tmp_path.iterdir()] == ["toy.tar.gz"]  # no temp files left


def test_package_module_does_not_import_paddle():
    code = ("import sys, distill.export.package, distill.export.measure; "
            "assert 'paddle' not in sys.modules, 'paddle imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
