"""Every distillation loss against a NumPy reference; the composite's weighting and formula."""
import numpy as np
import paddle
import pytest

from distill.core.errors import UserError
from distill.train.losses import (LOSSES, AttentionLoss, HiddenMSE, LossContext, build_loss,
                            parse_loss_spec)

RNG = np.random.default_rng(0)
B, C = 5, 3


def np_softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    return np.log(np_softmax(x, axis))


def logits_batch(labels=None):
    s = RNG.normal(size=(B, C)).astype(np.float32) * 2
    t = RNG.normal(size=(B, C)).astype(np.float32) * 3
    batch = {"inputs": {}, "teacher_logits": t}
    if labels is not None:
        batch["labels"] = np.asarray(labels, dtype=np.int64)
    return s, t, batch


def run(name, s, batch, **params):
    term = LOSSES.get(name)(**params)
    return float(term({"logits": paddle.to_tensor(s)}, batch))


@pytest.mark.parametrize("T", [1.0, 2.0, 4.0])
def test_soft_ce_matches_numpy(T):
    s, t, batch = logits_batch()
    ref = -(np_softmax(t / T) * np_log_softmax(s / T)).sum(-1).mean() * T * T
    assert run("soft_ce", s, batch, temperature=T) == pytest.approx(ref, rel=1e-5)


@pytest.mark.parametrize("T", [1.0, 3.0])
def test_kl_matches_numpy_and_is_zero_at_the_teacher(T):
    s, t, batch = logits_batch()
    p = np_softmax(t / T)
    ref = (p * (np.log(p) - np_log_softmax(s / T))).sum(-1).mean() * T * T
    assert run("kl", s, batch, temperature=T) == pytest.approx(ref, rel=1e-5)
    assert run("kl", t, batch, temperature=T) == pytest.approx(0.0, abs=1e-5)


def test_logit_mse_matches_numpy():
    s, t, batch = logits_batch()
    assert run("logit_mse", s, batch) == pytest.approx(((s - t) ** 2).mean(), rel=1e-5)


def test_hard_ce_ignores_rows_without_gold_label():
    labels = [0, -1, 2, -1, 1]
    s, _, batch = logits_batch(labels)
    valid = [i for i, y in enumerate(labels) if y >= 0]
    ref = -np.mean([np_log_softmax(s)[i, labels[i]] for i in valid])
    assert run("hard_ce", s, batch) == pytest.approx(ref, rel=1e-5)
    _, _, unlabelled = logits_batch([-1] * B)
    assert run("hard_ce", s, unlabelled) == 0.0


def test_hard_ce_without_labels_is_a_user_error():
    s, _, batch = logits_batch()
    with pytest.raises(UserError, match="gold labels"):
        run("hard_ce", s, batch)


def hidden_fixture(T=6, hs=4, ht=8, n_s=3, n_t=5):
    mask = np.ones((B, T), dtype=np.int64)
    mask[1, 4:] = 0
    mask[3, 2:] = 0
    student = [RNG.normal(size=(B, T, hs)).astype(np.float32) for _ in range(n_s)]
    teacher = [RNG.normal(size=(B, T, ht)).astype(np.float32) for _ in range(n_t)]
    return mask, student, teacher


def test_hidden_mse_matches_numpy_through_its_projection():
    mask, student, teacher = hidden_fixture()
    loss = HiddenMSE(layers=[[0, 0], [2, 4]], student_hidden=4, teacher_hidden=8)
    W = loss.projection.weight.numpy()  # (Hs, Ht)
    b = loss.projection.bias.numpy()
    value = float(loss({"hidden_states": [paddle.to_tensor(h) for h in student]},
                       {"inputs": {"attention_mask": mask}},
                       {"hidden_states": [paddle.to_tensor(h) for h in teacher]}))
    refs = []
    for i, j in [(0, 0), (2, 4)]:
        per_token = ((student[i] @ W + b - teacher[j]) ** 2).mean(-1)  # (B, T)
        refs.append((per_token * mask).sum() / mask.sum())
    assert value == pytest.approx(np.mean(refs), rel=1e-5)


def test_hidden_mse_projection_learns():
    """The projection's parameters get gradients (it is trained with the student)."""
    mask, student, teacher = hidden_fixture(hs=8)
    loss = HiddenMSE(layers=[[1, 3]], student_hidden=8, teacher_hidden=8)
    value = loss({"hidden_states": [paddle.to_tensor(h) for h in student]},
                 {"inputs": {"attention_mask": mask}},
                 {"hidden_states": [paddle.to_tensor(h) for h in teacher]})
    value.backward()
    assert float(paddle.abs(loss.projection.weight.grad).sum()) > 0


