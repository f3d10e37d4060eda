"""Soft labels: the teacher's logits for every text, cached, resumable and shardable.

    distill label --teacher runs/t/teacher --input train_aug.tsv --out runs/t/labels
    distill label ... --shard 0/2 & distill label ... --shard 1/2; distill label ... --merge
    python -m paddle.distributed.launch --gpus 0,1 -m distill label ...   # shard from the launcher

Rows are encoded, sorted by length into batches (little padding; ``--no-bucket`` keeps file
order) and run without gradients; logits are written every ``chunk_batches`` batches as an
atomic ``.npz`` chunk (row numbers + float32 logits), so an interrupted run resumes with the
rows not yet labelled. ``out_dir`` holds:

* ``key.json`` — the cache key (sha256 of teacher weights, input texts and max_len) and sizes;
* ``parts-<key>/shard-<i>-of-<n>/chunk-NNNNN.npz`` — the chunks of each shard;
* ``soft_labels.npy`` (N, C) float32 in input order + ``soft_labels.json`` (its key), once
  every shard is done. Asking again for the same key returns it without running the teacher.

A shard ``(i, n)`` takes rows ``i, i+n, i+2n, ...`` (strided, so shards get similar lengths);
without ``shard=``, ``PADDLE_TRAINER_ID`` / ``PADDLE_TRAINERS_NUM`` of a ``paddle.distributed``
launch choose it. The engine is a function ``predict(inputs) -> (B, C)`` on NumPy batches, so
the same chunking/caching serves every ``teachers.engines`` engine (``--engine auto``: ONNX
Runtime on CPU; on a GPU the fastest of dygraph (AMP) and Paddle Inference (TensorRT when
present) that passes the check, measured once per job and kept in ``engine_choice.json`` so that
every shard and every resume labels with the same engine; ``onnx-int8`` labels, and labels that
may be computed in FP16 (AMP on a GPU), get their own cache key).
"""
import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from tqdm import tqdm

from distill.data.batching import BatchPlan, EncodedSet, encode_examples, make_batch
from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json

log = logging.getLogger("teachers.soft_labels")

MERGED = "soft_labels.npy"
MERGED_META = "soft_labels.json"
KEY_FILE = "key.json"
CHOICE_FILE = "engine_choice.json"  # auto's measured choice for the job in key.json
AMP_VARIANT = "fp16-allowed"  # cache-key variant of labels that AMP may have computed
CHUNK = re.compile(r"^chunk-(\d{5})\.npz$")
SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")

Predict = Callable[[Dict[str, np.ndarray]], np.ndarray]  # inputs (B, T) -> logits (B, C)


# ------------------------------------------------------------------------------ cache key

