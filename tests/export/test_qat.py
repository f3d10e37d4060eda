"""Quantization-aware training for paddle-int8: a tiny trained transformer goes through QAT with
the project's trainer, is saved as an INT8 inference model that Paddle Inference really runs with
oneDNN INT8 kernels, and the export chooses between PTQ, QAT and weight-only on dev."""
import numpy as np
import paddle
import pytest

from distill.backends.paddle_inference import PaddleRunner, dygraph_logits
from distill.backends.paddle_qat import int8_kernels
from distill.core.errors import UserError
from distill.core.io import read_json
from distill.export.exporter import ExportConfig, choose_int8, export_model
from distill.export.measure import ArtifactReport
from distill.export.qat import QATSettings, quant_aware_export
from students.registry import build_student

TINY = {"num_layers": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
        "init": "random", "max_position_embeddings": 64, "hidden_dropout": 0.0,
        "attention_dropout": 0.0}
QUICK = {"steps": 8, "eval_every": 4, "lr": 1e-4, "batch_size": 32}


@pytest.fixture(scope="module")
def tiny(toy_sentiment, fit_toy):
    """A tiny transformer trained for a few epochs on the toy task (well above chance)."""
    vocab = toy_sentiment["vocab"]
    paddle.seed(0)
    model = build_student("tiny", TINY, vocab_size=vocab.vocab_size, num_labels=2)
    fit_toy(model, vocab, toy_sentiment["train"], toy_sentiment["labels"], epochs=6, lr=3e-3,
            max_len=24)
    return model


def _accuracy(logits, rows, labels):
    return float(np.mean(logits.argmax(-1) == np.array([labels.index(e.label) for e in rows])))


def test_qat_saves_an_int8_model_that_runs_int8_kernels(tiny, toy_sentiment, tmp_path):
    vocab, labels = toy_sentiment["vocab"], toy_sentiment["labels"]
    dev = toy_sentiment["test"][:32]
    before = {k: v.numpy().copy() for k, v in tiny.state_dict().items()}
    info = quant_aware_export(tiny, vocab, toy_sentiment["train"], dev, labels, 24,
                              tmp_path / "qat", ["input_ids", "token_type_ids", "attention_mask"],
                              QATSettings(**QUICK))
    # the trained model itself is untouched (QAT trains a copy)
    assert all(np.array_equal(v.numpy(), before[k]) for k, v in tiny.state_dict().items())
    assert info["mode"] == "qat" and info["qat"]["steps_run"] == QUICK["steps"]
    assert info["qat"]["selected_on"] == "dev" and info["qat"]["targets"] == "fp32 logits"
    assert info["fake_quant_ops"]["quantize_linear"] > 0  # fake quant reached the saved program
    assert info["quantized_weight_fraction"] > 0.5
    assert read_json(tmp_path / "qat" / "runtime.json") == {"mkldnn_int8": True, "mode": "qat"}

    kernels = int8_kernels(tmp_path / "qat")  # what Paddle Inference's optimized program runs
    assert kernels["int8_ops"].get("fc", 0) >= 2 * 2 * 3  # q/k/v/out + 2 FFN per layer, at least
    assert kernels["quantize_ops"] > 0

    enc = vocab.encode([e.text_a for e in dev], max_len=24)
    fp32 = _accuracy(dygraph_logits(tiny, [enc]), dev, labels)
    runner = PaddleRunner(tmp_path / "qat", threads=1)  # runtime.json -> oneDNN INT8
    assert runner.int8
    int8 = runner(enc)
    assert int8.shape == (len(dev), 2) and np.isfinite(int8).all()
    assert _accuracy(int8, dev, labels) >= fp32 - 0.1


def test_qat_prunes_inputs_the_model_never_reads(toy_sentiment, tmp_path):
    """A BOW ignores token_type_ids: the QAT file is fed like its FP32 export."""
    vocab, labels = toy_sentiment["vocab"], toy_sentiment["labels"]
    names = ["input_ids", "attention_mask"]
    quant_aware_export(toy_sentiment["model"], vocab, toy_sentiment["train"][:64], [], labels, 24,
                       tmp_path / "bow", names, QATSettings(steps=2, eval_every=2))
    runner = PaddleRunner(tmp_path / "bow", threads=1)
    assert sorted(runner.input_names) == sorted(names)
    enc = vocab.encode([e.text_a for e in toy_sentiment["test"][:8]], max_len=24)
    assert runner(enc).shape == (8, 2)


