"""Word vocabulary for the BOW/CNN/RNN students: jieba words for Chinese, regex words for English.

No Paddle here (the edge predictor uses it). It implements the encoder contract of
``distill/ARCHITECTURE.md``::

    vocab = WordVocab.build(train_texts + augmented_texts, language="auto", min_freq=1)
    batch = vocab.encode(["a good film"], max_len=128)   # input_ids/token_type_ids/attention_mask
    vocab.save("runs/x/student");  WordVocab.load("runs/x/student")

Words: Chinese via jieba, English via ``distill.text.words.split_english`` (the augmenter's splitter:
clitics such as ``n't`` and numbers such as ``8/10`` are words of their own), lowercased.
The language comes from ``distill.text.words.detect_language`` (share of CJK letters).

Ids: ``[PAD]``=0, ``[UNK]``=1, ``[SEP]``=2, ``[MASK]``=3, then words by falling frequency (ties in
order of first appearance). Special tokens written literally in a text (``[MASK]`` or ``<mask>``
from the augmenter) stay one token.

Speed (English): the regex scan costs most of the encoding, so ``ids`` splits a text at whitespace
(no word crosses whitespace, and the pattern's look-arounds see whitespace and a chunk's edge
alike) and keeps each whitespace-free chunk's ids in a bounded per-vocabulary cache; a text holding
a special-token spelling (``[`` or ``<``) or a character that ``str.split`` treats as space but the
regex does not takes the exact per-text path. Both give identical ids
(tests/text/test_vocab_cache.py checks it on real movies_en text and random text).

Pairs (``text_a`` + ``text_b``) become one sequence ``a [SEP] b``; ``token_type_ids`` are 0 for
``a`` and the ``[SEP]``, 1 for ``b`` (the students add a learned segment embedding). Pairs that are
too long are cut longest-first. An empty text encodes as one ``[UNK]`` so no row is all padding.
"""
import collections
import functools
import itertools
import logging
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np
import regex

from distill.core.errors import UserError
from distill.core.io import read_json, write_json, write_text
from distill.text.batch import check_word_batch, cut_pair, pad_rows
from distill.text.words import detect_language as _detect_language
from distill.text.words import split_english

PAD, UNK, SEP, MASK = "[PAD]", "[UNK]", "[SEP]", "[MASK]"
SPECIALS = (PAD, UNK, SEP, MASK)
# other tokenizers' spellings of the same specials (the augmenter writes the teacher's mask token)
ALIASES = {"<mask>": MASK, "<unk>": UNK, "</s>": SEP}
LANGUAGES = ("zh", "en")

_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIALS + tuple(ALIASES)) + ")")


_CHUNK_CACHE_SIZE = 1 << 18  # distinct whitespace-free chunks kept per vocabulary


@functools.lru_cache(maxsize=1)
def _split_unsafe_re() -> "re.Pattern":
    """Finds a character of ``_split_unsafe`` (never matches when there is none)."""
    chars = _split_unsafe()
    return re.compile("[" + re.escape(chars) + "]" if chars else "(?!)")


@functools.lru_cache(maxsize=1)
def _split_unsafe() -> str:
    """Characters ``str.split()`` splits at but the English regex's ``\\s`` does not match."""
    # Unicode puts every white-space character in the BMP (the test checks all code points)
    every = "".join(map(chr, range(0x10000)))
    # stdlib re's \s on str is exactly str.isspace(), the characters str.split() splits at
    return "".join(sorted(set(re.findall(r"\s", every)) - set(regex.findall(r"\s", every))))


def detect_language(texts: Iterable[str], sample: int = 2000) -> str:
    """``"zh"`` or ``"en"`` from the first ``sample`` texts (``distill.text.words.detect_language``)."""
    return _detect_language(itertools.islice(texts, sample))


def _jieba():
    import warnings

    with warnings.catch_warnings():  # jieba 0.42 imports the deprecated pkg_resources
        warnings.simplefilter("ignore", UserWarning)
        import jieba

    jieba.setLogLevel(logging.WARNING)  # silence "Building prefix dict ..." on first use
    return jieba


def tokenize(text: str, language: str, lowercase: bool = True) -> List[str]:
    """Split ``text`` into words: jieba for ``zh``, a letters/digits-or-punctuation regex for ``en``."""
    tokens: List[str] = []
    for piece in _SPECIAL_RE.split(text):
        if not piece:
            continue
        if piece in SPECIALS or piece in ALIASES:
            tokens.append(ALIASES.get(piece, piece))
            continue
        if lowercase:
            piece = piece.lower()
        if language == "zh":
            tokens.extend(w for w in (t.strip() for t in _jieba().lcut(piece)) if w)
        else:
            tokens.extend(split_english(piece))
    return tokens


