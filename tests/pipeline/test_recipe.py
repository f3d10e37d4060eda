"""Recipe validation: unknown keys, wrong types and missing files are exit-code-2 errors naming
the key path and the YAML line; overrides; relative paths; every shipped recipe is valid."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distill.cli import main
from distill.core.errors import RecipeError
from distill.pipeline.recipe import apply_overrides, load_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "data" / "smoke"

GOOD = """\
name: unit
data:
  train: data/train.tsv
  dev: data/dev.tsv
  test: data/test.tsv
teacher:
  source: random
  max_len: 32
students:
  - name: bow
    kind: bow
  - name: cnn
    kind: cnn
    loss:
      temperature: 2.0
"""


@pytest.fixture()
def recipe_dir(tmp_path):
    (tmp_path / "data").mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / "data" / f"{split}.tsv").write_text((SMOKE / f"{split}.tsv").read_text())
    return tmp_path


def write(folder, text):
    path = folder / "r.yaml"
    path.write_text(text)
    return path


def run_cli(path, capsys, *extra):
    code = main(["run", str(path), "--out", str(path.parent / "run"), *extra])
    return code, capsys.readouterr().err


def test_good_recipe_resolves_paths_against_its_folder(recipe_dir):
    loaded = load_recipe(write(recipe_dir, GOOD))
    r = loaded.recipe
    assert r.data.train == str(recipe_dir / "data" / "train.tsv")
    assert [s.name for s in r.students] == ["bow", "cnn"]
    assert r.students[1].loss == {"temperature": 2.0}
    assert r.seeds == [0] and r.export.settings == {}


def test_unknown_key_named_with_line_and_valid_keys(recipe_dir, capsys):
    path = write(recipe_dir, GOOD.replace("    kind: cnn\n", "    kind: cnn\n    epochz: 3\n"))
    code, err = run_cli(path, capsys)
    assert code == 2
    assert "students[1].epochz" in err and "line 14" in err
    assert "unknown key" in err and "valid keys here: name, kind" in err
    assert "Traceback" not in err


def test_bad_type_named(recipe_dir, capsys):
    code, err = run_cli(write(recipe_dir, GOOD.replace("max_len: 32", "max_len: long")), capsys)
    assert code == 2 and "teacher.max_len" in err and "line 8" in err and "expected an integer" in err


def test_bad_nested_type_in_list(recipe_dir):
    with pytest.raises(RecipeError, match=r"students\[1\]\.loss.*line 14|line 1[45].*students\[1\]"):
        load_recipe(write(recipe_dir, GOOD.replace("    loss:\n      temperature: 2.0\n",
                                                    "    loss: [2.0]\n")))


def test_missing_file_named(recipe_dir, capsys):
    code, err = run_cli(write(recipe_dir, GOOD.replace("data/dev.tsv", "data/nope.tsv")), capsys)
    assert code == 2 and "data.dev" in err and "line 4" in err and "file not found" in err


def test_bad_choice_lists_the_choices(recipe_dir):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(recipe_dir, GOOD.replace("kind: bow", "kind: svm")))
    assert "students[0].kind" in str(err.value) and "bow, cnn, lstm, gru, tiny" in str(err.value)


def test_missing_section_and_conflicting_data(recipe_dir):
    with pytest.raises(RecipeError, match="teacher: missing required key"):
        load_recipe(write(recipe_dir, GOOD.replace("teacher:\n  source: random\n  max_len: 32\n", "")))
    with pytest.raises(RecipeError, match="data: give either 'builtin'"):
        load_recipe(write(recipe_dir, GOOD.replace("data:\n", "data:\n  builtin: movies_en\n")))


def test_duplicate_student_names(recipe_dir):
    with pytest.raises(RecipeError, match=r"students\[1\]\.name: duplicate"):
        load_recipe(write(recipe_dir, GOOD.replace("name: cnn", "name: bow")))


def test_teacher_export_formats_checked_and_kept_out_of_student_exports(recipe_dir):
    with pytest.raises(RecipeError, match=r"export\.teacher_formats: unknown export format"):
        load_recipe(write(recipe_dir, GOOD + "export:\n  teacher_formats: [onnx, int4]\n"))
    from distill.pipeline.runner import RunPlan

    keys = {}
    for extra in ("", "export:\n  teacher_formats: [onnx, onnx-int8]\n"):
        loaded = load_recipe(write(recipe_dir, GOOD + extra))
        stages = {st.key: st.settings for st in RunPlan(loaded, recipe_dir / "run").stages()}
        keys[extra] = stages
    plain, int8 = keys.values()
    assert plain["export/teacher"]["formats"] == ["onnx"]
    assert int8["export/teacher"]["formats"] == ["onnx", "onnx-int8"]
    assert plain["export/bow"] == int8["export/bow"]  # the students' exports do not re-run


def test_trainer_settings_checked_against_train_config(recipe_dir):
    pytest.importorskip("distill.train.trainer")
    with pytest.raises(RecipeError) as err:
        load_recipe(write(recipe_dir, GOOD + "    train:\n      epochz: 2\n"))
    assert "students[1].train.epochz" in str(err.value) and "epochs" in str(err.value)


def test_overrides_by_index_and_by_name(recipe_dir, capsys):
    path = write(recipe_dir, GOOD)
    loaded = load_recipe(path, ["teacher.max_len=16", "students.cnn.loss.temperature=4",
                                "students[0].baseline=false", "seeds=[1, 2]"])
    r = loaded.recipe
    assert r.teacher.max_len == 16 and r.students[1].loss["temperature"] == 4
    assert r.students[0].baseline is False and r.seeds == [1, 2]
    with pytest.raises(RecipeError, match="teacher.max_len"):
        load_recipe(path, ["teacher.max_len=abc"])
    with pytest.raises(RecipeError, match="no list item named 'rnn'"):
        apply_overrides(yaml.safe_load(GOOD), ["students.rnn.kind=lstm"])
    code, err = run_cli(path, capsys, "--set", "teacher.bogus=1")
    assert code == 2 and "teacher.bogus" in err


def test_cli_exit_code_2_without_traceback_in_a_subprocess(recipe_dir):
    path = write(recipe_dir, GOOD.replace("kind: bow", "kind: bow\n    colour: red"))
    out = subprocess.run([sys.executable, "-m", "distill", "run", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "students[0].colour" in out.stderr and "Traceback" not in out.stderr


def test_split_samples_are_checked_seeded_and_kept_out_of_old_fingerprints(recipe_dir):
    from distill.data.examples import Task
    from distill.pipeline.runner import RunPlan, sample_splits

    with pytest.raises(RecipeError, match=r"line 6.*data\.max_dev: expected a number of rows >= 1"):
        load_recipe(write(recipe_dir, GOOD.replace("  test: data/test.tsv\n",
                                                   "  test: data/test.tsv\n  max_dev: 0\n")))
    data = load_recipe(write(recipe_dir, GOOD.replace(
        "  test: data/test.tsv\n", "  test: data/test.tsv\n  max_dev: 3\n  max_test: 50\n"))).recipe.data
    task = Task("t", list(range(10)), list(range(100, 110)), list(range(200, 205)), labels=[])
    train, dev, test = sample_splits(task, data)
    assert train == task.train and test == task.test  # no max_train; max_test above the size
    assert len(dev) == 3 and dev == sorted(dev) and set(dev) <= set(task.dev)
    assert sample_splits(task, data)[1] == dev  # seeded
    fetch = RunPlan(load_recipe(write(recipe_dir, GOOD)), recipe_dir / "run")._fetch_stage()
    for settings in [fetch.settings] + fetch.former_settings:
        assert "max_dev" not in settings["data"] and "max_test" not in settings["data"]


def test_dict_recipe_relative_to_base_dir(recipe_dir):
    loaded = load_recipe(yaml.safe_load(GOOD), base_dir=recipe_dir)
    assert loaded.recipe.data.test == str(recipe_dir / "data" / "test.tsv")
    assert loaded.path is None and loaded.name == "unit"


SHIPPED = sorted(p for p in (ROOT / "recipes").rglob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT)) for p in SHIPPED])
def test_shipped_recipes_are_valid(path):
    loaded = load_recipe(path)
    assert loaded.recipe.students


def test_unknown_builtin_teacher_and_data_set(recipe_dir):
    with pytest.raises(RecipeError) as err:
        load_recipe(write(recipe_dir, GOOD.replace("source: random", "source: minilm-l7")))
    assert "teacher.source" in str(err.value) and "minilm-l6" in str(err.value)
    data = "data:\n  builtin: movies_fr\n"
    text = data + GOOD[GOOD.index("teacher:"):]
    with pytest.raises(RecipeError, match=r"data.builtin.*movies_en"):
        load_recipe(write(recipe_dir, text))


def test_teacher_list_is_an_ensemble_with_checked_weights(recipe_dir):
    two = GOOD.replace("teacher:\n  source: random\n  max_len: 32\n",
                       "teacher:\n  - source: random\n    max_len: 32\n"
                       "  - source: random\n    max_len: 16\n")
    r = load_recipe(write(recipe_dir, two)).recipe
    assert [t.max_len for t in r.teachers()] == [32, 16] and r.ensemble.weights == "dev"
    assert load_recipe(write(recipe_dir, GOOD)).recipe.teachers()[0].max_len == 32
    with pytest.raises(RecipeError, match=r"line 9: teacher\[1\].sorce: unknown key"):
        load_recipe(write(recipe_dir, two.replace("  - source: random\n    max_len: 16",
                                                  "  - sorce: random\n    max_len: 16")))
    with pytest.raises(RecipeError, match="ensemble.weights: 3 weights for 2 teachers"):
        load_recipe(write(recipe_dir, two + "ensemble: {weights: [1, 1, 1]}\n"))
    with pytest.raises(RecipeError, match="ensemble.rule: 'median' is not allowed"):
        load_recipe(write(recipe_dir, two + "ensemble: {rule: median}\n"))


def test_label_precision_keys_checked_and_defaults_keep_fingerprints(recipe_dir):
    """teacher.labels.amp / amp_level / tensorrt are recipe keys; at their defaults they stay out
    of the soft-label stage's fingerprint, so runs made before them are reused as they are."""
    from distill.pipeline.recipe import fingerprint_settings
    from distill.pipeline.runner import _label_options

    text = GOOD.replace("  max_len: 32\n", "  max_len: 32\n  labels:\n    amp: false\n"
                                           "    amp_level: O2\n")
    spec = load_recipe(write(recipe_dir, text)).recipe.teacher.labels
    assert (spec.amp, spec.amp_level, spec.tensorrt) == (False, "O2", None)
    settings = fingerprint_settings(spec)
    assert settings["amp"] is False and settings["amp_level"] == "O2"
    assert "tensorrt" not in settings and settings["batch_size"] == spec.batch_size
    assert _label_options(spec, "gpu")["amp"] is False
    default = load_recipe(write(recipe_dir, GOOD)).recipe.teacher.labels
    assert not {"amp", "amp_level", "tensorrt"} & set(fingerprint_settings(default))
    with pytest.raises(RecipeError, match="amp_level"):
        load_recipe(write(recipe_dir, text.replace("O2", "O3")))
    # nor of the teacher stage's (the fine-tuned teacher of an earlier run stays valid)
    from distill.pipeline.runner import RunPlan

    plan = RunPlan(load_recipe(write(recipe_dir, GOOD)), recipe_dir / "run").stages()
    stages = {st.key: st.settings for st in plan}
    assert "labels" not in stages["teacher"]["teacher"]
    former = next(st for st in plan if st.key == "teacher").former_settings[0]
    assert not {"amp", "amp_level", "tensorrt"} & set(former["teacher"]["labels"])
    # the token-teacher keys (teacher.layers, teacher.finetune.probe_head) likewise at defaults
    assert "layers" not in stages["teacher"]["teacher"]
    assert "probe_head" not in stages["teacher"]["teacher"]["finetune"]
    assert not {"amp", "amp_level", "tensorrt"} & set(stages["soft_labels"]["labels"])
