"""Token soft labels: compact storage bounds, aligned rows, cache hit, resume after an interruption."""
from pathlib import Path

import numpy as np
import pytest

from distill.data.tokens import load_token_task
from teachers.config import ErnieConfig
from teachers.token_soft_labels import pack, packed_bytes, token_soft_labels, unpack

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke_ner"


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_float16_and_topk_keep_what_they_promise():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=(500, 13)) * 4).astype(np.float32)
    half = unpack(pack(logits, "float16"))
    assert np.abs(half - logits).max() <= np.abs(logits).max() * 2 ** -10
    packed = pack(logits, "topk", top_k=3)
    top = unpack(packed)
    assert packed_bytes(packed) == 500 * (3 * 2 + 3 + 2) + 8
    assert (top.argmax(1) == logits.argmax(1)).all()
    p, q = _softmax(logits), _softmax(top)
    order = np.argsort(-logits, axis=1)[:, :3]
    np.testing.assert_allclose(np.take_along_axis(q, order, 1), np.take_along_axis(p, order, 1),
                               atol=3e-3)
    rest_p = 1 - np.take_along_axis(p, order, 1).sum(1)
    rest_q = 1 - np.take_along_axis(q, order, 1).sum(1)
    np.testing.assert_allclose(rest_q, rest_p, atol=3e-3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
    from teachers.checkpoint import random_teacher
    from teachers.token_model import token_teacher

    task = load_token_task(SMOKE / "train.txt", SMOKE / "dev.txt", None)
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_wordpiece_vocab(["".join(ex.tokens) for ex in task.train], path)
    tok = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=32, num_layers=1, num_heads=2,
                         intermediate_size=64)
    teacher = token_teacher(random_teacher(config, tok, num_labels=2, max_len=24), task.tags)
    return task, teacher


@pytest.mark.parametrize("storage", ["float32", "topk"])
def test_labels_are_aligned_cached_and_resume(setup, tmp_path, storage):
    from teachers.token_model import token_logits

    task, teacher = setup
    rows = task.dev[:40]
    reference = token_logits(teacher.model, teacher.tokenizer, rows, max_len=24)

    class Stop(Exception):
        pass

    def stop_after_first(number, done):
        if number == 0:
            raise Stop

    with pytest.raises(Stop):
        token_soft_labels(teacher, rows, tmp_path, batch_size=8, chunk_batches=1,
                          storage=storage, progress=False, on_chunk=stop_after_first)
    seen = []
    labels = token_soft_labels(teacher, rows, tmp_path, batch_size=8, chunk_batches=1,
                               storage=storage, progress=False,
                               on_chunk=lambda n, done: seen.append(done))
    assert seen and seen[0] == 16  # the first chunk's 8 rows were not labelled again
    assert [len(x) for x in labels] == [len(ex.tokens) for ex in rows]
    cut = [len(ex.tokens) > 22 for ex in rows]  # [CLS] + 22 tokens + [SEP] fit in 24
    assert any(cut) and all((x[22:] == 0).all() for x, c in zip(labels, cut) if c)
    for got, want in zip(labels, reference):
        if storage == "float32":
            np.testing.assert_allclose(got, want, atol=1e-5)
        else:
            assert (got.argmax(-1) == want.argmax(-1)).all()
    again = token_soft_labels(teacher, rows, tmp_path, storage=storage, progress=False,
                              on_chunk=lambda *a: pytest.fail("cache miss"))
    assert all(np.array_equal(a, b) for a, b in zip(again, labels))
