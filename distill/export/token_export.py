"""Export a token tagger (NER student or teacher): the four formats of ``distill.export.exporter``,
each measured in its own runtime and guarded on entity F1.

    result = export_token_model("runs/x/distill/lstm/seed0/student", "runs/x/export/lstm",
                                eval_examples=task.dev, test_examples=task.test,
                                calib_examples=task.train,
                                tags=task.tags, scheme=task.scheme, max_f1_drop=0.5,
                                config=ExportConfig(formats=("onnx", "onnx-int8")))
    path = package_token_model(result, "runs/x/ner.tar.gz", tags, scheme, unit)

Same steps as sentence models (Paddle inference, PaddleSlim INT8, paddle2onnx, ONNX Runtime
dynamic INT8 with its retries: per-channel scales, then each quantized op type left in FP32),
but measured per token: the runner's (B, T, C) logits are read at each token's first sub-token;
``parity`` compares those rows with the FP32 dygraph model on dev (max abs difference, per-token
argmax agreement); ``dev`` and ``test`` hold seqeval entity precision/recall/F1 (strict,
repaired predictions); the guard judges dev only, test is reported. It rejects an artifact whose
dev entity F1 is more than ``max_f1_drop`` points (default 0.5) below the FP32 model's, whose tags differ from FP32 on more than ``max_disagreement`` of the
tokens, an FP32 artifact whose logits differ beyond ``fp32_tolerance``, or an INT8 artifact
that quantized nothing. INT8 collapses on token classification are the known failure (PaddleNLP
#4601; static INT8 DistilBERT on CoNLL-03 F1 0.94 -> 0.10): that is what this guard catches.
"""
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from distill.core.errors import UserError
from distill.core.io import write_json
from distill.export.exporter import (FORMAT_STEPS, FORMATS, ExportConfig, ExportResult,
                                     _Context, _save_encoder, fresh_out_dir, load_model_dir)
from distill.export.measure import (ArtifactReport, _singles, artifact_size, latency_b1,
                                   numeric_reasons, throughput, verdict)

DEFAULT_MAX_F1_DROP = 0.5  # points of entity F1


@dataclasses.dataclass
class _TokenSplit:
    """One encoded split: model inputs per batch, where each token is read, gold tags."""

    inputs: List[Dict[str, np.ndarray]]
    token_index: List[np.ndarray]  # per batch (B, W)
    token_mask: List[np.ndarray]  # per batch (B, W)
    gold: Optional[List[List[str]]]  # per sentence, None when untagged


@dataclasses.dataclass
class _TokenContext(_Context):
    """The exporter's context, measuring per token and judging on dev entity F1."""

    dev_split: Optional[_TokenSplit] = None
    test_split: Optional[_TokenSplit] = None
    tags: Sequence[str] = ()
    scheme: str = "bio"
    max_f1_drop: float = DEFAULT_MAX_F1_DROP
    reference_rows: Optional[np.ndarray] = None  # (sum W, C) FP32 token logits on dev
    crf: Optional[Dict[str, np.ndarray]] = None  # a CRF tagger's transitions: Viterbi decoding

    @staticmethod
    def rows(runner, split: _TokenSplit) -> np.ndarray:
        """(sum W, C) logits of every real token of ``split``, in order."""
        out = []
        for feed, index, mask in zip(split.inputs, split.token_index, split.token_mask):
            logits = np.asarray(runner(feed), dtype=np.float32)  # (B, T, C)
            rows = np.take_along_axis(logits, index[:, :, None], axis=1)  # (B, W, C)
            out.append(rows[mask > 0])
        return np.concatenate(out)

    def entity_scores(self, rows: np.ndarray, split: _TokenSplit) -> Optional[Dict[str, Any]]:
        if split.gold is None:
            return None
        from distill.train.metrics import entity_metrics
        from distill.train.token_eval import tags_from_logits

        pred, start = [], 0
        for gold in split.gold:
            n = len(gold)
            pred.append(tags_from_logits(rows[start:start + n], self.tags, self.scheme,
                                         crf=self.crf))
            start += n
        return entity_metrics(split.gold, pred, self.scheme)

    def measure(self, fmt: str, path, runner, details: Dict[str, Any],
                timed: Optional[bool] = None) -> ArtifactReport:
        cfg = self.config
        details = {"reference_max_abs_logit": float(np.abs(self.reference_rows).max()),
                   "threads": cfg.thread_count(), "task": "token", **details}
        rows = self.rows(runner, self.dev_split)
        agreement = float(np.mean(rows.argmax(-1) == self.reference_rows.argmax(-1)))
        report = ArtifactReport(
            format=fmt, path=str(path), size_bytes=artifact_size(path),
            parity={"max_abs_diff": float(np.abs(rows - self.reference_rows).max()),
                    "argmax_agreement": agreement},
            test=None, latency_ms_b1={"p50": 0.0, "p95": 0.0}, throughput_b32=0.0,
            details=details, dev=self.entity_scores(rows, self.dev_split))
        if (cfg.timed if timed is None else timed):
            singles = _singles(self.eval_batches, cfg.measure.latency_sentences)
            report.latency_ms_b1 = latency_b1(runner, singles, cfg.measure)
            report.throughput_b32 = throughput(runner, self.eval_batches, cfg.measure)
        report = judge_tokens(report, self.reference_dev, self.max_f1_drop, cfg.fp32_tolerance,
                              cfg.max_disagreement)
        if self.test_split is not None:  # reported only, never used for a choice
            report.test = self.entity_scores(self.rows(runner, self.test_split), self.test_split)
        return report


