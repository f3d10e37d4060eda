"""Run a recipe end to end: data -> teacher -> augment -> soft labels -> students -> export -> package.

    distill run recipes/smoke.yaml --out runs/smoke
    distill run recipes/movies_en/bow_from_minilm.yaml --out runs/demo
    distill run R.yaml --set students[0].train.epochs=3 --set teacher.max_len=64
    distill run R.yaml --seeds 0,1,2          # students trained with 3 seeds: mean and _std
    distill run R.yaml --force distill        # redo distillation and everything after it

Each stage writes into its own folder of the run directory (default ``runs/<recipe name>``)
and is skipped on a re-run when its fingerprint (its settings plus those of the stages it
depends on) is unchanged; a killed run resumes. The run ends with ``report.json``,
``report.md`` and ``plots/`` in the run directory. Python::

    import distill
    report = distill.run("recipes/smoke.yaml", out="runs/smoke")
"""
import dataclasses
import random
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

from distill.errors import RecipeError, UserError
from distill.io import fingerprint, read_json, sha256_file, write_json, write_text
from distill.recipe import LoadedRecipe, StudentSpec, load_recipe
from distill.stages import Pipeline, Stage, StageContext, StageFailed, needs

DATA_FILES = ("train", "dev", "test")


# ------------------------------------------------------------------------------------ CLI
def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML file, e.g. recipes/smoke.yaml")
    parser.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, e.g. --set students[0].train.epochs=3")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="re-run STAGE (fetch, teacher, augment, soft_labels, baseline, distill, "
                             "export, package, report, a stage folder, or all) and what follows it")
    parser.add_argument("--seeds", help="comma-separated student seeds, e.g. 0,1,2 (overrides the recipe)")


def main(args) -> int:
    seeds = _parse_seeds(args.seeds) if args.seeds else None
    report = run(args.recipe, out=args.out, overrides=args.overrides, force=args.force, seeds=seeds)
    print(summary_table(report))
    return 0


