"""Train a token tagger (NER student), plain (gold tags) or distilled (teacher logits per token).

    from students.train_tokens import train_token_student
    result = train_token_student("lstm", {"hidden_size": 128}, task, "runs/lstm_kd",
                                 teacher_logits=soft, augmented=aug_rows,
                                 loss="soft_ce:0.5,hard_ce:0.5")
    result["test"]["f1"]

* ``task``: a ``distill.data.tokens.TokenTask``.
* ``teacher_logits``: one (L_i, C) array per sentence of ``task.train`` followed by
  ``augmented`` (the teacher's logits of each token's first sub-token: ``teachers.token_soft_labels``).
* ``augmented``: ``TokenExample`` rows; their tags are kept as gold (token augmentation keeps
  tags aligned), rows without tags train on the soft labels only.

``lstm``/``cnn`` read a token vocabulary (one id per character or word, built from train +
augmented tokens); ``tiny`` reads the teacher's sub-tokens and, with ``init="teacher"``, starts
from the teacher's layers. ``OUT`` gets ``student/`` (``students.io.load_student`` reads it; its
``student.json`` has ``"task": "token"``, the scheme and the token unit), ``train/`` and
``result.json`` (dev/test entity precision/recall/F1, per type).
"""
import collections
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from distill.core.errors import UserError

DEFAULT_TOKEN_LOSS = {"plain": "hard_ce:1", "distilled": "soft_ce:0.5,hard_ce:0.5"}
# taggers with config crf: true train the CRF on the gold tags instead of hard CE
DEFAULT_CRF_LOSS = {"plain": "crf:1", "distilled": "soft_ce:0.5,crf:0.5"}
TOKEN_TRAIN_DEFAULTS = {
    "words": {"epochs": 10, "batch_size": 32, "lr": 2e-3, "weight_decay": 0.0,
              "warmup_ratio": 0.0, "optimizer": "adam", "max_grad_norm": 5.0, "patience": 3,
              "eval_metric": "f1"},
    "tiny": {"epochs": 3, "batch_size": 32, "lr": 1e-4, "warmup_ratio": 0.1, "eval_metric": "f1"},
}


def default_token_train_config(kind: str, **overrides):
    from distill.train.trainer import TrainConfig

    values = dict(TOKEN_TRAIN_DEFAULTS["tiny" if kind == "tiny" else "words"])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(**values)


def build_token_vocab(rows: Sequence[Sequence[str]], unit: str, min_freq: int = 1,
                      max_size: Optional[int] = 20000):
    """A ``WordVocab`` whose words are the tokens themselves (characters or words), by falling
    frequency; words are lower-cased for ``unit="word"``."""
    from distill.text.vocab import SPECIALS, WordVocab

    lowercase = unit == "word"
    counts = collections.Counter(t.lower() if lowercase else t for row in rows for t in row)
    words = [w for w, n in counts.most_common() if n >= min_freq and w not in SPECIALS]
    if max_size is not None:
        words = words[:max(0, max_size - len(SPECIALS))]
    return WordVocab(list(SPECIALS) + words, language="zh" if unit == "char" else "en",
                     lowercase=lowercase)


def _stack_logits(parts: Sequence[np.ndarray], lengths: Sequence[int], num_tags: int) -> np.ndarray:
    if len(parts) != len(lengths):
        raise UserError(f"{len(parts)} soft-label rows for {len(lengths)} sentences (train rows "
                        "then augmented rows)")
    for i, (part, n) in enumerate(zip(parts, lengths)):
        if part.shape != (n, num_tags):
            raise UserError(f"soft labels of sentence {i} have shape {part.shape}, expected "
                            f"({n}, {num_tags}): one row per token, one column per tag")
    if not parts:
        return np.zeros((0, num_tags), np.float32)
    return np.concatenate(parts).astype(np.float32)


def _build_model(kind: str, config: Optional[Dict[str, Any]], encoder, num_tags: int, teacher):
    from students.registry import build_student

    if kind != "tiny":
        return build_student(kind, config, encoder.vocab_size, num_tags, encoder.pad_id,
                             task="token"), None
    from students.taggers import TinyTagger
    from students.tiny import build_tiny

    return build_tiny(TinyTagger, config, encoder, num_tags, teacher,
                      where="token student 'tiny' config")


