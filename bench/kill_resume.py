"""Kill/resume campaign: SIGKILL ``distill run recipes/smoke.yaml`` at random moments, resume it,
and check the finished run equals an uninterrupted one (metrics, weights, soft labels).

    python -m bench.kill_resume --kills 20 [--seed 0] [--nproc 2] [--out FILE]

One reference run goes uninterrupted. Then campaign runs, each in a fresh folder: the command is
started and SIGKILLed after a delay drawn uniformly from [1 s, 0.7 x the reference run's
duration], restarted on the same ``--out`` and killed again, until an attempt finishes before its
kill (or ``--max-kills-per-run`` is reached: then it is resumed to the end); new runs start until
``--kills`` kills are done. Every finished campaign run is compared with the reference:

* the report metrics (data sizes, teacher and student dev/test metrics, gap recovered, export
  accuracies), as ``tests/pipeline/test_runner.py`` compares them;
* every weights file (``**/model_state.pdparams``, read with the restricted loader) array-equal;
* every soft-label array (``soft_labels/**/*.npy``) array-equal.

It also counts how many restarts found the folder locked (must be 0: a killed run's lock is
stale and taken over) and any restart that ended in an error other than the kill. Not run by CI
(minutes per run); results go to ``--out`` as JSON.
"""
import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from distill.pipeline.report import repeatable_metrics

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "recipes" / "smoke.yaml"


def command(out: Path, nproc) -> list:
    cmd = [sys.executable, "-m", "distill", "run", str(SMOKE), "--out", str(out)]
    return cmd + (["--nproc", str(nproc)] if nproc else [])


def run_to_end(out: Path, nproc, log) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command(out, nproc), cwd=ROOT, stdout=log, stderr=log)
    if proc.returncode != 0:
        raise SystemExit(f"run into {out} failed with exit {proc.returncode}; see the log")
    return time.perf_counter() - start


def arrays(run_dir: Path) -> dict:
    from distill.core.safe_pickle import load_state_dict

    out = {}
    for path in sorted(run_dir.rglob("model_state.pdparams")):
        if "/last/" in str(path):  # the trainer's resume point: not a result
            continue
        for key, value in load_state_dict(path).items():
            out[f"{path.relative_to(run_dir)}:{key}"] = value
    for path in sorted((run_dir / "soft_labels").rglob("*.npy")):
        out[str(path.relative_to(run_dir))] = np.load(path, allow_pickle=False)
    return out


def compare(reference: Path, other: Path) -> list:
    """Differences between two finished run folders (empty list: identical results)."""
    problems = []
    ref_report = json.loads((reference / "report.json").read_text())
    got_report = json.loads((other / "report.json").read_text())
    if repeatable_metrics(ref_report) != repeatable_metrics(got_report):
        problems.append("report metrics differ")
    ref, got = arrays(reference), arrays(other)
    if sorted(ref) != sorted(got):
        problems.append(f"different weight/label files: {sorted(set(ref) ^ set(got))[:5]}")
    for key in sorted(set(ref) & set(got)):
        if ref[key].shape != got[key].shape or not np.array_equal(ref[key], got[key]):
            problems.append(f"{key} differs")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--max-kills-per-run", type=int, default=8,
                        help="then the run is resumed to the end and a fresh one starts")
    parser.add_argument("--kill-window", type=float, default=0.7,
                        help="kill moments are drawn from [1 s, this x the reference duration]")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--reference-seconds", type=float,
                        help="reuse WORK/reference (finished earlier; it took this long)")
    parser.add_argument("--nproc", type=int, help="pass --nproc N to every run")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(args.work or tempfile.mkdtemp(prefix="kill-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "runs.log", "a")
    load_before = os.getloadavg()
    reference = work / "reference"
    if args.reference_seconds and (reference / "report.json").is_file():
        ref_seconds = args.reference_seconds  # a finished reference from an earlier call
    else:
        ref_seconds = run_to_end(reference, args.nproc, log)
    print(f"reference run: {ref_seconds:.1f} s (load {load_before[0]:.1f})", flush=True)

    results, kills, locked, errors, i = [], 0, 0, 0, 0
    while kills < args.kills:
        out = work / f"run{i}"
        moments, finished = [], False
        for _ in range(args.max_kills_per_run + 1):
            delay = rng.uniform(1.0, args.kill_window * ref_seconds)
            proc = subprocess.Popen(command(out, args.nproc), cwd=ROOT, stdout=log, stderr=log,
                                    start_new_session=True)
            try:
                proc.wait(timeout=delay if kills < args.kills and
                          len(moments) < args.max_kills_per_run else None)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # the run and any ranks it launched
                proc.wait()
                kills += 1
                moments.append(round(delay, 1))
                continue
            if proc.returncode == 0:
                finished = True
                break
            if proc.returncode == 2:
                locked += 1
            else:
                errors += 1
        if not finished:
            run_to_end(out, args.nproc, log)
        problems = compare(reference, out)
        results.append({"run": i, "kill_moments_s": moments, "identical": not problems,
                        "problems": problems})
        print(f"run {i}: killed at {moments} s after each (re)start; "
              f"{'identical' if not problems else 'DIFFERENT: ' + '; '.join(problems[:3])}",
              flush=True)
        i += 1
    summary = {"kills": kills, "runs": len(results),
               "identical_runs": sum(r["identical"] for r in results),
               "restarts_refused_as_locked": locked, "restarts_failed": errors,
               "reference_seconds": round(ref_seconds, 1), "nproc": args.nproc,
               "load_before": [round(x, 2) for x in load_before],
               "load_after": [round(x, 2) for x in os.getloadavg()], "work": str(work),
               "runs_detail": results}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs_detail"}))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    return 0 if summary["identical_runs"] == len(results) and not errors and not locked else 1


if __name__ == "__main__":
    sys.exit(main())
