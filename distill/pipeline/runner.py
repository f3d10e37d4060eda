"""Run a recipe end to end: data -> teacher -> augment -> soft labels -> students -> export -> package.

    distill run recipes/smoke.yaml --out runs/smoke
    distill run recipes/movies_en/bow_from_minilm.yaml --out runs/demo
    distill run R.yaml --set students[0].train.epochs=3 --set teacher.max_len=64
    distill run R.yaml --seeds 0,1,2          # students trained with 3 seeds: mean and _std
    distill run R.yaml --force distill        # redo distillation and everything after it
    distill run R.yaml --nproc 2              # data parallel: 2 processes (docs/distributed.md)

Each stage writes into its own folder of the run directory (default ``runs/<recipe name>``)
and is skipped on a re-run when its fingerprint (its settings plus those of the stages it
depends on) is unchanged; a killed run resumes. The run ends with ``report.json``,
``report.md`` and ``plots/`` in the run directory. Python::

    import distill
    report = distill.run("recipes/smoke.yaml", out="runs/smoke")
"""
import dataclasses
import json
import random
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

from distill.core.errors import UserError
from distill.core.io import ensure_owned_dir, folder_lock, read_json, sha256_file, write_json
from distill.pipeline.recipe import LoadedRecipe, StudentSpec, fingerprint_settings, load_recipe
from distill.pipeline.stages import Pipeline, Stage, StageContext
from distill.train.trainer import count_parameters

DATA_FILES = ("train", "dev", "test")


# ------------------------------------------------------------------------------------ run
def run(recipe, out=None, overrides: Optional[List[str]] = None, force: Optional[List[str]] = None,
        seeds: Optional[List[int]] = None, log: Optional[Callable[[str], None]] = None,
        base_dir=None, nproc: Optional[int] = None, nnodes: Optional[int] = None,
        master: Optional[str] = None, plans: Optional[dict] = None) -> dict:
    """Run a recipe (YAML path or dict) and return the report dict (also in OUT/report.json).

    ``base_dir`` resolves a dict recipe's relative paths (default: the working directory).
    ``nproc`` (processes per machine), ``nnodes`` and ``master`` override the recipe's
    ``runtime``; more than one process re-runs this command under ``paddle.distributed.launch``.
    ``plans`` maps a recipe's ``task`` to its RunPlan class (``distill.pipeline.tasks.run``
    passes the token one); sentence recipes use ``RunPlan``.
    """
    loaded = load_recipe(recipe, overrides=overrides, base_dir=base_dir)
    if seeds:
        for seed in seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2 ** 32:
                raise UserError(f"--seeds: {seed!r} is not a seed; expected whole numbers "
                                f"0 ... 4294967295")
        loaded.recipe.seeds = list(seeds)
    run_dir = Path(out) if out else Path("runs") / loaded.name
    plan_class = (plans or {}).get(loaded.recipe.task, RunPlan)
    if loaded.recipe.task != "sentence" and plan_class is RunPlan:
        raise UserError(f"recipe task '{loaded.recipe.task}': run it with "
                        "distill.pipeline.tasks.run (or distill run / distill.run)")
    ensure_owned_dir(run_dir, "run folder")  # never adopt (and later wipe) a user's folder
    # One run at a time per folder; processes launched below (--nproc) inherit the lock.
    with folder_lock(run_dir, "run folder"):
        return _run_locked(loaded, plan_class(loaded, run_dir), run_dir, overrides, force, seeds,
                           log, nproc, nnodes, master)


