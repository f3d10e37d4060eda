"""bench.quality on a token (NER) recipe: the smoke token recipe, cut down, over two seeds gives
the same rows as sentence recipes with entity F1 in place of accuracy."""
import json

import pytest
import yaml

from bench import quality

pytestmark = pytest.mark.e2e


def small_token_recipe(tmp_path):
    """recipes/smoke_token.yaml with absolute data paths and fewer epochs (seconds, not a minute)."""
    raw = yaml.safe_load((quality.ROOT / "recipes" / "smoke_token.yaml").read_text())
    data = quality.ROOT / "recipes" / "data" / "smoke_ner"
    raw["data"].update({split: str(data / f"{split}.txt") for split in ("train", "dev", "test")})
    raw["teacher"]["finetune"]["epochs"] = 2
    raw["augment"]["n_iter"] = 1
    raw["students"] = [dict(raw["students"][0], train=dict(raw["students"][0]["train"], epochs=2))]
    raw["export"]["measure"] = {"warmup_runs": 1, "latency_runs": 3, "latency_sentences": 2,
                                "throughput_batches": 1}
    path = tmp_path / "token.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return path


def test_token_recipe_rows_give_entity_f1_over_seeds(tmp_path):
    recipe = small_token_recipe(tmp_path)
    code = quality.main(["--recipes", str(recipe), "--seeds", "0,1", "--ablation", "",
                         "--no-fasttext", "--runs", str(tmp_path / "runs"),
                         "--out", str(tmp_path / "results"), "--name", "q"])
    assert code == 0
    info = json.loads((tmp_path / "results" / "q.json").read_text())
    report = json.loads(next((tmp_path / "runs").glob("*/report.json")).read_text())
    assert report["task"] == "token"
    [row] = info["rows"]
    lstm = report["students"][0]
    assert row["metric"] == "f1" and row["student"] == "lstm" and row["seeds"] == [0, 1]
    assert row["teacher_score"] == report["teacher"]["test"]["f1"]
    assert row["plain"] == lstm["baseline"]["test"]["f1"]
    assert row["distilled"] == lstm["distilled"]["test"]["f1"]
    assert row["plain_std"] is not None and row["distilled_std"] is not None  # two seeds
    assert row["export"] in ("onnx", "onnx-int8") and row["size_bytes"] > 0
    [int8] = info["int8"]  # the smoke recipe exports the students only, ONNX FP32 and INT8
    by_format = {e["format"]: e for e in lstm["exports"]}
    assert int8["metric"] == "f1" and int8["runtime"] == "onnx"
    assert int8["change"] == pytest.approx(by_format["onnx-int8"]["test"]["f1"]
                                           - by_format["onnx"]["test"]["f1"])
    assert info["sizes"][report["dataset"]["name"]]["augmented"] == report["dataset"]["sizes"]["augmented"]
    md = (tmp_path / "results" / "q.md").read_text()
    assert md.startswith("### Entity F1") and "| teacher entity F1 % |" in md
    assert "| entity F1 change (pts) |" in md

