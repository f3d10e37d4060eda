"""bench: recipe grouping, INT8 rows, and the machine facts each table states."""
import json
import shutil

import pytest
import yaml

from bench import quality


def test_shipped_recipes_form_one_group_per_teacher_setting():
    groups = quality.group_recipes(quality.RECIPES)
    kinds = {name: [s["kind"] for s in g["students"]] for name, g in groups.items()}
    assert kinds == {"movies_en-minilm-l6": ["bow", "ngram", "cnn", "lstm", "tiny"],
                     "reviews_zh-e5-small": ["bow", "ngram", "cnn", "lstm", "tiny"]}


def test_a_changed_setting_or_a_name_clash_splits_or_stops(tmp_path, monkeypatch):
    src = quality.ROOT / "recipes" / "movies_en"
    monkeypatch.setattr(quality, "ROOT", tmp_path)
    folder = tmp_path / "r"
    folder.mkdir()
    for name in ("bow", "ngram"):
        shutil.copy(src / f"{name}_from_minilm.yaml", folder / f"{name}.yaml")
    raw = yaml.safe_load((folder / "ngram.yaml").read_text())
    raw["augment"]["n_iter"] = 9
    (folder / "ngram9.yaml").write_text(yaml.safe_dump(raw))
    groups = quality.group_recipes(["r/bow.yaml", "r/ngram.yaml", "r/ngram9.yaml"])
    assert [list(g["members"]) for g in groups.values()] == [["r/bow.yaml", "r/ngram.yaml"],
                                                           ["r/ngram9.yaml"]]
    assert list(groups) == ["movies_en-minilm-l6", "movies_en-minilm-l6-2"]  # run folder names
    report = {"students": [{"name": "bow"}, {"name": "ngram"}]}
    assert quality.recipe_report(report, ["ngram"])["students"] == [{"name": "ngram"}]
    with pytest.raises(SystemExit, match="already used"):
        quality.group_recipes(["r/bow.yaml", "r/bow.yaml"])


def test_an_ensemble_recipe_is_its_own_group_and_its_members_get_rows():
    [group] = quality.group_recipes(["recipes/movies_en/bow_from_ensemble.yaml"]).values()
    assert group["name"] == "movies_en-minilm-l6_e5-small"
    member = lambda name, w, dev, test: {"name": name, "weight": w, "dev": {"accuracy": dev},
                                         "test": {"accuracy": test}}
    report = {"dataset": {"name": "movies_en"},
              "teacher": {"name": "a + b", "dev": {"accuracy": 0.8}, "test": {"accuracy": 0.85},
                          "ensemble": {"rule": "logits", "chosen_on": "dev",
                                       "members": [member("a", 0.7, 0.78, 0.84),
                                                   member("b", 0.3, 0.75, 0.8)]}}}
    rows = quality.ensemble_rows(report)
    assert [(r["teacher"], r["weight"], r["test"]) for r in rows] == [
        ("a", 0.7, 0.84), ("b", 0.3, 0.8), ("ensemble (logits, weights chosen on dev)", None, 0.85)]
    assert quality.ensemble_rows({"teacher": {"name": "a"}}) == []
    export = lambda fmt: {"format": fmt, "size_bytes": 4, "test": {"accuracy": 0.8}, "accepted": True}
    report["teacher"]["exports"] = [export("onnx"), export("onnx-int8")]
    assert [r["model"] for r in quality.int8_rows(dict(report, students=[]))] == ["a"]  # member 1
    assert "| movies_en | b | 0.3 | 75.0 | 80.0 |" in quality.ensemble_markdown(rows)


