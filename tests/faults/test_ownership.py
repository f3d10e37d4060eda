"""Family 2: the tool replaces or deletes only what it created (ownership marker)."""
from pathlib import Path

import pytest

from distill.cli import main
from distill.core.errors import UserError
from distill.core.io import (MARKER, atomic_path, ensure_owned_dir, is_owned, remove_owned,
                             write_text)
from distill.pipeline.stages import Pipeline, Stage

ROOT = Path(__file__).resolve().parents[2]
SMOKE_DATA = ROOT / "recipes" / "data" / "smoke"


def test_atomic_path_refuses_a_foreign_folder(tmp_path):
    victim = tmp_path / "victim.jsonl"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="victim.jsonl"):
        write_text(victim, "new")
    with pytest.raises(UserError, match="did not create"):
        with atomic_path(victim) as tmp:
            tmp.mkdir()
    assert (victim / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["victim.jsonl"]  # no temporary left over


def test_atomic_path_replaces_its_own_folder_and_files(tmp_path):
    out = tmp_path / "out"
    for text in ("one", "two"):
        with atomic_path(out) as tmp:
            tmp.mkdir()
            (tmp / "x.txt").write_text(text)
        assert is_owned(out) and (out / "x.txt").read_text() == text
    write_text(tmp_path / "f.txt", "a")
    write_text(tmp_path / "f.txt", "b")  # a file replaces a file, like `>` in a shell
    assert (tmp_path / "f.txt").read_text() == "b"
    with pytest.raises(UserError, match="file is in the way"):
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.mkdir()
    assert (tmp_path / "f.txt").read_text() == "b"


def test_remove_and_adopt_only_owned(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a").write_text("x")
    with pytest.raises(UserError, match="did not create"):
        remove_owned(foreign)
    with pytest.raises(UserError, match="not created by this tool"):
        ensure_owned_dir(foreign)
    assert (foreign / "a").exists() and not (foreign / MARKER).exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    ensure_owned_dir(empty)  # an empty folder is adopted
    assert is_owned(empty) and remove_owned(empty) and not empty.exists()


def test_augment_into_an_existing_folder_keeps_it(tmp_path, capsys):
    victim = tmp_path / "victim.jsonl"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    code = main(["augment", str(SMOKE_DATA / "train.tsv"), str(victim), "--n-iter", "1"])
    assert code == 2 and str(victim) in capsys.readouterr().err
    assert (victim / "keep.txt").read_text() == "mine"


def test_run_out_on_the_recipes_own_folder_deletes_nothing(tmp_path, capsys):
    proj = tmp_path / "proj"
    (proj / "teacher" / "ckpt").mkdir(parents=True)
    (proj / "teacher" / "ckpt" / "weights.bin").write_bytes(b"precious")
    recipe = proj / "my.yaml"
    recipe.write_text((ROOT / "recipes" / "smoke.yaml").read_text()
                      .replace("data/smoke/", str(SMOKE_DATA) + "/"))
    code = main(["run", str(recipe), "--out", str(proj)])
    assert code == 2 and str(proj) in capsys.readouterr().err
    assert (proj / "teacher" / "ckpt" / "weights.bin").read_bytes() == b"precious"
    assert sorted(p.name for p in proj.iterdir()) == ["my.yaml", "teacher"]


def test_stage_folder_without_marker_is_not_wiped(tmp_path):
    run_dir = tmp_path / "run"
    ensure_owned_dir(run_dir)
    (run_dir / "a").mkdir()
    (run_dir / "a" / "user.txt").write_text("mine")  # a folder the user put where a stage goes
    stages = [Stage("a", "a", lambda ctx: {"v": 1})]
    with pytest.raises(UserError, match="did not create"):
        Pipeline(run_dir, stages, log=lambda m: None).run()
    with pytest.raises(UserError, match="did not create"):
        Pipeline(run_dir, stages, force=["a"], log=lambda m: None).run()
    assert (run_dir / "a" / "user.txt").read_text() == "mine"


def test_corrupt_done_json_reruns_the_stage_with_a_warning(tmp_path):
    run_dir = tmp_path / "run"
    calls, messages = [], []
    stages = [Stage("a", "a", lambda ctx: calls.append(1) or {"v": 1})]
    Pipeline(run_dir, stages, log=messages.append).run()
    (run_dir / "a" / "done.json").write_text("")  # truncated by a crash or a full disk
    Pipeline(run_dir, stages, log=messages.append).run()
    assert len(calls) == 2
    assert any("warning" in m and "done.json" in m for m in messages)
    (run_dir / "a" / "done.json").write_text("[1, 2]")
    (run_dir / "a" / "started.json").write_bytes(b"\xff\xfe")
    Pipeline(run_dir, stages, log=messages.append).run()
    assert len(calls) == 3
