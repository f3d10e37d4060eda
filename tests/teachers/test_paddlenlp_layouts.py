"""PaddleNLP / Hugging Face ERNIE layouts without the references: families, saving, errors and
``distill convert`` (equality with PaddleNLP's and transformers' own forward passes is proven in
test_parity.py under make test-parity)."""
import json
import os

import numpy as np
import paddle
import pytest

from distill.cli import main as cli
from distill.text.tokenizer import WordPieceTokenizer
from teachers.checkpoint import (CheckpointError, load_teacher, random_teacher, read_checkpoint,
                                 save_teacher)
from teachers.config import ConfigError, ErnieConfig

TOKENS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + list("abcdefghij好看电影") + \
    ["##" + c for c in "abcdefghij"]
TEXTS = ["abc 好看", "电影 jihg", "a"]


@pytest.fixture()
def tok(tmp_path):
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    return WordPieceTokenizer(tmp_path / "vocab.txt")


def small(**kw):
    base = dict(vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                max_position_embeddings=64)
    return ErnieConfig(**{**base, **kw})


def logits(teacher, texts=TEXTS, pairs=None):
    batch = teacher.tokenizer.encode(texts, pairs, max_len=16)
    with paddle.no_grad():
        return teacher.model(**{k: paddle.to_tensor(v) for k, v in batch.items()})[
            "logits"].numpy()


def strip_ours(folder):
    for name in ("teacher.json", "ernie_config.json", "encoder.json", ".distill-owned"):
        (folder / name).unlink(missing_ok=True)


@pytest.mark.parametrize("family, extra", [
    ("ernie", dict(type_vocab_size=4, use_task_id=True, task_type_vocab_size=16, task_id=2,
                   zero_pad_embedding=True)),
    ("ernie_gram", dict(layer_norm_eps=1e-5, zero_pad_embedding=True)),
    ("ernie_m", dict(layer_norm_eps=1e-5, type_vocab_size=0, position_offset=2,
                     intermediate_size=64))])
def test_each_family_saves_as_paddlenlp_and_loads_back(tmp_path, tok, family, extra):
    teacher = random_teacher(small(family=family, **extra), tok, num_labels=3, seed=4)
    teacher.labels = ["neg", "neu", "pos"]
    save_teacher(teacher, tmp_path / "t", save_format="paddlenlp")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    prefix = {"ernie": "Ernie", "ernie_gram": "ErnieGram", "ernie_m": "ErnieM"}[family]
    assert cfg["architectures"] == [f"{prefix}ForSequenceClassification"]
    assert cfg["model_type"] == family and cfg["id2label"]["2"] == "pos"
    names = paddle.load(str(tmp_path / "t" / "model_state.pdparams")).keys()
    assert all(n.startswith((family + ".", "classifier.")) for n in names)
    strip_ours(tmp_path / "t")  # a pure PaddleNLP folder now
    raw = read_checkpoint(tmp_path / "t")
    assert raw.scheme.name == "paddlenlp" and raw.config == teacher.config
    again = load_teacher(tmp_path / "t")
    assert again.labels == ["neg", "neu", "pos"]
    np.testing.assert_allclose(logits(again, TEXTS, TEXTS[::-1]),
                               logits(teacher, TEXTS, TEXTS[::-1]), atol=1e-6)


def test_ernie_m_positions_start_at_two_and_it_has_no_token_types(tok):
    plain = random_teacher(small(layer_norm_eps=1e-5), tok, num_labels=2, seed=1)
    shifted = random_teacher(small(layer_norm_eps=1e-5, position_offset=2), tok, 2, seed=1)
    assert not np.allclose(logits(plain), logits(shifted))
    m = random_teacher(small(type_vocab_size=0, position_offset=2, family="ernie_m",
                             layer_norm_eps=1e-5), tok, 2, seed=1)
    assert m.model.ernie.embeddings.token_type_embeddings is None
    batch = tok.encode(TEXTS, TEXTS, max_len=16)
    feed = {k: paddle.to_tensor(v) for k, v in batch.items()}
    with paddle.no_grad():
        a = m.model(**feed)["logits"].numpy()
        b = m.model(feed["input_ids"], paddle.zeros_like(feed["input_ids"]),
                    feed["attention_mask"])["logits"].numpy()
    np.testing.assert_array_equal(a, b)  # token types are ignored
    with pytest.raises(ConfigError, match="position_offset"):
        small(position_offset=64)


