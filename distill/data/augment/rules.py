"""The three augmentation rules of Tang et al. 2019 (arXiv 1903.12136), as pure functions.

Each rule is ``rule(words, rng, p, ctx) -> words``: it never changes its input list, and all
randomness comes from ``rng`` (a ``random.Random``), so a sample is a function of the seed.

* ``mask``  — each word becomes ``ctx.mask_token`` with probability p (punctuation and spaces
  are not words and stay).
* ``pos``   — each word not already masked becomes another word with the same POS tag, drawn
  from the corpus's unigram distribution renormalised within that tag (``WordPools``); a
  sentence-initial capital stays at the start ("The film" -> "A film").
* ``ngram`` — with probability p the whole sample becomes one random contiguous n-gram of it,
  ``n`` uniform in ``ctx.ngram_range`` (capped at the sample's length).

:func:`augment_words` makes one sample as in the paper: mask and pos per word, then ngram.
The paper draws one uniform ``u`` per word: mask when ``u < p_mask``, pos when
``p_mask <= u < p_mask + p_pos``. Applying pos to the words left unmasked with probability
``p_pos / (1 - p_mask)`` is the same distribution, so each rule stays a separate function and
the share of words masked is ``p_mask`` and the share replaced is ``p_pos``.
"""
import bisect
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from distill.core.registry import Registry
from distill.text.words import is_word, strip_spaces


class WordPools:
    """Corpus words per POS pool key with their counts; samples by unigram frequency.

    Words are kept in order of first appearance, so the pools (and every draw from them) depend
    only on the corpus, never on hash order or on how the work was split across processes.

    >>> pools = WordPools()
    >>> pools.update(["good", "bad", "good"], ["JJ", "JJ", "JJ"])
    >>> pools.freeze().words("JJ")
    ['good', 'bad']
    """

    def __init__(self):
        self._counts: Dict[str, Dict[str, int]] = {}
        self._tables: Optional[Dict[str, Tuple[List[str], List[int]]]] = None

    def update(self, words: Sequence[str], keys: Sequence[Optional[str]]) -> None:
        """Count ``words`` under their pool ``keys`` (a key of None is skipped)."""
        if self._tables is not None:
            raise RuntimeError("WordPools is frozen")
        for word, key in zip(words, keys):
            if key is not None:
                pool = self._counts.setdefault(key, {})
                pool[word] = pool.get(word, 0) + 1

    def freeze(self) -> "WordPools":
        """Build the cumulative-count tables used by :meth:`sample`; returns ``self``."""
        tables = {}
        for key, counts in self._counts.items():
            total, cum = 0, []
            for count in counts.values():
                total += count
                cum.append(total)
            tables[key] = (list(counts), cum)
        self._tables = tables
        return self

    def keys(self) -> List[str]:
        return list(self._counts)

    def words(self, key: str) -> List[str]:
        return list(self._counts.get(key, ()))

    def count(self, key: str, word: str) -> int:
        return self._counts.get(key, {}).get(word, 0)

    def sample(self, key: str, rng: random.Random, avoid: Optional[str] = None,
               tries: int = 20) -> Optional[str]:
        """A word of pool ``key`` drawn by frequency, other than ``avoid`` when possible.

        Redraws up to ``tries`` times while the draw equals ``avoid`` (the conditional unigram
        distribution without that word); None when the pool has no other word.
        """
        if self._tables is None:
            raise RuntimeError("call WordPools.freeze() before sampling")
        table = self._tables.get(key)
        if table is None or (len(table[0]) == 1 and table[0][0] == avoid):
            return None
        words, cum = table
        total = cum[-1]
        for _ in range(tries):
            word = words[bisect.bisect_right(cum, rng.random() * total)]
            if word != avoid:
                return word
        return None


@dataclass(frozen=True)
class RuleContext:
    """What the rules need besides the words: per-word POS pool keys and the settings.

    ``keys[i]`` is the pool of the original's word ``i`` (None: never replaced); mask and pos
    keep the word positions, so the keys stay aligned until ngram, which runs last.
    """

    keys: Sequence[Optional[str]]
    pools: WordPools
    mask_token: str = "[UNK]"
    ngram_range: Tuple[int, int] = (1, 5)


Rule = Callable[[Sequence[str], random.Random, float, RuleContext], List[str]]


def mask_rule(words: Sequence[str], rng: random.Random, p: float, ctx: RuleContext) -> List[str]:
    """Replace each word (not punctuation or space) by ``ctx.mask_token`` with probability p."""
    mask = ctx.mask_token
    return [mask if w != mask and is_word(w) and rng.random() < p else w for w in words]


def pos_rule(words: Sequence[str], rng: random.Random, p: float, ctx: RuleContext) -> List[str]:
    """Replace each unmasked word by a same-POS corpus word with probability p."""
    if len(words) != len(ctx.keys):
        raise ValueError(f"pos rule: {len(words)} words but {len(ctx.keys)} POS keys")
    out = list(words)
    for i, (word, key) in enumerate(zip(words, ctx.keys)):
        if key is None or word == ctx.mask_token or rng.random() >= p:
            continue
        for _ in range(5):  # "The" drawn for "the" is the same word once its case is matched
            new = ctx.pools.sample(key, rng, avoid=word)
            if new is None:
                break
            new = _match_case(new, word, i, key, ctx.pools)
            if new != word:
                out[i] = new
                break
    return out


def _match_case(new: str, old: str, position: int, key: str, pools: WordPools) -> str:
    """Sentence-initial capitals move with the position, not with the word drawn.

    "The film" -> "A film" (not "a film"); "saw the film" -> "saw a film" (not "saw A film",
    when the corpus also has "a"). Proper nouns keep their case; caseless scripts are untouched.
    """
    if position == 0 and old[:1].isupper() and new.islower():
        return new[:1].upper() + new[1:]
    if position > 0 and old.islower() and new.istitle() and pools.count(key, new.lower()):
        return new.lower()
    return new


def ngram_rule(words: Sequence[str], rng: random.Random, p: float, ctx: RuleContext) -> List[str]:
    """With probability p, keep only a random contiguous n-gram, n uniform in ctx.ngram_range."""
    if not words or rng.random() >= p:
        return list(words)
    lo, hi = ctx.ngram_range
    n = min(rng.randint(lo, hi), len(words))
    start = rng.randrange(len(words) - n + 1)
    return strip_spaces(words[start:start + n])


RULES: Registry[Rule] = Registry("augmentation rule")
RULES.add("mask", mask_rule)
RULES.add("pos", pos_rule)
RULES.add("ngram", ngram_rule)
RULE_ORDER = ("mask", "pos", "ngram")  # per word, per word, per sample (the paper's order)


def rule_probabilities(p_mask: float, p_pos: float, p_ng: float) -> Dict[str, float]:
    """The probability each rule is called with so that the word shares are p_mask and p_pos."""
    return {"mask": p_mask, "pos": p_pos / (1.0 - p_mask) if p_mask < 1.0 else 0.0,
            "ngram": p_ng}


def augment_words(words: Sequence[str], rng: random.Random, probs: Dict[str, float],
                  ctx: RuleContext) -> List[str]:
    """One augmented sample: the rules of ``RULE_ORDER`` applied in turn."""
    out = list(words)
    for name in RULE_ORDER:
        if probs[name] > 0.0:
            out = RULES.get(name)(out, rng, probs[name], ctx)
    return out