def judge_tokens(report: ArtifactReport, reference_dev: Optional[Dict[str, Any]],
                 max_f1_drop: float = DEFAULT_MAX_F1_DROP, fp32_tolerance: float = 1e-3,
                 max_disagreement: Optional[float] = 0.05) -> ArtifactReport:
    """The token guard (see the module docstring) on the dev split's entity F1 (``report.dev``
    against the FP32 model's ``reference_dev``); ``max_f1_drop`` in points."""
    reasons = []
    if report.dev is not None and reference_dev is not None:
        drop = 100.0 * (reference_dev["f1"] - report.dev["f1"])
        report.details["f1_drop_points"] = drop
        if drop > max_f1_drop + 1e-9:
            reasons.append(f"dev entity F1 {100 * report.dev['f1']:.2f} vs FP32 "
                           f"{100 * reference_dev['f1']:.2f}: drop {drop:.2f} points > "
                           f"max_f1_drop {max_f1_drop:.2f}")
    disagreement = 1.0 - report.parity["argmax_agreement"]
    if max_disagreement is not None and disagreement > max_disagreement + 1e-12:
        reasons.append(f"tags differ from FP32 on {100 * disagreement:.2f}% of the eval tokens "
                       f"> {100 * max_disagreement:.2f}%")
    return verdict(report, reasons + numeric_reasons(report, fp32_tolerance))


def _split(encoder, examples, max_len: int, batch_size: int, tags) -> _TokenSplit:
    from distill.data.token_batching import TokenBatchPlan, encode_token_examples

    labelled = bool(examples) and all(ex.tags is not None for ex in examples)
    data = encode_token_examples(encoder, examples, max_len, tags=list(tags) if labelled else None)
    batches = list(TokenBatchPlan(data, batch_size, shuffle=False, bucket=False).epoch(0))
    return _TokenSplit([b["inputs"] for b in batches], [b["token_index"] for b in batches],
                       [b["token_mask"] for b in batches],
                       [list(ex.tags) for ex in examples] if labelled else None)


