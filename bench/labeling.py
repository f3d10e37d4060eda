"""Soft-label throughput of the teacher, against this CPU's GEMM peak and a naive baseline.

    python -m bench.labeling            # MiniLM-L6 on movies_en train (~20 min on 2 cores)
    python -m bench.labeling --quick    # a few hundred sentences, under two minutes

Measured in one process, threads fixed (OMP_NUM_THREADS = cores unless set):

1. the FP32 GEMM peak: a 2048^2 matmul in Paddle (the reference), NumPy and ONNX Runtime;
2. the naive baseline: Paddle dygraph, batches of 32 in file order, every batch padded to the
   longest sentence of the file (timed on the first rows; every batch has the same shape);
3. the optimised path step by step: length bucketing, each engine of ``teachers.engines``
   (dygraph, Paddle Inference, ONNX Runtime FP32; ORT INT8 shown apart, opt-in), ORT threads,
   batch size, and ORT sessions of one thread each sharing every batch (``sessions``);
4. where the time goes in the best configuration (ONNX Runtime's per-operator profile);
5. the real thing end to end: ``teachers.soft_labels.soft_labels`` over the whole set
   (tokenisation, engine check, chunk files included).

Steps 1-3 are timed in interleaved rounds (every configuration and the GEMM peak once per
round, best pass kept), so a busy spell of a shared CPU does not favour one configuration.
Throughput is sentences/s; GFLOP/s counts the encoder's GEMM work from the config and the real
token counts (``bench.common.encoder_flops``; "executed" also counts padded positions).
Writes bench/results/labeling.md and .json. The last line printed is the summary.
"""
import json
from dataclasses import dataclass, field
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from bench.common import (base_parser, cores, encoder_flops, gemm_peak, machine, machine_line,
                          md_table, ort_gemm, results_dir, write_results)

TEACHER, DATA = "minilm-l6", "movies_en"
NAIVE_BATCH = 32
GEMM_OPS = ("MatMul", "Gemm", "FusedMatMul")


# ------------------------------------------------------------------------------ inputs

def load_texts(limit: Optional[int] = None, seed: int = 0):
    """movies_en train examples; ``limit``: a fixed random sample of that many (input order)."""
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch

    examples = read_examples(fetch(DATA) / "train.tsv", require_label=False)
    if limit and limit < len(examples):
        rows = np.sort(np.random.default_rng(seed).choice(len(examples), limit, replace=False))
        examples = [examples[i] for i in rows]
    return examples


def probe_head(teacher, examples) -> Dict[str, object]:
    """Replace the teacher's fresh (random) head by a logistic-regression probe fitted on its
    pooled vectors of ``examples``: the logits, and so the INT8 check, are then those of a real
    classifier. Speed does not change (same shapes)."""
    from sklearn.linear_model import LogisticRegression

    labels = sorted({ex.label for ex in examples})
    y = np.array([labels.index(ex.label) for ex in examples])
    x = teacher.embed([ex.text_a for ex in examples])  # (N, H) pooled, dygraph
    clf = LogisticRegression(max_iter=2000).fit(x, y)
    if len(labels) == 2:  # one sklearn score s -> logits (-s/2, s/2): same softmax
        weight = np.stack([-clf.coef_[0], clf.coef_[0]], axis=1) / 2  # (H, 2)
        bias = np.array([-clf.intercept_[0], clf.intercept_[0]]) / 2
    else:
        weight, bias = clf.coef_.T, clf.intercept_  # (H, C), (C,)
    teacher.model.classifier.weight.set_value(weight.astype(np.float32))
    teacher.model.classifier.bias.set_value(bias.astype(np.float32))
    teacher.labels = labels
    return {"rows": len(examples), "train_accuracy": round(float(clf.score(x, y)), 4)}


def pad_to(inputs: Dict[str, np.ndarray], width: int, pad_id: int) -> Dict[str, np.ndarray]:
    """Right-pad a batch to ``width`` tokens (the naive baseline pads to the file's longest)."""
    extra = width - inputs["input_ids"].shape[1]
    if extra <= 0:
        return inputs
    out = {}
    for name, value in inputs.items():
        fill = pad_id if name == "input_ids" else 0
        out[name] = np.pad(value, ((0, 0), (0, extra)), constant_values=fill)  # (B, width)
    return out


