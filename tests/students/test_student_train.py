"""students.train: plain and distilled training through the one trainer, the CLI, pairs, online mode."""
import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.cli import main as cli
from distill.data.examples import Example, Task, load_task, write_examples
from distill.core.errors import UserError
from students.io import load_student, predict_logits
from students.train import default_train_config, train_student

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke"


def smoke_task():
    return load_task(SMOKE / "train.tsv", SMOKE / "dev.tsv", SMOKE / "test.tsv")


def quick(kind="bow", **overrides):
    values = dict(epochs=3, batch_size=16, progress=False)
    values.update(overrides)
    return default_train_config(kind, **values)


def step_losses(out_dir):
    lines = (Path(out_dir) / "train" / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "epoch"]


def test_plain_training_saves_a_student_that_reproduces_its_metrics(tmp_path):
    task = smoke_task()
    result = train_student("bow", {"emb_dim": 16}, task, tmp_path / "bow",
                           quick("bow", epochs=8, lr=5e-3))
    assert result["mode"] == "plain" and result["loss"] == "1*hard_ce"
    epochs = step_losses(tmp_path / "bow")
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert result["test"]["accuracy"] > 0.6  # the smoke task is learnable (chance = 0.5)
    model, encoder, meta = load_student(result["student_dir"])
    assert meta["mode"] == "plain" and meta["labels"] == task.labels
    logits = predict_logits(model, encoder, [ex.text_a for ex in task.test], max_len=meta["max_len"])
    gold = np.array([task.labels.index(ex.label) for ex in task.test])
    assert (logits.argmax(1) == gold).mean() == pytest.approx(result["test"]["accuracy"])


def zorp_task():
    """Gold rows never show 'zorp' (positive) or 'blah' (negative); only augmented rows do,
    labelled by the teacher. Dev/test rows hinge on those words."""
    rng = np.random.default_rng(0)
    filler = "the film was a story really quite".split()

    def text(word):
        words = list(rng.choice(filler, size=3))
        words.insert(1, word)
        return " ".join(words)

    train = [Example(text("good" if i % 2 else "bad"), label="pos" if i % 2 else "neg")
             for i in range(40)]
    augmented = [Example(text("zorp" if i % 2 else "blah")) for i in range(80)]
    dev = [Example(text("zorp"), label="pos") for _ in range(10)] + \
          [Example(text("blah"), label="neg") for _ in range(10)]
    task = Task("zorp", train, dev, dev, ["neg", "pos"])
    # teacher logits: confident and right on every row (positive = good or zorp)
    rows = train + augmented
    positive = np.array([("good" in ex.text_a or "zorp" in ex.text_a) for ex in rows])
    logits = np.where(positive[:, None], [[-3.0, 3.0]], [[3.0, -3.0]]).astype(np.float32)
    return task, augmented, logits


def test_distillation_uses_the_augmented_rows_and_their_soft_labels(tmp_path):
    task, augmented, logits = zorp_task()
    config = quick(epochs=4, lr=0.01)
    plain = train_student("bow", {}, task, tmp_path / "plain", config)
    distilled = train_student("bow", {}, task, tmp_path / "kd", config, teacher_logits=logits,
                              augmented=augmented, loss="soft_ce:0.9,hard_ce:0.1")
    assert distilled["mode"] == "distilled" and distilled["augmented_rows"] == 80
    assert distilled["loss"] == "0.9*soft_ce(T=1) + 0.1*hard_ce"
    # only the augmented rows teach that 'zorp' is positive
    assert distilled["test"]["accuracy"] == 1.0
    assert plain["test"]["accuracy"] <= 0.7  # both words are [UNK] to the plain student
    _, encoder, _ = load_student(distilled["student_dir"])
    assert "zorp" in encoder.index


def test_soft_labels_must_cover_train_then_augmented_rows(tmp_path):
    task, augmented, logits = zorp_task()
    with pytest.raises(UserError, match=r"40 training rows then 80 augmented rows"):
        train_student("bow", {}, task, tmp_path, quick(), teacher_logits=logits[:40],
                      augmented=augmented)
    with pytest.raises(UserError, match="no soft labels"):
        train_student("bow", {}, task, tmp_path, quick(), augmented=augmented)
    with pytest.raises(UserError, match="needs teacher logits"):
        train_student("bow", {}, task, tmp_path, quick(), loss="kl:1")
    with pytest.raises(UserError, match="only the 'tiny' student"):
        train_student("cnn", {}, task, tmp_path, quick(), loss="kl:1,hidden_mse:1")


@pytest.mark.parametrize("kind", ["bow", "lstm", "gru"])
def test_pair_tasks_train_for_word_students(kind, tmp_path):
    rng = np.random.default_rng(1)
    words = "good great fine bad awful dull".split()

    def rows(n):
        out = []
        for _ in range(n):
            a, b = rng.choice(words), rng.choice(words)
            same = (a in words[:3]) == (b in words[:3])
            out.append(Example(f"the {a} film", f"a {b} story", "same" if same else "differ"))
        return out

    task = Task("pairs", rows(64), rows(16), rows(16), ["same", "differ"])
    result = train_student(kind, {"emb_dim": 16}, task, tmp_path / kind,
                           quick(kind, epochs=2, lr=0.01))
    epochs = step_losses(tmp_path / kind)
    assert len(epochs) == 2 and np.isfinite(epochs[-1]["train_loss"])
    model, encoder, _ = load_student(result["student_dir"])
    enc = encoder.encode(["the good film"], ["a bad story"])
    assert enc["token_type_ids"].max() == 1
    assert model(**{k: paddle.to_tensor(v) for k, v in enc.items()})["logits"].shape == [1, 2]


