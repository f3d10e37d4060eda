"""Teacher fine-tuning on the smoke task with a tiny random ERNIE (real training, CPU)."""
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main as cli
from distill.data.examples import load_task
from distill.train.trainer import TrainConfig
from teachers.checkpoint import load_teacher, random_teacher, save_teacher
from teachers.config import ErnieConfig
from teachers.finetune import ensure_head, finetune, freeze_lower_layers, limit_examples
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke"


@pytest.fixture(scope="module")
def task():
    return load_task(SMOKE / "train.tsv", SMOKE / "dev.tsv", SMOKE / "test.tsv", name="smoke")


@pytest.fixture(scope="module")
def tokenizer(task, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_wordpiece_vocab([ex.text_a for ex in task.train], path)
    return WordPieceTokenizer(path)


def tiny_teacher(tokenizer, num_labels=2, seed=0):
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64)
    return random_teacher(config, tokenizer, num_labels=num_labels, seed=seed, max_len=32)


def settings(**kwargs):
    base = dict(epochs=4, batch_size=16, lr=2e-3, warmup_ratio=0.1, device="cpu",
                progress=False, seed=3, log_every=5)
    base.update(kwargs)
    return TrainConfig(**base)


def logits_of(teacher, texts):
    import paddle

    enc = teacher.tokenizer.encode(texts, max_len=teacher.max_len)
    teacher.model.eval()
    with paddle.no_grad():
        return teacher.model(**{k: paddle.to_tensor(v) for k, v in enc.items()})["logits"].numpy()


def test_finetune_beats_chance_and_saves_a_loadable_teacher(tmp_path, task, tokenizer):
    teacher = tiny_teacher(tokenizer, num_labels=3)  # wrong head size: replaced
    result = finetune(teacher, task, settings(), tmp_path, max_len=32)
    assert result["dev"]["accuracy"] >= 0.75 and result["test"]["accuracy"] >= 0.7
    assert result["train_time_s"] > 0 and result["steps"] == 4 * 15
    assert teacher.labels == task.labels and teacher.model.num_labels == 2
    loaded = load_teacher(tmp_path / "teacher")
    assert loaded.labels == task.labels and loaded.max_len == 32
    texts = [ex.text_a for ex in task.dev[:8]]
    np.testing.assert_allclose(logits_of(loaded, texts), logits_of(teacher, texts), atol=1e-5)
    assert (tmp_path / "finetune.json").exists()
    assert (tmp_path / "train" / "best" / "model_state.pdparams").exists()


def test_ensure_head_keeps_the_encoder_and_replaces_only_the_head(tokenizer):
    teacher = tiny_teacher(tokenizer, num_labels=3)
    before = {k: v.numpy().copy() for k, v in teacher.model.state_dict().items()}
    assert ensure_head(teacher, ["a", "b"], seed=1)
    after = teacher.model.state_dict()
    assert list(after["classifier.weight"].shape) == [32, 2]
    for k, v in before.items():
        if not k.startswith("classifier."):
            np.testing.assert_array_equal(v, after[k].numpy(), err_msg=k)
    teacher.labels = ["a", "b"]
    assert not ensure_head(teacher, ["a", "b"], seed=1)  # same labels and size: kept
    assert ensure_head(teacher, ["b", "a"], seed=1)  # other label order: new head


def test_train_layers_freezes_the_lower_layers_only(tmp_path, task, tokenizer):
    teacher = tiny_teacher(tokenizer)
    teacher.labels = list(task.labels)
    before = {k: v.numpy().copy() for k, v in teacher.model.state_dict().items()}
    small = load_task(SMOKE / "train.tsv", SMOKE / "dev.tsv", None, name="smoke")
    small.train = limit_examples(small.train, 48, seed=0)
    finetune(teacher, small, settings(epochs=1), tmp_path, max_len=32, train_layers=1)
    after = teacher.model.state_dict()
    for k, v in before.items():
        changed = not np.array_equal(v, after[k].numpy())
        lower = "embeddings" in k or ".layers.0." in k
        assert changed != lower, k
    assert not any(p.stop_gradient for p in teacher.model.parameters())  # flags restored
    assert freeze_lower_layers(teacher.model, 5) == []  # more than there are: none frozen


def test_cli_finetune(tmp_path, task, tokenizer, capsys):
    teacher = tiny_teacher(tokenizer)
    save_teacher(teacher, tmp_path / "random")
    code = cli(["finetune", "--teacher", str(tmp_path / "random"),
                "--train", str(SMOKE / "train.tsv"), "--dev", str(SMOKE / "dev.tsv"),
                "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16",
                "--micro-batch-size", "8", "--max-len", "24", "--limit-train", "64",
                "--device", "cpu", "--no-progress", "--lr", "1e-3"])
    assert code == 0
    assert "teacher saved to" in capsys.readouterr().out
    assert load_teacher(tmp_path / "run" / "teacher").labels == task.labels
    assert cli(["finetune", "--teacher", str(tmp_path / "random"), "--out",
                str(tmp_path / "x")]) == 2
    assert "no data" in capsys.readouterr().err