def export_token_model(model_dir, out_dir, *, eval_examples, test_examples=None,
                       calib_examples=None, tags: Sequence[str], scheme: str,
                       max_f1_drop: float = DEFAULT_MAX_F1_DROP,
                       config: Optional[ExportConfig] = None) -> ExportResult:
    """Export and measure a saved tagger (student dir or token teacher dir). ``eval_examples``
    (dev) are what the guard judges; ``test_examples`` are only measured and reported."""
    from tqdm import tqdm

    from distill.train.device import seed_everything
    from distill.train.token_eval import crf_of

    config = config or ExportConfig()
    config.validate()
    if max_f1_drop < 0:
        raise UserError(f"max_f1_drop={max_f1_drop}: give points of entity F1 (>= 0), e.g. 0.5")
    loaded = _load_tagger(model_dir)
    max_len = config.max_len or loaded.max_len
    seed_everything(config.seed)
    eval_examples = list(eval_examples)
    if not eval_examples:
        raise UserError("export_token_model: give eval_examples (tagged dev sentences)")
    pool = list(calib_examples or eval_examples)
    order = np.sort(np.random.default_rng(config.seed).permutation(len(pool))[: config.calib_size])
    calib = [pool[i] for i in order]
    dev = _split(loaded.encoder, eval_examples, max_len, config.eval_batch_size, tags)
    test = (_split(loaded.encoder, list(test_examples), max_len, config.eval_batch_size, tags)
            if test_examples else None)
    calib_split = _split(loaded.encoder, calib, max_len, config.calib_batch_size, tags)
    out_dir = fresh_out_dir(out_dir)
    ctx = _TokenContext(loaded, config, out_dir, dev.inputs, calib_split.inputs,
                        reference_logits=np.zeros((0, 0)), label_ids=None, reference_dev=None,
                        dev_split=dev, test_split=test, tags=list(tags), scheme=scheme,
                        max_f1_drop=max_f1_drop, crf=crf_of(loaded.model))
    reference = _dygraph_runner(loaded.model)
    ctx.reference_rows = ctx.reference_logits = ctx.rows(reference, dev)
    ctx.reference_dev = ctx.entity_scores(ctx.reference_rows, dev)
    reference_test = ctx.entity_scores(ctx.rows(reference, test), test) if test else None
    reports = [FORMAT_STEPS.get(fmt)(ctx)
               for fmt in tqdm([f for f in FORMATS if f in config.formats], desc="export",
                               unit="format")]
    _save_encoder(loaded.encoder, out_dir / "encoder")
    summary = {"dev": ctx.reference_dev, "test": reference_test,
               "eval_examples": len(eval_examples),
               "test_examples": len(test_examples or []), "calibration_examples": len(calib),
               "max_len": max_len, "max_abs_logit": float(np.abs(ctx.reference_rows).max()),
               "model": loaded.name, "kind": loaded.kind, "text_pairs": False,
               "task": "token", "max_f1_drop": max_f1_drop, "selected_on": "dev"}
    if ctx.crf is not None:  # the package decodes with these (distill.serve.tokens)
        summary["crf"] = {k: v.tolist() for k, v in ctx.crf.items()}
    result = ExportResult(out_dir, reports, summary)
    write_json(out_dir / "export_report.json",
               {**result.to_dict(), "config": dataclasses.asdict(config)})
    return result


def _dygraph_runner(model):
    """The FP32 reference as a runner: feed dict -> (B, T, C) logits, eval mode, no grad."""
    import paddle

    def run(feed):
        was_training = model.training
        model.eval()
        try:
            with paddle.no_grad():
                tensors = {k: paddle.to_tensor(np.asarray(v, np.int64)) for k, v in feed.items()}
                return model(tensors["input_ids"], token_type_ids=tensors.get("token_type_ids"),
                             attention_mask=tensors.get("attention_mask"))["logits"].numpy()
        finally:
            if was_training:
                model.train()

    return run


def _load_tagger(model_dir):
    from distill.core.io import read_json
    from distill.export.exporter import LoadedModel

    directory = Path(model_dir)
    teacher_json = directory / "teacher.json"
    if teacher_json.is_file() and read_json(teacher_json).get("task") == "token":
        from teachers.token_model import load_token_teacher

        teacher = load_token_teacher(directory)
        return LoadedModel(teacher.model, teacher.tokenizer, list(teacher.labels),
                           int(teacher.max_len), kind="teacher", name=teacher.name,
                           text_pairs=False)
    return load_model_dir(directory)


def package_token_model(reports, encoder_dir, out_path, tags: Sequence[str], scheme: str,
                        unit: str, max_len: int, teacher: str = "", student: str = "",
                        extra: Optional[Dict[str, Any]] = None,
                        crf: Optional[Dict[str, Any]] = None):
    """``NAME.tar.gz`` with the best accepted ONNX tagger; ``config.json`` says
    ``task: token-classification`` and how to split text (``token.unit``) and read tags
    (``token.scheme``) and, for a CRF tagger, its transitions (``token.crf``: ``transitions``,
    ``start``, ``end``; predictions are then Viterbi paths); ``distill.serve.predict.load_package``
    returns entity spans."""
    from distill.export.package import PackageMeta, build_package

    meta = PackageMeta(teacher=teacher, student=student, max_len=int(max_len), text_pairs=False,
                       extra=dict(extra or {}),
                       config={"task": "token-classification",
                               "token": {"scheme": scheme, "unit": unit,
                                         **({"crf": crf} if crf else {})},
                               "output": "logits (batch, sub-tokens, num_labels); read each "
                                         "token's first sub-token, softmax, argmax, decode "
                                         "the scheme's spans"})
    return build_package(reports, encoder_dir, list(tags), out_path, meta)
