"""A recipe whose teacher is a PaddleNLP model folder (ERNIE 3.0 nano sizes, random weights), end
to end: fine-tune, soft labels, a student, ONNX export, package; the run's teacher folder opens as
a PaddleNLP folder again.

The folder holds only PaddleNLP's files (config.json, model_state.pdparams, vocab.txt,
tokenizer_config.json): ``test_parity.py`` proves under ``make test-parity`` that PaddleNLP
writes and reads exactly these files, with equal outputs.
"""
from pathlib import Path

import pytest
import yaml

import distill
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab
from teachers.checkpoint import load_teacher, random_teacher, read_checkpoint, save_teacher
from teachers.config import ErnieConfig

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "data" / "smoke"
PADDLENLP_FILES = ["config.json", "model_state.pdparams", "tokenizer_config.json", "vocab.txt"]


def paddlenlp_nano_folder(folder: Path) -> Path:
    """ernie-3.0-nano-zh's architecture (4 layers, hidden 312, 12 heads, FFN 1248, 2048
    positions, 4 token types, 16 task types) with the smoke task's vocabulary."""
    texts = [line.split("\t")[0] for line in
             (SMOKE / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    vocab = folder.parent / "vocab.txt"
    write_wordpiece_vocab(texts, vocab)
    tok = WordPieceTokenizer(vocab)
    config = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=312, num_layers=4, num_heads=12,
                         intermediate_size=1248, max_position_embeddings=2048, type_vocab_size=4,
                         use_task_id=True, task_type_vocab_size=16)
    save_teacher(random_teacher(config, tok, num_labels=2, seed=0), folder,
                 save_format="paddlenlp")
    for ours in ("teacher.json", "ernie_config.json", "encoder.json", ".distill-owned"):
        (folder / ours).unlink(missing_ok=True)
    assert sorted(p.name for p in folder.iterdir()) == PADDLENLP_FILES
    return folder


def test_recipe_with_a_paddlenlp_ernie_3_nano_teacher(tmp_path):
    teacher_dir = paddlenlp_nano_folder(tmp_path / "ernie-3.0-nano-zh")
    assert read_checkpoint(teacher_dir).scheme.name == "paddlenlp"
    recipe = yaml.safe_load((ROOT / "recipes" / "smoke.yaml").read_text(encoding="utf-8"))
    recipe["name"] = "paddlenlp_nano"
    recipe["data"] = {k: str(SMOKE / f"{k}.tsv") for k in ("train", "dev", "test")}
    recipe["teacher"] = {"source": str(teacher_dir), "max_len": 32,
                         "finetune": {"epochs": 1, "batch_size": 16, "lr": 0.0005},
                         "labels": {"batch_size": 32}}
    recipe["augment"]["n_iter"] = 2
    recipe["students"] = recipe["students"][:1]
    recipe["students"][0]["train"]["epochs"] = 2
    recipe["export"]["teacher"] = False  # the students' exports and the package are enough
    path = tmp_path / "nano.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")

    report = distill.run(str(path), out=tmp_path / "run", log=lambda m: None)

    assert report["teacher"]["params"] > 4_000_000  # the nano encoder, not a toy
    assert 0.0 <= report["teacher"]["test"]["accuracy"] <= 1.0
    student = report["students"][0]
    # a random teacher after one epoch teaches little: the run, not the accuracy, is tested here
    assert student["name"] == "bow" and 0.0 <= student["distilled"]["test"]["accuracy"] <= 1.0
    assert {e["format"] for e in student["exports"]} == {"onnx", "onnx-int8"}
    assert Path(report["package"]).is_file()
    labels = list((tmp_path / "run" / "soft_labels").glob("*"))
    assert labels, "no soft labels written"
    run_teacher = tmp_path / "run" / "teacher" / "teacher"
    assert set(PADDLENLP_FILES) <= {p.name for p in run_teacher.iterdir()}
    again = load_teacher(run_teacher)
    assert (again.config.num_layers, again.config.hidden_size, again.config.use_task_id) == \
        (4, 312, True)
