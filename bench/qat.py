"""Paddle INT8 by quantization-aware training against PTQ and weight-only, on movies_en.

    python -m bench.qat --teacher RUN/teacher/teacher            # fine-tuned MiniLM-L6 + tiny
    python -m bench.qat --teacher DIR --tiny STUDENT_DIR --steps 300 --dev-rows 500
    python -m bench.qat --quick --teacher DIR                    # a few steps, 100 rows
    python -m bench.qat --teacher DIR --skip-tiny --name qat_minilm   # one model per file

Models: the fine-tuned MiniLM-L6 teacher directory given (``teacher.json``; e.g. a recipe run's
``teacher/teacher``) and the movies_en tiny student: ``--tiny DIR`` (a saved student), else the
recipe's 3-layer tiny initialised from that teacher (every second layer) and trained here for
``--tiny-steps`` steps on the gold training labels (``hard_ce``; no trained movies_en tiny exists
on the machine this was written on, so the tiny is not the distilled one). Each model goes
through ``export_model`` with ``formats=(paddle, paddle-int8)`` and ``qat`` on: FP32 Paddle
Inference (oneDNN), then PTQ, QAT and weight-only INT8, each measured in the same process (dev
and test accuracy on the first ``--dev-rows`` / ``--test-rows`` rows, batch-1 p50 and batch-32
throughput on ``--threads`` threads), the guard's choice on dev, and which ops Paddle
Inference's optimized program runs in INT8. Writes bench/results/qat.md and .json.
"""
import dataclasses
import os
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from bench.common import base_parser, machine, machine_line, md_table, results_dir, write_results

MAX_LEN = 64  # the recipes' teacher.max_len


def train_tiny(teacher, train, labels, steps: int, seed: int = 0):
    """The recipe's 3-layer tiny from ``teacher``, trained ``steps`` steps on gold labels."""
    from distill.data.batching import BatchPlan, encode_examples
    from distill.train.losses import build_loss, parse_loss_spec
    from distill.train.trainer import Trainer, TrainConfig
    from students.tiny import TinyStudent, init_from_teacher, tiny_config_for

    tiny = TinyStudent(tiny_config_for(teacher.config, {"num_layers": 3}),
                       vocab_size=teacher.config.vocab_size, num_labels=len(labels),
                       pad_id=teacher.tokenizer.pad_id)
    init_from_teacher(tiny, teacher.model)
    data = encode_examples(teacher.tokenizer, train, max_len=MAX_LEN, labels=labels)
    config = TrainConfig(epochs=1, batch_size=32, lr=1e-4, warmup_ratio=0.1, max_steps=steps,
                         seed=seed, device="cpu", progress=False)
    with tempfile.TemporaryDirectory(prefix="bench-qat-tiny-") as tmp:
        Trainer(tiny, build_loss(parse_loss_spec("hard_ce:1")), config, tmp).fit(
            BatchPlan(data, 32, shuffle=True, seed=seed), None)
    tiny.eval()
    return tiny


