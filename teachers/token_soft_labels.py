"""Soft labels of token tasks: the teacher's logits for every token, compact, cached and resumable.

    soft = token_soft_labels(teacher, task.train + augmented, "runs/x/labels_train",
                             storage="float16")          # list of (L_i, C) float32 arrays

Each token gets the logits of its first sub-token (``distill.text.token_encoding``), so the labels
are aligned to tokens, not to the teacher's sub-tokens: any student reads them (a character
BiLSTM, or a tiny transformer on the teacher's tokenizer). Storage (``storage=``):

* ``float32`` — exact, 4·C bytes a token;
* ``float16`` — 2·C bytes a token; logits rounded to float16 (relative error <= 2^-11);
* ``topk`` — the ``top_k`` largest logits (float16) with their tag ids (uint8/uint16), and the
  rest summarised by one float16 value, their log-mean-exp: decoded, every other tag gets that
  value, so the top-k probabilities and the total probability of the rest are kept (to float16
  precision) and only how the rest is spread among its tags is lost. 3k + 2 bytes a token
  (uint8 ids up to 256 tags).

Rows are labelled in length-sorted batches (dygraph, eval mode, no gradients) and written every
``chunk_batches`` batches as an atomic ``.npz`` chunk, so an interrupted run resumes with the
rows not yet labelled. ``out_dir`` holds ``key.json`` (the cache key: sha256 of the teacher
weights, the tokens, ``max_len`` and the storage), ``parts-<key>/chunk-NNNNN.npz`` and, once
every row is done, ``soft_labels.npz`` + ``soft_labels.json``; asking again for the same key
returns them without running the teacher. Labelling runs on Paddle dygraph (the ONNX Runtime
engines of ``teachers.engines`` serve sentence labels only so far).
"""
import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from tqdm import tqdm

from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json

log = logging.getLogger("teachers.token_soft_labels")

STORAGES = ("float32", "float16", "topk")
MERGED, MERGED_META, KEY_FILE = "soft_labels.npz", "soft_labels.json", "key.json"
CHUNK = re.compile(r"^chunk-(\d{5})\.npz$")


# ------------------------------------------------------------------------------ compact storage

def pack(logits: np.ndarray, storage: str, top_k: int = 3) -> Dict[str, np.ndarray]:
    """(N, C) float logits -> the arrays of ``storage`` (see the module docstring)."""
    logits = np.asarray(logits, dtype=np.float32)
    if storage == "float32":
        return {"logits": logits}
    if storage == "float16":
        return {"logits": logits.astype(np.float16)}
    if storage != "topk":
        raise UserError(f"soft-label storage '{storage}': choose one of {', '.join(STORAGES)}")
    n, c = logits.shape
    k = min(int(top_k), c)
    if k < 1:
        raise UserError(f"soft-label top_k must be >= 1, got {top_k}")
    order = np.argsort(-logits, axis=1, kind="stable")[:, :k]  # (N, k)
    values = np.take_along_axis(logits, order, axis=1)  # (N, k)
    rest = np.full(n, -1e4, dtype=np.float32)  # no other tag: probability 0
    if k < c:
        others = logits.copy()
        np.put_along_axis(others, order, -np.inf, axis=1)
        top = others.max(axis=1, keepdims=True)  # (N, 1)
        rest = (top[:, 0] + np.log(np.exp(others - top).sum(axis=1) / (c - k))).astype(np.float32)
    ids = order.astype(np.uint8 if c <= 256 else np.uint16)
    return {"values": values.astype(np.float16), "ids": ids, "rest": rest.astype(np.float16),
            "num_labels": np.array(c, dtype=np.int64)}


