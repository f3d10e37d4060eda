"""The stages of a ``task: token`` recipe (NER): the same graph as sentence recipes, token parts.

    distill run recipes/smoke_token.yaml --out runs/smoke_token

``TokenRunPlan`` keeps ``RunPlan``'s stage graph, caching and resumption, and replaces what each
stage does: CoNLL/JSONL token files (``distill.data.tokens``), a token teacher
(``teachers.token_model``: fine-tuned on entity F1), tag-aligned augmentation
(``distill.data.augment.tokens``), per-token soft labels (``teachers.token_soft_labels``,
``teacher.labels.storage``), taggers (``students.train_tokens``), export guarded on entity F1
(``export.max_f1_drop`` points) and a package that predicts spans. ``report.md`` gives entity
precision/recall/F1 where sentence recipes give accuracy, the plots included.
"""
import dataclasses
from pathlib import Path
from typing import List

import numpy as np

from distill.core.errors import UserError
from distill.core.io import write_json
from distill.pipeline.runner import (SELECTION, RunPlan, _exports, augment_sources,
                                     renumber_sources, sample_splits)
from distill.pipeline.stages import StageContext
from distill.train.trainer import count_parameters

SPLITS = ("train", "dev", "test")


class TokenRunPlan(RunPlan):
    """``RunPlan`` for ``task: token``: the same stages, token data and models."""

    # ------------------------------------------------------------------------- data
    def fetch(self, ctx: StageContext) -> dict:
        from distill.data import tokens

        d = self.recipe.data
        if d.builtin is not None:
            from distill.data import fetch

            task = fetch.load_builtin_token_task(d.builtin)
        else:
            task = tokens.load_token_task(d.train, d.dev, d.test, scheme=d.scheme, unit=d.unit,
                                          name=self.loaded.name, on_invalid=d.on_invalid)
        train, dev, test = sample_splits(task, d)
        for split, rows in (("train", train), ("dev", dev), ("test", test)):
            tokens.write_token_examples(ctx.dir / f"{split}.jsonl", rows)
        self._fetch_teacher_weights()
        result = {"name": task.name, "task": "token", "labels": list(task.tags),
                  "scheme": task.scheme, "unit": task.unit,
                  "sizes": {"train": len(train), "dev": len(dev), "test": len(test)}}
        write_json(ctx.dir / "task.json", result)
        return result

    def task(self, ctx: StageContext):
        from distill.data import tokens

        info, folder = ctx.result("fetch"), ctx.dep_dir("fetch")
        splits = [list(tokens.read_token_examples(folder / f"{s}.jsonl", info["scheme"]))
                  for s in SPLITS]
        return tokens.TokenTask(info["name"], *splits, tags=list(info["labels"]),
                                scheme=info["scheme"], unit=info["unit"])

    # ------------------------------------------------------------------------- teacher
    def teacher(self, ctx: StageContext) -> dict:
        from distill.train import trainer
        from teachers import finetune
        from teachers import token_model as tm

        task = self.task(ctx)
        t, seed = self.recipe.teacher, self.seeds[0]
        if t.source == "random":
            teacher = self._random_token_teacher(ctx.dir, task, seed)
        else:
            teacher = tm.load_token_teacher(str(self.teacher_path() or t.source), task.tags, seed)
        if t.layers is not None:
            tm.keep_lower_layers(teacher, t.layers)
        ft = t.finetune
        if ft.enabled:
            rows = finetune.limit_examples(task.train, ft.max_train, seed)
            ft_task = dataclasses.replace(task, train=list(rows))
            config = trainer.TrainConfig(**{"seed": seed, "device": self.recipe.device,
                                            "eval_metric": "f1", **ft.train})
            result = tm.finetune_token_teacher(teacher, ft_task, config, ctx.dir,
                                               max_len=t.max_len, train_layers=ft.train_layers,
                                               probe_head=ft.probe_head)
            dev, test = result["dev"], result["test"]
            extra = {"train_examples": result["train_examples"],
                     "train_time_s": result["train_time_s"], "best_epoch": result["best_epoch"]}
        else:
            teacher.max_len = t.max_len
            dev, test = (self._evaluate(teacher.model, teacher.tokenizer, rows, task, t.max_len)
                         for rows in (task.dev, task.test))
            tm.save_token_teacher(teacher, ctx.dir / "teacher", task.scheme)
            extra = {}
        return {"name": teacher.name, "params": count_parameters(teacher.model),
                "labels": list(task.tags), "max_len": t.max_len, "dev": dev, "test": test,
                "dir": "teacher", **extra}

    def _random_token_teacher(self, folder: Path, task, seed: int):
        """A random tiny ERNIE token teacher on a WordPiece vocabulary of the training text."""
        from distill.text import tokenizer as tok
        from distill.text.token_encoding import join_tokens
        from teachers import checkpoint as ckpt
        from teachers import config as config_mod
        from teachers.token_model import token_teacher

        vocab = folder / "random_vocab.txt"
        tok.write_wordpiece_vocab([join_tokens(ex.tokens, task.unit) for ex in task.train], vocab)
        tokenizer = tok.WordPieceTokenizer(vocab)
        settings = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "intermediate_size": 128,
                    **self.recipe.teacher.random}
        config = config_mod.ErnieConfig(vocab_size=tokenizer.vocab_size, **settings)
        teacher = ckpt.random_teacher(config, tokenizer, 2, seed=seed, name="random",
                                      max_len=self.recipe.teacher.max_len)
        return token_teacher(teacher, task.tags, seed)

    @staticmethod
    def _evaluate(model, encoder, rows, task, max_len):
        if not rows:
            return None
        from distill.data.token_batching import TokenBatchPlan, encode_token_examples
        from distill.train.token_eval import TokenEvaluator

        data = encode_token_examples(encoder, rows, max_len, tags=task.tags)
        return TokenEvaluator(task.tags, task.scheme)(model, TokenBatchPlan(data, 64))

    def load_teacher(self, ctx: StageContext):
        from teachers.token_model import load_token_teacher

        return load_token_teacher(str(ctx.dep_dir("teacher") / "teacher"))

    # ------------------------------------------------------------------------- augment, labels
    @staticmethod
    def _write_augmented(path: Path, rows) -> None:
        from distill.data import tokens

        tokens.write_token_examples(path, rows)

    def _augment_rows(self, task, spec, encoder):
        """Tag-aligned rules (mask ``O`` tokens, same-type entities, n-gram windows)."""
        from distill.data.augment.augmenter import mask_token_for
        from distill.data.augment.tokens import TokenAugmentConfig, augment_token_examples

        known = {f.name for f in dataclasses.fields(TokenAugmentConfig)}
        rules = {k: v for k, v in spec.rules.items() if k in known}
        rules.setdefault("mask_token", mask_token_for(encoder))
        if rules.get("ngram_range") is not None:
            rules["ngram_range"] = tuple(rules["ngram_range"])
        else:
            rules.pop("ngram_range", None)
        config = TokenAugmentConfig(p_entity=spec.p_entity, **rules)
        sources = augment_sources(len(task.train), spec.max_source, config.seed)
        rows = augment_token_examples([task.train[i] for i in sources], config, task.scheme)
        return renumber_sources(rows, sources), {"mask_token": config.mask_token,
                                                 "ignored_settings": sorted(set(spec.rules) - known)}

    def augmented(self, ctx: StageContext):
        from distill.data import tokens

        if not ctx.result("augment")["rows"]:
            return []
        return list(tokens.read_token_examples(ctx.dep_dir("augment") / "augmented.jsonl",
                                               ctx.result("fetch")["scheme"]))

    def soft_labels(self, ctx: StageContext) -> dict:
        from teachers import token_soft_labels as tsl

        spec = self.recipe.teacher.labels
        teacher = self.load_teacher(ctx)
        task = self.task(ctx)
        examples = list(task.train) + self.augmented(ctx)
        logits = tsl.token_soft_labels(teacher, examples, ctx.dir, batch_size=spec.batch_size,
                                       storage=spec.storage, top_k=spec.top_k,
                                       chunk_batches=spec.chunk_batches,
                                       device=self.recipe.device)
        gold = np.concatenate([[task.tags.index(t) for t in ex.tags] for ex in task.train])
        pred = np.concatenate([x.argmax(-1) for x in logits[:len(task.train)]])
        from distill.core.io import read_json

        info = read_json(ctx.dir / tsl.MERGED_META)
        return {"rows": len(examples), "train_rows": len(task.train), "file": tsl.MERGED,
                "engine": "paddle", "storage": spec.storage, "stored_bytes": info["stored_bytes"],
                "float32_bytes": info["float32_bytes"],
                "train_token_agreement": float((gold == pred).mean())}

    # ------------------------------------------------------------------------- students
    def _reads_teacher(self, spec, online: bool) -> bool:
        return spec.kind == "tiny" or online

    def _training_soft_labels(self, ctx: StageContext):
        from teachers.token_soft_labels import load_token_soft_labels

        return load_token_soft_labels(ctx.dep_dir("soft_labels"))

    def _fit_student(self, spec, task, out_dir: Path, settings: dict, **inputs) -> dict:
        from students import train_tokens as tt

        config = tt.default_token_train_config(spec.kind, **settings)
        vocab = {k: v for k, v in spec.vocab.items() if k in ("min_freq", "max_size")}
        return tt.train_token_student(spec.kind, spec.config, task, out_dir, config, vocab=vocab,
                                      **inputs)

    # ------------------------------------------------------------------------- export, package
    def _export(self, ctx: StageContext, model_dir: Path, formats=None) -> dict:
        from distill.export.token_export import export_token_model

        task = self.task(ctx)
        if self.recipe.export.settings.get("trim_vocab", "off") not in (None, False, "off"):
            raise UserError("export.trim_vocab is for sentence packages; token recipes export "
                            "the full vocabulary")
        config = dataclasses.replace(self._export_config(formats), trim_vocab="off")
        result = export_token_model(model_dir, ctx.dir, eval_examples=task.dev,
                                    test_examples=task.test, calib_examples=task.train,
                                    tags=task.tags, scheme=task.scheme,
                                    max_f1_drop=self.recipe.export.max_f1_drop, config=config)
        return {"reference": result.reference, "artifacts": [r.to_dict() for r in result.reports]}

    def package(self, ctx: StageContext) -> dict:
        from distill.export import package as pk
        from distill.export.token_export import package_token_model

        best = None
        for s in self.recipe.students:
            reports = self._artifacts(ctx, s.name)
            choice = pk.choose_best(reports)
            if choice is None:
                continue
            dev = ctx.result(f"distill/{s.name}/seed{self.seeds[0]}").get("dev") or {}
            score = (dev.get("f1") or 0.0, -choice.latency_ms_b1["p50"])  # test only reported
            if best is None or score > best[0]:
                best = (score, s, reports, choice)
        if best is None:
            self._nothing_to_package("tagger")
        _, s, reports, choice = best
        ref = ctx.result(f"export/{s.name}")["reference"]
        task = ctx.result("fetch")
        name = self._package_name(s)
        path = package_token_model(reports, ctx.dep_dir(f"export/{s.name}") / "encoder",
                                   ctx.dir / f"{name}.tar.gz", task["labels"], task["scheme"],
                                   task["unit"], ref["max_len"],
                                   teacher=ctx.result("teacher")["name"], student=s.kind,
                                   extra={"recipe": self.loaded.name, "student_name": s.name,
                                          "task": task["name"]}, crf=ref.get("crf"))
        return {"path": str(Path(path).resolve()), "student": s.name, "format": choice.format,
                "dev": choice.dev, "test": choice.test, "selected_on": "dev"}

    # ------------------------------------------------------------------------- report
    def report(self, ctx: StageContext) -> dict:
        from distill.pipeline.report import write_report

        report, curves = self.build_report(ctx)
        write_report(report, self.run_dir, curves, render=render_token_markdown)
        return {"report": "report.json"}

    def build_report(self, ctx: StageContext):
        from distill.pipeline.report import gap_recovered, mean_std, merge_seeds

        fetch, teacher = ctx.result("fetch"), ctx.result("teacher")
        t_test = teacher["test"] or {}
        report = {
            "task": "token",
            "recipe": {"name": self.loaded.name, "path": self.loaded.path, "seeds": self.seeds,
                       "settings": self.loaded.settings()},
            "dataset": {"name": fetch["name"], "tags": fetch["labels"], "scheme": fetch["scheme"],
                        "unit": fetch["unit"],
                        "sizes": dict(fetch["sizes"], augmented=ctx.result("augment")["rows"])},
            "soft_labels": {k: ctx.result("soft_labels").get(k)
                            for k in ("storage", "stored_bytes", "float32_bytes",
                                      "train_token_agreement")},
            "teacher": {"name": teacher["name"], "params": teacher["params"],
                        "test": _entity(t_test), "dev": _entity(teacher.get("dev")),
                        "exports": _token_exports(ctx.results.get("export/teacher"))},
            "students": [],
            "package": (ctx.results.get("package") or {}).get("path"),
            "selection": SELECTION,
            "stage_seconds": {k: round(v, 3) for k, v in ctx.seconds.items()},
        }
        curves = {}
        for s in self.recipe.students:
            plain = ([ctx.result(f"baseline/{s.name}/seed{k}") for k in self.seeds]
                     if s.baseline else [])
            dist = [ctx.result(f"distill/{s.name}/seed{k}") for k in self.seeds]
            entry = {"name": s.name, "kind": s.kind, "params": dist[0]["parameters"],
                     "baseline": merge_seeds([{"dev": _entity(r["dev"]), "test": _entity(r["test"])}
                                              for r in plain]) if plain else None,
                     "distilled": merge_seeds([{"dev": _entity(r["dev"]), "test": _entity(r["test"])}
                                               for r in dist])}
            gaps = [gap_recovered(t_test.get("f1"), p["test"]["f1"], d["test"]["f1"])
                    for p, d in zip(plain, dist)]
            entry["gap_recovered"], gap_std = mean_std(gaps)
            if len(self.seeds) > 1:
                entry["gap_recovered_std"] = gap_std
            entry["exports"] = _token_exports(ctx.results.get(f"export/{s.name}"))
            report["students"].append(entry)
            curves[s.name] = self._curves(ctx, s, "f1")
        return report, curves