def make_batches(data, batch_size: int, bucket: bool, width: Optional[int] = None):
    """Padded input dicts in run order, and the real token counts of each batch's rows."""
    from distill.data.batching import BatchPlan, make_batch

    plan = BatchPlan(data, batch_size, shuffle=False, bucket=bucket)
    batches, lengths = [], []
    for rows in plan.order():
        inputs = make_batch(data, rows)["inputs"]
        batches.append(pad_to(inputs, width, data.pad_id) if width else inputs)
        lengths.append(data.lengths[rows])
    return batches, lengths


# ------------------------------------------------------------------------------ measuring

@dataclass
class Case:
    """One configuration: an engine over prepared batches (``facts`` go into the result)."""

    label: str
    predict: Callable[[Dict[str, np.ndarray]], np.ndarray]
    batches: List[Dict[str, np.ndarray]]
    lengths: List[np.ndarray]  # real token counts of each batch's rows
    facts: Dict[str, object]
    seconds: List[float] = field(default_factory=list)  # one pass per round

    def time_pass(self) -> float:
        if not self.seconds:
            self.predict(self.batches[0])  # warm-up: allocations, oneDNN/ORT kernel choice
        start = time.perf_counter()
        for inputs in self.batches:
            self.predict(inputs)
        self.seconds.append(time.perf_counter() - start)
        return self.seconds[-1]


def run_rounds(cases: Sequence[Case], rounds: int, gemm_size: int, threads: int
               ) -> List[Dict[str, float]]:
    """Time every case once per round, cases interleaved, with the GEMM peak measured in every
    round too: a slow spell of the shared CPU then hits all configurations alike, and the best
    pass of each (the least disturbed) is compared. Returns the peak of each round."""
    peaks = []
    for r in range(rounds):
        print(f"round {r + 1}/{rounds}:", flush=True)
        peaks.append(gemm_peak(size=gemm_size, repeat=2, threads=threads))
        print(f"  GEMM {gemm_size}^2: Paddle {peaks[-1]['paddle']} / NumPy {peaks[-1]['numpy']}"
              f" / ONNX Runtime {peaks[-1]['onnxruntime']} GFLOP/s", flush=True)
        for case in cases:
            seconds = case.time_pass()
            rows = sum(len(x) for x in case.lengths)
            print(f"  {case.label:<52} {rows / seconds:8.1f} sent/s", flush=True)
    return peaks


class Measure:
    """Turns timed passes into sentences/s and GFLOP/s (useful = real tokens, executed =
    padded positions; ``bench.common.encoder_flops``)."""

    def __init__(self, config, num_labels: int):
        self.config, self.num_labels = config, num_labels

    def case_result(self, case: Case) -> Dict[str, object]:
        out = self.result(case.label, min(case.seconds), case.batches, case.lengths,
                          **case.facts)
        rows = out["rows"]
        out["sentences_per_s_range"] = [round(rows / max(case.seconds), 1),
                                        round(rows / min(case.seconds), 1)]
        out["passes"] = len(case.seconds)
        return out

    def result(self, label, seconds, batches, lengths, **facts) -> Dict[str, object]:
        rows = int(sum(len(x) for x in lengths))
        real = np.concatenate(lengths)
        padded = np.concatenate([np.full(len(x), b["input_ids"].shape[1])
                                 for x, b in zip(lengths, batches)])
        useful = encoder_flops(self.config, real, self.num_labels)
        executed = encoder_flops(self.config, padded, self.num_labels)
        out = {"config": label, "rows": rows, "seconds": round(seconds, 3),
               "sentences_per_s": round(rows / seconds, 1),
               "gflops_useful": round(useful / seconds / 1e9, 1),
               "gflops_executed": round(executed / seconds / 1e9, 1),
               "padding_fraction": round(1 - real.sum() / padded.sum(), 4)}
        out.update(facts)
        return out


