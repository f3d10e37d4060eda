"""Export a trained student or teacher to Paddle/ONNX, FP32 and INT8; measure and guard each artifact.

    distill export runs/movies/bow --out runs/movies/export --eval dev.tsv --test test.tsv \\
        --calib train.tsv --formats paddle,paddle-int8,onnx,onnx-int8 --calib-size 200 --algo hist \\
        --max-accuracy-drop 0.005 --threads 2 --package movies-bow

Writes ``OUT/paddle/`` (inference model), ``OUT/paddle-int8/`` (PaddleSlim PTQ, run with oneDNN
INT8), ``OUT/onnx/model.onnx`` (paddle2onnx + quant_pre_process), ``OUT/onnx-int8/model.onnx``
(ONNX Runtime dynamic INT8, embeddings included), ``OUT/encoder/``, ``OUT/export_report.json``
and, with ``--package NAME``, ``OUT/NAME.tar.gz`` (see ``distill.export.package``).

Every artifact runs in its own runtime with a fixed thread count and is compared with the FP32
dygraph model: max abs logit difference, argmax agreement, eval accuracy / macro-F1, size in
bytes (all files), batch-1 latency p50/p95 and batch-32 throughput. The eval set is the *dev*
split: every choice (the guard, the INT8 retries, the package) is made on it; the *test* split
(``--test``, ``test_examples``) is only measured and reported (``ArtifactReport.test``). An
artifact whose dev accuracy falls more than ``--max-accuracy-drop`` (a fraction: 0.005 = 0.5
points) below FP32 is kept but marked rejected with the measured reason, and never packaged. When ONNX INT8 is rejected, it is
re-quantized without each quantized op type in turn; the first variant that passes is kept and
the excluded op type is named in its report.

In Python::

    from distill.export.exporter import export_model, ExportConfig
    result = export_model("runs/movies/bow", out_dir="runs/movies/export",
                          eval_examples=read_examples("dev.tsv"),     # the guard judges these
                          test_examples=read_examples("test.tsv"),    # only reported
                          calib_examples=read_examples("train.tsv"),
                          config=ExportConfig(formats=("onnx", "onnx-int8"), threads=2),
                          package="movies-bow")
    result.reports[-1].to_dict()
"""
import dataclasses
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from distill.backends.onnx_runtime import DEFAULT_OP_TYPES
from distill.backends.paddle_inference import PTQ_ALGOS
from distill.core.errors import UserError
from distill.core.io import ensure_owned_dir, write_json
from distill.core.registry import Registry
from distill.core.runtime import usable_cores
from distill.export.measure import (ArtifactReport, MeasureSettings, judge, measure_artifact,
                                    split_metrics)

