"""Expand a training file with the mask / same-POS / n-gram rules of Tang et al. (2019).

    distill augment train.tsv train_aug.tsv                     # 20 samples per row, seed 0
    distill augment train.tsv aug.jsonl --workers 2 --keep-original
    distill augment train.tsv aug.tsv --n-iter 10 --p-ng 0.3 --ngram-range 2,8 --lang zh
    distill augment train.tsv aug.tsv --encoder runs/x/teacher   # that tokenizer's mask token

Each original row gives ``--n-iter`` samples; per sample every word is masked (``--p-mask``)
or swapped for a corpus word of the same part of speech (``--p-pos``), then with ``--p-ng``
the sample shrinks to a random n-gram (see ``distill/augment_rules.py``). Sentence pairs
(``text_b``) have both texts augmented independently. Chinese words come from jieba (POS from
``jieba.posseg``), English words from a regex splitter (POS from spaCy's ``en_core_web_sm``,
or a rule tagger when spaCy cannot load: the summary line says which one ran).

Output rows: ``text_a`` [``text_b``] ``source_id`` — no gold label (the teacher labels them).
``source_id`` is the 0-based index of the original among the input file's rows (header and
blank lines not counted). Samples that are empty (no word left but the mask token), identical
to their original, or equal to an earlier sample or to any original are dropped; the first
occurrence in input order wins. ``--keep-original`` writes each original (with its label and
its own index as ``source_id``) before its samples.

Deterministic: each original's samples come from a ``random.Random`` seeded by
(``--seed``, its index), so the output is byte-identical for any ``--workers``. Pass 1 tags
the rows in chunks, counts the POS word pools (words and counts per tag) and spills the tagged
rows to a temporary file; pass 2 streams that file in chunks and writes the samples as they
come (the ~20x larger output is never held in memory; the input rows are, as
``distill.data.examples.read_examples`` returns a list). De-duplication keeps one 64-bit hash per row.

Python::

    from distill.data.augment.augmenter import augment_texts, AugmentConfig
    new_texts, source_ids = augment_texts(["a fine film .", "a dull one ."], n_iter=5, seed=0)
"""
import functools
import hashlib
import itertools
import multiprocessing
import pickle
import random
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import (Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple)

from distill.data.augment.rules import RuleContext, WordPools, augment_words, rule_probabilities
from distill.data.examples import Example, read_examples, write_examples
from distill.core.errors import DataError, UserError
from distill.core.io import PathLike
from distill.data.augment.postag import SPACY_MODEL, TAGGERS, load_tagger, pool_key
from distill.text.words import LANGS, detect_language, is_word, join_words

DEFAULT_NGRAM_RANGE = {"en": (1, 5), "zh": (2, 10)}
DETECT_ROWS = 1000  # rows read to detect the language when lang="auto"


class AugmentConfigError(UserError, ValueError):
    """A bad augmentation setting (a ValueError too, so recipe validation reports it)."""


