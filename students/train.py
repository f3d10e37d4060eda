"""Train a student, plain (gold labels on the training set) or distilled (teacher soft labels over the
training set plus augmented rows), with the one trainer of ``distill.train.trainer``.

    # plain baseline
    distill train --kind cnn --train train.tsv --dev dev.tsv --test test.tsv --out runs/cnn_plain
    # distilled: soft labels of train.tsv rows then of train_aug.tsv rows (distill label outputs)
    distill train --kind cnn --train train.tsv --dev dev.tsv --test test.tsv --out runs/cnn_kd \\
        --augmented train_aug.tsv --soft-labels runs/labels_train runs/labels_aug \\
        --loss soft_ce:0.9,hard_ce:0.1 --temperature 2
    # tiny transformer from every k-th teacher layer, with TinyBERT hidden/attention losses (online)
    distill train --kind tiny --teacher runs/teacher --config '{"num_layers": 3}' ... \\
        --soft-labels logits.npy --loss kl:1,hidden_mse:1,attention:1

``OUT`` gets ``student/`` (the saved student: ``load_student``), ``train/`` (the trainer's
metrics.jsonl, best/, last/ — re-running the same command resumes) and ``result.json``.
Python::

    from students.train import train_student
    result = train_student("bow", {}, task, "runs/bow_kd", TrainConfig(epochs=5, lr=1e-3),
                           teacher_logits=logits, augmented=aug_rows, loss="soft_ce:1")
    result["test"]["accuracy"]
"""
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from distill.core.errors import UserError

DEFAULT_LOSS = {"plain": "hard_ce:1", "distilled": "soft_ce:1"}
# Per-kind TrainConfig defaults (the trainer's own defaults suit transformers)
TRAIN_DEFAULTS = {
    "words": {"epochs": 10, "batch_size": 64, "lr": 2e-3, "weight_decay": 0.0,
              "warmup_ratio": 0.0, "optimizer": "adam", "max_grad_norm": 5.0, "patience": 3},
    "tiny": {"epochs": 4, "batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.1},
}


@dataclass
class VocabConfig:
    """How BOW/CNN/RNN students get their inputs: a word vocabulary (``words``) built from the
    training + augmented texts, or the teacher's sub-word tokenizer (``teacher``)."""

    source: str = "words"  # words | teacher
    language: str = "auto"  # auto | zh | en
    min_freq: int = 1
    max_size: Optional[int] = 50000

    def __post_init__(self):
        if self.source not in ("words", "teacher"):
            raise UserError(f"vocab config, field 'source': use 'words' or 'teacher', got {self.source!r}")
        if self.language not in ("auto", "zh", "en"):
            raise UserError(f"vocab config, field 'language': use auto, zh or en, got {self.language!r}")
        if self.min_freq < 1:
            raise UserError(f"vocab config, field 'min_freq': must be >= 1, got {self.min_freq}")


@dataclass
class LossConfig:
    """The distillation loss: ``terms`` as ``"soft_ce:0.9,hard_ce:0.1"`` or a list of
    ``{name, weight, params}``; ``temperature`` is the default T of soft_ce / kl."""

    terms: Union[str, List[Dict[str, Any]], None] = None  # None: soft_ce:1 distilled, hard_ce:1 plain
    temperature: float = 1.0

    def __post_init__(self):
        if not self.temperature > 0:
            raise UserError(f"loss config, field 'temperature': must be > 0, got {self.temperature}")

    def specs(self, mode: str) -> List[Dict[str, Any]]:
        from distill.train.losses import parse_loss_spec

        terms = DEFAULT_LOSS[mode] if self.terms is None else self.terms
        return parse_loss_spec(terms) if isinstance(terms, str) else [dict(t) for t in terms]


def _typed(cls, value, where: str):
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, str) and cls is LossConfig:
        return LossConfig(terms=value)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - names)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    return cls(**value)