FORMATS = ("paddle", "paddle-int8", "onnx", "onnx-int8")
logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ExportConfig:
    """Export settings; fractions everywhere (max_accuracy_drop 0.005 = 0.5 points)."""

    formats: Tuple[str, ...] = FORMATS
    max_len: Optional[int] = None  # None: the model directory's max_len (else 128)
    calib_size: int = 200  # calibration samples for Paddle PTQ
    calib_batch_size: int = 16
    algo: str = "hist"  # PaddleSlim PTQ: abs_max | KL | hist | avg | mse
    max_accuracy_drop: float = 0.005
    fp32_tolerance: float = 1e-3  # FP32 artifacts: max abs logit difference allowed
    max_disagreement: Optional[float] = 0.05  # argmax changes vs FP32 allowed (None: no check)
    threads: int = 0  # 0 = every usable core
    eval_batch_size: int = 32  # also the throughput batch size
    onnx_op_types: Tuple[str, ...] = DEFAULT_OP_TYPES
    onnx_weight_type: str = "int8"  # int8 | uint8
    onnx_per_channel: Optional[bool] = None  # None: per-channel unless the graph has LSTM/GRU
    auto_exclude: bool = True  # rejected onnx-int8: retry per-channel, then without each op type
    opset: int = 13
    mkldnn_fp32: bool = True  # Paddle FP32 also runs with oneDNN (usually faster on CPU)
    paddle_int8_fallback: bool = True  # rejected oneDNN INT8 PTQ -> weight-only INT8 (FP32 kernels)
    # QAT (distill.export.qat): None/False off; True or {steps, lr, loss, batch_size, eval_every,
    # max_rows, seed} trains a fake-quant copy on the calibration pool (the training rows);
    # paddle-int8 then measures PTQ, QAT and weight-only and keeps the most accurate accepted one
    # on dev, the fastest at batch 32 among those within int8_choice_margin of it
    qat: Any = None
    int8_choice_margin: float = 0.002  # dev accuracy (fraction) a faster INT8 variant may lose
    onnx_reduce_range: bool = True  # 7-bit weights: no u8*s8 saturation on CPUs without VNNI
    timed: bool = True  # False: skip latency/throughput (tests)
    trim_vocab: Any = "off"  # off | auto | N: keep only the task's pieces (distill.export.trim)
    seed: int = 0
    measure: MeasureSettings = dataclasses.field(default_factory=MeasureSettings)

    def validate(self) -> None:
        unknown = [f for f in self.formats if f not in FORMAT_STEPS]
        if unknown or not self.formats:
            raise UserError(f"unknown export format(s) {', '.join(unknown) or '(none)'}; "
                            f"choose from {', '.join(FORMATS)}")
        if self.algo not in PTQ_ALGOS:
            raise UserError(f"unknown PTQ algo '{self.algo}'; choose one of {', '.join(PTQ_ALGOS)}")
        if not 0.0 <= self.max_accuracy_drop < 1.0:
            raise UserError(f"max_accuracy_drop={self.max_accuracy_drop}: give a fraction in "
                            f"[0, 1), e.g. 0.005 for 0.5 points")
        if self.onnx_weight_type not in ("int8", "uint8"):
            raise UserError(f"onnx_weight_type={self.onnx_weight_type!r}; use int8 or uint8")
        if self.calib_size < 1 or self.calib_batch_size < 1 or self.eval_batch_size < 1:
            raise UserError("calib_size, calib_batch_size and eval_batch_size must be >= 1")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise UserError(f"threads={self.threads!r}: give a whole number >= 1, or 0 for every "
                            f"usable core")
        from distill.export.trim import parse_setting

        parse_setting(self.trim_vocab)
        self.qat_settings()
        if not 0.0 <= self.int8_choice_margin < 1.0:
            raise UserError(f"int8_choice_margin={self.int8_choice_margin}: give a fraction in "
                            f"[0, 1), e.g. 0.002 for 0.2 points")

    def qat_settings(self):
        """``QATSettings`` from ``qat`` (None when QAT is off)."""
        from distill.export.qat import QATSettings

        if self.qat in (None, False):
            return None
        if self.qat is True:
            return QATSettings()
        if isinstance(self.qat, QATSettings):
            settings = self.qat
        elif isinstance(self.qat, dict):
            known = {f.name for f in dataclasses.fields(QATSettings)}
            unknown = sorted(set(self.qat) - known)
            if unknown:
                raise UserError(f"qat: unknown key(s) {', '.join(unknown)}; expected "
                                f"{', '.join(sorted(known))}")
            settings = QATSettings(**self.qat)
        else:
            raise UserError(f"qat={self.qat!r}: give true, false or a mapping of QAT settings")
        settings.validate()
        return settings

    def thread_count(self) -> int:
        return self.threads or usable_cores()


@dataclasses.dataclass
class LoadedModel:
    """A model plus what export needs to feed it (from objects or a saved directory)."""

    model: Any
    encoder: Any
    labels: List[str]
    max_len: int
    kind: str = "model"  # teacher | student kind
    name: str = ""
    text_pairs: Optional[bool] = None


@dataclasses.dataclass
class ExportResult:
    out_dir: Path
    reports: List[ArtifactReport]
    reference: Dict[str, Any]  # FP32 dygraph: dev (guard) and test metrics, max abs logit, sizes
    package: Optional[Path] = None

    def to_dict(self) -> Dict[str, Any]:
        return {"out_dir": str(self.out_dir), "reference": self.reference,
                "artifacts": [r.to_dict() for r in self.reports],
                "package": str(self.package) if self.package else None}

    def report(self, fmt: str) -> ArtifactReport:
        for r in self.reports:
            if r.format == fmt:
                return r
        raise KeyError(fmt)


