"""Accuracy: the ten movies_en / reviews_zh recipes over 3 seeds, fastText baselines, an ablation.

    python -m bench.quality                      # 10 recipes x 3 seeds (many hours on a CPU)
    python -m bench.quality --recipes recipes/movies_en/bow_from_minilm.yaml,recipes/movies_en/ngram_from_minilm.yaml \
        --seeds 0,1,2 --ablation ""              # what was measured on 2026-12-01 (see the table)
    python -m bench.quality --recipes recipes/movies_en/bow_from_minilm.yaml --seeds 0,1,2
    python -m bench.quality --quick              # the smoke recipe, 3 seeds, same tables
    python -m bench.quality --name quality_msra --no-fasttext --ablation "" --recipes \
        recipes/msra_ner/lstm_from_e5small.yaml,recipes/msra_ner/cnn_from_e5small.yaml   # NER

Recipes that differ only in their students (same data, teacher, augmentation, seeds, export)
run as one group through ``distill.run`` into ``runs/bench-quality/<group>``: the teacher is
fine-tuned, the data augmented and labelled once, and every student trains exactly as its own
recipe says. The teacher is exported to the same formats as the students (INT8 included), so the
run folders also hold every model's FP32 -> INT8 size, speed and accuracy change. Stages are cached: an interrupted bench resumes, a finished one re-reads reports. The table
has the fine-tuned teacher's test accuracy and, per student, plain (gold labels) vs distilled
test accuracy as mean ± std over the seeds, and the share of the teacher-plain gap recovered.
Every choice is made on dev (best epochs, early stopping, the export guard, the packaged
student; fastText's hyper-parameters); test accuracy is only reported. Size and batch-1 latency
of a student are those of its export the package would ship (seed 0).

Token (NER, ``task: token``) recipes give the same rows through the same code, with entity F1
(seqeval, strict) wherever sentence recipes give accuracy: teacher F1, plain and distilled
student F1, gap recovered, and the INT8 F1 change of every export after the guard (which
judges dev F1). A recipe with ``export.teacher: false`` has no teacher export rows. No
fastText baseline or ablation for token recipes.

fastText baselines (``bench.fasttext_baseline``; needs ``fasttext-wheel==0.9.2`` from
``bench/requirements.txt``, which ``make bench`` installs; ``--no-fasttext`` skips them), on each
group's own splits with the students' word segmentation: trained on the gold rows, and on the
training + augmented rows labelled by the teacher's argmax.

The ablation (the first student of one recipe per language) separates what each part buys,
from the same run's files (teacher, augmented rows, soft labels), same seeds and settings:

* plain — gold labels on the training set (the recipe's baseline);
* no augmentation — the teacher's soft labels on the original training rows only;
* augmentation without the teacher — augmented rows given their source row's gold label,
  trained with hard cross-entropy like the plain student;
* full distillation — soft labels on training + augmented rows (the recipe's student).

Writes bench/results/quality.md and .json (``--name`` for another file name); the last line is
the summary.
"""
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from bench.common import (ROOT, base_parser, machine, machine_line, md_table, results_dir, run_teacher,
                          write_results)
from distill.pipeline.report import SCORE_WORDS, score_key

KINDS = ("bow", "ngram", "cnn", "lstm", "tiny")
RECIPES = [f"recipes/movies_en/{k}_from_minilm.yaml" for k in KINDS] + \
          [f"recipes/reviews_zh/{k}_from_e5small.yaml" for k in KINDS]
ABLATION = ["recipes/movies_en/bow_from_minilm.yaml", "recipes/reviews_zh/bow_from_e5small.yaml"]
QUICK = ["recipes/smoke.yaml"]
VARIANTS = ("plain", "no augmentation", "augmentation without teacher", "full distillation")