def unpack(arrays: Dict[str, np.ndarray]) -> np.ndarray:
    """The (N, C) float32 logits of ``pack``'s arrays."""
    if "logits" in arrays:
        return np.asarray(arrays["logits"], dtype=np.float32)
    c = int(arrays["num_labels"])
    values, ids = arrays["values"].astype(np.float32), arrays["ids"].astype(np.int64)
    out = np.repeat(arrays["rest"].astype(np.float32)[:, None], c, axis=1)  # (N, C)
    np.put_along_axis(out, ids, values, axis=1)
    return out


def packed_bytes(arrays: Dict[str, np.ndarray]) -> int:
    return int(sum(a.nbytes for a in arrays.values()))


# ------------------------------------------------------------------------------ cache

def cache_key(weights_hash: str, examples, max_len: int, storage: str, top_k: int) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps(list(ex.tokens), ensure_ascii=False).encode("utf-8") + b"\n")
    parts = {"weights": weights_hash, "tokens": h.hexdigest(), "max_len": int(max_len),
             "storage": storage, "top_k": int(top_k) if storage == "topk" else None}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _split(flat: np.ndarray, lengths: np.ndarray) -> List[np.ndarray]:
    ends = np.cumsum(lengths)
    return [flat[e - n:e] for n, e in zip(lengths, ends)]


