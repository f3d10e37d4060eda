"""Measure an exported artifact in its own runtime: parity, accuracy, size, latency, throughput.

No Paddle here: a *runner* is any callable ``feed dict -> logits (B, C)`` (``PaddleRunner`` in
``distill.backends.paddle_inference``, ``OnnxRunner`` in ``distill.backends.onnx_runtime``), so one code path measures
every format.

    report = measure_artifact("onnx-int8", path, runner, dev_batches, reference_logits, label_ids,
                              settings=MeasureSettings(latency_runs=200))
    judge(report, reference_dev_metrics, max_accuracy_drop=0.005)
    report.test = split_metrics(runner, test_batches, test_label_ids)   # reported, never judged
    report.to_dict()  # {format, path, size_bytes, parity, dev, test, latency_ms_b1, ...}

Selection is made on dev only: the batches given to ``measure_artifact`` are the dev (eval)
split, the guard (``judge``) compares dev accuracy, and ``ArtifactReport.test`` holds held-out
test metrics that no choice reads.
"""
import dataclasses
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from distill.train.metrics import classification_metrics

Feed = Dict[str, np.ndarray]
Runner = Callable[[Feed], np.ndarray]


@dataclasses.dataclass
class MeasureSettings:
    """How long to time each artifact. Latency: batch 1 over real sentences; throughput: batch 32."""

    warmup_runs: int = 10  # untimed batch-1 runs (plus one untimed pass over each batch-32 batch)
    latency_runs: int = 100  # timed batch-1 runs, cycling over ``latency_sentences``
    latency_sentences: int = 50  # distinct eval sentences used at batch 1 (their real lengths)
    throughput_batches: int = 10  # timed batch-32 batches (cycling over the eval batches)


@dataclasses.dataclass
class ArtifactReport:
    """One exported artifact and what it measured. Fractions everywhere (0.905 = 90.5 %).

    ``dev``: metrics on the eval split the guard judges (dev); ``test``: metrics on the held-out
    test split, only reported (None when no test rows were given).
    """

    format: str
    path: str
    size_bytes: int
    parity: Dict[str, float]  # max_abs_diff, argmax_agreement against the FP32 dygraph model (dev)
    test: Optional[Dict[str, float]]  # accuracy, macro_f1 on the test split: reported only
    latency_ms_b1: Dict[str, float]  # p50, p95
    throughput_b32: float  # sentences per second at batch 32
    accepted: bool = True
    reason: str = ""
    details: Dict[str, Any] = dataclasses.field(default_factory=dict)
    dev: Optional[Dict[str, float]] = None  # accuracy, macro_f1 on the guard's eval split (dev)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ArtifactReport":
        return cls(**values)