def group_recipes(recipes: Sequence[str]) -> Dict[str, Dict]:
    """Merge recipes that differ only in ``name`` and ``students`` -> {group name: recipe dict}.

    A group's name is its first recipe's data set and teacher(s), e.g. ``movies_en-minilm-l6``
    (a teacher ensemble: ``movies_en-minilm-l6_e5-small``);
    ``members`` maps each recipe path to its student names.
    """
    import yaml

    groups: Dict[str, Dict] = {}
    for recipe in recipes:
        raw = yaml.safe_load((ROOT / recipe).read_text())
        shared = {k: v for k, v in raw.items() if k not in ("name", "students")}
        group = next((g for g in groups.values() if g["shared"] == shared
                      and g["base_dir"] == str(Path(recipe).parent)), None)
        if group is None:
            data, teacher = raw.get("data", {}), raw.get("teacher", {})
            sources = "_".join(t.get("source") for t in (teacher if isinstance(teacher, list)
                                                           else [teacher]))
            base = name = f"{data.get('builtin') or raw['name']}-{sources}"
            while name in groups:  # a run folder each (names: recipe name rules, no '+')
                name = f"{base}-{sum(g.startswith(base) for g in groups) + 1}"
            group = groups[name] = {"name": name, "shared": shared, "students": [], "members": {},
                                    "base_dir": str(Path(recipe).parent)}
        names = [s["name"] for s in raw["students"]]
        clash = set(names) & {s["name"] for s in group["students"]}
        if clash:
            raise SystemExit(f"{recipe}: student name(s) {sorted(clash)} already used in group "
                             f"{group['name']}; rename them")
        group["students"] += raw["students"]
        group["members"][recipe] = names
    return groups


def is_token_recipe(recipe: str) -> bool:
    import yaml

    return yaml.safe_load((ROOT / recipe).read_text()).get("task") == "token"


def run_group(group: Dict, runs: Path, seeds: Sequence[int]) -> Dict:
    import distill

    recipe = dict(group["shared"], name=group["name"], students=group["students"])
    export = recipe.get("export") or {}
    if export.get("formats") and "teacher_formats" not in export:  # the teacher's INT8 too
        recipe["export"] = dict(export, teacher_formats=list(export["formats"]))
    start = time.perf_counter()
    report = distill.run(recipe, out=runs / group["name"], seeds=list(seeds),
                         base_dir=ROOT / group["base_dir"])
    report["_bench_seconds"] = round(time.perf_counter() - start, 1)
    return report


def recipe_report(report: Dict, students: Sequence[str]) -> Dict:
    """The group's report restricted to one recipe's students."""
    return dict(report, students=[s for s in report["students"] if s["name"] in students])


def shipped_export(student: Dict) -> Optional[Dict]:
    """The export the package would ship for a student (accepted ONNX, fastest then smallest)."""
    from distill.export.package import PACKAGE_FORMATS, fastest_then_smallest

    ok = [e for e in student.get("exports") or [] if e.get("accepted")
          and e["format"] in PACKAGE_FORMATS and e.get("latency_ms_b1")]
    return fastest_then_smallest(ok, latency=lambda e: e["latency_ms_b1"],
                                 size=lambda e: e["size_bytes"]) if ok else None


def recipe_rows(recipe: str, report: Dict) -> List[Dict]:
    """One row per student: teacher, plain and distilled test score of the report's metric."""
    m = score_key(report)  # entity F1 for token (NER) recipes, else accuracy
    teacher = report["teacher"]["test"][m]
    rows = []
    for s in report["students"]:
        base = (s.get("baseline") or {}).get("test", {})
        dist = s["distilled"]["test"]
        shipped = shipped_export(s) or {}
        # no gap to recover when the teacher is not above the plain student (the ratio would
        # then reward a distilled student that fell below the plain one)
        gap_ok = None not in (teacher, base.get(m)) and teacher > base.get(m)
        rows.append({"recipe": recipe, "dataset": report["dataset"]["name"], "metric": m,
                     "teacher": report["teacher"]["name"], "teacher_score": teacher,
                     "student": s["name"], "kind": s["kind"], "params": s["params"],
                     "plain": base.get(m), "plain_std": base.get(f"{m}_std"),
                     "distilled": dist.get(m), "distilled_std": dist.get(f"{m}_std"),
                     "gap_recovered": s.get("gap_recovered") if gap_ok else None,
                     "gap_recovered_std": s.get("gap_recovered_std") if gap_ok else None,
                     "gap_note": "" if gap_ok or not s.get("baseline") else "teacher not above plain",
                     "dev_plain": ((s.get("baseline") or {}).get("dev") or {}).get(m),
                     "dev_distilled": (s["distilled"].get("dev") or {}).get(m),
                     "export": shipped.get("format"), "size_bytes": shipped.get("size_bytes"),
                     "latency_ms_b1": shipped.get("latency_ms_b1"),
                     "seeds": report["recipe"]["seeds"]})
    return rows


