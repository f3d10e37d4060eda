"""Fine-tune an ERNIE-family teacher on a classification task (hard cross-entropy on gold labels).

    distill finetune --teacher minilm-l6 --data movies_en --out runs/minilm-movies \\
        --epochs 2 --max-len 64 --batch-size 32 --lr 5e-5
    distill finetune --teacher path/to/teacher --train train.tsv --dev dev.tsv --test test.tsv \\
        --out runs/t --train-layers 2          # only the top 2 layers (+ head) are trained

The run folder gets ``train/`` (the trainer's ``metrics.jsonl``, ``best/``, ``last/``; an
interrupted run resumes when the same command is repeated), ``teacher/`` (the fine-tuned teacher
in the canonical format, loadable with ``load_teacher``; with ``--save-format paddlenlp`` (or
by default when possible) also a PaddleNLP model folder) and ``finetune.json`` (dev/test
accuracy and macro-F1, training time).
"""
import logging
import re
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from distill.core.errors import UserError
from distill.core.io import write_json

log = logging.getLogger("teachers.finetune")

LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")  # encoder layer number in a parameter name


def ensure_head(teacher, labels: List[str], seed: int) -> bool:
    """Give ``teacher.model`` a classification head for ``labels``.

    The head is kept when it already has the right size and was trained for the same labels (or
    for none yet); otherwise a new model is built with a fresh head (initialised under ``seed``)
    and every other weight copied. Returns True when the head was replaced.
    """
    from teachers.model import build_model

    model = teacher.model
    same_labels = not teacher.labels or list(teacher.labels) == list(labels)
    if model.num_labels == len(labels) and same_labels:
        return False
    fresh = build_model(teacher.config, len(labels), seed=seed)
    fresh_state = fresh.state_dict()
    keep = {k: v for k, v in model.state_dict().items()
            if k in fresh_state and list(v.shape) == list(fresh_state[k].shape)
            and not k.startswith("classifier.")}
    fresh.set_state_dict({**fresh_state, **keep})
    log.info("new %d-label head; %d of %d tensors copied", len(labels), len(keep),
             len(fresh_state))
    teacher.model = fresh
    return True


def freeze_lower_layers(model, train_layers: int) -> List[str]:
    """Freeze the embeddings and every encoder layer below the top ``train_layers`` (nothing when
    that is all of them); the pooler and head stay trainable. Returns the frozen names."""
    named = list(model.named_parameters())
    layer_ids = {int(m.group(1)) for n, _ in named for m in [LAYER_INDEX.search(n)] if m}
    if not layer_ids:
        raise UserError("--train-layers: the model has no numbered encoder layers")
    if train_layers < 0:
        raise UserError(f"--train-layers must be >= 0, got {train_layers}")
    first_trained = max(layer_ids) + 1 - train_layers
    if first_trained <= 0:  # every layer trained: freeze nothing
        return []
    frozen = []
    for name, param in named:
        match = LAYER_INDEX.search(name)
        if ("embeddings" in name and not match) or (match and int(match.group(1)) < first_trained):
            param.stop_gradient = True
            frozen.append(name)
    return frozen


def finetune(teacher, task, config, out_dir, max_len: int = 128,
             train_layers: Optional[int] = None, eval_batch_size: Optional[int] = None,
             save_format: str = "auto") -> Dict:
    """Fine-tune ``teacher`` (a ``teachers.checkpoint.Teacher``) on ``task`` with ``config`` (a
    ``distill.train.trainer.TrainConfig``); the teacher is updated in place (best dev weights, labels,
    max_len) and saved to ``out_dir/teacher`` (``save_format``: see ``save_teacher``; ``auto``
    makes it a PaddleNLP model folder too whenever the teacher can be one). Returns dev/test
    metrics and timings."""
    from distill.data.batching import BatchPlan, encode_examples
    from distill.train.losses import build_loss
    from distill.train.device import seed_everything
    from distill.train.distributed import world
    from distill.train.trainer import Trainer, evaluate
    from teachers.checkpoint import save_teacher

    if not task.train:
        raise UserError(f"task {task.name}: the training set is empty")
    out_dir = Path(out_dir)
    seed_everything(config.seed)
    ensure_head(teacher, task.labels, seed=config.seed)
    teacher.labels, teacher.max_len = list(task.labels), int(max_len)
    flags = {name: p.stop_gradient for name, p in teacher.model.named_parameters()}
    frozen = freeze_lower_layers(teacher.model, train_layers) if train_layers is not None else []

    def encode(examples):
        return encode_examples(teacher.tokenizer, examples, max_len=max_len, labels=task.labels)

    eval_size = eval_batch_size or 2 * config.batch_size
    train = encode(task.train)
    train_plan = BatchPlan(train, config.batch_size, shuffle=True, seed=config.seed)
    dev_plan = BatchPlan(encode(task.dev), eval_size) if task.dev else None
    test_plan = BatchPlan(encode(task.test), eval_size) if task.test else None

    loss = build_loss([{"name": "hard_ce", "weight": 1.0}])
    try:
        summary = Trainer(teacher.model, loss, config, out_dir / "train").fit(train_plan,
                                                                              dev_plan)
    finally:
        for name, param in teacher.model.named_parameters():  # undo --train-layers
            param.stop_gradient = flags[name]
    result = {
        "task": task.name, "teacher": teacher.name, "labels": list(task.labels),
        "max_len": int(max_len), "train_examples": len(task.train),
        "train_tokens_per_row": float(train.lengths.mean()),
        "frozen_parameters": len(frozen), "best_epoch": summary["best_epoch"],
        "epochs_run": summary["epochs_run"], "steps": summary["steps"],
        "train_time_s": round(summary["train_time_s"], 2),
        "train_examples_per_s": round(summary["train_rows_per_s"], 2),
        "eval_time_s": round(summary["eval_time_s"], 2),
        "dev": evaluate(teacher.model, dev_plan) if dev_plan else None,
        "test": evaluate(teacher.model, test_plan) if test_plan else None,
        "teacher_dir": str(out_dir / "teacher"),
    }
    if world().main:  # data parallel: every rank holds the same weights, rank 0 writes them
        save_teacher(teacher, out_dir / "teacher", save_format=save_format)
        write_json(out_dir / "finetune.json", result)
    return result


def limit_examples(examples, limit: Optional[int], seed: int):
    """A seeded random subset of ``limit`` rows (kept in file order), or all rows."""
    if limit is None or limit >= len(examples):
        return examples
    rows = np.sort(np.random.default_rng(seed).choice(len(examples), limit, replace=False))
    return [examples[i] for i in rows]


# ------------------------------------------------------------------------------ CLI