def artifact_size(path) -> int:
    """Bytes of a file, or of every file under a directory (all files of the artifact)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_all(runner: Runner, batches: Sequence[Feed]) -> np.ndarray:
    """Logits for every batch, concatenated in order: (N, C) float32."""
    return np.concatenate([np.asarray(runner(b), dtype=np.float32) for b in batches], axis=0)


def parity(logits: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    """Max absolute logit difference and argmax agreement (fraction) against the reference."""
    return {"max_abs_diff": float(np.max(np.abs(logits - reference))),
            "argmax_agreement": float(np.mean(logits.argmax(-1) == reference.argmax(-1)))}


def latency_b1(runner: Runner, singles: Sequence[Feed], settings: MeasureSettings) -> Dict[str, float]:
    """p50/p95 milliseconds of single-sentence calls, after warm-up over the same inputs."""
    for i in range(max(settings.warmup_runs, len(singles))):
        runner(singles[i % len(singles)])
    times = []
    for i in range(settings.latency_runs):
        start = time.perf_counter()
        runner(singles[i % len(singles)])
        times.append((time.perf_counter() - start) * 1e3)
    return {"p50": float(np.percentile(times, 50)), "p95": float(np.percentile(times, 95))}


def throughput(runner: Runner, batches: Sequence[Feed], settings: MeasureSettings) -> float:
    """Sentences per second over ``throughput_batches`` batch-32 calls (after one warm-up pass)."""
    batches = list(batches)[: max(1, settings.throughput_batches)]
    for b in batches:
        runner(b)
    rows, elapsed = 0, 0.0
    for i in range(settings.throughput_batches):
        b = batches[i % len(batches)]
        start = time.perf_counter()
        runner(b)
        elapsed += time.perf_counter() - start
        rows += len(next(iter(b.values())))
    return float(rows / elapsed) if elapsed > 0 else 0.0


def split_metrics(runner: Runner, batches: Sequence[Feed],
                  label_ids: Optional[np.ndarray]) -> Optional[Dict[str, float]]:
    """Accuracy and macro-F1 of ``runner`` over labelled ``batches`` (None without labels/rows)."""
    if label_ids is None or not batches:
        return None
    return classification_metrics(label_ids, run_all(runner, batches).argmax(-1))


def measure_artifact(fmt: str, path, runner: Runner, batches: Sequence[Feed],
                     reference_logits: np.ndarray, label_ids: Optional[np.ndarray],
                     settings: MeasureSettings, details: Optional[Dict[str, Any]] = None,
                     timed: bool = True) -> ArtifactReport:
    """Run ``runner`` over the eval (dev) ``batches`` (batch 32) and build the artifact's report;
    its ``dev`` metrics come from them, ``test`` is left None (the exporter fills it in).

    ``timed=False`` skips latency/throughput (they are reported as 0); tests use it.
    """
    logits = run_all(runner, batches)
    dev = None
    if label_ids is not None:
        dev = classification_metrics(label_ids, logits.argmax(-1))
    latency, rate = {"p50": 0.0, "p95": 0.0}, 0.0
    if timed:
        singles = _singles(batches, settings.latency_sentences)
        latency = latency_b1(runner, singles, settings)
        rate = throughput(runner, batches, settings)
    return ArtifactReport(format=fmt, path=os.fspath(path), size_bytes=artifact_size(path),
                          parity=parity(logits, reference_logits), test=None,
                          latency_ms_b1=latency, throughput_b32=rate, details=dict(details or {}),
                          dev=dev)


def _singles(batches: Sequence[Feed], limit: int) -> List[Feed]:
    """Split batches into single rows trimmed to their real length (attention_mask, else all)."""
    singles: List[Feed] = []
    for b in batches:
        for row in range(len(next(iter(b.values())))):
            if len(singles) >= max(1, limit):
                return singles
            length = b["attention_mask"][row].sum() if "attention_mask" in b else None
            length = int(length) if length else next(iter(b.values())).shape[1]
            singles.append({k: v[row:row + 1, :length] for k, v in b.items()})
    return singles


def judge(report: ArtifactReport, reference_dev: Optional[Dict[str, float]],
          max_accuracy_drop: float, fp32_tolerance: float = 1e-3,
          max_disagreement: Optional[float] = 0.05) -> ArtifactReport:
    """The accuracy guard: mark ``report`` rejected (kept on disk) with the measured reason.

    Everything here reads the eval (dev) split: ``report.dev`` against the FP32 model's
    ``reference_dev``; ``report.test`` is never looked at.
    With labels: rejected when dev accuracy falls more than ``max_accuracy_drop`` (a fraction,
    0.005 = 0.5 points) below the FP32 dygraph model's. Without labels: when the argmax disagrees
    with FP32 on more than that fraction of the eval texts (an upper bound on the accuracy drop).
    FP32 formats must also match within ``fp32_tolerance`` (max abs logit difference, scaled by
    the largest reference logit when above 1); INT8 formats must have quantized something.
    ``max_disagreement`` (default 5 %) also rejects an artifact whose argmax differs from FP32
    on more eval texts than that even when accuracy happens to hold (broken numerics that
    cancel out on a small eval set); None disables it. Measured on movies_en: sound INT8 flips
    0.2-2.7 % of a student's or teacher's answers, oneDNN INT8 on a CPU without VNNI 8-13 %.
    """
    reasons = []
    if report.dev is not None and reference_dev is not None:
        drop = reference_dev["accuracy"] - report.dev["accuracy"]
        report.details["accuracy_drop"] = drop
        if drop > max_accuracy_drop + 1e-12:
            reasons.append(f"dev accuracy {report.dev['accuracy']:.4f} vs FP32 "
                           f"{reference_dev['accuracy']:.4f}: drop {100 * drop:.2f} points > "
                           f"max_accuracy_drop {100 * max_accuracy_drop:.2f}")
    else:
        disagreement = 1.0 - report.parity["argmax_agreement"]
        if disagreement > max_accuracy_drop + 1e-12:
            reasons.append(f"argmax differs from FP32 on {100 * disagreement:.2f}% of the eval "
                           f"texts (no labels) > max_accuracy_drop {100 * max_accuracy_drop:.2f}")
    disagreement = 1.0 - report.parity["argmax_agreement"]
    if (max_disagreement is not None and report.dev is not None
            and disagreement > max(max_disagreement, max_accuracy_drop) + 1e-12):
        reasons.append(f"argmax differs from FP32 on {100 * disagreement:.2f}% of the eval "
                       f"texts > {100 * max(max_disagreement, max_accuracy_drop):.2f}%")
    return verdict(report, reasons + numeric_reasons(report, fp32_tolerance))


def numeric_reasons(report: ArtifactReport, fp32_tolerance: float) -> List[str]:
    """What the guard rejects whatever the metric: an FP32 artifact whose logits differ from the
    reference beyond ``fp32_tolerance`` (scaled by the largest reference logit when above 1), an
    INT8 artifact that quantized nothing."""
    if not report.details.get("int8", False):
        scale = max(1.0, float(report.details.get("reference_max_abs_logit", 1.0)))
        if report.parity["max_abs_diff"] > fp32_tolerance * scale:
            return [f"FP32 logits differ by {report.parity['max_abs_diff']:.3g} > "
                    f"{fp32_tolerance * scale:.3g}"]
    elif report.details.get("quantized_weight_fraction", 1.0) <= 0.0:
        return ["nothing was quantized (no INT8 weights in the file)"]
    return []


def verdict(report: ArtifactReport, reasons: List[str]) -> ArtifactReport:
    """``report`` accepted when there is no reason against it, else rejected with them."""
    report.accepted = not reasons
    report.reason = "; ".join(reasons)
    return report