def _parse_seeds(text: str) -> List[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise RecipeError(f"--seeds {text}: expected comma-separated integers, e.g. 0,1,2") from None
    if not seeds:
        raise RecipeError("--seeds: give at least one seed")
    return seeds


def summary_table(report: dict) -> str:
    """The few lines printed at the end of a run: accuracy per model, package path."""
    t = report["teacher"]
    rows = [("model", "test acc", "latency b1", "size")]
    rows.append((f"teacher {t['name']}", _pct((t.get("test") or {}).get("accuracy")),
                 _ms(t.get("latency_ms_b1")), ""))
    for s in report["students"]:
        if s.get("baseline"):
            rows.append((f"{s['name']} plain", _pct(s["baseline"]["test"].get("accuracy")), "", ""))
        best = _best_export(s)
        rows.append((f"{s['name']} distilled", _pct(s["distilled"]["test"].get("accuracy")), "", ""))
        if best:
            rows.append((f"{s['name']} {best['format']}", _pct(best["test"].get("accuracy")),
                         _ms(best.get("latency_ms_b1")), f"{best['size_bytes'] / 2**20:.2f} MB"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"package: {report.get('package') or 'none'}")
    return "\n".join(lines)


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _ms(v) -> str:
    return "" if v is None else f"{v:.2f} ms"


def _best_export(student: dict) -> Optional[dict]:
    ok = [e for e in student.get("exports", []) if e.get("accepted")]
    return min(ok, key=lambda e: e.get("latency_ms_b1") or float("inf")) if ok else None


# ------------------------------------------------------------------------------------ run
def run(recipe, out=None, overrides: Optional[List[str]] = None, force: Optional[List[str]] = None,
        seeds: Optional[List[int]] = None, log: Optional[Callable[[str], None]] = None) -> dict:
    """Run a recipe (YAML path or dict) and return the report dict (also in OUT/report.json)."""
    loaded = load_recipe(recipe, overrides=overrides)
    if seeds:
        loaded.recipe.seeds = list(seeds)
    run_dir = Path(out) if out else Path("runs") / loaded.name
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = RunPlan(loaded, run_dir)
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    say(f"distill run: recipe {loaded.path or '(dict)'} -> {run_dir}")
    write_json(run_dir / "recipe.json", {"path": loaded.path, "settings": loaded.settings()})
    start = time.perf_counter()
    Pipeline(run_dir, plan.stages(), force=force, log=say).run()
    say(f"distill run: finished in {time.perf_counter() - start:.1f} s; report: {run_dir / 'report.md'}")
    return read_json(run_dir / "report.json")


class RunPlan:
    """Turns a recipe into the list of stages and holds the stage functions."""

    def __init__(self, loaded: LoadedRecipe, run_dir: Path):
        self.loaded, self.recipe, self.run_dir = loaded, loaded.recipe, run_dir
        self.seeds = list(self.recipe.seeds)

    # -------------------------------------------------------------------------- the graph
    def stages(self) -> List[Stage]:
        r = self.recipe
        common = {"device": r.device}
        stages = [
            Stage("fetch", "fetch", self.fetch, self._data_settings(), title="fetch data and teacher"),
            Stage("teacher", "teacher", self.teacher, dict(common, teacher=_asdict(r.teacher),
                                                           source=self._teacher_source_id(),
                                                           seed=self.seeds[0]),
                  deps=["fetch"], title="fine-tune teacher"),
            Stage("augment", "augment", self.augment, {"augment": _asdict(r.augment),
                                                       "tokenizer": self._teacher_source_id()},
                  deps=["fetch"], title="augment training set"),
            Stage("soft_labels", "soft_labels", self.soft_labels, dict(common, labels=_asdict(r.teacher.labels)),
                  deps=["teacher", "augment"], title="teacher soft labels"),
        ]
        for s in r.students:
            spec = _asdict(s)
            for seed in self.seeds:
                if s.baseline:
                    stages.append(Stage(f"baseline/{s.name}/seed{seed}", "baseline",
                                        self._student_fn(s, seed, distilled=False),
                                        dict(common, student=_without(spec, "loss"), seed=seed),
                                        deps=self._student_deps(s, distilled=False),
                                        title=f"plain {s.name} (seed {seed})"))
                stages.append(Stage(f"distill/{s.name}/seed{seed}", "distill",
                                    self._student_fn(s, seed, distilled=True),
                                    dict(common, student=_without(spec, "baseline_train"), seed=seed),
                                    deps=self._student_deps(s, distilled=True),
                                    title=f"distil {s.name} (seed {seed})"))
        exports: List[str] = []
        if r.export.enabled:
            export_settings = _without(_asdict(r.export), "package", "teacher")
            if r.export.teacher:
                stages.append(Stage("export/teacher", "export", self.export_teacher,
                                    dict(export_settings, formats=["onnx"]),
                                    deps=["fetch", "teacher"], title="export and measure teacher"))
                exports.append("export/teacher")
            for s in r.students:
                stages.append(Stage(f"export/{s.name}", "export", self._export_fn(s), export_settings,
                                    deps=["fetch", f"distill/{s.name}/seed{self.seeds[0]}"],
                                    title=f"export and measure {s.name}"))
                exports.append(f"export/{s.name}")
            if r.export.package:
                stages.append(Stage("package", "package", self.package, {"name": self.loaded.name},
                                    deps=[e for e in exports if e != "export/teacher"],
                                    title="package the best student"))
        report_deps = [s.key for s in stages]
        stages.append(Stage("report", "report", self.report, {"name": self.loaded.name,
                                                              "path": self.loaded.path,
                                                              "seeds": self.seeds},
                            deps=report_deps, title="report"))
        return stages

    def _student_deps(self, s: StudentSpec, distilled: bool) -> List[str]:
        deps = ["fetch", "augment"]  # the word vocabulary is built from train + augmented text
        if s.kind == "tiny":
            deps.append("teacher")  # its tokenizer, and optionally its layers for initialisation
        if distilled:
            deps.append("soft_labels")
        return deps

    def _data_settings(self) -> dict:
        d = self.recipe.data
        settings = {"data": _asdict(d)}
        if d.builtin is None:  # the content of the user's files, not just their names
            settings["sha256"] = {k: sha256_file(getattr(d, k)) for k in DATA_FILES}
        settings["teacher_source"] = self._teacher_source_id()
        return settings

    def _teacher_source_id(self):
        """What identifies the teacher's starting weights: a built-in name, or the files' hashes."""
        t = self.recipe.teacher
        path = self.teacher_path()
        if path is None:
            return {"name": t.source, "random": t.random if t.source == "random" else None}
        files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        return {"path": str(path), "files": {str(p.relative_to(path.parent)): [p.stat().st_size,
                                                                                p.stat().st_mtime_ns]
                                             for p in files}}

    def teacher_path(self) -> Optional[Path]:
        """The teacher checkpoint path when ``teacher.source`` is one (relative to the recipe)."""
        source = self.recipe.teacher.source
        if source == "random":
            return None
        candidate = Path(self.loaded.base_dir) / source
        if candidate.exists():
            return candidate.resolve()
        if "/" in source or source.startswith("."):
            self.loaded.fail("teacher.source", f"checkpoint not found: {source} (looked for {candidate})")
        return None

    # ---------------------------------------------------------------------------- stages
    def fetch(self, ctx: StageContext) -> dict:
        """Load the task (built-in or the user's files), keep copies, and fetch teacher weights."""
        data = needs("fetch", "distill.data", "data readers")
        d = self.recipe.data
        if d.builtin is not None:
            fetch = needs("fetch", "distill.fetch", "built-in data sets")
            task = fetch.load_builtin_task(d.builtin)
            name = d.builtin
        else:
            task = data.load_task(d.train, d.dev, d.test, fmt=d.format, columns=d.columns,
                                  name=self.loaded.name, on_error=d.on_error)
            name = task.name or self.loaded.name
        train = list(task.train)
        if d.max_train is not None and d.max_train < len(train):
            keep = sorted(random.Random(0).sample(range(len(train)), d.max_train))
            train = [train[i] for i in keep]
        for split, rows in (("train", train), ("dev", task.dev), ("test", task.test)):
            data.write_examples(ctx.dir / f"{split}.jsonl", rows)
        t = self.recipe.teacher
        if t.source != "random" and self.teacher_path() is None:
            fetch = needs("fetch", "distill.fetch", "built-in teacher weights")
            fetch.fetch(t.source)
        result = {"name": name, "labels": list(task.labels),
                  "sizes": {"train": len(train), "dev": len(task.dev), "test": len(task.test)}}
        write_json(ctx.dir / "task.json", result)
        return result

    def task(self, ctx: StageContext):
        """The task as the fetch stage stored it."""
        data = needs(ctx.stage.key, "distill.data", "data readers")
        info = ctx.result("fetch")
        folder = ctx.dep_dir("fetch")
        splits = [data.read_examples(folder / f"{s}.jsonl", labels=info["labels"]) for s in DATA_FILES]
        return data.Task(info["name"], *splits, labels=list(info["labels"]))

    def teacher(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'teacher' needs teachers.checkpoint/teachers.finetune (not integrated yet)")

    def augment(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'augment' needs distill.augment (not integrated yet)")

    def soft_labels(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'soft_labels' needs teachers.soft_labels (not integrated yet)")

    def _student_fn(self, spec: StudentSpec, seed: int, distilled: bool):
        def fn(ctx: StageContext) -> dict:
            raise StageFailed(f"stage '{ctx.stage.key}' needs students.train (not integrated yet)")
        return fn

    def export_teacher(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'export/teacher' needs distill.export (not integrated yet)")

    def _export_fn(self, spec: StudentSpec):
        def fn(ctx: StageContext) -> dict:
            raise StageFailed(f"stage '{ctx.stage.key}' needs distill.export (not integrated yet)")
        return fn

    def package(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'package' needs distill.package (not integrated yet)")

    def report(self, ctx: StageContext) -> dict:
        raise StageFailed("stage 'report' is not integrated yet")


def _asdict(obj) -> dict:
    return dataclasses.asdict(obj)


def _without(d: dict, *keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}
