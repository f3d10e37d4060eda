"""Speed of the teacher and every student kind in every runtime, measured side by side.

    python -m bench.speed            # MiniLM-L6 teacher + bow/cnn/lstm/tiny at recipe sizes
    python -m bench.speed --quick    # fewer timed runs and calibration rows (under two minutes)

For each model: batch-1 latency (p50/p95 over real movies_en test sentences, each at its own
length) and batch-32 throughput in Paddle dygraph, Paddle Inference FP32 (oneDNN), Paddle
Inference INT8 (PaddleSlim PTQ, oneDNN INT8), ONNX Runtime FP32 and ONNX Runtime INT8 (dynamic),
all in one process with the thread count fixed. The exports and the measurements are
``distill.export.exporter.export_model`` (the same code as ``distill export``) with the accuracy guard
off: students have random weights (speed does not depend on them) and the teacher an untrained
head, so only the parity with FP32 is shown. Model sizes come from
``recipes/movies_en/*_from_minilm.yaml``. Speed-ups are ratios against the teacher in the same
runtime and against the teacher in dygraph. Writes bench/results/speed.md and .json.
"""
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bench.common import (ROOT, base_parser, cores, machine, machine_line, md_table,
                          results_dir, write_results)
from distill.train.trainer import count_parameters

RUNTIMES = ("dygraph", "paddle", "paddle-int8", "onnx", "onnx-int8")
KINDS = ("bow", "cnn", "lstm", "tiny")  # the recipe-sized students measured
RECIPES = ROOT / "recipes" / "movies_en"
MAX_LEN = 128  # no truncation: movies_en's longest sentence has 72 WordPiece tokens


def student_config(kind: str) -> Dict:
    """The student's ``config`` in ``recipes/movies_en/<kind>_from_minilm.yaml`` ({} if absent)."""
    import yaml

    path = RECIPES / f"{kind}_from_minilm.yaml"
    if not path.exists():
        return {}
    recipe = yaml.safe_load(path.read_text(encoding="utf-8"))
    for spec in recipe.get("students", []):
        if spec.get("kind") == kind:
            return dict(spec.get("config") or {})
    return {}


def build_models(teacher, train_texts: List[str]):
    """LoadedModel for the teacher and a random-weight student of each kind (recipe sizes)."""
    import paddle

    from distill.export.exporter import LoadedModel
    from students.registry import build_student
    from students.tiny import TinyStudent, init_from_teacher, tiny_config_for
    from distill.text.vocab import WordVocab

    labels = list(teacher.labels)
    models = {"teacher": (LoadedModel(teacher.model, teacher.tokenizer, labels, MAX_LEN,
                                      kind="teacher", name=teacher.name), {})}
    vocab = WordVocab.build(train_texts, language="en")
    for kind in KINDS:
        config = student_config(kind)
        paddle.seed(0)
        if kind == "tiny":
            typed = tiny_config_for(teacher.config, config)
            model = TinyStudent(typed, vocab_size=teacher.config.vocab_size,
                                num_labels=len(labels), pad_id=teacher.tokenizer.pad_id)
            if typed.init == "teacher":
                init_from_teacher(model, teacher.model)
            encoder = teacher.tokenizer
            config = typed.to_dict()
        else:
            model = build_student(kind, config, vocab.vocab_size, len(labels), vocab.pad_id)
            encoder = vocab
        model.eval()
        models[kind] = (LoadedModel(model, encoder, labels, MAX_LEN, kind=kind, name=kind),
                        config)
    return models


def dygraph_runner(model):
    import paddle

    from distill.train.trainer import eval_mode

    def run(feed):
        with eval_mode(model):
            return model(**{k: paddle.to_tensor(v) for k, v in feed.items()})["logits"].numpy()

    return run


