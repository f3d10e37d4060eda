"""Hashed word n-gram encoder: deterministic ids, order sensitivity, pairs, save/load, no Paddle."""
import json
import subprocess
import sys

import numpy as np
import pytest

from distill.core.errors import UserError
from distill.text.encoders import load_encoder
from distill.text.ngrams import NgramVocab, bucket_of, char_ngram_keys, word_ngram_keys

TEXTS = ["not good at all", "good , not bad", "a good film", "a bad film"]


def test_ngram_keys_and_buckets_are_deterministic_and_in_range():
    assert word_ngram_keys(["a", "b", "c"], 1, 3) == ["wa\x1fb", "wb\x1fc", "wa\x1fb\x1fc"]
    assert word_ngram_keys(["a"], 1, 3) == []
    assert char_ngram_keys(["ab", "[UNK]"], 3, 3) == ["c<ab", "cab>"]
    values = [bucket_of(f"w{i}", 1000) for i in range(200)]
    assert all(0 <= v < 1000 for v in values) and len(set(values)) > 150  # spread, not constant
    # the same ids in another process (Python's hash() would differ under hash randomisation)
    code = ("from distill.text.ngrams import bucket_of\n"
            "print([bucket_of(f'w{i}', 1000) for i in range(200)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", **__import__("os").environ})
    assert json.loads(out.stdout) == values


def test_bigrams_see_word_order_that_the_words_alone_do_not():
    enc = NgramVocab.build(TEXTS, language="en", ngram_range=(1, 2), buckets=4096)
    a, b = (enc.encode([t], max_len=16)["input_ids"][0] for t in ("not good", "good not"))
    words = enc.words.vocab_size
    assert sorted(a[a < words]) == sorted(b[b < words])  # the same words
    assert set(a[a >= words]) != set(b[b >= words])      # different bigrams
    assert enc.vocab_size == words + 4096 and (a < enc.vocab_size).all()
    unigram = NgramVocab.build(TEXTS, language="en", ngram_range=(1, 1), buckets=16)
    assert unigram.encode(["not good"])["input_ids"].tolist() == \
        [enc.words.ids("not good")]  # n-gram range 1..1 = the word vocabulary
    chars = NgramVocab.build(TEXTS, language="en", ngram_range=(1, 2), char_ngrams=(3, 4),
                             buckets=4096)
    assert chars.encode(["good"])["input_ids"].shape[1] == 1 + 4 + 3  # word + <go goo ood od> ...


def test_pairs_max_len_padding_and_empty_text():
    enc = NgramVocab.build(TEXTS, language="en", ngram_range=(1, 3), buckets=512)
    batch = enc.encode(["not good at all", ""], max_len=2)
    assert batch["input_ids"].shape == (2, 3)  # 2 words + their bigram; "" -> [UNK]
    assert batch["input_ids"][1].tolist() == [enc.unk_id, enc.pad_id, enc.pad_id]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    pair = enc.encode(["a good film"], ["not bad"], max_len=8)
    types = pair["token_type_ids"][0].tolist()
    assert types == [0] * (3 + 2 + 1 + 1) + [1] * (2 + 1)  # a words, a n-grams, [SEP], b
    assert pair["input_ids"][0][6] == enc.sep_id  # after 3 words, 2 bigrams, 1 trigram
    no_words = NgramVocab.build(TEXTS, language="en", ngram_range=(2, 2), buckets=64)
    assert (no_words.encode(["good film"])["input_ids"] >= no_words.words.vocab_size).all()
    assert no_words.encode(["good"])["input_ids"].tolist() == [[no_words.unk_id]]


def test_save_load_round_trip_through_the_encoder_loader(tmp_path):
    enc = NgramVocab.build(TEXTS, language="en", ngram_range=(1, 3), buckets=999,
                           char_ngrams=(2, 3))
    enc.save(tmp_path)
    meta = json.loads((tmp_path / "encoder.json").read_text())
    assert meta["type"] == "words-ngram" and meta["hash"] == "blake2b-64"
    loaded = load_encoder(tmp_path)
    assert isinstance(loaded, NgramVocab) and loaded.vocab_size == enc.vocab_size
    for key, value in enc.encode(TEXTS, max_len=6).items():
        np.testing.assert_array_equal(loaded.encode(TEXTS, max_len=6)[key], value)
    meta["buckets"] = 1000
    (tmp_path / "encoder.json").write_text(json.dumps(meta))
    with pytest.raises(UserError, match="vocab_size"):
        load_encoder(tmp_path)
    with pytest.raises(UserError, match="ngram_range"):
        NgramVocab(enc.words, ngram_range=(3, 2))


def test_the_encoder_never_imports_paddle():
    code = ("import sys\nfrom distill.text.ngrams import NgramVocab\n"
            "NgramVocab.build(['a b c'], language='en').encode(['a b'])\n"
            "assert 'paddle' not in sys.modules, 'paddle imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
