"""`distill run --nproc 2` on a small smoke recipe (2 CPU processes on gloo): soft labels equal
one process's, a run killed (SIGKILL) in the middle of distillation resumes to the same metrics
as an uninterrupted 2-process run, and `--nproc 1` is the one-process run."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from distill.pipeline.stages import KILL_ENV

pytestmark = pytest.mark.e2e  # whole recipes

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.yaml"


def small_recipe(folder: Path) -> Path:
    """The smoke recipe cut down: one BOW student, no export (the stages that run in parallel)."""
    raw = yaml.safe_load(SMOKE.read_text())
    for split in ("train", "dev", "test"):
        raw["data"][split] = str(SMOKE.parent / raw["data"][split])
    raw["name"] = "smoke_dp"
    raw["teacher"]["finetune"]["epochs"] = 2
    raw["augment"]["n_iter"] = 2
    raw["students"] = [dict(raw["students"][0], train={"epochs": 3, "batch_size": 32, "lr": 0.005})]
    raw["export"] = {"enabled": False}
    path = folder / "smoke_dp.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def cli(*args, env=None, check=True):
    environ = {**os.environ, **(env or {})}
    root = str(ROOT)
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (root, environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-m", "distill", "run", *map(str, args)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT, env=environ)
    if check and out.returncode != 0:
        logs = "".join(p.read_text()[-2000:] for p in Path(args[2]).glob("launch/workerlog.*")) \
            if len(args) > 2 else ""
        raise AssertionError(f"distill run failed ({out.returncode}):\n{out.stderr[-3000:]}\n{logs}")
    return out


def metrics(run_dir: Path) -> dict:
    report = json.loads((run_dir / "report.json").read_text())
    return {"teacher": report["teacher"]["test"],
            "students": [(s["name"], s["baseline"], s["distilled"]) for s in report["students"]]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("dp")
    recipe = small_recipe(base)
    one = cli(recipe, "--out", base / "one", "--nproc", "1")
    two = cli(recipe, "--out", base / "two", "--nproc", "2")
    return {"recipe": recipe, "one": (base / "one", one), "two": (base / "two", two)}


def test_two_processes_label_like_one(runs, tmp_path):
    """The 2-process run's soft labels against one process labelling the same rows with the same
    (2-process fine-tuned) teacher and engine."""
    from distill.data.examples import read_examples
    from teachers.checkpoint import load_teacher
    from teachers.soft_labels import soft_labels

    run_dir = runs["two"][0]
    raw = yaml.safe_load(runs["recipe"].read_text())["teacher"]["labels"]
    rows = read_examples(run_dir / "fetch" / "train.jsonl") + read_examples(
        run_dir / "augment" / "augmented.jsonl", require_label=False)
    one = soft_labels(load_teacher(str(run_dir / "teacher" / "teacher")), rows, tmp_path,
                      batch_size=raw["batch_size"], chunk_batches=raw["chunk_batches"],
                      device="cpu", engine=raw["engine"], progress=False)
    two = np.load(run_dir / "soft_labels" / "soft_labels.npy")
    assert one.shape == two.shape and len(one) > 240
    np.testing.assert_array_equal(one.argmax(1), two.argmax(1))
    assert float(np.abs(one - two).max()) <= 1e-5
    shards = sorted(p.name for p in (run_dir / "soft_labels").glob("parts-*/shard-*"))
    assert shards == ["shard-0-of-2", "shard-1-of-2"]
    assert json.loads((run_dir / "soft_labels" / "soft_labels.json").read_text())["shards"] == 2


def test_two_process_run_is_data_parallel_and_logs_per_rank(runs):
    run_dir, proc = runs["two"]
    assert "2 process(es) per node" in proc.stderr
    assert (run_dir / "launch" / "workerlog.1").exists()
    assert proc.stdout.count("bow distilled") == 1  # the summary, printed once
    done = json.loads((run_dir / "teacher" / "done.json").read_text())
    assert done["result"]["dev"]["accuracy"] > 0.5
    # rank 0 alone wrote the trainer's files: one record per epoch, no duplicates
    lines = (run_dir / "distill/bow/seed0/train/metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x)["epoch"] for x in lines if json.loads(x)["type"] == "epoch"]
    assert epochs == [1, 2, 3]
    # global batch 32 = 2 x 16: the same number of optimizer steps as one process
    def steps(d):
        return json.loads((d / "distill/bow/seed0/train/last/trainer_state.json").read_text())["state"]["step"]
    assert steps(run_dir) == steps(runs["one"][0])


def test_nproc_1_is_the_one_process_run(runs, tmp_path):
    """`--nproc 1` runs in this process (no launcher) with today's fingerprints: the default run
    over the same folder skips every stage, with identical metrics."""
    run_dir = tmp_path / "run"
    shutil.copytree(runs["one"][0], run_dir)
    again = cli(runs["recipe"], "--out", run_dir)
    assert "running ..." not in again.stderr and "launch" not in again.stderr
    assert metrics(run_dir) == metrics(runs["one"][0])
    assert not (runs["one"][0] / "launch").exists()


def test_killed_two_process_run_resumes_to_the_same_metrics(runs, tmp_path):
    reference = metrics(runs["two"][0])
    run_dir = tmp_path / "run"
    shutil.copytree(runs["two"][0], run_dir)
    killed = cli(runs["recipe"], "--out", run_dir, "--nproc", "2", "--force", "distill",
                 env={KILL_ENV: "distill/bow/seed0:trainer_state.json"}, check=False)
    assert killed.returncode != 0
    state = json.loads((run_dir / "distill/bow/seed0/train/last/trainer_state.json").read_text())
    assert 1 <= state["state"]["epoch"] < 3 and not state["state"]["finished"]
    assert not (run_dir / "distill/bow/seed0/done.json").exists()
    resumed = cli(runs["recipe"], "--out", run_dir, "--nproc", "2")
    assert "2 process(es) per node" in resumed.stderr
    lines = (run_dir / "distill/bow/seed0/train/metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(x)["epoch"] for x in lines if json.loads(x)["type"] == "epoch"]
    assert epochs == [1, 2, 3]  # resumed after epoch 1, not restarted, nothing written twice
    assert metrics(run_dir) == reference