def ensemble_rows(report: Dict) -> List[Dict]:
    """A teacher ensemble against its members: one row per member, then the combination
    (weights chosen on dev); [] when the report's teacher is a single model."""
    ens = report["teacher"].get("ensemble")
    if not ens:
        return []
    data = report["dataset"]["name"]
    rows = [{"dataset": data, "teacher": m["name"], "weight": m["weight"],
             "dev": (m.get("dev") or {}).get("accuracy"), "test": (m.get("test") or {}).get("accuracy")}
            for m in ens["members"]]
    return rows + [{"dataset": data, "teacher": f"ensemble ({ens['rule']}, weights chosen on "
                                                f"{ens['chosen_on']})",
                    "weight": None, "dev": report["teacher"]["dev"]["accuracy"],
                    "test": report["teacher"]["test"]["accuracy"]}]


# ------------------------------------------------------------------------------ ablation

def ablation(recipe: str, run_dir: Path, seeds: Sequence[int], report: Dict) -> Dict:
    """The four variants for the recipe's first student, from its group's run folder."""
    import numpy as np

    from distill.data.examples import Task, read_examples
    from distill.core.io import fingerprint
    from distill.pipeline.recipe import load_recipe
    from distill.pipeline.report import mean_std
    from students.train import default_train_config, train_student

    loaded = load_recipe(str(ROOT / recipe))
    spec = loaded.recipe.students[0]
    info = json.loads((run_dir / "fetch" / "task.json").read_text())
    labels = list(info["labels"])
    train, dev, test = (read_examples(run_dir / "fetch" / f"{s}.jsonl", labels=labels)
                        for s in ("train", "dev", "test"))
    task = Task(info["name"], train, dev, test, labels=labels)
    aug_path = run_dir / "augment" / "augmented.jsonl"
    augmented = read_examples(aug_path, require_label=False) if aug_path.exists() else []
    soft = np.load(run_dir / "soft_labels" / "soft_labels.npy")
    teacher = run_teacher(run_dir, spec.kind, spec.vocab)
    max_len = spec.max_len or loaded.recipe.teacher.max_len
    entry = next(s for s in report["students"] if s["name"] == spec.name)
    results: Dict[str, Dict] = {
        "plain": _from_report(entry.get("baseline")),
        "full distillation": _from_report(entry["distilled"])}

    gold_aug = [dataclasses.replace(ex, label=train[ex.source_id].label) for ex in augmented]
    variants = {
        "no augmentation": dict(task=task, teacher_logits=soft[:len(train)], augmented=None,
                                loss=dict(spec.loss)),
        "augmentation without teacher": dict(
            task=dataclasses.replace(task, train=list(train) + gold_aug), teacher_logits=None,
            augmented=None, loss={"terms": "hard_ce:1"}),
    }
    for name, kwargs in variants.items():
        # a changed student spec gets new folders instead of re-reading stale results
        key = fingerprint(dataclasses.asdict(spec), max_len, kwargs["loss"])
        dev, test = [], []  # accuracy per seed
        for seed in seeds:
            out = run_dir / "ablation" / name.replace(" ", "_") / f"seed{seed}-{key}"
            done = out / "result.json"
            if done.exists():
                result = json.loads(done.read_text())
            else:
                config = default_train_config(spec.kind, **dict(spec.train, seed=seed,
                                                                 device=loaded.recipe.device))
                result = train_student(spec.kind, spec.config, kwargs["task"], out, config,
                                       teacher_logits=kwargs["teacher_logits"],
                                       augmented=kwargs["augmented"], loss=kwargs["loss"],
                                       teacher=teacher, vocab=spec.vocab, max_len=max_len,
                                       progress=False)
            dev.append(result["dev"]["accuracy"])
            test.append(result["test"]["accuracy"])
        mean, std = mean_std(test)
        results[name] = {"accuracy": mean, "accuracy_std": std, "per_seed": test,
                         "dev_accuracy": mean_std(dev)[0]}
    return {"recipe": recipe, "student": spec.name, "kind": spec.kind, "seeds": list(seeds),
            "teacher_accuracy": report["teacher"]["test"]["accuracy"],
            "train_rows": len(train), "augmented_rows": len(augmented), "variants": results}


def _from_report(block: Optional[Dict]) -> Dict:
    dev, test = ((block or {}).get(split, {}) for split in ("dev", "test"))
    return {"accuracy": test.get("accuracy"), "accuracy_std": test.get("accuracy_std"),
            "dev_accuracy": dev.get("accuracy")}


