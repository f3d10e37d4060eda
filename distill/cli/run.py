"""`distill run`: the command line of ``distill.pipeline.runner``."""
from typing import List, Optional

from distill.pipeline import runner as library
from distill.core.errors import RecipeError
from distill.pipeline.tasks import run  # sentence and token recipes
from distill.train import distributed

DESCRIPTION = library.__doc__


def add_arguments(parser) -> None:
    parser.add_argument("recipe", help="recipe YAML file, e.g. recipes/smoke.yaml")
    parser.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a recipe setting, e.g. --set students[0].train.epochs=3")
    parser.add_argument("--force", action="append", default=[], metavar="STAGE",
                        help="re-run STAGE (fetch, teacher, augment, soft_labels, baseline, distill, "
                             "export, package, report, a stage folder, or all) and what follows it")
    parser.add_argument("--seeds", help="comma-separated student seeds, e.g. 0,1,2 (overrides the recipe)")
    parser.add_argument("--nproc", type=int, help="data-parallel processes per machine (one per GPU; "
                        "overrides the recipe's runtime.nproc; docs/distributed.md)")
    parser.add_argument("--nnodes", type=int, help="machines in a multi-machine run (with --master)")
    parser.add_argument("--master", metavar="HOST:PORT", help="the first machine's address when --nnodes > 1")


def main(args) -> int:
    seeds = _parse_seeds(args.seeds) if args.seeds else None
    report = run(args.recipe, out=args.out, overrides=args.overrides, force=args.force, seeds=seeds,
                 nproc=args.nproc, nnodes=args.nnodes, master=args.master)
    if not distributed.world().distributed:  # the launching process prints it, once
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


def _pct(v) -> str:
    return "–" if v is None else f"{100 * v:.2f}%"


def _ms(v) -> str:
    return "" if v is None else f"{v:.2f} ms"


def _best_export(student: dict) -> Optional[dict]:
    """The export the package would ship for this student (``distill.export.package.choose_best``)."""
    from distill.export.package import PACKAGE_FORMATS, fastest_then_smallest

    ok = [e for e in student.get("exports", []) if e.get("accepted") and e["format"] in PACKAGE_FORMATS
          and e.get("latency_ms_b1") is not None]
    return fastest_then_smallest(ok, latency=lambda e: e["latency_ms_b1"],
                                 size=lambda e: e["size_bytes"]) if ok else None


def summary_table(report: dict) -> str:
    """The few lines printed at the end of a run: accuracy (token tasks: entity F1) per model,
    package path."""
    t = report["teacher"]
    key = "f1" if report.get("task") == "token" else "accuracy"
    name = "F1" if key == "f1" else "acc"

    def acc(block, split):
        return _pct(((block or {}).get(split) or {}).get(key))

    rows = [("model", f"dev {name}", f"test {name}", "latency b1", "size")]
    rows.append((f"teacher {t['name']}", acc(t, "dev"), acc(t, "test"),
                 _ms(t.get("latency_ms_b1")), ""))
    for s in report["students"]:
        if s.get("baseline"):
            rows.append((f"{s['name']} plain", acc(s["baseline"], "dev"), acc(s["baseline"], "test"),
                         "", ""))
        best = _best_export(s)
        rows.append((f"{s['name']} distilled", acc(s["distilled"], "dev"),
                     acc(s["distilled"], "test"), "", ""))
        if best:
            rows.append((f"{s['name']} {best['format']}", acc(best, "dev"), acc(best, "test"),
                         _ms(best.get("latency_ms_b1")), f"{best['size_bytes'] / 2**20:.2f} MB"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.append(f"package: {report.get('package') or 'none'} (chosen by dev "
                 f"{'entity F1' if key == 'f1' else 'accuracy'}; test only reported)")
    return "\n".join(lines)
