"""Family 7 (run-folder state): a corrupt soft-label chunk or merged file is "not done" — the rows
are labelled again with a warning naming the file — never a traceback or a stuck folder."""
from pathlib import Path

import numpy as np
import pytest

from distill.data.examples import read_examples
from teachers.checkpoint import random_teacher
from teachers.config import ErnieConfig
from teachers.soft_labels import soft_labels
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    examples = read_examples(SMOKE / "train.tsv")[:24]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_wordpiece_vocab([ex.text_a for ex in examples], path)
    tokenizer = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=1,
                         num_heads=2, intermediate_size=32, max_position_embeddings=64)
    return random_teacher(config, tokenizer, num_labels=2, seed=0, max_len=16), examples


def label(setup, out):
    teacher, examples = setup
    return soft_labels(teacher, examples, out, batch_size=4, chunk_batches=1, progress=False,
                       device="cpu")


def test_corrupt_chunk_and_merged_file_are_relabelled(tmp_path, setup, caplog):
    reference = label(setup, tmp_path / "ref")
    out = tmp_path / "out"
    label(setup, out)
    chunks = sorted(out.rglob("chunk-*.npz"))
    assert len(chunks) == 6
    chunks[2].write_bytes(chunks[2].read_bytes()[:40])  # truncated by a crash
    (out / "soft_labels.npy").write_bytes(b"garbage")
    with caplog.at_level("WARNING"):
        again = label(setup, out)
    np.testing.assert_array_equal(again, reference)
    assert chunks[2].name in caplog.text and "soft_labels.npy" in caplog.text
