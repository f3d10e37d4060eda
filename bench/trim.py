"""Vocabulary trimming on trained models: size and test accuracy, untrimmed vs ``trim_vocab: auto``.

    python -m bench.trim                        # the three models below (trains what is not cached)
    python -m bench.trim --quick                # smoke: movies_en tiny on 256 rows, 200 dev/test rows
    python -m bench.trim --models movies_en-tiny,minilm-teacher
    python -m bench.trim --zh-train-rows 3000 --en-train-rows 3000   # tiny students on seeded samples
    python -m bench.trim --models minilm-teacher --merge a/trim.json   # add earlier runs' models
    python -m bench.trim --merge a/trim.json b/trim.json                # only merge and rewrite
    python -m bench.trim --minilm-teacher DIR   # a fine-tuned MiniLM movies_en teacher to export
    python -m bench.trim --runs DIR             # where trained models are cached (default runs/bench-trim)

Models, each trained with the project's trainer (``students.train.train_student``,
``teachers.finetune.finetune``) and the recipe's own settings:

* ``reviews_zh-tiny``: the plain (gold-label) student of ``recipes/reviews_zh/tiny_from_e5small.yaml``,
  4 of multilingual-e5-small's 12 layers, trained with the recipe's ``train`` + ``baseline_train``
  settings. The recipe copies the layers from its fine-tuned e5 teacher; this bench copies them from
  the pretrained e5-small (no teacher fine-tuning: hours of CPU) and says so in the table.
* ``movies_en-tiny``: the plain student of ``recipes/movies_en/tiny_from_minilm.yaml``, 3 of
  MiniLM-L6's layers copied from the fine-tuned MiniLM teacher (as the recipe does).
* ``minilm-teacher``: that fine-tuned MiniLM-L6 movies_en teacher itself (``--minilm-teacher DIR``,
  copied into the cache; without it, fine-tuned here with the recipe's ``teacher.finetune``).

Each model is exported twice with ``distill.export.exporter.export_model`` (ONNX FP32 + ONNX INT8,
the recipe's ``calib_size`` and ``max_accuracy_drop``): untrimmed, and with ``trim_vocab: auto`` on
the task's whole training text. The exporter's guards judge on the dev split only (INT8 and the
trimming alike); the test split is measured for the table only. When the guard rejects a trimming,
the trimmed model is exported again with the guard off so that its size and accuracy are still
measured (the table says "rejected"). Every accepted ONNX artifact is packaged on its own for its
package size. Also measured: the word vocabulary a BOW/CNN/LSTM student of each task builds
(``WordVocab.build`` with the recipes' cap) and how many of its rows trimming could remove.
Trained models are cached under ``--runs`` (a rerun with the same settings does not retrain).
Each model's entry records the machine, load and commit it was measured on, so models measured by
separate runs (``--merge``: their trim.json files) share one table. Writes bench/results/trim.md
and .json.
"""
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bench.common import base_parser, machine, machine_line, md_table, results_dir, write_results

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("reviews_zh-tiny", "movies_en-tiny", "minilm-teacher")
RECIPES = {"reviews_zh": ROOT / "recipes" / "reviews_zh" / "tiny_from_e5small.yaml",
           "movies_en": ROOT / "recipes" / "movies_en" / "tiny_from_minilm.yaml"}
SEED = 0


def recipe(task: str):
    from distill.pipeline.recipe import load_recipe

    return load_recipe(RECIPES[task]).recipe


def load_task(name: str, rows: Optional[int] = None, eval_rows: Optional[int] = None):
    """The builtin task; ``rows``: a seeded sample of the training rows (file order kept);
    ``eval_rows``: a seeded sample of that many dev and test rows each."""
    from distill.data.examples import Task, load_task as read
    from distill.data.fetch import fetch
    from teachers.finetune import limit_examples

    folder = Path(fetch(name))
    task = read(folder / "train.tsv", folder / "dev.tsv", folder / "test.tsv", name=name)
    if rows or eval_rows:
        task = Task(task.name, limit_examples(task.train, rows, SEED),
                    limit_examples(task.dev, eval_rows, SEED),
                    limit_examples(task.test, eval_rows, SEED), task.labels)
    return task