# ------------------------------------------------------------------------------ INT8

INT8_PAIRS = (("paddle", "paddle-int8"), ("onnx", "onnx-int8"))


def int8_rows(report: Dict) -> List[Dict]:
    """FP32 -> INT8 changes of every exported model of a run (students: the first seed's), in the
    report's metric (accuracy, or entity F1 for token recipes) on the test set."""
    m = score_key(report)  # entity F1 for token (NER) recipes, else accuracy
    teacher = report["teacher"]
    # an ensemble's export/teacher stage exports its first member
    exported = teacher["ensemble"]["members"][0]["name"] if teacher.get("ensemble") else teacher["name"]
    models = [("teacher", exported, teacher.get("exports") or [])]
    models += [(s["kind"], s["name"], s.get("exports") or []) for s in report["students"]]
    rows = []
    for kind, name, exports in models:
        by_format = {e["format"]: e for e in exports}
        for fp32, int8 in INT8_PAIRS:
            a, b = by_format.get(fp32), by_format.get(int8)
            if not (a and b):
                continue
            score_a, score_b = (e["test"].get(m) for e in (a, b))
            rows.append({"dataset": report["dataset"]["name"], "model": name, "kind": kind,
                         "runtime": fp32, "metric": m, "fp32_bytes": a["size_bytes"],
                         "int8_bytes": b["size_bytes"],
                         "size_ratio": _ratio(a["size_bytes"], b["size_bytes"]),
                         "latency_speedup_b1": _ratio(a.get("latency_ms_b1"), b.get("latency_ms_b1")),
                         "throughput_ratio_b32": _ratio(b.get("throughput_b32"),
                                                        a.get("throughput_b32")),
                         "change": None if None in (score_a, score_b) else score_b - score_a,
                         "accepted": b["accepted"], "reason": b.get("reason") or ""})
    return rows


def _ratio(num, den) -> Optional[float]:
    return None if not num or not den else num / den


def _x(v) -> str:
    return "—" if v is None else f"{v:.2f}×"


def int8_markdown(rows: List[Dict]) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    change = (f"{SCORE_WORDS[metrics[0]]} change (pts)" if len(metrics) == 1
              else "change (pts)")
    table = [[r["dataset"], r["model"], {"paddle": "Paddle Inference", "onnx": "ONNX Runtime"}[r["runtime"]],
              f"{_size(r['fp32_bytes'])} → {_size(r['int8_bytes'])}",
              _x(r["size_ratio"]), _x(r["latency_speedup_b1"]), _x(r["throughput_ratio_b32"]),
              ("—" if r["change"] is None else f"{100 * r['change']:+.2f}")
              + ("" if len(metrics) == 1 else f" {SCORE_WORDS[r['metric']]}"),
              "yes" if r["accepted"] else f"no: {r['reason']}"] for r in rows]
    return md_table(["data", "model", "runtime", "size FP32 → INT8", "smaller", "faster b1",
                     "throughput b32", change, "accepted"], table)


# ------------------------------------------------------------------------------ output

def _pm(mean, std) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.1f}" + (f" ± {100 * std:.1f}" if std is not None else "")


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _size(n) -> str:
    if n is None:
        return "—"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def _ms(v) -> str:
    return "—" if v is None else f"{v:.3f}"


def fasttext_rows(ft: Dict) -> List[List[str]]:
    rows = []
    for name, label in (("gold", "gold rows"), ("teacher_labelled", f"labelled by "
                                                  f"{ft.get('teacher', 'the teacher')}, "
                                                  "train + augmented")):
        b = ft.get(name)
        if not b:
            continue
        p = b["params"]
        rows.append([ft["dataset"], f"fastText, {label}", f"{b['train_rows']:,}",
                     f"wordNgrams {p['wordNgrams']}, epoch {p['epoch']}, lr {p['lr']}, dim {p['dim']}",
                     _pm(b["dev"], b["dev_std"]), _pm(b["test"], b["test_std"]),
                     _size(b["size_bytes"]), _ms(b["latency_ms_b1"]), f"{b['train_s']:.0f}",
                     " → ".join(str(x[0]) for x in (b["load_average_start"], b["load_average_end"]))])
    return rows