def measure_model(loaded, dev, test, train, args) -> Dict[str, object]:
    from distill.export.exporter import ExportConfig, export_model
    from distill.export.measure import MeasureSettings

    qat = {"steps": args.steps, "eval_every": max(1, args.steps // 2), "lr": args.lr,
           "batch_size": 32, "loss": args.loss, "max_rows": args.qat_rows}
    config = ExportConfig(formats=("paddle", "paddle-int8"), max_len=MAX_LEN,
                          threads=args.threads, calib_size=args.calib_rows, qat=qat,
                          measure=MeasureSettings(warmup_runs=5, latency_runs=args.latency_runs,
                                                  latency_sentences=30,
                                                  throughput_batches=args.b32_batches))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-qat-") as tmp:
        result = export_model(loaded, out_dir=Path(tmp) / "x", eval_examples=dev,
                              test_examples=test, calib_examples=train, config=config)
    fp32 = result.report("paddle")
    int8 = result.report("paddle-int8")
    row = {"reference": result.reference, "seconds": round(time.perf_counter() - start),
           "fp32": _numbers(dataclasses.asdict(fp32)), "chosen": int8.details["chosen"],
           "accepted": int8.accepted, "reason": int8.reason,
           "candidates": {c["mode"]: _numbers(c) for c in int8.details["candidates"]},
           "load_average_after": [round(x, 2) for x in os.getloadavg()]}
    for c in int8.details["candidates"]:  # the QAT run's own numbers (steps, time, dev)
        if c["mode"] == "qat" and c.get("qat"):
            row["qat"] = c["qat"]
    return row


def _numbers(r: Dict[str, object]) -> Dict[str, object]:
    keep = ("accepted", "reason", "dev", "test", "parity", "latency_ms_b1", "throughput_b32",
            "size_bytes", "int8_kernels")
    return {k: r.get(k) for k in keep}


def bench(args) -> Dict[str, object]:
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch
    from distill.export.exporter import LoadedModel, load_model_dir
    from teachers.checkpoint import load_teacher

    info: Dict[str, object] = {"machine": machine(), "args": {k: v for k, v in vars(args).items()
                                                              if k not in ("teacher", "tiny",
                                                                           "out", "name")}}
    print(machine_line(info["machine"]), flush=True)
    data = Path(fetch("movies_en"))
    train = read_examples(data / "train.tsv")
    dev = read_examples(data / "dev.tsv")[: args.dev_rows]
    test = read_examples(data / "test.tsv")[: args.test_rows]
    teacher = load_teacher(args.teacher)
    labels = list(teacher.labels)
    models = {}
    if args.skip_tiny:
        pass
    elif args.tiny:
        models["tiny"] = load_model_dir(args.tiny)
        info["tiny_source"] = "saved student"
    else:
        start = time.perf_counter()
        tiny = train_tiny(teacher, train, labels, args.tiny_steps)
        info["tiny_source"] = (f"3 of the teacher's layers, trained {args.tiny_steps} steps of 32 "
                               f"on gold labels ({time.perf_counter() - start:.0f} s)")
        models["tiny"] = LoadedModel(tiny, teacher.tokenizer, labels, MAX_LEN, kind="tiny",
                                     name="movies_en-tiny")
    if not args.skip_teacher:
        models["minilm-l6"] = LoadedModel(teacher.model, teacher.tokenizer, labels, MAX_LEN,
                                          kind="teacher", name="minilm-l6")
    info["models"] = {}
    for name, loaded in models.items():
        print(f"{name}: exporting", flush=True)
        info["models"][name] = measure_model(loaded, dev, test, train, args)
        print(f"{name}: {summary_line(name, info['models'][name])}", flush=True)
        info["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        info["complete"] = len(info["models"]) == len(models)
        write_results(args.name, info, markdown(info), results_dir(args))  # after each model
    return info


def _speed(c: Dict[str, object], fp32: Dict[str, object]) -> Optional[tuple]:
    if not c.get("throughput_b32") or not c["latency_ms_b1"]["p50"]:
        return None
    return (fp32["latency_ms_b1"]["p50"] / c["latency_ms_b1"]["p50"],
            c["throughput_b32"] / fp32["throughput_b32"])


def summary_line(name: str, row: Dict[str, object]) -> str:
    fp32 = row["fp32"]
    parts = [f"FP32 dev {100 * fp32['dev']['accuracy']:.2f}"]
    for mode, c in row["candidates"].items():
        if c["dev"] is None:
            parts.append(f"{mode} failed")
            continue
        speed = _speed(c, fp32)
        parts.append(f"{mode} dev {100 * c['dev']['accuracy']:.2f}"
                     + (f" b1 x{speed[0]:.2f} b32 x{speed[1]:.2f}" if speed else ""))
    return "; ".join(parts) + f"; chosen {row['chosen']}"


def markdown(info: Dict[str, object]) -> str:
    a = info["args"]
    lines = ["### Paddle INT8: QAT vs PTQ vs weight-only (movies_en)", "",
             f"Measured on {machine_line(info['machine'])}; load average at the end "
             f"{info['machine']['load_average_end'][0]}. Dev: first {a['dev_rows']} dev rows "
             f"(the guard and the choice read only these), test: first {a['test_rows']} test "
             f"rows; max length {MAX_LEN}; {a['threads']} thread(s); QAT: {a['steps']} steps of "
             f"32 on up to {a['qat_rows']} training rows, lr {a['lr']}, loss `{a['loss']}` against "
             f"the FP32 model's logits; PTQ: {a['calib_rows']} calibration rows (hist). "
             f"Tiny: {info.get('tiny_source')}. Speed-ups are against FP32 Paddle Inference "
             f"(oneDNN) measured in the same run; the CPU has no VNNI."
             + ("" if info.get("complete", True) else " Partial: not every model has run."), ""]
    rows = []
    for name, row in info["models"].items():
        fp32 = row["fp32"]
        rows.append([name, "fp32", f"{100 * fp32['dev']['accuracy']:.2f}",
                     f"{100 * fp32['test']['accuracy']:.2f}", "", "",
                     f"{fp32['latency_ms_b1']['p50']:.2f}", f"{fp32['throughput_b32']:.0f}", "",
                     "", f"{fp32['size_bytes'] / 1e6:.1f}", "", ""])
        for mode, c in row["candidates"].items():
            if c["dev"] is None:
                rows.append([name, mode, "failed", "", "", "", "", "", "", "", "", "", c["reason"]])
                continue
            speed = _speed(c, fp32) or (0.0, 0.0)
            kernels = c.get("int8_kernels") or {}
            int8_ops = sum((kernels.get("int8_ops") or {}).values())
            rows.append([name, mode + (" (chosen)" if mode == row["chosen"] else ""),
                         f"{100 * c['dev']['accuracy']:.2f}", f"{100 * c['test']['accuracy']:.2f}",
                         f"{100 * (c['test']['accuracy'] - fp32['test']['accuracy']):+.2f}",
                         f"{100 * c['parity']['argmax_agreement']:.1f}",
                         f"{c['latency_ms_b1']['p50']:.2f}", f"{c['throughput_b32']:.0f}",
                         f"{speed[0]:.2f}", f"{speed[1]:.2f}", f"{c['size_bytes'] / 1e6:.1f}",
                         str(int8_ops) if kernels else "0 (FP32 kernels)",
                         "accepted" if c["accepted"] else c["reason"]])
    lines.append(md_table(["model", "variant", "dev acc %", "test acc %", "test Δ pts",
                           "agree w/ FP32 %", "b1 p50 ms", "b32 rows/s", "b1 speed-up",
                           "b32 speed-up", "MB", "INT8 ops", "guard (dev)"], rows))
    for name, row in info["models"].items():
        q = row.get("qat")
        if q:
            lines += ["", f"{name} QAT: {q['steps_run']} steps in {q['train_time_s']:.0f} s, best "
                          f"step {q['best_step']} on dev; fake-quant dev accuracy "
                          f"{100 * q['fake_quant_dev_after']['accuracy']:.2f} % (FP32 "
                          f"{100 * q['fp32_dev']['accuracy']:.2f} %)."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="fine-tuned MiniLM-L6 teacher directory")
    parser.add_argument("--tiny", default=None, help="saved movies_en tiny student directory")
    parser.add_argument("--tiny-steps", type=int, default=0, help="steps to train the tiny")
    parser.add_argument("--skip-teacher", action="store_true", help="only the tiny student")
    parser.add_argument("--skip-tiny", action="store_true", help="only the teacher")
    parser.add_argument("--name", default="qat", help="results file name (NAME.md, NAME.json)")
    parser.add_argument("--steps", type=int, default=0, help="QAT steps")
    parser.add_argument("--qat-rows", type=int, default=0, help="training rows QAT sees")
    parser.add_argument("--lr", type=float, default=2e-5, help="QAT learning rate")
    parser.add_argument("--loss", default="logit_mse:1", help="QAT loss against FP32 logits")
    parser.add_argument("--calib-rows", type=int, default=100, help="PTQ calibration rows")
    parser.add_argument("--dev-rows", type=int, default=0)
    parser.add_argument("--test-rows", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--latency-runs", type=int, default=40)
    parser.add_argument("--b32-batches", type=int, default=5)
    args = parser.parse_args(argv)
    defaults = {"tiny_steps": (10, 150), "steps": (4, 100), "qat_rows": (200, 3200),
                "dev_rows": (64, 400), "test_rows": (64, 400)}
    for key, (quick, full) in defaults.items():
        if not getattr(args, key):
            setattr(args, key, quick if args.quick else full)
    info = bench(args)
    print(f"wrote {results_dir(args) / (args.name + '.md')}")
    for name, row in info["models"].items():
        print(f"{name}: {summary_line(name, row)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
