"""fastText, the tool a user would pick instead, measured on a quality run's own splits.

Needs ``fasttext-wheel==0.9.2`` (bench only, not the library: ``bench/requirements.txt``,
installed by ``make bench``). Used by ``bench.quality``; alone::

    python -m bench.fasttext_baseline runs/bench-quality/movies_en-minilm-l6 --seeds 0,1,2

Two baselines per run folder (the fetch, augment and soft_labels stages of ``distill run``):

* **gold** — ``train_supervised`` on the gold training rows;
* **teacher-labelled** — on the training rows plus the augmented rows, every row labelled
  with the teacher's argmax (its soft labels' hard labels), so the table separates what the
  soft labels add from what the extra rows add.

Texts are segmented exactly as the word students see them (``WordVocab.tokenize``: regex words
for English, jieba for Chinese, lowercased) and joined by spaces. Hyper-parameters come from a
small grid chosen by dev accuracy with seed 0 (``autotune`` without ``autotuneModelSize`` took
21 GB on movies_en); the chosen setting is then trained with every seed (one thread, so a seed
fixes the result). Test accuracy is only reported. Size: the saved ``.bin``; latency: batch-1
``predict`` p50 over dev sentences already segmented (fastText hashes its n-grams inside that
call; our students' export latency starts from ids), one thread.

fasttext-wheel 0.9.2's Python ``predict`` breaks on NumPy 2 (``np.array(copy=False)``), so this
calls the binding's own ``f.predict(line, k, threshold, on_unicode_error)``.
"""
import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

# Dev grids (seed 0). The teacher-labelled rows are 1 + n_iter times as many, so fewer epochs.
GRIDS = {"gold": {"wordNgrams": (1, 2, 3), "epoch": (5, 10, 20), "lr": (0.5,)},
         "teacher_labelled": {"wordNgrams": (2, 3), "epoch": (5, 10), "lr": (0.5,)}}
FIXED = {"dim": 100, "minCount": 1, "loss": "softmax", "thread": 1, "verbose": 0}
LABEL = "__label__"


def segment(texts: Sequence[str], language: str) -> List[str]:
    """Space-joined words as the word students split them (no newline inside a row)."""
    from distill.text.vocab import tokenize

    return [" ".join(tokenize(t, language)).replace("\n", " ") for t in texts]


def _write(path: Path, lines: Sequence[str], labels: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for line, label in zip(lines, labels):
            f.write(f"{LABEL}{label} {line}\n")


def _predict(model, lines: Sequence[str]) -> List[str]:
    return [model.f.predict(line + "\n", 1, 0.0, "strict")[0][1][len(LABEL):] for line in lines]


def _accuracy(model, lines, labels) -> float:
    return float(np.mean([p == g for p, g in zip(_predict(model, lines), labels)]))


def _latency_ms(model, lines: Sequence[str], runs: int = 300) -> float:
    singles = [line + "\n" for line in lines[:50]]
    for line in singles:
        model.f.predict(line, 1, 0.0, "strict")
    times = []
    for i in range(runs):
        start = time.perf_counter()
        model.f.predict(singles[i % len(singles)], 1, 0.0, "strict")
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.percentile(times, 50))


def run_baseline(train_lines, train_labels, dev_lines, dev_labels, test_lines, test_labels,
                 seeds: Sequence[int], grid: Dict, work: Optional[Path] = None) -> Dict:
    """Grid on dev (seed 0) -> the chosen setting with every seed: dev/test accuracy, size, latency."""
    import fasttext

    with tempfile.TemporaryDirectory(dir=work) as tmp:
        train_file = Path(tmp) / "train.txt"
        _write(train_file, train_lines, train_labels)
        trials = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            start = time.perf_counter()
            model = fasttext.train_supervised(str(train_file), seed=seeds[0], **FIXED, **params)
            trials.append({"params": params, "dev": _accuracy(model, dev_lines, dev_labels),
                           "train_s": round(time.perf_counter() - start, 2)})
            del model
        chosen = max(trials, key=lambda t: t["dev"])["params"]  # first of equals: smaller settings
        per_seed = []
        for seed in seeds:
            start = time.perf_counter()
            model = fasttext.train_supervised(str(train_file), seed=seed, **FIXED, **chosen)
            seconds = time.perf_counter() - start
            saved = Path(tmp) / "model.bin"
            model.save_model(str(saved))
            per_seed.append({"seed": seed, "dev": _accuracy(model, dev_lines, dev_labels),
                             "test": _accuracy(model, test_lines, test_labels),
                             "train_s": round(seconds, 2), "size_bytes": saved.stat().st_size,
                             "latency_ms_b1": _latency_ms(model, dev_lines)})
            saved.unlink()
            del model
    summary = {k: float(np.mean([r[k] for r in per_seed])) for k in
               ("dev", "test", "train_s", "size_bytes", "latency_ms_b1")}
    summary.update({f"{k}_std": float(np.std([r[k] for r in per_seed])) for k in ("dev", "test")})
    return {"chosen_on": "dev", "params": dict(FIXED, **chosen), "grid": trials,
            "per_seed": per_seed, "train_rows": len(train_lines), **summary}


