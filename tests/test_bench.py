"""bench.quality groups recipes that differ only in their students into one run."""
import shutil

import pytest
import yaml

from bench import quality


def test_shipped_recipes_form_one_group_per_language():
    groups = quality.group_recipes(quality.RECIPES)
    assert sorted(groups) == ["movies_en-minilm-l6", "reviews_zh-e5-small"]
    for group in groups.values():
        assert len(group["members"]) == 4
        assert [s["kind"] for s in group["students"]] == ["bow", "cnn", "lstm", "tiny"]


def test_a_changed_setting_or_a_name_clash_splits_or_stops(tmp_path, monkeypatch):
    src = quality.ROOT / "recipes" / "movies_en"
    monkeypatch.setattr(quality, "ROOT", tmp_path)
    folder = tmp_path / "r"
    folder.mkdir()
    for name in ("bow", "cnn"):
        shutil.copy(src / f"{name}_from_minilm.yaml", folder / f"{name}.yaml")
    raw = yaml.safe_load((folder / "cnn.yaml").read_text())
    raw["augment"]["n_iter"] = 9
    (folder / "cnn9.yaml").write_text(yaml.safe_dump(raw))
    groups = quality.group_recipes(["r/bow.yaml", "r/cnn.yaml", "r/cnn9.yaml"])
    assert [list(g["members"]) for g in groups.values()] == [["r/bow.yaml", "r/cnn.yaml"],
                                                           ["r/cnn9.yaml"]]
    report = {"students": [{"name": "bow"}, {"name": "cnn"}]}
    assert quality.recipe_report(report, ["cnn"])["students"] == [{"name": "cnn"}]
    with pytest.raises(SystemExit, match="already used"):
        quality.group_recipes(["r/bow.yaml", "r/bow.yaml"])
