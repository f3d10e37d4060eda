"""Family 1 (through the commands) and family 7: user mistakes exit 2 with a message naming the
file or key, never a traceback; crafted checkpoints are refused without running their payload."""
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from distill.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.yaml"
SMOKE_DATA = ROOT / "recipes" / "data" / "smoke"
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


class MakeDir:
    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def run_cli(argv, capsys):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def student_dir(folder: Path, weights=None) -> Path:
    """A real saved BOW student whose weights file is then replaced by ``weights``."""
    import paddle

    from distill.text.vocab import WordVocab
    from students.io import save_student
    from students.registry import build_student

    vocab = WordVocab.build(["a good film", "a bad film"], language="en")
    paddle.seed(0)
    model = build_student("bow", {"emb_dim": 8, "hidden_sizes": [8]}, vocab_size=vocab.vocab_size,
                          num_labels=2)
    save_student(folder, model, "bow", vocab, labels=["negative", "positive"], max_len=8)
    if weights is not None:
        (folder / "model_state.pdparams").write_bytes(weights)
    return folder


def teacher_dir(folder: Path, weights: bytes) -> Path:
    folder.mkdir()
    (folder / "teacher.json").write_text(json.dumps({"name": "t", "labels": ["a", "b"], "max_len": 8}))
    (folder / "ernie_config.json").write_text(json.dumps({
        "vocab_size": 8, "hidden_size": 8, "num_layers": 1, "num_heads": 2,
        "intermediate_size": 8, "max_position_embeddings": 16}))
    (folder / "model_state.pdparams").write_bytes(weights)
    return folder


@pytest.mark.parametrize("command", ["export", "label"])
def test_pickle_payload_in_a_checkpoint_is_refused_without_running(tmp_path, capsys, command):
    pwned = tmp_path / "PWNED"
    payload = pickle.dumps({"w": np.zeros(2, np.float32), "x": MakeDir(pwned)})
    if command == "export":
        model = student_dir(tmp_path / "student", payload)
        argv = ["export", model, "--out", tmp_path / "o", "--eval", SMOKE_DATA / "dev.tsv"]
    else:
        model = teacher_dir(tmp_path / "teacher", payload)
        (tmp_path / "in.jsonl").write_text('{"text_a": "a b"}\n')
        argv = ["label", "--teacher", model, "--input", tmp_path / "in.jsonl", "--out", tmp_path / "o"]
    code, err = run_cli(argv, capsys)
    assert code == 2 and not pwned.exists()
    assert "model_state.pdparams" in err and "mkdir" in err


@pytest.mark.parametrize("content", [os.urandom(3000), b"", b"\x80\x04K\x01"])
def test_random_or_truncated_student_weights(tmp_path, capsys, content):
    model = student_dir(tmp_path / "student", content)
    code, err = run_cli(["export", model, "--out", tmp_path / "o", "--eval", SMOKE_DATA / "dev.tsv"],
                        capsys)
    assert code == 2 and "model_state.pdparams" in err


def test_folder_as_a_data_file(tmp_path, capsys):
    (tmp_path / "train.tsv").mkdir()
    code, err = run_cli(["train", "--kind", "bow", "--train", tmp_path / "train.tsv",
                         "--out", tmp_path / "o"], capsys)
    assert code == 2 and "train.tsv" in err


def test_invalid_utf8_data_file(tmp_path, capsys):
    (tmp_path / "train.tsv").write_bytes(b"text_a\tlabel\ncaf\xe9 ok\tpositive\n")
    code, err = run_cli(["train", "--kind", "bow", "--train", tmp_path / "train.tsv",
                         "--out", tmp_path / "o"], capsys)
    assert code == 2 and "train.tsv" in err


@pytest.mark.skipif(ROOT_USER, reason="root reads files whatever their permissions")
def test_unreadable_data_file(tmp_path, capsys):
    path = tmp_path / "train.tsv"
    path.write_text((SMOKE_DATA / "train.tsv").read_text())
    path.chmod(0)
    code, err = run_cli(["train", "--kind", "bow", "--train", path, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "train.tsv" in err


def test_out_is_an_existing_file_or_foreign_folder(tmp_path, capsys):
    (tmp_path / "o").write_text("mine")
    code, err = run_cli(["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv",
                         "--out", tmp_path / "o"], capsys)
    assert code == 2 and str(tmp_path / "o") in err and (tmp_path / "o").read_text() == "mine"
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "notes.txt").write_text("mine")
    code, err = run_cli(["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv",
                         "--out", tmp_path / "f"], capsys)
    assert code == 2 and "not created by this tool" in err
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["notes.txt"]


def test_nan_soft_labels_are_reported_as_such(tmp_path, capsys):
    rows = len((SMOKE_DATA / "train.tsv").read_text().splitlines()) - 1
    logits = np.zeros((rows, 2), np.float32)
    logits[3, 0] = np.nan
    np.save(tmp_path / "sl.npy", logits)
    code, err = run_cli(["train", "--kind", "bow", "--train", SMOKE_DATA / "train.tsv",
                         "--soft-labels", tmp_path / "sl.npy", "--out", tmp_path / "o",
                         "--no-progress"], capsys)
    assert code == 2 and "NaN" in err and "row 3" in err


def test_negative_seed_and_max_len_above_positions(tmp_path, capsys):
    code, err = run_cli(["run", SMOKE, "--out", tmp_path / "o", "--seeds=-1"], capsys)
    assert code == 2 and "seed" in err
    code, err = run_cli(["run", SMOKE, "--out", tmp_path / "o2", "--set", "teacher.max_len=100000"],
                        capsys)
    assert code == 2 and "teacher.max_len" in err and "positions" in err


def test_export_negative_threads(tmp_path, capsys):
    model = student_dir(tmp_path / "student")
    code, err = run_cli(["export", model, "--out", tmp_path / "o", "--eval", SMOKE_DATA / "dev.tsv",
                         "--threads", "-1"], capsys)
    assert code == 2 and "threads" in err
