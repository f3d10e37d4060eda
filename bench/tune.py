"""Dev-only tuning of one student of a finished bench.quality run: train variants, compare on dev.

    python -m bench.tune --run runs/bench-quality/movies_en-minilm-l6 \\
        --recipe recipes/movies_en/ngram_from_minilm.yaml --seeds 0,1,2 \\
        --variant 'recipe={}' \\
        --variant 'ce_t2={"loss": {"terms": "soft_ce:0.9,hard_ce:0.1", "temperature": 2}}' \\
        --name tune_movies_en_ngram          # also writes bench/results/tune_movies_en_ngram.md

Each ``--variant NAME=JSON`` deep-merges JSON into the recipe's first student spec (keys
``config``, ``vocab``, ``loss``, ``train``) and trains it distilled with every seed (soft labels
on training + augmented rows from the run folder; ``"plain": true`` in the JSON trains on the
gold rows instead). The test split is never loaded into the task, so no choice here can see it:
the table has dev accuracy (mean ± std over the seeds), best epochs, parameters and training
time only. Results go to ``RUN/tune/<name>-<fingerprint>/result.json`` (a finished variant is
re-read, not retrained), one JSON line per variant and seed on stdout. A distilled variant that
is exactly the recipe's student re-reads the run's own ``distill/<student>/seed<k>`` result when
its loss, config and training settings match (only its dev numbers are read), instead of
training the same model again.
"""
import argparse
import copy
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional

from bench.common import ROOT, machine, machine_line, md_table, run_teacher, write_results


def deep_merge(base: Dict, extra: Dict) -> Dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def loss_text(loss: Dict) -> str:
    """The loss formula a distilled training with these settings reports, e.g. ``1*logit_mse``."""
    from distill.train.losses import build_loss
    from students.train import LossConfig

    config = LossConfig(**loss)
    return str(build_loss(config.specs("distilled"), temperature=config.temperature))


def run_result(run_dir: Path, student: str, seed: int, merged: Dict) -> Optional[Dict]:
    """The runner's finished distilled result for ``student``/``seed`` when it was trained with
    exactly ``merged``'s loss, config and training settings; else None."""
    folder = run_dir / "distill" / student / f"seed{seed}"
    if not (folder / "done.json").exists() or not (folder / "result.json").exists():
        return None
    result = json.loads((folder / "result.json").read_text())
    same = (result.get("mode") == "distilled" and result.get("seed") == seed
            and result.get("loss") == loss_text(merged["loss"])
            and all(result["config"].get(k) == v for k, v in merged["config"].items())
            and all(result["train_config"].get(k) == v for k, v in merged["train"].items()))
    return result if same else None


def markdown(info: Dict) -> str:
    rows = []
    for v in info["variants"]:
        devs = [r["dev"] for r in v["seeds"]]
        rows.append([v["name"], "plain" if v["plain"] else "distilled", v["loss"],
                     f"{100 * v['dev_mean']:.1f} ± {100 * v['dev_std']:.1f}",
                     " / ".join(f"{100 * d:.1f}" for d in devs),
                     " / ".join(str(r["best_epoch"]) for r in v["seeds"]),
                     f"{v['params'] / 1e6:.2f}M", f"{v['train_s_mean']:.0f}",
                     " / ".join(r["source"] for r in v["seeds"])])
    lines = [f"### Dev-only tuning: {info['student']} ({info['kind']}) of {info['recipe']}, "
             f"seeds {info['seeds']}", "",
             machine_line(info["machine"]) + f"; load average {info['load_average_end'][0]} at the end.",
             "", "Dev accuracy only (the test split is never loaded); mean ± population std over "
                 "the seeds, as the quality table. 'run' = the bench.quality run's own "
                 "training of the recipe's student, re-read; 'tune' = trained by this script.", "",
             md_table(["variant", "mode", "loss", "dev % mean ± std", "dev % per seed",
                       "best epoch per seed", "params", "train s (mean)", "source"], rows)]
    settings = [f"- {v['name']}: `{json.dumps(v['extra'], sort_keys=True)}`" for v in info["variants"]]
    return "\n".join(lines + ["", "Variants (merged into the recipe's student spec):"] + settings)


