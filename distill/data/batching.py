"""Encoded examples -> padded batches (NumPy only, no Paddle: ONNX labelling reuses it).

Texts are encoded once (``encode_examples`` / ``encode_texts``) into an ``EncodedSet`` that
keeps every row unpadded (one flat token array + offsets, so a 200k-row augmented set stays
small). A ``BatchPlan`` then cuts it into batches, each padded to its own longest row:

* training (``shuffle=True``): rows are shuffled, split into pools of ``pool_batches`` batches,
  sorted by length inside each pool (length bucketing: little padding, still random), cut into
  batches, and the batches shuffled. The order depends only on ``(seed, epoch)``, so a resumed
  run sees exactly the batches the interrupted one would have seen.
* prediction (``shuffle=False``): rows sorted by length (``bucket=True``) or kept in file order
  (``bucket=False``); every batch carries ``index`` so callers put results back in input order.

A batch is the dict of the trainer contract::

    {"inputs": {"input_ids": (B,T) int64, "token_type_ids": (B,T) int64,
                "attention_mask": (B,T) int64},
     "labels": (B,) int64,              # when the set has labels
     "teacher_logits": (B,C) float32,   # when the set has soft labels
     "index": (B,) int64}               # row numbers in the EncodedSet

Example::

    data = encode_examples(teacher.tokenizer, task.train, max_len=128, labels=task.labels)
    plan = BatchPlan(data, batch_size=32, shuffle=True, seed=1)
    for batch in plan.epoch(0): ...
"""
import dataclasses
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class EncodedSet:
    """N encoded rows without padding. Row ``i`` is ``ids[offsets[i]:offsets[i+1]]``."""

    ids: np.ndarray  # (sum L,) int64 token ids of all rows, concatenated
    type_ids: np.ndarray  # (sum L,) int64 segment ids
    offsets: np.ndarray  # (N+1,) int64
    pad_id: int = 0
    labels: Optional[np.ndarray] = None  # (N,) int64
    teacher_logits: Optional[np.ndarray] = None  # (N, C) float32

    def __post_init__(self):
        n = len(self)
        if self.labels is not None and len(self.labels) != n:
            raise ValueError(f"{len(self.labels)} labels for {n} rows")
        if self.teacher_logits is not None and len(self.teacher_logits) != n:
            raise ValueError(f"{len(self.teacher_logits)} teacher logits for {n} rows")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """(N,) number of real tokens per row."""
        return np.diff(self.offsets)

    def with_teacher_logits(self, logits: np.ndarray) -> "EncodedSet":
        """The same rows carrying soft labels (N, C) float32 (for distillation)."""
        return dataclasses.replace(self, teacher_logits=np.asarray(logits, dtype=np.float32))

    def subset(self, rows: Sequence[int]) -> "EncodedSet":
        """The rows ``rows`` (in that order) as a new set."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # output token j of row k comes from self.offsets[rows[k]] + (j - offsets[k])
        take = np.arange(offsets[-1]) + np.repeat(self.offsets[rows] - offsets[:-1], lengths)
        return EncodedSet(
            ids=self.ids[take], type_ids=self.type_ids[take], offsets=offsets, pad_id=self.pad_id,
            labels=None if self.labels is None else self.labels[rows],
            teacher_logits=None if self.teacher_logits is None else self.teacher_logits[rows])

    @classmethod
    def from_padded(cls, input_ids: np.ndarray, attention_mask: np.ndarray,
                    token_type_ids: Optional[np.ndarray] = None, pad_id: int = 0,
                    labels: Optional[np.ndarray] = None,
                    teacher_logits: Optional[np.ndarray] = None) -> "EncodedSet":
        """From right-padded (N, T) arrays as an encoder returns them."""
        input_ids = np.asarray(input_ids, dtype=np.int64)  # (N, T)
        mask = np.asarray(attention_mask).astype(bool)  # (N, T)
        if token_type_ids is None:
            token_type_ids = np.zeros_like(input_ids)
        lengths = mask.sum(axis=1)
        if not np.array_equal(mask, np.arange(mask.shape[1])[None, :] < lengths[:, None]):
            raise ValueError("attention_mask must be right-padded (ones, then zeros)")
        offsets = np.zeros(len(input_ids) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(ids=input_ids[mask], type_ids=np.asarray(token_type_ids, np.int64)[mask],
                   offsets=offsets, pad_id=int(pad_id),
                   labels=None if labels is None else np.asarray(labels, dtype=np.int64),
                   teacher_logits=None if teacher_logits is None
                   else np.asarray(teacher_logits, dtype=np.float32))

    @classmethod
    def concatenate(cls, parts: Sequence["EncodedSet"]) -> "EncodedSet":
        if not parts:
            raise ValueError("nothing to concatenate")
        offsets = [np.zeros(1, dtype=np.int64)]
        start = 0
        for p in parts:
            offsets.append(p.offsets[1:] + start)
            start += int(p.offsets[-1])

        def cat(name):
            values = [getattr(p, name) for p in parts]
            if any(v is None for v in values):
                return None
            return np.concatenate(values)

        return cls(ids=np.concatenate([p.ids for p in parts]),
                   type_ids=np.concatenate([p.type_ids for p in parts]),
                   offsets=np.concatenate(offsets), pad_id=parts[0].pad_id,
                   labels=cat("labels"), teacher_logits=cat("teacher_logits"))


def encode_texts(encoder, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
                 max_len: int = 128, labels: Optional[np.ndarray] = None,
                 teacher_logits: Optional[np.ndarray] = None,
                 chunk_size: int = 1024) -> EncodedSet:
    """Encode texts with any encoder of the contract (``encode(texts_a, texts_b, max_len)``)."""
    parts = []
    for start in range(0, len(texts_a), chunk_size):
        stop = start + chunk_size
        enc = encoder.encode(list(texts_a[start:stop]),
                             None if texts_b is None else list(texts_b[start:stop]),
                             max_len=max_len)
        parts.append(EncodedSet.from_padded(enc["input_ids"], enc["attention_mask"],
                                            enc.get("token_type_ids"), pad_id=encoder.pad_id))
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        data = EncodedSet(empty, empty, np.zeros(1, dtype=np.int64), pad_id=encoder.pad_id)
    else:
        data = EncodedSet.concatenate(parts)
    return dataclasses.replace(
        data, labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        teacher_logits=None if teacher_logits is None
        else np.asarray(teacher_logits, dtype=np.float32))


def encode_examples(encoder, examples, max_len: int = 128,
                    labels: Optional[Sequence[str]] = None,
                    teacher_logits: Optional[np.ndarray] = None) -> EncodedSet:
    """Encode ``distill.data.examples.Example`` rows; ``labels`` (the label vocabulary) adds label ids."""
    from distill.data.examples import label_ids

    texts_a = [ex.text_a for ex in examples]
    texts_b = None
    if any(ex.text_b is not None for ex in examples):
        texts_b = [ex.text_b or "" for ex in examples]
    ids = None if labels is None else label_ids(examples, labels)
    return encode_texts(encoder, texts_a, texts_b, max_len=max_len, labels=ids,
                        teacher_logits=teacher_logits)


def make_batch(data: EncodedSet, rows: Sequence[int]) -> Dict:
    """Pad rows ``rows`` of ``data`` to their longest one; returns the contract batch dict."""
    rows = np.asarray(rows, dtype=np.int64)
    lengths = data.lengths[rows]
    width = max(int(lengths.max()), 1) if len(rows) else 1
    input_ids = np.full((len(rows), width), data.pad_id, dtype=np.int64)  # (B, T)
    type_ids = np.zeros((len(rows), width), dtype=np.int64)  # (B, T)
    mask = np.zeros((len(rows), width), dtype=np.int64)  # (B, T)
    for b, (r, n) in enumerate(zip(rows, lengths)):
        start = data.offsets[r]
        input_ids[b, :n] = data.ids[start:start + n]
        type_ids[b, :n] = data.type_ids[start:start + n]
        mask[b, :n] = 1
    batch = {"inputs": {"input_ids": input_ids, "token_type_ids": type_ids,
                        "attention_mask": mask},
             "index": rows}
    if data.labels is not None:
        batch["labels"] = data.labels[rows]
    if data.teacher_logits is not None:
        batch["teacher_logits"] = data.teacher_logits[rows]
    return batch


class BatchPlan:
    """Re-iterable batches over an ``EncodedSet``; ``epoch(e)`` gives epoch ``e``'s order.

    ``shuffle`` for training (seeded per epoch), ``bucket`` to group similar lengths,
    ``pool_batches`` batches per sorting pool when shuffling, ``drop_last`` to drop a short tail.
    """

    def __init__(self, data: EncodedSet, batch_size: int, shuffle: bool = False,
                 bucket: bool = True, seed: int = 0, pool_batches: int = 50,
                 drop_last: bool = False):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.shuffle, self.bucket = data, batch_size, shuffle, bucket
        self.seed, self.pool_batches, self.drop_last = seed, max(1, pool_batches), drop_last

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Dict]:
        return self.epoch(0)

    def order(self, epoch: int = 0) -> List[np.ndarray]:
        """The row numbers of each batch of epoch ``epoch``."""
        n, size = len(self.data), self.batch_size
        lengths = self.data.lengths
        rng = np.random.default_rng([self.seed, epoch])
        if not self.shuffle:
            rows = np.argsort(lengths, kind="stable") if self.bucket else np.arange(n)
        else:
            rows = rng.permutation(n)
            if self.bucket and n:
                pool = size * self.pool_batches
                rows = np.concatenate([p[np.argsort(lengths[p], kind="stable")]
                                       for p in np.split(rows, range(pool, n, pool))])
        batches = [rows[i:i + size] for i in range(0, n, size)]
        if self.drop_last and batches and len(batches[-1]) < size:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def epoch(self, epoch: int = 0) -> Iterator[Dict]:
        for rows in self.order(epoch):
            yield make_batch(self.data, rows)

    def padding_fraction(self, epoch: int = 0) -> float:
        """Share of padded cells in epoch ``epoch`` (0 = no padding); shows what bucketing saves."""
        lengths = self.data.lengths
        real = padded = 0
        for rows in self.order(epoch):
            real += int(lengths[rows].sum())
            padded += int(lengths[rows].max()) * len(rows)
        return 1.0 - real / padded if padded else 0.0


def restore_order(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Scatter ``values`` (rows in batch order, with their row numbers ``index``) to (n, ...)."""
    out = np.zeros((n,) + values.shape[1:], dtype=values.dtype)
    seen = np.zeros(n, dtype=bool)
    out[index] = values
    seen[index] = True
    if not seen.all():
        raise ValueError(f"{int((~seen).sum())} of {n} rows have no value")
    return out