def measure_model(loaded, eval_examples, calib_examples, out_dir: Path, settings,
                  threads: int, calib_size: int) -> Dict[str, Dict]:
    """Every runtime's latency/throughput/size/parity for one model."""
    import paddle

    from distill.export.exporter import ExportConfig, encode_batches, export_model
    from distill.export.measure import _singles, latency_b1, throughput

    paddle.base.core.set_num_threads(threads)
    batches = encode_batches(loaded.encoder, eval_examples, MAX_LEN, 32)
    run = dygraph_runner(loaded.model)
    singles = _singles(batches, settings.latency_sentences)
    out = {"dygraph": {"latency_ms_b1": latency_b1(run, singles, settings),
                       "throughput_b32": throughput(run, batches, settings),
                       "size_bytes": 4 * count_parameters(loaded.model),
                       "accepted": True, "parity": {"max_abs_diff": 0.0,
                                                    "argmax_agreement": 1.0}}}
    config = ExportConfig(formats=tuple(r for r in RUNTIMES if r != "dygraph"), max_len=MAX_LEN,
                          calib_size=calib_size, max_accuracy_drop=0.99, max_disagreement=None,
                          threads=threads, auto_exclude=False, paddle_int8_fallback=False,
                          measure=settings)
    result = export_model(loaded, out_dir=out_dir, eval_examples=eval_examples,
                          calib_examples=calib_examples, config=config)
    for report in result.reports:
        out[report.format] = {"latency_ms_b1": report.latency_ms_b1,
                              "throughput_b32": report.throughput_b32,
                              "size_bytes": report.size_bytes, "accepted": report.accepted,
                              "reason": report.reason, "parity": report.parity}
    return out


def bench(quick: bool) -> Dict[str, object]:
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch
    from distill.export.measure import MeasureSettings
    from teachers.checkpoint import load_teacher

    threads = cores()
    settings = MeasureSettings(warmup_runs=3, latency_runs=10, latency_sentences=10,
                               throughput_batches=1) if quick else MeasureSettings(
        warmup_runs=10, latency_runs=200, latency_sentences=100, throughput_batches=20)
    eval_rows, calib_size = (32, 8) if quick else (640, 200)
    info = {"machine": machine(), "quick": quick, "threads": threads, "max_len": MAX_LEN,
            "eval_sentences": eval_rows, "calib_size": calib_size,
            "settings": {"warmup_runs": settings.warmup_runs,
                         "latency_runs": settings.latency_runs,
                         "throughput_batches": settings.throughput_batches}}
    print(machine_line(info["machine"]), flush=True)
    data = fetch("movies_en")
    train = read_examples(data / "train.tsv")
    test = read_examples(data / "test.tsv")[:eval_rows]
    teacher = load_teacher("minilm-l6", num_labels=2)
    teacher.labels = ["negative", "positive"]
    models = build_models(teacher, [ex.text_a for ex in train])
    rows = {}
    with tempfile.TemporaryDirectory(prefix="bench-speed-") as tmp:
        for name, (loaded, config) in models.items():
            start = time.perf_counter()
            print(f"{name}: exporting and measuring ...", flush=True)
            rows[name] = {"config": config, "parameters": count_parameters(loaded.model),
                          "runtimes": measure_model(loaded, test, train, Path(tmp) / name,
                                                    settings, threads, calib_size)}
            for rt, m in rows[name]["runtimes"].items():
                print(f"  {rt:<12} b1 p50 {m['latency_ms_b1']['p50']:8.2f} ms   b32 "
                      f"{m['throughput_b32']:9.1f} sent/s   {m['size_bytes'] / 1e6:7.2f} MB   "
                      f"argmax vs FP32 {100 * m['parity']['argmax_agreement']:.1f}%", flush=True)
            rows[name]["seconds"] = round(time.perf_counter() - start, 1)
    info["models"] = rows
    info["speedups"] = speedups(rows)
    return info