@dataclass
class AugmentConfig:
    """Augmentation settings; a recipe's ``augment.rules`` mapping builds one of these."""

    n_iter: int = 20                  # samples drawn per original (before de-duplication)
    p_mask: float = 0.1               # share of words replaced by mask_token
    p_pos: float = 0.1                # share of words replaced by a same-POS corpus word
    p_ng: float = 0.25                # share of samples cut down to a random n-gram
    ngram_range: Optional[Tuple[int, int]] = None  # n range; None: (1, 5) en, (2, 10) zh
    seed: int = 0
    lang: str = "auto"                # auto | zh | en (auto: CJK share of the first rows)
    mask_token: str = "[UNK]"         # a token the teacher's tokenizer keeps as its UNK/MASK
    tagger: str = "auto"              # auto | jieba | spacy | rules
    spacy_model: str = SPACY_MODEL    # spaCy package for English POS (pinned in requirements)
    workers: int = 1                  # processes; the output does not depend on it
    keep_original: bool = False       # also write the originals (with labels)
    chunk_size: int = 256             # rows per unit of work

    def __post_init__(self):
        if self.ngram_range is not None:
            self.ngram_range = tuple(self.ngram_range)
        self.check()

    def check(self) -> None:
        def fail(problem: str):
            raise AugmentConfigError(problem)

        if self.n_iter < 1:
            fail(f"n_iter must be >= 1, got {self.n_iter}")
        for name in ("p_mask", "p_pos", "p_ng"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                fail(f"{name} must be between 0 and 1, got {value}")
        if self.p_mask + self.p_pos > 1.0:
            fail(f"p_mask + p_pos must be <= 1 (one draw per word picks one), got "
                 f"{self.p_mask} + {self.p_pos}")
        if self.ngram_range is not None:
            if len(self.ngram_range) != 2 or not 1 <= self.ngram_range[0] <= self.ngram_range[1]:
                fail(f"ngram_range must be two integers 1 <= lo <= hi, got {self.ngram_range}")
        if self.lang not in ("auto",) + LANGS:
            fail(f"lang must be auto, zh or en, got {self.lang!r}")
        if self.tagger != "auto" and self.tagger not in TAGGERS:
            fail(f"tagger must be auto or one of {', '.join(TAGGERS.names())}, got {self.tagger!r}")
        if not self.mask_token or any(ch.isspace() for ch in self.mask_token):
            fail(f"mask_token must be a non-empty token without spaces, got {self.mask_token!r}")
        if self.workers < 1 or self.chunk_size < 1:
            fail("workers and chunk_size must be >= 1")

    def ngrams_for(self, lang: str) -> Tuple[int, int]:
        return self.ngram_range or DEFAULT_NGRAM_RANGE[lang]


@dataclass
class AugmentStats:
    """Counts of one run; ``summary()`` is the CLI's last line."""

    originals: int = 0
    generated: int = 0                # augmented rows written
    dropped_duplicate: int = 0
    dropped_empty: int = 0
    dropped_identical: int = 0
    seconds: float = 0.0              # whole run
    tag_seconds: float = 0.0          # pass 1: segmenting + POS tagging
    lang: str = ""
    tagger: str = ""
    ngram_range: Tuple[int, int] = (0, 0)
    pool_words: int = 0               # distinct (tag, word) pairs in the POS pools

    @property
    def lines_per_second(self) -> float:
        return self.originals / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        return (f"{self.originals:,} originals -> {self.generated:,} generated "
                f"(dropped {self.dropped_duplicate:,} duplicate, {self.dropped_empty:,} empty, "
                f"{self.dropped_identical:,} identical) in {self.seconds:.1f} s (tagging "
                f"{self.tag_seconds:.1f} s) = "
                f"{self.lines_per_second:,.0f} lines/s; lang {self.lang}, n-grams "
                f"{self.ngram_range[0]}-{self.ngram_range[1]}, POS tagger {self.tagger}")


def mask_token_for(encoder) -> str:
    """The mask token to use for a teacher's tokenizer: its mask token, else its unknown token.

    A candidate is taken only if ``encoder.tokenize(token)`` keeps it as one piece (SentencePiece
    may put a lone ``▁`` before it).
    """
    candidates = [getattr(encoder, name, None) for name in ("mask_token", "unk_token")]
    candidates = [c for c in candidates if c]
    tokenize = getattr(encoder, "tokenize", None)
    for token in candidates:
        if tokenize is None or token in list(tokenize(token)):
            return token
    raise UserError(f"the encoder keeps none of {candidates or 'its special tokens'} as one "
                    f"token; pass --mask-token explicitly")


# ------------------------------------------------------------------------------- the pipeline
def augment_examples(examples: Iterable[Example], config: AugmentConfig,
                     stats: Optional[AugmentStats] = None,
                     progress: bool = False) -> Iterator[Example]:
    """Yield the augmented rows (and originals with ``keep_original``) in input order.

    Pass 1 segments and tags every row (in ``config.workers`` processes), counts the POS word
    pools and spills the tagged rows to a temporary file; pass 2 draws the samples from the
    spill in chunks and de-duplicates them in order. ``stats`` is filled as rows go out.
    """
    config.check()
    stats = stats if stats is not None else AugmentStats()
    start = time.perf_counter()
    rows = iter(examples)
    head = list(itertools.islice(rows, DETECT_ROWS))
    lang = config.lang if config.lang != "auto" else detect_language(
        [t for ex in head for t in (ex.text_a, ex.text_b) if t])
    tagger = _cached_tagger(lang, config.tagger, config.mask_token, config.spacy_model)
    stats.lang, stats.tagger, stats.ngram_range = lang, tagger.name, config.ngrams_for(lang)
    tagger_name = _registry_name(tagger)
    with tempfile.TemporaryDirectory(prefix="distill-augment-") as tmp:
        spill = Path(tmp) / "tagged.pkl"
        pools = WordPools()
        seen: set = set()
        chunks = _chunks(enumerate(itertools.chain(head, rows)), config.chunk_size)
        with open(spill, "wb") as out, _progress(progress, "tagging") as bar:
            for chunk, tagged in _ordered_map(_tag_chunk, chunks, config.workers, _init_tagger,
                                              (lang, tagger_name, config.mask_token,
                                               config.spacy_model), tagger):
                for (_, ex), (words_a, keys_a, words_b, keys_b) in zip(chunk, tagged):
                    pools.update(words_a, keys_a)
                    pools.update(words_b, keys_b)
                    # samples equal to any original (raw or re-joined) count as duplicates
                    seen.add(_row_hash(ex.text_a.strip(), _strip(ex.text_b)))
                    seen.add(_row_hash(join_words(words_a, lang),
                                       None if ex.text_b is None else join_words(words_b, lang)))
                pickle.dump((chunk, tagged), out, protocol=pickle.HIGHEST_PROTOCOL)
                stats.originals += len(chunk)
                bar.update(len(chunk))
        stats.tag_seconds = time.perf_counter() - start
        pools.freeze()
        stats.pool_words = sum(len(pools.words(k)) for k in pools.keys())
        state = _SampleState(pools, lang, config)
        with _progress(progress, "augmenting", total=stats.originals) as bar:
            for (chunk, _), results in _ordered_map(_sample_chunk, _read_spill(spill),
                                                    config.workers, _init_sampler, (state,),
                                                    state):
                for (index, ex), (candidates, empty, identical) in zip(chunk, results):
                    stats.dropped_empty += empty
                    stats.dropped_identical += identical
                    if config.keep_original:
                        yield Example(ex.text_a, ex.text_b, ex.label, index)
                    for digest, text_a, text_b in candidates:
                        if digest in seen:
                            stats.dropped_duplicate += 1
                            continue
                        seen.add(digest)
                        stats.generated += 1
                        yield Example(text_a, text_b, None, index)
                bar.update(len(chunk))
                stats.seconds = time.perf_counter() - start
    stats.seconds = time.perf_counter() - start


def augment_texts(texts: Sequence[str], n_iter: int = 20, p_mask: float = 0.1,
                  p_pos: float = 0.1, p_ng: float = 0.25,
                  ngram_range: Optional[Tuple[int, int]] = None, seed: int = 0,
                  lang: str = "auto", mask_token: str = "[UNK]", tagger: str = "auto",
                  workers: int = 1) -> Tuple[List[str], List[int]]:
    """Augment plain texts; returns (new texts, index of each one's original in ``texts``).

    >>> new, src = augment_texts(["the film is good", "the film is bad"], n_iter=3, seed=1)
    """
    config = AugmentConfig(n_iter=n_iter, p_mask=p_mask, p_pos=p_pos, p_ng=p_ng,
                           ngram_range=ngram_range, seed=seed, lang=lang, mask_token=mask_token,
                           tagger=tagger, workers=workers)
    new_texts: List[str] = []
    sources: List[int] = []
    for ex in augment_examples((Example(t) for t in texts), config):
        new_texts.append(ex.text_a)
        sources.append(ex.source_id)
    return new_texts, sources


def augment_file(src: PathLike, dst: PathLike, config: AugmentConfig, fmt: Optional[str] = None,
                 out_fmt: Optional[str] = None, progress: bool = False) -> AugmentStats:
    """Read ``src`` (TSV/JSONL/CSV), write the augmented rows to ``dst`` atomically."""
    rows = read_examples(src, fmt, require_label=False)
    if not rows:
        raise DataError(src, None, None, "no examples to augment")
    fields = ["text_a"]
    if any(ex.text_b is not None for ex in rows):
        fields.append("text_b")
    if config.keep_original and any(ex.label is not None for ex in rows):
        fields.append("label")
    fields.append("source_id")
    stats = AugmentStats()
    write_examples(dst, augment_examples(rows, config, stats, progress), out_fmt, fields)
    return stats


# ------------------------------------------------------------------------------- workers
@dataclass
class _SampleState:
    pools: WordPools
    lang: str
    config: AugmentConfig
    probs: Dict[str, float] = field(init=False)

    def __post_init__(self):
        c = self.config
        self.probs = rule_probabilities(c.p_mask, c.p_pos, c.p_ng)


_WORKER: Dict[str, object] = {}  # per-process state of pool workers (set by the initializers)


def _init_tagger(lang: str, name: str, mask_token: str, spacy_model: str) -> None:
    _WORKER["state"] = _cached_tagger(lang, name, mask_token, spacy_model)  # forked: inherited


def _init_sampler(state: "_SampleState") -> None:
    _WORKER["state"] = state


def _in_worker(fn: Callable, item):
    return fn(_WORKER["state"], item)


def _tag_chunk(tagger, chunk: List[Tuple[int, Example]]):
    """Pass 1: (words, pool keys) of text_a and text_b for every row of a chunk."""
    texts_a = [ex.text_a for _, ex in chunk]
    pairs = [(i, ex.text_b) for i, (_, ex) in enumerate(chunk) if ex.text_b is not None]
    tagged_a = tagger.tag(texts_a)
    tagged_b = dict(zip([i for i, _ in pairs], tagger.tag([t for _, t in pairs])))
    out = []
    for i, (words_a, tags_a) in enumerate(tagged_a):
        words_b, tags_b = tagged_b.get(i, ([], []))
        out.append((words_a, [pool_key(w, t) for w, t in zip(words_a, tags_a)],
                    words_b, [pool_key(w, t) for w, t in zip(words_b, tags_b)]))
    return out


def _sample_chunk(state: _SampleState, item):
    """Pass 2: for every original of a chunk, its candidate samples and drop counts."""
    chunk, tagged = item
    config, lang = state.config, state.lang
    ngram_range = config.ngrams_for(lang)
    out = []
    for (index, ex), (words_a, keys_a, words_b, keys_b) in zip(chunk, tagged):
        rng = random.Random(_seed_for(config.seed, index))
        ctx_a = RuleContext(keys_a, state.pools, config.mask_token, ngram_range)
        ctx_b = RuleContext(keys_b, state.pools, config.mask_token, ngram_range)
        pair = ex.text_b is not None
        candidates, empty, identical = [], 0, 0
        for _ in range(config.n_iter):
            new_a = augment_words(words_a, rng, state.probs, ctx_a)
            new_b = augment_words(words_b, rng, state.probs, ctx_b) if pair else []
            if not _has_word(new_a, config.mask_token) or (
                    pair and not _has_word(new_b, config.mask_token)):
                empty += 1
                continue
            if new_a == words_a and new_b == words_b:
                identical += 1
                continue
            text_a = join_words(new_a, lang)
            text_b = join_words(new_b, lang) if pair else None
            digest = _row_hash(text_a, text_b)
            candidates.append((digest, text_a, text_b))
        out.append((candidates, empty, identical))
    return out


def _ordered_map(fn: Callable, items: Iterable, workers: int, init: Callable,
                 init_args: tuple, own_state) -> Iterator[tuple]:
    """Yield ``(item, fn(state, item))`` in input order, in-process or in a worker pool.

    In-process (``workers == 1``) ``state`` is ``own_state``; workers build theirs with
    ``init(*init_args)``. At most ``2 * workers`` items are in flight, so the input is never
    read far ahead of the output.
    """
    if workers == 1:
        for item in items:
            yield item, fn(own_state, item)
        return
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(workers, init, init_args) as pool:
        pending: deque = deque()
        for item in items:
            pending.append((item, pool.apply_async(_in_worker, (fn, item))))
            if len(pending) >= 2 * workers:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


# ------------------------------------------------------------------------------- helpers
@functools.lru_cache(maxsize=4)
def _cached_tagger(lang: str, name: str, mask_token: str, spacy_model: str):
    """Taggers are pure functions of their settings; loading spaCy costs ~1 s, so keep them."""
    return load_tagger(lang, name, mask_token, spacy_model)


def _registry_name(tagger) -> str:
    for name in TAGGERS.names():
        if type(tagger) is TAGGERS.get(name):
            return name
    raise ValueError(f"unregistered tagger {tagger!r}")


def _seed_for(seed: int, index: int) -> int:
    """The RNG seed of original ``index``: a hash of (seed, index), independent of workers."""
    digest = hashlib.blake2b(f"{seed}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _row_hash(text_a: str, text_b: Optional[str]) -> int:
    key = text_a if text_b is None else f"{text_a}\t{text_b}"
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _strip(text: Optional[str]) -> Optional[str]:
    return None if text is None else text.strip()


def _has_word(words: Sequence[str], mask_token: str) -> bool:
    return any(w != mask_token and is_word(w) for w in words)


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    items = iter(items)
    while True:
        chunk = list(itertools.islice(items, size))
        if not chunk:
            return
        yield chunk


def _read_spill(path: Path) -> Iterator:
    with open(path, "rb") as f:
        while True:
            try:
                yield pickle.load(f)
            except EOFError:
                return


def _progress(enabled: bool, desc: str, total: Optional[int] = None):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"augment: {desc}", unit=" rows", disable=not enabled,
                file=sys.stderr, dynamic_ncols=True)
