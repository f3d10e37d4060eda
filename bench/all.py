"""Run every benchmark in order and regenerate docs/benchmarks.md.

    python -m bench.all                 # make bench: full sizes (hours: bench.quality trains 10 recipes x 3 seeds)
    python -m bench.all --quick         # make bench-quick: each bench in its --quick mode
    python -m bench.all --only labeling,speed
    python -m bench.all --docs          # only rewrite docs/benchmarks.md from bench/results/

Each bench runs as its own process (``python -m bench.NAME``): its stdout is shown, its
stderr (progress bars, library logs) goes to ``<results>/NAME.log``, and its last stdout
line, the one-line summary, is collected. A full run then rewrites docs/benchmarks.md from
``bench/results/*.md`` (quick results live in bench/results/quick/ and never reach the docs).
"""
import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BENCHES = ("labeling", "speed", "pipeline", "quality", "serve", "trim", "scale")
DOC = ROOT / "docs" / "benchmarks.md"
HOW = {"labeling": "python -m bench.labeling", "speed": "python -m bench.speed",
       "pipeline": "python -m bench.pipeline", "quality": "python -m bench.quality",
       "serve": "python -m bench.serve", "trim": "python -m bench.trim",
       "scale": "python -m bench.scale",
       "scale_labelling": "python -m bench.scale --labelling-only",
       "quality_ngram": "python -m bench.quality --name quality_ngram --recipes "
                        "recipes/movies_en/bow_from_minilm.yaml,recipes/movies_en/ngram_from_minilm.yaml "
                        "--seeds 0,1,2 --ablation \"\"",
       "quality_movies_en": "python -m bench.quality --name quality_movies_en --recipes "
                            "recipes/movies_en/bow_from_minilm.yaml,recipes/movies_en/ngram_from_minilm.yaml,"
                            "recipes/movies_en/cnn_from_minilm.yaml,recipes/movies_en/lstm_from_minilm.yaml "
                            "--seeds 0,1,2 --ablation recipes/movies_en/bow_from_minilm.yaml",
       "tune_movies_en_bow": "python -m bench.tune --run RUN --recipe recipes/movies_en/bow_from_minilm.yaml "
                             "--seeds 0,1,2 --variant ... --name tune_movies_en_bow (variants listed above)",
       "tune_movies_en_ngram": "python -m bench.tune --run RUN --recipe recipes/movies_en/ngram_from_minilm.yaml "
                               "--seeds 0,1,2 --variant ... --name tune_movies_en_ngram (variants listed above)",
       "tune_movies_en_cnn": "python -m bench.tune --run RUN --recipe recipes/movies_en/cnn_from_minilm.yaml "
                             "--seeds 0,1,2 --variant ... --name tune_movies_en_cnn (variants listed above)",
       "tune_movies_en_lstm": "python -m bench.tune --run RUN --recipe recipes/movies_en/lstm_from_minilm.yaml "
                              "--seeds 0,1,2 --variant ... --name tune_movies_en_lstm (variants listed above)",
       "tune_reviews_zh_bow": "python -m bench.tune --run RUN --recipe recipes/reviews_zh/bow_from_e5small.yaml "
                              "--seeds 0,1,2 --variant ... --name tune_reviews_zh_bow (variants listed above)",
       "tune_reviews_zh_ngram": "python -m bench.tune --run RUN --recipe recipes/reviews_zh/ngram_from_e5small.yaml "
                                "--seeds 0,1,2 --variant ... --name tune_reviews_zh_ngram (variants listed above)",
       "tune_reviews_zh_tiny": "python -m bench.tune --run RUN --recipe recipes/reviews_zh/tiny_from_e5small.yaml "
                               "--seeds 0,1,2 --variant ... --name tune_reviews_zh_tiny (variants listed above)",
       "qat": "python -m bench.qat --teacher RUN/teacher/teacher",
       "quality_reviews_zh": "python -m bench.quality --name quality_reviews_zh --recipes "
                             "recipes/reviews_zh/bow_from_e5small.yaml,recipes/reviews_zh/ngram_from_e5small.yaml,"
                             "recipes/reviews_zh/cnn_from_e5small.yaml,recipes/reviews_zh/lstm_from_e5small.yaml "
                             "--seeds 0,1,2 --ablation recipes/reviews_zh/bow_from_e5small.yaml",
       "quality_reviews_zh_bow": "python -m bench.quality --name quality_reviews_zh_bow --recipes "
                                 "recipes/reviews_zh/bow_from_e5small.yaml,recipes/reviews_zh/ngram_from_e5small.yaml "
                                 "--seeds 0,1,2 --ablation recipes/reviews_zh/bow_from_e5small.yaml",
       "quality_msra": "python -m bench.quality --name quality_msra --no-fasttext --ablation \"\" "
                       "--recipes recipes/msra_ner/lstm_from_e5small.yaml,"
                       "recipes/msra_ner/cnn_from_e5small.yaml,recipes/msra_ner/tiny_from_e5small.yaml",
       "quality_ensemble": "python -m bench.quality --name quality_ensemble --ablation \"\" --recipes "
                           "recipes/movies_en/bow_from_minilm.yaml,recipes/movies_en/bow_from_ensemble.yaml "
                           "--seeds 0,1,2"}