def speedups(rows) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Per student and runtime: teacher latency / student latency (same runtime and vs the
    teacher in dygraph), and the same for throughput."""
    teacher = rows["teacher"]["runtimes"]
    out = {}
    for name, row in rows.items():
        if name == "teacher":
            continue
        out[name] = {}
        for rt, m in row["runtimes"].items():
            t = teacher.get(rt)
            out[name][rt] = {
                "latency_same_runtime": _ratio(t and t["latency_ms_b1"]["p50"],
                                               m["latency_ms_b1"]["p50"]),
                "latency_vs_teacher_dygraph": _ratio(teacher["dygraph"]["latency_ms_b1"]["p50"],
                                                     m["latency_ms_b1"]["p50"]),
                "throughput_same_runtime": _ratio(m["throughput_b32"],
                                                  t and t["throughput_b32"]),
                "throughput_vs_teacher_dygraph": _ratio(m["throughput_b32"],
                                                        teacher["dygraph"]["throughput_b32"])}
    return out


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 1) if a and b else None


def markdown(info) -> str:
    rows, sp = info["models"], info["speedups"]
    head = ["model", "params"] + [f"{rt} b1 ms" for rt in RUNTIMES]
    lat = [[name, f"{r['parameters'] / 1e6:.2f}M"]
           + [r["runtimes"].get(rt, {}).get("latency_ms_b1", {}).get("p50", "") for rt in RUNTIMES]
           for name, r in rows.items()]
    thr = [[name] + [r["runtimes"].get(rt, {}).get("throughput_b32", "") for rt in RUNTIMES]
           for name, r in rows.items()]
    size = [[name] + [f"{r['runtimes'][rt]['size_bytes'] / 1e6:.2f}" if rt in r["runtimes"]
                      else "" for rt in RUNTIMES] for name, r in rows.items()]
    agree = [[name] + [f"{100 * r['runtimes'][rt]['parity']['argmax_agreement']:.1f}%"
                       if rt in r["runtimes"] else "" for rt in RUNTIMES]
             for name, r in rows.items()]
    ratio = [[name] + [f"{sp[name][rt]['latency_same_runtime']}x / "
                       f"{sp[name][rt]['throughput_same_runtime']}x"
                       if rt in sp[name] else "" for rt in RUNTIMES] for name in sp]
    best = [[name, *best_row(rows, name)] for name in rows]
    return "\n".join([
        "### Speed (movies_en test sentences, MiniLM-L6 teacher, recipe-sized students)", "",
        machine_line(info["machine"]) + f"; {info['threads']} threads everywhere.", "",
        f"Batch-1 latency p50 (ms; {info['settings']['latency_runs']} runs over real sentences "
        f"at their own length):", "", md_table(head, lat), "",
        "Batch-32 throughput (sentences/s):", "",
        md_table(["model"] + list(RUNTIMES), thr), "",
        "Speed-up of each student over the teacher in the same runtime (latency / throughput):",
        "", md_table(["student"] + list(RUNTIMES), ratio), "",
        "Fastest runtime per model, and its speed-up over the teacher in dygraph:", "",
        md_table(["model", "b1 runtime", "b1 ms", "b1 vs teacher dygraph", "b32 runtime",
                  "b32 sent/s", "b32 vs teacher dygraph"], best), "",
        "Size (MB; dygraph = FP32 parameter bytes; onnx = the pre-processed FP32 file):", "",
        md_table(["model"] + list(RUNTIMES), size), "",
        "Argmax agreement with FP32 dygraph on the eval sentences (random-weight students "
        "have near-tied logits, so INT8 flips more of them than a trained model would):", "",
        md_table(["model"] + list(RUNTIMES), agree)])


def best_row(rows, name):
    runtimes = rows[name]["runtimes"]
    teacher = rows["teacher"]["runtimes"]["dygraph"]
    b1 = min(runtimes, key=lambda rt: runtimes[rt]["latency_ms_b1"]["p50"] or float("inf"))
    b32 = max(runtimes, key=lambda rt: runtimes[rt]["throughput_b32"])
    return [b1, runtimes[b1]["latency_ms_b1"]["p50"],
            f"{_ratio(teacher['latency_ms_b1']['p50'], runtimes[b1]['latency_ms_b1']['p50'])}x",
            b32, runtimes[b32]["throughput_b32"],
            f"{_ratio(runtimes[b32]['throughput_b32'], teacher['throughput_b32'])}x"]


def summary(info) -> str:
    rows = info["models"]
    parts = []
    for name in rows:
        if name == "teacher":
            continue
        b1, ms, lat_x, b32, rate, thr_x = best_row(rows, name)
        parts.append(f"{name} {lat_x} b1 ({b1}) / {thr_x} b32 ({b32})")
    t = rows["teacher"]["runtimes"]
    return (f"speed vs teacher dygraph: " + "; ".join(parts) + f"; teacher onnx "
            f"{_ratio(t['dygraph']['latency_ms_b1']['p50'], t['onnx']['latency_ms_b1']['p50'])}x "
            f"b1, onnx-int8 "
            f"{_ratio(t['onnx-int8']['throughput_b32'], t['dygraph']['throughput_b32'])}x b32")


def main(argv=None) -> int:
    args = base_parser(__doc__.split("\n")[0]).parse_args(argv)
    info = bench(args.quick)
    path = write_results("speed", info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
