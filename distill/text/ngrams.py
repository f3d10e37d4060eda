"""Hashed word n-grams (fastText style) for the n-gram bag-of-words student. No Paddle here:
the edge runtime loads it from a package (``encoder.json`` type ``words-ngram``).

    enc = NgramVocab.build(train_texts, language="en", ngram_range=(1, 2), buckets=65536)
    batch = enc.encode(["not good at all"], max_len=128)   # input_ids/token_type_ids/attention_mask
    enc.save("runs/x/student");  NgramVocab.load("runs/x/student")

Ids: ``[0, V)`` are the words of a :class:`~distill.text.vocab.WordVocab` (same segmentation:
jieba for Chinese, regex words for English, lowercased; ``[PAD]``=0, unknown words ``[UNK]``);
``[V, V + buckets)`` are hash buckets. Every word n-gram with ``ngram_range[0] <= n <=
ngram_range[1]`` and ``n >= 2`` (``"not good"``, ``"good at"``, ...) goes to bucket
``blake2b64("w" + "\\x1f".join(words)) % buckets``; with ``char_ngrams=(lo, hi)`` every
character n-gram of ``"<" + word + ">"`` goes to ``blake2b64("c" + chars) % buckets`` (fastText's
subwords). BLAKE2b (``hashlib``) gives the same ids in every process, platform and Python version,
unlike ``hash()``. A row holds the (at most ``max_len``) word ids, then their n-gram ids, so the
sequence is longer than ``max_len``; the model is an embedding bag, so order does not matter.

Pairs: ``a-words a-ngrams [SEP] b-words b-ngrams`` with ``token_type_ids`` 0 for ``a`` and the
``[SEP]``, 1 for ``b``; too-long pairs are cut longest-first on the words, as ``WordVocab`` does.
"""
import functools
import hashlib
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from distill.core.errors import UserError
from distill.core.io import read_json, write_json
from distill.text.batch import check_word_batch, cut_pair, pad_rows
from distill.text.vocab import SPECIALS, WordVocab

TYPE = "words-ngram"
HASH = "blake2b-64"