def baselines(run_dir, seeds: Sequence[int], which: Sequence[str] = tuple(GRIDS),
              labels_stage: str = "soft_labels") -> Dict:
    """The baselines ``which`` (gold, teacher_labelled) for one ``distill run`` folder; each is
    cached in ``RUN/fasttext/`` (gold needs only the fetch stage, teacher_labelled also the
    augment stage and ``labels_stage``, the one the students learn from: ``ensemble`` for a
    teacher ensemble)."""
    from distill.core.io import fingerprint, read_json, write_json
    from distill.data.examples import read_examples
    from distill.text.vocab import detect_language

    run_dir = Path(run_dir)
    info = read_json(run_dir / "fetch" / "task.json")
    labels = list(info["labels"])
    splits = {s: read_examples(run_dir / "fetch" / f"{s}.jsonl", labels=labels)
              for s in ("train", "dev", "test")}
    language = detect_language([e.text_a for e in splits["train"]])
    result = {"dataset": info["name"], "language": language, "seeds": list(seeds)}
    seg = gold = None
    for name in which:
        rows = {"train": len(splits["train"])}
        augmented, soft = [], None
        if name == "teacher_labelled":
            aug_path = run_dir / "augment" / "augmented.jsonl"
            augmented = read_examples(aug_path, require_label=False) if aug_path.exists() else []
            soft = np.load(run_dir / labels_stage / "soft_labels.npy")
            rows.update(augmented=len(augmented), soft_sum=float(np.abs(soft).sum()))
        key = fingerprint(name, sorted(seeds), GRIDS[name], FIXED, language, rows,
                          "fasttext-wheel 0.9.2")
        cache = run_dir / "fasttext" / f"{name}-{key}.json"
        if cache.exists():
            result[name] = read_json(cache)
            continue
        if seg is None:
            seg = {s: segment([e.text_a for e in r], language) for s, r in splits.items()}
            gold = {s: [e.label for e in r] for s, r in splits.items()}
        train_lines, train_labels = seg["train"], gold["train"]
        if name == "teacher_labelled":
            train_lines = seg["train"] + segment([e.text_a for e in augmented], language)
            train_labels = [labels[i] for i in soft.argmax(1)]
            if len(train_labels) != len(train_lines):
                raise SystemExit(f"{run_dir}: {len(train_labels)} soft labels for "
                                 f"{len(train_lines)} training + augmented rows")
        (run_dir / "fasttext").mkdir(exist_ok=True)
        load_start = [round(x, 2) for x in os.getloadavg()]
        out = run_baseline(train_lines, train_labels, seg["dev"], gold["dev"], seg["test"],
                           gold["test"], list(seeds), GRIDS[name], work=run_dir / "fasttext")
        out.update(load_average_start=load_start,
                   load_average_end=[round(x, 2) for x in os.getloadavg()])
        write_json(cache, out)
        result[name] = out
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--which", default=",".join(GRIDS), help="gold,teacher_labelled")
    args = parser.parse_args(argv)
    result = baselines(args.run_dir, [int(s) for s in args.seeds.split(",")],
                       args.which.split(","))
    print(json.dumps({k: {m: v[m] for m in ("params", "dev", "test", "size_bytes", "latency_ms_b1")}
                      for k, v in result.items() if k in ("gold", "teacher_labelled")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