# result files in docs/benchmarks.md, in this order: every bench, then the partial runs that
# have their own file (a few recipes, one part, one model)
SECTIONS = BENCHES + ("scale_labelling", "quality_movies_en", "quality_reviews_zh",
                       "quality_reviews_zh_bow", "quality_ensemble",
                       "tune_movies_en_bow", "tune_movies_en_ngram", "tune_movies_en_cnn",
                       "tune_movies_en_lstm", "tune_reviews_zh_bow", "tune_reviews_zh_ngram",
                       "tune_reviews_zh_tiny", "quality_ngram",
                       "quality_msra", "qat")


def run_bench(name: str, quick: bool, results: Path) -> Dict[str, object]:
    """Run ``bench.<name>``; returns its exit code, seconds and summary (last stdout line)."""
    results.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", f"bench.{name}"] + (["--quick"] if quick else [])
    print(f"== {' '.join(cmd[1:])} (log: {results / f'{name}.log'})", flush=True)
    start = time.perf_counter()
    last = ""
    with open(results / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.strip():
                last = line.strip()
        code = proc.wait()
    return {"name": name, "code": code, "seconds": round(time.perf_counter() - start, 1),
            "summary": last if code == 0 else f"{name}: FAILED (exit {code}, see the log)"}


def benchmarks_doc(results: Path = RESULTS) -> str:
    """The text of docs/benchmarks.md, from the ``.md`` files the benches wrote."""
    lines = ["# Benchmark results", "",
             "Generated by `make bench` (`python -m bench.all`) from `bench/results/`; do not edit "
             "by hand. Every table states the machine, the date and the commit it was measured on. "
             "Re-run one part with the command under its heading.", ""]
    busy = loaded_benches(results)
    if busy:
        lines += [f"Note: {', '.join(busy)} ran while other jobs shared the CPU (load average "
                  "above the core count, stated in each table), so their absolute rates are "
                  "lower than on an idle machine; ratios within one table, timed side by side, "
                  "hold better.", ""]
    for name in SECTIONS:
        md = results / f"{name}.md"
        if md.exists():
            text = md.read_text(encoding="utf-8").rstrip().replace("\n### ", "\n#### ")
            lines += [text.replace("### ", "## ", 1) if text.startswith("### ") else text, "",
                      f"<sub>`{HOW[name]}`</sub>", ""]
        else:
            lines += [f"## {name}", "", f"Not measured yet: `{HOW[name]}`.", ""]
    return "\n".join(lines).rstrip() + "\n"


def loaded_benches(results: Path) -> List[str]:
    """Benches whose results were measured with a load average above the machine's core count."""
    from bench.common import load_results, machine_cores

    out = []
    for name in SECTIONS:
        m = (load_results(name, results) or {}).get("machine", {})
        if m.get("load_average") and m["load_average"][0] > machine_cores(m):  # machine-wide load
            out.append(name)
    return out


def update_docs(doc: Path = DOC, results: Path = RESULTS) -> bool:
    """Rewrite ``doc`` from the results; True if it changed."""
    from distill.core.io import write_text

    new = benchmarks_doc(results)
    if doc.exists() and doc.read_text(encoding="utf-8") == new:
        return False
    write_text(doc, new)
    return True


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every bench in --quick mode")
    parser.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(BENCHES)}")
    parser.add_argument("--skip", default="", help="comma-separated benches to leave out")
    parser.add_argument("--docs", action="store_true",
                        help="only regenerate docs/benchmarks.md from bench/results/")
    args = parser.parse_args(argv)
    if args.docs:
        print("docs/benchmarks.md " + ("updated" if update_docs() else "already up to date"))
        return 0
    names = [n.strip() for n in (args.only.split(",") if args.only else BENCHES) if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        parser.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    skip = {n.strip() for n in args.skip.split(",") if n.strip()}
    results = RESULTS / "quick" if args.quick else RESULTS
    done = [run_bench(n, args.quick, results) for n in names if n not in skip]
    if not args.quick:
        print("docs/benchmarks.md " + ("updated" if update_docs() else "unchanged"))
    print("== summaries")
    for d in done:
        print(f"  [{d['seconds']:.0f} s] {d['summary']}")
    return 0 if all(d["code"] == 0 for d in done) else 1


if __name__ == "__main__":
    raise SystemExit(main())
