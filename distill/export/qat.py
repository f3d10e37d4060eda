"""Quantization-aware training for the ``paddle-int8`` export: a short fine-tune of a copy of the
trained model with fake-quant Linear layers, through the project's own ``Trainer`` and losses.

    settings = QATSettings(steps=300, lr=2e-5, loss="logit_mse:1")
    info = quant_aware_export(model, encoder, train_examples, dev_examples, labels, max_len,
                              "out/paddle-int8", input_names, settings)

The targets are the FP32 model's own logits on the training rows (``teacher_logits``; the model
being quantized is the teacher of its INT8 copy), plus the gold labels for ``hard_ce``. The
loss terms are any of the logit losses in ``distill.train.losses`` (``soft_ce``, ``kl``,
``logit_mse``, ``hard_ce``), written as for ``distill train --loss``; give the student's own
distillation loss to train "with the same loss". The best step is chosen on the dev rows (the
fake-quant model's dev accuracy, evaluated every ``eval_every`` steps), never on test. The saved
artifact runs with oneDNN INT8 kernels (``distill.backends.paddle_qat``).
"""
import copy
import dataclasses
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from distill.core.errors import UserError

QAT_LOSSES = ("soft_ce", "kl", "logit_mse", "hard_ce")


@dataclasses.dataclass
class QATSettings:
    """How long and how hard to train the fake-quant copy."""

    steps: int = 300  # optimizer steps (the data is cycled as needed)
    batch_size: int = 32
    lr: float = 2e-5  # small: the model is already trained
    loss: str = "logit_mse:1"  # NAME:WEIGHT[,...] over QAT_LOSSES; targets = the FP32 logits
    eval_every: int = 100  # steps between dev evaluations (the best one is kept)
    max_rows: Optional[int] = None  # train on at most this many rows (None: all given)
    seed: int = 0

    def validate(self) -> None:
        from distill.train.losses import parse_loss_spec

        for name in ("steps", "batch_size", "eval_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"qat_{name}={value!r}: give a whole number >= 1")
        if not self.lr > 0:
            raise UserError(f"qat_lr={self.lr!r}: must be > 0")
        unknown = [s["name"] for s in parse_loss_spec(self.loss) if s["name"] not in QAT_LOSSES]
        if unknown:
            raise UserError(f"qat_loss={self.loss!r}: {', '.join(unknown)} not usable for QAT; "
                            f"choose from {', '.join(QAT_LOSSES)}")


def quant_aware_export(model, encoder, train_examples: Sequence[Any],
                       dev_examples: Sequence[Any], labels: Sequence[str], max_len: int,
                       out_dir, input_names: Sequence[str],
                       settings: Optional[QATSettings] = None) -> Dict[str, Any]:
    """Train a fake-quant copy of ``model`` on ``train_examples`` (the original is untouched),
    keep its best dev step, save it to ``out_dir`` as an INT8 inference model; returns details."""
    from distill.backends.paddle_qat import QAT_LAYER_TYPES, save_qat_model, wrap_for_qat
    from distill.data.batching import BatchPlan, encode_examples
    from distill.train.device import seed_everything
    from distill.train.losses import build_loss, parse_loss_spec
    from distill.train.trainer import Trainer, TrainConfig, evaluate

    settings = settings or QATSettings()
    settings.validate()
    seed_everything(settings.seed)
    rows = list(train_examples)
    if settings.max_rows is not None and len(rows) > settings.max_rows:
        keep = np.sort(np.random.default_rng(settings.seed).permutation(len(rows))
                       [: settings.max_rows])
        rows = [rows[i] for i in keep]
    if not rows:
        raise UserError("QAT trains on the training rows: give them as calib_examples "
                        "(distill export --calib FILE); the dev rows only choose")
    labelled = bool(labels) and all(e.label is not None for e in rows)
    train = encode_examples(encoder, rows, max_len=max_len, labels=labels if labelled else None)
    if not labelled:  # hard_ce ignores rows labelled -1
        train = dataclasses.replace(train, labels=np.full(len(train), -1, dtype=np.int64))
    fp32 = _logits(model, train, settings.batch_size)  # (N, C) the FP32 model's targets
    train = train.with_teacher_logits(fp32)
    dev_labelled = bool(labels) and dev_examples and all(e.label is not None for e in dev_examples)
    dev = encode_examples(encoder, list(dev_examples), max_len=max_len,
                          labels=labels if dev_labelled else None) if dev_labelled else None

    qmodel = copy.deepcopy(model)
    quanter = wrap_for_qat(qmodel)
    loss_fn = build_loss(parse_loss_spec(settings.loss))
    epoch_rows = min(len(train), settings.batch_size * settings.eval_every)
    steps_per_epoch = -(-epoch_rows // settings.batch_size)
    epochs = -(-settings.steps // steps_per_epoch)
    config = TrainConfig(epochs=epochs, batch_size=settings.batch_size, lr=settings.lr,
                         warmup_ratio=0.0, schedule="constant", max_steps=settings.steps,
                         seed=settings.seed, device="cpu", progress=False,
                         log_every=max(1, settings.eval_every))
    plan = _Cycled(BatchPlan(train, settings.batch_size, shuffle=True, seed=settings.seed),
                   steps_per_epoch)
    dev_plan = BatchPlan(dev, 64) if dev is not None else None
    fp32_dev = evaluate(model, dev_plan) if dev_plan is not None else None
    dev_before = evaluate(qmodel, dev_plan) if dev_plan is not None else None  # scales unset
    with tempfile.TemporaryDirectory() as tmp:
        summary = Trainer(qmodel, loss_fn, config, tmp).fit(plan, dev_plan)
    dev_after = evaluate(qmodel, dev_plan) if dev_plan is not None else None
    info = save_qat_model(quanter, qmodel, out_dir, input_names)
    info.update({"qat": {**dataclasses.asdict(settings), "rows": len(train),
                         "layer_types": list(QAT_LAYER_TYPES), "targets": "fp32 logits",
                         "steps_run": summary["steps"], "best_step": summary["best_step"],
                         "train_time_s": summary["train_time_s"], "fp32_dev": fp32_dev,
                         "fake_quant_dev_before": dev_before, "fake_quant_dev_after": dev_after,
                         "selected_on": "dev" if dev_plan is not None else "last step"}})
    return info


def _logits(model, data, batch_size: int) -> np.ndarray:
    from distill.data.batching import BatchPlan
    from distill.train.trainer import predict_logits

    return predict_logits(model, BatchPlan(data, batch_size)).astype(np.float32)


class _Cycled:
    """A ``BatchPlan`` seen in "epochs" of ``steps`` batches each, cycling through the data, so
    that the trainer evaluates dev every ``steps`` steps however few rows there are."""

    def __init__(self, plan, steps: int):
        self.plan, self.steps = plan, int(steps)

    def __len__(self) -> int:
        return self.steps

    def epoch(self, epoch: int = 0):
        from distill.data.batching import make_batch

        batches: List[Dict] = []
        sweep = 0
        while len(batches) < self.steps * (epoch + 1):
            batches.extend(self.plan.order(sweep))
            sweep += 1
        for rows in batches[self.steps * epoch: self.steps * (epoch + 1)]:
            yield make_batch(self.plan.data, rows)

    def __iter__(self):
        return self.epoch(0)