def load_model_dir(directory) -> LoadedModel:
    """Load a saved student (``student.json``) or teacher (``teacher.json``) directory."""
    directory = Path(directory)
    if (directory / "student.json").is_file():
        from students.io import load_student

        model, encoder, meta = load_student(directory)
        return LoadedModel(model, encoder, list(meta["labels"]), int(meta["max_len"]),
                           kind=meta["kind"], name=meta.get("name", directory.name),
                           text_pairs=meta.get("text_pairs"))
    if (directory / "teacher.json").is_file():
        from teachers.checkpoint import load_teacher

        teacher = load_teacher(directory)
        return LoadedModel(teacher.model, teacher.tokenizer, list(teacher.labels),
                           int(teacher.max_len), kind="teacher", name=teacher.name)
    raise UserError(f"{directory}: neither student.json nor teacher.json found; give a saved "
                    f"student or teacher directory")


# ----------------------------------------------------------------------------- one format each

@dataclasses.dataclass
class _Context:
    """Everything the format steps share during one export."""

    loaded: LoadedModel
    config: ExportConfig
    out_dir: Path
    eval_batches: List[Dict[str, np.ndarray]]
    calib_batches: List[Dict[str, np.ndarray]]
    reference_logits: np.ndarray
    label_ids: Optional[np.ndarray]
    reference_dev: Optional[Dict[str, float]]
    test_batches: List[Dict[str, np.ndarray]] = dataclasses.field(default_factory=list)
    test_label_ids: Optional[np.ndarray] = None
    train_examples: List[Any] = dataclasses.field(default_factory=list)  # QAT rows
    eval_examples: List[Any] = dataclasses.field(default_factory=list)  # the dev rows
    max_len: int = 128

    @property
    def paddle_dir(self) -> Path:
        return self.out_dir / "paddle"

    @property
    def onnx_path(self) -> Path:
        return self.out_dir / "onnx" / "model.onnx"

    def ensure_paddle(self) -> None:
        if not (self.paddle_dir / "model.pdmodel").exists():
            from distill.backends.paddle_inference import save_inference_model

            save_inference_model(self.loaded.model, self.paddle_dir)

    def ensure_onnx(self) -> Dict[str, Any]:
        info_path = self.onnx_path.parent / "export_info.json"
        if not self.onnx_path.exists():
            from distill.backends.onnx_runtime import to_onnx

            self.ensure_paddle()
            info = to_onnx(self.paddle_dir, self.onnx_path, opset=self.config.opset)
            write_json(info_path, info)
        from distill.core.io import read_json

        return read_json(info_path) if info_path.exists() else {}

    def measure(self, fmt: str, path, runner, details: Dict[str, Any],
                timed: Optional[bool] = None) -> ArtifactReport:
        details = {"reference_max_abs_logit": float(np.abs(self.reference_logits).max()),
                   "threads": self.config.thread_count(), **details}
        report = measure_artifact(fmt, path, runner, self.eval_batches, self.reference_logits,
                                  self.label_ids, self.config.measure, details,
                                  timed=self.config.timed if timed is None else timed)
        report = judge(report, self.reference_dev, self.config.max_accuracy_drop,
                       self.config.fp32_tolerance, self.config.max_disagreement)
        report.test = split_metrics(runner, self.test_batches, self.test_label_ids)  # reported only
        return report


def _step_paddle(ctx: _Context) -> ArtifactReport:
    from distill.backends.paddle_inference import PaddleRunner

    ctx.ensure_paddle()
    runner = PaddleRunner(ctx.paddle_dir, int8=False, threads=ctx.config.thread_count(),
                          mkldnn=ctx.config.mkldnn_fp32)
    return ctx.measure("paddle", ctx.paddle_dir, runner,
                       {"int8": False, "runtime": "paddle-inference",
                        "mkldnn": ctx.config.mkldnn_fp32, "inputs": runner.input_names})