class TokenLabelStore:
    """The files of one token-labelling job in ``out_dir``."""

    def __init__(self, out_dir, key: str):
        self.out_dir, self.key = Path(out_dir), key

    @property
    def parts(self) -> Path:
        return self.out_dir / f"parts-{self.key[:16]}"

    def cached(self, num_examples: int) -> Optional[List[np.ndarray]]:
        meta_path, path = self.out_dir / MERGED_META, self.out_dir / MERGED
        if not (meta_path.exists() and path.exists()) or read_json(meta_path).get("key") != self.key:
            return None
        with np.load(path) as data:
            arrays = {k: data[k] for k in data.files}
        lengths = arrays.pop("lengths")
        if len(lengths) != num_examples:
            return None
        return _split(unpack(arrays), lengths)

    def chunks(self) -> List[Path]:
        if not self.parts.is_dir():
            return []
        return sorted(p for p in self.parts.iterdir() if CHUNK.match(p.name))

    def done(self) -> Dict[int, np.ndarray]:
        """Row number -> (L, C) float32 logits of the rows already written."""
        out: Dict[int, np.ndarray] = {}
        for path in self.chunks():
            with np.load(path) as data:
                arrays = {k: data[k] for k in data.files}
            index, lengths = arrays.pop("index"), arrays.pop("lengths")
            for row, logits in zip(index, _split(unpack(arrays), lengths)):
                out[int(row)] = logits
        return out

    def write_chunk(self, number: int, index: np.ndarray, rows: Sequence[np.ndarray],
                    storage: str, top_k: int) -> None:
        arrays = pack(np.concatenate(rows), storage, top_k)
        arrays.update(index=np.asarray(index, np.int64),
                      lengths=np.array([len(r) for r in rows], np.int64))
        with atomic_path(self.parts / f"chunk-{number:05d}.npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    def merge(self, rows: List[np.ndarray], storage: str, top_k: int) -> Dict[str, int]:
        flat = np.concatenate(rows) if rows else np.zeros((0, 1), np.float32)
        arrays = pack(flat, storage, top_k)
        stored = packed_bytes(arrays)
        arrays["lengths"] = np.array([len(r) for r in rows], np.int64)
        with atomic_path(self.out_dir / MERGED) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        info = {"key": self.key, "rows": len(rows), "tokens": int(len(flat)),
                "storage": storage, "top_k": top_k if storage == "topk" else None,
                "stored_bytes": stored, "float32_bytes": int(flat.size * 4),
                "file_bytes": (self.out_dir / MERGED).stat().st_size}
        write_json(self.out_dir / MERGED_META, info)
        return info


# ------------------------------------------------------------------------------ labelling

def token_soft_labels(teacher, examples, out_dir, batch_size: int = 64,
                      max_len: Optional[int] = None, storage: str = "float16", top_k: int = 3,
                      chunk_batches: int = 16, progress: bool = True, device: str = "auto",
                      on_chunk: Optional[Callable[[int, int], None]] = None) -> List[np.ndarray]:
    """Per sentence of ``examples`` (``TokenExample``), the teacher's (L, C) float32 logits of
    each token's first sub-token (0 for tokens cut by ``max_len``), as stored (``storage``
    rounding included), in input order. ``teacher.model`` is a token model
    (``teachers.token_model``). ``on_chunk(number, rows_done)`` runs after each chunk."""
    from distill.data.token_batching import TokenBatchPlan, encode_token_examples, make_token_batch
    from teachers.engines import weights_sha256
    from teachers.soft_labels import dygraph_predict

    if not examples:
        raise UserError("no sentences to label")
    if storage not in STORAGES:
        raise UserError(f"soft-label storage '{storage}': choose one of {', '.join(STORAGES)}")
    max_len = int(max_len or teacher.max_len)
    key = cache_key(weights_sha256(teacher.model), examples, max_len, storage, top_k)
    store = TokenLabelStore(out_dir, key)
    cached = store.cached(len(examples))
    if cached is not None:
        log.info("%s: cache hit (%s)", out_dir, key[:16])
        return cached
    write_json(store.out_dir / KEY_FILE, {"key": key, "num_examples": len(examples),
                                          "max_len": max_len, "teacher": teacher.name,
                                          "tags": list(teacher.labels), "storage": storage})
    done = store.done()
    todo = np.array([i for i in range(len(examples)) if i not in done], dtype=np.int64)
    chunks = store.chunks()
    number = int(CHUNK.match(chunks[-1].name).group(1)) + 1 if chunks else 0
    if len(todo):
        predict = dygraph_predict(teacher.model, device)
        data = encode_token_examples(teacher.tokenizer, [examples[i] for i in todo], max_len)
        plan = TokenBatchPlan(data, batch_size, shuffle=False, bucket=True)
        batches = plan.order()
        bar = tqdm(total=len(todo), disable=not progress, unit="sentence", desc="token soft labels")
        pending_index: List[int] = []
        pending: List[np.ndarray] = []
        written = len(done)
        for b, local in enumerate(batches):
            batch = make_token_batch(data, local)
            logits = np.asarray(predict(batch["inputs"]), dtype=np.float32)  # (B, T, C)
            rows = np.take_along_axis(logits, batch["token_index"][:, :, None], axis=1)  # (B, W, C)
            for j, r in enumerate(local):
                n = int(batch["token_count"][j])
                pending.append(rows[j, :n] * batch["token_mask"][j, :n, None])
                pending_index.append(int(todo[r]))
            bar.update(len(local))
            if b % chunk_batches == chunk_batches - 1 or b == len(batches) - 1:
                store.write_chunk(number, np.array(pending_index), pending, storage, top_k)
                written += len(pending_index)
                if on_chunk is not None:
                    on_chunk(number, written)
                number += 1
                pending_index, pending = [], []
        bar.close()
        done = store.done()
    rows = [done[i] for i in range(len(examples))]
    info = store.merge(rows, storage, top_k)
    log.info("%s: %d tokens, %s: %.1f MB (float32 %.1f MB)", out_dir, info["tokens"], storage,
             info["stored_bytes"] / 1e6, info["float32_bytes"] / 1e6)
    return store.cached(len(examples))


def load_token_soft_labels(out_dir) -> List[np.ndarray]:
    """The merged soft labels of a finished job in ``out_dir`` (list of (L, C) float32)."""
    out_dir = Path(out_dir)
    if not (out_dir / MERGED).is_file() or not (out_dir / MERGED_META).is_file():
        raise UserError(f"{out_dir}: no finished token soft labels ({MERGED}); label first")
    with np.load(out_dir / MERGED) as data:
        arrays = {k: data[k] for k in data.files}
    return _split(unpack(arrays), arrays.pop("lengths"))
