"""Trainer, batching and metrics on a tiny separable task with a tiny real Paddle model."""
import json

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from distill.data.batching import BatchPlan, EncodedSet, make_batch, restore_order
from distill.core.errors import UserError
from distill.train.metrics import classification_metrics
from distill.train.trainer import TrainConfig, Trainer, eval_mode, evaluate, lr_factor, predict_logits


class TinyClassifier(paddle.nn.Layer):
    """Mean of token embeddings -> dropout -> linear; follows the model output contract."""

    def __init__(self, vocab=24, hidden=8, num_labels=2, dropout=0.1):
        super().__init__()
        self.emb = paddle.nn.Embedding(vocab, hidden)
        self.norm = paddle.nn.LayerNorm(hidden)
        self.drop = paddle.nn.Dropout(dropout)
        self.out = paddle.nn.Linear(hidden, num_labels)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = attention_mask.astype("float32").unsqueeze(-1)  # (B, T, 1)
        hidden = self.emb(input_ids) * mask  # (B, T, H)
        pooled = hidden.sum(axis=1) / mask.sum(axis=1).clip(min=1.0)  # (B, H)
        return {"logits": self.out(self.drop(self.norm(pooled)))}  # (B, C)


def make_model(seed=0, **kwargs):
    paddle.seed(seed)
    return TinyClassifier(**kwargs)


def cross_entropy(outputs, batch):
    loss = F.cross_entropy(outputs["logits"], batch["labels"])
    return loss, {"ce": float(loss)}


