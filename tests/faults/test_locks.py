"""Family 3: one process at a time per run/output folder; a stale lock is taken over."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from distill.core.errors import UserError
from distill.core.io import LOCK, folder_lock

ROOT = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from pathlib import Path
from distill.core.io import folder_lock
with folder_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("locked")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.05)
"""


def holder(folder, tmp_path):
    ready, release = tmp_path / "ready", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), str(ready), str(release)],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.time() + 120
    while not ready.exists():
        assert proc.poll() is None and time.time() < deadline, "the holder did not start"
        time.sleep(0.05)
    return proc, release


def test_second_process_is_refused_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    proc, release = holder(folder, tmp_path)
    try:
        with pytest.raises(UserError) as info:
            with folder_lock(folder):
                pass
        assert f"pid {proc.pid}" in str(info.value) and "started" in str(info.value)
    finally:
        release.write_text("go")
        proc.wait(timeout=60)
    with folder_lock(folder):  # released: free again
        assert json.loads((folder / LOCK).read_text())["pid"] == os.getpid()
    assert (folder / LOCK).read_text() == ""  # cleanly released


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    proc, _ = holder(folder, tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    assert json.loads((folder / LOCK).read_text())["pid"] == proc.pid  # left behind
    with caplog.at_level("WARNING"):
        with folder_lock(folder):
            pass
    assert f"pid {proc.pid}" in caplog.text and "stale" in caplog.text


def test_run_refused_while_another_holds_the_folder(tmp_path, capsys):
    from distill.cli import main

    folder = tmp_path / "run"
    proc, release = holder(folder, tmp_path)
    try:
        code = main(["run", str(ROOT / "recipes" / "smoke.yaml"), "--out", str(folder)])
        assert code == 2
        err = capsys.readouterr().err
        assert f"pid {proc.pid}" in err and "in use" in err
    finally:
        release.write_text("go")
        proc.wait(timeout=60)
