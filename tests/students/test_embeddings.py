"""students.embeddings: word students whose embeddings start from the teacher's."""
import numpy as np
import pytest

from distill.core.errors import UserError
from distill.text.vocab import WordVocab
from students.embeddings import init_word_embeddings, teacher_word_vectors
from students.registry import build_student
from students.train import VocabConfig, train_student
from tests.students.test_student_train import quick, tiny_setup


def test_words_with_the_same_pieces_get_the_same_vector_and_unknown_pieces_none():
    _, teacher, _ = tiny_setup(layers=1)
    pieces = [w for w in teacher.tokenizer.tokens if w.isalpha()][:6]  # whole-word pieces
    words = ["[PAD]", "[UNK]", "[SEP]", "[MASK]"] + pieces + [pieces[0] + "!", pieces[0]]
    vectors, found = teacher_word_vectors(words, teacher, dim=4)
    assert vectors.shape == (len(words), 4) and vectors.dtype == np.float32
    assert not found[:4].any() and found[4:].all()  # the specials keep their random rows
    np.testing.assert_allclose(vectors[4], vectors[-1], atol=1e-6)    # same piece, same vector
    assert not np.allclose(vectors[4], vectors[-2])                   # "x!" averages two pieces
    assert not np.allclose(vectors[4], vectors[5])
    again, _ = teacher_word_vectors(words, teacher, dim=4)
    np.testing.assert_array_equal(vectors, again)                     # deterministic


def test_init_sets_found_rows_at_the_random_tables_scale_and_keeps_padding_zero():
    task, teacher, _ = tiny_setup(layers=1)
    vocab = WordVocab.build([ex.text_a for ex in task.train], language="en")
    model = build_student("bow", {"emb_dim": 8}, vocab.vocab_size, 2, vocab.pad_id)
    before = model.embeddings.word.weight.numpy().copy()
    rows = init_word_embeddings(model, vocab, teacher)
    after = model.embeddings.word.weight.numpy()
    changed = np.flatnonzero(~np.isclose(before, after).all(axis=1))
    assert rows == len(changed) > 0.5 * vocab.vocab_size
    assert not np.isin(range(4), changed).any() and not after[vocab.pad_id].any()
    assert after[changed].std() == pytest.approx(before.std(), rel=1e-3)


def test_only_the_distilled_student_starts_from_the_teacher(tmp_path):
    task, teacher, logits = tiny_setup(layers=1)
    vocab = {"embeddings": "teacher"}
    kd = train_student("cnn", {"emb_dim": 8, "num_filters": 4}, task, tmp_path / "kd",
                       quick("cnn", epochs=1), teacher_logits=logits, teacher=teacher, vocab=vocab)
    assert kd["teacher_embedding_rows"] > 0
    plain = train_student("cnn", {"emb_dim": 8, "num_filters": 4}, task, tmp_path / "plain",
                          quick("cnn", epochs=1), vocab=vocab)
    assert "teacher_embedding_rows" not in plain
    with pytest.raises(UserError, match="needs the teacher"):
        train_student("bow", {}, task, tmp_path / "no", quick(), teacher_logits=logits, vocab=vocab)


def test_vocab_config_names_the_bad_field():
    with pytest.raises(UserError, match="'embeddings'"):
        VocabConfig(embeddings="glove")
    with pytest.raises(UserError, match="'embeddings'"):
        VocabConfig(source="teacher", embeddings="teacher")