def test_cli_trains_a_distilled_student_from_files(tmp_path, capsys):
    task, augmented, logits = zorp_task()
    for name, rows in (("train", task.train), ("dev", task.dev), ("aug", augmented)):
        write_examples(tmp_path / f"{name}.tsv", rows)
    np.save(tmp_path / "logits.npy", logits)
    code = cli(["train", "--kind", "cnn", "--train", str(tmp_path / "train.tsv"),
                "--dev", str(tmp_path / "dev.tsv"), "--test", str(tmp_path / "dev.tsv"),
                "--augmented", str(tmp_path / "aug.tsv"), "--soft-labels", str(tmp_path / "logits.npy"),
                "--loss", "kl:1,hard_ce:0.5", "--temperature", "2", "--epochs", "2",
                "--config", '{"emb_dim": 16, "num_filters": 8}', "--out", str(tmp_path / "out"),
                "--no-progress", "--no-amp"])
    assert code == 0
    line = json.loads(capsys.readouterr().out.splitlines()[0])
    assert line["mode"] == "distilled" and line["loss"] == "1*kl(T=2) + 0.5*hard_ce"
    saved = json.loads((tmp_path / "out" / "result.json").read_text())
    assert saved["augmented_rows"] == 80 and saved["train_config"]["epochs"] == 2
    assert saved["train_config"]["amp"] is False  # --no-amp (AMP is off on CPU anyway)
    assert (tmp_path / "out" / "student" / "encoder.json").exists()


def test_cli_user_errors_exit_2(tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros(3, dtype=np.float32))
    code = cli(["train", "--kind", "bow", "--train", str(SMOKE / "train.tsv"),
                "--soft-labels", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "(rows, labels)" in capsys.readouterr().err


def tiny_setup(layers=4):
    from teachers.checkpoint import random_teacher
    from teachers.config import ErnieConfig
    from distill.text.tokenizer import WordPieceTokenizer

    task = smoke_task()
    words = sorted({w.lower().strip(".!") for ex in task.train for w in ex.text_a.split()})
    tok = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "!"] + words)
    config = ErnieConfig(vocab_size=tok.vocab_size + 3, hidden_size=16, num_layers=layers,
                         num_heads=2, intermediate_size=32, max_position_embeddings=64)
    teacher = random_teacher(config, tok, num_labels=2, seed=0, labels=task.labels)
    logits = np.random.default_rng(0).normal(size=(len(task.train), 2)).astype(np.float32)
    return task, teacher, logits


def test_tiny_online_distillation_trains_projection_and_leaves_teacher_untouched(tmp_path):
    task, teacher, logits = tiny_setup()
    before = {k: v.numpy().copy() for k, v in teacher.model.state_dict().items()}
    config = quick("tiny", epochs=2, lr=1e-3, log_every=1)
    result = train_student("tiny", {"num_layers": 2}, task, tmp_path / "tiny", config,
                           teacher_logits=logits, teacher=teacher,
                           loss="kl:1,hidden_mse:1,attention:1")
    assert result["teacher_layers"] == [1, 3]
    assert result["loss"] == "1*kl(T=1) + 1*hidden_mse(0->0,1->2,2->4) + 1*attention_kl(0->1,1->3)"
    steps = [json.loads(line) for line in
             (tmp_path / "tiny" / "train" / "metrics.jsonl").read_text().splitlines()]
    steps = [s for s in steps if s["type"] == "step"]
    assert {"kl", "hidden_mse", "attention"} <= set(steps[0])
    assert steps[-1]["hidden_mse"] < steps[0]["hidden_mse"]
    assert (tmp_path / "tiny" / "train" / "last" / "loss_state.pdparams").exists()  # projection
    assert not teacher.model.training
    for key, value in teacher.model.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), before[key])
    model, encoder, meta = load_student(result["student_dir"])
    assert meta["vocab_size"] == teacher.config.vocab_size and type(encoder) is type(teacher.tokenizer)


def test_tiny_plain_from_random_init_without_teacher_weights(tmp_path):
    task, teacher, _ = tiny_setup(layers=2)
    config = {"num_layers": 1, "hidden_size": 8, "num_heads": 2, "intermediate_size": 16,
              "init": "random"}
    result = train_student("tiny", config, task, tmp_path / "t", quick("tiny", epochs=1, lr=1e-3),
                           encoder=teacher.tokenizer)
    assert result["mode"] == "plain" and "teacher_layers" not in result
    with pytest.raises(UserError, match="needs --teacher"):
        train_student("tiny", {"num_layers": 1}, task, tmp_path / "u", quick("tiny"),
                      encoder=teacher.tokenizer)
