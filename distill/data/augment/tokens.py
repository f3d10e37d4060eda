"""Augmentation for token tasks that keeps every tag aligned and every entity whole.

Three rules, pure functions ``rule(tokens, tags, rng, p, ctx) -> (tokens, tags)`` (inputs never
changed; all randomness from ``rng``, a ``random.Random``):

* ``mask``   — each token outside an entity (tag ``O``) becomes ``ctx.mask_token`` with
  probability p; entity tokens are never masked.
* ``entity`` — each entity is replaced, with probability p, by another entity of the same type
  drawn from the training set (``EntityPools``, by frequency); its tags are rewritten for the
  new length in the task's scheme. The token-level analogue of same-POS replacement.
* ``ngram``  — with probability p the sample becomes one contiguous window of it, ``n`` tokens
  (uniform in ``ctx.ngram_range``, capped at the length) widened at either end until no entity
  is cut.

``augment_token_examples`` makes ``n_iter`` samples per training sentence (rules in the order
mask, entity, ngram), drops samples equal to their original or to an earlier sample, and seeds
each sentence's ``random.Random`` from ``(seed, row)``: the output depends only on the input
and the settings. Augmented rows keep their (aligned) tags and carry ``source_id``::

    pools = EntityPools.from_examples(task.train)
    rows = augment_token_examples(task.train, TokenAugmentConfig(n_iter=4), task.scheme, pools)
"""
import bisect
import random
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from distill.core.errors import UserError
from distill.core.registry import Registry
from distill.data.tokens import TokenExample
from distill.text.tags import OUTSIDE, decode_spans, encode_spans

Tokens = Tuple[str, ...]


class EntityPools:
    """Entities (token tuples) per type with their counts, in order of first appearance."""

    def __init__(self):
        self._counts: Dict[str, Dict[Tokens, int]] = {}
        self._tables: Dict[str, Tuple[List[Tokens], List[int]]] = {}

    @classmethod
    def from_examples(cls, examples: Sequence[TokenExample]) -> "EntityPools":
        pools = cls()
        for ex in examples:
            if ex.tags is None:
                continue
            for start, end, kind in decode_spans(ex.tags):
                pool = pools._counts.setdefault(kind, {})
                pool[ex.tokens[start:end]] = pool.get(ex.tokens[start:end], 0) + 1
        for kind, counts in pools._counts.items():
            cum, total = [], 0
            for n in counts.values():
                total += n
                cum.append(total)
            pools._tables[kind] = (list(counts), cum)
        return pools

    def entities(self, kind: str) -> List[Tokens]:
        return list(self._counts.get(kind, {}))

    def sample(self, kind: str, rng: random.Random) -> Optional[Tokens]:
        table = self._tables.get(kind)
        if not table:
            return None
        items, cum = table
        return items[bisect.bisect_right(cum, rng.random() * cum[-1])]


@dataclass(frozen=True)
class TokenRuleContext:
    scheme: str
    pools: EntityPools
    mask_token: str = "[MASK]"
    ngram_range: Tuple[int, int] = (4, 20)


def mask_rule(tokens, tags, rng: random.Random, p: float, ctx: TokenRuleContext):
    out = [ctx.mask_token if tag == OUTSIDE and rng.random() < p else tok
           for tok, tag in zip(tokens, tags)]
    return out, list(tags)


def entity_rule(tokens, tags, rng: random.Random, p: float, ctx: TokenRuleContext):
    spans = decode_spans(tags)
    new_tokens: List[str] = []
    new_spans = []
    last = 0
    for start, end, kind in spans:
        new_tokens.extend(tokens[last:start])
        entity = tuple(tokens[start:end])
        if rng.random() < p:
            entity = ctx.pools.sample(kind, rng) or entity
        new_spans.append((len(new_tokens), len(new_tokens) + len(entity), kind))
        new_tokens.extend(entity)
        last = end
    new_tokens.extend(tokens[last:])
    return new_tokens, encode_spans(len(new_tokens), new_spans, ctx.scheme)


def ngram_rule(tokens, tags, rng: random.Random, p: float, ctx: TokenRuleContext):
    if not tokens or rng.random() >= p:
        return list(tokens), list(tags)
    low, high = ctx.ngram_range
    n = min(rng.randint(low, high), len(tokens))
    start = rng.randint(0, len(tokens) - n)
    end = start + n
    for s, e, _ in decode_spans(tags):  # widen so that no entity is cut
        if s < start < e:
            start = s
        if s < end < e:
            end = e
    return list(tokens[start:end]), list(tags[start:end])


TokenRule = Callable[..., Tuple[List[str], List[str]]]
TOKEN_RULES: Registry[TokenRule] = Registry("token augmentation rule")
TOKEN_RULES.add("mask", mask_rule)
TOKEN_RULES.add("entity", entity_rule)
TOKEN_RULES.add("ngram", ngram_rule)
TOKEN_RULE_ORDER = ("mask", "entity", "ngram")


@dataclass(frozen=True)
class TokenAugmentConfig:
    """How many samples per sentence and each rule's probability (recipe key ``augment``)."""

    n_iter: int = 10
    p_mask: float = 0.1
    p_entity: float = 0.3
    p_ng: float = 0.25
    ngram_range: Tuple[int, int] = (4, 20)
    seed: int = 0
    mask_token: str = "[MASK]"

    def __post_init__(self):
        if self.n_iter < 1:
            raise UserError(f"token augment: n_iter must be >= 1, got {self.n_iter}")
        for name in ("p_mask", "p_entity", "p_ng"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"token augment: {name} must be in [0, 1], got {getattr(self, name)}")
        low, high = self.ngram_range
        if not 1 <= low <= high:
            raise UserError(f"token augment: ngram_range must be 1 <= low <= high, got {self.ngram_range}")


def augment_sentence(tokens, tags, rng: random.Random, config: TokenAugmentConfig,
                     ctx: TokenRuleContext) -> Tuple[List[str], List[str]]:
    probs = {"mask": config.p_mask, "entity": config.p_entity, "ngram": config.p_ng}
    out_tokens, out_tags = list(tokens), list(tags)
    for name in TOKEN_RULE_ORDER:
        if probs[name] > 0:
            out_tokens, out_tags = TOKEN_RULES.get(name)(out_tokens, out_tags, rng, probs[name], ctx)
    return out_tokens, out_tags


def augment_token_examples(examples: Sequence[TokenExample], config: TokenAugmentConfig,
                           scheme: str, pools: Optional[EntityPools] = None
                           ) -> List[TokenExample]:
    """``n_iter`` new samples per tagged sentence (see the module docstring)."""
    pools = pools or EntityPools.from_examples(examples)
    ctx = TokenRuleContext(scheme, pools, config.mask_token, tuple(config.ngram_range))
    out: List[TokenExample] = []
    for row, ex in enumerate(examples):
        if ex.tags is None:
            continue
        rng = random.Random(f"{config.seed}:{row}")
        seen = {(tuple(ex.tokens), tuple(ex.tags))}
        for _ in range(config.n_iter):
            tokens, tags = augment_sentence(ex.tokens, ex.tags, rng, config, ctx)
            key = (tuple(tokens), tuple(tags))
            if not tokens or key in seen:
                continue
            seen.add(key)
            out.append(TokenExample(key[0], key[1], source_id=row))
    return out