def test_hf_ernie_with_prefix_and_task_types_loads(tmp_path, tok):
    from safetensors.numpy import save_file

    teacher = random_teacher(small(use_task_id=True, task_type_vocab_size=3, type_vocab_size=2),
                             tok, num_labels=2, seed=7)
    hf = {}
    for name, value in teacher.model.state_dict().items():
        value = value.numpy()
        name = (name.replace(".layer_norm.", ".LayerNorm.").replace(".layers.", ".layer.")
                .replace(".self_attn.q_proj.", ".attention.self.query.")
                .replace(".self_attn.k_proj.", ".attention.self.key.")
                .replace(".self_attn.v_proj.", ".attention.self.value.")
                .replace(".self_attn.out_proj.", ".attention.output.dense.")
                .replace(".norm1.", ".attention.output.LayerNorm.")
                .replace(".linear1.", ".intermediate.dense.").replace(".linear2.", ".output.dense.")
                .replace(".norm2.", ".output.LayerNorm."))
        if name.endswith("weight") and value.ndim == 2 and "embeddings" not in name:
            value = value.T  # torch Linear: (out, in)
        hf[name] = np.ascontiguousarray(value)
    folder = tmp_path / "hf"
    folder.mkdir()
    save_file(hf, str(folder / "model.safetensors"))
    (folder / "vocab.txt").write_text("".join(t + "\n" for t in TOKENS), encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({
        "model_type": "ernie", "architectures": ["ErnieForSequenceClassification"],
        "vocab_size": 40, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "max_position_embeddings": 64, "use_task_id": True}))
    loaded = load_teacher(folder)
    assert read_checkpoint(folder).scheme.name == "hf-bert"
    assert loaded.config.task_type_vocab_size == 3 and loaded.config.type_vocab_size == 2
    np.testing.assert_allclose(logits(loaded), logits(teacher), atol=1e-5)


def test_layout_errors_name_what_was_found(tmp_path, tok):
    teacher = random_teacher(small(), tok, num_labels=2, seed=0)
    save_teacher(teacher, tmp_path / "t", save_format="paddlenlp")
    strip_ours(tmp_path / "t")
    cfg = json.loads((tmp_path / "t" / "config.json").read_text())
    (tmp_path / "t" / "config.json").write_text(json.dumps({**cfg, "model_type": "roberta"}))
    with pytest.raises(CheckpointError, match="model_type 'roberta' is not an ERNIE family.*"
                                              "ernie, ernie_gram, ernie_m"):
        load_teacher(tmp_path / "t")
    gram = {**cfg, "model_type": "ernie_gram", "embedding_size": 8}
    (tmp_path / "t" / "config.json").write_text(json.dumps(gram))
    with pytest.raises(CheckpointError, match="embedding_size 8 differs from hidden_size 16"):
        load_teacher(tmp_path / "t")
    (tmp_path / "t" / "model_state.pdparams").unlink()
    (tmp_path / "t" / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"Found: config.json, pytorch_model.bin, "
                                              r"tokenizer_config.json, vocab.txt \(a PyTorch .bin "
                                              r"is not read.*Expected one of: \(1\)"):
        load_teacher(tmp_path / "t")


def test_save_format_paddlenlp_refuses_what_paddlenlp_cannot_run(tmp_path, tok):
    mean = random_teacher(small(pooling="mean"), tok, num_labels=2, seed=0)
    with pytest.raises(CheckpointError, match="cannot be saved in PaddleNLP format: it pools "
                                              "by 'mean'"):
        save_teacher(mean, tmp_path / "m", save_format="paddlenlp")
    assert not (tmp_path / "m").exists()
    save_teacher(mean, tmp_path / "m")  # auto: this tool's files only
    assert not (tmp_path / "m" / "config.json").exists()
    assert json.loads((tmp_path / "m" / "teacher.json").read_text())["paddlenlp"] is False
    repo_eps = random_teacher(small(layer_norm_eps=1e-5), tok, num_labels=2, seed=0)
    with pytest.raises(CheckpointError, match="epsilon is 1e-05 and PaddleNLP's ernie runs"):
        save_teacher(repo_eps, tmp_path / "e", save_format="paddlenlp")


def test_distill_convert(tmp_path, tok, capsys):
    teacher = random_teacher(small(), tok, num_labels=2, seed=3)
    save_teacher(teacher, tmp_path / "src", save_format="canonical")
    assert cli(["convert", str(tmp_path / "src"), str(tmp_path / "out"), "--to",
                "paddlenlp"]) == 0
    assert "also a PaddleNLP model folder" in capsys.readouterr().out
    assert {"config.json", "tokenizer_config.json"} <= set(os.listdir(tmp_path / "out"))
    np.testing.assert_allclose(logits(load_teacher(tmp_path / "out")), logits(teacher),
                               atol=1e-6)
    mean = random_teacher(small(pooling="mean"), tok, num_labels=2, seed=0)
    save_teacher(mean, tmp_path / "mean")
    assert cli(["convert", str(tmp_path / "mean"), str(tmp_path / "o2"), "--to",
                "paddlenlp"]) == 2
    assert "pools by 'mean'" in capsys.readouterr().err
