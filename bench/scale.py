"""Data parallelism on this machine: the default recipe's fine-tuning, labelling and distillation
at 1 and 2 processes, side by side, with rows/s and the ratios.

    python -m bench.scale            # recipes/movies_en/bow_from_minilm.yaml (export off)
    python -m bench.scale --quick    # the smoke recipe cut down (tiny teacher, BOW only, seconds)

Three set-ups of the same recipe, each from scratch in ``runs/bench-scale[-quick]/<tag>``:
``1p1t`` one process, one thread; ``1p2t`` one process with every core (what `distill run`
does today); ``2p1t`` `distill run --nproc 2` (2 processes x 1 thread, gloo). On a CPU the
honest comparison for `--nproc 2` is 1p2t (the same cores), so those two run by default;
1p1t (``--only 1p1t,1p2t,2p1t``) shows the scaling of one worker. Rates: training = rows trained / trainer step time (rank 0's wall time, all-reduce
waits included); labelling = rows / labelling wall time (engine export excluded, all ranks
to the merge). Accuracies (teacher, distilled student) say whether data parallelism kept quality.
A second part times labelling alone with the real teacher (MiniLM-L6, ONNX Runtime FP32, a
fresh 2-label head: throughput does not depend on the head) on movies_en training rows through
`distill label`: one process with 1 and 2 threads, and 2 processes x 1 thread under
`paddle.distributed.launch` (each rank its shard; rate = rows / the slowest rank's labelling
time, as printed by `distill label`; the engine export is done once before and excluded).
Writes bench/results/scale.md and .json; the last line is the summary.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from bench.common import ROOT, base_parser, machine, machine_line, md_table, results_dir, write_results

DEFAULT = "recipes/movies_en/bow_from_minilm.yaml"
QUICK = "recipes/smoke.yaml"
SETUPS = (("1p1t", 1, 1), ("1p2t", 1, 2), ("2p1t", 2, 1))  # tag, processes, threads each
LABEL_ROWS = {False: 3000, True: 600}  # MiniLM labelling part: rows (full, --quick)
TIMING = re.compile(r"soft labels in ([0-9.]+) s")


def bench_recipe(recipe: str, quick: bool, folder: Path) -> Path:
    """The recipe with export (not data-parallel) switched off; quick: one BOW student."""
    raw = yaml.safe_load((ROOT / recipe).read_text())
    base = (ROOT / recipe).parent
    data = raw.get("data", {})
    for split in ("train", "dev", "test"):
        if split in data:
            data[split] = str(base / data[split])
    source = raw.get("teacher", {}).get("source")
    if source and (base / source).exists():
        raw["teacher"]["source"] = str(base / source)
    raw["export"] = {"enabled": False}
    if quick:
        raw["students"] = [s for s in raw["students"] if s["kind"] == "bow"][:1] or raw["students"][:1]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def run_setup(recipe: Path, run_dir: Path, nproc: int, threads: int, seeds: str) -> float:
    if run_dir.exists():
        shutil.rmtree(run_dir)
    env = _env(threads)
    cmd = [sys.executable, "-m", "distill", "run", str(recipe), "--out", str(run_dir),
           "--nproc", str(nproc), "--seeds", seeds]
    start = time.perf_counter()
    with open(str(run_dir) + ".log", "w") as log:
        code = subprocess.call(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {code}); see {run_dir}.log")
    return time.perf_counter() - start


def _json(path: Path) -> Dict:
    return json.loads(path.read_text()) if path.exists() else {}


def trainer_rate(stage_dir: Path) -> Dict:
    state = _json(stage_dir / "train" / "last" / "trainer_state.json").get("state", {})
    seconds = state.get("train_time_s") or 0.0
    rows = state.get("rows_trained") or 0
    return {"rows": rows, "seconds": round(seconds, 2),
            "rows_per_s": round(rows / seconds, 1) if seconds else None}


def collect(run_dir: Path, wall: Optional[float]) -> Dict:
    report = _json(run_dir / "report.json")
    labels = _json(run_dir / "soft_labels" / "done.json").get("result", {})
    student = report["students"][0]
    distill_dir = run_dir / "distill" / student["name"] / f"seed{report['recipe']['seeds'][0]}"
    label_s = labels.get("label_seconds") or 0.0
    return {
        "wall_seconds": round(wall, 1) if wall else None,
        "stage_seconds": report.get("stage_seconds", {}),
        "finetune": trainer_rate(run_dir / "teacher"),
        "labelling": {"rows": labels.get("rows"), "seconds": label_s, "engine": labels.get("engine"),
                      "export_seconds": labels.get("export_seconds"),
                      "rows_per_s": round(labels["rows"] / label_s, 1) if label_s else None},
        "distill": dict(trainer_rate(distill_dir), student=student["name"]),
        "teacher_test_accuracy": (report["teacher"].get("test") or {}).get("accuracy"),
        "student_test_accuracy": student["distilled"]["test"].get("accuracy"),
        "student_test_accuracy_std": student["distilled"]["test"].get("accuracy_std"),
        "seeds": report["recipe"]["seeds"],
    }


def _acc(row: Dict, key: str) -> str:
    """Test accuracy in %, with the std over seeds when there is one."""
    mean, std = row.get(key), row.get(key + "_std")
    if mean is None:
        return "–"
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _cell(value):
    return "–" if value is None else value


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def markdown(info: Dict) -> str:
    res = info["setups"]
    parts = (("fine-tuning", "finetune"), ("labelling", "labelling"), ("distillation", "distill"))
    rows = []
    for title, key in parts:
        rates = {tag: res[tag][key]["rows_per_s"] for tag in res if not res[tag].get("reference")}
        rows.append([_cell(v) for v in [title] + [rates.get(tag) for tag, _, _ in SETUPS]
                     + [ratio(rates.get("2p1t"), rates.get("1p1t")),
                        ratio(rates.get("2p1t"), rates.get("1p2t"))]])
    seeds = res["1p2t"].get("seeds")
    acc = [["teacher test accuracy %"]
           + [_acc(res.get(t, {}), "teacher_test_accuracy") for t, _, _ in SETUPS],
           [f"distilled student test accuracy % (seeds {seeds})"]
           + [_acc(res.get(t, {}), "student_test_accuracy") for t, _, _ in SETUPS],
           ["whole run, wall seconds"]
           + [_cell(res.get(t, {}).get("wall_seconds")) for t, _, _ in SETUPS]]
    lab = res["2p1t"]["labelling"]
    refs = [t for t in res if res[t].get("reference")]
    note = [f"The {', '.join(refs)} column is an earlier finished run of the same recipe and seeds "
            f"({res[refs[0]]['reference']}), given with --nproc1-run: its accuracies are "
            "compared, its rates (another time, another load) are not shown.", ""] if refs else []
    return "\n".join([
        f"### Data-parallel scaling ({info['recipe']}{', quick' if info['quick'] else ''})", "",
        "machine: " + machine_line(info["machine"]) + f"; load average at the end {info['load_end']}.",
        "Rows/s per part at 1 process x 1 thread (1p1t), 1 process x 2 threads (1p2t, today's "
        "default) and `--nproc 2` (2 processes x 1 thread, gloo), run one after the other.", "",
        md_table(["rows/s", "1p1t", "1p2t", "2p1t", "2p1t / 1p1t", "2p1t / 1p2t"], rows), "",
        md_table(["", "1p1t", "1p2t", "2p1t"], acc), "", *note,
        f"Labelling engine {lab['engine']}; engine export {lab['export_seconds']} s, excluded.",
        "On a shared machine the rates move with the other jobs' load (stated above): compare "
        "ratios, and treat a ratio measured under a load above the core count as a lower bound."])


def summary(info: Dict) -> str:
    res = info["setups"]
    text = "scale: "
    if "labelling" in info:
        lab = {t: info["labelling"][t]["rows_per_s"] for t, _, _ in SETUPS}
        text += (f"MiniLM labelling 2 procs x 1 thread = {ratio(lab['2p1t'], lab['1p1t'])}x one "
                 f"process x 1 thread, {ratio(lab['2p1t'], lab['1p2t'])}x 1 process x 2 threads; ")
    if res["1p2t"].get("reference"):
        return (text + f"--nproc 2 teacher {_acc(res['2p1t'], 'teacher_test_accuracy')} %, student "
                f"{_acc(res['2p1t'], 'student_test_accuracy')} % vs --nproc 1 "
                f"{_acc(res['1p2t'], 'teacher_test_accuracy')} %, "
                f"{_acc(res['1p2t'], 'student_test_accuracy')} % (load {info['load_end']})")
    return (text + "fine-tuning "
            f"{ratio(res['2p1t']['finetune']['rows_per_s'], res['1p2t']['finetune']['rows_per_s'])}x, "
            f"distillation {ratio(res['2p1t']['distill']['rows_per_s'], res['1p2t']['distill']['rows_per_s'])}x "
            f"of 1p2t (load {info['load_end']})")


def _env(threads: int) -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def label_minilm(base: Path, rows: int) -> Dict:
    """Labelling rows/s of MiniLM-L6 (ONNX FP32) at 1p1t, 1p2t and 2p1t through `distill label`."""
    from distill.data import examples as ex
    from distill.data import fetch
    from distill.train import distributed
    from teachers.checkpoint import load_teacher, save_teacher

    base.mkdir(parents=True, exist_ok=True)
    task = fetch.load_builtin_task("movies_en")
    texts = base / "texts.jsonl"
    ex.write_examples(texts, list(task.train)[:rows])
    teacher_dir = base / "teacher"
    if not (teacher_dir / "teacher.json").exists():
        teacher = load_teacher("minilm-l6", num_labels=len(task.labels), seed=0)
        teacher.labels, teacher.max_len = list(task.labels), 64
        save_teacher(teacher, teacher_dir)
    common = ["label", "--teacher", str(teacher_dir), "--input", str(texts), "--engine", "onnx",
              "--engine-cache", str(base / "engines"), "--no-progress", "--batch-size", "64",
              "--chunk-batches", "1000"]
    # export once (cached for every set-up below), labelling a few rows
    warm, warm_texts = base / "warm", base / "warm.jsonl"
    shutil.rmtree(warm, ignore_errors=True)
    ex.write_examples(warm_texts, list(task.train)[:64])
    warm_args = [a if a != str(texts) else str(warm_texts) for a in common]
    subprocess.run([sys.executable, "-m", "distill", *warm_args, "--out", str(warm), "--threads", "2"],
                   cwd=ROOT, env=_env(2), check=True, capture_output=True)
    out = {"rows": rows, "teacher": "minilm-l6", "engine": "onnx"}
    for tag, nproc, threads in SETUPS:
        folder = base / tag
        shutil.rmtree(folder, ignore_errors=True)
        args = common + ["--out", str(folder), "--threads", str(threads)]
        if nproc == 1:
            done = subprocess.run([sys.executable, "-m", "distill", *args], cwd=ROOT,
                                  env=_env(threads), capture_output=True, text=True)
            texts_out = [done.stdout]
            code = done.returncode
        else:
            code = distributed.launch(args, nproc=nproc, log_dir=folder / "launch",
                                      threads=threads, environ=_env(threads))
            texts_out = [p.read_text() for p in sorted((folder / "launch").glob("workerlog.*"))]
        times = [float(m.group(1)) for t in texts_out for m in TIMING.finditer(t)]
        if code != 0 or len(times) != nproc:
            raise SystemExit(f"labelling {tag} failed (exit {code}); see {folder}")
        out[tag] = {"seconds": max(times), "rows_per_s": round(rows / max(times), 1),
                    "per_rank_seconds": times}
        print(f"labelling {tag}: {json.dumps(out[tag])}", flush=True)
    out["2x1p1t"] = label_independent(common, list(task.train)[:rows], base / "2x1p1t")
    print(f"labelling 2x1p1t: {json.dumps(out['2x1p1t'])}", flush=True)
    return out


def label_independent(common: List[str], rows: list, folder: Path) -> Dict:
    """Two plain 1-thread `distill label` processes started together, each on every other row (the
    shards `--nproc 2` labels), with no paddle.distributed: what the two cores give when nothing
    is shared but the machine."""
    from distill.data import examples as ex

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    procs = []
    for i, half in enumerate((rows[0::2], rows[1::2])):  # strided, like --nproc 2's shards
        texts = folder / f"texts{i}.jsonl"
        ex.write_examples(texts, half)
        args = list(common)
        args[args.index("--input") + 1] = str(texts)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distill", *args, "--out", str(folder / f"out{i}"), "--threads",
             "1"], cwd=ROOT, env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    times = [float(m.group(1)) for p in procs for m in TIMING.finditer(p.communicate()[0])]
    if any(p.returncode for p in procs) or len(times) != 2:
        raise SystemExit(f"independent labelling failed; see {folder}")
    return {"seconds": max(times), "rows_per_s": round(len(rows) / max(times), 1),
            "per_rank_seconds": times}


def label_markdown(lab: Dict) -> List[str]:
    rates = {t: lab[t]["rows_per_s"] for t, _, _ in SETUPS}
    indep = lab["2x1p1t"]["rows_per_s"]
    return [
        "", f"Labelling alone, real teacher: {lab['teacher']} (ONNX Runtime FP32), {lab['rows']} "
        "movies_en rows, `distill label`:", "",
        md_table(["rows/s", "1p1t", "1p2t", "2p1t", "2x1p1t", "2p1t / 1p1t", "2p1t / 1p2t",
                  "2x1p1t / 1p1t"],
                 [["labelling"] + [rates[t] for t, _, _ in SETUPS] + [indep]
                  + [ratio(rates["2p1t"], rates["1p1t"]), ratio(rates["2p1t"], rates["1p2t"]),
                     ratio(indep, rates["1p1t"])]]),
        "", "Target: 2 processes >= 1.8x one process with one thread. 2x1p1t: two independent "
        "1-thread `distill label` processes started together, each on every other row (the "
        "shards of `--nproc 2`), with no paddle.distributed: 2x1p1t / 1p1t below 2 is the "
        "machine (the two cores slowing each other down), and 2p1t against 2x1p1t shows what "
        "the launcher and the merge cost. Rates are each set-up's slowest process."]


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=None, help=f"default {DEFAULT} (--quick: {QUICK})")
    parser.add_argument("--only", default="1p2t,2p1t",
                        help="comma-separated set-ups of the recipe runs (default 1p2t,2p1t: "
                             "--nproc 1 and 2 on the same two cores; add 1p1t for one worker's "
                             "scaling, which the labelling part already measures)")
    parser.add_argument("--seeds", default="0,1,2",
                        help="student seeds of every recipe run (default 0,1,2: mean ± std)")
    parser.add_argument("--nproc1-run", default=None, metavar="DIR",
                        help="a finished --nproc 1 run of the same recipe and seeds (e.g. "
                             "bench.quality's group folder) to use as the 1p2t column instead of "
                             "running it: accuracies compared, rates not shown")
    parser.add_argument("--reuse", action="store_true",
                        help="collect set-ups whose run folder already finished (report.json) "
                             "instead of running them again")
    parser.add_argument("--no-labelling", action="store_true",
                        help="skip the MiniLM labelling part (measure it on a quiet machine "
                             "with --labelling-only)")
    parser.add_argument("--labelling-only", action="store_true",
                        help="only the MiniLM labelling part (no recipe runs); writes "
                             "scale_labelling.md/.json")
    args = parser.parse_args(argv)
    recipe = args.recipe or (QUICK if args.quick else DEFAULT)
    info = {"machine": machine(), "quick": args.quick, "recipe": recipe, "setups": {}}
    print(machine_line(info["machine"]), flush=True)
    base = ROOT / "runs" / ("bench-scale-quick" if args.quick else "bench-scale")
    path = bench_recipe(recipe, args.quick, base)
    only = set(args.only.split(",")) if args.only else None
    # labelling first: it is the part with a speed target, measured before the long runs
    if not args.no_labelling:
        info["labelling"] = label_minilm(base / "label", LABEL_ROWS[args.quick])
    for tag, nproc, threads in SETUPS:
        if (only and tag not in only) or args.labelling_only:
            continue
        if tag == "1p2t" and args.nproc1_run:
            info["setups"][tag] = dict(collect(Path(args.nproc1_run), None),
                                       reference=Path(args.nproc1_run).name)
            continue
        finished = args.reuse and (base / tag / "report.json").exists()
        wall = None if finished else run_setup(path, base / tag, nproc, threads, args.seeds)
        info["setups"][tag] = collect(base / tag, wall)
        print(f"{tag}: {json.dumps(info['setups'][tag])}", flush=True)
    info["load_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.labelling_only:
        text = "\n".join(["### Labelling scaling (MiniLM-L6, `distill label`)", "",
                          "machine: " + machine_line(info["machine"])
                          + f"; load average at the end {info['load_end']}."]
                         + label_markdown(info["labelling"]))
        out = write_results("scale_labelling", info, text, results_dir(args))
        print(f"wrote {out}")
        return 0
    if not {"1p2t", "2p1t"} <= set(info["setups"]):
        print("partial run: no table written")
        return 0
    text = markdown(info)
    if "labelling" in info:
        text += "\n" + "\n".join(label_markdown(info["labelling"]))
    out = write_results("scale", info, text, results_dir(args))
    print(f"wrote {out}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
