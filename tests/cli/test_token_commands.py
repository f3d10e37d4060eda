"""`distill finetune` / `label` / `train` on token (NER) files: the single-stage path of a token
recipe, on the smoke NER data with a tiny random teacher (seconds), and its errors (exit 2,
file/line/field, no traceback)."""
import json
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main
from distill.data.tokens import TokenExample, read_token_examples, write_token_examples

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "data" / "smoke_ner"
TRAIN, DEV, TEST = (str(SMOKE / f"{s}.txt") for s in ("train", "dev", "test"))


def run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def base_teacher(tmp_path_factory):
    """A tiny random sentence teacher on disk: what `distill finetune --task token` starts from."""
    from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
    from teachers.checkpoint import random_teacher, save_teacher
    from teachers.config import ErnieConfig

    folder = tmp_path_factory.mktemp("base")
    rows = read_token_examples(TRAIN)
    write_wordpiece_vocab(["".join(ex.tokens) for ex in rows], folder / "vocab.txt")
    tokenizer = WordPieceTokenizer(folder / "vocab.txt")
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64)
    return save_teacher(random_teacher(config, tokenizer, 2, max_len=48), folder / "teacher")


@pytest.fixture(scope="module")
def token_teacher_dir(base_teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    code = main(["finetune", "--teacher", str(base_teacher), "--train", TRAIN, "--dev", DEV,
                 "--out", str(out), "--epochs", "2", "--batch-size", "16", "--lr", "0.003",
                 "--max-len", "48", "--no-progress"])
    assert code == 0
    return out / "teacher"


def test_finetune_makes_a_token_teacher(token_teacher_dir):
    meta = json.loads((token_teacher_dir / "teacher.json").read_text())
    assert meta["task"] == "token" and meta["scheme"] == "bmes"
    result = json.loads((token_teacher_dir.parent / "finetune.json").read_text())
    assert result["tags"] == meta["labels"] and 0.0 <= result["dev"]["f1"] <= 1.0


def test_label_then_train_distils_a_tagger(token_teacher_dir, tmp_path, capsys):
    from teachers.token_model import load_token_teacher, token_logits

    labels = tmp_path / "labels"
    code, out, err = run(["label", "--teacher", str(token_teacher_dir), "--input", TRAIN,
                          "--out", str(labels), "--storage", "float32", "--no-progress"], capsys)
    assert code == 0, err
    assert "sentences" in out and (labels / "soft_labels.npz").is_file()
    rows = read_token_examples(TRAIN)
    teacher = load_token_teacher(token_teacher_dir)
    expected = token_logits(teacher.model, teacher.tokenizer, rows[:5], max_len=teacher.max_len)
    from teachers.token_soft_labels import load_token_soft_labels

    stored = load_token_soft_labels(labels)
    assert len(stored) == len(rows)
    for got, want in zip(stored[:5], expected):
        np.testing.assert_allclose(got, want, atol=1e-4)

    student = tmp_path / "lstm"
    code, out, err = run(["train", "--kind", "lstm", "--train", TRAIN, "--dev", DEV, "--test",
                          TEST, "--soft-labels", str(labels), "--out", str(student),
                          "--epochs", "2", "--batch-size", "16", "--lr", "0.01",
                          "--config", '{"emb_dim": 16, "hidden_size": 16}', "--no-progress"],
                         capsys)
    assert code == 0, err
    line = json.loads(out.splitlines()[0])
    assert line["mode"] == "distilled" and "soft_ce" in line["loss"]
    assert set(line["test"]) == {"f1", "precision", "recall"}
    saved = json.loads((student / "student" / "student.json").read_text())
    assert saved["task"] == "token" and saved["scheme"] == "bmes" and saved["unit"] == "char"


def test_token_jsonl_and_augmented_rows(token_teacher_dir, tmp_path, capsys):
    """Token JSONL is recognised by its `tokens` field; augmented rows take their own labels
    folder, stacked after the training rows'."""
    rows = read_token_examples(TRAIN)[:40]
    train, aug = tmp_path / "train.jsonl", tmp_path / "aug.jsonl"
    write_token_examples(train, rows)
    write_token_examples(aug, [TokenExample(ex.tokens[:3]) for ex in rows[:10]])
    for name, path in (("l_train", train), ("l_aug", aug)):
        code, _, err = run(["label", "--teacher", str(token_teacher_dir), "--input", str(path),
                            "--out", str(tmp_path / name), "--no-progress"], capsys)
        assert code == 0, err
    code, out, err = run(["train", "--kind", "cnn", "--train", str(train), "--dev", DEV,
                          "--augmented", str(aug), "--soft-labels", str(tmp_path / "l_train"),
                          str(tmp_path / "l_aug" / "soft_labels.npz"),
                          "--out", str(tmp_path / "cnn"), "--epochs", "1",
                          "--config", '{"emb_dim": 16, "num_filters": 16, "num_layers": 1}',
                          "--no-progress"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "cnn" / "result.json").read_text())
    assert result["augmented_rows"] == 10 and result["mode"] == "distilled"


def test_tiny_crf_tagger_from_the_token_teacher(token_teacher_dir, tmp_path, capsys):
    code, out, err = run(["train", "--kind", "tiny", "--train", TRAIN, "--dev", DEV,
                          "--teacher", str(token_teacher_dir), "--out", str(tmp_path / "tiny"),
                          "--epochs", "1", "--config", '{"num_layers": 1, "crf": true}',
                          "--no-progress"], capsys)
    assert code == 0, err
    result = json.loads((tmp_path / "tiny" / "result.json").read_text())
    assert result["mode"] == "plain" and result["teacher_layers"] == [1]
    assert result["loss"] == "1*crf" and result["config"]["crf"] is True


def test_augment_writes_tag_aligned_samples_deterministically(tmp_path, capsys):
    from distill.text.tags import first_violation

    outs = []
    for name in ("a.jsonl", "b.jsonl"):
        code, out, err = run(["augment", TRAIN, str(tmp_path / name), "--n-iter", "2",
                              "--p-entity", "0.5", "--mask-token", "[MASK]"], capsys)
        assert code == 0, err
        assert "tag-aligned samples" in out
        outs.append((tmp_path / name).read_bytes())
    assert outs[0] == outs[1]
    rows = read_token_examples(tmp_path / "a.jsonl", scheme="bmes")
    train = read_token_examples(TRAIN)
    assert len(rows) > len(train) // 2
    for row in rows:
        assert first_violation(row.tags, "bmes") is None
    sources = [json.loads(line)["source_id"] for line in outs[0].decode().splitlines()]
    assert all(0 <= s < len(train) for s in sources)


def _bad_file(tmp_path, line3: str) -> str:
    lines = Path(TRAIN).read_text(encoding="utf-8").splitlines()
    lines[2] = line3
    path = tmp_path / "bad.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("line3, problem", [("与 X-PER", "field 'tags'"),
                                            ("与 O extra", "line 3"),
                                            ("与 M-PER", "line 3, field 'tags'")])
