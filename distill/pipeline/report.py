"""The run report: ``report.json``, ``report.md`` and ``plots/*.png`` from one report dict.

The runner assembles the dict (see ``distill/runner.py``); this module only aggregates seeds
and renders. Accuracies are fractions in [0, 1]. With several seeds every metric holds the mean
and a ``NAME_std`` sibling holds the (population) standard deviation over the seeds.

Plots (matplotlib, Agg backend, no display needed), in the report's metric (``score_key``:
accuracy, or entity F1 for token tasks, whose files start ``f1_`` instead of ``accuracy_``):

* ``plots/accuracy_vs_latency.png`` — test accuracy against batch-1 latency (log axis) for the
  teacher and every exported artifact; plain students sit at their FP32 latency.
* ``plots/accuracy_vs_size.png`` — test accuracy against file size (log axis).
* ``plots/curves_<student>.png`` — dev score and training loss per epoch, plain vs distilled.
"""
import math
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from distill.core.io import atomic_path, write_json, write_text

SCORE_WORDS = {"accuracy": "accuracy", "f1": "entity F1"}  # report metric -> axis words


def score_key(report: dict) -> str:
    """The report's headline metric: ``f1`` (entity F1) for token tasks, else ``accuracy``."""
    return "f1" if report.get("task") == "token" else "accuracy"