def test_int8_rows_pair_each_runtime_with_its_fp32_export():
    def export(fmt, size, ms, tput, acc, accepted=True):
        return {"format": fmt, "size_bytes": size, "latency_ms_b1": ms, "throughput_b32": tput,
                "test": {"accuracy": acc}, "accepted": accepted, "reason": "" if accepted else "drop"}

    report = {"dataset": {"name": "d"},
              "teacher": {"name": "t", "exports": [export("onnx", 400, 8.0, 100, 0.84),
                                                   export("onnx-int8", 100, 4.0, 250, 0.83, False)]},
              "students": [{"kind": "bow", "name": "bow",
                            "exports": [export("paddle", 40, 1.0, 10, 0.78),
                                        export("paddle-int8", 10, 2.0, 5, 0.785)]}]}
    rows = quality.int8_rows(report)
    assert [(r["model"], r["runtime"]) for r in rows] == [("t", "onnx"), ("bow", "paddle")]
    t, bow = rows
    assert t["size_ratio"] == 4 and t["latency_speedup_b1"] == 2 and t["throughput_ratio_b32"] == 2.5
    assert abs(t["change"] + 0.01) < 1e-12 and not t["accepted"] and t["metric"] == "accuracy"
    assert bow["latency_speedup_b1"] == 0.5 and abs(bow["change"] - 0.005) < 1e-12
    assert "no: drop" in quality.int8_markdown(rows)


def test_machine_line_says_when_the_run_was_pinned_and_load_counts_the_whole_machine(tmp_path):
    from bench.all import loaded_benches
    from bench.common import machine_line

    m = {"cpu": "X", "cores": 1, "machine_cores": 2, "load_average": [1.8], "date": "d", "commit": "c"}
    assert "pinned to 1 of 2 cores" in machine_line(m)
    assert "(2 cores" in machine_line(dict(m, cores=2))
    (tmp_path / "quality.json").write_text(json.dumps({"machine": m}))
    assert loaded_benches(tmp_path) == []              # 1.8 on a 2-core machine: not overloaded
    (tmp_path / "quality.json").write_text(json.dumps({"machine": dict(m, load_average=[2.5])}))
    assert loaded_benches(tmp_path) == ["quality"]


def test_fasttext_table_rows_and_the_shipped_export():
    b = {"params": {"wordNgrams": 3, "epoch": 10, "lr": 0.5, "dim": 100}, "train_rows": 10202,
         "dev": 0.78, "dev_std": 0.001, "test": 0.79, "test_std": 0.002, "size_bytes": 2 ** 20,
         "latency_ms_b1": 0.03, "train_s": 20.0, "load_average_start": [3.0], "load_average_end": [4.0]}
    rows = quality.fasttext_rows({"dataset": "movies_en", "gold": b})
    assert rows == [["movies_en", "fastText, gold rows", "10,202", "wordNgrams 3, epoch 10, lr 0.5, dim 100",
                     "78.0 ± 0.1", "79.0 ± 0.2", "1.0 MB", "0.030", "20", "3.0 → 4.0"]]
    exports = [{"format": "onnx", "accepted": True, "latency_ms_b1": 0.07, "size_bytes": 400},
               {"format": "onnx-int8", "accepted": True, "latency_ms_b1": 0.08, "size_bytes": 100},
               {"format": "paddle", "accepted": True, "latency_ms_b1": 0.01, "size_bytes": 10}]
    assert quality.shipped_export({"exports": exports})["format"] == "onnx-int8"
    assert quality.shipped_export({"exports": []}) is None


def test_tune_variants_merge_into_the_student_spec_without_touching_it():
    from bench.tune import deep_merge

    base = {"config": {"emb_dim": 64, "word_ngrams": [1, 2]}, "loss": {"terms": "logit_mse:1"},
            "train": {"lr": 0.002}}
    merged = deep_merge(base, {"config": {"buckets": 30000, "word_ngrams": [1, 3]},
                               "loss": {"terms": "soft_ce:1", "temperature": 2}})
    assert merged == {"config": {"emb_dim": 64, "word_ngrams": [1, 3], "buckets": 30000},
                      "loss": {"terms": "soft_ce:1", "temperature": 2}, "train": {"lr": 0.002}}
    assert base["config"] == {"emb_dim": 64, "word_ngrams": [1, 2]}  # the base is left as it was