def _step_paddle_int8(ctx: _Context) -> ArtifactReport:
    from distill.backends.paddle_inference import (PaddleRunner, cpu_has_vnni, quantize_static,
                                       quantize_weight_only, weight_bytes)

    ctx.ensure_paddle()
    out = ctx.out_dir / "paddle-int8"
    base = {"int8": True, "fp32_reference_bytes": weight_bytes(ctx.paddle_dir),
            "cpu_vnni": cpu_has_vnni()}
    if ctx.config.qat_settings() is not None:
        return _paddle_int8_candidates(ctx, out, base)
    info = quantize_static(ctx.paddle_dir, out, ctx.calib_batches, algo=ctx.config.algo)
    runner = PaddleRunner(out, threads=ctx.config.thread_count())
    report = ctx.measure("paddle-int8", out, runner,
                         {**base, "runtime": "paddle-inference (oneDNN INT8)", **info})
    if report.accepted or not ctx.config.paddle_int8_fallback:
        return report
    first_reason = report.reason
    if base["cpu_vnni"] is False:
        first_reason += " (this CPU has no VNNI: oneDNN INT8 sums saturate)"
    info = quantize_weight_only(ctx.paddle_dir, out)
    runner = PaddleRunner(out, threads=ctx.config.thread_count())
    report = ctx.measure("paddle-int8", out, runner,
                         {**base, "runtime": "paddle-inference (FP32 kernels, int8 weights)",
                          **info, "ptq_rejected": first_reason})
    if report.accepted:
        report.reason = f"weight-only INT8 (no speed-up): oneDNN INT8 PTQ failed: {first_reason}"
    return report


INT8_MODES = ("ptq", "qat", "weight-only")  # the paddle-int8 candidates with QAT on, in order


def _candidate_dir(out_dir: Path, mode: str) -> Path:
    """Where the ``mode`` candidate of ``paddle-int8`` is built before one is chosen."""
    return out_dir / f".paddle-int8-{mode}"


def _paddle_int8_candidates(ctx: _Context, out: Path, base: Dict[str, Any]) -> ArtifactReport:
    """Build and measure PTQ, QAT and weight-only INT8; keep the one ``choose_int8`` picks (on
    dev accuracy, then batch-32 throughput) in ``out``; its report lists every candidate."""
    from distill.backends.paddle_inference import (PaddleRunner, quantize_static,
                                                   quantize_weight_only)
    from distill.backends.paddle_qat import int8_kernels
    from distill.export.qat import quant_aware_export

    cfg = ctx.config
    loaded = ctx.loaded
    names = PaddleRunner(ctx.paddle_dir, int8=False).input_names
    builders = {
        "ptq": lambda d: quantize_static(ctx.paddle_dir, d, ctx.calib_batches, algo=cfg.algo),
        "qat": lambda d: quant_aware_export(
            loaded.model, loaded.encoder, ctx.train_examples, ctx.eval_examples, loaded.labels,
            ctx.max_len, d, names, cfg.qat_settings()),
        "weight-only": lambda d: quantize_weight_only(ctx.paddle_dir, d),
    }
    runtimes = {"ptq": "paddle-inference (oneDNN INT8)", "qat": "paddle-inference (oneDNN INT8)",
                "weight-only": "paddle-inference (FP32 kernels, int8 weights)"}
    reports: Dict[str, ArtifactReport] = {}
    for mode in INT8_MODES:
        path = _candidate_dir(out.parent, mode)
        shutil.rmtree(path, ignore_errors=True)
        try:
            info = builders[mode](path)
        except UserError:
            raise
        except Exception as error:  # noqa: BLE001  (a candidate that fails is reported, not fatal)
            logger.warning("paddle-int8 %s failed: %s", mode, error)
            reports[mode] = ArtifactReport("paddle-int8", str(path), 0, {"max_abs_diff": float("inf"),
                                           "argmax_agreement": 0.0}, None, {"p50": 0.0, "p95": 0.0},
                                           0.0, accepted=False, reason=f"{mode} failed: {error}",
                                           details={**base, "mode": mode})
            continue
        if mode != "weight-only":
            info["int8_kernels"] = int8_kernels(path, threads=cfg.thread_count())
        runner = PaddleRunner(path, threads=cfg.thread_count())
        reports[mode] = ctx.measure("paddle-int8", path, runner,
                                    {**base, "runtime": runtimes[mode], **info})
    chosen = choose_int8([reports[m] for m in INT8_MODES], cfg.int8_choice_margin)
    summary = [{"mode": m, "accepted": r.accepted, "reason": r.reason, "dev": r.dev,
                "test": r.test, "parity": r.parity, "latency_ms_b1": r.latency_ms_b1,
                "throughput_b32": r.throughput_b32, "size_bytes": r.size_bytes,
                "int8_kernels": r.details.get("int8_kernels"), "qat": r.details.get("qat")}
               for m, r in reports.items()]
    mode = chosen.details.get("mode")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(chosen.path, out)
    for m in INT8_MODES:
        shutil.rmtree(_candidate_dir(out.parent, m), ignore_errors=True)
    chosen.path = os.fspath(out)
    chosen.details["candidates"] = summary
    chosen.details["chosen"] = mode
    chosen.details["chosen_on"] = (f"dev accuracy, then batch-32 throughput within "
                                   f"{100 * cfg.int8_choice_margin:.2f} points")
    if chosen.accepted and mode != "ptq":
        others = "; ".join(f"{r['mode']}: {r['reason'] or 'accepted'}" for r in summary
                           if r["mode"] != mode)
        chosen.reason = f"{mode} chosen ({others})"
    return chosen


