"""Export: every format exports and reloads in its own runtime for each student kind and a tiny
teacher; FP32 parity; INT8 files really shrink; the accuracy guard rejects a broken INT8."""
import json

import numpy as np
import onnx
import paddle
import pytest
from onnx import numpy_helper

from distill.cli import main as cli_main
from distill.core.errors import UserError
from distill.export.exporter import ExportConfig, export_model, load_model_dir
from distill.backends.onnx_runtime import OnnxRunner, quantize_onnx
from distill.backends.paddle_inference import PaddleRunner, dygraph_logits, quantize_static
from distill.export.measure import MeasureSettings, judge, measure_artifact
from students.registry import build_student

FAST = dict(timed=False, threads=1, max_len=24, calib_size=32, eval_batch_size=16)

STUDENT_CONFIGS = {
    "bow": {"emb_dim": 32, "hidden_sizes": [32]},
    "cnn": {"emb_dim": 32, "num_filters": 16, "filter_sizes": [2, 3]},
    "lstm": {"emb_dim": 32, "hidden_size": 16, "mlp_size": 16, "dropout": 0.0},
    "gru": {"emb_dim": 32, "hidden_size": 16, "mlp_size": 16, "dropout": 0.0},
    "tiny": {"num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
             "init": "random", "max_position_embeddings": 64, "hidden_dropout": 0.0,
             "attention_dropout": 0.0},
}


def _model(kind, vocab_size):
    paddle.seed(1)
    if kind == "teacher":
        from teachers.config import ErnieConfig
        from teachers.model import ErnieForSequenceClassification

        config = ErnieConfig(vocab_size=vocab_size, hidden_size=32, num_layers=2, num_heads=2,
                             intermediate_size=64, max_position_embeddings=64,
                             hidden_dropout=0.0, attention_dropout=0.0)
        model = ErnieForSequenceClassification(config, num_labels=2)
    else:
        model = build_student(kind, STUDENT_CONFIGS[kind], vocab_size=vocab_size, num_labels=2)
    model.eval()
    return model


@pytest.mark.parametrize("kind", ["bow", "cnn", "lstm", "gru", "tiny", "teacher"])
def test_every_format_exports_and_reloads(kind, toy_sentiment, tmp_path):
    vocab, test = toy_sentiment["vocab"], toy_sentiment["test"][:32]
    model = _model(kind, vocab.vocab_size)
    result = export_model(model, vocab, tmp_path, calib_examples=toy_sentiment["train"],
                          eval_examples=test, labels=toy_sentiment["labels"],
                          config=ExportConfig(max_disagreement=None, **FAST))
    reports = {r.format: r for r in result.reports}
    assert list(reports) == ["paddle", "paddle-int8", "onnx", "onnx-int8"]

    # reload each artifact from disk in its own runtime; FP32 formats match dygraph
    enc = vocab.encode([e.text_a for e in test[:8]], max_len=24)
    reference = dygraph_logits(model, [enc])
    fp32 = {"paddle": PaddleRunner(tmp_path / "paddle"),
            "onnx": OnnxRunner(tmp_path / "onnx" / "model.onnx")}
    for fmt, runner in fp32.items():
        assert np.abs(runner(enc) - reference).max() < 1e-4, fmt
        assert reports[fmt].parity["max_abs_diff"] < 1e-4 and reports[fmt].accepted, fmt
    for runner in (PaddleRunner(tmp_path / "paddle-int8"),
                   OnnxRunner(tmp_path / "onnx-int8" / "model.onnx")):
        logits = runner(enc)
        assert logits.shape == reference.shape and np.isfinite(logits).all()

    # INT8 stores its weights as int8 and the ONNX file shrinks against the pre-processed FP32
    assert reports["onnx-int8"].details["quantized_weight_fraction"] > 0.5
    assert reports["onnx-int8"].size_bytes < 0.6 * reports["onnx"].size_bytes
    assert reports["paddle-int8"].details["quantized_weight_fraction"] > 0.05
    saved = json.loads((tmp_path / "export_report.json").read_text())
    assert [a["format"] for a in saved["artifacts"]] == list(reports)
    assert set(saved["artifacts"][0]) >= {"format", "path", "size_bytes", "parity", "test",
                                          "latency_ms_b1", "throughput_b32", "accepted", "reason"}


