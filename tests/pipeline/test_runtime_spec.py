"""The recipe's `runtime` section and `distill run --nproc/--nnodes/--master` checks (no run)."""
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.core.errors import RecipeError
from distill.pipeline.recipe import load_recipe

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "smoke.yaml"


def recipe_with(tmp_path, runtime):
    raw = yaml.safe_load(SMOKE.read_text())
    for split in ("train", "dev", "test"):
        raw["data"][split] = str(SMOKE.parent / raw["data"][split])
    if runtime is not None:
        raw["runtime"] = runtime
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_runtime_defaults_keep_the_settings_as_before(tmp_path):
    loaded = load_recipe(str(recipe_with(tmp_path, None)))
    assert (loaded.recipe.runtime.nproc, loaded.recipe.runtime.nnodes) == (1, 1)
    assert "runtime" not in loaded.settings()  # recipe.json / report of a 1-process run unchanged
    loaded = load_recipe(str(recipe_with(tmp_path, {"nproc": 2})))
    assert loaded.recipe.runtime.nproc == 2 and loaded.settings()["runtime"]["nproc"] == 2


@pytest.mark.parametrize("runtime,message", [
    ({"nproc": 0}, "runtime.nproc: must be a positive integer"),
    ({"nproc": "two"}, "runtime.nproc"),
    ({"nnodes": 2}, "runtime.master: nnodes > 1 needs"),
    ({"nnodes": 2, "master": "nohost"}, "runtime.master: expected host:port"),
    ({"procs": 2}, "procs"),
])
def test_bad_runtime_is_named(tmp_path, runtime, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(str(recipe_with(tmp_path, runtime)))


def test_bad_command_line_values_exit_2(tmp_path, capsys):
    path = recipe_with(tmp_path, None)
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--nproc", "0"]) == 2
    assert "--nproc must be a positive integer" in capsys.readouterr().err
    assert main(["run", str(path), "--out", str(tmp_path / "run"), "--nproc", "2",
                 "--nnodes", "2"]) == 2
    assert "--master" in capsys.readouterr().err
