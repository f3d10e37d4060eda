"""Token classification on the ERNIE encoder: the NER teacher, its fine-tuning and its logits per token.

``ErnieForTokenClassification`` is ``teachers.model.ErnieWithHead`` with its Linear head on every
sub-token (``logits`` (B, T, C)); parameter names are PaddleNLP's (``ernie.*``, ``classifier.*``),
so any checkpoint ``teachers.checkpoint.load_teacher`` reads gives its encoder::

    teacher = token_teacher(load_teacher("e5-small"), task.tags)   # fresh (seeded) token head
    result = finetune_token_teacher(teacher, task, TrainConfig(epochs=1), "runs/t")
    logits = token_logits(teacher.model, teacher.tokenizer, task.test, max_len=128)  # per sentence (L, C)

A saved token teacher (``save_teacher``; ``teacher.json`` lists the tags) loads back with
``load_token_teacher(dir)``.
"""
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import paddle

from distill.core.errors import UserError
from distill.core.io import read_json, write_json
from teachers.model import ErnieWithHead


class ErnieForTokenClassification(ErnieWithHead):
    """The head on every sub-token: ``logits`` (B, T, C)."""

    head_input = "sequence_output"


def token_teacher(teacher, tags: Sequence[str], seed: int = 0):
    """``teacher`` (a ``teachers.checkpoint.Teacher``) with an ``ErnieForTokenClassification`` over
    its encoder weights. The head is kept when it already has ``len(tags)`` outputs and was
    trained for ``tags``; otherwise it is initialised fresh under ``seed``."""
    old = teacher.model
    paddle.seed(seed)
    model = ErnieForTokenClassification(teacher.config, len(tags))
    state = {k: v for k, v in old.state_dict().items() if k.startswith("ernie.")}
    same_head = (list(teacher.labels) == list(tags)
                 and list(old.classifier.weight.shape) == list(model.classifier.weight.shape))
    if same_head:
        state.update({k: v for k, v in old.state_dict().items() if k.startswith("classifier.")})
    fresh = model.state_dict()
    model.set_state_dict({**fresh, **{k: v for k, v in state.items() if k in fresh}})
    model.eval()
    teacher.model, teacher.labels = model, list(tags)
    return teacher


def keep_lower_layers(teacher, num_layers: int):
    """Drop the encoder layers above the lowest ``num_layers``: the token head then reads layer
    ``num_layers``'s output (``teacher.config.num_layers`` and the model change in place; the
    saved teacher is the smaller encoder). Why: multilingual-e5-small's last layer is nearly the
    same vector at every position (mean cosine to the sentence mean 0.84, against 0.44-0.56 in
    layers 4-10), and a linear probe of frozen features finds MSRA entities best in layers 5-6
    (docs/token_tasks.md); the lower half is also half the cost per step."""
    import dataclasses

    total = teacher.config.num_layers
    if not 1 <= num_layers <= total:
        raise UserError(f"teacher.layers: {num_layers} is not between 1 and the teacher's "
                        f"{total} layers")
    if num_layers == total:
        return teacher
    old = teacher.model
    config = dataclasses.replace(teacher.config, num_layers=num_layers)
    model = type(old)(config, old.num_labels)
    fresh = model.state_dict()
    model.set_state_dict({k: v for k, v in old.state_dict().items() if k in fresh})
    model.eval()
    teacher.model, teacher.config = model, config
    return teacher


def load_token_teacher(source, tags: Optional[Sequence[str]] = None, seed: int = 0):
    """A token teacher from a saved one (tags from its ``teacher.json``) or any checkpoint
    ``load_teacher`` reads (then ``tags`` are required and the head is fresh)."""
    from teachers.checkpoint import load_teacher

    meta_path = Path(str(source)) / "teacher.json"
    saved = read_json(meta_path) if meta_path.is_file() else {}
    if saved.get("task") == "token":
        if tags is not None and list(tags) != list(saved["labels"]):
            raise UserError(f"{source}: a token teacher for tags {saved['labels']}, not {list(tags)}")
        tags = saved["labels"]
        teacher = load_teacher(source, num_labels=len(tags), seed=seed)
        teacher.labels = list(tags)
        return token_teacher(teacher, tags, seed)
    if tags is None:
        raise UserError(f"{source}: not a token teacher; give the tags to put a head on it")
    return token_teacher(load_teacher(source, seed=seed), tags, seed)


def save_token_teacher(teacher, directory, scheme: str) -> Path:
    """``save_teacher`` plus ``"task": "token"`` and the scheme in ``teacher.json``."""
    from teachers.checkpoint import save_teacher

    directory = save_teacher(teacher, directory)
    meta = read_json(directory / "teacher.json")
    meta.update(task="token", scheme=scheme)
    write_json(directory / "teacher.json", meta)
    return directory


def token_logits(model, encoder, examples, max_len: int = 128, batch_size: int = 64
                 ) -> List[np.ndarray]:
    """Per sentence, (L, C) float32 logits of each token's first sub-token (0 for cut tokens),
    in input order; eval mode and no gradients, the model's mode restored."""
    from distill.data.token_batching import TokenBatchPlan, encode_token_examples
    from distill.train.token_eval import predict_token_logits

    data = encode_token_examples(encoder, examples, max_len=max_len)
    return predict_token_logits(model, TokenBatchPlan(data, batch_size, shuffle=False))


