"""Dev-only tuning of one student of a finished bench.quality run: train variants, compare on dev.

    python -m bench.tune --run runs/bench-quality/movies_en-minilm-l6 \\
        --recipe recipes/movies_en/ngram_from_minilm.yaml \\
        --variant 'mse={}' \\
        --variant 'ce_t2={"loss": {"terms": "soft_ce:0.9,hard_ce:0.1", "temperature": 2}}'

Each ``--variant NAME=JSON`` deep-merges JSON into the recipe's first student spec (keys
``config``, ``vocab``, ``loss``, ``train``) and trains it distilled (soft labels on training +
augmented rows from the run folder; ``"plain": true`` in the JSON trains on the gold rows
instead). The test split is never loaded into the task, so no choice here can see it: the
table has dev accuracy, best epoch, parameters and training time only. Results go to
``RUN/tune/<name>-<fingerprint>/result.json`` (a finished variant is re-read, not retrained) and
one JSON line per variant on stdout.
"""
import argparse
import copy
import json
import time
from pathlib import Path
from typing import Dict

from bench.common import ROOT


def deep_merge(base: Dict, extra: Dict) -> Dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def main(argv=None) -> None:
    import numpy as np

    from distill.core.io import fingerprint
    from distill.data.examples import Task, read_examples
    from distill.pipeline.recipe import load_recipe
    from students.train import default_train_config, train_student

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a finished bench.quality group folder")
    ap.add_argument("--recipe", required=True, help="recipe whose first student is the base")
    ap.add_argument("--variant", action="append", default=[], help="NAME=JSON (repeatable)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    run_dir = Path(args.run)
    loaded = load_recipe(str(ROOT / args.recipe) if not Path(args.recipe).is_absolute()
                         else args.recipe)
    spec = loaded.recipe.students[0]
    base = {"config": dict(spec.config), "vocab": dict(spec.vocab), "loss": dict(spec.loss),
            "train": dict(spec.train)}
    info = json.loads((run_dir / "fetch" / "task.json").read_text())
    labels = list(info["labels"])
    train, dev = (read_examples(run_dir / "fetch" / f"{s}.jsonl", labels=labels)
                  for s in ("train", "dev"))
    task = Task(info["name"], train, dev, [], labels=labels)  # no test rows: dev decides
    augmented = read_examples(run_dir / "augment" / "augmented.jsonl", require_label=False)
    soft = np.load(run_dir / "soft_labels" / "soft_labels.npy").astype(np.float32)
    max_len = spec.max_len or loaded.recipe.teacher.max_len
    for item in args.variant:
        name, _, text = item.partition("=")
        extra = json.loads(text or "{}")
        plain = bool(extra.pop("plain", False))
        merged = deep_merge(base, extra)
        key = fingerprint(spec.kind, merged, plain, args.seed, max_len)
        out = run_dir / "tune" / f"{name}-{key}"
        done = out / "result.json"
        start = time.perf_counter()
        if done.exists():
            result = json.loads(done.read_text())
        else:
            config = default_train_config(spec.kind, **dict(merged["train"], seed=args.seed,
                                                             device=loaded.recipe.device))
            result = train_student(spec.kind, merged["config"], task, out, config,
                                   teacher_logits=None if plain else soft,
                                   augmented=None if plain else augmented,
                                   loss=None if plain else merged["loss"], vocab=merged["vocab"],
                                   max_len=max_len, progress=False)
        fit = result["fit"]
        print(json.dumps({"variant": name, "plain": plain, "dev": round(result["dev"]["accuracy"], 4),
                          "best_epoch": fit["best_epoch"], "epochs_run": fit["epochs_run"],
                          "params": result["parameters"], "loss": result["loss"],
                          "train_s": round(fit["train_time_s"], 1),
                          "wall_s": round(time.perf_counter() - start, 1), "settings": merged}),
              flush=True)


if __name__ == "__main__":
    main()