def finetuned_teacher(task, runs: Path, source: Optional[Path], quick: bool) -> Path:
    """A fine-tuned MiniLM-L6 movies_en teacher directory under ``runs``: a copy of ``source``,
    or fine-tuned here with the recipe's ``teacher.finetune`` settings (cached)."""
    from distill.train.trainer import TrainConfig
    from teachers.checkpoint import load_teacher
    from teachers.finetune import finetune, limit_examples

    out = runs / ("minilm-teacher-quick" if quick else "minilm-teacher")
    if not (out / "teacher" / "teacher.json").is_file():
        if source is not None:
            shutil.copytree(source, out / "teacher.tmp", dirs_exist_ok=True)
            os.replace(out / "teacher.tmp", out / "teacher")
            (out / "origin.txt").write_text("copied from a fine-tuned teacher (--minilm-teacher)\n")
        else:
            spec = recipe("movies_en").teacher
            teacher = load_teacher(spec.source, num_labels=len(task.labels))
            rows = limit_examples(task.train, 200 if quick else spec.finetune.max_train, SEED)
            config = TrainConfig(**{**spec.finetune.train, "seed": SEED, "device": "cpu",
                                    **({"epochs": 1} if quick else {})})
            sub = type(task)(task.name, rows, task.dev, task.test, task.labels)
            finetune(teacher, sub, config, out, max_len=spec.max_len)
            (out / "origin.txt").write_text(f"fine-tuned here on {len(rows)} rows\n")
    teacher = load_teacher(out / "teacher")  # fails loudly if the copy is not a teacher
    if list(teacher.labels) != list(task.labels):
        raise SystemExit(f"{out}: teacher labels {teacher.labels} != task labels {task.labels}")
    return out / "teacher"


def train_tiny(task_name: str, task, runs: Path, teacher_dir: Optional[Path],
               quick: bool) -> Dict[str, object]:
    """The recipe's plain tiny student (gold labels, ``train`` + ``baseline_train``), cached."""
    from distill.core.io import read_json
    from students.train import default_train_config, train_student
    from teachers.checkpoint import load_teacher

    r = recipe(task_name)
    spec = r.students[0]
    settings = {**spec.train, **(spec.baseline_train or {})}
    if quick:
        settings["epochs"] = 1
    out = runs / (f"{task_name}-tiny-rows{len(task.train)}-dev{len(task.dev)}"
                  f"-epochs{settings.get('epochs')}-seed{SEED}")
    if not (out / "result.json").is_file():
        source = str(teacher_dir) if teacher_dir is not None else r.teacher.source
        teacher = load_teacher(source, num_labels=len(task.labels))
        teacher.labels = list(task.labels)  # a pretrained encoder has no task labels yet
        config = default_train_config("tiny", **dict(settings, seed=SEED, device="cpu"))
        train_student("tiny", spec.config, task, out, config, teacher=teacher,
                      max_len=r.teacher.max_len, progress=False)
    result = read_json(out / "result.json")
    return {"dir": out / "student", "init": "fine-tuned teacher" if teacher_dir else
            f"pretrained {r.teacher.source}", "train_rows": result["train_rows"],
            "epochs": settings.get("epochs"), "train_seconds": result["fit"]["train_time_s"],
            "dev": result["dev"], "test": result["test"]}