def choose_int8(reports: Sequence[ArtifactReport], margin: float = 0.002) -> ArtifactReport:
    """The INT8 variant to keep: among accepted reports, those within ``margin`` (fraction) of
    the best dev accuracy (argmax agreement with FP32 when unlabelled), then the highest batch-32
    throughput, then the lowest batch-1 p50, then the earliest given. None accepted: the most
    accurate one (still rejected)."""
    def accuracy(r: ArtifactReport) -> float:
        return r.dev["accuracy"] if r.dev else r.parity["argmax_agreement"]

    accepted = [r for r in reports if r.accepted]
    pool = accepted or list(reports)
    best = max(accuracy(r) for r in pool)
    slack = margin if accepted else 0.0
    close = [r for r in pool if accuracy(r) >= best - slack - 1e-12]
    return max(close, key=lambda r: (r.throughput_b32, -r.latency_ms_b1["p50"],
                                     -list(reports).index(r)))


def _step_onnx(ctx: _Context) -> ArtifactReport:
    from distill.backends.onnx_runtime import OnnxRunner

    info = ctx.ensure_onnx()
    runner = OnnxRunner(ctx.onnx_path, threads=ctx.config.thread_count())
    return ctx.measure("onnx", ctx.onnx_path, runner,
                       {"int8": False, "runtime": "onnxruntime", "inputs": runner.input_names,
                        "pre_processed": True, **info})


