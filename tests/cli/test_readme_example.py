"""The README's custom-task example runs as written (on the tiny smoke files as 'my_task/')."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # runs whole recipes / commands

ROOT = Path(__file__).resolve().parents[2]
START, END = "<!-- readme-example: start -->", "<!-- readme-example: end -->"


def readme_code() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in text and END in text, "README lost its example markers"
    section = text[text.index(START):text.index(END)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2
    return "\n".join(blocks)


def test_readme_custom_task_example_runs(tmp_path):
    shutil.copytree(ROOT / "recipes" / "data" / "smoke", tmp_path / "my_task")
    (tmp_path / "example.py").write_text(readme_code(), encoding="utf-8")
    out = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("plain ") and " distilled " in line for line in lines)
    assert any(line.startswith("cnn distilled ") for line in lines)
    assert (tmp_path / "runs" / "my_task" / "report.json").is_file()
    assert (tmp_path / "runs" / "pieces" / "export" / "my_task-cnn.tar.gz").is_file()
    assert "[{'label': '" in out.stdout  # the package's prediction