@functools.lru_cache(maxsize=1 << 20)
def bucket_of(key: str, buckets: int) -> int:
    """Deterministic bucket of an n-gram key: BLAKE2b-64 of its UTF-8 bytes (little-endian) mod
    ``buckets``."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % buckets


def word_ngram_keys(words: Sequence[str], lo: int, hi: int) -> List[str]:
    """Keys of the word n-grams with ``max(lo, 2) <= n <= hi`` in order (unigrams are words)."""
    keys = []
    for n in range(max(lo, 2), hi + 1):
        keys.extend("w" + "\x1f".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return keys


def char_ngram_keys(words: Sequence[str], lo: int, hi: int) -> List[str]:
    """Keys of the character n-grams of ``<word>`` for every word that is not a special token."""
    keys = []
    for word in words:
        if word in SPECIALS:
            continue
        marked = f"<{word}>"
        for n in range(lo, hi + 1):
            keys.extend("c" + marked[i:i + n] for i in range(len(marked) - n + 1))
    return keys


def _pair(value, name: str) -> Optional[Tuple[int, int]]:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not 1 <= value[0] <= value[1]):
        raise UserError(f"n-gram encoder, field '{name}': give [lo, hi] with 1 <= lo <= hi, "
                        f"got {value!r}")
    return int(value[0]), int(value[1])


class NgramVocab:
    """A word vocabulary plus hashed word (and optionally character) n-gram buckets."""

    def __init__(self, words: WordVocab, ngram_range=(1, 2), buckets: int = 65536,
                 char_ngrams=None):
        self.words = words
        self.ngram_range = _pair(ngram_range, "ngram_range")
        self.char_ngrams = _pair(char_ngrams, "char_ngrams")
        if not isinstance(buckets, int) or buckets < 1:
            raise UserError(f"n-gram encoder, field 'buckets': must be an integer >= 1, got {buckets!r}")
        self.buckets = buckets
        self.pad_id, self.unk_id = words.pad_id, words.unk_id
        self.sep_id, self.mask_id = words.sep_id, words.mask_id
        self.unk_token, self.mask_token, self.sep_token = words.unk_token, words.mask_token, words.sep_token
        self.language = words.language

    @classmethod
    def build(cls, texts: Iterable[str], language: str = "auto", min_freq: int = 1,
              max_size: Optional[int] = 50000, ngram_range=(1, 2), buckets: int = 65536,
              char_ngrams=None) -> "NgramVocab":
        """The word table from ``texts`` (``WordVocab.build``); n-grams need no table."""
        return cls(WordVocab.build(texts, language=language, min_freq=min_freq, max_size=max_size),
                   ngram_range=ngram_range, buckets=buckets, char_ngrams=char_ngrams)

    @property
    def vocab_size(self) -> int:
        """Embedding rows: words then buckets."""
        return self.words.vocab_size + self.buckets

    def __len__(self) -> int:
        return self.vocab_size

    def tokenize(self, text: str) -> List[str]:
        return self.words.tokenize(text)

    def _ngram_ids(self, tokens: Sequence[str]) -> List[int]:
        offset = self.words.vocab_size
        keys = word_ngram_keys(tokens, *self.ngram_range)
        if self.char_ngrams is not None:
            keys += char_ngram_keys(tokens, *self.char_ngrams)
        return [offset + bucket_of(k, self.buckets) for k in keys]

    def _side(self, tokens: List[str]) -> List[int]:
        """Word ids (unigrams when ``ngram_range`` starts at 1) then the n-gram ids."""
        words = [self.words.index.get(t, self.unk_id) for t in tokens] \
            if self.ngram_range[0] == 1 else []
        return (words + self._ngram_ids(tokens)) or [self.unk_id]  # no row is all padding

    def encode(self, texts_a: List[str], texts_b: Optional[List[str]] = None,
               max_len: int = 128) -> Dict[str, np.ndarray]:
        """Encode a batch; every array is (B, T) int64, T = the longest row (words <= ``max_len``)."""
        check_word_batch(texts_a, texts_b, max_len)
        if texts_b is None:
            return pad_rows([self._side(self.tokenize(text)[:max_len]) for text in texts_a],
                            self.pad_id)
        rows, types = [], []
        for text_a, text_b in zip(texts_a, texts_b):
            a, b = self.tokenize(text_a), self.tokenize(text_b)
            na, nb = cut_pair(len(a), len(b), max_len - 1, first_on_tie=True)
            left, right = self._side(a[:na]) + [self.sep_id], self._side(b[:nb])
            rows.append(left + right)
            types.append([0] * len(left) + [1] * len(right))
        return pad_rows(rows, self.pad_id, types)

    # -- files ------------------------------------------------------------------------------
    def save(self, directory) -> None:
        """``vocab.txt`` (the words) and ``encoder.json`` (type ``words-ngram`` + n-gram settings)."""
        directory = Path(directory)
        self.words.save(directory)
        write_json(directory / "encoder.json", {
            "type": TYPE, "vocab_file": "vocab.txt", "words": self.words.vocab_size,
            "vocab_size": self.vocab_size, "language": self.words.language,
            "lowercase": self.words.lowercase, "ngram_range": list(self.ngram_range),
            "char_ngrams": list(self.char_ngrams) if self.char_ngrams else None,
            "buckets": self.buckets, "hash": HASH,
        })

    @classmethod
    def load(cls, directory) -> "NgramVocab":
        directory = Path(directory)
        meta_path = directory / "encoder.json"
        if not meta_path.exists():
            raise UserError(f"{meta_path}: missing; not a saved n-gram encoder")
        meta = read_json(meta_path)
        if meta.get("type") != TYPE or meta.get("hash", HASH) != HASH:
            raise UserError(f"{meta_path}: type {meta.get('type')!r} / hash {meta.get('hash')!r}; "
                            f"expected {TYPE!r} / {HASH!r}")
        vocab_path = directory / meta.get("vocab_file", "vocab.txt")
        if not vocab_path.exists():
            raise UserError(f"{vocab_path}: missing vocabulary file named in {meta_path}")
        words = vocab_path.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        table = WordVocab(words, language=meta.get("language", "en"),
                          lowercase=meta.get("lowercase", True))
        enc = cls(table, ngram_range=meta.get("ngram_range", (1, 2)),
                  buckets=meta.get("buckets", 65536), char_ngrams=meta.get("char_ngrams"))
        if meta.get("vocab_size", enc.vocab_size) != enc.vocab_size:
            raise UserError(f"{vocab_path}: {table.vocab_size} words + {enc.buckets} buckets, "
                            f"but {meta_path} says vocab_size {meta['vocab_size']}")
        return enc