def _step_onnx_int8(ctx: _Context) -> ArtifactReport:
    """ORT dynamic INT8. When the guard rejects it (and ``auto_exclude``), retry with per-channel
    weight scales, then without each quantized op type in turn (each trial measured untimed on
    the eval set); the first variant that passes is kept and the report names what changed."""
    from distill.backends.onnx_runtime import OnnxRunner, node_types, quantize_onnx

    ctx.ensure_onnx()
    out = ctx.out_dir / "onnx-int8" / "model.onnx"
    cfg = ctx.config

    def attempt(path, op_types, per_channel, timed=None) -> ArtifactReport:
        info = quantize_onnx(ctx.onnx_path, path, op_types, cfg.onnx_weight_type,
                             per_channel, cfg.onnx_reduce_range)
        runner = OnnxRunner(path, threads=cfg.thread_count())
        return ctx.measure("onnx-int8", path, runner,
                           {"int8": True, "runtime": "onnxruntime",
                            "fp32_reference_bytes": ctx.onnx_path.stat().st_size, **info},
                           timed=timed)

    per_channel = cfg.onnx_per_channel
    if per_channel is None:  # measured: per-channel scales fix transformers (argmax agreement
        # 91 -> 99 %) but hurt ORT's quantized LSTM (logit error 0.4 -> 1.2)
        per_channel = not {"LSTM", "GRU"} & set(node_types(ctx.onnx_path))
    report = attempt(out, cfg.onnx_op_types, per_channel)
    if report.accepted or not cfg.auto_exclude:
        return report
    first_reason = report.reason
    variants = [(f"per_channel={not per_channel}", cfg.onnx_op_types, not per_channel, [])]
    for excluded in report.details["op_types_present"]:
        kept = tuple(t for t in cfg.onnx_op_types if t != excluded)
        variants.append((f"{excluded} left in FP32", kept, per_channel, [excluded]))
    tried = []
    for label, op_types, per_channel, excluded in variants:
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            trial = attempt(Path(tmp) / "model.onnx", op_types, per_channel, timed=False)
        tried.append({"variant": label, "accepted": trial.accepted, "reason": trial.reason})
        if trial.accepted:
            report = attempt(out, op_types, per_channel)
            report.details.update(excluded_op_types=excluded, retries=tried,
                                  full_quantization_reason=first_reason)
            if report.accepted:
                report.reason = f"{label}: the default quantization failed the guard ({first_reason})"
            return report
    report.details.update(excluded_op_types=[], retries=tried)
    return report


FORMAT_STEPS: Registry = Registry("export format")
FORMAT_STEPS.add("paddle", _step_paddle)
FORMAT_STEPS.add("paddle-int8", _step_paddle_int8)
FORMAT_STEPS.add("onnx", _step_onnx)
FORMAT_STEPS.add("onnx-int8", _step_onnx_int8)


# ------------------------------------------------------------------------------------ export

def _as_examples(items) -> List[Any]:
    from distill.data.examples import Example

    return [Example(text_a=e) if isinstance(e, str) else e for e in (items or [])]


def encode_batches(encoder, examples: Sequence[Any], max_len: int,
                   batch_size: int) -> List[Dict[str, np.ndarray]]:
    """Encode examples in input order, ``batch_size`` rows per padded batch."""
    batches = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        texts_b = [e.text_b or "" for e in chunk] if any(e.text_b for e in chunk) else None
        enc = encoder.encode([e.text_a for e in chunk], texts_b, max_len=max_len)
        batches.append({k: np.asarray(v, dtype=np.int64) for k, v in enc.items()})
    return batches