def probe_token_head(teacher, examples, tags: Sequence[str], max_len: int = 128,
                     batch_size: int = 32, max_iter: int = 200, c: float = 1.0) -> Dict:
    """Fit the token head as a logistic regression (scikit-learn) on the frozen encoder's
    features of each token's first sub-token, and write it into ``teacher.model.classifier``.

    The "linear probe, then fine-tune" start (LP-FT): a fresh head trained by a few hundred
    SGD steps leaves multilingual-e5-small predicting only ``O`` on MSRA (docs/token_tasks.md),
    while a converged probe of the same features finds entities at once. Features are
    standardised for the fit and the scaling is folded into the Linear weights (exact); a tag
    absent from ``examples`` gets zero weights and a bias 10 below the lowest fitted one.
    Returns ``{"tokens", "iterations", "train_token_accuracy"}``."""
    from sklearn.linear_model import LogisticRegression

    from distill.data.token_batching import TokenBatchPlan, encode_token_examples
    from distill.train.trainer import eval_mode, to_tensors

    data = encode_token_examples(teacher.tokenizer, examples, max_len, tags=list(tags))
    feats, labels = [], []
    model = teacher.model
    with eval_mode(model), paddle.no_grad():
        for batch in TokenBatchPlan(data, batch_size, shuffle=False).epoch(0):
            hidden = model.ernie(**to_tensors(batch["inputs"]))[model.head_input].numpy()  # (B, T, H)
            rows = np.take_along_axis(hidden, batch["token_index"][:, :, None], axis=1)  # (B, W, H)
            keep = batch["labels"] >= 0                                                  # (B, W)
            feats.append(rows[keep])
            labels.append(batch["labels"][keep])
    x, y = np.concatenate(feats).astype(np.float64), np.concatenate(labels)              # (N, H), (N,)
    if len(np.unique(y)) < 2:
        raise UserError("probe_head: the training tokens carry fewer than two tags")
    mean, scale = x.mean(0), x.std(0) + 1e-6                                              # (H,)
    clf = LogisticRegression(C=c, max_iter=max_iter)
    clf.fit((x - mean) / scale, y)
    coef = clf.coef_ / scale                                                              # (K, H)
    bias = clf.intercept_ - coef @ mean                                                   # (K,)
    weight = np.zeros((x.shape[1], len(tags)), np.float32)                                # (H, C)
    full_bias = np.full(len(tags), bias.min() - 10.0, np.float32)                         # (C,)
    weight[:, clf.classes_] = coef.T
    full_bias[clf.classes_] = bias
    model.classifier.weight.set_value(weight)
    model.classifier.bias.set_value(full_bias)
    return {"tokens": int(len(y)), "iterations": int(np.max(clf.n_iter_)),
            "train_token_accuracy": float(clf.score((x - mean) / scale, y))}


def finetune_token_teacher(teacher, task, config, out_dir, max_len: int = 128,
                           train_layers: Optional[int] = None, probe_head: bool = False) -> Dict:
    """Fine-tune a token teacher on ``task`` (a ``TokenTask``) with hard CE on gold tags; keeps
    the best dev entity F1, saves ``out_dir/teacher`` and returns dev/test entity metrics.
    ``probe_head``: first fit the head on the frozen features (``probe_token_head``)."""
    import dataclasses

    from distill.data.token_batching import TokenBatchPlan, encode_token_examples
    from distill.train.device import seed_everything
    from distill.train.losses import build_loss
    from distill.train.token_eval import TokenEvaluator
    from distill.train.trainer import Trainer
    from teachers.finetune import freeze_lower_layers

    if not task.train:
        raise UserError(f"task {task.name}: the training set is empty")
    if not isinstance(teacher.model, ErnieForTokenClassification) or \
            list(teacher.labels) != list(task.tags):
        token_teacher(teacher, task.tags, seed=config.seed)
    out_dir = Path(out_dir)
    seed_everything(config.seed)
    teacher.max_len = int(max_len)
    if config.eval_metric not in ("f1", "precision", "recall", "token_accuracy"):
        config = dataclasses.replace(config, eval_metric="f1")
    flags = {name: p.stop_gradient for name, p in teacher.model.named_parameters()}
    frozen = freeze_lower_layers(teacher.model, train_layers) if train_layers is not None else []

    def plan(examples, size, shuffle=False):
        data = encode_token_examples(teacher.tokenizer, examples, max_len, tags=task.tags)
        return TokenBatchPlan(data, size, shuffle=shuffle, seed=config.seed)

    probe = probe_token_head(teacher, task.train, task.tags, max_len) if probe_head else None
    train_plan = plan(task.train, config.batch_size, shuffle=True)
    dev_plan = plan(task.dev, 2 * config.batch_size) if task.dev else None
    evaluator = TokenEvaluator(task.tags, task.scheme)
    loss = build_loss([{"name": "hard_ce", "weight": 1.0}])
    try:
        summary = Trainer(teacher.model, loss, config, out_dir / "train",
                          evaluator=evaluator).fit(train_plan, dev_plan)
    finally:
        for name, param in teacher.model.named_parameters():
            param.stop_gradient = flags[name]
    result = {"task": task.name, "teacher": teacher.name, "tags": list(task.tags),
              "scheme": task.scheme, "max_len": int(max_len), "train_examples": len(task.train),
              "frozen_parameters": len(frozen), "probe": probe, "best_epoch": summary["best_epoch"],
              "steps": summary["steps"], "train_time_s": round(summary["train_time_s"], 2),
              "dev": evaluator(teacher.model, dev_plan) if dev_plan else None,
              "test": evaluator(teacher.model, plan(task.test, 2 * config.batch_size))
              if task.test else None,
              "teacher_dir": str(out_dir / "teacher")}
    save_token_teacher(teacher, out_dir / "teacher", task.scheme)
    write_json(out_dir / "finetune.json", result)
    return result
