"""Predictor: round trip against the dygraph student, no Paddle, refusal of bad packages, CLI."""
import json
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from distill.cli import main as cli_main
from distill.core.errors import PackageError, UserError
from distill.export.exporter import ExportConfig, export_model
from distill.backends.paddle_inference import dygraph_logits
from distill.serve.predict import load_package


def _retar(src, dst, change):
    """Unpack ``src``, let ``change(root)`` alter the files, pack it again as ``dst``."""
    work = dst.parent / (dst.name + ".d")
    with tarfile.open(src) as tar:
        tar.extractall(work, filter="data")
    change(work / "toy")
    with tarfile.open(dst, "w:gz") as tar:
        tar.add(work / "toy", arcname="toy")
    return dst


def test_round_trip_predicts_the_students_labels(package, toy_sentiment):
    texts = [e.text_a for e in toy_sentiment["test"]]
    results = load_package(package, threads=1).predict(texts, batch_size=7)
    enc = toy_sentiment["vocab"].encode(texts, max_len=24)
    expected = dygraph_logits(toy_sentiment["model"], [enc]).argmax(-1)
    assert [r["label"] for r in results] == [toy_sentiment["labels"][i] for i in expected]
    for r in results:
        assert set(r["probabilities"]) == {"neg", "pos"}
        assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-5
        assert r["probabilities"][r["label"]] == max(r["probabilities"].values())
    assert load_package(package).predict("a great superb w3")[0]["label"] == "pos"


