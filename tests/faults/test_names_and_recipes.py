"""Families 5 and 6: output names stay inside the output folder; the recipe loader is bounded."""
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from distill.cli import main
from distill.core.errors import RecipeError, UserError
from distill.core.io import plain_name_problem
from distill.pipeline.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.yaml"


def smoke_with(tmp_path, old, new) -> Path:
    text = SMOKE.read_text()
    assert old in text
    path = tmp_path / "r.yaml"
    path.write_text(text.replace(old, new).replace("data/smoke/", str(ROOT / "recipes/data/smoke") + "/"))
    return path


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "..", ".hidden", "a/b", "-rf", "", "x" * 101])
def test_recipe_name_must_be_plain(tmp_path, name):
    recipe = smoke_with(tmp_path, "name: smoke", f"name: '{name}'")
    with pytest.raises(RecipeError, match="line 5: name: .*not a plain name"):
        load_recipe(recipe)


@pytest.mark.parametrize("name", ["..", "../up", "/abs"])
def test_student_name_must_be_plain(tmp_path, name):
    recipe = smoke_with(tmp_path, "  - name: cnn", f"  - name: '{name}'")
    with pytest.raises(RecipeError, match=r"students\[1\]\.name"):
        load_recipe(recipe)


def test_export_package_name_must_be_plain(tmp_path, capsys):
    code = main(["export", str(tmp_path / "model"), "--out", str(tmp_path / "o"),
                 "--package", "../../x", "--eval", str(ROOT / "recipes/data/smoke/dev.tsv")])
    assert code == 2 and "--package" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and list(tmp_path.iterdir()) == []


@given(st.text(max_size=30))
def test_plain_names_never_escape(name):
    if plain_name_problem(name) is None:
        assert "/" not in name and "\\" not in name and name not in (".", "..")
        assert not name.startswith(".") and Path(name).name == name


def alias_bomb(levels=9) -> str:
    letters = "abcdefghij"
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev = letters[i - 1]
        lines.append(f"{letters[i]}: &{letters[i]} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_fails_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb())
    assert len(path.read_bytes()) < 1024
    start = time.perf_counter()
    with pytest.raises(RecipeError, match="expands to more than"):
        load_recipe(path)
    assert time.perf_counter() - start < 30  # generous: it is linear in the file (ms here)
    with pytest.raises(RecipeError, match="expands to more than"):
        _bomb_override()


def _bomb_override():
    flow = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], " \
           "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], " \
           "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]]"
    load_recipe(SMOKE, overrides=[f"seeds={flow}"])


def test_recursive_alias_and_bad_bytes(tmp_path):
    (tmp_path / "cyc.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "cyc.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"name: smoke\nnote: caf\xe9\n")
    with pytest.raises(RecipeError, match=r"line 2: not UTF-8"):
        load_recipe(tmp_path / "latin1.yaml")
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(RecipeError, match="dir.yaml"):
        load_recipe(tmp_path / "dir.yaml")


def test_ordinary_anchors_still_work(tmp_path):
    recipe = smoke_with(tmp_path, "    train: {epochs: 4, batch_size: 32, lr: 0.005}\n  - name: cnn",
                        "    train: &tr {epochs: 4, batch_size: 32, lr: 0.005}\n  - name: cnn")
    recipe.write_text(recipe.read_text().replace(
        "    train: {epochs: 4, batch_size: 32, lr: 0.005}\n\nexport", "    train: *tr\n\nexport"))
    loaded = load_recipe(recipe)
    assert loaded.recipe.students[1].train == loaded.recipe.students[0].train


_yaml_ish = st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#%@`, \n\t0123456789.\\")),
                    max_size=200)


@settings(max_examples=200, deadline=None)
@given(_yaml_ish)
def test_random_recipes_never_traceback(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("r") / "r.yaml"
    path.write_text(text)
    try:
        load_recipe(path)
    except UserError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(["data", "teacher", "students", "name", "seeds",
                                                       "kind", "config", "train", "x"]), kids, max_size=4),
                    max_leaves=25))
def test_random_structures_never_traceback(raw):
    try:
        load_recipe(raw if isinstance(raw, dict) else {"students": raw})
    except UserError:
        pass
