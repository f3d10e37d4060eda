"""Per-token losses: NumPy references, and padding never contributes (values and gradients)."""
import numpy as np
import paddle
import pytest

from distill.train.losses import build_loss

B, T, W, C = 3, 7, 5, 4


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _batch(rng):
    token_index = np.zeros((B, W), np.int64)
    token_mask = np.zeros((B, W), np.float32)
    words = [5, 2, 3]
    for b, n in enumerate(words):  # sub-token positions: [CLS] at 0, then 1 or 2 pieces a token
        pos = 1 + np.cumsum([0] + list(rng.integers(1, 2, size=n - 1)))
        token_index[b, :n], token_mask[b, :n] = pos, 1
    labels = np.where(token_mask > 0, rng.integers(0, C, (B, W)), -1)
    labels[2, 1] = -1  # an unlabelled token (e.g. augmented)
    teacher = rng.normal(size=(B, W, C)).astype(np.float32) * token_mask[..., None]
    return {"token_index": token_index, "token_mask": token_mask, "labels": labels,
            "teacher_logits": teacher}


def _reference(name, s, batch, T_=2.0):
    rows = np.take_along_axis(s, batch["token_index"][..., None].repeat(C, -1), axis=1)  # (B,W,C)
    m, t = batch["token_mask"], batch["teacher_logits"]
    if name == "soft_ce":
        per = -(_softmax(t / T_) * np.log(_softmax(rows / T_))).sum(-1) * T_ * T_
    elif name == "kl":
        p = _softmax(t / T_)
        per = (p * (np.log(p) - np.log(_softmax(rows / T_)))).sum(-1) * T_ * T_
    elif name == "logit_mse":
        per = ((rows - t) ** 2).mean(-1)
    else:
        valid = (batch["labels"] >= 0) & (m > 0)
        logp = np.log(_softmax(rows))
        picked = np.take_along_axis(logp, batch["labels"].clip(0)[..., None], -1)[..., 0]
        return -(picked * valid).sum() / valid.sum()
    return (per * m).sum() / m.sum()


@pytest.mark.parametrize("name", ["soft_ce", "kl", "logit_mse", "hard_ce"])
def test_token_losses_match_numpy_and_ignore_padding(name):
    rng = np.random.default_rng(0)
    batch = _batch(rng)
    s = rng.normal(size=(B, T, C)).astype(np.float32)
    loss_fn = build_loss([{"name": name, "weight": 1.0}], temperature=2.0)
    logits = paddle.to_tensor(s, stop_gradient=False)
    value, _ = loss_fn({"logits": logits}, batch)
    assert float(value) == pytest.approx(_reference(name, s, batch), rel=1e-5)

    value.backward()
    grad = logits.grad.numpy()  # (B, T, C)
    used = np.zeros((B, T), bool)
    for b in range(B):
        used[b, batch["token_index"][b][batch["token_mask"][b] > 0]] = True
    assert np.abs(grad[~used]).max() == 0.0  # no gradient reaches a position no token reads

    # anything written at padding (student logits off-token, teacher rows, labels) changes nothing
    noisy = {k: v.copy() for k, v in batch.items()}
    pad = batch["token_mask"] == 0
    noisy["teacher_logits"][pad] = 1e3
    noisy["token_index"][pad] = T - 1
    s2 = s.copy()
    s2[~used] = -1e3
    again, _ = loss_fn({"logits": paddle.to_tensor(s2)}, noisy)
    assert float(again) == pytest.approx(float(value), rel=1e-5)


def test_mixed_soft_and_hard_weights_add_up():
    rng = np.random.default_rng(1)
    batch = _batch(rng)
    s = rng.normal(size=(B, T, C)).astype(np.float32)
    loss_fn = build_loss([{"name": "soft_ce", "weight": 0.5}, {"name": "hard_ce", "weight": 0.5}],
                         temperature=2.0)
    value, parts = loss_fn({"logits": paddle.to_tensor(s)}, batch)
    expected = 0.5 * _reference("soft_ce", s, batch) + 0.5 * _reference("hard_ce", s, batch)
    assert float(value) == pytest.approx(expected, rel=1e-5)
    assert set(parts) == {"soft_ce", "hard_ce"}