def toy_set(n, seed):
    """Class 0 uses tokens 1..11, class 1 tokens 12..23; lengths 2..9; pad id 0."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    lengths = rng.integers(2, 10, n)
    ids = np.zeros((n, 9), dtype=np.int64)
    for i in range(n):
        low = 1 if labels[i] == 0 else 12
        ids[i, :lengths[i]] = rng.integers(low, low + 11, lengths[i])
    mask = (ids != 0).astype(np.int64)
    return EncodedSet.from_padded(ids, mask, pad_id=0, labels=labels)


def config(**kwargs):
    base = dict(epochs=3, batch_size=8, lr=0.05, warmup_ratio=0.0, weight_decay=0.01,
                device="cpu", progress=False, log_every=2, seed=7)
    base.update(kwargs)
    return TrainConfig(**base)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def records(out_dir):
    lines = (out_dir / "metrics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    for row in rows:
        row.pop("train_time_s", None)
    return rows


@pytest.fixture(scope="module")
def data():
    train = toy_set(64, seed=1)
    dev = toy_set(32, seed=2)
    return train, dev


def plans(data, batch_size=8, seed=7):
    train, dev = data
    return (BatchPlan(train, batch_size, shuffle=True, seed=seed),
            BatchPlan(dev, 16))


# ------------------------------------------------------------------------------ batching

def test_batches_pad_to_their_own_longest_row_and_cover_every_row_once(data):
    train, _ = data
    plan = BatchPlan(train, 8, shuffle=True, seed=3, pool_batches=2)
    seen = []
    for batch in plan.epoch(0):
        mask = batch["inputs"]["attention_mask"]
        assert mask.shape[1] == train.lengths[batch["index"]].max()
        assert np.array_equal(mask.sum(1), train.lengths[batch["index"]])
        assert np.array_equal(batch["labels"], train.labels[batch["index"]])
        seen.extend(batch["index"])
    assert sorted(seen) == list(range(len(train)))
    again = [b.tolist() for b in plan.order(0)]
    assert again == [b.tolist() for b in BatchPlan(train, 8, shuffle=True, seed=3,
                                                    pool_batches=2).order(0)]
    assert again != [b.tolist() for b in plan.order(1)]


def test_bucketing_reduces_padding_and_prediction_order_can_be_restored(data):
    train, _ = data
    bucketed = BatchPlan(train, 8, shuffle=False, bucket=True)
    plain = BatchPlan(train, 8, shuffle=False, bucket=False)
    assert bucketed.padding_fraction() < plain.padding_fraction()
    index = np.concatenate([b["index"] for b in bucketed])
    first_tokens = np.concatenate([b["inputs"]["input_ids"][:, 0] for b in bucketed])
    row0 = np.array([train.ids[train.offsets[i]] for i in range(len(train))])
    assert np.array_equal(restore_order(index, first_tokens, len(train)), row0)


def test_encoded_set_round_trip_and_subset():
    ids = np.array([[5, 6, 7], [8, 0, 0], [9, 4, 0]])
    data = EncodedSet.from_padded(ids, ids != 0, labels=[1, 0, 1])
    assert data.lengths.tolist() == [3, 1, 2]
    batch = make_batch(data, [2, 1])
    assert batch["inputs"]["input_ids"].tolist() == [[9, 4], [8, 0]]
    sub = data.subset([2, 0])
    assert make_batch(sub, [0, 1])["inputs"]["input_ids"].tolist() == [[9, 4, 0], [5, 6, 7]]
    assert sub.labels.tolist() == [1, 1]
    with pytest.raises(ValueError):
        EncodedSet.from_padded(ids, np.array([[0, 1, 1], [1, 0, 0], [1, 1, 0]]))


def test_metrics_are_fractions():
    m = classification_metrics([0, 1, 1, 1], [0, 1, 1, 0])
    assert m["accuracy"] == 0.75
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


# ------------------------------------------------------------------------------ trainer

def test_config_rejects_bad_values_naming_the_field():
    with pytest.raises(UserError, match="micro_batch_size"):
        TrainConfig(batch_size=8, micro_batch_size=3)
    with pytest.raises(UserError, match="optimizer"):
        TrainConfig(optimizer="lamb")
    assert lr_factor(0, warmup=4, total=10, schedule="linear") == pytest.approx(0.2)
    assert lr_factor(9, warmup=4, total=10, schedule="linear") == pytest.approx(1 / 6)
    assert lr_factor(9, warmup=0, total=10, schedule="constant") == 1.0


def test_loss_falls_and_dev_accuracy_rises(tmp_path, data):
    model = make_model()
    train_plan, dev_plan = plans(data)
    before = evaluate(model, dev_plan)
    summary = Trainer(model, cross_entropy, config(epochs=4), tmp_path).fit(train_plan, dev_plan)
    epochs = [r for r in records(tmp_path) if r["type"] == "epoch"]
    steps = [r for r in records(tmp_path) if r["type"] == "step"]
    assert len(epochs) == 4 and len(steps) == 4 * 8 // 2
    assert epochs[-1]["train_loss"] < 0.5 * epochs[0]["train_loss"]
    assert "ce" in steps[0] and "lr" in steps[0]
    assert summary["best_dev"]["accuracy"] >= 0.95 > before["accuracy"]
    assert summary["steps"] == 32 and summary["epochs_run"] == 4


def test_gradient_accumulation_matches_the_full_batch(tmp_path, data):
    results = []
    for name, micro in (("full", None), ("micro", 2)):
        model = make_model(dropout=0.0)
        train_plan, _ = plans(data, batch_size=4)
        cfg = config(epochs=1, batch_size=4, micro_batch_size=micro, max_steps=5)
        Trainer(model, cross_entropy, cfg, tmp_path / name).fit(train_plan, None)
        results.append((weights(model), [r["loss"] for r in records(tmp_path / name)
                                         if r["type"] == "step"]))
    (w_full, loss_full), (w_micro, loss_micro) = results
    np.testing.assert_allclose(loss_full, loss_micro, rtol=1e-5)
    for k in w_full:
        np.testing.assert_allclose(w_full[k], w_micro[k], atol=1e-6, err_msg=k)
    assert any(not np.allclose(w_full[k], weights(make_model(dropout=0.0))[k]) for k in w_full)


def test_early_stopping_stops_when_dev_does_not_improve(tmp_path, data):
    model = make_model()
    train_plan, dev_plan = plans(data)
    cfg = config(epochs=10, optimizer="sgd", lr=1e-9, patience=2)
    summary = Trainer(model, cross_entropy, cfg, tmp_path).fit(train_plan, dev_plan)
    assert summary["stopped_early"] and summary["epochs_run"] == 3
    assert summary["best_epoch"] == 1
    assert len([r for r in records(tmp_path) if r["type"] == "epoch"]) == 3


def test_best_checkpoint_holds_the_best_epoch(tmp_path, data):
    cfg = dict(schedule="constant", lr=0.02)
    model = make_model()
    summary = Trainer(model, cross_entropy, config(epochs=4, **cfg), tmp_path / "long").fit(
        *plans(data))
    epochs = [r for r in records(tmp_path / "long") if r["type"] == "epoch"]
    scores = [r["dev"]["accuracy"] for r in epochs]
    best = int(np.argmax(scores)) + 1  # first best epoch
    assert summary["best_epoch"] == best
    assert json.loads((tmp_path / "long/best/best.json").read_text())["epoch"] == best
    assert evaluate(model, plans(data)[1]) == summary["best_dev"]  # fit leaves best weights
    # with a constant LR, a run of `best` epochs retraces the first `best` epochs exactly
    short = make_model()
    Trainer(short, cross_entropy, config(epochs=best, **cfg), tmp_path / "short").fit(
        *plans(data))
    saved = paddle.load(str(tmp_path / "long/best/model_state.pdparams"))
    last = paddle.load(str(tmp_path / "short/last/model_state.pdparams"))
    for k in saved:
        np.testing.assert_array_equal(saved[k].numpy(), last[k].numpy(), err_msg=k)


class Interrupt(Exception):
    pass


def crashing(after_calls):
    """A loss that raises on its ``after_calls``-th call: a process killed mid-training."""
    calls = {"n": 0}

    def loss_fn(outputs, batch):
        calls["n"] += 1
        if calls["n"] > after_calls:
            raise Interrupt()
        return cross_entropy(outputs, batch)

    return loss_fn


@pytest.mark.parametrize("save_every, crash_after", [(None, 8 + 5), (3, 8 + 5)])
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, data, save_every,
                                                                  crash_after):
    cfg = config(epochs=2, micro_batch_size=4, save_every_steps=save_every, log_every=5)
    model = make_model()
    Trainer(model, cross_entropy, cfg, tmp_path / "once").fit(*plans(data))
    reference = weights(model)

    broken = make_model()
    with pytest.raises(Interrupt):  # 8 steps x 2 micro batches: dies during epoch 2
        Trainer(broken, crashing(2 * crash_after), cfg, tmp_path / "twice").fit(*plans(data))
    state = json.loads((tmp_path / "twice/last/trainer_state.json").read_text())["state"]
    assert state["step"] == (12 if save_every else 8)
    fresh = make_model(seed=99)  # a new process would build a new model: weights are loaded
    summary = Trainer(fresh, cross_entropy, cfg, tmp_path / "twice").fit(*plans(data))
    assert summary["resumed_from_step"] == state["step"] and summary["steps"] == 16
    for k, v in reference.items():
        np.testing.assert_array_equal(v, weights(fresh)[k], err_msg=k)
    assert records(tmp_path / "once") == records(tmp_path / "twice")
    again = Trainer(make_model(seed=5), cross_entropy, cfg, tmp_path / "twice")
    assert again.fit(*plans(data))["steps"] == 16  # finished: nothing to do


def test_resume_refuses_a_changed_config(tmp_path, data):
    Trainer(make_model(), cross_entropy, config(epochs=1), tmp_path).fit(*plans(data))
    with pytest.raises(UserError, match="lr"):
        Trainer(make_model(), cross_entropy, config(epochs=1, lr=0.1), tmp_path).fit(*plans(data))


def test_predict_logits_in_input_order_and_modes_restored(data):
    _, dev = data
    model = make_model()
    model.train()
    model.norm.eval()  # a sub-layer in a different mode must keep it
    logits = predict_logits(model, BatchPlan(dev, 5, bucket=True))
    assert model.training and not model.norm.training and model.drop.training
    with eval_mode(model):
        direct = np.concatenate([model(**{k: paddle.to_tensor(v) for k, v in b["inputs"].items()}
                                       )["logits"].numpy()
                                 for b in BatchPlan(dev, 1, bucket=False)])
    np.testing.assert_allclose(logits, direct, atol=1e-5)
    assert evaluate(model, BatchPlan(dev, 5)) == classification_metrics(dev.labels,
                                                                        direct.argmax(1))


class ScaledCrossEntropy(paddle.nn.Layer):
    """A loss with a parameter of its own (like a hidden-state projection)."""

    model_kwargs = {"output_hidden_states": False}

    def __init__(self):
        super().__init__()
        self.scale = self.create_parameter(
            [1], default_initializer=paddle.nn.initializer.Constant(1.0))

    def forward(self, outputs, batch):
        loss = F.cross_entropy(outputs["logits"] * self.scale, batch["labels"])
        return loss, {"ce": float(loss)}


def test_loss_parameters_are_trained_and_resumed(tmp_path, data):
    cfg = config(epochs=2)
    model, loss = make_model(), ScaledCrossEntropy()
    Trainer(model, loss, cfg, tmp_path / "once").fit(*plans(data))
    assert loss.scale.item() != 1.0

    calls = {"n": 0}

    class Crashing(ScaledCrossEntropy):
        def forward(self, outputs, batch):
            calls["n"] += 1
            if calls["n"] > 11:
                raise Interrupt()
            return super().forward(outputs, batch)

    with pytest.raises(Interrupt):
        Trainer(make_model(), Crashing(), cfg, tmp_path / "twice").fit(*plans(data))
    fresh, fresh_loss = make_model(seed=3), ScaledCrossEntropy()
    Trainer(fresh, fresh_loss, cfg, tmp_path / "twice").fit(*plans(data))
    assert fresh_loss.scale.item() == loss.scale.item()
    for k, v in weights(model).items():
        np.testing.assert_array_equal(v, weights(fresh)[k], err_msg=k)


def test_fit_trains_with_dropout_on_and_restores_the_mode(tmp_path, data):
    model = make_model(dropout=0.5)
    model.eval()
    seen = []

    def loss_fn(outputs, batch):
        seen.append(model.drop.training)
        return cross_entropy(outputs, batch)

    Trainer(model, loss_fn, config(epochs=1), tmp_path).fit(*plans(data))
    assert seen and all(seen) and not model.training and not model.drop.training