def test_embedding_heavy_bow_shrinks_about_4x(toy_sentiment, tmp_path):
    """A BOW is mostly its embedding table: both INT8 formats must shrink it ~4x."""
    vocab = toy_sentiment["vocab"]
    paddle.seed(0)
    model = build_student("bow", {"emb_dim": 128, "hidden_sizes": [16]},
                          vocab_size=vocab.vocab_size, num_labels=2)
    model.eval()
    result = export_model(model, vocab, tmp_path, eval_examples=toy_sentiment["test"][:16],
                          labels=toy_sentiment["labels"],
                          config=ExportConfig(max_disagreement=None, **FAST))
    size = {r.format: r.size_bytes for r in result.reports}
    params = (tmp_path / "paddle" / "model.pdiparams").stat().st_size
    assert size["onnx"] / size["onnx-int8"] > 3.0
    assert params / (tmp_path / "paddle-int8" / "model.pdiparams").stat().st_size > 3.0


def test_timed_measurements_and_directory_input(toy_sentiment, tmp_path):
    from students.io import save_student

    save_student(tmp_path / "student", toy_sentiment["model"], "bow", toy_sentiment["vocab"],
                 labels=toy_sentiment["labels"], max_len=24)
    loaded = load_model_dir(tmp_path / "student")
    assert loaded.kind == "bow" and loaded.labels == toy_sentiment["labels"]
    config = ExportConfig(formats=("onnx", "onnx-int8"), threads=1, calib_size=16,
                          measure=MeasureSettings(warmup_runs=2, latency_runs=5,
                                                  latency_sentences=3, throughput_batches=2))
    result = export_model(tmp_path / "student", out_dir=tmp_path / "out",
                          eval_examples=toy_sentiment["test"], config=config)
    for report in result.reports:
        assert report.accepted, report.reason
        assert report.dev["accuracy"] > 0.9 and report.test is None  # no test rows given
        assert 0 < report.latency_ms_b1["p50"] <= report.latency_ms_b1["p95"]
        assert report.throughput_b32 > 0


def test_guard_rejects_paddle_int8_calibrated_on_garbage(toy_sentiment, tmp_path):
    """Calibrating on one repeated filler word sets activation scales far too small: the INT8
    model clips everything and its accuracy collapses; the guard must reject it (kept on disk)."""
    garbage = ["w1"] * 32
    config = ExportConfig(formats=("paddle-int8",), algo="abs_max", paddle_int8_fallback=False,
                          **FAST)
    result = export_model(toy_sentiment["model"], toy_sentiment["vocab"], tmp_path,
                          calib_examples=garbage, eval_examples=toy_sentiment["test"],
                          labels=toy_sentiment["labels"], config=config)
    report = result.report("paddle-int8")
    assert not report.accepted
    assert "drop" in report.reason and "max_accuracy_drop 0.50" in report.reason
    assert report.dev["accuracy"] < result.reference["dev"]["accuracy"] - 0.02
    assert (tmp_path / "paddle-int8" / "model.pdmodel").exists()  # kept for inspection


def test_guard_rejects_onnx_int8_with_corrupted_scales(toy_sentiment, tmp_path):
    """A real quantized file whose weight scales are scrambled fails; the intact one passes."""
    vocab, test = toy_sentiment["vocab"], toy_sentiment["test"]
    result = export_model(toy_sentiment["model"], vocab, tmp_path, eval_examples=test,
                          labels=toy_sentiment["labels"],
                          config=ExportConfig(formats=("onnx", "onnx-int8"), **FAST))
    assert result.report("onnx-int8").accepted, result.report("onnx-int8").reason

    model = onnx.load(str(tmp_path / "onnx-int8" / "model.onnx"))
    rng = np.random.default_rng(0)
    for init in model.graph.initializer:
        if init.name.endswith("_scale"):
            value = numpy_helper.to_array(init)
            init.CopyFrom(numpy_helper.from_array(
                (value * rng.uniform(-3, 3, size=value.shape)).astype(value.dtype), init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))

    batches = [vocab.encode([e.text_a for e in test[i:i + 16]], max_len=24)
               for i in range(0, len(test), 16)]
    reference = dygraph_logits(toy_sentiment["model"], batches)
    y = np.array([toy_sentiment["labels"].index(e.label) for e in test])
    report = measure_artifact("onnx-int8", broken, OnnxRunner(broken), batches, reference, y,
                              MeasureSettings(), {"int8": True}, timed=False)
    reference_dev = {"accuracy": float((reference.argmax(-1) == y).mean())}
    judge(report, reference_dev, max_accuracy_drop=0.005)
    assert not report.accepted and "drop" in report.reason


