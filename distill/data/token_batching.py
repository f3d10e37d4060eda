"""Token-task rows -> padded batches (NumPy only), the token analogue of ``distill.data.batching``.

A ``TokenEncodedSet`` keeps N sentences unpadded: their sub-token ids (as ``EncodedSet``), the
position of each token's first sub-token, one tag id per token and, for distillation, one teacher
logit row per token. ``TokenBatchPlan`` cuts it into batches like ``BatchPlan`` (same seeded,
length-bucketed order). A batch is the trainer contract plus the token fields::

    {"inputs": {"input_ids": (B,T), "token_type_ids": (B,T), "attention_mask": (B,T)} int64,
     "token_index": (B,W) int64     # sub-token position of token w (0 where there is no token)
     "token_mask": (B,W) float32    # 1 for real (not cut) tokens, 0 for padding
     "token_count": (B,) int64      # tokens per row (cut ones included)
     "labels": (B,W) int64          # tag ids to train on; -1 = none (padding, augmented rows, cut)
     "gold": (B,W) int64            # tag ids to score, cut tokens included (-1 = none)
     "teacher_logits": (B,W,C) float32   # when the set has soft labels (0 at padding)
     "index": (B,) int64}

Models return per-sub-token logits (B, T, C); losses and evaluation gather the token rows with
``token_index`` (so exported models keep the three standard inputs).
"""
import dataclasses
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np

from distill.data.batching import BatchPlan
from distill.text.token_encoding import encode_token_rows


@dataclass(frozen=True)
class TokenEncodedSet:
    ids: np.ndarray  # (sum T,) int64 sub-token ids of all rows
    offsets: np.ndarray  # (N+1,) int64 into ids
    first: np.ndarray  # (sum W,) int64 first sub-token position of each token (-1: cut)
    word_offsets: np.ndarray  # (N+1,) int64 into first / tags / teacher_logits
    pad_id: int = 0
    tags: Optional[np.ndarray] = None  # (sum W,) int64, -1 = no gold tag
    teacher_logits: Optional[np.ndarray] = None  # (sum W, C) float32

    def __post_init__(self):
        words = int(self.word_offsets[-1])
        for name in ("tags", "teacher_logits"):
            value = getattr(self, name)
            if value is not None and len(value) != words:
                raise ValueError(f"{len(value)} {name} rows for {words} tokens")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(N,) sub-tokens per row (what the batch width follows)."""
        return np.diff(self.offsets)

    @property
    def word_lengths(self) -> np.ndarray:
        return np.diff(self.word_offsets)

    def with_teacher_logits(self, logits: np.ndarray) -> "TokenEncodedSet":
        return dataclasses.replace(self, teacher_logits=np.asarray(logits, dtype=np.float32))

    def with_tags(self, tags: Optional[np.ndarray]) -> "TokenEncodedSet":
        return dataclasses.replace(self, tags=None if tags is None else np.asarray(tags, np.int64))

    def rows_of(self, flat: np.ndarray) -> List[np.ndarray]:
        """Split a per-token array (sum W, ...) into one array per sentence."""
        return [flat[a:b] for a, b in zip(self.word_offsets[:-1], self.word_offsets[1:])]


def _offsets(lengths: Sequence[int]) -> np.ndarray:
    out = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=out[1:])
    return out


def encode_token_examples(encoder, examples, max_len: int = 128,
                          tags: Optional[Sequence[str]] = None,
                          teacher_logits: Optional[np.ndarray] = None) -> TokenEncodedSet:
    """Encode ``distill.data.tokens.TokenExample`` rows; ``tags`` (the tag vocabulary) adds tag
    ids (-1 for unlabelled rows; tokens cut by ``max_len`` keep theirs for scoring)."""
    from distill.data.tokens import tag_ids

    ids, first = encode_token_rows(encoder, [ex.tokens for ex in examples], max_len=max_len)
    flat_first = np.array([p for row in first for p in row], dtype=np.int64)
    gold = None
    if tags is not None:
        gold = np.concatenate(tag_ids(examples, tags)) if examples else np.zeros(0, np.int64)
    return TokenEncodedSet(
        ids=np.array([i for row in ids for i in row], dtype=np.int64),
        offsets=_offsets([len(row) for row in ids]), first=flat_first,
        word_offsets=_offsets([len(row) for row in first]), pad_id=int(encoder.pad_id),
        tags=gold, teacher_logits=None if teacher_logits is None
        else np.asarray(teacher_logits, dtype=np.float32))


def concatenate(parts: Sequence[TokenEncodedSet]) -> TokenEncodedSet:
    def cat(name):
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else np.concatenate(values)

    return TokenEncodedSet(
        ids=np.concatenate([p.ids for p in parts]),
        offsets=_offsets(np.concatenate([p.lengths for p in parts])),
        first=np.concatenate([p.first for p in parts]),
        word_offsets=_offsets(np.concatenate([p.word_lengths for p in parts])),
        pad_id=parts[0].pad_id, tags=cat("tags"), teacher_logits=cat("teacher_logits"))


def make_token_batch(data: TokenEncodedSet, rows: Sequence[int]) -> Dict:
    """Pad rows ``rows`` of ``data``: the batch dict of the module docstring."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths, words = data.lengths[rows], data.word_lengths[rows]
    B, T, W = len(rows), max(int(lengths.max()), 1), max(int(words.max()), 1)
    input_ids = np.full((B, T), data.pad_id, dtype=np.int64)  # (B, T)
    mask = np.zeros((B, T), dtype=np.int64)  # (B, T)
    token_index = np.zeros((B, W), dtype=np.int64)  # (B, W)
    token_mask = np.zeros((B, W), dtype=np.float32)  # (B, W)
    labels = np.full((B, W), -1, dtype=np.int64)  # (B, W)
    gold = np.full((B, W), -1, dtype=np.int64)  # (B, W)
    teacher = None
    if data.teacher_logits is not None:
        teacher = np.zeros((B, W, data.teacher_logits.shape[1]), dtype=np.float32)  # (B, W, C)
    for b, r in enumerate(rows):
        start, n = data.offsets[r], lengths[b]
        input_ids[b, :n] = data.ids[start:start + n]
        mask[b, :n] = 1
        w0, m = data.word_offsets[r], words[b]
        first = data.first[w0:w0 + m]
        real = first >= 0
        token_index[b, :m] = np.where(real, first, 0)
        token_mask[b, :m] = real
        if data.tags is not None:
            gold[b, :m] = data.tags[w0:w0 + m]
            labels[b, :m] = np.where(real, gold[b, :m], -1)
        if teacher is not None:
            teacher[b, :m] = data.teacher_logits[w0:w0 + m] * real[:, None]
    batch = {"inputs": {"input_ids": input_ids, "token_type_ids": np.zeros_like(input_ids),
                        "attention_mask": mask},
             "token_index": token_index, "token_mask": token_mask, "token_count": words.copy(),
             "index": rows}
    if data.tags is not None:
        batch["labels"], batch["gold"] = labels, gold
    if teacher is not None:
        batch["teacher_logits"] = teacher
    return batch


class TokenBatchPlan(BatchPlan):
    """``BatchPlan`` over a ``TokenEncodedSet`` (same order rules), yielding token batches."""

    def epoch(self, epoch: int = 0) -> Iterator[Dict]:
        for rows in self.order(epoch):
            yield make_token_batch(self.data, rows)


def gather_tokens(logits: np.ndarray, token_index: np.ndarray) -> np.ndarray:
    """(B, T, C) sub-token logits -> (B, W, C) logits of each token's first sub-token."""
    return np.take_along_axis(logits, token_index[:, :, None], axis=1)