def _entity(metrics) -> dict:
    metrics = metrics or {}
    return {k: metrics.get(k) for k in ("f1", "precision", "recall")}


def _token_exports(result) -> List[dict]:
    rows = _exports(result)
    for row, artifact in zip(rows, (result or {}).get("artifacts", [])):
        row["dev"], row["test"] = _entity(artifact.get("dev")), _entity(artifact.get("test"))
        row["f1_drop_points"] = (artifact.get("details") or {}).get("f1_drop_points")
    return rows


def render_token_markdown(report: dict) -> str:
    """The token report: entity F1 where sentence reports show accuracy."""
    from distill.pipeline.report import _num, _params, _pct, _size, plot_lines

    ds, t = report["dataset"], report["teacher"]
    sizes = ds["sizes"]
    seeds = report["recipe"].get("seeds", [0])
    lines = [f"# Report: {report['recipe'].get('name', '')} (token task)", "",
             f"Data set **{ds['name']}**, scheme {ds['scheme']}, {len(ds['tags'])} tags; "
             f"sentences: train {sizes['train']}, dev {sizes['dev']}, test {sizes['test']}, "
             f"augmented {sizes['augmented']}. Entity precision/recall/F1 (seqeval, strict) in "
             f"percent on the test set" + (f", mean ± std over seeds {seeds}" if len(seeds) > 1
                                           else "") + ".", "",
             "| model | kind | params | F1 | precision | recall | gap recovered |",
             "|---|---|---|---|---|---|---|",
             f"| teacher {t['name']} | ernie | {_params(t.get('params'))} | "
             f"{_pct(t['test'].get('f1'))} | {_pct(t['test'].get('precision'))} | "
             f"{_pct(t['test'].get('recall'))} | |"]
    for s in report["students"]:
        for role in ("baseline", "distilled"):
            m = ((s.get(role) or {}).get("test")) or {}
            if not m:
                continue
            gap = "" if role == "baseline" else _pct(s.get("gap_recovered"),
                                                     s.get("gap_recovered_std"))
            lines.append(f"| {s['name']} ({'plain' if role == 'baseline' else 'distilled'}) | "
                         f"{s['kind']} | {_params(s.get('params'))} | "
                         f"{_pct(m.get('f1'), m.get('f1_std'))} | {_pct(m.get('precision'))} | "
                         f"{_pct(m.get('recall'))} | {gap} |")
    lines += ["", "Exports: the guard judges dev entity F1 (drop in points vs FP32); test is "
                  "reported only.", "",
              "| model | format | size | dev F1 | test F1 | F1 drop (points) | latency b1 (ms) | "
              "accepted | reason |", "|---|---|---|---|---|---|---|---|---|"]
    for name, exports in [("teacher", t.get("exports", []))] + [
            (s["name"], s.get("exports", [])) for s in report["students"]]:
        for e in exports:
            lines.append(f"| {name} | {e['format']} | {_size(e.get('size_bytes'))} | "
                         f"{_pct(e['dev'].get('f1'))} | {_pct(e['test'].get('f1'))} | "
                         f"{_num(e.get('f1_drop_points'))} | "
                         f"{_num(e.get('latency_ms_b1'))} | {'yes' if e['accepted'] else 'no'} | "
                         f"{e.get('reason', '')} |")
    sl = report.get("soft_labels") or {}
    if sl.get("stored_bytes") is not None:
        lines += ["", f"Soft labels: {sl['storage']}, {_size(sl['stored_bytes'])} "
                      f"(float32 would be {_size(sl['float32_bytes'])}); teacher argmax agrees "
                      f"with the gold tag on {_pct(sl.get('train_token_agreement'))} % of the "
                      "training tokens."]
    if report.get("package"):
        lines += ["", f"Package: `{report['package']}`"]
    lines += plot_lines(report)
    return "\n".join(lines) + "\n"
