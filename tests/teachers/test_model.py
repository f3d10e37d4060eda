"""ErnieConfig and the Paddle ERNIE model: output contract, masking, export with dynamic shapes.

Run: .venv/bin/python -m pytest -q tests/test_model.py
"""
import json

import numpy as np
import paddle
import pytest

from teachers.config import ConfigError, ErnieConfig
from teachers.model import ErnieForSequenceClassification, ErnieModel, build_model


def tiny(**kw):
    base = dict(vocab_size=30, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
                max_position_embeddings=32)
    return ErnieConfig(**{**base, **kw})


def test_config_round_trip_and_validation(tmp_path):
    cfg = tiny(hidden_act="relu", use_task_id=True, task_type_vocab_size=3, pooling="mean")
    cfg.save(tmp_path / "ernie_config.json")
    assert ErnieConfig.load(tmp_path / "ernie_config.json") == cfg
    assert ErnieConfig.from_dict(cfg.to_dict()) == cfg and cfg.head_dim == 4
    with pytest.raises(ConfigError, match="hidden_size' = 16 is not divisible by num_heads = 3"):
        tiny(num_heads=3)
    with pytest.raises(ConfigError, match="hidden_act' must be one of gelu, relu, got 'swish'"):
        tiny(hidden_act="swish")
    with pytest.raises(ConfigError, match="pooling"):
        tiny(pooling="max")
    with pytest.raises(ConfigError, match="task_type_vocab_size' must be >= 1"):
        tiny(use_task_id=True)
    with pytest.raises(ConfigError, match=r"unknown field\(s\) num_hidden_layers"):
        ErnieConfig.from_dict({"vocab_size": 5, "num_hidden_layers": 2})
    (tmp_path / "bad.json").write_text('{"vocab_size": 5,\n "hidden_size": }')
    with pytest.raises(ConfigError, match="bad.json, line 2: invalid JSON"):
        ErnieConfig.load(tmp_path / "bad.json")
    (tmp_path / "neg.json").write_text(json.dumps({"vocab_size": 5, "num_layers": 0}))
    with pytest.raises(ConfigError, match="neg.json: field 'num_layers' must be a positive integer"):
        ErnieConfig.load(tmp_path / "neg.json")


def batch():
    ids = np.array([[2, 5, 6, 7, 3], [2, 9, 3, 0, 0]], dtype=np.int64)
    return {"input_ids": paddle.to_tensor(ids),
            "token_type_ids": paddle.to_tensor(np.array([[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]])),
            "attention_mask": paddle.to_tensor((ids != 0).astype(np.int64))}


def test_output_contract_shapes_and_attention():
    model = build_model(tiny(), num_labels=3, seed=0)
    model.eval()
    out = model(**batch())
    assert set(out) == {"logits"} and out["logits"].shape == [2, 3]
    out = model(**batch(), output_hidden_states=True, output_attentions=True)
    assert set(out) == {"logits", "hidden_states", "attentions", "mask"}
    assert len(out["hidden_states"]) == 3 and all(h.shape == [2, 5, 16] for h in out["hidden_states"])
    assert len(out["attentions"]) == 2 and all(a.shape == [2, 4, 5, 5] for a in out["attentions"])
    assert out["mask"].numpy().tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    probs = out["attentions"][0].numpy()
    assert np.allclose(probs.sum(-1), 1, atol=1e-5)
    assert probs[1, :, :, 3:].max() < 1e-6          # nobody attends to padding
    enc = model.ernie(**batch())
    assert set(enc) == {"sequence_output", "pooled", "mask"} and enc["pooled"].shape == [2, 16]


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_padding_does_not_change_outputs(pooling):
    model = build_model(tiny(pooling=pooling, use_task_id=True, task_type_vocab_size=2), 2, seed=1)
    model.eval()
    b = batch()
    padded = model(**b, output_hidden_states=True)
    alone = model(paddle.to_tensor([[2, 9, 3]]), paddle.to_tensor([[0, 0, 0]]),
                  paddle.to_tensor([[1, 1, 1]]), output_hidden_states=True)
    assert np.allclose(padded["logits"].numpy()[1], alone["logits"].numpy()[0], atol=1e-5)
    assert np.allclose(padded["hidden_states"][-1].numpy()[1, :3], alone["hidden_states"][-1].numpy()[0], atol=1e-5)
    # without an explicit mask, tokens equal to pad_token_id are masked
    implicit = model(b["input_ids"], b["token_type_ids"])
    assert np.allclose(implicit["logits"].numpy(), padded["logits"].numpy(), atol=1e-6)


def test_token_types_matter_and_dropout_only_in_training():
    model = build_model(tiny(hidden_dropout=0.5), 2, seed=2)
    b = batch()
    model.eval()
    first = model(**b)["logits"].numpy()
    assert np.array_equal(first, model(**b)["logits"].numpy())
    other_types = model(b["input_ids"], paddle.zeros_like(b["input_ids"]), b["attention_mask"])
    assert not np.allclose(first[0], other_types["logits"].numpy()[0])
    model.train()
    assert not np.allclose(model(**b)["logits"].numpy(), first)


def test_training_step_reduces_loss():
    paddle.seed(3)
    model = ErnieForSequenceClassification(tiny(hidden_dropout=0.0, attention_dropout=0.0), 2)
    model.train()
    opt = paddle.optimizer.AdamW(learning_rate=1e-2, parameters=model.parameters())
    b, labels = batch(), paddle.to_tensor([0, 1])
    losses = []
    for _ in range(15):
        loss = paddle.nn.functional.cross_entropy(model(**b)["logits"], labels)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.2 * losses[0]


class LogitsOnly(paddle.nn.Layer):
    """What an exporter wraps: tensors in, logits out."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, token_type_ids, attention_mask):
        return self.model(input_ids, token_type_ids, attention_mask)["logits"]


def test_to_static_export_with_dynamic_batch_and_length(tmp_path):
    model = build_model(tiny(pooling="mean"), 2, seed=4)
    model.eval()
    spec = [paddle.static.InputSpec([None, None], "int64", name=n)
            for n in ("input_ids", "token_type_ids", "attention_mask")]
    static = paddle.jit.to_static(LogitsOnly(model), input_spec=spec, full_graph=True)
    paddle.jit.save(static, str(tmp_path / "model"))
    loaded = paddle.jit.load(str(tmp_path / "model"))
    loaded.eval()
    for B, T in ((1, 3), (3, 7)):
        ids = np.random.default_rng(B).integers(1, 30, size=(B, T))
        mask = np.ones((B, T), np.int64)
        mask[0, T - 1:] = 0
        args = [paddle.to_tensor(a) for a in (ids, np.zeros_like(ids), mask)]
        assert np.allclose(loaded(*args).numpy(), model(*args)["logits"].numpy(), atol=1e-5)


def test_encoder_alone_has_no_pooler_under_mean_pooling():
    assert ErnieModel(tiny(pooling="mean")).pooler is None
    names = set(ErnieForSequenceClassification(tiny(), 2).state_dict())
    assert {"ernie.embeddings.word_embeddings.weight", "ernie.encoder.layers.1.self_attn.q_proj.weight",
            "ernie.encoder.layers.0.linear1.weight", "ernie.pooler.dense.weight", "classifier.bias"} <= names
    with pytest.raises(ValueError):
        ErnieForSequenceClassification(tiny(), 0)