def texts_sha256(examples) -> str:
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([ex.text_a, ex.text_b], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def cache_key(weights_hash: str, examples, max_len: int, variant: Optional[str] = None) -> str:
    """``variant`` names labels that differ from the model's own (a quantized engine)."""
    parts = {"weights": weights_hash, "texts": texts_sha256(examples), "max_len": int(max_len)}
    if variant:
        parts["variant"] = variant
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


# ------------------------------------------------------------------------------ shards

def parse_shard(text: str) -> Tuple[int, int]:
    """``"1/4"`` -> (1, 4)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match or not int(match.group(1)) < int(match.group(2)):
        raise UserError(f"--shard: expected i/n with 0 <= i < n, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_from_env(environ: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
    """The shard of this process under ``paddle.distributed.launch`` (else (0, 1))."""
    environ = os.environ if environ is None else environ
    n = int(environ.get("PADDLE_TRAINERS_NUM", "1"))
    i = int(environ.get("PADDLE_TRAINER_ID", "0"))
    if not 0 <= i < n:
        raise UserError(f"PADDLE_TRAINER_ID={i} is not below PADDLE_TRAINERS_NUM={n}")
    return i, n


def shard_rows(num_examples: int, shard: Tuple[int, int]) -> np.ndarray:
    i, n = shard
    if not 0 <= i < n:
        raise UserError(f"shard {i}/{n}: need 0 <= i < n")
    return np.arange(i, num_examples, n, dtype=np.int64)


class LabelStore:
    """The files of one labelling job in ``out_dir`` (see the module docstring)."""

    def __init__(self, out_dir, key: str):
        self.out_dir, self.key = Path(out_dir), key

    @property
    def parts(self) -> Path:
        return self.out_dir / f"parts-{self.key[:16]}"

    def shard_dir(self, shard: Tuple[int, int]) -> Path:
        return self.parts / f"shard-{shard[0]}-of-{shard[1]}"

    def cached(self, num_examples: int) -> Optional[np.ndarray]:
        """The merged array when it exists for this key, else None."""
        meta_path, path = self.out_dir / MERGED_META, self.out_dir / MERGED
        if not (meta_path.exists() and path.exists()):
            return None
        try:
            if read_json(meta_path).get("key") != self.key:
                return None
            logits = np.load(path, allow_pickle=False)
        except (UserError, ValueError, OSError, AttributeError) as err:
            log.warning("%s: unreadable (%s); the soft labels are assembled again", path, err)
            return None
        return logits if len(logits) == num_examples else None

    def chunks(self, shard: Tuple[int, int]) -> List[Path]:
        folder = self.shard_dir(shard)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if CHUNK.match(p.name))

    def done(self, shard: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
        """Row numbers and logits already written for ``shard``."""
        index, logits = [], []
        for path in self.chunks(shard):
            try:
                with np.load(path, allow_pickle=False) as chunk:
                    rows, values = np.asarray(chunk["index"]), np.asarray(chunk["logits"])
                if rows.ndim != 1 or values.ndim != 2 or len(rows) != len(values):
                    raise ValueError(f"index {rows.shape} / logits {values.shape} do not match")
            except Exception as err:  # noqa: BLE001  (truncated/corrupt zip: many types)
                log.warning("%s: unreadable chunk (%s: %s); its rows are labelled again",
                            path, type(err).__name__, err)
                path.unlink(missing_ok=True)  # the tool's own chunk, inside its own folder
                continue
            index.append(rows)
            logits.append(values)
        if not index:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        return np.concatenate(index), np.concatenate(logits)

    def write_chunk(self, shard: Tuple[int, int], number: int, index: np.ndarray,
                    logits: np.ndarray) -> Path:
        path = self.shard_dir(shard) / f"chunk-{number:05d}.npz"
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, index=index.astype(np.int64), logits=logits.astype(np.float32))
        return path


def merge_shards(out_dir, n: Optional[int] = None) -> np.ndarray:
    """Assemble ``soft_labels.npy`` (N, C) from the ``n`` shards of the job in ``key.json``
    (``n`` found from the shard folders when not given), in row order. Checked: every row of
    ``0..N-1`` labelled exactly once, by the shard it belongs to, all with the same label count;
    UserError names missing rows (and their shards), duplicates or strays."""
    out_dir = Path(out_dir)
    if not (out_dir / KEY_FILE).exists():
        raise UserError(f"{out_dir / KEY_FILE}: missing; run 'distill label' into this folder "
                        "first")
    meta = read_json(out_dir / KEY_FILE)
    store = LabelStore(out_dir, meta["key"])
    cached = store.cached(meta["num_examples"])
    if cached is not None:
        return cached
    if n is None:
        counts = {int(m.group(2)) for p in (store.parts.iterdir() if store.parts.is_dir() else [])
                  for m in [SHARD_DIR.match(p.name)] if m}
        if len(counts) != 1:
            raise UserError(f"{store.parts}: cannot tell the shard count (found {sorted(counts)}); "
                            "pass it (--shard 0/N --merge)")
        n = counts.pop()
    total = meta["num_examples"]
    out, seen = None, np.zeros(total, dtype=bool)
    for i in range(n):
        index, logits = store.done((i, n))
        if not len(index):
            continue
        where = f"{store.shard_dir((i, n))}"
        if index.min() < 0 or index.max() >= total or np.any(index % n != i):
            raise UserError(f"{where}: holds rows outside shard {i}/{n} of {total} rows")
        if len(np.unique(index)) != len(index) or seen[index].any():
            raise UserError(f"{where}: rows labelled twice (duplicate chunks); delete {store.parts} "
                            "to label again")
        if out is None:
            out = np.zeros((total, logits.shape[1]), dtype=np.float32)
        if logits.shape[1:] != out.shape[1:]:
            raise UserError(f"{where}: {logits.shape[1]} labels per row, other shards have "
                            f"{out.shape[1]}")
        out[index] = logits
        seen[index] = True
    if out is None or not seen.all():
        missing = sorted({int(r) % n for r in np.flatnonzero(~seen)})
        raise UserError(f"{out_dir}: {int((~seen).sum())} of {total} rows have no soft label yet "
                        f"(shards {', '.join(f'{i}/{n}' for i in missing)} unfinished)")
    with atomic_path(out_dir / MERGED) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, out)
    write_json(out_dir / MERGED_META, {"key": meta["key"], "shape": list(out.shape), "shards": n})
    return out


# ------------------------------------------------------------------------------ labelling

def label_encoded(predict: Predict, data: EncodedSet, store: LabelStore,
                  rows: np.ndarray, batch_size: int = 64, bucket: bool = True,
                  chunk_batches: int = 16, progress: bool = True,
                  on_chunk: Optional[Callable[[int, int], None]] = None,
                  shard: Tuple[int, int] = (0, 1)) -> Tuple[np.ndarray, np.ndarray]:
    """Label rows ``rows`` (global row numbers; ``data`` holds exactly them, in that order) that
    have no chunk yet; returns (index, logits) of everything done for ``shard``.

    ``on_chunk(chunk_number, rows_done)`` runs after each chunk is on disk.
    """
    done_index, _ = store.done(shard)
    todo = np.flatnonzero(~np.isin(rows, done_index))  # positions in data
    chunks = store.chunks(shard)
    number = int(CHUNK.match(chunks[-1].name).group(1)) + 1 if chunks else 0
    if len(todo):
        plan = BatchPlan(data.subset(todo), batch_size, shuffle=False, bucket=bucket)
        bar = tqdm(total=len(todo), disable=not progress, unit="text",
                   desc=f"soft labels {shard[0]}/{shard[1]}" if shard[1] > 1 else "soft labels")
        pending_index, pending_logits, written = [], [], len(done_index)
        batches = list(plan.order())
        for b, local in enumerate(batches):
            batch = make_batch(plan.data, local)
            logits = np.asarray(predict(batch["inputs"]), dtype=np.float32)  # (B, C)
            pending_index.append(rows[todo[local]])
            pending_logits.append(logits)
            bar.update(len(local))
            if len(pending_index) == chunk_batches or b == len(batches) - 1:
                index = np.concatenate(pending_index)
                store.write_chunk(shard, number, index, np.concatenate(pending_logits))
                written += len(index)
                if on_chunk is not None:
                    on_chunk(number, written)
                number += 1
                pending_index, pending_logits = [], []
        bar.close()
    return store.done(shard)


def dygraph_predict(model, device: str = "auto") -> Predict:
    """A ``predict`` function running a Paddle model in eval mode without gradients."""
    import paddle

    from distill.train.device import select_device
    from distill.train.trainer import eval_mode, to_tensors

    place = select_device(device)
    if place.startswith("gpu"):
        model.to(device=place)

    def predict(inputs: Dict[str, np.ndarray]) -> np.ndarray:
        with eval_mode(model):
            return model(**to_tensors(inputs))["logits"].astype(paddle.float32).numpy()

    return predict


def _options(device: str, threads, engine_cache, sessions: int, amp: bool, amp_level: str,
             tensorrt, batch_size: int, max_len: int):
    from teachers import engines as eng

    return eng.EngineOptions(threads=threads, device=device, cache_root=engine_cache,
                             sessions=sessions, amp=amp, amp_level=amp_level, tensorrt=tensorrt,
                             max_batch=batch_size, max_len=max_len)


def label_variant(name: str, options, measured: bool) -> Optional[str]:
    """The cache-key variant of labels from engine ``name`` (resolved) with ``options``: the
    INT8 settings of a quantized engine; ``AMP_VARIANT`` when the labels may be FP16 (AMP on a
    GPU for dygraph / Paddle Inference, or an ``auto`` that measures candidates there)."""
    from distill.train.device import select_device
    from teachers import engines as eng

    if name in eng.QUANTIZED:
        return options.int8_variant()
    fp16 = options.mixed_precision(select_device(options.device))
    if fp16 and (measured or name in ("dygraph", "paddle-inference")):
        return AMP_VARIANT
    return None


def _read_choice(path: Path) -> dict:
    """The recorded choice, or {} when there is none or it is unreadable (measured again)."""
    if not path.exists():
        return {}
    try:
        record = read_json(path)
    except UserError as err:
        log.warning("%s", err)
        return {}
    return record if isinstance(record, dict) else {}


def _claim(path: Path, record: dict) -> dict:
    """Write ``record`` to ``path`` unless another process already did (hard link: the first
    writer wins); returns what ``path`` holds. A record for another key is replaced."""
    if path.exists() and _read_choice(path).get("key") != record["key"]:
        path.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    write_json(tmp, record)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_choice(path)


def engine_for_job(teacher, engine: str, store: "LabelStore", sample, options, weights: str,
                   candidates=None):
    """``(predict, report)`` for labelling the job ``store`` with ``engine`` on ``sample``
    (padded batches of its rows). An ``auto`` that measures (a GPU, or ``candidates`` given) is
    measured once per job: the first process records its choice in ``engine_choice.json`` and
    every other shard, and every resume, builds the recorded engine (measured again only if that
    engine no longer builds, e.g. on another machine)."""
    from teachers import engines as eng

    todo = eng.auto_candidates(engine, options, candidates)
    if not todo:
        return eng.labelling_engine(engine, teacher, sample, options, weights)
    path = store.out_dir / CHOICE_FILE
    record = _read_choice(path)
    if record.get("key") == store.key and record.get("candidate"):
        try:
            chosen = eng.Candidate(**record["candidate"])
            predict, report = eng.labelling_engine(chosen.engine, teacher, sample,
                                                   chosen.options(options), weights)
            report.update(requested=engine, choice=record["choice"], candidate=record["candidate"],
                          choice_reused=True)
            return predict, report
        except (eng.EngineError, TypeError) as err:  # TypeError: a record of another format
            log.warning("%s: the recorded engine %s does not build here (%s); measuring again",
                        path, record["candidate"], err)
            path.unlink(missing_ok=True)
    predict, report = eng.labelling_engine(engine, teacher, sample, options, weights, todo)
    kept = _claim(path, {"key": store.key, "candidate": report["candidate"],
                         "choice": report["choice"]})
    if kept.get("candidate") not in (None, report["candidate"]):  # another shard measured first
        return engine_for_job(teacher, engine, store, sample, options, weights, candidates)
    return predict, report


def soft_labels(teacher, examples, out_dir, batch_size: int = 64, max_len: Optional[int] = None,
                shard: Optional[Tuple[int, int]] = None, progress: bool = True,
                bucket: bool = True, chunk_batches: int = 16, device: str = "auto",
                on_chunk: Optional[Callable[[int, int], None]] = None, engine: str = "auto",
                threads: Optional[int] = None, engine_cache=None, sessions: int = 1,
                merge: bool = True, amp: bool = True, amp_level: str = "O1",
                tensorrt: Optional[bool] = None, candidates=None) -> np.ndarray:
    """The teacher's logits (N, C) float32 for ``examples``, in input order.

    With a shard ``(i, n)`` (given, or from the distributed launcher), only that shard's rows
    are labelled and returned (rows ``i, i+n, ...``, in that order); the shard that completes the
    set merges ``soft_labels.npy``. ``engine``: ``teachers.engines`` name (``auto`` = ONNX Runtime
    on CPU, measured on GPU: ``engine_for_job``); ``threads``, ``sessions`` (ONNX engines: row
    blocks run in parallel sessions), ``engine_cache``, ``amp`` / ``amp_level`` (mixed precision,
    GPU only) and ``tensorrt`` go to its ``EngineOptions``; ``candidates`` (engine names) makes
    ``auto`` measure those instead (how the choice is tested on CPU). The engine used, its
    precision, its check against dygraph and ``auto``'s timings are written to
    ``out_dir/engine.json``. ``merge=False``: never merge here (a data-parallel caller merges
    once, on rank 0, after a barrier); the shard's rows are returned.
    """
    from teachers import engines as eng

    if not examples:
        raise UserError("no texts to label")
    max_len = int(max_len or teacher.max_len)
    shard = shard or shard_from_env()
    options = _options(device, threads, engine_cache, sessions, amp, amp_level, tensorrt,
                       batch_size, max_len)
    name = eng.resolve_name(engine, device)
    weights = eng.weights_sha256(teacher.model)
    measured = bool(eng.auto_candidates(engine, options, candidates))
    variant = label_variant(name, options, measured)
    key = cache_key(weights, examples, max_len, variant)
    store = LabelStore(out_dir, key)
    cached = store.cached(len(examples))
    if cached is not None:
        log.info("%s: cache hit (%s)", out_dir, key[:16])
        return cached if shard[1] == 1 else cached[shard_rows(len(examples), shard)]
    write_json(store.out_dir / KEY_FILE, {"key": key, "num_examples": len(examples),
                                          "max_len": max_len, "teacher": teacher.name,
                                          "labels": list(teacher.labels or [])})
    rows = shard_rows(len(examples), shard)
    done_index, _ = store.done(shard)
    todo_rows = rows[~np.isin(rows, done_index)]
    data = encode_examples(teacher.tokenizer, [examples[r] for r in todo_rows], max_len=max_len)
    predict = dygraph_predict(teacher.model, device)  # nothing left to label: no engine needed
    if len(data):
        size = batch_size if measured else (256 if variant and name in eng.QUANTIZED
                                            else eng.DYGRAPH_CHECK_ROWS)
        sample = [make_batch(data, np.arange(min(len(data), size)))["inputs"]]
        predict, report = engine_for_job(teacher, engine, store, sample, options, weights,
                                         candidates)
        if shard[0] == 0:  # one writer (every shard's engine is the same)
            write_json(store.out_dir / "engine.json", report)
        if "check" in report:
            log.info("engine %s (%s) vs %s on %d rows: max abs diff %.3g, argmax agreement %.4f",
                     report["engine"], report.get("precision"), report["check"]["reference"],
                     report["check"]["rows"], report["check"]["max_abs_diff"],
                     report["check"]["argmax_agreement"])
    index, logits = label_encoded(predict, data, store, todo_rows,
                                  batch_size=batch_size, bucket=bucket,
                                  chunk_batches=chunk_batches, progress=progress,
                                  on_chunk=on_chunk, shard=shard)
    order = np.argsort(index)
    if not merge:
        if not np.array_equal(index[order], rows):
            raise UserError(f"{store.shard_dir(shard)}: the shard's chunks do not cover its rows")
        return logits[order]
    try:
        merged = merge_shards(out_dir, shard[1])
    except UserError:  # other shards still running: return this shard's rows
        if not np.array_equal(index[order], rows):
            raise
        return logits[order]
    return merged if shard[1] == 1 else merged[rows]


def prepare_engine(teacher, engine: str = "auto", device: str = "auto",
                   threads: Optional[int] = None, engine_cache=None, sessions: int = 1,
                   examples=None, out_dir=None, batch_size: int = 64,
                   max_len: Optional[int] = None, amp: bool = True, amp_level: str = "O1",
                   tensorrt: Optional[bool] = None, candidates=None) -> str:
    """Export (into the engine cache) the files engine ``engine`` needs, so that processes started
    afterwards only read them (one process exports; a data-parallel run calls this on rank 0
    before its barrier). An ``auto`` that measures (GPU) is measured here when ``examples`` and
    ``out_dir`` are given (on the first ``batch_size`` rows; the choice is recorded for
    ``soft_labels`` on every rank). Returns the resolved engine name; dygraph needs nothing."""
    from teachers import engines as eng

    max_len = int(max_len or teacher.max_len)
    options = _options(device, threads, engine_cache, sessions, amp, amp_level, tensorrt,
                       batch_size, max_len)
    name = eng.resolve_name(engine, device)
    if eng.auto_candidates(engine, options, candidates):
        if examples and out_dir is not None:
            weights = eng.weights_sha256(teacher.model)
            key = cache_key(weights, examples, max_len, label_variant(name, options, True))
            store = LabelStore(out_dir, key)
            if store.cached(len(examples)) is None:
                data = encode_examples(teacher.tokenizer, list(examples[:batch_size]),
                                       max_len=max_len)
                sample = [make_batch(data, np.arange(len(data)))["inputs"]]
                _, report = engine_for_job(teacher, engine, store, sample, options, weights,
                                           candidates)
                name = report["engine"]
        return name
    if name != "dygraph":
        try:
            eng.build_engine(name, teacher, options, eng.weights_sha256(teacher.model))
        except eng.EngineError as err:  # `auto` falls back to dygraph later, in every process
            if engine != "auto":
                raise
            log.warning("%s", err)
    return name


# ------------------------------------------------------------------------------ throughput

def measure_throughput(teacher, examples, batch_size: int = 64, max_len: Optional[int] = None,
                       bucket: bool = True, device: str = "auto") -> Dict[str, float]:
    """Sentences per second of the dygraph teacher over ``examples`` (forward passes only;
    encoding excluded), with or without length bucketing, plus the padding share."""
    max_len = int(max_len or teacher.max_len)
    data = encode_examples(teacher.tokenizer, examples, max_len=max_len)
    plan = BatchPlan(data, batch_size, shuffle=False, bucket=bucket)
    predict = dygraph_predict(teacher.model, device)
    batches = list(plan)
    start = time.perf_counter()
    for batch in batches:
        predict(batch["inputs"])
    seconds = time.perf_counter() - start
    return {"bucket": bucket, "sentences": len(data), "seconds": round(seconds, 3),
            "sentences_per_s": round(len(data) / seconds, 2),
            "padding_fraction": round(plan.padding_fraction(), 4),
            "batch_size": batch_size, "max_len": max_len}


def compare_bucketing(teacher, examples, batch_size: int = 64, max_len: Optional[int] = None,
                      device: str = "auto") -> Dict[str, Dict]:
    """``measure_throughput`` with and without length bucketing, in the same process."""
    plain = measure_throughput(teacher, examples, batch_size, max_len, bucket=False, device=device)
    bucketed = measure_throughput(teacher, examples, batch_size, max_len, bucket=True,
                                  device=device)
    return {"plain": plain, "bucketed": bucketed,
            "speedup": round(bucketed["sentences_per_s"] / plain["sentences_per_s"], 3)}


# ------------------------------------------------------------------------------ CLI