def test_loading_and_predicting_never_imports_paddle(package):
    code = (
        "import sys\n"
        "from distill.serve.predict import load_package\n"
        f"p = load_package({str(package)!r}, threads=1)\n"
        "r = p.predict(['good great w1', 'bad awful w2'])\n"
        "assert [x['label'] for x in r] == ['pos', 'neg'], r\n"
        "heavy = [m for m in ('paddle', 'paddle2onnx', 'paddleslim') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_a_corrupted_file_is_refused_by_name(package, tmp_path):
    def flip_byte(root):
        data = bytearray((root / "model.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (root / "model.onnx").write_bytes(bytes(data))

    bad = _retar(package, tmp_path / "bad.tar.gz", flip_byte)
    with pytest.raises(PackageError, match=r"model\.onnx does not match its sha256"):
        load_package(bad)


def test_a_missing_or_extra_file_is_refused_by_name(package, tmp_path):
    missing = _retar(package, tmp_path / "missing.tar.gz",
                     lambda root: (root / "encoder" / "encoder.json").unlink())
    with pytest.raises(PackageError, match=r"encoder/encoder\.json is missing"):
        load_package(missing)
    no_manifest = _retar(package, tmp_path / "nomanifest.tar.gz",
                         lambda root: (root / "manifest.json").unlink())
    with pytest.raises(PackageError, match=r"manifest\.json is missing"):
        load_package(no_manifest)
    extra = _retar(package, tmp_path / "extra.tar.gz",
                   lambda root: (root / "evil.py").write_text("print('hi')"))
    with pytest.raises(PackageError, match=r"evil\.py is not listed"):
        load_package(extra)
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(PackageError, match="not a readable"):
        load_package(tmp_path / "junk.tar.gz")
    with pytest.raises(PackageError, match="not found"):
        load_package(tmp_path / "nope.tar.gz")


def test_an_unpacked_package_folder_loads_and_is_checked_too(package, tmp_path):
    with tarfile.open(package) as tar:
        tar.extractall(tmp_path, filter="data")
    root = tmp_path / "toy"
    assert load_package(root).predict(["great fun"])[0]["label"] == "pos"
    shutil.copyfile(root / "config.json", root / "model.onnx")
    with pytest.raises(PackageError, match="model.onnx"):
        load_package(root)


def test_empty_or_mismatched_input_gets_a_clear_error(package):
    predictor = load_package(package)
    with pytest.raises(UserError, match="no input texts"):
        predictor.predict([])
    with pytest.raises(UserError, match="text 2 is empty"):
        predictor.predict(["good", "   "])
    with pytest.raises(UserError, match="single texts"):
        predictor.predict(["good"], texts_b=["also good"])
    with pytest.raises(UserError, match="batch_size"):
        predictor.predict(["good"], batch_size=0)


def test_cli_prints_labels_probabilities_and_json(package, tmp_path, capsys):
    assert cli_main(["predict", str(package), "great superb w1", "awful dull w2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    assert "pos=" in lines[0] and "neg=" in lines[0]

    (tmp_path / "in.txt").write_text("great superb w1\n\nawful dull w2\n", encoding="utf-8")
    assert cli_main(["predict", str(package), "--input", str(tmp_path / "in.txt"), "--json",
                     "--batch-size", "1", "--threads", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["label"] for r in rows] == ["pos", "neg"]
    assert rows[0]["text"] == "great superb w1"
    assert np.isclose(sum(rows[1]["probabilities"].values()), 1.0)

    assert cli_main(["predict", str(package)]) == 2
    assert "no input texts" in capsys.readouterr().err
    assert cli_main(["predict", str(tmp_path / "missing.tar.gz"), "hello"]) == 2


def test_teacher_directory_exports_to_a_package_with_its_wordpiece_tokenizer(toy_sentiment,
                                                                              tmp_path):
    from teachers.checkpoint import random_teacher, save_teacher
    from teachers.config import ErnieConfig
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

    texts = [e.text_a for e in toy_sentiment["train"]]
    write_wordpiece_vocab(texts, tmp_path / "vocab.txt")
    tokenizer = WordPieceTokenizer(tmp_path / "vocab.txt")
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64)
    teacher = random_teacher(config, tokenizer, num_labels=2, seed=3, labels=["neg", "pos"])
    teacher.max_len = 24
    save_teacher(teacher, tmp_path / "teacher")
    test = toy_sentiment["test"][:24]
    result = export_model(tmp_path / "teacher", out_dir=tmp_path / "out", eval_examples=test,
                          config=ExportConfig(formats=("onnx", "onnx-int8"), timed=False,
                                              threads=1, max_disagreement=None,
                                              max_accuracy_drop=0.99),
                          package="teacher")
    manifest = load_package(result.package).manifest
    assert manifest["student"] == "teacher" and manifest["model"]["format"] in ("onnx", "onnx-int8")
    shipped = result.report(manifest["model"]["format"])
    texts = [e.text_a for e in test]
    logits = dygraph_logits(teacher.model, [tokenizer.encode(texts, max_len=24)])
    got = load_package(result.package).predict(texts)
    if shipped.format == "onnx":
        assert [r["label"] for r in got] == [["neg", "pos"][i] for i in logits.argmax(-1)]
    agreement = np.mean([r["label"] == ["neg", "pos"][i] for r, i in zip(got, logits.argmax(-1))])
    assert agreement == pytest.approx(shipped.parity["argmax_agreement"])


@pytest.fixture(scope="module")
def pair_package(package, tmp_path_factory):
    """The toy BOW model repackaged as a pair model (it reads ``a [SEP] b``)."""
    from distill.export.package import build_package

    tmp = tmp_path_factory.mktemp("pairs")
    with tarfile.open(package) as tar:
        tar.extractall(tmp, filter="data")
    manifest = json.loads((tmp / "toy" / "manifest.json").read_text())
    reports = manifest["artifacts"]
    return build_package(reports, tmp / "toy" / "encoder", ["neg", "pos"],
                         tmp / "pairs.tar.gz", {"text_pairs": True, "max_len": 24})


def test_cli_reads_text_pairs_jsonl_and_prints_json_with_label_and_score(pair_package, package,
                                                                         tmp_path, capsys):
    assert cli_main(["predict", str(pair_package), "great superb", "awful", "--text-b", "fun w1",
                     "--text-b", "dull poor", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["text_b"] for r in rows] == ["fun w1", "dull poor"]
    assert all(r["score"] == max(r["probabilities"].values()) for r in rows)
    expected = load_package(pair_package).predict(["great superb", "awful"],
                                                   ["fun w1", "dull poor"])
    assert [r["label"] for r in rows] == [e["label"] for e in expected]

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text_a": "great superb", "text_b": "fun w1"}\n\n'
                     '{"text": "awful", "text_b": "dull poor"}\n', encoding="utf-8")
    assert cli_main(["predict", str(pair_package), "--input", str(jsonl), "--json"]) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [r["label"] for r in again] == [r["label"] for r in rows]

    assert cli_main(["predict", str(pair_package), "a", "b", "--text-b", "c"]) == 2
    assert "one --text-b per text" in capsys.readouterr().err
    assert cli_main(["predict", str(package), "good", "--text-b", "fun"]) == 2
    assert "single texts" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n["not", "an", "object"]\n', encoding="utf-8")
    assert cli_main(["predict", str(package), "--input", str(bad)]) == 2
    assert "bad.jsonl, line 2" in capsys.readouterr().err
    (tmp_path / "latin1.txt").write_bytes(b"good\ncaf\xe9\n")
    assert cli_main(["predict", str(package), "--input", str(tmp_path / "latin1.txt")]) == 2
    err = capsys.readouterr().err
    assert "latin1.txt, line 2" in err and "UTF-8" in err
