"""Vocabulary trimming: kept pieces, identical logits on the task's text, unknown tokens for the
rest, the tokenizer rewritten consistently (package too), the guard, word vocabularies untouched."""
import json
import tarfile

import numpy as np
import pytest

from distill.backends.paddle_inference import dygraph_logits
from distill.core.errors import UserError
from distill.export.exporter import ExportConfig, LoadedModel, export_model
from distill.export.trim import parse_setting, trim_model, trim_tokenizer


@pytest.fixture(scope="module")
def teacher(toy_sentiment, tmp_path_factory):
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
    from teachers.checkpoint import random_teacher
    from teachers.config import ErnieConfig

    tmp = tmp_path_factory.mktemp("vocab")
    texts = [e.text_a for e in toy_sentiment["train"]] + ["extra words nobody uses zebra"]
    write_wordpiece_vocab(texts, tmp / "vocab.txt")
    tokenizer = WordPieceTokenizer(tmp / "vocab.txt")
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=1,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64)
    teacher = random_teacher(config, tokenizer, num_labels=2, seed=5, labels=["neg", "pos"])
    model = teacher.model
    import paddle

    optimizer = paddle.optimizer.Adam(learning_rate=3e-3, parameters=model.parameters())
    train = toy_sentiment["train"]
    y = np.array([["neg", "pos"].index(e.label) for e in train])
    model.train()
    for _ in range(3):  # a few epochs: the model's answers now depend on the words
        for start in range(0, len(train), 32):
            enc = tokenizer.encode([e.text_a for e in train[start:start + 32]], max_len=24)
            logits = model(**{k: paddle.to_tensor(v) for k, v in enc.items()})["logits"]
            loss = paddle.nn.functional.cross_entropy(logits,
                                                      paddle.to_tensor(y[start:start + 32]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
    model.eval()
    return LoadedModel(model, tokenizer, ["neg", "pos"], 24, kind="teacher")


def test_settings_are_checked():
    assert parse_setting("off") is None and parse_setting(None) is None
    assert parse_setting("auto") == "auto" and parse_setting(100) == 100
    assert parse_setting("250") == 250
    for bad in ("all", -1, 1.5, True):
        with pytest.raises(UserError, match="trim_vocab"):
            parse_setting(bad)


def test_trimmed_wordpiece_model_gives_the_same_logits_on_the_task_text(teacher, toy_sentiment):
    train = [e.text_a for e in toy_sentiment["train"]][:120]
    trimmed, report = trim_model(teacher, train, "auto", max_len=24)
    assert trimmed is not teacher and teacher.model.ernie.embeddings.word_embeddings.weight.shape[0] \
        == teacher.encoder.vocab_size  # the original is untouched
    assert report.vocab_after < report.vocab_before
    assert report.parameters_after < report.parameters_before
    assert report.vocab_after == trimmed.encoder.vocab_size
    h = 32
    assert report.parameters_before - report.parameters_after == \
        (report.vocab_before - report.vocab_after) * h
    old = teacher.encoder.encode(train, max_len=24)
    new = trimmed.encoder.encode(train, max_len=24)
    kept = [teacher.encoder.token_to_id(trimmed.encoder.id_to_token(i))
            for i in range(trimmed.encoder.vocab_size)]
    assert np.array_equal(np.asarray(kept)[new["input_ids"]], old["input_ids"])  # remapped ids
    np.testing.assert_allclose(dygraph_logits(trimmed.model, [new]),
                               dygraph_logits(teacher.model, [old]), atol=1e-5)
    unseen = trimmed.encoder.encode(["zebra"], max_len=24)["input_ids"][0]
    assert trimmed.encoder.token_to_id("[UNK]") in unseen.tolist()


def test_top_n_keeps_extra_pieces_and_sentencepiece_is_trimmed_consistently():
    from distill.text.tokenizer import SentencePieceTokenizer

    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581hello", "\u2581world", "\u2581", "h", "e",
              "l", "o", "w", "r", "d", "<mask>", "\u2581zebra"]
    scores = [0, 0, 0, 0, -1, -1, -2, -3, -3, -3, -3, -3, -3, -3, 0, -0.5]
    sp = SentencePieceTokenizer.from_pieces(pieces, scores, unk_id=3, prefix="query: ")
    from distill.export.trim import kept_ids

    keep, in_text = kept_ids(sp, ["hello world", "hello"], "auto", max_len=16)
    new = trim_tokenizer(sp, keep)
    assert new.vocab_size == len(keep) < sp.vocab_size
    old_ids = sp.encode(["hello world"], max_len=16)["input_ids"]
    new_ids = new.encode(["hello world"], max_len=16)["input_ids"]
    assert np.array_equal(np.asarray(keep)[new_ids], old_ids)
    assert new.encode(["zebra"], max_len=16)["input_ids"][0].tolist().count(
        new.token_to_id("<unk>")) >= 1
    top, _ = kept_ids(sp, ["hello world"], 1, max_len=16)  # + the best-scoring piece
    assert set(top) - set(keep) == {15}
    assert new.hf_tokenizer(16).encode("hello world").ids == new_ids[0].tolist()


def test_word_vocabularies_are_left_as_they_are(toy_sentiment):
    loaded = LoadedModel(toy_sentiment["model"], toy_sentiment["vocab"], ["neg", "pos"], 24)
    same, report = trim_model(loaded, ["good"], "auto", max_len=24)
    assert same is loaded and report.vocab_after == report.vocab_before
    assert "nothing to trim" in report.reason


def test_export_ships_the_trimmed_tokenizer_and_the_guard_can_refuse(teacher, toy_sentiment,
                                                                     tmp_path):
    train = toy_sentiment["train"]
    config = ExportConfig(formats=("onnx",), timed=False, threads=1, max_len=24,
                          trim_vocab="auto", max_accuracy_drop=0.99, max_disagreement=None)
    result = export_model(teacher, out_dir=tmp_path / "ok", eval_examples=toy_sentiment["test"],
                          config=config, package="trimmed", trim_texts=train)
    trim = result.reference["trim"]
    assert trim["accepted"] and trim["vocab_after"] < trim["vocab_before"]
    with tarfile.open(result.package) as tar:
        tar.extractall(tmp_path / "x", filter="data")
    tokenizer = json.loads((tmp_path / "x" / "trimmed" / "tokenizer.json").read_text())
    assert len(tokenizer["model"]["vocab"]) == trim["vocab_after"]

    with pytest.raises(UserError, match="needs the training texts"):
        export_model(teacher, out_dir=tmp_path / "no", eval_examples=toy_sentiment["test"],
                     config=config)
    assert trim["test_before"]["accuracy"] > 0.9  # the fixture learned the task
    strict = ExportConfig(formats=("onnx",), timed=False, threads=1, max_len=24,
                          trim_vocab="auto", max_accuracy_drop=0.005)
    refused = export_model(teacher, out_dir=tmp_path / "refused",
                           eval_examples=toy_sentiment["test"], config=strict,
                           trim_texts=["w1 w2 w3"])  # no cue word kept: they all become [UNK]
    trim = refused.reference["trim"]
    assert not trim["accepted"] and "below the untrimmed" in trim["reason"]
    assert refused.report("onnx").accepted  # the untrimmed model was exported instead