# -------------------------------------------------------------------------------- numbers
def mean_std(values: Sequence[Optional[float]]):
    """(mean, population std) of the non-None values; (None, None) if there are none."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))


def merge_seeds(per_seed: List[dict]) -> dict:
    """Average nested metric dicts over seeds; add ``KEY_std`` beside each number when >1 seed."""
    if not per_seed:
        return {}
    if len(per_seed) == 1:
        return per_seed[0]
    out = {}
    for key, first in per_seed[0].items():
        values = [d.get(key) for d in per_seed]
        if isinstance(first, dict):
            out[key] = merge_seeds([v for v in values if isinstance(v, dict)])
        elif isinstance(first, (int, float)) and not isinstance(first, bool):
            out[key], out[f"{key}_std"] = mean_std(values)
        else:
            out[key] = first
    return out


def gap_recovered(teacher: Optional[float], plain: Optional[float], distilled: Optional[float]):
    """Share of the teacher-minus-plain gap that distillation recovered: (d - p) / (t - p)."""
    if None in (teacher, plain, distilled) or abs(teacher - plain) < 1e-12:
        return None
    return (distilled - plain) / (teacher - plain)


def speedup(teacher_value: Optional[float], student_value: Optional[float], higher_is_faster: bool):
    if not teacher_value or not student_value:
        return None
    return student_value / teacher_value if higher_is_faster else teacher_value / student_value


# ------------------------------------------------------------------------------- rendering
def repeatable_metrics(report: dict) -> dict:
    """Everything in a report that must repeat exactly (not timings, sizes or paths)."""
    return {
        "dataset": report["dataset"],
        "teacher": report["teacher"]["test"],
        "students": [{"name": s["name"], "baseline": s["baseline"], "distilled": s["distilled"],
                      "gap": s["gap_recovered"],
                      "exports": [(e["format"], e["test"]["accuracy"], e["accepted"])
                                  for e in s["exports"]]} for s in report["students"]],
    }


def _pct(v, std=None) -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _num(v, fmt="{:.2f}") -> str:
    return "–" if v is None else fmt.format(v)


def _size(n) -> str:
    if n is None:
        return "–"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0


def _params(n) -> str:
    if n is None:
        return "–"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def render_markdown(report: dict) -> str:
    """A readable summary: the models table, the exports table, the package and stage times."""
    ds, t = report["dataset"], report["teacher"]
    sizes = ds["sizes"]
    lines = [f"# Report: {report['recipe'].get('name', '')}", ""]
    lines.append(f"Data set **{ds['name']}**, {ds['num_labels']} labels; train {sizes['train']}, "
                 f"dev {sizes['dev']}, test {sizes['test']}, augmented {sizes['augmented']}. "
                 f"Accuracies in percent on the test set"
                 + (f", mean ± std over seeds {report['recipe'].get('seeds')}" if len(report['recipe'].get('seeds', [0])) > 1 else "")
                 + ".")
    ens = t.get("ensemble")
    if ens:
        lines += ["", f"Teacher: an ensemble ({ens['rule']} averaged, weights chosen on "
                      f"{ens['chosen_on']}) of " + ", ".join(
                          f"{m['name']} (weight {m['weight']:.2f}, dev "
                          f"{_pct((m.get('dev') or {}).get('accuracy'))}, test "
                          f"{_pct((m.get('test') or {}).get('accuracy'))})" for m in ens["members"])
                  + "; the teacher's accuracy below is the ensemble's, its exports and speed the "
                    "first member's."]
    if report.get("selection"):
        lines += ["", "Selection on dev only: " + ", ".join(
            f"{k.replace('_', ' ')} by {v}" for k, v in report["selection"].items() if k != "test")
            + "; the test split is only reported, never used for a choice."]
    lines += ["", "| model | kind | params | accuracy | macro-F1 | gap recovered | "
                  "latency b1 (ms) | throughput b32 (/s) | speed-up b1 | speed-up b32 |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    tt = t.get("test") or {}
    lines.append(f"| teacher {t['name']} | ernie | {_params(t.get('params'))} | {_pct(tt.get('accuracy'))} | "
                 f"{_pct(tt.get('macro_f1'))} | | {_num(t.get('latency_ms_b1'))} | "
                 f"{_num(t.get('throughput_b32'), '{:.0f}')} | 1.0× | 1.0× |")
    for s in report["students"]:
        for role in ("baseline", "distilled"):
            m = (s.get(role) or {}).get("test")
            if not m:
                continue
            gap = _pct(s.get("gap_recovered"), s.get("gap_recovered_std")) + " %" \
                if role == "distilled" and s.get("gap_recovered") is not None else ""
            fast = role == "distilled"
            lines.append(
                f"| {s['name']} ({'plain' if role == 'baseline' else 'distilled'}) | {s['kind']} | "
                f"{_params(s.get('params'))} | {_pct(m.get('accuracy'), m.get('accuracy_std'))} | "
                f"{_pct(m.get('macro_f1'), m.get('macro_f1_std'))} | {gap} | "
                f"{_num(s.get('latency_ms_b1')) if fast else ''} | "
                f"{_num(s.get('throughput_b32'), '{:.0f}') if fast else ''} | "
                f"{_num(s.get('speedup_b1'), '{:.1f}×') if fast else ''} | "
                f"{_num(s.get('speedup_b32'), '{:.1f}×') if fast else ''} |")
    lines += ["", "Speed-ups compare the student's fastest accepted export with the teacher's "
                  "FP32 export, in the same runtime and thread count."]
    lab = t.get("labelling")
    if lab:
        lines += ["", f"Soft labels: {lab['rows']} rows by the {lab['engine']} engine, "
                      f"{lab['precision']}, AMP {'on' if lab['amp'] else 'off'}, "
                      f"{lab['processes']} process(es)"
                      + (f", {lab['rows_per_s']:.1f} rows/s." if lab.get("rows_per_s") else ".")]
    if any(s.get("exports") for s in report["students"]) or t.get("exports"):
        lines += ["", "## Exports", "",
                  "| model | format | size | dev acc (guard) | test acc | latency b1 (ms) | "
                  "throughput b32 (/s) | accepted | reason |",
                  "|---|---|---|---|---|---|---|---|---|"]
        rows = [("teacher", e) for e in t.get("exports", [])]
        rows += [(s["name"], e) for s in report["students"] for e in s.get("exports", [])]
        for name, e in rows:
            lines.append(f"| {name} | {e['format']} | {_size(e.get('size_bytes'))} | "
                         f"{_pct((e.get('dev') or {}).get('accuracy'))} | "
                         f"{_pct((e.get('test') or {}).get('accuracy'))} | {_num(e.get('latency_ms_b1'))} | "
                         f"{_num(e.get('throughput_b32'), '{:.0f}')} | {'yes' if e.get('accepted') else 'no'} | "
                         f"{e.get('reason') or ''} |")
    lines += ["", "## Package", "", f"`{report['package']}`" if report.get("package") else "none"]
    lines += plot_lines(report)
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---|"]
    for key, sec in report["stage_seconds"].items():
        lines.append(f"| {key} | {sec:.1f} |")
    return "\n".join(lines) + "\n"


def plot_lines(report: dict) -> List[str]:
    """The report's "Plots" section: each image of ``report["plots"]`` (none: no section)."""
    plots = report.get("plots") or []
    return ["", "## Plots", ""] + [f"![{name}](plots/{name})" for name in plots] if plots else []


# ----------------------------------------------------------------------------------- plots
def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


_MARKERS = {"paddle": "s", "paddle-int8": "D", "onnx": "o", "onnx-int8": "^"}


def _points(report: dict, x_key: str, metric: str):
    """(label, x, test score, kind) for the teacher, every export, and the plain students."""
    pts = []
    t = report["teacher"]
    t_acc = (t.get("test") or {}).get(metric)
    for e in t.get("exports", []):
        acc = (e.get("test") or {}).get(metric, t_acc)
        if e.get(x_key) and acc is not None:
            pts.append((f"teacher {e['format']}", e[x_key], acc, "teacher", e["format"], True))
    if not t.get("exports") and t.get(x_key) and t_acc is not None:
        pts.append(("teacher", t[x_key], t_acc, "teacher", "onnx", True))
    for s in report["students"]:
        fp32 = None
        for e in s.get("exports", []):
            acc = (e.get("test") or {}).get(metric)
            if e.get(x_key) and acc is not None:
                pts.append((f"{s['name']} {e['format']}", e[x_key], acc, s["name"], e["format"],
                            bool(e.get("accepted"))))
                if e["format"] in ("onnx", "paddle") and fp32 is None:
                    fp32 = e[x_key]
        plain = ((s.get("baseline") or {}).get("test") or {}).get(metric)
        if fp32 and plain is not None:
            pts.append((f"{s['name']} plain", fp32, plain, s["name"], "plain", True))
    return pts


