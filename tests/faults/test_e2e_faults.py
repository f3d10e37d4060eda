"""Family 3 end to end: a second `distill run` on the same folder is refused at once, naming the
first, which then finishes with its own settings only."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.core.io import LOCK

pytestmark = pytest.mark.e2e  # runs a whole recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke.yaml"


def distill_run(*args):
    return [sys.executable, "-m", "distill", "run", str(SMOKE), *map(str, args)]


def test_concurrent_run_is_refused_while_the_first_finishes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(distill_run("--out", out, "--set", "augment.n_iter=1"), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 300
        while True:  # wait until the first run holds the lock
            try:
                if json.loads((out / LOCK).read_text() or "{}").get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            assert first.poll() is None and time.time() < deadline, "the first run did not start"
            time.sleep(0.1)
        second = subprocess.run(distill_run("--out", out, "--set", "students.bow.train.lr=0.05"),
                                cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert first.poll() is None  # refused while the first one runs, not after it
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
        assert "Traceback" not in second.stderr
        _, stderr = first.communicate(timeout=1200)
        assert first.returncode == 0, stderr[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    settings = json.loads((out / "recipe.json").read_text())["settings"]
    assert settings["augment"]["rules"]["n_iter"] == 1
    assert settings["students"][0]["train"]["lr"] == 0.005  # the second run's setting never landed
    assert (out / "report.json").is_file() and (out / LOCK).read_text() == ""
