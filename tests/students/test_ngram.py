"""The n-gram BOW student: bigrams learn word order a plain bag cannot, plain and distilled
training, save/load, export to ONNX FP32/INT8 and the edge package (Paddle-free encoder)."""
import numpy as np
import paddle
import pytest

from distill.core.errors import UserError
from distill.data.examples import Example, Task
from distill.text.ngrams import NgramVocab
from students.io import load_student, predict_logits
from students.registry import STUDENTS, build_student
from students.train import default_train_config, train_student

LABELS = ["neg", "pos"]


def order_task(seed=0):
    """Label = the order of 'good' and 'not': 'good not' rows are positive, 'not good' rows
    negative, with shuffled filler around them; a bag of words sees the same words in both."""
    rng = np.random.default_rng(seed)
    filler = "the film was a story really quite so".split()

    def rows(n):
        out = []
        for i in range(n):
            words = list(rng.choice(filler, size=int(rng.integers(2, 5))))
            cue = ["good", "not"] if i % 2 else ["not", "good"]
            at = int(rng.integers(0, len(words) + 1))
            out.append(Example(" ".join(words[:at] + cue + words[at:]), label=LABELS[i % 2]))
        return out

    return Task("order", rows(96), rows(40), rows(40), labels=list(LABELS))


def quick(**overrides):
    return default_train_config("ngram", **dict(dict(epochs=12, batch_size=16, lr=2e-2,
                                                     progress=False, patience=None), **overrides))


def test_registered_with_a_typed_config():
    assert "ngram" in STUDENTS.names()
    model = build_student("ngram", {"word_ngrams": [1, 3], "buckets": 64, "emb_dim": 8}, 100, 2)
    assert model.config.word_ngrams == (1, 3) and model.config.hidden_sizes == ()
    with pytest.raises(UserError, match="word_ngrams"):
        build_student("ngram", {"word_ngrams": [2, 1]}, 100, 2)
    with pytest.raises(UserError, match="activation"):
        build_student("ngram", {"activation": "relu"}, 100, 2)


def test_bigrams_learn_the_order_that_a_bag_of_words_cannot(tmp_path):
    task = order_task()
    accs = {}
    for name, ngrams in (("words", [1, 1]), ("bigrams", [1, 2])):
        result = train_student("ngram", {"word_ngrams": ngrams, "buckets": 1024, "emb_dim": 16},
                               task, tmp_path / name, quick())
        accs[name] = result["dev"]["accuracy"]
    assert accs["bigrams"] >= 0.95, accs
    assert accs["words"] <= 0.7, accs  # the same bag for both labels


def test_distilled_training_save_load_and_predict(tmp_path):
    task = order_task(1)
    augmented = [Example(e.text_a + " indeed") for e in task.train[:32]]
    rng = np.random.default_rng(0)
    gold = np.array([LABELS.index(e.label) for e in task.train] +
                    [LABELS.index(e.label) for e in task.train[:32]])
    logits = (np.eye(2)[gold] * 4 - 2 + rng.normal(0, 0.1, (len(gold), 2))).astype(np.float32)
    result = train_student("ngram", {"buckets": 512, "emb_dim": 16, "hidden_sizes": [16],
                                     "activation": "tanh"}, task, tmp_path / "kd", quick(),
                           teacher_logits=logits, augmented=augmented, loss="logit_mse:1")
    assert result["mode"] == "distilled" and result["augmented_rows"] == 32
    assert result["dev"]["accuracy"] >= 0.9
    model, encoder, meta = load_student(result["student_dir"])
    assert isinstance(encoder, NgramVocab) and meta["kind"] == "ngram"
    assert model.vocab_size == encoder.vocab_size == encoder.words.vocab_size + 512
    out = predict_logits(model, encoder, [e.text_a for e in task.test], max_len=meta["max_len"])
    acc = float((out.argmax(1) == [LABELS.index(e.label) for e in task.test]).mean())
    assert acc == pytest.approx(result["test"]["accuracy"])


def test_exports_to_onnx_int8_and_runs_from_the_package(tmp_path):
    from distill.export.exporter import ExportConfig, export_model
    from distill.serve.predict import load_package

    task = order_task(2)
    result = train_student("ngram", {"buckets": 2048, "emb_dim": 32}, task, tmp_path / "s",
                           quick())
    export = export_model(result["student_dir"], out_dir=tmp_path / "export",
                          calib_examples=task.train, eval_examples=task.dev,
                          test_examples=task.test, package="order-ngram",
                          config=ExportConfig(formats=("onnx", "onnx-int8"), timed=False,
                                              threads=1, eval_batch_size=16))
    reports = {r.format: r for r in export.reports}
    assert reports["onnx"].accepted and reports["onnx"].parity["max_abs_diff"] < 1e-4
    # the hashed table is most of the model: INT8 stores it in a quarter of the bytes
    assert reports["onnx-int8"].details["quantized_weight_fraction"] > 0.9
    assert reports["onnx-int8"].size_bytes < 0.35 * reports["onnx"].size_bytes
    predictor = load_package(export.package, threads=1)
    model, encoder, meta = load_student(result["student_dir"])
    texts = [e.text_a for e in task.test]
    expected = predict_logits(model, encoder, texts, max_len=meta["max_len"]).argmax(1)
    got = [r["label"] for r in predictor.predict(texts)]
    agree = np.mean([g == LABELS[i] for g, i in zip(got, expected)])
    assert agree >= 0.95  # INT8 may flip a near-tie; FP32 parity is checked above