def export_model(model: Union[str, os.PathLike, "LoadedModel", Any], encoder: Any = None,
                 out_dir: Union[str, os.PathLike] = "export", *,
                 calib_examples: Optional[Sequence[Any]] = None,
                 eval_examples: Optional[Sequence[Any]] = None,
                 test_examples: Optional[Sequence[Any]] = None,
                 labels: Optional[Sequence[str]] = None,
                 config: Optional[ExportConfig] = None,
                 package: Optional[str] = None,
                 meta: Optional[Dict[str, Any]] = None,
                 trim_texts: Optional[Sequence[Any]] = None) -> ExportResult:
    """Export ``model``: a Paddle layer (with ``encoder``), a saved student/teacher directory,
    or a ``LoadedModel``.

    ``eval_examples``: the dev split the guard judges (``distill.data.examples.Example`` rows or
    plain strings); with labels they give accuracy, else the guard uses argmax agreement with
    FP32. ``test_examples``: labelled held-out rows, measured for the report only (never used for
    a choice). ``calib_examples``: texts for
    PTQ calibration (default: the eval texts). ``labels``: class names (a directory has its
    own). ``package``: also write ``OUT/NAME.tar.gz`` from the best accepted ONNX artifact.
    ``trim_texts``: the training (+ augmented) rows or texts that decide which pieces
    ``config.trim_vocab`` keeps (never the eval rows); the trimmed model is measured against the
    untrimmed one and used only if accepted (``reference["trim"]`` says what happened).
    ``out_dir`` must be new, empty or this tool's (it replaces its own earlier artifacts there).
    """
    from tqdm import tqdm

    from distill.data.examples import label_ids as to_label_ids
    from distill.train.device import seed_everything

    config = config or ExportConfig()
    config.validate()
    loaded = _as_loaded(model, encoder, labels, config)
    max_len = config.max_len or loaded.max_len
    seed_everything(config.seed)
    eval_examples, calib, test_examples = _example_sets(config, eval_examples, calib_examples,
                                                        test_examples)
    has_labels = all(e.label is not None for e in eval_examples) and bool(loaded.labels)
    label_array = to_label_ids(eval_examples, loaded.labels) if has_labels else None
    test_labels = to_label_ids(test_examples, loaded.labels) if test_examples and loaded.labels \
        else None

    trim_report = None
    if config.trim_vocab not in (None, False, "off"):
        loaded, trim_report = _trim(loaded, trim_texts, config, max_len, eval_examples,
                                    label_array)
    out_dir = fresh_out_dir(out_dir)
    eval_batches = encode_batches(loaded.encoder, eval_examples, max_len, config.eval_batch_size)
    calib_batches = encode_batches(loaded.encoder, calib, max_len, config.calib_batch_size)
    test_batches = encode_batches(loaded.encoder, test_examples, max_len, config.eval_batch_size) \
        if test_labels is not None else []
    from distill.backends.paddle_inference import dygraph_logits
    from distill.train.metrics import classification_metrics

    reference_logits = dygraph_logits(loaded.model, eval_batches)
    reference_dev = reference_test = None
    if label_array is not None:
        reference_dev = classification_metrics(label_array, reference_logits.argmax(-1))
    if test_batches:
        reference_test = classification_metrics(
            test_labels, dygraph_logits(loaded.model, test_batches).argmax(-1))
    ctx = _Context(loaded, config, out_dir, eval_batches, calib_batches, reference_logits,
                   label_array, reference_dev, test_batches, test_labels,
                   train_examples=_as_examples(calib_examples), eval_examples=eval_examples,
                   max_len=max_len)
    reports = [FORMAT_STEPS.get(fmt)(ctx) for fmt in
               tqdm([f for f in FORMATS if f in config.formats], desc="export", unit="format")]
    encoder_dir = out_dir / "encoder"
    _save_encoder(loaded.encoder, encoder_dir)
    text_pairs = loaded.text_pairs
    if text_pairs is None:
        text_pairs = any(e.text_b for e in eval_examples + calib)
    reference = {"dev": reference_dev, "test": reference_test, "selected_on": "dev",
                 "eval_examples": len(eval_examples), "test_examples": len(test_examples),
                 "calibration_examples": len(calib), "max_len": max_len,
                 "max_abs_logit": float(np.abs(reference_logits).max()),
                 "model": loaded.name, "kind": loaded.kind, "text_pairs": bool(text_pairs),
                 "trim": trim_report.to_dict() if trim_report else None}
    result = ExportResult(out_dir, reports, reference)
    if package:
        from distill.export.package import PackageMeta, build_package

        extra = dict(meta or {})
        pkg_meta = PackageMeta(teacher=str(extra.pop("teacher", "")),
                               student=str(extra.pop("student", loaded.kind)),
                               max_len=max_len, text_pairs=bool(text_pairs), extra=extra)
        result.package = build_package(reports, encoder_dir, loaded.labels,
                                       out_dir / f"{package}.tar.gz", pkg_meta)
    write_json(out_dir / "export_report.json",
               {**result.to_dict(), "config": dataclasses.asdict(config)})
    return result


def _as_loaded(model, encoder, labels, config: ExportConfig) -> LoadedModel:
    """``export_model``'s ``model`` argument as a ``LoadedModel`` (``labels`` override its own)."""
    if isinstance(model, LoadedModel):
        loaded = model
    elif isinstance(model, (str, os.PathLike)):
        loaded = load_model_dir(model)
    else:
        loaded = LoadedModel(model, encoder, list(labels or []), config.max_len or 128)
    if loaded.encoder is None:
        raise UserError("export_model: give the encoder that feeds the model")
    if labels:
        loaded.labels = list(labels)
    return loaded


