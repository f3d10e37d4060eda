"""A recipe with two teachers: each fine-tunes and labels, the ensemble's weights are chosen on
dev, students learn the combined soft labels, and the report gives every member's accuracy."""
from pathlib import Path

import numpy as np
import pytest
import yaml

import distill
from teachers.ensemble import combine

pytestmark = pytest.mark.e2e  # runs a whole (small) recipe

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def test_two_teachers_combine_on_dev_and_teach_the_student(tmp_path):
    raw = yaml.safe_load((RECIPES / "smoke.yaml").read_text())
    first = dict(raw["teacher"], finetune=dict(raw["teacher"]["finetune"], epochs=2))
    second = dict(first, random={"hidden_size": 32, "num_layers": 1, "num_heads": 2,
                                 "intermediate_size": 64})
    recipe = dict(raw, teacher=[first, second], ensemble={"rule": "probabilities"},
                  augment=dict(raw["augment"], n_iter=1), students=raw["students"][:1],
                  export={"enabled": False})
    recipe["students"][0]["train"] = dict(recipe["students"][0]["train"], epochs=2)
    report = distill.run(recipe, out=tmp_path / "run", base_dir=RECIPES, log=lambda m: None)

    ens = report["teacher"]["ensemble"]
    assert ens["rule"] == "probabilities" and ens["chosen_on"] == "dev"
    assert len(ens["weights"]) == 2 and abs(sum(ens["weights"]) - 1) < 1e-6
    members = ens["members"]
    assert [m["stage"] for m in members] == ["teacher", "teacher-1"]
    # the grid holds each member alone, so the chosen ensemble is at least as good on dev
    assert report["teacher"]["dev"]["accuracy"] >= max(m["dev"]["accuracy"] for m in members)
    assert all(m["test"]["accuracy"] is not None for m in members)

    run = tmp_path / "run"
    parts = [np.load(run / key / "soft_labels.npy") for key in ("soft_labels", "soft_labels-1")]
    combined = np.load(run / "ensemble" / "soft_labels.npy")
    np.testing.assert_allclose(combined, combine(parts, ens["weights"], "probabilities"), atol=1e-6)
    assert report["students"][0]["distilled"]["test"]["accuracy"] is not None
    assert "Teacher: an ensemble" in (run / "report.md").read_text()