def default_train_config(kind: str, **overrides):
    """The TrainConfig a kind trains with unless told otherwise (Adam 2e-3 for word students)."""
    from distill.train.trainer import TrainConfig

    values = dict(TRAIN_DEFAULTS["tiny" if kind == "tiny" else "words"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def _teacher_labels_match(teacher, labels: Sequence[str]) -> None:
    if list(teacher.labels) != list(labels):
        raise UserError(f"teacher {teacher.name!r} has labels {list(teacher.labels)} but the task "
                        f"has {list(labels)}; fine-tune the teacher on this task first")


def _label_ids_or_missing(examples, labels: Sequence[str]) -> np.ndarray:
    """(N,) int64 gold label ids; -1 for rows without a label (augmented rows)."""
    from distill.data.examples import label_ids

    out = np.full(len(examples), -1, dtype=np.int64)
    rows = [i for i, ex in enumerate(examples) if ex.label is not None]
    if rows:
        out[rows] = label_ids([examples[i] for i in rows], labels)
    return out


def build_encoder(kind: str, texts: Sequence[str], vocab: VocabConfig, teacher=None,
                  config: Optional[Dict[str, Any]] = None):
    """A WordVocab over ``texts`` for word students; the teacher's tokenizer for ``tiny``
    (or when ``vocab.source == "teacher"``); a kind whose class has ``build_encoder`` (the
    n-gram student) builds its own from its typed ``config``."""
    from distill.text.vocab import WordVocab
    from students.registry import STUDENTS

    cls = STUDENTS.get(kind)
    if hasattr(cls, "build_encoder"):
        typed = cls.config_class.from_dict(config, where=f"student '{kind}' config")
        return cls.build_encoder(typed, texts, vocab)

    if kind == "tiny" or vocab.source == "teacher":
        if teacher is None:
            raise UserError(f"student '{kind}' with the teacher's tokenizer needs a teacher (--teacher)")
        return teacher.tokenizer
    return WordVocab.build(texts, language=vocab.language, min_freq=vocab.min_freq,
                           max_size=vocab.max_size)


def _build_model(kind: str, config: Optional[Dict[str, Any]], encoder, num_labels: int, teacher):
    """The student, with a tiny student's weights copied from the teacher when asked."""
    from students.registry import build_student

    if kind != "tiny":
        return build_student(kind, config, encoder.vocab_size, num_labels, encoder.pad_id), None
    from students.tiny import TinyStudent, build_tiny

    return build_tiny(TinyStudent, config, encoder, num_labels, teacher)


def _loss_context(model, teacher, layer_map):
    from distill.train.losses import LossContext

    ernie = getattr(model, "ernie_config", None)
    return LossContext(
        student_hidden=ernie.hidden_size if ernie else None,
        teacher_hidden=teacher.config.hidden_size if teacher is not None else None,
        student_layers=ernie.num_layers if ernie else None,
        teacher_layers=teacher.config.num_layers if teacher is not None else None,
        layer_map=layer_map, crf=getattr(model, "crf", None))


def _data_fingerprint(rows, dev, teacher_logits) -> str:
    """Hash of what training reads (rows, dev rows, soft labels): a checkpoint made from other
    data is not resumed (``distill train`` on the same ``--out`` with new data retrains)."""
    h = hashlib.sha256()
    for part, examples in (("train", rows), ("dev", dev or [])):
        h.update(part.encode())
        for e in examples:
            h.update(json.dumps([e.text_a, e.text_b, e.label], ensure_ascii=False).encode("utf-8"))
    if teacher_logits is not None:
        h.update(np.ascontiguousarray(teacher_logits, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


def train_student(kind: str, config: Optional[Dict[str, Any]], task, out_dir, train_config=None,
                  teacher_logits: Optional[np.ndarray] = None, augmented: Optional[List] = None,
                  encoder=None, loss: Union[None, str, Dict, LossConfig] = None, teacher=None,
                  vocab: Union[None, Dict, VocabConfig] = None, max_len: int = 128,
                  progress: bool = True) -> Dict[str, Any]:
    """Train one student on ``task`` (a ``distill.data.examples.Task``) and save it to ``out_dir/student``.

    * plain: ``teacher_logits`` None -> gold labels on ``task.train`` (loss ``hard_ce`` by default);
    * distilled: ``teacher_logits`` (N, C) for ``task.train`` rows followed by ``augmented`` rows
      (``Example`` without labels; their gold label is -1) -> loss ``soft_ce`` by default.

    ``teacher`` (a ``teachers.checkpoint.Teacher``) gives the tiny student its tokenizer and
    initial layers, and runs inside the loss for ``hidden_mse`` / ``attention`` terms.
    ``encoder`` overrides the input encoder (default: a WordVocab, or the teacher's tokenizer).
    Returns (and writes to ``out_dir/result.json``) dev and test metrics and the training summary.
    """
    from distill.data.batching import BatchPlan, encode_examples
    from distill.core.io import write_json
    from distill.train.losses import build_loss
    from distill.train.device import seed_everything
    from distill.train.distributed import world
    from distill.train.trainer import Trainer, count_parameters, eval_mode, evaluate
    from students.io import save_student
    from students.registry import STUDENTS

    out_dir = Path(out_dir)
    train_config = train_config or default_train_config(kind)
    loss_config = _typed(LossConfig, loss, "loss config")
    vocab_config = _typed(VocabConfig, vocab, "vocab config")
    STUDENTS.get(kind)  # an unknown kind raises the UserError listing the kinds
    if teacher is not None:
        _teacher_labels_match(teacher, task.labels)
    augmented = list(augmented or [])
    mode = "distilled" if teacher_logits is not None else "plain"
    if augmented and teacher_logits is None:
        raise UserError(f"{len(augmented)} augmented rows but no soft labels: augmented rows have "
                        "no gold label, so they need the teacher's logits (--soft-labels)")
    rows = list(task.train) + augmented
    if teacher_logits is not None:
        teacher_logits = np.asarray(teacher_logits, dtype=np.float32)
        expected = (len(rows), len(task.labels))
        if teacher_logits.shape != expected:
            raise UserError(f"soft labels have shape {teacher_logits.shape}, expected {expected}: "
                            f"{len(task.train)} training rows then {len(augmented)} augmented rows, "
                            f"one column per label ({', '.join(task.labels)})")
        bad = np.flatnonzero(~np.isfinite(teacher_logits).all(axis=1))
        if bad.size:
            raise UserError(f"soft labels: {bad.size} row(s) hold NaN or infinite values (first: row "
                            f"{int(bad[0])}); the teacher's logits are broken — relabel with a "
                            f"working teacher (this is not a learning-rate problem)")

    specs = loss_config.specs(mode)
    online = [t["name"] for t in specs if t.get("name") in ("hidden_mse", "attention")]
    if online and kind != "tiny":
        raise UserError(f"loss {', '.join(online)} compares token-level states with the teacher's; "
                        f"only the 'tiny' student shares the teacher's tokens (got '{kind}')")

    seed_everything(train_config.seed)
    if encoder is None:
        texts = [t for ex in rows for t in (ex.text_a, ex.text_b) if t is not None]
        encoder = build_encoder(kind, texts, vocab_config, teacher, config)
    model, layer_map = _build_model(kind, config, encoder, len(task.labels), teacher)
    loss_fn = build_loss(specs, teacher=None if teacher is None else teacher.model,
                         context=_loss_context(model, teacher, layer_map),
                         temperature=loss_config.temperature, teacher_context=eval_mode)
    if mode == "plain" and any(t.name in ("soft_ce", "kl", "logit_mse") for t in loss_fn.terms) \
            and not loss_fn.online:
        raise UserError(f"loss {loss_fn} needs teacher logits: give --soft-labels")

    train_data = encode_examples(encoder, rows, max_len=max_len)
    train_data = dataclasses.replace(train_data, labels=_label_ids_or_missing(rows, task.labels),
                                     teacher_logits=teacher_logits)
    train_plan = BatchPlan(train_data, train_config.batch_size, shuffle=True, seed=train_config.seed)
    plans = {}
    for split in ("dev", "test"):
        examples = getattr(task, split)
        if examples:
            data = encode_examples(encoder, examples, max_len=max_len, labels=task.labels)
            plans[split] = BatchPlan(data, 128, shuffle=False)

    train_config = dataclasses.replace(train_config, progress=progress and train_config.progress,
                                       data_fingerprint=_data_fingerprint(rows, task.dev,
                                                                          teacher_logits))
    trainer = Trainer(model, loss_fn, train_config, out_dir / "train")
    summary = trainer.fit(train_plan, plans.get("dev"))  # the model now holds the best dev weights
    result: Dict[str, Any] = {
        "kind": kind, "mode": mode, "loss": str(loss_fn), "seed": train_config.seed,
        "train_rows": len(task.train), "augmented_rows": len(augmented),
        "parameters": count_parameters(model),
        "vocab_size": int(encoder.vocab_size), "config": model.config.to_dict(),
        "train_config": dataclasses.asdict(train_config),
    }
    if layer_map is not None:
        result["teacher_layers"] = layer_map
    for split, plan in plans.items():
        result[split] = evaluate(model, plan)
    result["fit"] = summary
    result["student_dir"] = str(out_dir / "student")
    if world().main:  # data parallel: every rank holds the same model, rank 0 writes it
        save_student(out_dir / "student", model, kind, encoder, task.labels, max_len,
                     extra={"mode": mode, "loss": str(loss_fn), "seed": train_config.seed})
        write_json(out_dir / "result.json", result)
    return result


# ------------------------------------------------------------------------------ CLI

def load_soft_labels(paths: Sequence) -> np.ndarray:
    """(N, C) float32 logits: the ``.npy`` files (or ``distill label`` output dirs, which hold
    ``soft_labels.npy``) stacked in order, e.g. the training file's labels then the augmented file's."""
    parts = []
    for path in map(Path, paths):
        if path.is_dir():
            path = path / "soft_labels.npy"
        if not path.exists():
            raise UserError(f"{path}: soft labels not found (a .npy file of teacher logits or a "
                            "'distill label' output directory)")
        try:
            logits = np.load(path, allow_pickle=False)
        except ValueError as err:
            raise UserError(f"{path}: not a NumPy .npy array ({err})") from None
        if logits.ndim != 2 or (parts and logits.shape[1] != parts[0].shape[1]):
            raise UserError(f"{path}: soft labels must be a (rows, labels) array"
                            + (f" with {parts[0].shape[1]} labels" if parts else "")
                            + f", got shape {logits.shape}")
        parts.append(logits.astype(np.float32))
    return np.concatenate(parts)
