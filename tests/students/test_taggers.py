"""Token taggers and the token teacher: shapes, padding invariance, real training on a tiny NER set."""
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.data.token_batching import TokenBatchPlan, encode_token_examples
from distill.data.tokens import load_token_task
from students.registry import TAGGERS, build_student
from teachers.config import ErnieConfig

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke_ner"


@pytest.fixture(scope="module")
def task():
    return load_token_task(SMOKE / "train.txt", SMOKE / "dev.txt", SMOKE / "test.txt")


@pytest.fixture(scope="module")
def teacher(task, tmp_path_factory):
    """A tiny random ERNIE token teacher on a WordPiece vocabulary of the training characters."""
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
    from teachers.checkpoint import random_teacher
    from teachers.token_model import token_teacher

    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_wordpiece_vocab(["".join(ex.tokens) for ex in task.train], path)
    tok = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=2, num_heads=2,
                         intermediate_size=64, hidden_dropout=0.0, attention_dropout=0.0)
    return token_teacher(random_teacher(config, tok, num_labels=2), task.tags, seed=0)


def _configs():
    return {"lstm": {"emb_dim": 16, "hidden_size": 16},
            "cnn": {"emb_dim": 16, "num_filters": 8, "filter_sizes": [1, 3, 4]},
            "tiny": {"num_layers": 1, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
                     "init": "random", "hidden_dropout": 0.0, "attention_dropout": 0.0}}


@pytest.mark.parametrize("kind", ["lstm", "cnn", "tiny"])
def test_tagger_logits_per_position_do_not_depend_on_batch_padding(kind):
    paddle.seed(0)
    model = build_student(kind, _configs()[kind], vocab_size=30, num_labels=5, task="token")
    model.eval()
    ids = paddle.to_tensor([[5, 6, 7, 8, 0, 0, 0], [9, 10, 11, 12, 13, 14, 15]], dtype="int64")
    mask = paddle.to_tensor((ids.numpy() != 0).astype("int64"))
    both = model(ids, attention_mask=mask)["logits"].numpy()  # (2, 7, 5)
    alone = model(ids[:1, :4], attention_mask=mask[:1, :4])["logits"].numpy()  # (1, 4, 5)
    assert both.shape == (2, 7, 5)
    np.testing.assert_allclose(both[0, :4], alone[0], atol=1e-5)
    assert set(TAGGERS.names()) == {"lstm", "cnn", "tiny"}


def test_plain_lstm_tagger_learns_the_smoke_task_and_saves(task, tmp_path):
    from students.io import load_student
    from students.train_tokens import default_token_train_config, train_token_student

    config = default_token_train_config("lstm", epochs=5, lr=1e-2, batch_size=16, progress=False)
    result = train_token_student("lstm", {"emb_dim": 32, "hidden_size": 32}, task, tmp_path,
                                 config, progress=False)
    assert result["mode"] == "plain" and result["test"]["f1"] > 0.5, result["test"]
    model, encoder, meta = load_student(tmp_path / "student")
    assert meta["task"] == "token" and meta["labels"] == task.tags and meta["unit"] == "char"
    data = encode_token_examples(encoder, task.test[:4], 64, tags=task.tags)
    batch = next(iter(TokenBatchPlan(data, 4)))
    logits = model(**{k: paddle.to_tensor(v) for k, v in batch["inputs"].items()})["logits"]
    assert logits.shape[-1] == len(task.tags)


def test_token_teacher_finetunes_and_distils_into_tiny_and_cnn(task, teacher, tmp_path):
    from students.train_tokens import default_token_train_config, train_token_student
    from teachers.token_model import finetune_token_teacher, load_token_teacher, token_logits
    from distill.train.trainer import TrainConfig

    result = finetune_token_teacher(teacher, task, TrainConfig(
        epochs=3, batch_size=16, lr=3e-3, progress=False, eval_metric="f1"), tmp_path / "t",
        max_len=48)
    assert result["dev"]["f1"] > 0.5, result["dev"]
    again = load_token_teacher(tmp_path / "t" / "teacher")
    assert again.labels == task.tags
    soft = token_logits(teacher.model, teacher.tokenizer, task.train, max_len=48)
    assert [s.shape for s in soft[:3]] == [(len(ex.tokens), len(task.tags)) for ex in task.train[:3]]
    reloaded = token_logits(again.model, again.tokenizer, task.train[:3], max_len=48)
    np.testing.assert_allclose(reloaded[0], soft[0], atol=1e-4)

    tiny = train_token_student(
        "tiny", {"num_layers": 1}, task, tmp_path / "tiny",
        default_token_train_config("tiny", epochs=1, lr=1e-3, batch_size=16, progress=False),
        teacher_logits=soft, teacher=teacher, max_len=48, progress=False)
    assert tiny["teacher_layers"] == [1] and tiny["mode"] == "distilled"
    cnn = train_token_student(
        "cnn", {"emb_dim": 32, "num_filters": 32}, task, tmp_path / "cnn",
        default_token_train_config("cnn", epochs=4, lr=1e-2, batch_size=16, progress=False),
        teacher_logits=soft, loss="soft_ce:0.5,hard_ce:0.5", progress=False)
    assert cnn["loss"] == "0.5*soft_ce(T=1) + 0.5*hard_ce" and cnn["test"]["f1"] > 0.4