def test_onnx_int8_saturation_is_avoided_with_reduce_range(toy_sentiment, tmp_path):
    """7-bit weights keep the trained BOW's INT8 logits close to FP32 (no u8*s8 overflow)."""
    export_model(toy_sentiment["model"], toy_sentiment["vocab"], tmp_path,
                 eval_examples=toy_sentiment["test"][:16], labels=toy_sentiment["labels"],
                 config=ExportConfig(formats=("onnx",), **FAST))
    fp32 = tmp_path / "onnx" / "model.onnx"
    info = quantize_onnx(fp32, tmp_path / "q.onnx", reduce_range=True)
    assert info["quantized_nodes"] and info["quantized_weight_fraction"] > 0.5
    enc = toy_sentiment["vocab"].encode([e.text_a for e in toy_sentiment["test"]], max_len=24)
    diff = np.abs(OnnxRunner(tmp_path / "q.onnx")(enc) - OnnxRunner(fp32)(enc)).max()
    assert diff < 0.3


def test_paddle_ptq_reports_calibration_and_algo(toy_sentiment, tmp_path):
    vocab = toy_sentiment["vocab"]
    from distill.backends.paddle_inference import save_inference_model

    names = save_inference_model(toy_sentiment["model"], tmp_path / "fp32")
    assert names == ["input_ids", "token_type_ids", "attention_mask"]
    calib = [vocab.encode([e.text_a for e in toy_sentiment["train"][i:i + 8]], max_len=24)
             for i in range(0, 24, 8)]
    info = quantize_static(tmp_path / "fp32", tmp_path / "int8", calib, algo="avg")
    assert info["algo"] == "avg" and info["calibration_samples"] == 24
    assert info["weight_only_int8"]  # the embedding table PaddleSlim skips
    with pytest.raises(UserError, match="unknown PTQ algo"):
        quantize_static(tmp_path / "fp32", tmp_path / "x", calib, algo="minmax")


def test_config_validation():
    with pytest.raises(UserError, match="unknown export format"):
        ExportConfig(formats=("tflite",)).validate()
    with pytest.raises(UserError, match="fraction"):
        ExportConfig(max_accuracy_drop=0.5 * 100).validate()


