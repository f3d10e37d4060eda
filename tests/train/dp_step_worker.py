"""One data-parallel training step, run by tests/train/test_distributed.py (not a test itself).

    python tests/train/dp_step_worker.py OUT_DIR [MICRO_BATCH] [hidden]     # one process
    python -m paddle.distributed.launch --nproc_per_node 2 tests/train/dp_step_worker.py OUT_DIR

``hidden``: a 1-layer ERNIE student distilled with soft CE + hidden-state MSE through the loss's
projection, the (2-layer ERNIE) teacher running inside the loss (no dropout anywhere).
``early``: 5 epochs with patience 1 and a dev score that falls on rank 0 but rises on rank 1;
each rank also writes ``rank<R>.json`` (its fit summary): rank 0's scores must decide for both.

Each rank writes ``OUT_DIR/rank<R>.npz``: the model's and the loss's weights after one optimizer
step over a global batch of 8 rows (rows 0-3 on rank 0, 4-7 on rank 1 when W = 2).
"""
import sys
from pathlib import Path

import distill  # noqa: F401  (zlib before paddle)
import numpy as np
import paddle
import paddle.nn.functional as F

from distill.data.batching import BatchPlan, EncodedSet
from distill.train import distributed
from distill.train.trainer import TrainConfig, Trainer


class Tiny(paddle.nn.Layer):
    """Mean of token embeddings -> LayerNorm -> linear (no dropout: steps are comparable)."""

    def __init__(self):
        super().__init__()
        self.emb = paddle.nn.Embedding(30, 8)
        self.norm = paddle.nn.LayerNorm(8)
        self.out = paddle.nn.Linear(8, 3)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        mask = attention_mask.astype("float32").unsqueeze(-1)  # (B, T, 1)
        pooled = (self.emb(input_ids) * mask).sum(axis=1) / mask.sum(axis=1)  # (B, H)
        return {"logits": self.out(self.norm(pooled))}  # (B, C)


class ScaledCE(paddle.nn.Layer):
    """Cross-entropy of logits times a learned scale: a loss with a parameter of its own."""

    def __init__(self):
        super().__init__()
        self.scale = self.create_parameter([1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, outputs, batch):
        loss = F.cross_entropy(outputs["logits"] * self.scale, batch["labels"])
        return loss, {"ce": float(loss)}


class RankDevScores:
    """A dev evaluator whose score depends on the rank: falling on rank 0 (patience 1 stops
    after epoch 2), rising on rank 1 (it would never stop): only if every rank takes rank 0's
    broadcast numbers do both stop together (else rank 0 leaves and rank 1 hangs in all-reduce)."""

    def __init__(self, rank: int):
        self.rank, self.calls = rank, 0

    def __call__(self, model, batches):
        self.calls += 1
        score = 1.0 / self.calls if self.rank == 0 else self.calls / 10
        return {"accuracy": score, "macro_f1": score}


def hidden_model_and_loss():
    """An ERNIE student and an intermediate-layer loss (its projection trained, teacher inside)."""
    from distill.train.losses import LossContext, build_loss
    from teachers.config import ErnieConfig
    from teachers.model import build_model

    quiet = dict(hidden_dropout=0.0, attention_dropout=0.0, num_heads=2)
    teacher = build_model(ErnieConfig(vocab_size=30, hidden_size=16, num_layers=2,
                                      intermediate_size=32, **quiet), 3, seed=0)
    student = build_model(ErnieConfig(vocab_size=30, hidden_size=8, num_layers=1,
                                      intermediate_size=16, **quiet), 3, seed=1)
    loss = build_loss([{"name": "hard_ce", "weight": 1.0},
                       {"name": "hidden_mse", "weight": 1.0, "params": {"layers": [[1, 2]]}}],
                      teacher=teacher, context=LossContext(student_hidden=8, teacher_hidden=16))
    return student, loss


def main(out_dir: str, micro: int = 0, mode: str = "") -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 7, 8)
    if mode == "hidden":  # token-averaged losses equal the global batch's only at equal lengths
        lengths[:] = 6
    ids = np.zeros((8, 6), dtype=np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = rng.integers(1, 30, n)
    data = EncodedSet.from_padded(ids, (ids != 0).astype(np.int64), labels=rng.integers(0, 3, 8))
    paddle.seed(11)
    model, loss = hidden_model_and_loss() if mode == "hidden" else (Tiny(), ScaledCE())
    # hidden: SGD, whose step is linear in the gradient (Adam's first step is lr * sign(g), so a
    # gradient of 1e-9 against -1e-9, float noise, would move a weight by 2 lr either way)
    config = TrainConfig(epochs=1, batch_size=8, micro_batch_size=micro or None, lr=0.1,
                         warmup_ratio=0.0, device="cpu", progress=False, seed=5,
                         optimizer="sgd" if mode == "hidden" else "adamw")
    rank = distributed.world().rank
    plan = BatchPlan(data, 8, shuffle=True, seed=1)
    if mode == "early":
        import dataclasses
        import json

        config = dataclasses.replace(config, epochs=5, patience=1)
        summary = Trainer(model, loss, config, Path(out_dir) / "train",
                          evaluator=RankDevScores(rank)).fit(plan, dev_batches=list(plan))
        (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(
            {k: summary[k] for k in ("best_epoch", "epochs_run", "stopped_early", "steps",
                                     "dev_history")}))
    else:
        Trainer(model, loss, config, Path(out_dir) / "train").fit(plan)
    state = {f"model.{k}": v.numpy() for k, v in model.state_dict().items()}
    state.update({f"loss.{k}": v.numpy() for k, v in loss.state_dict().items()})
    np.savez(Path(out_dir) / f"rank{rank}.npz", **state)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0,
         sys.argv[3] if len(sys.argv) > 3 else "")