def test_sentence_and_token_rows_share_one_shape():
    def report(task, metric):
        scores = {"test": {metric: 0.8, f"{metric}_std": 0.01}, "dev": {metric: 0.79}}
        return {"task": task, "dataset": {"name": "d"}, "teacher": {"name": "t", "test": {metric: 0.9}},
                "recipe": {"seeds": [0, 1]},
                "students": [{"name": "s", "kind": "cnn", "params": 10, "baseline": scores,
                              "distilled": {"test": {metric: 0.85}}, "gap_recovered": 0.5}]}

    sentence = quality.recipe_rows("r", report("sentence", "accuracy"))[0]
    token = quality.recipe_rows("r", report("token", "f1"))[0]
    assert sentence.keys() == token.keys()
    assert (sentence["metric"], token["metric"]) == ("accuracy", "f1")
    assert [sentence[k] for k in ("teacher_score", "plain", "plain_std", "distilled", "dev_plain")] \
        == [token[k] for k in ("teacher_score", "plain", "plain_std", "distilled", "dev_plain")] \
        == [0.9, 0.8, 0.01, 0.85, 0.79]
    with pytest.raises(SystemExit, match="ablation is for sentence recipes"):
        quality.main(["--recipes", "recipes/smoke_token.yaml", "--ablation", "recipes/smoke_token.yaml"])


def test_tune_rereads_the_runs_own_training_only_when_its_settings_match(tmp_path):
    from bench.tune import loss_text, run_result

    assert loss_text({"terms": "soft_ce:0.9,hard_ce:0.1", "temperature": 2}) == \
        "0.9*soft_ce(T=2) + 0.1*hard_ce"
    folder = tmp_path / "distill" / "bow" / "seed1"
    folder.mkdir(parents=True)
    (folder / "done.json").write_text("{}")
    (folder / "result.json").write_text(json.dumps({
        "mode": "distilled", "seed": 1, "loss": "1*logit_mse", "dev": {"accuracy": 0.7},
        "config": {"emb_dim": 128, "dropout": 0.0}, "train_config": {"lr": 0.002, "epochs": 6}}))
    same = {"config": {"emb_dim": 128}, "train": {"lr": 0.002}, "loss": {"terms": "logit_mse:1"}}
    assert run_result(tmp_path, "bow", 1, same)["dev"]["accuracy"] == 0.7
    assert run_result(tmp_path, "bow", 0, same) is None  # another seed: not trained by the run
    other_loss = dict(same, loss={"terms": "soft_ce:0.9,hard_ce:0.1", "temperature": 2})
    assert run_result(tmp_path, "bow", 1, other_loss) is None
    assert run_result(tmp_path, "bow", 1, dict(same, train={"lr": 0.003})) is None


def test_no_gap_recovered_when_the_teacher_is_not_above_the_plain_student():
    report = {"task": "token", "dataset": {"name": "d"}, "recipe": {"seeds": [0]},
              "teacher": {"name": "t", "test": {"f1": 0.002}},
              "students": [{"name": "s", "kind": "lstm", "params": 10,
                            "baseline": {"test": {"f1": 0.145}}, "distilled": {"test": {"f1": 0.043}},
                            "gap_recovered": 0.72}]}
    [row] = quality.recipe_rows("r", report)
    assert row["gap_recovered"] is None and row["gap_note"] == "teacher not above plain"
    assert "— (teacher not above plain)" in quality.score_table([row])
    report["teacher"]["test"]["f1"] = 0.5
    assert quality.recipe_rows("r", report)[0]["gap_recovered"] == 0.72


@pytest.mark.e2e
def test_tune_trains_a_tiny_transformer_from_the_runs_teacher(tmp_path, capsys):
    """bench.tune hands the run's teacher to a tiny student (its tokenizer and layers)."""
    import distill
    from bench import tune

    raw = yaml.safe_load((quality.ROOT / "recipes" / "smoke.yaml").read_text())
    raw["students"] = [{"name": "tiny", "kind": "tiny", "config": {"num_layers": 1, "init": "teacher"},
                        "baseline": False, "train": {"epochs": 1, "batch_size": 32}}]
    raw["export"] = {"enabled": False}
    recipe = quality.ROOT / "recipes" / "smoke.yaml"
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**raw, "data": {k: str(recipe.parent / v)
                                                    for k, v in raw["data"].items()}}))
    distill.run(str(path), out=tmp_path / "run", log=lambda m: None)
    tune.main(["--run", str(tmp_path / "run"), "--recipe", str(path), "--seeds", "0",
               "--variant", 'hard={"loss": {"terms": "soft_ce:1,hard_ce:1"}}'])
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["source"] == "tune" and row["loss"] == "1*soft_ce(T=1) + 1*hard_ce"
    assert 0 <= row["dev"] <= 1 and row["params"] > 0