def train_token_student(kind: str, config: Optional[Dict[str, Any]], task, out_dir,
                        train_config=None, teacher_logits: Optional[Sequence[np.ndarray]] = None,
                        augmented: Optional[List] = None, encoder=None,
                        loss: Union[None, str, Dict] = None, teacher=None,
                        vocab: Optional[Dict[str, Any]] = None, max_len: int = 128,
                        progress: bool = True) -> Dict[str, Any]:
    """Train and save one tagger (see the module docstring); returns the result dict."""
    from distill.core.io import write_json
    from distill.data.token_batching import TokenBatchPlan, encode_token_examples
    from distill.train.device import seed_everything
    from distill.train.losses import build_loss
    from distill.train.token_eval import TokenEvaluator
    from distill.train.trainer import Trainer, count_parameters, eval_mode
    from students.io import save_student
    from students.registry import TAGGERS
    from students.train import LossConfig, _loss_context, _typed

    TAGGERS.get(kind)
    out_dir = Path(out_dir)
    train_config = train_config or default_token_train_config(kind)
    if train_config.eval_metric not in ("f1", "precision", "recall", "token_accuracy"):
        train_config = dataclasses.replace(train_config, eval_metric="f1")
    loss_config = _typed(LossConfig, loss, "loss config")
    augmented = list(augmented or [])
    rows = list(task.train) + augmented
    mode = "distilled" if teacher_logits is not None else "plain"
    if augmented and teacher_logits is None and any(ex.tags is None for ex in augmented):
        raise UserError("augmented rows without tags need the teacher's soft labels")
    if teacher is not None and list(teacher.labels) != list(task.tags):
        raise UserError(f"teacher {teacher.name!r} has labels {list(teacher.labels)} but the task "
                        f"has tags {list(task.tags)}; fine-tune a token teacher on this task first")
    soft = None
    if teacher_logits is not None:
        soft = _stack_logits(list(teacher_logits), [len(ex.tokens) for ex in rows], len(task.tags))
    defaults = DEFAULT_CRF_LOSS if (config or {}).get("crf") else DEFAULT_TOKEN_LOSS
    terms = loss_config.terms if loss_config.terms is not None else defaults[mode]
    specs = LossConfig(terms=terms, temperature=loss_config.temperature).specs(mode)
    online = [t["name"] for t in specs if t.get("name") in ("hidden_mse", "attention")]
    if online and kind != "tiny":
        raise UserError(f"loss {', '.join(online)} needs the 'tiny' tagger (it shares the "
                        f"teacher's tokens), not '{kind}'")

    seed_everything(train_config.seed)
    if encoder is None:
        if kind == "tiny":
            if teacher is None:
                raise UserError("the 'tiny' tagger reads the teacher's tokens: give a teacher")
            encoder = teacher.tokenizer
        else:
            encoder = build_token_vocab([ex.tokens for ex in rows], task.unit,
                                        **dict(vocab or {}))
    model, layer_map = _build_model(kind, config, encoder, len(task.tags), teacher)
    loss_fn = build_loss(specs, teacher=None if teacher is None else teacher.model,
                         context=_loss_context(model, teacher, layer_map),
                         temperature=loss_config.temperature, teacher_context=eval_mode)
    if soft is None and any(t.name in ("soft_ce", "kl", "logit_mse") for t in loss_fn.terms) \
            and not loss_fn.online:
        raise UserError(f"loss {loss_fn} needs teacher logits (soft labels)")

    train_data = encode_token_examples(encoder, rows, max_len=max_len, tags=task.tags,
                                       teacher_logits=soft)
    train_plan = TokenBatchPlan(train_data, train_config.batch_size, shuffle=True,
                                seed=train_config.seed)
    plans = {split: TokenBatchPlan(encode_token_examples(encoder, getattr(task, split), max_len,
                                                         tags=task.tags), 128)
             for split in ("dev", "test") if getattr(task, split)}
    evaluator = TokenEvaluator(task.tags, task.scheme)
    train_config = dataclasses.replace(train_config, progress=progress and train_config.progress)
    trainer = Trainer(model, loss_fn, train_config, out_dir / "train", evaluator=evaluator)
    summary = trainer.fit(train_plan, plans.get("dev"))
    result: Dict[str, Any] = {
        "task": "token", "kind": kind, "mode": mode, "loss": str(loss_fn),
        "seed": train_config.seed, "train_rows": len(task.train), "augmented_rows": len(augmented),
        "parameters": count_parameters(model), "vocab_size": int(encoder.vocab_size),
        "config": model.config.to_dict(), "train_config": dataclasses.asdict(train_config)}
    if layer_map is not None:
        result["teacher_layers"] = layer_map
    for split, plan in plans.items():
        result[split] = evaluator(model, plan)
    result["fit"] = summary
    save_student(out_dir / "student", model, kind, encoder, task.tags, max_len,
                 extra={"task": "token", "scheme": task.scheme, "unit": task.unit, "mode": mode,
                        "loss": str(loss_fn), "seed": train_config.seed})
    result["student_dir"] = str(out_dir / "student")
    write_json(out_dir / "result.json", result)
    return result