def score_table(rows: List[Dict]) -> str:
    """The teacher / plain / distilled table; sentence and token rows differ only in the metric."""
    label = SCORE_WORDS[rows[0]["metric"]]
    cells = [[r["dataset"], r["teacher"], _pm(r["teacher_score"], None), r["student"],
              _params(r["params"]), _pm(r["plain"], r["plain_std"]),
              _pm(r["distilled"], r["distilled_std"]),
              _pm(r["gap_recovered"], r["gap_recovered_std"]) + (" %" if r["gap_recovered"]
                                                                 is not None else "")
              + (f" ({r['gap_note']})" if r.get("gap_note") else ""),
              f"{_size(r.get('size_bytes'))} {r.get('export') or ''}".strip(),
              _ms(r.get("latency_ms_b1"))]
             for r in rows]
    return md_table(["data", "teacher", f"teacher {label} %", "student", "params", f"plain {label} %",
                     f"distilled {label} %", "gap recovered", "size (shipped export, seed 0)",
                     "b1 latency ms (model only)"], cells)


def ensemble_markdown(rows: List[Dict]) -> str:
    return md_table(["data", "teacher", "weight", "dev acc %", "test acc %"],
                    [[r["dataset"], r["teacher"], "—" if r["weight"] is None else f"{r['weight']:.1f}",
                      _pm(r["dev"], None), _pm(r["test"], None)] for r in rows])


def markdown(info) -> str:
    metrics = list(dict.fromkeys(r["metric"] for r in info["rows"])) or ["accuracy"]
    title = " and ".join({"accuracy": "Accuracy", "f1": "Entity F1"}[m] for m in metrics)
    lines = [f"### {title} (test set, mean ± std over seeds {info['seeds']}; every choice made on dev)", "",
             machine_line(info["machine"]) + (f"; load average {info['load_average_end'][0]} at the "
                                              f"end" if info.get("load_average_end") else "") + ".", ""]
    if "f1" in metrics:
        lines += ["Entity F1: seqeval, strict mode of the tag scheme, micro-averaged over entity "
                  "types, on the test rows below.", ""]
    if info.get("sizes"):
        lines += ["Rows used (train and dev/test may be seeded samples, see each recipe): "
                  + "; ".join(f"{d}: train {z['train']:,}, augmented {z.get('augmented', 0):,}, "
                              f"dev {z['dev']:,}, test {z['test']:,}"
                              for d, z in info["sizes"].items()) + ".", ""]
    lines += ["\n\n".join(score_table([r for r in info["rows"] if r["metric"] == m]) for m in metrics)]
    ft = [row for f in info.get("fasttext", []) for row in fasttext_rows(f)]
    if ft:
        lines += ["", "fastText baselines on the same splits and word segmentation "
                      "(bench/fasttext_baseline.py; hyper-parameters chosen on dev with seed 0 from "
                      "a small grid, then trained with every seed; one thread; size = the saved "
                      ".bin with fastText's default 2M hash buckets; latency = batch-1 `predict` "
                      "p50 on segmented text, n-gram hashing included; load = 1-min load average "
                      "at start → end):", "",
                  md_table(["data", "baseline", "train rows", "chosen on dev", "dev %", "test %",
                            "size", "b1 latency ms", "train s", "load"], ft)]
    if info.get("int8"):
        lines += ["", "INT8 against FP32 in the same runtime, for every exported model (students: "
                      "seed 0; test set; 'faster b1' = FP32 / INT8 batch-1 latency, 'throughput b32' "
                      "= INT8 / FP32; acceptance: at most 0.5 points below FP32 on dev, in accuracy or, "
                      "for NER, entity F1 after the guard's FP32 retries; the change shown is on "
                      "test). Sizes and scores are exact; the speed ratios come from each run's export stage, timed "
                      "whenever it ran (possibly beside other jobs), so bench/results/speed.md, "
                      "which times every runtime side by side, is the reference for speed:", "",
                  int8_markdown(info["int8"])]
    if info.get("ensembles"):
        lines += ["", "Teacher ensembles: each member and their weighted combination (the weights, "
                      "a grid over the members, are chosen by dev accuracy), on the rows of the "
                      "table above:", "", ensemble_markdown(info["ensembles"])]
    for ab in info["ablation"]:
        lines += ["", f"Ablation, {ab['student']} on {ab['recipe']} ({ab['train_rows']} training "
                      f"rows, {ab['augmented_rows']} augmented; teacher "
                      f"{_pm(ab['teacher_accuracy'], None)} %):", "",
                  md_table(["variant", "dev acc %", "test acc %"],
                           [[v, _pm(ab["variants"][v].get("dev_accuracy"), None),
                             _pm(ab["variants"][v]["accuracy"], ab["variants"][v]["accuracy_std"])]
                            for v in VARIANTS])]
    return "\n".join(lines)