def test_cli_export_writes_artifacts_report_and_package(toy_sentiment, tmp_path, capsys):
    from distill.data.examples import write_examples
    from students.io import save_student

    save_student(tmp_path / "student", toy_sentiment["model"], "bow", toy_sentiment["vocab"],
                 labels=toy_sentiment["labels"], max_len=24)
    write_examples(tmp_path / "test.tsv", toy_sentiment["test"])
    code = cli_main(["export", str(tmp_path / "student"), "--out", str(tmp_path / "out"),
                     "--formats", "onnx,onnx-int8", "--eval", str(tmp_path / "test.tsv"),
                     "--calib-size", "16", "--threads", "1", "--latency-runs", "3",
                     "--package", "toy", "--teacher", "none"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "onnx-int8" in out and "accepted" in out
    assert (tmp_path / "out" / "toy.tar.gz").is_file()
    assert (tmp_path / "out" / "export_report.json").is_file()
    assert cli_main(["export", str(tmp_path), "--out", str(tmp_path / "x"),
                     "--eval", str(tmp_path / "test.tsv")]) == 2


def test_rejected_onnx_int8_is_retried_per_channel_and_without_each_op_type(toy_sentiment,
                                                                            tmp_path):
    """A random BOW whose two logits are almost tied: INT8 noise flips argmaxes; with no labels
    and a zero tolerance the guard rejects it and the retries are recorded with their verdicts."""
    vocab = toy_sentiment["vocab"]
    model = _model("bow", vocab.vocab_size)
    weight = model.classifier.weight.numpy()  # (H, 2)
    model.classifier.weight.set_value(np.stack([weight[:, 0], weight[:, 0] + 1e-4], axis=1))
    model.classifier.bias.set_value(np.zeros(2, dtype=np.float32))
    texts = [e.text_a for e in toy_sentiment["test"]]  # unlabelled: the guard uses agreement
    result = export_model(model, vocab, tmp_path, eval_examples=texts,
                          config=ExportConfig(formats=("onnx-int8",), max_accuracy_drop=0.0,
                                              **FAST))
    report = result.report("onnx-int8")
    retries = report.details["retries"]
    assert [r["variant"] for r in retries][0] == "per_channel=False"  # BOW: per-channel first
    assert {"Gather left in FP32", "Gemm left in FP32"} <= {r["variant"] for r in retries}
    if report.accepted:
        assert report.reason.startswith(next(r["variant"] for r in retries if r["accepted"]))
    else:
        assert "argmax differs" in report.reason and report.details["excluded_op_types"] == []
    assert result.reference["dev"] is None and result.reference["test"] is None


def test_guard_judges_dev_and_only_reports_test(toy_sentiment, tmp_path):
    """Selection on dev only: the same dev rows with a test split whose labels are all flipped
    (so every artifact scores ~0 % on test) give the same verdicts; test is measured and reported."""
    from dataclasses import replace

    labels = toy_sentiment["labels"]
    dev, test = toy_sentiment["test"][:32], toy_sentiment["test"][32:]
    flipped = [replace(e, label=labels[1 - labels.index(e.label)]) for e in test]
    config = ExportConfig(formats=("onnx", "onnx-int8"), max_accuracy_drop=0.0, **FAST)
    runs = {}
    for name, rows in (("true", test), ("flipped", flipped)):
        runs[name] = export_model(toy_sentiment["model"], toy_sentiment["vocab"], tmp_path / name,
                                  calib_examples=toy_sentiment["train"], eval_examples=dev,
                                  test_examples=rows, labels=labels, config=config)
    assert runs["true"].reference["selected_on"] == "dev"
    assert runs["true"].reference["test"]["accuracy"] > 0.9
    assert runs["flipped"].reference["test"]["accuracy"] < 0.1
    for a, b in zip(runs["true"].reports, runs["flipped"].reports):
        assert a.dev == b.dev and (a.accepted, a.reason) == (b.accepted, b.reason)
        assert a.test["accuracy"] > 0.9 and b.test["accuracy"] < 0.1
        assert a.details.get("accuracy_drop") == b.details.get("accuracy_drop")


def test_export_never_adopts_or_empties_a_users_folder(toy_sentiment, tmp_path):
    """An existing folder the tool did not make is refused before anything in it is touched;
    a second export into the tool's own folder replaces the first one's artifacts."""
    vocab = toy_sentiment["vocab"]
    mine = tmp_path / "mine"
    (mine / "onnx").mkdir(parents=True)
    (mine / "onnx" / "notes.txt").write_text("the user's")
    args = dict(eval_examples=toy_sentiment["test"][:16], labels=toy_sentiment["labels"],
                config=ExportConfig(formats=["onnx"], **FAST))
    with pytest.raises(UserError, match="not created by this tool"):
        export_model(_model("bow", vocab.vocab_size), vocab, mine, **args)
    assert (mine / "onnx" / "notes.txt").read_text() == "the user's"

    ours = tmp_path / "ours"
    export_model(_model("bow", vocab.vocab_size), vocab, ours, **args)
    (ours / "onnx" / "stale.txt").write_text("from the first export")
    export_model(_model("bow", vocab.vocab_size), vocab, ours, **args)
    assert (ours / "onnx" / "model.onnx").exists() and not (ours / "onnx" / "stale.txt").exists()