def _run_locked(loaded, plan, run_dir: Path, overrides, force, seeds, log, nproc, nnodes,
                master) -> dict:
    from distill.train import distributed

    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    rt = loaded.recipe.runtime
    for flag, value in (("--nproc", nproc), ("--nnodes", nnodes)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be a positive integer, got {value}")
    nproc, nnodes = nproc or rt.nproc, nnodes or rt.nnodes
    master = master or rt.master
    me = distributed.world()
    if nproc * nnodes > 1 and loaded.recipe.task == "token":
        loaded.fail("runtime.nproc", "token (NER) recipes run in one process for now; data-parallel "
                                     "runs cover sentence tasks (docs/distributed.md)")
    if nproc * nnodes > 1 and not me.distributed:  # start the processes; they run the stages
        return _launch(loaded, run_dir, plan, say, overrides, force, seeds, nproc, nnodes, master)
    if me.main:
        say(f"distill run: recipe {loaded.path or '(dict)'} -> {run_dir}"
            + (f" ({me.size} processes)" if me.distributed else ""))
        write_json(run_dir / "recipe.json", {"path": loaded.path, "settings": loaded.settings()})
    start = time.perf_counter()
    Pipeline(run_dir, plan.stages(), force=force, log=say).run()
    say(f"distill run: finished in {time.perf_counter() - start:.1f} s; report: {run_dir / 'report.md'}")
    return read_json(run_dir / "report.json")


def _launch(loaded: LoadedRecipe, run_dir: Path, plan: "RunPlan", say, overrides, force, seeds,
            nproc: int, nnodes: int, master: Optional[str]) -> dict:
    """``distill run`` again in ``nproc`` processes per node under ``paddle.distributed.launch``
    (forced stages are discarded here, once); rank logs in ``RUN/launch/workerlog.N``."""
    from distill.train import distributed

    if loaded.path is None:
        raise UserError("a recipe given as a dict runs in one process; write it to a YAML file "
                        "to run it with nproc > 1")
    if force:
        Pipeline(run_dir, plan.stages(), force=force, log=say).discard_forced()
    args = ["run", str(loaded.path), "--out", str(run_dir)]
    for item in overrides or []:
        args += ["--set", item]
    if seeds:
        args += ["--seeds", ",".join(str(s) for s in seeds)]
    say(f"distill run: {nproc} process(es) per node x {nnodes} node(s) via paddle.distributed.launch; "
        f"logs in {run_dir / 'launch'}")
    code = distributed.launch(args, nproc=nproc, nnodes=nnodes, master=master,
                              log_dir=run_dir / "launch")
    if code != 0:
        raise UserError(f"distill run: a process of the {nproc}-process run failed (exit {code}); "
                        f"see {run_dir / 'launch'}/workerlog.*; running the same command again "
                        "resumes the run")
    return read_json(run_dir / "report.json")


class RunPlan:
    """Turns a recipe into the list of stages and holds the stage functions."""

    def __init__(self, loaded: LoadedRecipe, run_dir: Path):
        self.loaded, self.recipe, self.run_dir = loaded, loaded.recipe, run_dir
        self.seeds = list(self.recipe.seeds)
        self.teachers = self.recipe.teachers()  # [0]: the primary teacher

    # -------------------------------------------------------------------------- the graph
    def stages(self) -> List[Stage]:
        from distill.train.distributed import world

        r = self.recipe
        common = {"device": r.device}
        # data-parallel training differs (per-rank dropout streams): its stages remember the
        # process count; one process keeps today's fingerprints. Soft labels do not depend on it.
        size = world().size
        trained = dict(common, processes=size) if size > 1 else common
        stages = [
            self._fetch_stage(),
            self._teacher_stage(0, trained),
            self._augment_stage(),
            Stage("soft_labels", "soft_labels", self.soft_labels,
                  dict(common, labels=fingerprint_settings(self.teachers[0].labels)),
                  deps=["teacher", "augment"], title="teacher soft labels", parallel=True),
        ]
        stages += self._ensemble_stages(common, trained)
        for s in r.students:
            spec = fingerprint_settings(s)
            for seed in self.seeds:
                if s.baseline:
                    stages.append(Stage(f"baseline/{s.name}/seed{seed}", "baseline",
                                        self._student_fn(s, seed, distilled=False),
                                        dict(trained, student=_without(spec, "loss"), seed=seed),
                                        deps=self._student_deps(s, distilled=False),
                                        title=f"plain {s.name} (seed {seed})", parallel=True))
                stages.append(Stage(f"distill/{s.name}/seed{seed}", "distill",
                                    self._student_fn(s, seed, distilled=True),
                                    dict(trained, student=_without(spec, "baseline_train"), seed=seed),
                                    deps=self._student_deps(s, distilled=True),
                                    title=f"distil {s.name} (seed {seed})", parallel=True))
        exports: List[str] = []
        if r.export.enabled:
            export_settings = _without(fingerprint_settings(r.export), "package", "teacher", "teacher_formats")
            # trim_vocab keeps the pieces of the training + augmented text
            trim = ["augment"] if _trims(r.export.settings) else []
            export_settings["selected_on"] = "dev"  # guard on dev, test reported (older runs: test)
            if r.export.teacher:
                stages.append(Stage("export/teacher", "export", self.export_teacher,
                                    dict(export_settings, formats=list(r.export.teacher_formats)),
                                    deps=["fetch", "teacher"] + trim,
                                    title="export and measure teacher"))
                exports.append("export/teacher")
            for s in r.students:
                stages.append(Stage(f"export/{s.name}", "export", self._export_fn(s), export_settings,
                                    deps=["fetch", f"distill/{s.name}/seed{self.seeds[0]}"] + trim,
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
            deps.append(self._labels_stage())
        return deps

    # ------------------------------------------------------------------ teacher ensembles
    def _labels_stage(self) -> str:
        return labels_stage(len(self.teachers))

    def _ensemble_stages(self, common: dict, trained: dict) -> List[Stage]:
        """Teachers 2..K (``teacher-1``, ``soft_labels-1``, ...) and the ``ensemble`` stage."""
        if len(self.teachers) == 1:
            return []
        stages = []
        for i, t in enumerate(self.teachers[1:], 1):
            stages.append(self._teacher_stage(i, trained))
            stages.append(Stage(_labels_key(i), "soft_labels", self._labels_fn(i),
                                dict(common, labels=fingerprint_settings(t.labels)),
                                deps=[_teacher_key(i), "augment"], title=f"teacher {i + 1} soft labels",
                                parallel=True))
        keys = [k for i in range(len(self.teachers)) for k in (_teacher_key(i), _labels_key(i))]
        stages.append(Stage("ensemble", "ensemble", self.ensemble,
                            dict(common, ensemble=fingerprint_settings(self.recipe.ensemble)),
                            deps=["fetch"] + keys, title="combine the teachers' soft labels"))
        return stages

    def _teacher_stage(self, index: int, trained: dict) -> Stage:
        """Fine-tune teacher ``index``. Its soft-label settings (``labels``) are not its work:
        older versions hashed them too, so a folder done that way stays done."""
        spec = fingerprint_settings(self.teachers[index])
        settings = dict(trained, source=self._teacher_source_id(index), seed=self.seeds[0],
                        teacher=_without(spec, "labels"))
        former = dict(settings, source=self._teacher_source_id(index, with_path=True), teacher=spec)
        title = "fine-tune teacher" + (f" {index + 1}" if index else "")
        return Stage(_teacher_key(index), "teacher", self._teacher_fn(index), settings,
                     deps=["fetch"], title=title, parallel=True, former_settings=[former])

    def _teacher_fn(self, index: int):
        """The stage function of teacher ``index`` (a token plan's ``teacher`` takes no index)."""
        return self.teacher if index == 0 else (lambda ctx: self.teacher(ctx, index))

    def _labels_fn(self, index: int):
        return lambda ctx: self.soft_labels(ctx, index)

    def ensemble(self, ctx: StageContext) -> dict:
        """Every teacher's logits on dev and test, the weights chosen on dev, and the combined
        soft labels of the training + augmented rows (``teachers.ensemble``)."""
        from distill.core.io import atomic_path
        from distill.data.examples import label_ids
        from distill.train.metrics import classification_metrics
        from teachers import ensemble as ens
        from teachers import soft_labels as sl

        task, spec = self.task(ctx), self.recipe.ensemble
        if not task.dev and spec.weights == "dev":
            raise UserError("ensemble.weights 'dev' needs dev rows; give weights: equal or a list")
        rows = list(task.dev) + list(task.test)
        dev_z, test_z, train_z, members = [], [], [], []
        for i, t in enumerate(self.teachers):
            teacher = self.load_teacher(ctx, _teacher_key(i))
            z = sl.soft_labels(teacher, rows, ctx.dir / f"eval-{i}", batch_size=t.labels.batch_size,
                               engine=t.labels.engine, engine_cache=ctx.dir / "engines",
                               progress=False, **_label_options(t.labels, self.recipe.device))
            dev_z.append(z[:len(task.dev)])
            test_z.append(z[len(task.dev):])
            key = _labels_key(i)
            train_z.append(np.load(ctx.dep_dir(key) / ctx.result(key)["file"]))
            members.append({"name": ctx.result(_teacher_key(i))["name"], "stage": _teacher_key(i)})
        y_dev = label_ids(task.dev, task.labels) if task.dev else np.zeros(0, dtype=np.int64)
        y_test = label_ids(task.test, task.labels) if task.test else None
        choice = ens.choose_weights(dev_z, y_dev, spec.rule, spec.weights, spec.grid_step)
        weights = choice["weights"]

        def scores(z, y):
            return classification_metrics(y, z.argmax(1)) if y is not None and len(y) else None

        for member, w, dz, tz in zip(members, weights, dev_z, test_z):
            member.update(weight=w, dev=scores(dz, y_dev), test=scores(tz, y_test))
        combined = ens.combine(train_z, weights, spec.rule)  # (N, C)
        with atomic_path(ctx.dir / "soft_labels.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, combined)
        return {"file": "soft_labels.npy", "rows": int(len(combined)), "rule": spec.rule,
                "weights": weights, "chosen_on": choice["chosen_on"], "members": members,
                "name": " + ".join(m["name"] for m in members),
                "dev": scores(ens.combine(dev_z, weights, spec.rule), y_dev),
                "test": scores(ens.combine(test_z, weights, spec.rule), y_test)}

    def _fetch_stage(self) -> Stage:
        """Read the task. It hashes the data section and the content of the user's files, not
        where they are (older versions hashed their paths too: a folder done so stays done)."""
        d = self.recipe.data
        settings = {"data": fingerprint_settings(d), "teacher_source": self._teacher_source_id()}
        former = dict(settings, teacher_source=self._teacher_source_id(with_path=True))
        if d.builtin is None:
            settings["sha256"] = former["sha256"] = {k: sha256_file(getattr(d, k))
                                                     for k in DATA_FILES}
            settings["data"] = _without(settings["data"], *DATA_FILES)
        return Stage("fetch", "fetch", self.fetch, settings, title="fetch data and teacher",
                     former_settings=_changed(former, settings))

    def _augment_stage(self) -> Stage:
        """Expand the training set (the teacher's tokenizer gives the mask token)."""
        spec = fingerprint_settings(self.recipe.augment)
        settings = {"augment": spec, "tokenizer": self._teacher_source_id()}
        former = {"augment": spec, "tokenizer": self._teacher_source_id(with_path=True)}
        return Stage("augment", "augment", self.augment, settings, deps=["fetch"],
                     title="augment training set", former_settings=_changed(former, settings))

    def _teacher_source_id(self, index: int = 0, with_path: bool = False):
        """What identifies the teacher's starting weights: a built-in name, or the names, sizes
        and modification times of its checkpoint files, wherever the folder is (``with_path``:
        also its absolute path, as older versions hashed it)."""
        t = self.teachers[index]
        path = self.teacher_path(index)
        if path is None:
            return {"name": t.source, "random": t.random if t.source == "random" else None}
        files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file())
        found = {"files": {str(p.relative_to(path.parent)): [p.stat().st_size, p.stat().st_mtime_ns]
                           for p in files}}
        return {"path": str(path), **found} if with_path else found

    def teacher_path(self, index: int = 0) -> Optional[Path]:
        """The teacher checkpoint path when ``teacher.source`` is one (relative to the recipe)."""
        source = self.teachers[index].source
        if source == "random":
            return None
        candidate = Path(self.loaded.base_dir) / source
        if candidate.exists():
            return candidate.resolve()
        if "/" in source or source.startswith("."):
            where = f"teacher[{index}].source" if len(self.teachers) > 1 else "teacher.source"
            self.loaded.fail(where, f"checkpoint not found: {source} (looked for {candidate})")
        return None

    # ---------------------------------------------------------------------------- stages
    def fetch(self, ctx: StageContext) -> dict:
        """Load the task (built-in or the user's files), keep copies, and fetch teacher weights."""
        from distill.data import examples as data
        d = self.recipe.data
        if d.builtin is not None:
            from distill.data import fetch
            task = fetch.load_builtin_task(d.builtin)
            name = d.builtin
        else:
            task = data.load_task(d.train, d.dev, d.test, fmt=d.format, columns=d.columns,
                                  name=self.loaded.name, on_error=d.on_error)
            name = task.name or self.loaded.name
        train, dev, test = sample_splits(task, d)
        for split, rows in (("train", train), ("dev", dev), ("test", test)):
            data.write_examples(ctx.dir / f"{split}.jsonl", rows)
        self._fetch_teacher_weights()
        result = {"name": name, "labels": list(task.labels),
                  "sizes": {"train": len(train), "dev": len(dev), "test": len(test)}}
        write_json(ctx.dir / "task.json", result)
        return result

    def _fetch_teacher_weights(self) -> None:
        """Download every built-in teacher's weights (not random or local ones)."""
        for i, t in enumerate(self.teachers):
            if t.source != "random" and self.teacher_path(i) is None:
                from distill.data import fetch
                fetch.fetch(t.source)

    def task(self, ctx: StageContext):
        """The task as the fetch stage stored it."""
        from distill.data import examples as data
        info = ctx.result("fetch")
        folder = ctx.dep_dir("fetch")
        splits = [data.read_examples(folder / f"{s}.jsonl", labels=info["labels"]) for s in DATA_FILES]
        return data.Task(info["name"], *splits, labels=list(info["labels"]))

    def teacher(self, ctx: StageContext, index: int = 0) -> dict:
        """Load (or build) teacher ``index``, fine-tune it on the task, evaluate it, save it."""
        from teachers import checkpoint as ckpt
        from teachers import finetune
        from distill.train import trainer
        from distill.train.distributed import world
        from distill.data import examples as data
        task = self.task(ctx)
        t, seed = self.teachers[index], self.seeds[0]
        if t.source == "random":
            teacher = self._random_teacher(ctx.dir, task, seed, t)
        else:
            if index and self.teacher_path(index) is None:  # fetched here: fetch's settings
                from distill.data import fetch                # name the primary teacher only
                fetch.fetch(t.source)
            source = str(self.teacher_path(index) or t.source)
            teacher = ckpt.load_teacher(source, num_labels=len(task.labels), seed=seed)
        positions = getattr(getattr(teacher, "config", None), "max_position_embeddings", None)
        if isinstance(positions, int) and t.max_len > positions:
            self.loaded.fail("teacher.max_len", f"{t.max_len} is more than the teacher's "
                                                f"{positions} positions (max_position_embeddings)")
        ft = t.finetune
        if ft.enabled:
            train_rows = finetune.limit_examples(task.train, ft.max_train, seed)
            ft_task = data.Task(task.name, list(train_rows), task.dev, task.test, list(task.labels))
            config = trainer.TrainConfig(**{"seed": seed, "device": self.recipe.device, **ft.train})
            result = finetune.finetune(teacher, ft_task, config, ctx.dir, max_len=t.max_len,
                                       train_layers=ft.train_layers)
            dev, test = result["dev"], result["test"]
            extra = {"train_examples": result["train_examples"], "train_time_s": result["train_time_s"],
                     "best_epoch": result["best_epoch"]}
        else:  # used as it is: its head must already be trained for these labels
            if list(teacher.labels) != list(task.labels):
                self.loaded.fail("teacher.finetune.enabled",
                                 f"the teacher's labels {list(teacher.labels)} are not the task's "
                                 f"{list(task.labels)}; fine-tune it (enabled: true)")
            teacher.max_len = t.max_len
            dev, test = (_evaluate_model(teacher.model, teacher.tokenizer, rows, task.labels, t.max_len)
                         for rows in (task.dev, task.test))
            if world().main:
                ckpt.save_teacher(teacher, ctx.dir / "teacher")
            extra = {}
        return {"name": teacher.name, "params": count_parameters(teacher.model), "labels": list(task.labels),
                "max_len": t.max_len, "dev": dev, "test": test, "dir": "teacher", **extra}

    def _random_teacher(self, folder: Path, task, seed: int, spec):
        """A randomly initialised ERNIE with a WordPiece vocabulary of the training texts (smoke)."""
        from teachers import checkpoint as ckpt
        from distill.text import tokenizer as tok
        from distill.train import distributed
        from teachers import config as config_mod
        vocab = folder / "random_vocab.txt"
        if distributed.world().main:
            tok.write_wordpiece_vocab([t for ex in task.train for t in (ex.text_a, ex.text_b) if t],
                                      vocab)
        distributed.barrier()  # the other ranks read rank 0's file
        tokenizer = tok.WordPieceTokenizer(vocab)
        settings = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128,
                    **spec.random}
        config = config_mod.ErnieConfig(vocab_size=tokenizer.vocab_size, **settings)
        return ckpt.random_teacher(config, tokenizer, len(task.labels), seed=seed, name="random",
                                   labels=list(task.labels), max_len=spec.max_len)

    def load_teacher(self, ctx: StageContext, key: str = "teacher"):
        from teachers import checkpoint as ckpt
        return ckpt.load_teacher(str(ctx.dep_dir(key) / "teacher"))

    def augment(self, ctx: StageContext) -> dict:
        """Expand the training set (``_augment_rows``: the task's rules); the rows keep their
        source_id (the training row they come from)."""
        spec = self.recipe.augment
        task = self.task(ctx)
        out = ctx.dir / "augmented.jsonl"
        if not spec.enabled:
            self._write_augmented(out, [])
            return {"rows": 0, "enabled": False}
        from distill.text.encoders import load_encoder

        encoder = load_encoder(ctx.dep_dir("teacher") / "teacher")
        rows, info = self._augment_rows(task, spec, encoder)
        self._write_augmented(out, rows)
        return {"rows": len(rows), "enabled": True, **info}

    @staticmethod
    def _write_augmented(path: Path, rows) -> None:
        from distill.data import examples as data
        data.write_examples(path, rows)

    def _augment_rows(self, task, spec, encoder):
        """Tang et al. rules (mask, same-POS, n-gram): the rows (no label) and what to report."""
        from distill.data.augment import augmenter as aug
        rules = dict(spec.rules)
        rules.setdefault("mask_token", aug.mask_token_for(encoder))
        rules.setdefault("seed", 0)
        config = aug.AugmentConfig(**rules)
        sources = augment_sources(len(task.train), spec.max_source, config.seed)
        stats = aug.AugmentStats()
        rows = list(aug.augment_examples([task.train[i] for i in sources], config, stats, progress=True))
        return renumber_sources(rows, sources), {"summary": stats.summary(),
                                                 "mask_token": config.mask_token,
                                                 "lang": stats.lang, "tagger": stats.tagger}

    def augmented(self, ctx: StageContext):
        from distill.data import examples as data
        path = ctx.dep_dir("augment") / "augmented.jsonl"
        return data.read_examples(path, require_label=False) if ctx.result("augment")["rows"] else []

    def soft_labels(self, ctx: StageContext, index: int = 0) -> dict:
        """Teacher logits for the training rows then the augmented rows, in chunks (resumable)."""
        from teachers import soft_labels as sl
        from distill.train import distributed
        spec = self.teachers[index].labels
        teacher = self.load_teacher(ctx, _teacher_key(index))
        task = self.task(ctx)
        examples = list(task.train) + list(self.augmented(ctx))
        options = dict(_label_options(spec, self.recipe.device), engine_cache=ctx.dir / "engines")
        me = distributed.world()
        start = time.perf_counter()
        if me.main:  # export the engine once (cached) and make auto's GPU choice, before anyone labels
            sl.prepare_engine(teacher, spec.engine, examples=examples, out_dir=ctx.dir,
                              batch_size=spec.batch_size, **options)
        distributed.barrier()
        export_s, start = time.perf_counter() - start, time.perf_counter()
        if me.distributed:  # rank r labels rows r, r+W, ...; rank 0 merges them after a barrier
            sl.soft_labels(teacher, examples, ctx.dir, batch_size=spec.batch_size,
                           chunk_batches=spec.chunk_batches, engine=spec.engine,
                           shard=(me.rank, me.size), merge=False, **options)
            distributed.barrier()
            if not me.main:
                return {}
            logits = sl.merge_shards(ctx.dir, me.size)
        else:
            logits = sl.soft_labels(teacher, examples, ctx.dir, batch_size=spec.batch_size,
                                    chunk_batches=spec.chunk_batches, engine=spec.engine,
                                    **options)
        label_s = time.perf_counter() - start  # all ranks' labelling, wall time (resumes: the rest)
        agree = float((logits[: len(task.train)].argmax(1) ==
                       _label_array(task.train, task.labels)).mean())
        engine = read_json(ctx.dir / "engine.json") if (ctx.dir / "engine.json").exists() else {}
        return {"rows": len(examples), "train_rows": len(task.train), "file": sl.MERGED,
                "engine": engine.get("engine", spec.engine), "check": engine.get("check"),
                "amp": engine.get("amp", False), "precision": engine.get("precision"),
                "engine_choice": engine.get("choice"),
                "train_agreement": agree, "processes": me.size,
                "export_seconds": round(export_s, 3), "label_seconds": round(label_s, 3)}

    def _student_fn(self, spec: StudentSpec, seed: int, distilled: bool):
        def fn(ctx: StageContext) -> dict:
            return self.train_student(ctx, spec, seed, distilled)
        return fn

    def train_student(self, ctx: StageContext, spec: StudentSpec, seed: int, distilled: bool) -> dict:
        """Train one student: plain on gold labels, or distilled on soft labels + augmented rows
        (``_reads_teacher``, ``_training_soft_labels`` and ``_fit_student`` are the task's parts)."""
        task = self.task(ctx)
        loss = dict(spec.loss) if distilled else None
        online = distilled and _online_terms(loss)
        teacher = self.load_teacher(ctx) if self._reads_teacher(spec, online) else None
        settings = dict(spec.train)
        if not distilled and spec.baseline_train:
            settings.update(spec.baseline_train)
        settings.update(seed=seed, device=self.recipe.device)
        logits = augmented = None
        if distilled:
            augmented = self.augmented(ctx)
            logits = self._training_soft_labels(ctx)
        max_len = spec.max_len or self.teachers[0].max_len
        result = self._fit_student(spec, task, ctx.dir, settings, teacher_logits=logits,
                                   augmented=augmented, loss=loss, teacher=teacher, max_len=max_len)
        keep = ("kind", "mode", "loss", "seed", "train_rows", "augmented_rows", "parameters",
                "vocab_size", "dev", "test")
        return {**{k: result.get(k) for k in keep}, "best_epoch": result["fit"]["best_epoch"],
                "train_time_s": result["fit"]["train_time_s"], "dir": "student"}

    def _reads_teacher(self, spec: StudentSpec, online: bool) -> bool:
        """Whether a student needs the teacher (its tokenizer, layers or online loss terms)."""
        return spec.kind == "tiny" or online or spec.vocab.get("source") == "teacher"

    def _training_soft_labels(self, ctx: StageContext):
        key = self._labels_stage()
        return np.load(ctx.dep_dir(key) / ctx.result(key)["file"])

    def _fit_student(self, spec: StudentSpec, task, out_dir: Path, settings: dict, **inputs) -> dict:
        from students import train as st
        config = st.default_train_config(spec.kind, **settings)
        return st.train_student(spec.kind, spec.config, task, out_dir, config, vocab=spec.vocab,
                                **inputs)

    def _export_config(self, formats=None):
        """The recipe's ``export`` settings as an ``ExportConfig`` (``formats`` overrides)."""
        from distill.export import exporter as ex
        settings = dict(self.recipe.export.settings)
        if formats is not None:
            settings["formats"] = formats
        if "formats" in settings:
            settings["formats"] = tuple(settings["formats"])
        if "measure" in settings:
            from distill.export.measure import MeasureSettings

            settings["measure"] = MeasureSettings(**settings["measure"])
        return ex.ExportConfig(**settings)

    def _export(self, ctx: StageContext, model_dir: Path, formats=None) -> dict:
        from distill.export import exporter as ex
        task = self.task(ctx)
        config = self._export_config(formats)
        trim_texts = (list(task.train) + list(self.augmented(ctx))
                      if _trims(self.recipe.export.settings) else None)
        result = ex.export_model(str(model_dir), out_dir=ctx.dir, calib_examples=task.train,
                                 eval_examples=task.dev, test_examples=task.test, config=config,
                                 trim_texts=trim_texts)
        return {"reference": result.reference, "artifacts": [r.to_dict() for r in result.reports]}

    def export_teacher(self, ctx: StageContext) -> dict:
        return self._export(ctx, ctx.dep_dir("teacher") / "teacher",
                            formats=list(self.recipe.export.teacher_formats))

    def _export_fn(self, spec: StudentSpec):
        def fn(ctx: StageContext) -> dict:
            return self._export(ctx, ctx.dep_dir(f"distill/{spec.name}/seed{self.seeds[0]}") / "student")
        return fn

    def package(self, ctx: StageContext) -> dict:
        """Package the best student's best accepted ONNX artifact as NAME.tar.gz (the student
        with the highest dev accuracy: ``distill.export.package.best_student``)."""
        from distill.export import package as pk
        candidates = {s.name: self._artifacts(ctx, s.name) for s in self.recipe.students}
        best = pk.best_student(candidates)
        if best is None:
            self._nothing_to_package("student")
        s = next(spec for spec in self.recipe.students if spec.name == best[0])
        reports, choice = candidates[s.name], best[1]
        export_dir = ctx.dep_dir(f"export/{s.name}")
        ref = ctx.result(f"export/{s.name}")["reference"]
        teacher = ctx.result("teacher")
        task = ctx.result("fetch")
        name = self._package_name(s)
        meta = pk.PackageMeta(teacher=teacher["name"], student=s.kind, max_len=ref["max_len"],
                              text_pairs=bool(ref.get("text_pairs")),
                              extra={"recipe": self.loaded.name, "student_name": s.name,
                                     "task": task["name"]})
        path = pk.build_package(reports, export_dir / "encoder", task["labels"],
                                ctx.dir / f"{name}.tar.gz", meta)
        return {"path": str(Path(path).resolve()), "student": s.name, "format": choice.format,
                "dev": choice.dev, "test": choice.test, "selected_on": "dev"}

    def _artifacts(self, ctx: StageContext, student: str) -> List[dict]:
        """A student's export reports, their file paths in this run's export folder."""
        export_dir = ctx.dep_dir(f"export/{student}")
        return [rebased(a, export_dir) for a in ctx.result(f"export/{student}")["artifacts"]]

    def _nothing_to_package(self, what: str):
        raise UserError(f"package: no {what} has an accepted ONNX export; see the export "
                        "stages' reasons in " + ", ".join(f"export/{s.name}/done.json"
                                                          for s in self.recipe.students))

    def _package_name(self, spec: StudentSpec) -> str:
        """NAME of NAME.tar.gz: the recipe's name, with the student's when there are several."""
        return (self.loaded.name if len(self.recipe.students) == 1
                else f"{self.loaded.name}-{spec.name}")

    def report(self, ctx: StageContext) -> dict:
        from distill.pipeline import report as rep
        report, curves = self.build_report(ctx)
        rep.write_report(report, self.run_dir, curves)
        return {"report": "report.json"}

    # ---------------------------------------------------------------------------- report
    def build_report(self, ctx: StageContext):
        from distill.pipeline.report import gap_recovered, mean_std, merge_seeds, speedup

        fetch, teacher = ctx.result("fetch"), ctx.result("teacher")
        aug = ctx.result("augment")
        t_test, t_dev = teacher["test"] or {}, teacher.get("dev") or {}
        ensemble = ctx.results.get("ensemble")
        if ensemble:  # the ensemble is the teacher: its accuracy, its members listed
            t_test, t_dev = ensemble["test"] or {}, ensemble["dev"] or {}
        t_exports = _exports(ctx.results.get("export/teacher"))
        t_ref = next((e for e in t_exports if e["format"] == "onnx"), None)
        report = {
            "recipe": {"name": self.loaded.name, "path": self.loaded.path, "seeds": self.seeds,
                       "settings": self.loaded.settings()},
            "dataset": {"name": fetch["name"], "num_labels": len(fetch["labels"]),
                        "labels": fetch["labels"],
                        "sizes": dict(fetch["sizes"], augmented=aug["rows"])},
            "teacher": {"name": ensemble["name"] if ensemble else teacher["name"],
                        "params": teacher["params"],
                        **({"ensemble": {k: ensemble[k] for k in ("rule", "weights", "chosen_on",
                                                                  "members")}}
                           if ensemble else {}),
                        "dev": {k: t_dev.get(k) for k in ("accuracy", "macro_f1")},
                        "test": {k: t_test.get(k) for k in ("accuracy", "macro_f1")},
                        "latency_ms_b1": t_ref["latency_ms_b1"] if t_ref else None,
                        "throughput_b32": t_ref["throughput_b32"] if t_ref else None,
                        "exports": t_exports,
                        "labelling": _labelling(ctx.results.get("soft_labels"))},
            "students": [],
            "package": (ctx.results.get("package") or {}).get("path"),
            "selection": SELECTION,
            "stage_seconds": {k: round(v, 3) for k, v in ctx.seconds.items()},
        }
        curves = {}
        for s in self.recipe.students:
            plain = [ctx.result(f"baseline/{s.name}/seed{k}") for k in self.seeds] if s.baseline else []
            dist = [ctx.result(f"distill/{s.name}/seed{k}") for k in self.seeds]
            entry = {"name": s.name, "kind": s.kind, "params": dist[0]["parameters"],
                     "baseline": merge_seeds([_splits(r) for r in plain]) if plain else None,
                     "distilled": merge_seeds([_splits(r) for r in dist])}
            gaps = [gap_recovered(t_test.get("accuracy"), p["test"]["accuracy"], d["test"]["accuracy"])
                    for p, d in zip(plain, dist)]
            entry["gap_recovered"], gap_std = mean_std(gaps)
            if len(self.seeds) > 1:
                entry["gap_recovered_std"] = gap_std
            exports = _exports(ctx.results.get(f"export/{s.name}"))
            ok = [e for e in exports if e["accepted"]]
            fastest = min(ok, key=lambda e: e["latency_ms_b1"]) if ok else None
            busiest = max(ok, key=lambda e: e["throughput_b32"]) if ok else None
            entry["latency_ms_b1"] = fastest["latency_ms_b1"] if fastest else None
            entry["throughput_b32"] = busiest["throughput_b32"] if busiest else None
            entry["speedup_b1"] = speedup(report["teacher"]["latency_ms_b1"], entry["latency_ms_b1"], False)
            entry["speedup_b32"] = speedup(report["teacher"]["throughput_b32"], entry["throughput_b32"], True)
            entry["exports"] = exports
            report["students"].append(entry)
            curves[s.name] = self._curves(ctx, s)
        return report, curves

    def _curves(self, ctx: StageContext, spec: StudentSpec, metric: str = "accuracy") -> dict:
        """The first seed's per-epoch curves of a student: {"plain"?, "distilled": records}."""
        roles = ((("plain", "baseline"),) if spec.baseline else ()) + (("distilled", "distill"),)
        return {role: _epoch_curve(ctx.dep_dir(f"{stage}/{spec.name}/seed{self.seeds[0]}"), metric)
                for role, stage in roles}


# Which split chose what (written into report.json; report.md says it in words).
SELECTION = {
    "teacher_best_epoch": "dev", "student_best_epoch": "dev", "early_stopping": "dev",
    "export_guard": "dev", "package_student": "dev", "test": "reported only, never used for a choice",
}


def labels_stage(teacher_count: int) -> str:
    """The stage whose ``soft_labels.npy`` the students learn from: one teacher's or the ensemble's."""
    return "ensemble" if teacher_count > 1 else "soft_labels"


def rebased(artifact: dict, export_dir: Path) -> dict:
    """An export report whose file path lies in ``export_dir``, this run's export stage folder:
    the path was recorded as the run folder was then named, and a run folder may be moved or
    renamed before a later stage reads it."""
    parts = Path(artifact["path"]).parts
    anchor = ("export", export_dir.name)
    starts = [i for i in range(len(parts) - 1) if parts[i:i + 2] == anchor]
    if not starts:
        return artifact
    return dict(artifact, path=str(export_dir.joinpath(*parts[starts[-1] + 2:])))


def _teacher_key(index: int) -> str:
    return "teacher" if index == 0 else f"teacher-{index}"


def _labels_key(index: int) -> str:
    return "soft_labels" if index == 0 else f"soft_labels-{index}"


def _splits(result: dict) -> dict:
    """A training stage's dev and test metrics (dev chose its best epoch)."""
    return {"dev": result.get("dev") or {}, "test": result.get("test") or {}}


def _exports(result: Optional[dict]) -> List[dict]:
    """The report's view of an export stage's artifacts (latency = batch-1 p50; the guard judged
    ``dev``, ``test`` is reported)."""
    out = []
    for a in (result or {}).get("artifacts", []):
        out.append({"format": a["format"], "size_bytes": a["size_bytes"],
                    "dev": {"accuracy": (a.get("dev") or {}).get("accuracy")},
                    "test": {"accuracy": (a.get("test") or {}).get("accuracy")},
                    "latency_ms_b1": (a.get("latency_ms_b1") or {}).get("p50"),
                    "latency_ms_b1_p95": (a.get("latency_ms_b1") or {}).get("p95"),
                    "throughput_b32": a.get("throughput_b32"),
                    "accepted": bool(a.get("accepted")), "reason": a.get("reason", "")})
    return out


def _epoch_curve(stage_dir: Path, metric: str = "accuracy") -> List[dict]:
    """Per-epoch records of the trainer's metrics.jsonl: epoch, train_loss, dev (its ``metric``)."""
    path = stage_dir / "train" / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec.get("type") == "epoch":
            rows.append({"epoch": rec["epoch"], "train_loss": rec.get("train_loss"),
                         "dev": (rec.get("dev") or {}).get(metric)})
    return rows


def _online_terms(loss: Optional[dict]) -> bool:
    terms = (loss or {}).get("terms")
    text = json.dumps(terms) if terms is not None else ""
    return "hidden_mse" in text or "attention" in text


def _label_array(examples, labels) -> np.ndarray:
    from distill.data.examples import label_ids

    return label_ids(examples, labels)


def _evaluate_model(model, encoder, examples, labels, max_len: int) -> Optional[dict]:
    """Accuracy and macro-F1 of a Paddle model on labelled examples (None for no examples)."""
    if not examples:
        return None
    from distill.data.batching import BatchPlan, encode_examples
    from distill.train.trainer import evaluate

    return evaluate(model, BatchPlan(encode_examples(encoder, examples, max_len=max_len, labels=labels), 64))


def _labelling(result: Optional[dict]) -> Optional[dict]:
    """How the (first) teacher labelled: engine, precision, AMP, rows, processes and rows/s."""
    if not result:
        return None
    seconds = result.get("label_seconds")
    return {"engine": result.get("engine"), "precision": result.get("precision") or "fp32",
            "amp": bool(result.get("amp", False)), "rows": result.get("rows"),
            "processes": result.get("processes", 1),
            "rows_per_s": round(result["rows"] / seconds, 1) if seconds else None}


def _label_options(spec, device: str) -> dict:
    """The ``teachers.soft_labels`` engine keywords of a recipe's ``labels`` section."""
    return dict(device=device, threads=spec.threads, sessions=spec.sessions, amp=spec.amp,
                amp_level=spec.amp_level, tensorrt=spec.tensorrt)


def _trims(export_settings) -> bool:
    """True when the recipe's ``export.trim_vocab`` is on (auto or a number)."""
    return export_settings.get("trim_vocab", "off") not in (None, False, "off")


def sample_train(train, max_train: Optional[int]) -> list:
    """The training rows, or a sample of ``max_train`` of them (seed 0, file order kept)."""
    train = list(train)
    if max_train is not None and max_train < len(train):
        keep = sorted(random.Random(0).sample(range(len(train)), max_train))
        train = [train[i] for i in keep]
    return train


def sample_splits(task, data) -> tuple:
    """(train, dev, test) of ``task``, each a seeded sample when the recipe's ``data`` section sets
    ``max_train`` / ``max_dev`` / ``max_test`` (``sample_train``: seed 0, file order kept)."""
    return (sample_train(task.train, data.max_train), sample_train(task.dev, data.max_dev),
            sample_train(task.test, data.max_test))


def augment_sources(n: int, max_source: Optional[int], seed: int) -> List[int]:
    """The training rows to augment: all ``n``, or a ``seed``ed sample of ``max_source`` in
    file order."""
    sources = list(range(n))
    if max_source is not None and max_source < n:
        sources = sorted(random.Random(seed).sample(sources, max_source))
    return sources


def renumber_sources(rows, sources: List[int]) -> list:
    """Augmented rows with ``source_id`` turned from a position in ``sources`` into the
    training row's index."""
    return [dataclasses.replace(r, source_id=sources[r.source_id]) for r in rows]


def _changed(former: dict, settings: dict) -> List[dict]:
    """``[former]`` when an older version hashed other settings than ``settings``, else ``[]``."""
    return [former] if former != settings else []


def _without(d: dict, *keys) -> dict:
    return {k: v for k, v in d.items() if k not in keys}