def export_pair(model_dir: Path, task, task_name: str, work: Path) -> Dict[str, object]:
    """Export ``model_dir`` untrimmed and trimmed (ONNX FP32 + INT8); package each artifact."""
    from distill.core.errors import PackageError
    from distill.export.exporter import ExportConfig, export_model, load_model_dir
    from distill.export.package import build_package

    r = recipe(task_name)
    loaded = load_model_dir(model_dir)  # trimming works on a copy: one load serves every export
    settings = r.export.settings
    out: Dict[str, object] = {}
    for name, trim in (("untrimmed", "off"), ("trimmed", "auto"), ("trimmed-forced", "auto")):
        if name == "trimmed-forced" and out["trimmed"]["trim"]["accepted"]:
            break  # the guard kept the trimming: nothing more to measure
        forced = name == "trimmed-forced"
        config = ExportConfig(formats=("onnx", "onnx-int8"), max_len=r.teacher.max_len,
                              calib_size=settings.get("calib_size", 200), threads=1, timed=False,
                              max_accuracy_drop=0.99 if forced else
                              settings.get("max_accuracy_drop", 0.005),
                              max_disagreement=None if forced else 0.05,
                              trim_vocab=trim, seed=SEED)
        t0 = time.perf_counter()
        result = export_model(loaded, out_dir=work / name, calib_examples=task.train,
                              eval_examples=task.dev, test_examples=task.test, config=config,
                              trim_texts=task.train if trim != "off" else None)
        row: Dict[str, object] = {"reference": {k: result.reference[k] for k in ("dev", "test")},
                                  "trim": result.reference["trim"],
                                  "export_seconds": round(time.perf_counter() - t0)}
        for report in result.reports:
            entry = {"accepted": report.accepted, "reason": report.reason, "dev": report.dev,
                     "test": report.test, "model_bytes": report.size_bytes, "package_bytes": None}
            if report.accepted:
                try:
                    package = build_package([report], work / name / "encoder", loaded.labels,
                                            work / f"{name}-{report.format}.tar.gz",
                                            {"max_len": r.teacher.max_len})
                    entry["package_bytes"] = package.stat().st_size
                except PackageError as err:
                    entry["reason"] = str(err)
            row[report.format] = entry
        out[name] = row
        print(f"{model_dir.parent.name} {name}: " + ", ".join(
            f"{f} test {row[f]['test']['accuracy']:.4f} pkg {row[f]['package_bytes']}"
            for f in ("onnx", "onnx-int8")), flush=True)
    return out


def test_coverage(encoder_dir: Path, task_name: str) -> Dict[str, float]:
    """How much of the test split trimming turns into unknown tokens: the share of its (non-pad)
    tokens, and of its rows with at least one, whose piece is outside the kept set (the pieces
    of the whole training text, as ``trim_vocab: auto`` keeps them). Tokenizing only."""
    from distill.export.trim import kept_ids
    from distill.text.encoders import load_encoder

    encoder = load_encoder(encoder_dir)
    max_len = recipe(task_name).teacher.max_len
    task = load_task(task_name)
    keep, _ = kept_ids(encoder, [e.text_a for e in task.train], "auto", max_len)
    kept = np.zeros(encoder.vocab_size + 1, dtype=bool)
    kept[np.asarray(keep)] = True
    enc = encoder.encode([e.text_a for e in task.test], max_len=max_len)
    real = enc["attention_mask"] > 0                                       # (N, L)
    lost = real & ~kept[np.minimum(enc["input_ids"], encoder.vocab_size)]  # (N, L)
    return {"test_rows": len(task.test), "token_share": float(lost.sum() / real.sum()),
            "row_share": float(lost.any(axis=1).mean())}


def word_vocabularies() -> Dict[str, Dict[str, int]]:
    """What a word student's vocabulary holds: rows built from each task's training text with the
    recipes' cap (``VocabConfig`` defaults: min_freq 1, max_size 50,000), and how many of them
    trimming with that same text would remove (none by construction) or a min_freq of 2 would."""
    import collections

    from distill.text.vocab import WordVocab
    from students.train import VocabConfig

    cap = VocabConfig()
    out = {}
    for name in RECIPES:
        texts = [e.text_a for e in load_task(name).train]
        vocab = WordVocab.build(texts, language=cap.language, min_freq=cap.min_freq,
                                max_size=cap.max_size)
        counts = collections.Counter(w for t in texts for w in vocab.tokenize(t))
        out[name] = {"rows": vocab.vocab_size, "cap": cap.max_size, "distinct_words": len(counts),
                     "rows_seen_in_train": sum(1 for w in vocab.words if counts.get(w)),
                     "special_rows": sum(1 for w in vocab.words if not counts.get(w)),
                     "words_seen_once": sum(1 for n in counts.values() if n == 1)}
    return out


