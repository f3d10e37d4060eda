"""The runner on the smoke recipe: end to end through the CLI and through ``distill.run``; a
re-run skips every stage; one student's setting re-runs only its stages; runs killed (SIGKILL)
during soft labelling and during student training resume to the same report metrics."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import distill
from distill.pipeline.report import repeatable_metrics
from distill.pipeline.stages import KILL_ENV, Pipeline, Stage

pytestmark = pytest.mark.e2e  # runs whole recipes / commands

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.yaml"

REPORT_KEYS = {"recipe", "dataset", "teacher", "students", "package", "stage_seconds"}
STUDENT_KEYS = {"name", "kind", "params", "baseline", "distilled", "gap_recovered", "speedup_b1",
                "speedup_b32", "exports"}
EXPORT_KEYS = {"format", "size_bytes", "test", "latency_ms_b1", "throughput_b32", "accepted", "reason"}


def cli(*args, env=None, check=True):
    """``python -m distill run ...`` in a subprocess; returns the CompletedProcess."""
    out = subprocess.run([sys.executable, "-m", "distill", "run", *map(str, args)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT,
                         env={**os.environ, **(env or {})})
    if check and out.returncode != 0:
        raise AssertionError(f"distill run failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return out


def ran_stages(messages):
    return [m.split("] ", 1)[1].split(":")[0] for m in messages if m.endswith("running ...")]


# ---------------------------------------------------------------- the stage framework alone
def toy_pipeline(run_dir, settings, calls, force=None):
    """a -> b -> c and a -> d; each stage records that it ran and returns its input sum."""
    def make(key):
        def fn(ctx):
            calls.append(key)
            (ctx.dir / "partial.txt").write_text("work")
            return {"value": settings[key] + sum(ctx.result(d)["value"] for d in ctx.stage.deps)}
        return fn
    stages = [Stage("a", "a", make("a"), {"x": settings["a"]}),
              Stage("b", "b", make("b"), {"x": settings["b"]}, deps=["a"]),
              Stage("c", "c", make("c"), {"x": settings["c"]}, deps=["b"]),
              Stage("d/one", "d", make("d"), {"x": settings["d"]}, deps=["a"])]
    return Pipeline(run_dir, stages, force=force, log=lambda m: None)


def test_pipeline_skips_and_propagates_changes_downstream_only(tmp_path):
    settings, calls = {"a": 1, "b": 2, "c": 3, "d": 4}, []
    records = toy_pipeline(tmp_path, settings, calls).run()
    assert calls == ["a", "b", "c", "d"] and records["c"].result == {"value": 6}
    calls.clear()
    toy_pipeline(tmp_path, settings, calls).run()
    assert calls == []
    records = toy_pipeline(tmp_path, dict(settings, b=20), calls).run()
    assert calls == ["b", "c"] and records["c"].result == {"value": 24}
    calls.clear()
    toy_pipeline(tmp_path, dict(settings, b=20), calls, force=["b"]).run()
    assert calls == ["b", "c"]
    done = json.loads((tmp_path / "d/one/done.json").read_text())
    assert set(done) >= {"fingerprint", "seconds", "result"}


def test_pipeline_keeps_partial_work_of_the_same_fingerprint_only(tmp_path):
    settings, calls = {"a": 1, "b": 2, "c": 3, "d": 4}, []
    toy_pipeline(tmp_path, settings, calls).run()
    (tmp_path / "c" / "done.json").unlink()  # as if killed before c finished
    (tmp_path / "c" / "resume-me").write_text("chunk")
    toy_pipeline(tmp_path, settings, calls).run()
    assert (tmp_path / "c" / "resume-me").exists()  # same fingerprint: kept for the stage to resume
    (tmp_path / "c" / "done.json").unlink()
    toy_pipeline(tmp_path, dict(settings, c=30), calls).run()
    assert not (tmp_path / "c" / "resume-me").exists()  # other settings: started afresh


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory):
    """The smoke recipe end to end twice, side by side: through the command line in a
    subprocess (the reference run of the other tests) and through ``distill.run`` here."""
    base = tmp_path_factory.mktemp("runs")
    proc = subprocess.Popen([sys.executable, "-m", "distill", "run", str(SMOKE), "--out",
                             str(base / "cli")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        start = time.perf_counter()
        report = distill.run(str(SMOKE), out=base / "api", log=lambda m: None)
        api_seconds = time.perf_counter() - start
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    cli_result = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return {"cli": (base / "cli", cli_result), "api": (base / "api", report, api_seconds)}


@pytest.fixture(scope="module")
def cli_run(both_runs):
    return both_runs["cli"]


@pytest.fixture(scope="module")
def api_run(both_runs):
    return both_runs["api"]


def test_cli_end_to_end(cli_run):
    out, proc = cli_run
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert set(report["dataset"]) >= {"name", "num_labels", "sizes"}
    assert report["dataset"]["sizes"]["train"] == 240 and report["dataset"]["sizes"]["augmented"] > 240
    assert set(report["teacher"]) >= {"name", "params", "test", "latency_ms_b1", "throughput_b32"}
    # how the soft labels were made: auto on CPU is ONNX Runtime FP32, never AMP
    labelling = report["teacher"]["labelling"]
    assert (labelling["engine"], labelling["precision"], labelling["amp"]) == ("onnx", "fp32", False)
    assert labelling["rows"] == report["dataset"]["sizes"]["train"] + report["dataset"]["sizes"]["augmented"]
    assert "AMP off" in (out / "report.md").read_text()
    assert [s["name"] for s in report["students"]] == ["bow", "cnn"]
    for s in report["students"]:
        assert STUDENT_KEYS <= set(s)
        assert 0.0 <= s["distilled"]["test"]["accuracy"] <= 1.0
        assert {e["format"] for e in s["exports"]} == {"onnx", "onnx-int8"}
        for e in s["exports"]:
            assert EXPORT_KEYS <= set(e) and e["size_bytes"] > 0 and e["latency_ms_b1"] > 0
    assert Path(report["package"]).is_file() and report["package"].endswith(".tar.gz")
    # selection on dev only: the guard measured on the dev rows, test was only reported
    sizes = report["dataset"]["sizes"]
    assert report["selection"]["export_guard"] == report["selection"]["package_student"] == "dev"
    for s in report["students"]:
        ref = json.loads((out / "export" / s["name"] / "done.json").read_text())["result"]["reference"]
        assert ref["selected_on"] == "dev" and ref["eval_examples"] == sizes["dev"]
        assert ref["test_examples"] == sizes["test"]
        assert all(e["dev"]["accuracy"] is not None and e["test"]["accuracy"] is not None
                   for e in s["exports"])
        assert {"dev", "test"} <= set(s["distilled"])
    package = json.loads((out / "package" / "done.json").read_text())["result"]
    assert package["selected_on"] == "dev" and package["dev"]["accuracy"] is not None
    assert "Selection on dev only" in (out / "report.md").read_text()
    assert set(report["stage_seconds"]) >= {"fetch", "teacher", "augment", "soft_labels",
                                            "baseline/bow/seed0", "distill/cnn/seed0", "package"}
    md = (out / "report.md").read_text()
    assert "| bow (distilled) | bow |" in md and report["package"] in md
    for name in ("accuracy_vs_latency.png", "accuracy_vs_size.png", "curves_bow.png", "curves_cnn.png"):
        assert (out / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    assert "package:" in proc.stdout and "bow distilled" in proc.stdout  # the closing table
    assert "[13/13] report: finished" in proc.stderr  # progress per stage, with times


def test_python_api_end_to_end_matches_cli(cli_run, api_run):
    out, report, _ = api_run
    assert json.loads((out / "report.json").read_text())["students"] == report["students"]
    reference = json.loads((cli_run[0] / "report.json").read_text())
    # seeded: the same numbers in any process
    assert repeatable_metrics(report) == repeatable_metrics(reference)


def test_rerun_skips_every_stage_and_is_10x_faster(api_run):
    out, report, first = api_run
    messages = []
    start = time.perf_counter()
    again = distill.run(str(SMOKE), out=out, log=messages.append)
    second = time.perf_counter() - start
    print(f"first run {first:.1f} s, re-run {second:.2f} s")
    assert ran_stages(messages) == []
    assert sum("skipped" in m for m in messages) == 13
    assert again == report
    assert second * 10 <= first


def test_changing_one_student_reruns_only_its_stages(cli_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(cli_run[0], run_dir)
    messages = []
    report = distill.run(str(SMOKE), out=run_dir, overrides=["students.cnn.train.lr=0.004"],
                         log=messages.append)
    assert ran_stages(messages) == ["plain cnn (seed 0)", "distil cnn (seed 0)",
                                    "export and measure cnn", "package the best student", "report"]
    reference = json.loads((cli_run[0] / "report.json").read_text())
    assert report["students"][0]["distilled"] == reference["students"][0]["distilled"]


def test_killed_runs_resume_to_the_same_report(cli_run, tmp_path):
    reference = json.loads((cli_run[0] / "report.json").read_text())
    run_dir = tmp_path / "run"
    shutil.copytree(cli_run[0], run_dir)

    # 1. killed while labelling: some chunks are on disk, soft_labels has no done.json
    killed = cli(SMOKE, "--out", run_dir, "--force", "soft_labels",
                 env={KILL_ENV: "soft_labels:chunk-*.npz"}, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    chunks = sorted((run_dir / "soft_labels").rglob("chunk-*.npz"))
    assert chunks and not (run_dir / "soft_labels" / "done.json").exists()

    # 2. resumed: labelling finishes from its chunks; then killed after a student's first epoch
    killed = cli(SMOKE, "--out", run_dir, env={KILL_ENV: "distill/bow/seed0:trainer_state.json"},
                 check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "[2/13] fine-tune teacher: done before" in killed.stderr
    assert "[4/13] teacher soft labels: finished" in killed.stderr
    assert chunks[0].exists()  # the first run's chunk was kept, not relabelled
    state = json.loads((run_dir / "distill/bow/seed0/train/last/trainer_state.json").read_text())
    assert 1 <= state["state"]["epoch"] < 4 and not state["state"]["finished"]
    assert not (run_dir / "distill/bow/seed0/done.json").exists()

    # 3. resumed again: the trainer continues from last/, everything after it runs
    resumed = cli(SMOKE, "--out", run_dir)
    assert "[4/13] teacher soft labels: done before" in resumed.stderr
    assert "distil bow (seed 0): running" in resumed.stderr
    assert "distil cnn (seed 0): running" in resumed.stderr  # downstream of the forced stage
    assert repeatable_metrics(json.loads((run_dir / "report.json").read_text())) == \
        repeatable_metrics(reference)


def test_force_unknown_stage_is_a_user_error(cli_run, capsys):
    from distill.cli import main

    code = main(["run", str(SMOKE), "--out", str(cli_run[0]), "--force", "nonsense"])
    assert code == 2 and "--force nonsense: no such stage" in capsys.readouterr().err


def test_several_seeds_report_mean_and_std(cli_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(cli_run[0], run_dir)
    messages = []
    report = distill.run(str(SMOKE), out=run_dir, seeds=[0, 1], log=messages.append)
    assert sorted(ran_stages(messages)) == sorted(
        ["plain bow (seed 1)", "distil bow (seed 1)", "plain cnn (seed 1)", "distil cnn (seed 1)",
         "report"])  # seed 0's students and the exports (of seed 0) are reused
    bow = report["students"][0]
    seed0 = json.loads((run_dir / "distill/bow/seed0/done.json").read_text())["result"]["test"]
    seed1 = json.loads((run_dir / "distill/bow/seed1/done.json").read_text())["result"]["test"]
    assert bow["distilled"]["test"]["accuracy"] == pytest.approx((seed0["accuracy"] + seed1["accuracy"]) / 2)
    assert bow["distilled"]["test"]["accuracy_std"] == pytest.approx(abs(seed0["accuracy"] - seed1["accuracy"]) / 2)
    assert "accuracy_std" in bow["baseline"]["test"] and "gap_recovered_std" in bow
    assert report["recipe"]["seeds"] == [0, 1]


def test_export_paths_follow_a_moved_or_renamed_run_folder(tmp_path):
    from distill.pipeline.runner import rebased

    here = tmp_path / "renamed" / "export" / "cnn"
    report = {"format": "onnx", "path": "runs/old/export/cnn/onnx-int8/model.onnx", "dev": 0.8}
    assert rebased(report, here) == dict(report, path=str(here / "onnx-int8" / "model.onnx"))
    other = {"path": "/elsewhere/model.onnx"}  # not under an export stage: left as recorded
    assert rebased(other, here) is other
