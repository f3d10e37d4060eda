"""Token teacher: keeping the lower encoder layers reads the same hidden states, saves and loads
as the smaller encoder, and refuses impossible layer counts."""
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.core.errors import UserError
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
from teachers.checkpoint import random_teacher
from teachers.config import ErnieConfig
from teachers.token_model import (keep_lower_layers, load_token_teacher, save_token_teacher,
                                  token_teacher)

TAGS = ["O", "B-PER", "M-PER", "E-PER", "S-PER"]


@pytest.fixture()
def teacher(tmp_path):
    path = tmp_path / "vocab.txt"
    write_wordpiece_vocab(["张三去北京了", "李四在上海"], path)
    tok = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=3, num_heads=2,
                         intermediate_size=64)
    return token_teacher(random_teacher(config, tok, num_labels=2, seed=1), TAGS, seed=1)


def test_kept_layers_are_the_lower_ones_and_the_head_reads_the_last_kept(teacher, tmp_path):
    ids = paddle.to_tensor(np.array([[2, 7, 8, 9, 3, 0]], dtype="int64"))  # (1, 6)
    with paddle.no_grad():
        full = teacher.model(ids, output_hidden_states=True)
    classifier = teacher.model.classifier
    keep_lower_layers(teacher, 2)
    assert teacher.config.num_layers == 2 and len(teacher.model.ernie.encoder.layers) == 2
    with paddle.no_grad():
        cut = teacher.model(ids, output_hidden_states=True)
        want = classifier(full["hidden_states"][2])                   # (1, 6, C)
    assert len(cut["hidden_states"]) == 3
    np.testing.assert_allclose(cut["logits"].numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    assert not np.allclose(cut["logits"].numpy(), full["logits"].numpy(), atol=1e-3)

    back = load_token_teacher(save_token_teacher(teacher, tmp_path / "t", "bmes"))
    assert back.config.num_layers == 2 and back.labels == TAGS
    with paddle.no_grad():
        np.testing.assert_allclose(back.model(ids)["logits"].numpy(), cut["logits"].numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_keeping_every_layer_changes_nothing_and_bad_counts_are_user_errors(teacher):
    model = teacher.model
    assert keep_lower_layers(teacher, 3).model is model
    for bad in (0, 4):
        with pytest.raises(UserError, match="teacher.layers"):
            keep_lower_layers(teacher, bad)


def test_probe_head_writes_the_fitted_regression_into_the_head(tmp_path):
    from distill.data.tokens import load_token_task
    from teachers.token_model import probe_token_head, token_logits

    smoke = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke_ner"
    task = load_token_task(smoke / "train.txt", smoke / "dev.txt", None)
    path = tmp_path / "vocab.txt"
    write_wordpiece_vocab(["".join(ex.tokens) for ex in task.train], path)
    tok = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=1, num_heads=2,
                         intermediate_size=64)
    teacher = token_teacher(random_teacher(config, tok, num_labels=2, seed=0), task.tags)
    rows = task.train[:60]
    result = probe_token_head(teacher, rows, task.tags, max_len=48)
    logits = token_logits(teacher.model, tok, rows, max_len=48)        # per row (L, C)
    gold = np.concatenate([[task.tags.index(t) for t in ex.tags] for ex in rows])
    pred = np.concatenate([x.argmax(-1) for x in logits])
    majority = np.bincount(gold).max() / len(gold)
    assert result["tokens"] == len(gold)
    assert abs((pred == gold).mean() - result["train_token_accuracy"]) < 0.01
    assert result["train_token_accuracy"] > majority                   # it learnt more than O
    absent = [i for i in range(len(task.tags)) if i not in set(gold)]
    assert all((pred != i).all() for i in absent)