def _example_sets(config: ExportConfig, eval_examples, calib_examples, test_examples):
    """(the dev rows the guard judges, the seeded calibration sample, the labelled test rows)."""
    eval_examples = _as_examples(eval_examples)
    calib_pool = _as_examples(calib_examples) or eval_examples
    if not eval_examples and not calib_pool:
        raise UserError("export_model: give eval_examples (and/or calib_examples) to measure on")
    eval_examples = eval_examples or calib_pool
    if config.qat_settings() is not None and "paddle-int8" in config.formats \
            and not calib_examples:
        raise UserError("qat trains on the training rows: give them as calib_examples "
                        "(distill export --calib FILE); the dev rows only choose")
    order = np.sort(np.random.default_rng(config.seed).permutation(len(calib_pool))
                    [: config.calib_size])
    calib = [calib_pool[i] for i in order]
    test = [e for e in _as_examples(test_examples) if e.label is not None]
    return eval_examples, calib, test


def fresh_out_dir(out_dir) -> Path:
    """``out_dir`` (new, empty or the tool's: ``ensure_owned_dir``) without an earlier export's
    artifacts, so two exports never mix."""
    out_dir = ensure_owned_dir(out_dir, "export folder")
    for stale in [out_dir / fmt for fmt in FORMATS] + \
            [_candidate_dir(out_dir, mode) for mode in INT8_MODES]:
        shutil.rmtree(stale, ignore_errors=True)
    return out_dir


def _trim(loaded: LoadedModel, trim_texts, config: ExportConfig, max_len: int, eval_examples,
          label_array):
    """The trimmed model if it keeps accuracy (like the INT8 guard), else the untrimmed one."""
    from distill.backends.paddle_inference import dygraph_logits
    from distill.export.trim import texts_of, trim_model

    if not trim_texts:
        raise UserError("trim_vocab needs the training texts that decide which pieces to keep "
                        "(export_model(trim_texts=...), distill export --trim-texts FILE)")
    trimmed, report = trim_model(loaded, texts_of(trim_texts), config.trim_vocab, max_len)
    if trimmed is loaded:
        return loaded, report
    batch = config.eval_batch_size
    before = dygraph_logits(loaded.model, encode_batches(loaded.encoder, eval_examples, max_len,
                                                         batch))
    after = dygraph_logits(trimmed.model, encode_batches(trimmed.encoder, eval_examples, max_len,
                                                         batch))
    report.argmax_agreement = float(np.mean(before.argmax(-1) == after.argmax(-1)))
    if label_array is not None:
        from distill.train.metrics import classification_metrics

        report.test_before = classification_metrics(label_array, before.argmax(-1))
        report.test_after = classification_metrics(label_array, after.argmax(-1))
        drop = report.test_before["accuracy"] - report.test_after["accuracy"]
        if drop > config.max_accuracy_drop:
            report.accepted = False
            report.reason = (f"accuracy {100 * report.test_after['accuracy']:.2f}% is "
                             f"{100 * drop:.2f} points below the untrimmed "
                             f"{100 * report.test_before['accuracy']:.2f}% (limit "
                             f"{100 * config.max_accuracy_drop:.2f})")
    elif config.max_disagreement is not None and \
            1 - report.argmax_agreement > config.max_disagreement:
        report.accepted = False
        report.reason = (f"argmax agreement with the untrimmed model "
                         f"{100 * report.argmax_agreement:.1f}% is below "
                         f"{100 * (1 - config.max_disagreement):.1f}% (no labels to measure "
                         f"accuracy)")
    if not report.accepted:
        logger.warning("trim_vocab rejected, exporting the untrimmed model: %s", report.reason)
        return loaded, report
    logger.info("trim_vocab %s: %d -> %d pieces, %d -> %d parameters", report.setting,
                report.vocab_before, report.vocab_after, report.parameters_before,
                report.parameters_after)
    return trimmed, report


def _save_encoder(encoder, directory: Path) -> None:
    from distill.core.io import atomic_path

    with atomic_path(directory) as tmp:
        tmp.mkdir()
        encoder.save(tmp)


# ------------------------------------------------------------------------------------- CLI