def test_uniform_layer_maps():
    assert HiddenMSE(student_layers=4, teacher_layers=12, project=False).pairs == [
        (0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]
    assert AttentionLoss(student_layers=2, teacher_layers=6).pairs == [(0, 2), (1, 5)]
    with pytest.raises(UserError, match="uniformly"):
        HiddenMSE(student_layers=4, teacher_layers=6, project=False)
    # "auto" follows the layers a tiny student copied: student layer m <-> teacher layer map[m-1]+1
    assert HiddenMSE(student_layers=4, teacher_layers=6, layer_map=[1, 2, 3, 5],
                     project=False).pairs == [(0, 0), (1, 2), (2, 3), (3, 4), (4, 6)]
    assert AttentionLoss(layer_map=[1, 3, 5]).pairs == [(0, 1), (1, 3), (2, 5)]


def attention_fixture(T=5, heads=2):
    mask = np.ones((B, T), dtype=np.int64)
    mask[0, 3:] = 0
    mask[2, 1:] = 0
    bias = (1 - mask)[:, None, None, :] * -1e4

    def att():
        scores = RNG.normal(size=(B, heads, T, T)).astype(np.float32) + bias
        return np_softmax(scores).astype(np.float32)

    return mask, att, bias


@pytest.mark.parametrize("mode", ["kl", "mse"])
def test_attention_loss_matches_numpy(mode):
    mask, att, _ = attention_fixture()
    student, teacher = [att(), att()], [att(), att(), att(), att()]
    loss = AttentionLoss(layers=[[0, 1], [1, 3]], mode=mode)
    value = float(loss({"attentions": [paddle.to_tensor(a) for a in student]},
                       {"inputs": {"attention_mask": mask}},
                       {"attentions": [paddle.to_tensor(a) for a in teacher]}))
    refs = []
    q = mask[:, None, :, None].astype(np.float64)
    k = mask[:, None, None, :].astype(np.float64)
    for i, j in [(0, 1), (1, 3)]:
        s, t = student[i].astype(np.float64), teacher[j].astype(np.float64)
        if mode == "kl":
            kl = (t * (np.log(np.maximum(t, 1e-12)) - np.log(np.maximum(s, 1e-12))) * k).sum(-1)
            refs.append((kl * q[..., 0]).sum() / (mask.sum() * 2))
        else:
            refs.append((((s - t) ** 2) * q * k).sum() / ((q * k).sum() * 2))
    assert value == pytest.approx(np.mean(refs), rel=1e-4)


def test_attention_loss_is_zero_for_identical_maps():
    mask, att, _ = attention_fixture()
    a = [paddle.to_tensor(att())]
    loss = AttentionLoss(layers=[[0, 0]])
    assert float(loss({"attentions": a}, {"inputs": {"attention_mask": mask}},
                      {"attentions": a})) == pytest.approx(0.0, abs=1e-6)


def test_weighted_sum_weights_parts_and_prints_formula():
    s, t, batch = logits_batch([0, 1, 2, -1, 0])
    loss_fn = build_loss(parse_loss_spec("soft_ce:0.9,hard_ce:0.1"), temperature=2)
    assert str(loss_fn) == "0.9*soft_ce(T=2) + 0.1*hard_ce"
    assert "0.9*soft_ce(T=2)" in repr(loss_fn)
    total, parts = loss_fn({"logits": paddle.to_tensor(s)}, batch)
    assert set(parts) == {"soft_ce", "hard_ce"}
    assert parts["soft_ce"] == pytest.approx(run("soft_ce", s, batch, temperature=2.0), rel=1e-6)
    assert float(total) == pytest.approx(0.9 * parts["soft_ce"] + 0.1 * parts["hard_ce"], rel=1e-6)
    assert loss_fn.model_kwargs == {"output_hidden_states": False, "output_attentions": False}


def test_build_loss_from_config_list_with_params_and_repeats():
    loss_fn = build_loss([{"name": "kl", "weight": 0.5, "params": {"temperature": 4}},
                          {"name": "kl", "weight": 0.25},
                          {"name": "logit_mse", "weight": 1}])
    assert str(loss_fn) == "0.5*kl(T=4) + 0.25*kl(T=1) + 1*logit_mse"
    s, _, batch = logits_batch()
    _, parts = loss_fn({"logits": paddle.to_tensor(s)}, batch)
    assert list(parts) == ["kl", "kl#2", "logit_mse"]


def test_bad_specs_are_user_errors():
    with pytest.raises(UserError, match="unknown loss 'soft'"):
        build_loss(parse_loss_spec("soft:1"))
    with pytest.raises(UserError, match="bad weight"):
        parse_loss_spec("soft_ce:x")
    with pytest.raises(UserError, match="unknown parameter"):
        build_loss([{"name": "soft_ce", "params": {"temp": 2}}])
    with pytest.raises(UserError, match="need a teacher"):
        build_loss([{"name": "hidden_mse"}], context=LossContext(4, 4, 2, 4))