def bench(quick: bool, models: List[str], runs: Path, teacher_source: Optional[Path],
          sample_rows: Dict[str, Optional[int]], eval_rows: Optional[int]) -> Dict[str, object]:
    eval_rows = 200 if quick else eval_rows
    info: Dict[str, object] = {"machine": machine(), "quick": quick, "seed": SEED, "models": {},
                               "eval_rows": eval_rows}
    print(machine_line(info["machine"]), flush=True)
    if not models:
        info["machine"]["load_average_end"] = info["machine"]["load_average"]
        return info
    runs.mkdir(parents=True, exist_ok=True)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-trim-") as tmp:
        movies = load_task("movies_en", eval_rows=eval_rows)
        teacher_dir = None
        if "minilm-teacher" in models or ("movies_en-tiny" in models and not quick):
            teacher_dir = finetuned_teacher(movies, runs, teacher_source, quick)
        for name in models:
            t0 = time.perf_counter()
            measured = machine()
            if name == "minilm-teacher":
                entry = {"model": {"dir": teacher_dir, "origin": (teacher_dir.parent / "origin.txt")
                                   .read_text().strip()},
                         "dev_rows": len(movies.dev), "test_rows": len(movies.test)}
                entry.update(export_pair(teacher_dir, movies, "movies_en", Path(tmp) / name))
            else:
                task_name = name.split("-")[0]
                rows = 256 if quick else sample_rows.get(task_name)
                task = load_task(task_name, rows=rows, eval_rows=eval_rows)
                full_train = load_task(task_name).train if rows else task.train
                model = train_tiny(task_name, task, runs,
                                   teacher_dir if task_name == "movies_en" and not quick else None,
                                   quick)
                trim_task = type(task)(task.name, full_train, task.dev, task.test, task.labels)
                model["full_train_rows"] = len(full_train)
                entry = {"model": model, "dev_rows": len(task.dev), "test_rows": len(task.test)}
                entry.update(export_pair(model["dir"], trim_task, task_name, Path(tmp) / name))
            entry["model"]["dir"] = Path(entry["model"]["dir"]).parent.name  # the cache entry
            entry["seconds"] = round(time.perf_counter() - t0)
            measured["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
            entry["measured"] = measured
            info["models"][name] = entry
    if not quick and models:
        info["word_vocab"] = word_vocabularies()
    info["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return info


def merge(info: Dict[str, object], paths: List[str]) -> None:
    """Add the models (and word-vocabulary counts) of earlier runs' trim.json files; each model
    keeps the machine line of the run that measured it; models measured now win."""
    import json

    for path in paths:
        other = json.loads(Path(path).read_text(encoding="utf-8"))
        if other.get("quick") and not info["quick"]:
            raise SystemExit(f"{path}: a --quick result; not merged into a full table")
        for name, entry in other["models"].items():
            entry.setdefault("measured", other["machine"])
            info["models"].setdefault(name, entry)
        if other.get("word_vocab"):
            info.setdefault("word_vocab", other["word_vocab"])
    info["models"] = {n: info["models"][n] for n in MODELS if n in info["models"]}


def _pct(metrics) -> str:
    return f"{100 * metrics['accuracy']:.2f}" if metrics else "-"


def _mb(entry) -> str:
    if entry["package_bytes"]:
        return f"{entry['package_bytes'] / 1e6:.1f}"
    return f"rejected ({entry['model_bytes'] / 1e6:.1f} MB model)"


def markdown(info: Dict[str, object]) -> str:
    lines = ["### Vocabulary trimming on trained models (`trim_vocab: auto`)", ""]
    lines += [f"- {name} measured on {machine_line(m['measured'])}; load average at the end "
              f"{m['measured']['load_average_end'][0]}" for name, m in info["models"].items()]
    lines += ["", ("Quick run: tiny sizes, not the issue's numbers. " if info["quick"] else "")
             + "Each model exported untrimmed and trimmed to ONNX FP32 and ONNX INT8 by the "
             "project's exporter with the recipe's guard (max accuracy drop 0.5 points, judged on "
             "dev only); each accepted artifact packaged on its own. Trimming keeps the special "
             "tokens and every piece of the task's whole training text. Dev and test rows: "
             + ", ".join(f"{n} {m['dev_rows']:,}/{m['test_rows']:,}" for n, m in
                         info["models"].items())
             + " (a seeded sample where smaller than the split; one test row is "
             + ", ".join(f"{100 / m['test_rows']:.2f}" for m in info["models"].values())
             + " points); \"dygraph\" is the Paddle model before export.", ""]
    rows = []
    for name, m in info["models"].items():
        for variant in ("untrimmed", "trimmed", "trimmed-forced"):
            if variant not in m:
                continue
            r, trim = m[variant], (m.get("trimmed-forced") or m["trimmed"])["trim"]
            vocab = trim["vocab_before"] if variant == "untrimmed" else trim["vocab_after"]
            params = trim["parameters_before"] if variant == "untrimmed" else \
                trim["parameters_after"]
            if variant == "trimmed" and not r["trim"]["accepted"]:
                continue  # the guard exported the untrimmed model; the forced row has the numbers
            label = {"untrimmed": "untrimmed", "trimmed": "trimmed (accepted on dev)",
                     "trimmed-forced": "trimmed (rejected on dev: "
                                       f"{m['trimmed']['trim']['reason']})"}[variant]
            rows.append([name, label, f"{vocab:,}", f"{params / 1e6:.1f}M", _mb(r["onnx"]),
                         _mb(r["onnx-int8"]), _pct(r["reference"]["test"]),
                         _pct(r["onnx"]["test"]), _pct(r["onnx-int8"]["test"])])
    lines.append(md_table(["model", "variant", "vocabulary", "parameters", "FP32 package MB",
                           "INT8 package MB", "dygraph test %", "ONNX FP32 test %",
                           "ONNX INT8 test %"], rows))
    lines.append("")
    for name, m in info["models"].items():
        model = m["model"]
        t = (m.get("trimmed-forced") or m["trimmed"])["trim"]
        base, after = m["untrimmed"], m.get("trimmed-forced") or m["trimmed"]
        change = 100 * (after["onnx"]["test"]["accuracy"] - base["onnx"]["test"]["accuracy"])
        change8 = 100 * (after["onnx-int8"]["test"]["accuracy"]
                         - base["onnx-int8"]["test"]["accuracy"])
        how = (f"{model.get('origin')}" if name == "minilm-teacher" else
               f"layers copied from the {model['init']}, trained on {model['train_rows']:,} "
               f"gold-labelled rows for {model['epochs']} epoch(s) "
               f"({model['train_seconds'] / 60:.0f} min)"
               + (f", a seeded sample of the {model['full_train_rows']:,} training rows: all of "
                  f"them would take about "
                  f"{model['train_seconds'] * model['full_train_rows'] / model['train_rows'] / 3600:.1f}"
                  f" h on this shared CPU" if model["train_rows"] < model["full_train_rows"] else ""))
        lines.append(f"- **{name}** ({how}): trimming keeps {t['vocab_after']:,} of "
                     f"{t['vocab_before']:,} pieces ({t['pieces_in_text']:,} occur in the "
                     f"{t['texts']:,} training texts); dev accuracy {_pct(t['test_before'])} -> "
                     f"{_pct(t['test_after'])} % (argmax agreement "
                     f"{100 * t['argmax_agreement']:.2f} %), guard: "
                     f"{'accepted' if m['trimmed']['trim']['accepted'] else 'rejected'}; test "
                     f"accuracy change trimmed - untrimmed: FP32 {change:+.2f}, INT8 "
                     f"{change8:+.2f} points"
                     + (f"; on the whole test split ({m['coverage']['test_rows']:,} rows) trimming "
                        f"turns {100 * m['coverage']['token_share']:.2f} % of the tokens into the "
                        f"unknown token, in {100 * m['coverage']['row_share']:.1f} % of the rows"
                        if m.get("coverage") else "") + ".")
    words = info.get("word_vocab")
    if words:
        lines += ["", "Word students (BOW/CNN/LSTM) build their vocabulary from the training "
                      "(+ augmented) text with a cap: " + "; ".join(
                          f"{n}: {w['rows']:,} rows (cap {w['cap']:,}), {w['rows_seen_in_train']:,}"
                          f" of them occur in the training text (the other "
                          f"{w['special_rows']} are the special tokens), so trimming with that "
                          f"text removes none; "
                          f"{w['words_seen_once']:,} words occur only once"
                          for n, w in words.items()) + "."]
    return "\n".join(lines)


def summary(info: Dict[str, object]) -> str:
    parts = []
    for name, m in info["models"].items():
        after = m.get("trimmed-forced") or m["trimmed"]
        parts.append(f"{name} INT8 package MB {_mb(m['untrimmed']['onnx-int8'])} -> "
                     f"{_mb(after['onnx-int8'])}, test {_pct(m['untrimmed']['onnx-int8']['test'])}"
                     f" -> {_pct(after['onnx-int8']['test'])} %")
    return "trim: " + "; ".join(parts)


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--models", default=None,
                        help=f"comma-separated subset of {', '.join(MODELS)} (default: all; "
                             f"--quick: movies_en-tiny)")
    parser.add_argument("--runs", default=str(ROOT / "runs" / "bench-trim"),
                        help="cache of trained models (default runs/bench-trim)")
    parser.add_argument("--minilm-teacher", default=None,
                        help="a fine-tuned MiniLM-L6 movies_en teacher directory (teacher.json); "
                             "default: fine-tune one with the recipe's settings")
    parser.add_argument("--zh-train-rows", type=int, default=None,
                        help="train the reviews_zh tiny on a seeded sample of this many rows")
    parser.add_argument("--en-train-rows", type=int, default=None,
                        help="train the movies_en tiny on a seeded sample of this many rows")
    parser.add_argument("--eval-rows", type=int, default=None,
                        help="measure on a seeded sample of this many dev and test rows each "
                             "(default: the whole splits)")
    parser.add_argument("--merge", nargs="+", default=[],
                        help="trim.json files of earlier runs whose models join the table (alone: "
                             "measure nothing, only merge and rewrite the results)")
    args = parser.parse_args(argv)
    models = args.models.split(",") if args.models else \
        [] if args.merge else (["movies_en-tiny"] if args.quick else list(MODELS))
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    info = bench(args.quick, models, Path(args.runs), Path(args.minilm_teacher)
                 if args.minilm_teacher else None,
                 {"reviews_zh": args.zh_train_rows, "movies_en": args.en_train_rows},
                 args.eval_rows)
    merge(info, args.merge)
    runs = Path(args.runs)
    for name, entry in info["models"].items():  # cheap (tokenizing): also for merged models
        if "coverage" not in entry and not args.quick:
            folder = runs / entry["model"]["dir"]
            encoder_dir = folder / ("teacher" if name == "minilm-teacher" else "student")
            if encoder_dir.is_dir():
                entry["coverage"] = test_coverage(encoder_dir, name.split("-")[0]
                                                  if name != "minilm-teacher" else "movies_en")
    path = write_results("trim", info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