def test_bad_token_files_name_file_and_line(tmp_path, capsys, line3, problem):
    bad = _bad_file(tmp_path, line3)
    code, _, err = run(["train", "--kind", "lstm", "--train", bad, "--out",
                        str(tmp_path / "s"), "--no-progress"], capsys)
    assert code == 2 and "Traceback" not in err
    assert f"{bad}, line 3" in err and problem in err


def test_wrong_teacher_and_wrong_soft_labels_are_user_errors(base_teacher, token_teacher_dir,
                                                            tmp_path, capsys):
    code, _, err = run(["label", "--teacher", str(base_teacher), "--input", TRAIN,
                        "--out", str(tmp_path / "l")], capsys)
    assert code == 2 and "not a token teacher" in err
    code, _, err = run(["label", "--teacher", str(token_teacher_dir), "--input", TRAIN,
                        "--out", str(tmp_path / "l"), "--shard", "0/2"], capsys)
    assert code == 2 and "--shard" in err
    labels = tmp_path / "dev_labels"
    assert main(["label", "--teacher", str(token_teacher_dir), "--input", DEV, "--out",
                 str(labels), "--no-progress"]) == 0
    code, _, err = run(["train", "--kind", "lstm", "--train", TRAIN, "--soft-labels",
                        str(labels), "--out", str(tmp_path / "s"), "--no-progress"], capsys)
    assert code == 2 and "soft-label rows" in err
    code, _, err = run(["train", "--kind", "bow", "--train", TRAIN, "--out",
                        str(tmp_path / "b")], capsys)
    assert code == 2 and "unknown token student kind 'bow'" in err


def test_help_explains_token_tasks(capsys):
    for command in ("augment", "label", "train", "finetune"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "Token tasks (NER)" in text and "--scheme" in text and "CoNLL" in text