def main(argv=None) -> None:
    import numpy as np

    from distill.core.io import fingerprint
    from distill.data.examples import Task, read_examples
    from distill.pipeline.recipe import load_recipe
    from distill.pipeline.report import mean_std
    from students.train import default_train_config, train_student

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished bench.quality group folder")
    ap.add_argument("--recipe", required=True, help="recipe whose first student is the base")
    ap.add_argument("--variant", action="append", default=[], help="NAME=JSON (repeatable)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    ap.add_argument("--name", default=None,
                    help="also write RESULTS/NAME.md and .json (dev mean ± std per variant)")
    ap.add_argument("--out", default=None, help="results folder (default bench/results)")
    args = ap.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]

    run_dir = Path(args.run)
    loaded = load_recipe(str(ROOT / args.recipe) if not Path(args.recipe).is_absolute()
                         else args.recipe)
    spec = loaded.recipe.students[0]
    base = {"config": dict(spec.config), "vocab": dict(spec.vocab), "loss": dict(spec.loss),
            "train": dict(spec.train)}
    info_task = json.loads((run_dir / "fetch" / "task.json").read_text())
    labels = list(info_task["labels"])
    train, dev = (read_examples(run_dir / "fetch" / f"{s}.jsonl", labels=labels)
                  for s in ("train", "dev"))
    task = Task(info_task["name"], train, dev, [], labels=labels)  # no test rows: dev decides
    augmented = read_examples(run_dir / "augment" / "augmented.jsonl", require_label=False)
    soft = np.load(run_dir / "soft_labels" / "soft_labels.npy").astype(np.float32)
    max_len = spec.max_len or loaded.recipe.teacher.max_len
    info = {"machine": machine(), "recipe": args.recipe, "student": spec.name, "kind": spec.kind,
            "seeds": seeds, "variants": []}
    for item in args.variant:
        name, _, text = item.partition("=")
        extra = json.loads(text or "{}")
        plain = bool(extra.pop("plain", False))
        merged = deep_merge(base, extra)
        per_seed: List[Dict] = []
        for seed in seeds:
            key = fingerprint(spec.kind, merged, plain, seed, max_len)
            # seed 0 keeps the folder name of the one-seed version of this script
            out = run_dir / "tune" / f"{name}-{key}"
            done = out / "result.json"
            start = time.perf_counter()
            source = "tune"
            result = None if plain else run_result(run_dir, spec.name, seed, merged)
            if result is not None:
                source = "run"
            elif done.exists():
                result = json.loads(done.read_text())
            else:
                config = default_train_config(spec.kind, **dict(merged["train"], seed=seed,
                                                                 device=loaded.recipe.device))
                result = train_student(spec.kind, merged["config"], task, out, config,
                                       teacher_logits=None if plain else soft,
                                       augmented=None if plain else augmented,
                                       loss=None if plain else merged["loss"],
                                       vocab=merged["vocab"], max_len=max_len, progress=False,
                                       teacher=run_teacher(run_dir, spec.kind, merged["vocab"]))
            fit = result["fit"]
            row = {"seed": seed, "dev": result["dev"]["accuracy"], "best_epoch": fit["best_epoch"],
                   "epochs_run": fit["epochs_run"], "train_s": round(fit["train_time_s"], 1),
                   "source": source}
            per_seed.append(row)
            print(json.dumps({"variant": name, "plain": plain, **row, "dev": round(row["dev"], 4),
                              "params": result["parameters"], "loss": result["loss"],
                              "wall_s": round(time.perf_counter() - start, 1),
                              "settings": merged}), flush=True)
        mean, std = mean_std([r["dev"] for r in per_seed])
        info["variants"].append({
            "name": name, "plain": plain, "extra": extra, "settings": merged,
            "loss": "hard_ce (gold rows)" if plain else result["loss"], "params": result["parameters"],
            "dev_mean": mean, "dev_std": std or 0.0,
            "train_s_mean": sum(r["train_s"] for r in per_seed) / len(per_seed), "seeds": per_seed})
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.name:
        path = write_results(args.name, info, markdown(info), Path(args.out) if args.out else None)
        print(f"wrote {path}")
    print("tune: " + "; ".join(f"{v['name']} dev {100 * v['dev_mean']:.1f}±{100 * v['dev_std']:.1f}"
                               for v in info["variants"]))


if __name__ == "__main__":
    main()
