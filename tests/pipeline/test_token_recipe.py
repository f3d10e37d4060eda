"""The smoke token recipe (NER) end to end through the CLI: report with entity F1, a package that
predicts spans with character offsets without Paddle, a re-run that skips every stage."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from distill.core.errors import RecipeError
from distill.pipeline.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "recipes" / "smoke_token.yaml"


def run(*args):
    out = subprocess.run([sys.executable, "-m", "distill", *map(str, args)], capture_output=True,
                         text=True, timeout=900, cwd=ROOT, env=dict(os.environ))
    assert out.returncode == 0, out.stderr[-3000:]
    return out


@pytest.mark.e2e
def test_smoke_token_recipe_runs_and_its_package_predicts_spans(tmp_path):
    first = run("run", SMOKE, "--out", tmp_path)
    assert "test F1" in first.stdout + first.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["task"] == "token" and report["dataset"]["scheme"] == "bmes"
    assert report["teacher"]["test"]["f1"] is not None
    lstm = report["students"][0]
    assert lstm["distilled"]["test"]["f1"] > 0.3 and lstm["baseline"]["test"]["f1"] is not None
    assert {e["format"] for e in lstm["exports"]} == {"onnx", "onnx-int8"}
    assert all(e["f1_drop_points"] is not None for e in lstm["exports"])
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "| F1 |" in md and "![f1_vs_latency.png](plots/f1_vs_latency.png)" in md
    assert report["plots"] == ["f1_vs_latency.png", "f1_vs_size.png"] + [
        f"curves_{s['name']}.png" for s in report["students"]]
    assert all((tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG" for name in report["plots"])
    package = report["package"]
    code = ("import json, sys\n"
            "from distill.serve.predict import load_package\n"
            "rows = load_package(sys.argv[1], threads=1).predict(['今天张三去北京了。', '联合国和新华社'])\n"
            "print(json.dumps(rows, ensure_ascii=False))\n"
            "print('paddle' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, package], capture_output=True, text=True,
                         cwd=ROOT, check=True).stdout.splitlines()
    rows = json.loads(out[0])
    assert out[1] == "False"  # the edge predictor never imports Paddle
    assert [r["text"] for r in rows] == ["今天张三去北京了。", "联合国和新华社"]
    spans = [e for r in rows for e in r["entities"]]
    assert spans, rows
    for r in rows:
        for e in r["entities"]:
            assert set(e) == {"start", "end", "type", "text", "score"}
            assert r["text"][e["start"]:e["end"]] == e["text"]
    cli = run("predict", package, "今天张三去北京了。", "--json")
    assert json.loads(cli.stdout.splitlines()[0])["text"] == "今天张三去北京了。"
    again = run("run", SMOKE, "--out", tmp_path)
    assert "running" not in again.stderr  # every stage cached


def test_token_recipe_checks_kinds_and_data_against_the_task(tmp_path):
    recipe = {"task": "token", "data": {"builtin": "reviews_zh"}, "teacher": {"source": "random"},
              "students": [{"name": "a", "kind": "lstm"}]}
    with pytest.raises(RecipeError, match="msra_ner"):
        load_recipe(recipe)
    recipe["data"] = {"builtin": "msra_ner"}
    recipe["students"] = [{"name": "a", "kind": "bow"}]
    with pytest.raises(RecipeError, match="unknown token student kind 'bow'"):
        load_recipe(recipe)
    recipe["students"] = [{"name": "a", "kind": "cnn", "config": {"num_layers": 3}}]
    assert load_recipe(recipe).recipe.task == "token"  # a tagger key, unknown to the sentence CNN
    recipe["teacher"]["layers"] = 6
    assert load_recipe(recipe).recipe.teacher.layers == 6
    with pytest.raises(RecipeError, match="teacher.layers"):
        load_recipe({**recipe, "teacher": {"source": "random", "layers": 0}})
    with pytest.raises(RecipeError, match="only for task: token"):
        load_recipe({"data": {"builtin": "reviews_zh"}, "students": [{"name": "a", "kind": "cnn"}],
                     "teacher": {"source": "random", "layers": 6}})
    loaded = load_recipe(SMOKE)
    assert loaded.recipe.export.max_f1_drop == 0.5 and loaded.recipe.teacher.labels.storage == "float16"


def test_crf_is_a_tagger_setting():
    recipe = {"task": "token", "data": {"builtin": "msra_ner"}, "teacher": {"source": "random"},
              "students": [{"name": k, "kind": k, "config": {"crf": True},
                            "loss": {"terms": "soft_ce:0.5,crf:0.5"}}
                           for k in ("lstm", "cnn", "tiny")]}
    assert len(load_recipe(recipe).recipe.students) == 3
    sentence = {"data": {"builtin": "reviews_zh"}, "teacher": {"source": "random"},
                "students": [{"name": "a", "kind": "lstm", "config": {"crf": True}}]}
    with pytest.raises(RecipeError, match="crf"):
        load_recipe(sentence)


@pytest.mark.e2e
def test_crf_tagger_recipe_packages_its_transitions(tmp_path):
    """A recipe with a CRF tagger: the crf loss by default, the package's config.json carries
    the transitions and its predictions are Viterbi paths."""
    import tarfile

    import yaml

    recipe = yaml.safe_load(SMOKE.read_text(encoding="utf-8"))
    recipe["name"] = "crf_token"
    recipe["data"].update({k: str(ROOT / "recipes" / v) for k, v in recipe["data"].items()
                           if k in ("train", "dev", "test")})
    recipe["teacher"]["finetune"]["epochs"] = 1
    recipe["augment"]["n_iter"] = 1
    recipe["students"] = [{"name": "lstm", "kind": "lstm", "baseline": False,
                           "config": {"emb_dim": 16, "hidden_size": 16, "crf": True},
                           "train": {"epochs": 2, "batch_size": 16, "lr": 0.01}}]
    recipe["export"]["formats"] = ["onnx"]
    path = tmp_path / "crf.yaml"
    path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
    run("run", path, "--out", tmp_path / "run")
    result = json.loads((tmp_path / "run" / "distill" / "lstm" / "seed0" / "done.json")
                        .read_text(encoding="utf-8"))
    assert result["result"]["loss"] == "0.5*soft_ce(T=1) + 0.5*crf"
    report = json.loads((tmp_path / "run" / "report.json").read_text(encoding="utf-8"))
    with tarfile.open(report["package"]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("config.json"))
        config = json.loads(tar.extractfile(member).read())
    tags = report["dataset"]["tags"]
    assert len(config["token"]["crf"]["transitions"]) == len(tags)
    cli = run("predict", report["package"], "今天张三去北京了。", "--json")
    assert json.loads(cli.stdout.splitlines()[0])["text"] == "今天张三去北京了。"
