"""Which settings reach which stage's fingerprint (the smoke recipe's graph, built but not run),
and stages done under the settings an older version hashed staying done."""
import shutil
from pathlib import Path

from distill.pipeline.recipe import load_recipe
from distill.pipeline.runner import RunPlan
from distill.pipeline.stages import Pipeline, Stage

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "smoke.yaml"


def fingerprints(run_dir, overrides=(), recipe=SMOKE) -> dict:
    """Every stage's fingerprint for ``recipe`` with ``overrides``, in graph order."""
    plan = RunPlan(load_recipe(str(recipe), list(overrides)), run_dir)
    pipeline = Pipeline(run_dir, plan.stages(), log=lambda m: None)
    for stage in pipeline.stages:
        pipeline.fingerprints[stage.key] = pipeline.fingerprint_of(stage)
    return pipeline.fingerprints


def test_soft_label_settings_leave_the_fine_tuned_teacher_alone(tmp_path):
    before = fingerprints(tmp_path)
    after = fingerprints(tmp_path, ["teacher.labels.batch_size=8"])
    changed = {key for key in before if before[key] != after[key]}
    assert "soft_labels" in changed and "distill/bow/seed0" in changed
    assert not changed & {"fetch", "teacher", "augment", "baseline/bow/seed0"}
    tuned = fingerprints(tmp_path, ["teacher.finetune.lr=0.001"])
    assert tuned["teacher"] != before["teacher"]


def test_the_users_files_count_by_content_not_by_place(tmp_path):
    """Data files by content, a teacher checkpoint by its files' names, sizes and times."""
    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    (checkpoint / "model_state.pdparams").write_bytes(b"weights")
    recipes = []
    for place in ("here", "moved"):
        shutil.copytree(SMOKE.parent / "data" / "smoke", tmp_path / place / "data" / "smoke")
        shutil.copytree(checkpoint, tmp_path / place / "teacher")  # keeps modification times
        text = SMOKE.read_text().replace("source: random", "source: teacher")
        (tmp_path / place / "smoke.yaml").write_text(text)
        recipes.append(tmp_path / place / "smoke.yaml")
    here, moved = (fingerprints(tmp_path / "run", recipe=r) for r in recipes)
    del here["report"], moved["report"]  # the report names the recipe's path
    assert moved == here
    with open(tmp_path / "moved" / "data" / "smoke" / "dev.tsv", "a") as f:
        f.write("one more row\tpositive\n")
    assert fingerprints(tmp_path / "run", recipe=recipes[1])["fetch"] != here["fetch"]


def test_work_done_under_former_settings_is_kept_done_or_resumed(tmp_path):
    calls = []

    def run(settings, former=()):
        def step(key):
            return lambda ctx: calls.append(key) or {"key": key}
        Pipeline(tmp_path, [Stage("a", "a", step("a"), settings, former_settings=list(former)),
                            Stage("b", "b", step("b"), {"y": 1}, deps=["a"])],
                 log=lambda m: None).run()

    run({"x": 1, "old": 2})                       # an older version also hashed "old"
    run({"x": 1}, former=[{"x": 1, "old": 2}])
    assert calls == ["a", "b"]                    # a keeps its old fingerprint, so b stays done
    run({"x": 1}, former=[{"x": 1, "old": 3}])    # what it did was not what a does now
    assert calls == ["a", "b"] * 2
    run({"x": 1, "old": 2})
    (tmp_path / "a" / "done.json").unlink()       # as if that version was killed inside a
    (tmp_path / "a" / "chunk").write_text("half")
    run({"x": 1}, former=[{"x": 1, "old": 2}])
    assert (tmp_path / "a" / "chunk").exists()    # its half-finished work is resumed
    assert calls == ["a", "b"] * 4
