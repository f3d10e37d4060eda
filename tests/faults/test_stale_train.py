"""Family 4: `distill train` on the same --out with other data retrains; a broken checkpoint is
"not done" (training starts over with a warning), never a traceback or a stuck folder."""
import json
from pathlib import Path

import pytest

from distill.cli import main

ROOT = Path(__file__).resolve().parents[2]
SMOKE_DATA = ROOT / "recipes" / "data" / "smoke"


def train(out, train_file, capsys):
    code = main(["train", "--kind", "bow", "--train", str(train_file), "--dev",
                 str(SMOKE_DATA / "dev.tsv"), "--out", str(out), "--epochs", "2",
                 "--batch-size", "32", "--config", '{"emb_dim": 16, "hidden_sizes": [16]}',
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    return json.loads((out / "result.json").read_text())["fit"], err


@pytest.fixture()
def half_file(tmp_path):
    lines = (SMOKE_DATA / "train.tsv").read_text().splitlines()
    path = tmp_path / "half.tsv"
    path.write_text("\n".join(lines[:121]) + "\n")  # header + 120 rows
    return path


def test_other_data_retrains_same_data_does_not(tmp_path, half_file, capsys):
    out = tmp_path / "out"
    first, _ = train(out, half_file, capsys)
    assert first["resumed_from_step"] == 0 and first["rows_trained"] == 2 * 120
    again, _ = train(out, half_file, capsys)  # same data: finished, nothing retrained
    assert again["resumed_from_step"] == first["steps"] and again["rows_trained"] == first["rows_trained"]
    other, _ = train(out, SMOKE_DATA / "train.tsv", capsys)  # other data: starts over
    assert other["resumed_from_step"] == 0 and other["rows_trained"] == 2 * 240


def test_truncated_checkpoint_restarts_with_a_warning(tmp_path, half_file, capsys):
    out = tmp_path / "out"
    first, _ = train(out, half_file, capsys)
    weights = out / "train" / "last" / "model_state.pdparams"
    weights.write_bytes(weights.read_bytes()[:100])
    again, err = train(out, half_file, capsys)
    assert again["resumed_from_step"] == 0 and again["steps"] == first["steps"]
    assert "model_state.pdparams" in err and "starts over" in err