def summary(info) -> str:
    parts = [f"{r['dataset']}/{r['student']} {_pm(r['plain'], None)}->{_pm(r['distilled'], None)}"
             f" (gap {_pm(r['gap_recovered'], None)}%)" for r in info["rows"]]
    for f in info.get("fasttext", []):
        for name in ("gold", "teacher_labelled"):
            if f.get(name):
                parts.append(f"{f['dataset']}/fastText-{name} {_pm(f[name]['test'], None)}")
    for ab in info["ablation"]:
        v = ab["variants"]
        parts.append(f"ablation {ab['student']}: " + " / ".join(
            _pm(v[k]["accuracy"], None) for k in VARIANTS))
    return "quality: " + "; ".join(parts)


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--recipes", default=None, help="comma-separated recipe paths")
    parser.add_argument("--ablation", default=None,
                        help="comma-separated recipes to ablate (their first student)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default=None, help="run folders (default runs/bench-quality)")
    parser.add_argument("--no-fasttext", action="store_true", help="skip the fastText baselines")
    parser.add_argument("--name", default="quality",
                        help="results file name (RESULTS/NAME.md and .json; default quality), so a "
                             "run of a few recipes does not replace the full table")
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    recipes = args.recipes.split(",") if args.recipes else (QUICK if args.quick else RECIPES)
    to_ablate = args.ablation.split(",") if args.ablation is not None else \
        (QUICK if args.quick else ABLATION)
    runs = Path(args.runs) if args.runs else ROOT / "runs" / (
        "bench-quality-quick" if args.quick else "bench-quality")
    info = {"machine": machine(), "quick": args.quick, "seeds": seeds, "rows": [],
            "ablation": [], "int8": [], "fasttext": [], "ensembles": [], "seconds": {}, "sizes": {}}
    print(machine_line(info["machine"]), flush=True)
    token = [r for r in to_ablate if r and is_token_recipe(r)]
    if token:
        raise SystemExit(f"{', '.join(token)}: the ablation is for sentence recipes; "
                         "pass --ablation \"\" (or sentence recipes)")
    reports, run_dirs = {}, {}
    for group in group_recipes(list(dict.fromkeys(recipes + [r for r in to_ablate if r]))).values():
        print(f"{', '.join(group['members'])}: distill.run as {group['name']} with seeds {seeds} ...",
              flush=True)
        report = run_group(group, runs, seeds)
        info["seconds"][group["name"]] = report.pop("_bench_seconds")
        for recipe, students in group["members"].items():
            reports[recipe] = recipe_report(report, students)
            run_dirs[recipe] = runs / group["name"]
        info["int8"] += int8_rows(report)
        info["ensembles"] += ensemble_rows(report)
        info["sizes"][report["dataset"]["name"]] = report["dataset"].get("sizes")
        if not args.no_fasttext and group["name"].split("-")[0] in ("movies_en", "reviews_zh"):
            from bench.fasttext_baseline import baselines
            from distill.pipeline.runner import labels_stage

            dataset = report["dataset"]["name"]
            members = (report["teacher"].get("ensemble") or {}).get("members") or [report["teacher"]]
            done = any(f["dataset"] == dataset and f.get("gold") for f in info["fasttext"])
            print(f"{group['name']}: fastText baselines ...", flush=True)
            info["fasttext"].append(dict(
                baselines(runs / group["name"], seeds,
                          which=("teacher_labelled",) if done else ("gold", "teacher_labelled"),
                          labels_stage=labels_stage(len(members))),
                teacher=f"{report['teacher']['name']} "  # groups may differ in teacher only
                        f"({100 * report['teacher']['test'][score_key(report)]:.1f} % test)"))
    for recipe in recipes:
        info["rows"] += recipe_rows(recipe, reports[recipe])
    for recipe in [r for r in to_ablate if r]:
        print(f"{recipe}: ablation ...", flush=True)
        info["ablation"].append(ablation(recipe, run_dirs[recipe], seeds, reports[recipe]))
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_results(args.name, info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
