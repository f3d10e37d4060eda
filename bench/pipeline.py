"""Wall time of each stage of the default recipe, so the slowest stage is known.

    python -m bench.pipeline                       # recipes/movies_en/bow_from_minilm.yaml
    python -m bench.pipeline --run-dir runs/demo   # read a finished run instead of running one
    python -m bench.pipeline --quick               # the smoke recipe, run from scratch

Without ``--run-dir`` the recipe runs through ``distill.run`` into ``runs/bench-pipeline``
(an earlier finished run there is re-read, not re-run, unless ``--fresh``). Stage times come
from the run's ``report.json`` (``stage_seconds``: the time each stage took when it last ran),
and the soft-label and augmentation rates from the stages' ``done.json``. Writes
bench/results/pipeline.md and .json; the last line is the summary.
"""
import json
import shutil
from pathlib import Path
from typing import Dict, List

from bench.common import ROOT, base_parser, machine, machine_line, md_table, results_dir, write_results

DEFAULT = "recipes/movies_en/bow_from_minilm.yaml"
QUICK = "recipes/smoke.yaml"
GROUPS = (("fetch", "fetch"), ("teacher", "teacher fine-tuning"), ("augment", "augmentation"),
          ("soft_labels", "soft labels"), ("baseline/", "plain students"),
          ("distill/", "distilled students"), ("export/", "export + measure"),
          ("package", "package"), ("report", "report"))


def group_of(stage: str) -> str:
    for prefix, name in GROUPS:
        if stage == prefix or (prefix.endswith("/") and stage.startswith(prefix)):
            return name
    return stage


def stage_result(run_dir: Path, stage: str) -> Dict:
    path = run_dir / stage / "done.json"
    return json.loads(path.read_text()).get("result", {}) if path.exists() else {}


def _flat(d, prefix: str = "") -> Dict:
    out = {}
    items = enumerate(d) if isinstance(d, list) else (d or {}).items()
    for k, v in items:
        key = f"{prefix}[{k}]" if isinstance(d, list) else f"{prefix}{'.' if prefix else ''}{k}"
        out.update(_flat(v, key) if isinstance(v, (dict, list)) and v else {key: v})
    return out


def recipe_drift(run_dir: Path, recipe: str) -> List[str]:
    """Settings of the run that differ from the recipe file as it is now ("key: run -> now")."""
    from distill.pipeline.recipe import load_recipe

    path = run_dir / "recipe.json"
    if not path.exists():
        return ["(the run has no recipe.json)"]
    ran = _flat(json.loads(path.read_text())["settings"])
    now = _flat(load_recipe(str(ROOT / recipe)).settings())
    return [f"{k}: {ran.get(k)!r} -> {now.get(k)!r}" for k in sorted(set(ran) | set(now))
            if ran.get(k) != now.get(k)]


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (no machine paths in results)."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def collect(run_dir: Path, recipe: str) -> Dict:
    report = json.loads((run_dir / "report.json").read_text())
    seconds = {k: float(v) for k, v in report["stage_seconds"].items()}
    report_done = run_dir / "report" / "done.json"
    if "report" not in seconds and report_done.exists():
        seconds["report"] = float(json.loads(report_done.read_text())["seconds"])
    total = sum(seconds.values())
    groups: Dict[str, float] = {}
    for stage, sec in seconds.items():
        groups[group_of(stage)] = groups.get(group_of(stage), 0.0) + sec
    labels = stage_result(run_dir, "soft_labels")
    sl_rate = labels.get("rows", 0) / seconds["soft_labels"] if seconds.get("soft_labels") else None
    aug = stage_result(run_dir, "augment")
    return {"recipe": recipe, "run_dir": _shown(run_dir), "dataset": report["dataset"],
            "stage_seconds": seconds, "group_seconds": groups, "total_seconds": round(total, 1),
            "slowest_stage": max(seconds, key=seconds.get),
            "slowest_group": max(groups, key=groups.get),
            "soft_labels": {"rows": labels.get("rows"), "engine": labels.get("engine"),
                            "rows_per_s": round(sl_rate, 1) if sl_rate else None},
            "augment": {"rows": aug.get("rows"), "summary": aug.get("summary")},
            "recipe_drift": recipe_drift(run_dir, recipe),
            "run_finished": max((json.loads(p.read_text()).get("finished", "")
                                 for p in run_dir.rglob("done.json")), default="")}


def markdown(info) -> str:
    total = info["total_seconds"] or 1.0
    stages = [[k, f"{v:.1f}", f"{100 * v / total:.1f}%"]
              for k, v in sorted(info["stage_seconds"].items(), key=lambda kv: -kv[1])]
    groups = [[k, f"{v:.1f}", f"{100 * v / total:.1f}%"]
              for k, v in sorted(info["group_seconds"].items(), key=lambda kv: -kv[1])]
    sl, sizes = info["soft_labels"], info["dataset"]["sizes"]
    return "\n".join([
        f"### Pipeline stage times ({info['recipe']})", "",
        f"Stage times of the run in `{info['run_dir']}` (finished {info['run_finished']}); "
        f"machine: " + machine_line(info["machine"]) + f". Data: {sizes}.", "",
        md_table(["part", "seconds", "share"], groups), "",
        f"Total {info['total_seconds']:.0f} s; slowest part: {info['slowest_group']}. Soft labels: "
        f"{sl['rows']} rows with engine {sl['engine']} at {sl['rows_per_s']} rows/s (stage time, "
        f"export and check included).", ""] + ([
        f"The run used settings that differ from {info['recipe']} as it is now: "
        + "; ".join(f"`{d}`" for d in info["recipe_drift"]) + ".", ""]
        if info["recipe_drift"] else []) + [
        "<details><summary>every stage</summary>", "",
        md_table(["stage", "seconds", "share"], stages), "", "</details>"])


def summary(info) -> str:
    total = info["total_seconds"] or 1.0
    g = info["group_seconds"]
    top = sorted(g.items(), key=lambda kv: -kv[1])[:3]
    return (f"pipeline: {info['recipe']} total {info['total_seconds']:.0f} s; "
            + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in top)
            + f"; soft labels {info['soft_labels']['rows_per_s']} rows/s "
              f"({info['soft_labels']['engine']})")


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=None, help=f"default {DEFAULT} (--quick: {QUICK})")
    parser.add_argument("--run-dir", default=None, help="read this finished run instead")
    parser.add_argument("--fresh", action="store_true", help="delete the bench's run dir first")
    args = parser.parse_args(argv)
    recipe = args.recipe or (QUICK if args.quick else DEFAULT)
    info = {"machine": machine(), "quick": args.quick}
    print(machine_line(info["machine"]), flush=True)
    if args.run_dir:
        run_dir = Path(args.run_dir)
    else:
        import distill

        run_dir = ROOT / "runs" / ("bench-pipeline-quick" if args.quick else "bench-pipeline")
        if (args.fresh or args.quick) and run_dir.exists():
            shutil.rmtree(run_dir)  # the bench's own folder: timings of a run from scratch
        print(f"{recipe}: distill.run -> {run_dir}", flush=True)
        distill.run(str(ROOT / recipe), out=run_dir)
    info.update(collect(run_dir, recipe))
    path = write_results("pipeline", info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