def profile_onnx(path, batches: Sequence[Dict[str, np.ndarray]], threads: int,
                 config) -> Dict[str, object]:
    """ONNX Runtime's per-node profile over ``batches``: time share by operator type, the
    GEMM (MatMul/Gemm) rate, and the time spent outside ``session.run``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="ortprof"), "p")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    session.run(None, {n: batches[0][n] for n in names})
    start = time.perf_counter()
    for b in batches:
        session.run(None, {n: b[n] for n in names})
    wall = time.perf_counter() - start
    trace = json.loads(Path(session.end_profiling()).read_text())
    by_op, run_us = defaultdict(float), []
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            by_op[event["args"]["op_name"]] += event["dur"]  # microseconds, warm-up run included
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            run_us.append(event["dur"])
    timed_share = sum(run_us[1:]) / sum(run_us) if run_us else 1.0  # without the warm-up run
    # GEMM FLOPs executed (padded shapes), attention batched matmuls included
    H, I, L = config.hidden_size, config.intermediate_size, config.num_layers
    gemm = 0.0
    for b in batches:
        n, t = b["input_ids"].shape
        gemm += L * (8 * n * t * H * H + 4 * n * t * H * I + 4 * n * t * t * H)
    gemm_s = sum(v for k, v in by_op.items() if k in GEMM_OPS) * timed_share / 1e6
    total = sum(by_op.values())
    return {"wall_s": round(wall, 3), "session_run_s": round(sum(run_us[1:]) / 1e6, 3),
            "op_share": {k: round(v / total, 4) for k, v in
                         sorted(by_op.items(), key=lambda kv: -kv[1])},
            "gemm_seconds": round(gemm_s, 3),
            "gemm_gflops_in_model": round(gemm / gemm_s / 1e9, 1) if gemm_s else None}


def fused_onnx(path, config) -> Optional[Path]:
    """ONNX Runtime's transformer fusions (SkipLayerNorm, BiasGelu, EmbedLayerNorm) applied
    offline; None when the optimizer is unavailable or fails."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        model = optimize_model(str(path), model_type="bert", num_heads=config.num_heads,
                               hidden_size=config.hidden_size, opt_level=0)
        out = Path(path).with_name("model.fused.onnx")
        model.save_model_to_file(str(out))
        return out
    except Exception as err:  # an experiment only: report and go on
        print(f"  (ORT transformer fusion unavailable: {type(err).__name__}: {err})")
        return None


# ------------------------------------------------------------------------------ the bench