def test_export_chooses_between_ptq_qat_and_weight_only_on_dev(tiny, toy_sentiment, tmp_path):
    labels = toy_sentiment["labels"]
    dev, test = toy_sentiment["test"][:32], toy_sentiment["test"][32:]
    config = ExportConfig(formats=("paddle", "paddle-int8"), timed=False, threads=1, max_len=24,
                          calib_size=32, eval_batch_size=16, max_accuracy_drop=0.05,
                          max_disagreement=None, qat=QUICK)
    result = export_model(tiny, toy_sentiment["vocab"], tmp_path, eval_examples=dev,
                          test_examples=test, calib_examples=toy_sentiment["train"],
                          labels=labels, config=config)
    report = result.report("paddle-int8")
    candidates = {c["mode"]: c for c in report.details["candidates"]}
    assert list(candidates) == ["ptq", "qat", "weight-only"]
    assert candidates["qat"]["int8_kernels"]["int8_ops"].get("fc", 0) > 0
    assert candidates["weight-only"]["int8_kernels"] is None
    # the kept one is what the rule picks from the dev numbers (untimed: ties go to the order)
    accepted = [c for c in candidates.values() if c["accepted"]]
    if accepted:
        best = max(c["dev"]["accuracy"] for c in accepted)
        expected = next(c["mode"] for c in accepted
                        if c["dev"]["accuracy"] >= best - config.int8_choice_margin - 1e-12)
        assert report.details["chosen"] == expected and report.accepted
    assert report.details["chosen_on"].startswith("dev accuracy")
    assert report.path == str(tmp_path / "paddle-int8")
    assert not list(tmp_path.glob(".paddle-int8-*"))  # the other candidates are gone
    runtime = read_json(tmp_path / "paddle-int8" / "runtime.json")
    assert runtime["mode"] == report.details["chosen"]
    assert report.test is not None  # measured and reported, never read by the choice
    logits = PaddleRunner(tmp_path / "paddle-int8", threads=1)(
        toy_sentiment["vocab"].encode([e.text_a for e in dev], max_len=24))
    assert abs(_accuracy(logits, dev, labels) - report.dev["accuracy"]) < 1e-9


def _report(mode, accuracy, rate, accepted=True, p50=1.0):
    return ArtifactReport("paddle-int8", mode, 1, {"max_abs_diff": 0.0, "argmax_agreement": 1.0},
                          None, {"p50": p50, "p95": p50}, rate, accepted=accepted,
                          details={"mode": mode}, dev={"accuracy": accuracy, "macro_f1": accuracy})


def test_choose_int8_reads_dev_accuracy_then_speed():
    ptq, qat, wo = _report("ptq", 0.80, 900.0), _report("qat", 0.85, 800.0), \
        _report("weight-only", 0.851, 300.0)
    assert choose_int8([ptq, qat, wo], margin=0.002).details["mode"] == "qat"  # faster, close
    assert choose_int8([ptq, qat, wo], margin=0.0).details["mode"] == "weight-only"
    assert choose_int8([ptq, qat, wo], margin=0.06).details["mode"] == "ptq"
    rejected = _report("qat", 0.99, 2000.0, accepted=False)
    assert choose_int8([ptq, rejected, wo], margin=0.002).details["mode"] == "weight-only"
    nothing = [_report(m, a, 1.0, accepted=False) for m, a in (("ptq", 0.5), ("qat", 0.7))]
    assert choose_int8(nothing).details["mode"] == "qat"  # the most accurate, still rejected


@pytest.mark.parametrize("qat, message", [({"stepz": 3}, "unknown key"),
                                          ({"steps": 0}, "qat_steps"),
                                          ({"loss": "hidden_mse:1"}, "not usable for QAT"),
                                          ("yes", "give true, false or a mapping")])
def test_qat_settings_are_validated(qat, message):
    with pytest.raises(UserError, match=message):
        ExportConfig(qat=qat).validate()


def test_qat_without_training_rows_is_a_user_error(tiny, toy_sentiment, tmp_path):
    config = ExportConfig(formats=("paddle-int8",), timed=False, threads=1, max_len=24, qat=QUICK)
    with pytest.raises(UserError, match="calib_examples"):
        export_model(tiny, toy_sentiment["vocab"], tmp_path, labels=toy_sentiment["labels"],
                     eval_examples=toy_sentiment["test"][:32], config=config)


def test_cli_qat_options_reach_the_config(toy_sentiment, tmp_path, capsys):
    """``distill export --qat-steps N`` turns QAT on; bad settings and a missing --calib are
    clean user errors (exit 2) before any model work."""
    from distill.cli import main as cli_main
    from distill.data.examples import write_examples
    from students.io import save_student

    save_student(tmp_path / "student", toy_sentiment["model"], "bow", toy_sentiment["vocab"],
                 labels=toy_sentiment["labels"], max_len=24)
    write_examples(tmp_path / "dev.tsv", toy_sentiment["test"][:16])
    common = ["export", str(tmp_path / "student"), "--formats", "paddle-int8", "--eval",
              str(tmp_path / "dev.tsv"), "--threads", "1"]
    assert cli_main(common + ["--out", str(tmp_path / "a"), "--qat-steps", "-1"]) == 2
    assert "qat_steps" in capsys.readouterr().err
    assert cli_main(common + ["--out", str(tmp_path / "b"), "--qat-steps", "2",
                              "--qat-loss", "attention:1"]) == 2
    assert "not usable for QAT" in capsys.readouterr().err
    assert cli_main(common + ["--out", str(tmp_path / "c"), "--qat-steps", "2"]) == 2
    assert "calib_examples" in capsys.readouterr().err