class WordVocab:
    """A word -> id table plus the tokenizer settings it was built with."""

    def __init__(self, words: List[str], language: str = "en", lowercase: bool = True):
        if language not in LANGUAGES:
            raise UserError(f"unknown vocabulary language {language!r}; use one of {LANGUAGES}")
        if list(words[:len(SPECIALS)]) != list(SPECIALS):
            raise UserError(f"a word vocabulary must start with {', '.join(SPECIALS)}")
        self.words = list(words)
        self.language = language
        self.lowercase = lowercase
        self.index: Dict[str, int] = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise UserError("a word vocabulary must not repeat a word")
        self.pad_id, self.unk_id = self.index[PAD], self.index[UNK]
        self.sep_id, self.mask_id = self.index[SEP], self.index[MASK]
        self.unk_token, self.mask_token, self.sep_token = UNK, MASK, SEP
        self._chunk_ids: Dict[str, tuple] = {}  # English chunk -> word ids (see ``ids``)

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], language: str = "auto", min_freq: int = 1,
              max_size: Optional[int] = 50000, lowercase: bool = True) -> "WordVocab":
        """Count words in ``texts`` (train + augmented, both sides of pairs) and keep the frequent ones.

        ``max_size`` counts the special tokens; ``None`` keeps every word seen ``min_freq`` times.
        """
        texts = [t for t in texts if t is not None]
        if language == "auto":
            language = detect_language(texts)
        counts: collections.Counter = collections.Counter()
        for text in texts:
            counts.update(t for t in tokenize(text, language, lowercase) if t not in SPECIALS)
        words = [w for w, n in counts.most_common() if n >= min_freq]  # stable: ties by first seen
        if max_size is not None:
            words = words[:max(0, max_size - len(SPECIALS))]
        return cls(list(SPECIALS) + words, language=language, lowercase=lowercase)

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def __len__(self) -> int:
        return len(self.words)

    def tokenize(self, text: str) -> List[str]:
        return tokenize(text, self.language, self.lowercase)

    def ids(self, text: str) -> List[int]:
        """Word ids of ``text`` (``[UNK]`` for unknown words; one ``[UNK]`` for an empty text)."""
        if self.language != "en" or "[" in text or "<" in text \
                or _split_unsafe_re().search(text):
            return self.exact_ids(text)
        chunks = (text.lower() if self.lowercase else text).split()
        found = list(map(self._chunk_ids.get, chunks))  # each a tuple of ids, None if unseen
        if None in found:
            found = [ids if ids is not None else self._learn_chunk(chunk)
                     for ids, chunk in zip(found, chunks)]
        return list(itertools.chain.from_iterable(found)) or [self.unk_id]

    def _learn_chunk(self, chunk: str) -> tuple:
        if len(self._chunk_ids) >= _CHUNK_CACHE_SIZE:
            self._chunk_ids.clear()
        ids = self._chunk_ids[chunk] = tuple(self.index.get(t, self.unk_id)
                                             for t in split_english(chunk))
        return ids

    def exact_ids(self, text: str) -> List[int]:
        """``ids`` the direct way: tokenize the whole text, look every word up."""
        return [self.index.get(t, self.unk_id) for t in self.tokenize(text)] or [self.unk_id]

    # -- the encoder contract ---------------------------------------------------------------
    def encode(self, texts_a: List[str], texts_b: Optional[List[str]] = None,
               max_len: int = 128) -> Dict[str, np.ndarray]:
        """Encode a batch; every array is (B, T) int64, T = the longest row (<= ``max_len``)."""
        check_word_batch(texts_a, texts_b, max_len)
        if texts_b is None:
            return pad_rows([self.ids(text)[:max_len] for text in texts_a], self.pad_id)
        rows, types = [], []
        for text_a, text_b in zip(texts_a, texts_b):
            a, b = self.ids(text_a), self.ids(text_b)
            na, nb = cut_pair(len(a), len(b), max_len - 1, first_on_tie=True)
            rows.append(a[:na] + [self.sep_id] + b[:nb])
            types.append([0] * (na + 1) + [1] * nb)
        return pad_rows(rows, self.pad_id, types)

    # -- files ------------------------------------------------------------------------------
    def save(self, directory) -> None:
        """Write ``vocab.txt`` (one word a line, line i = id i) and ``encoder.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_text(directory / "vocab.txt", "\n".join(self.words) + "\n")
        write_json(directory / "encoder.json", {
            "type": "words", "vocab_file": "vocab.txt", "vocab_size": self.vocab_size,
            "language": self.language, "lowercase": self.lowercase,
        })

    @classmethod
    def load(cls, directory) -> "WordVocab":
        directory = Path(directory)
        meta_path = directory / "encoder.json"
        if not meta_path.exists():
            raise UserError(f"{meta_path}: missing; not a saved word vocabulary")
        meta = read_json(meta_path)
        if meta.get("type") != "words":
            raise UserError(f"{meta_path}: type is {meta.get('type')!r}, expected 'words'")
        vocab_path = directory / meta.get("vocab_file", "vocab.txt")
        if not vocab_path.exists():
            raise UserError(f"{vocab_path}: missing vocabulary file named in {meta_path}")
        words = vocab_path.read_text(encoding="utf-8").split("\n")
        if words and words[-1] == "":
            words.pop()
        vocab = cls(words, language=meta.get("language", "en"), lowercase=meta.get("lowercase", True))
        if "vocab_size" in meta and meta["vocab_size"] != vocab.vocab_size:
            raise UserError(f"{vocab_path}: {vocab.vocab_size} words, but {meta_path} says "
                            f"{meta['vocab_size']}")
        return vocab