def bench(quick: bool) -> Dict[str, object]:
    from distill.data.batching import encode_examples
    from distill.backends.onnx_runtime import OnnxRunner
    from teachers.checkpoint import load_teacher
    from teachers.engines import EngineOptions, build_engine, compare
    from teachers.soft_labels import soft_labels

    sizes = dict(sweep=128, naive=32, end_to_end=192, batch_sizes=[16, 64], gemm=1024,
                 probe=128, rounds=2) if quick else dict(
        sweep=1024, naive=256, end_to_end=None, batch_sizes=[8, 16, 64, 128, 256], gemm=2048,
        probe=512, rounds=3)
    n = cores()
    info = {"machine": machine(), "quick": quick, "teacher": TEACHER, "data": f"{DATA} train",
            "sizes": sizes, "threads": n, "max_len": 128}
    print(machine_line(info["machine"]), flush=True)

    teacher = load_teacher(TEACHER, num_labels=2)
    info["probe"] = probe_head(teacher, load_texts(sizes["probe"], seed=1))
    print(f"teacher head: logistic-regression probe on {info['probe']['rows']} train sentences "
          f"(train accuracy {info['probe']['train_accuracy']})", flush=True)
    config, num_labels = teacher.config, teacher.model.num_labels
    max_len = info["max_len"]  # no truncation: the longest train sentence has 72 tokens
    info["encoder"] = {"layers": config.num_layers, "hidden": config.hidden_size,
                       "intermediate": config.intermediate_size, "heads": config.num_heads}
    data = encode_examples(teacher.tokenizer, load_texts(sizes["sweep"]), max_len=max_len)
    full = load_texts(sizes["end_to_end"])
    file_width = int(encode_examples(teacher.tokenizer, load_texts(), max_len=max_len
                                     ).lengths.max())

    def onnx(threads: int, sessions: int = 1):
        return build_engine("onnx", teacher, EngineOptions(threads=threads, sessions=sessions,
                                                           device="cpu"))

    opts = EngineOptions(threads=n, device="cpu")
    engines = {name: build_engine(name, teacher, opts)
               for name in ("dygraph", "paddle-inference", "onnx", "onnx-int8")}
    bucketed, blens = make_batches(data, NAIVE_BATCH, bucket=True)
    cases: List[Case] = []

    def add(label, predict, batches, lengths, step, engine, batch_size=NAIVE_BATCH, threads=n,
            sessions=1, **more):
        cases.append(Case(label, predict, batches, lengths,
                          dict(step=step, engine=engine, batch_size=batch_size, threads=threads,
                               sessions=sessions, **more)))

    naive_rows = data.subset(np.arange(min(sizes["naive"], len(data))))
    add("naive: dygraph, file order, pad to file max", engines["dygraph"],
        *make_batches(naive_rows, NAIVE_BATCH, bucket=False, width=file_width), "naive",
        "dygraph")
    add("dygraph, file order, pad per batch", engines["dygraph"],
        *make_batches(data, NAIVE_BATCH, bucket=False), "bucketing", "dygraph")
    add("dygraph, length-bucketed", engines["dygraph"], bucketed, blens, "bucketing", "dygraph")
    for name in ("paddle-inference", "onnx", "onnx-int8"):
        add(f"{name}, length-bucketed", engines[name], bucketed, blens, "engine", name,
            int8=name == "onnx-int8")
    if n > 1:
        add("onnx, 1 thread", onnx(1), bucketed, blens, "threads", "onnx", threads=1)
        add(f"onnx, {n} sessions x 1 thread (rows split)", onnx(n, n), bucketed, blens,
            "threads", "onnx", sessions=n)
    fused = None if quick else fused_onnx(engines["onnx"].info["path"], config)
    if fused is not None:
        runner = OnnxRunner(fused, threads=n)
        diff = float(max(np.abs(runner(x) - engines["onnx"](x)).max() for x in bucketed[:4]))
        add("onnx + ORT transformer fusions", runner, bucketed, blens, "fusion", "onnx-fused",
            max_abs_diff_vs_onnx=diff)
    for size in sizes["batch_sizes"]:
        add(f"onnx, length-bucketed, batch {size}", engines["onnx"],
            *make_batches(data, size, bucket=True), "batch size", "onnx", batch_size=size)

    print(f"{len(cases)} configurations x {sizes['rounds']} rounds over {len(data)} sampled "
          f"sentences (naive: the first {len(naive_rows)}, padded to the file's longest, "
          f"{file_width} tokens):", flush=True)
    peaks = run_rounds(cases, sizes["rounds"], sizes["gemm"], n)
    measure = Measure(config, num_labels)
    runs = [measure.case_result(c) for c in cases]
    naive = runs[0]
    peak = {k: max(p[k] for p in peaks) for k in ("paddle", "numpy", "onnxruntime", "best")}
    peak.update(size=sizes["gemm"], threads=n, per_round=peaks)
    int8_check = compare(engines["onnx-int8"], engines["onnx"], bucketed)

    fp32 = [r for r in runs if not r.get("int8") and r["step"] != "naive"
            and r["engine"] in ("dygraph", "paddle-inference", "onnx")]
    best = max(fp32, key=lambda r: r["sentences_per_s"])
    print(f"best FP32 configuration: {best['config']}", flush=True)
    for r in runs:
        print(f"  {r['config']:<52} {r['sentences_per_s']:8.1f} sent/s "
              f"{r['gflops_useful']:6.1f} GFLOP/s (executed {r['gflops_executed']:.1f}, padding "
              f"{100 * r['padding_fraction']:.0f}%) {r['sentences_per_s'] / naive['sentences_per_s']:.2f}x naive",
              flush=True)

    b, lens = make_batches(data, best["batch_size"], bucket=True)
    per_session = max(1, best["threads"] // best["sessions"])
    # rows of one session's GEMMs: the batch's tokens, split between the sessions
    tokens = int(round(np.mean([x["input_ids"].size for x in b]) / best["sessions"]))
    H, I = config.hidden_size, config.intermediate_size
    shape_gemms = {f"{tokens}x{k}x{n_}": ort_gemm(tokens, k, n_, per_session)
                   for k, n_ in ((H, H), (H, I), (I, H))}
    print(f"ORT on the encoder's GEMM shapes ({per_session} thread(s)): {shape_gemms} GFLOP/s",
          flush=True)
    profile = profile_onnx(engines["onnx"].info["path"], b, per_session, config)

    print(f"end to end: soft_labels over {len(full)} sentences "
          f"(engine onnx, batch {best['batch_size']}, {best['threads']} threads, "
          f"{best['sessions']} sessions):", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-label-") as tmp:
        start = time.perf_counter()
        soft_labels(teacher, full, tmp, batch_size=best["batch_size"], max_len=max_len,
                    progress=False, device="cpu", engine="onnx", threads=best["threads"],
                    sessions=best["sessions"])
        e2e_s = time.perf_counter() - start
    full_lengths = encode_examples(teacher.tokenizer, full, max_len=max_len).lengths
    e2e = {"rows": len(full), "seconds": round(e2e_s, 2),
           "sentences_per_s": round(len(full) / e2e_s, 1),
           "gflops_useful": round(encoder_flops(config, full_lengths, num_labels) / e2e_s / 1e9, 1),
           "engine": "onnx", "batch_size": best["batch_size"], "threads": best["threads"],
           "sessions": best["sessions"]}
    print(f"  {e2e['sentences_per_s']} sent/s, {e2e['gflops_useful']} GFLOP/s useful, "
          f"{e2e['seconds']} s", flush=True)

    info.update(gemm_peak=peak, file_width=file_width,
                runs=runs, naive=naive, best=best, int8_check=int8_check, profile=profile,
                shape_gemms=shape_gemms, shape_gemm_threads=per_session,
                end_to_end=e2e, load_average_end=[round(x, 2) for x in os.getloadavg()])
    info["ratios"] = ratios(info)
    return info


def ratios(info) -> Dict[str, float]:
    best, naive, e2e = info["best"], info["naive"], info["end_to_end"]
    paddle_peak, best_peak = info["gemm_peak"]["paddle"], info["gemm_peak"]["best"]
    return {"best_vs_naive": round(best["sentences_per_s"] / naive["sentences_per_s"], 2),
            "end_to_end_vs_naive": round(e2e["sentences_per_s"] / naive["sentences_per_s"], 2),
            "best_vs_paddle_gemm_peak": round(best["gflops_useful"] / paddle_peak, 2),
            "best_vs_best_gemm_peak": round(best["gflops_useful"] / best_peak, 2),
            "paddle_gemm_peak": paddle_peak, "best_gemm_peak": best_peak}


# ------------------------------------------------------------------------------ report

def where_it_goes(info) -> List[str]:
    """Plain sentences on the gap between the best configuration and the GEMM peak."""
    r, p, best = info["ratios"], info["profile"], info["best"]
    shares = p["op_share"]
    enc = info["encoder"]
    gemm = sum(v for k, v in shares.items() if k in GEMM_OPS)
    rest = sorted(((k, v) for k, v in shares.items() if k not in GEMM_OPS),
                  key=lambda kv: -kv[1])[:5]
    outside = 1 - p["session_run_s"] / p["wall_s"] if p["wall_s"] else 0.0
    return [
        f"GEMMs (MatMul/Gemm) take {100 * gemm:.0f}% of ONNX Runtime's kernel time and run at "
        f"{p['gemm_gflops_in_model']} GFLOP/s inside the model (executed shapes, attention "
        f"included), vs {r['best_gemm_peak']} GFLOP/s for one large square GEMM. Alone, ORT runs "
        f"the encoder's own GEMM shapes (tokens x K x N, {info['shape_gemm_threads']} thread(s)"
        f" per session) at " + ", ".join(f"{k}: {v}" for k, v in info["shape_gemms"].items())
        + f" GFLOP/s; the attention GEMMs are tiny (head dim {enc['hidden'] // enc['heads']}).",
        "The other kernels are memory-bound elementwise/normalisation work the FLOP count "
        "leaves out: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rest) + ".",
        f"Padding left after bucketing: {100 * best['padding_fraction']:.1f}% of the executed "
        f"positions; time outside session.run (Python, feeds): {100 * max(outside, 0):.1f}%.",
        f"Load average during the run: {info['machine']['load_average'][0]} -> "
        f"{info['load_average_end'][0]} on {info['machine']['cores']} cores: other processes "
        f"share the CPU, so every configuration and the GEMM peak were timed once per round, "
        f"interleaved, and the best of {info['sizes']['rounds']} passes is shown (the range "
        f"column shows the spread).",
    ]


def markdown(info) -> str:
    r = info["ratios"]
    pk = info["gemm_peak"]
    rounds = info["sizes"]["rounds"]
    lines = [f"### Soft labelling ({info['teacher']} on {info['data']})", "",
             machine_line(info["machine"]) + ".", "",
             f"FP32 GEMM peak ({pk['size']}² matmul, {pk['threads']} threads, best of "
             f"{rounds} rounds), GFLOP/s: Paddle **{pk['paddle']}**, NumPy {pk['numpy']}, "
             f"ONNX Runtime {pk['onnxruntime']}.", "",
             f"Throughput: forward passes over {info['sizes']['sweep']} sampled sentences (the "
             f"naive row: the first {info['sizes']['naive']}, padded to the file's longest "
             f"sentence, {info['file_width']} tokens), best of {rounds} interleaved passes. "
             f"GFLOP/s = encoder GEMM FLOPs of the real tokens / time; executed also counts "
             f"padding.", "",
             md_table(["step", "configuration", "threads", "sessions", "batch", "sent/s",
                       "range", "GFLOP/s", "executed", "padding", "vs naive"],
                      [[x["step"], x["config"], x["threads"], x["sessions"], x["batch_size"],
                        x["sentences_per_s"],
                        f"{x['sentences_per_s_range'][0]:.0f}–{x['sentences_per_s_range'][1]:.0f}",
                        x["gflops_useful"], x["gflops_executed"],
                        f"{100 * x['padding_fraction']:.0f}%",
                        f"{x['sentences_per_s'] / info['naive']['sentences_per_s']:.2f}x"]
                       for x in info["runs"]]), "",
             f"INT8 (opt-in, `--engine onnx-int8`) vs ONNX FP32 on these sentences: max abs logit "
             f"diff {info['int8_check']['max_abs_diff']:.3g}, argmax agreement "
             f"{100 * info['int8_check']['argmax_agreement']:.2f}% (the head is a logistic-"
             f"regression probe on {info['probe']['rows']} sentences, train accuracy "
             f"{100 * info['probe']['train_accuracy']:.1f}%).", "",
             f"End to end (`soft_labels`, engine onnx, batch {info['end_to_end']['batch_size']}, "
             f"{info['end_to_end']['threads']} thread(s), {info['end_to_end']['sessions']} "
             f"session(s), "
             f"{info['end_to_end']['rows']} sentences incl. tokenisation and chunk files): "
             f"**{info['end_to_end']['sentences_per_s']} sentences/s**, "
             f"{info['end_to_end']['gflops_useful']} GFLOP/s, {info['end_to_end']['seconds']} s.",
             "",
             f"Goals: best FP32 path {r['best_vs_naive']}x the naive baseline (goal >= 2x: "
             f"{'met' if r['best_vs_naive'] >= 2 else 'NOT met'}); {r['best_vs_paddle_gemm_peak']}"
             f" of Paddle's GEMM peak (goal >= 0.5: "
             f"{'met' if r['best_vs_paddle_gemm_peak'] >= 0.5 else 'NOT met'}), "
             f"{r['best_vs_best_gemm_peak']} of the best library's.", "",
             "Where the rest goes:", ""]
    lines += [f"- {s}" for s in where_it_goes(info)]
    return "\n".join(lines)


def summary(info) -> str:
    r, best = info["ratios"], info["best"]
    return (f"labeling: best {best['config']} {best['sentences_per_s']} sent/s = "
            f"{r['best_vs_naive']}x naive, {best['gflops_useful']} GFLOP/s = "
            f"{r['best_vs_paddle_gemm_peak']}x Paddle GEMM peak ({r['paddle_gemm_peak']}) / "
            f"{r['best_vs_best_gemm_peak']}x best peak ({r['best_gemm_peak']}); end to end "
            f"{info['end_to_end']['sentences_per_s']} sent/s = {r['end_to_end_vs_naive']}x naive")


def main(argv=None) -> int:
    args = base_parser(__doc__.split("\n")[0]).parse_args(argv)
    info = bench(args.quick)
    path = write_results("labeling", info, markdown(info), results_dir(args))
    print("\n".join(where_it_goes(info)))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