def _scatter_plot(report: dict, metric: str, x_key: str, xlabel: str, title: str, path: Path,
                  scale=1.0) -> bool:
    pts = _points(report, x_key, metric)
    if not pts:
        return False
    plt, fig, ax = _figure()
    groups = list(dict.fromkeys(p[3] for p in pts))
    colors = {g: plt.cm.tab10(i % 10) for i, g in enumerate(groups)}
    for label, x, acc, group, fmt, accepted in pts:
        shown = f"{label}{'' if accepted else ' (rejected)'}"
        if fmt == "plain":
            ax.scatter([x * scale], [100 * acc], s=70, marker="x", color=colors[group],
                       linewidths=1.5, zorder=3, label=shown)
        else:
            ax.scatter([x * scale], [100 * acc], s=70, marker=_MARKERS.get(fmt, "o"),
                       edgecolors=colors[group], facecolors=colors[group] if accepted else "none",
                       linewidths=1.5, zorder=3, alpha=0.85, label=shown)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"test {SCORE_WORDS[metric]} (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    xs = [p[1] * scale for p in pts]
    ax.set_xlim(min(xs) / 2, max(xs) * 4)
    ys = [100 * p[2] for p in pts]
    pad = max(1.0, (max(ys) - min(ys)) * 0.15)
    ax.set_ylim(min(ys) - pad, max(ys) + pad)
    what = "latency" if x_key.startswith("latency") else "size"
    ax.text(0.01, 0.01, f"hollow: rejected by the {SCORE_WORDS[metric]} guard · plain students at "
                        f"their FP32 {what}",
            transform=ax.transAxes, fontsize=7, alpha=0.7)
    _save(plt, fig, path)
    return True


def plot_curves(name: str, curves: Dict[str, List[dict]], path: Path,
                metric: str = "accuracy") -> bool:
    """Dev score (``metric``) and train loss per epoch for each training run of a student."""
    if not any(curves.values()):
        return False
    words = SCORE_WORDS[metric]
    plt, fig, ax = _figure()
    ax2 = ax.twinx()
    for i, (role, records) in enumerate(curves.items()):
        color = plt.cm.tab10(i)
        rows = [r for r in records if r.get("dev") is not None]
        if rows:
            ax.plot([r["epoch"] for r in rows], [100 * r["dev"] for r in rows], "-o",
                    color=color, label=f"{role}: dev {words}")
        rows = [r for r in records if r.get("train_loss") is not None]
        if rows:
            ax2.plot([r["epoch"] for r in rows], [r["train_loss"] for r in rows], "--",
                     color=color, alpha=0.7, label=f"{role}: train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"dev {words} (%)")
    ax2.set_ylabel("train loss (dashed; each run's own loss)")
    ax.set_title(f"training curves: {name}")
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()
    handles2 = ax2.get_legend_handles_labels()
    ax.legend(handles[0] + handles2[0], handles[1] + handles2[1], fontsize=8, loc="best",
              framealpha=0.8)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(plt, fig, path)
    return True


def write_plots(report: dict, out_dir, curves: Optional[Dict[str, Dict[str, List[dict]]]] = None) -> List[str]:
    """Write ``plots/*.png`` into ``out_dir`` in the report's metric; return their file names.

    ``curves`` maps student name -> {"plain": records, "distilled": records}, where records are
    per-epoch dicts with ``epoch`` and optionally ``dev`` (the dev score) and ``train_loss``.
    """
    plots = Path(out_dir) / "plots"
    metric = score_key(report)
    words = SCORE_WORDS[metric]
    made = []
    for x_key, xlabel, what, stem, scale in (
            ("latency_ms_b1", "latency at batch 1 (ms, log scale)", "batch-1 latency", "latency", 1.0),
            ("size_bytes", "file size (MB, log scale)", "size", "size", 1 / 2 ** 20)):
        name = f"{metric}_vs_{stem}.png"
        if _scatter_plot(report, metric, x_key, xlabel, f"{words} vs. {what}", plots / name,
                         scale=scale):
            made.append(name)
    for name, runs in (curves or {}).items():
        if plot_curves(name, runs, plots / f"curves_{name}.png", metric):
            made.append(f"curves_{name}.png")
    return made


def write_report(report: dict, out_dir, curves: Optional[Dict[str, Dict[str, List[dict]]]] = None,
                 render: Optional[Callable[[dict], str]] = None) -> dict:
    """Write ``report.json``, ``report.md`` (``render``, default ``render_markdown``) and
    ``plots/*.png`` (``write_plots``) into ``out_dir``; return the dict with its ``plots``."""
    out = Path(out_dir)
    report = dict(report, plots=write_plots(report, out, curves))
    write_json(out / "report.json", report)
    write_text(out / "report.md", (render or render_markdown)(report))
    return report
