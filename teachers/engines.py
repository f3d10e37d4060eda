"""Labelling engines: the teacher's logits through Paddle dygraph, Paddle Inference or ONNX Runtime.

    from teachers.engines import EngineOptions, build_engine
    engine = build_engine("onnx", teacher)           # exported once, cached by weights hash
    engine.logits({"input_ids": ids, "token_type_ids": types, "attention_mask": mask})  # (B, C)

    distill label --teacher runs/t/teacher --input aug.tsv --out runs/t/labels --engine onnx

Every engine has one interface: ``engine.logits(inputs)`` with ``inputs`` a dict of int64 (B, T)
arrays (the encoder contract) returns float32 (B, C); an engine is also callable, so it is the
``predict`` that ``teachers.soft_labels.label_encoded`` takes. Engines (``ENGINES`` registry):

* ``dygraph`` — the Paddle model itself, eval mode, no grad (the reference; GPU when present);
* ``paddle-inference`` — the ``paddle.jit.save``-d model in Paddle Inference FP32, oneDNN on;
* ``onnx`` — paddle2onnx -> ONNX Runtime FP32 (docs/design.md: 4.1x dygraph on this CPU);
* ``onnx-int8`` — ONNX Runtime dynamic INT8 (MatMul + Gather weights); never picked by ``auto``:
  its logits move (docs/design.md: max diff 0.04 on MiniLM), so ``soft_labels`` checks it against
  ``onnx`` on a sample and reports max abs diff and argmax agreement.

``auto`` = ``onnx`` on CPU (measured fastest there, docs/design.md). On a GPU ``auto`` measures:
``choose`` times the candidates (``gpu_candidates``: dygraph with AMP O1, dygraph with AMP O2,
Paddle Inference on the GPU, with TensorRT when the build has it) on the sample batch that the
FP32 check uses, keeps those whose logits pass the check against FP32 dygraph, and labels with
the fastest (``pick``, a pure function); the timings go into the labelling report. Mixed
precision (AMP, ``EngineOptions.amp``) follows ``distill.train.device.use_amp``: on by default on
GPU, never on CPU; an AMP engine is checked with the looser ``AMP_TOLERANCE``. Threads are fixed per engine (default: the usable
cores, ``distill.core.runtime.num_threads``). Exported files are cached under
``<cache_root>/<sha256(weights)[:16]>/<paddle|onnx|onnx-int8>/`` with an ``engine.json`` holding
the full hash, so a changed teacher never reuses a stale export. ``cache_root`` defaults to
``$ERNIE_DISTILL_HOME/engines``; ``distill label`` puts it next to a teacher directory
(``<teacher>.engines/``). The export itself is ``distill.backends.paddle_inference.save_inference_model``
and ``distill.backends.onnx_runtime.to_onnx`` / ``quantize_onnx`` (the same code as ``distill export``).
"""
import hashlib
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from distill.core.errors import UserError
from distill.core.io import atomic_path, home, read_json, write_json
from distill.core.registry import Registry
from distill.text.encoders import INPUT_NAMES

log = logging.getLogger("teachers.engines")

Inputs = Dict[str, np.ndarray]  # input_ids / token_type_ids / attention_mask: (B, T) int64
INT8_OPS = ("MatMul", "Gather")  # docs/design.md: MiniLM 282 -> 605 ex/s, max logit diff 0.04
FP32_TOLERANCE = 1e-3  # an exported FP32 engine must match dygraph this closely (scaled by |logit|)
DYGRAPH_CHECK_ROWS = 8  # rows run through dygraph to check an export (dygraph is the slow one)
# An FP16 (AMP / TensorRT half) engine must match FP32 dygraph this closely (scaled by |logit|):
# FP16 keeps ~3 significant digits; a wrong engine (shuffled rows, wrong inputs) is off by O(1).
# Not yet measured on a GPU (docs/distributed.md).
AMP_TOLERANCE = 2e-2
TIMING_REPEATS = 3  # timed passes over the sample per candidate (after one warm-up pass)


class EngineError(UserError):
    """An engine that cannot be built, or an exported FP32 engine that disagrees with dygraph."""


@dataclass
class EngineOptions:
    """How an engine runs. ``threads=None``: the usable cores (``distill.core.runtime.num_threads``)."""

    threads: Optional[int] = None
    device: str = "auto"  # dygraph only: auto, cpu, gpu, gpu:N
    cache_root: Optional[str] = None  # export cache; None: $ERNIE_DISTILL_HOME/engines
    mkldnn: bool = True  # paddle-inference: oneDNN kernels
    sessions: int = 1  # onnx engines: >1 splits each batch's rows over this many sessions
    int8_ops: Tuple[str, ...] = INT8_OPS  # onnx-int8: op types whose weights become int8
    int8_per_channel: bool = True  # onnx-int8: a scale per output channel (export.py measured
    # transformer argmax agreement 91% -> 99% with it)
    amp: bool = True  # dygraph / paddle-inference: FP16 mixed precision, used only on GPU (use_amp)
    amp_level: str = "O1"  # dygraph: O1 (listed ops in FP16) or O2 (FP16 weights, a copy)
    tensorrt: Optional[bool] = None  # paddle-inference on GPU: None = when the build has it
    max_batch: int = 64  # TensorRT dynamic shapes: the largest batch ...
    max_len: int = 512  # ... and sequence length it will be given

    def int8_variant(self) -> str:
        """What makes INT8 soft labels differ: part of their cache key."""
        return f"onnx-int8:{','.join(self.int8_ops)}:per_channel={self.int8_per_channel}"

    def resolved_threads(self) -> int:
        from distill.core.runtime import num_threads

        return int(self.threads or num_threads())

    def mixed_precision(self, device: str) -> bool:
        """Whether engines on ``device`` (a routed ``cpu``/``gpu:N``) run in FP16 mixed precision."""
        from distill.train.device import use_amp

        return use_amp(device, self.amp)


# ------------------------------------------------------------------------------ engines

class Engine:
    """Base class: ``logits(inputs) -> (B, C) float32``; ``info`` describes files and settings."""

    name = "engine"

    def __init__(self, info: Optional[dict] = None):
        self.info = dict(info or {})

    def logits(self, inputs: Inputs) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, inputs: Inputs) -> np.ndarray:
        return self.logits(inputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, threads={self.info.get('threads')})"


def _feed(inputs: Inputs) -> Inputs:
    return {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in INPUT_NAMES}


class DygraphEngine(Engine):
    """The Paddle model in eval mode under ``no_grad`` (per-layer modes restored after each call).

    With AMP (GPU only, ``EngineOptions.amp``) the forward runs under ``paddle.amp.auto_cast``:
    O1 casts the listed ops' inputs to FP16; O2 runs an FP16 copy of the model
    (``paddle.amp.decorate``; the caller's model is left in FP32). Logits come back as float32.
    """

    name = "dygraph"

    def __init__(self, model, options: EngineOptions):
        import paddle

        from distill.train.device import amp_level, select_device

        place = select_device(options.device)
        threads = options.resolved_threads()
        if place == "cpu":
            paddle.base.core.set_num_threads(threads)
        else:
            model.to(device=place)
        self.amp = options.mixed_precision(place)
        self.amp_level = amp_level(options.amp_level)
        if self.amp and self.amp_level == "O2":
            import copy

            model = paddle.amp.decorate(models=copy.deepcopy(model), level="O2")
        precision = f"fp16 (AMP {self.amp_level})" if self.amp else "fp32"
        super().__init__({"device": place, "threads": threads, "amp": self.amp,
                          "amp_level": self.amp_level if self.amp else None,
                          "precision": precision})
        self.model = model

    def logits(self, inputs: Inputs) -> np.ndarray:
        import paddle

        from distill.train.trainer import eval_mode

        with eval_mode(self.model):
            feed = {k: paddle.to_tensor(v) for k, v in _feed(inputs).items()}
            with paddle.amp.auto_cast(enable=self.amp, level=self.amp_level):
                out = self.model(**feed)["logits"]  # (B, C)
            return out.astype(paddle.float32).numpy()


class PaddleInferenceEngine(Engine):
    """Paddle Inference on the jit-saved model (``distill.backends.paddle_inference.PaddleRunner``):
    FP32 with oneDNN on CPU; on a GPU (``options.device``) FP16 when AMP is on, with TensorRT
    when ``options.tensorrt`` (None: when ``tensorrt_available()``). ``info["tensorrt"]`` says
    TensorRT was configured, which is all Paddle tells before it builds its subgraphs."""

    name = "paddle-inference"

    def __init__(self, model_dir: Path, options: EngineOptions, info: dict):
        from distill.backends.paddle_inference import PaddleRunner, tensorrt_available
        from distill.train.device import select_device

        threads = options.resolved_threads()
        place = select_device(options.device)
        gpu = place.startswith("gpu")
        half = options.mixed_precision(place)
        trt = gpu and (tensorrt_available() if options.tensorrt is None else bool(options.tensorrt))
        inputs = info.get("details", {}).get("inputs") or INPUT_NAMES
        self.runner = PaddleRunner(model_dir, int8=False, threads=threads, mkldnn=options.mkldnn,
                                   device=place, half=half, tensorrt=trt,
                                   max_batch=options.max_batch, max_len=options.max_len,
                                   input_names=inputs)
        precision = "fp16" if half else "fp32"
        super().__init__(dict(info, threads=threads, mkldnn=options.mkldnn and not gpu,
                              device=place, amp=half, tensorrt=trt,
                              precision=precision + (" (TensorRT)" if trt else "")))

    def logits(self, inputs: Inputs) -> np.ndarray:
        return np.asarray(self.runner(_feed(inputs)), dtype=np.float32)


class OnnxEngine(Engine):
    """ONNX Runtime CPU session, ``intra_op_num_threads`` fixed (``distill.backends.onnx_runtime.OnnxRunner``).

    With ``options.sessions = k > 1``: k sessions of ``threads // k`` threads each; every batch
    is cut into k row blocks run at the same time (ORT releases the GIL), i.e. data parallelism
    instead of splitting each GEMM across threads.
    """

    name = "onnx"

    def __init__(self, path: Path, options: EngineOptions, info: dict):
        from distill.backends.onnx_runtime import OnnxRunner

        threads, sessions = options.resolved_threads(), max(1, int(options.sessions))
        per_session = max(1, threads // sessions)
        self.runners = [OnnxRunner(path, threads=per_session) for _ in range(sessions)]
        self.pool = None
        if sessions > 1:
            import concurrent.futures

            self.pool = concurrent.futures.ThreadPoolExecutor(sessions)
        super().__init__(dict(info, threads=per_session * sessions, sessions=sessions))

    def logits(self, inputs: Inputs) -> np.ndarray:
        feed = _feed(inputs)
        rows = len(feed["input_ids"])
        if self.pool is None or rows < 2:
            return np.asarray(self.runners[0](feed), dtype=np.float32)
        bounds = np.linspace(0, rows, len(self.runners) + 1).astype(int)
        parts = [{k: v[a:b] for k, v in feed.items()} for a, b in zip(bounds[:-1], bounds[1:])
                 if b > a]
        outs = self.pool.map(lambda job: job[0](job[1]), zip(self.runners, parts))
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outs])  # (B, C)


class OnnxInt8Engine(OnnxEngine):
    name = "onnx-int8"


# ------------------------------------------------------------------------------ export cache

def weights_sha256(model) -> str:
    """sha256 over a model's state dict (names, dtypes, shapes, bytes), in name order."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        array = np.ascontiguousarray(tensor.numpy())
        h.update(f"{name}:{array.dtype}:{array.shape};".encode())
        h.update(array.tobytes())
    return h.hexdigest()


def cache_dir(weights_sha: str, options: EngineOptions) -> Path:
    """``<cache_root>/<sha[:16]>``: where one teacher's exported engines live."""
    root = Path(options.cache_root) if options.cache_root else home() / "engines"
    return root / weights_sha[:16]


def _versions() -> Dict[str, str]:
    import importlib.metadata as md

    out = {}
    for name in ("paddlepaddle", "paddle2onnx", "onnxruntime"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = ""
    return out


def _cached(folder: Path, weights_sha: str, settings: dict) -> Optional[dict]:
    meta_path = folder / "engine.json"
    if not meta_path.exists():
        return None
    meta = read_json(meta_path)
    if meta.get("weights_sha256") != weights_sha or meta.get("settings") != settings:
        return None
    if meta.get("versions") != _versions():
        return None
    return meta


def _build_artifact(folder: Path, weights_sha: str, settings: dict, build) -> dict:
    """Return the cached artifact's ``engine.json`` or run ``build(tmp_dir) -> details`` into
    ``folder`` atomically and write it."""
    meta = _cached(folder, weights_sha, settings)
    if meta is not None:
        return dict(meta, cache_hit=True)
    start = time.perf_counter()
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        details = build(tmp)
        meta = {"weights_sha256": weights_sha, "settings": settings, "versions": _versions(),
                "export_seconds": round(time.perf_counter() - start, 3), "details": details}
        write_json(tmp / "engine.json", meta)
    log.info("exported %s in %.1f s", folder, meta["export_seconds"])
    return dict(meta, cache_hit=False)


def export_paddle(model, weights_sha: str, options: EngineOptions) -> Tuple[Path, dict]:
    """The jit-saved inference model (``model.pdmodel`` + ``model.pdiparams``), cached."""
    from distill.backends.paddle_inference import save_inference_model

    folder = cache_dir(weights_sha, options) / "paddle"

    def build(tmp: Path) -> dict:
        return {"inputs": save_inference_model(model, tmp / "model")}

    meta = _build_artifact(folder, weights_sha, {}, build)
    return folder / "model", meta


def export_onnx(model, weights_sha: str, options: EngineOptions) -> Tuple[Path, dict]:
    """paddle2onnx FP32 file, pre-processed for quantization (``distill.backends.onnx_runtime.to_onnx``)."""
    from distill.backends.onnx_runtime import to_onnx

    paddle_dir, _ = export_paddle(model, weights_sha, options)
    folder = cache_dir(weights_sha, options) / "onnx"
    meta = _build_artifact(folder, weights_sha, {},
                           lambda tmp: to_onnx(paddle_dir, tmp / "model.onnx"))
    return folder / "model.onnx", meta


def export_onnx_int8(model, weights_sha: str, options: EngineOptions) -> Tuple[Path, dict]:
    """ONNX Runtime dynamic INT8 of the FP32 file (weights of ``options.int8_ops`` as int8)."""
    from distill.backends.onnx_runtime import quantize_onnx

    fp32, _ = export_onnx(model, weights_sha, options)
    ops, per_channel = list(options.int8_ops), bool(options.int8_per_channel)
    folder = cache_dir(weights_sha, options) / "onnx-int8"
    meta = _build_artifact(folder, weights_sha, {"op_types": ops, "per_channel": per_channel},
                           lambda tmp: quantize_onnx(fp32, tmp / "model.onnx", op_types=ops,
                                                     per_channel=per_channel))
    if not meta["details"].get("quantized_weight_fraction"):
        raise EngineError(f"{folder}: quantize_dynamic quantized nothing (op types {ops})")
    return folder / "model.onnx", meta


# ------------------------------------------------------------------------------ registry

def _dygraph(model, weights_sha: Optional[str], options: EngineOptions) -> Engine:
    return DygraphEngine(model, options)


def _paddle_inference(model, weights_sha: Optional[str], options: EngineOptions) -> Engine:
    path, meta = export_paddle(model, weights_sha or weights_sha256(model), options)
    return PaddleInferenceEngine(path, options, _info(path, meta))


def _onnx(model, weights_sha: Optional[str], options: EngineOptions) -> Engine:
    path, meta = export_onnx(model, weights_sha or weights_sha256(model), options)
    return OnnxEngine(path, options, _info(path, meta))


def _onnx_int8(model, weights_sha: Optional[str], options: EngineOptions) -> Engine:
    path, meta = export_onnx_int8(model, weights_sha or weights_sha256(model), options)
    return OnnxInt8Engine(path, options, _info(path, meta))


def _info(path: Path, meta: dict) -> dict:
    return {"path": str(path), "cache_hit": meta["cache_hit"],
            "export_seconds": meta["export_seconds"], "details": meta["details"]}


ENGINES = Registry("labelling engine")
ENGINES.add("dygraph", _dygraph)
ENGINES.add("paddle-inference", _paddle_inference)
ENGINES.add("onnx", _onnx)
ENGINES.add("onnx-int8", _onnx_int8)
QUANTIZED = ("onnx-int8",)  # engines whose soft labels differ from the model's beyond rounding


def resolve_name(name: str, device: str = "auto") -> str:
    """``auto`` -> ``onnx`` on CPU, ``dygraph`` on GPU (where ``auto`` is then measured:
    ``auto_candidates``); other names are checked and returned."""
    if name == "auto":
        from distill.train.device import select_device

        return "dygraph" if select_device(device).startswith("gpu") else "onnx"
    ENGINES.get(name)  # UserError listing the names when unknown
    return name


def build_engine(name: str, teacher, options: Optional[EngineOptions] = None,
                 weights_sha: Optional[str] = None) -> Engine:
    """The engine ``name`` (or ``auto``) for ``teacher`` (a ``Teacher`` or a bare Paddle model).

    Exported engines are built once per weights hash (``weights_sha``: pass it when known) and
    loaded from the cache afterwards.
    """
    options = options or EngineOptions()
    model = getattr(teacher, "model", teacher)
    resolved = resolve_name(name, options.device)
    try:
        engine = ENGINES.get(resolved)(model, weights_sha, options)
    except UserError:
        raise
    except Exception as err:  # paddle2onnx / ORT / Paddle Inference failures
        raise EngineError(f"engine '{resolved}': export or load failed: "
                          f"{type(err).__name__}: {err}") from err
    engine.info["engine"] = resolved
    return engine


# ------------------------------------------------------------------------------ checks

def compare(engine: Engine, reference: Engine, batches: Sequence[Inputs]) -> Dict[str, float]:
    """Max abs logit difference and argmax agreement of ``engine`` vs ``reference``."""
    got = np.concatenate([engine.logits(b) for b in batches])  # (N, C)
    ref = np.concatenate([reference.logits(b) for b in batches])  # (N, C)
    return {"rows": int(len(ref)), "max_abs_diff": float(np.abs(got - ref).max()),
            "argmax_agreement": float((got.argmax(-1) == ref.argmax(-1)).mean()),
            "reference_max_abs_logit": float(np.abs(ref).max())}


def tolerance_for(engine: Engine) -> float:
    """``AMP_TOLERANCE`` for an engine running in FP16, else ``FP32_TOLERANCE``."""
    return AMP_TOLERANCE if engine.info.get("amp") else FP32_TOLERANCE


def within(result: Dict[str, float], tolerance: float) -> bool:
    """Whether a ``compare`` result is within ``tolerance`` (scaled by the largest |logit|)."""
    return result["max_abs_diff"] <= tolerance * max(1.0, result["reference_max_abs_logit"])


def check_fp32(engine: Engine, reference: Engine, batches: Sequence[Inputs],
               tolerance: Optional[float] = None) -> Dict[str, float]:
    """Raise ``EngineError`` when an engine disagrees with the FP32 dygraph model (``tolerance``
    None: ``tolerance_for(engine)``)."""
    tolerance = tolerance_for(engine) if tolerance is None else tolerance
    result = compare(engine, reference, batches)
    if not within(result, tolerance):
        limit = tolerance * max(1.0, result["reference_max_abs_logit"])
        raise EngineError(f"engine '{engine.name}' ({engine.info.get('path') or engine.info.get('precision')}) "
                          f"differs from FP32 dygraph by {result['max_abs_diff']:.3g} > {limit:.3g} "
                          f"on {result['rows']} rows; label with --engine dygraph")
    return result


def fp32_reference(teacher, options: EngineOptions) -> Engine:
    """The reference every check compares with: dygraph, AMP off, where the model runs."""
    return build_engine("dygraph", teacher, replace(options, amp=False))


def _head(sample: Sequence[Inputs]) -> List[Inputs]:
    return [{k: v[:DYGRAPH_CHECK_ROWS] for k, v in sample[0].items()}]


# ------------------------------------------------------------------------------ measured choice

@dataclass(frozen=True)
class Candidate:
    """One way to label that ``auto`` may measure: an engine and its precision settings."""

    engine: str
    amp: bool = False  # asked for; engines apply it only on GPU (use_amp)
    amp_level: str = "O1"  # dygraph only
    tensorrt: Optional[bool] = None  # paddle-inference on GPU; None: when the build has it

    def options(self, base: EngineOptions) -> EngineOptions:
        return replace(base, amp=self.amp, amp_level=self.amp_level, tensorrt=self.tensorrt)

    def to_json(self) -> dict:
        return {"engine": self.engine, "amp": self.amp, "amp_level": self.amp_level,
                "tensorrt": self.tensorrt}


@dataclass
class Trial:
    """A candidate measured on the sample: rows/s (None when it could not run), its check
    against FP32 dygraph, whether that passed, and the error when it failed to build or run."""

    candidate: Candidate
    rows_per_s: Optional[float] = None
    check: Optional[dict] = None
    passed: bool = False
    error: Optional[str] = None
    info: Optional[dict] = None

    def to_json(self) -> dict:
        return {**self.candidate.to_json(), "rows_per_s": self.rows_per_s, "passed": self.passed,
                "check": self.check, "error": self.error,
                **{k: (self.info or {}).get(k) for k in ("precision", "device", "tensorrt")}}


def pick(trials: Sequence[Trial]) -> Optional[int]:
    """The index of the fastest trial that passed its check (the first one on a tie); None
    when none passed. Pure: the whole of ``auto``'s decision once the measuring is done."""
    best = None
    for i, trial in enumerate(trials):
        if not trial.passed or trial.rows_per_s is None:
            continue
        if best is None or trial.rows_per_s > trials[best].rows_per_s:
            best = i
    return best


def gpu_candidates(options: EngineOptions) -> List[Candidate]:
    """What ``auto`` measures on a GPU: dygraph with AMP O1 (FP32 when ``amp`` is off), dygraph
    with AMP O2 (kept only if its logits pass the check), Paddle Inference on the GPU (FP16 with
    AMP; TensorRT when the build has it, ``options.tensorrt`` to force)."""
    out = [Candidate("dygraph", options.amp, "O1")]
    if options.amp:
        out.append(Candidate("dygraph", True, "O2"))
    out.append(Candidate("paddle-inference", options.amp, tensorrt=options.tensorrt))
    return out


def as_candidates(candidates: Sequence, options: EngineOptions) -> List[Candidate]:
    """Engine names (with ``options``' precision settings) or ``Candidate``s, checked."""
    out = []
    for item in candidates:
        cand = item if isinstance(item, Candidate) else Candidate(
            str(item), options.amp, options.amp_level, options.tensorrt)
        ENGINES.get(cand.engine)
        if cand.engine in QUANTIZED:
            raise UserError(f"engine '{cand.engine}' changes the logits beyond rounding; it is "
                            "never chosen by speed (name it with --engine instead)")
        out.append(cand)
    return out


def auto_candidates(name: str, options: EngineOptions,
                    candidates: Optional[Sequence] = None) -> List[Candidate]:
    """The candidates ``name`` asks to measure: none for a named engine or ``auto`` on CPU
    (``onnx``, measured fastest there), ``gpu_candidates`` for ``auto`` on a GPU, the given
    ``candidates`` (names or ``Candidate``s) for ``auto`` when passed (tests do, on CPU)."""
    if name != "auto":
        return []
    if candidates is not None:
        return as_candidates(candidates, options)
    from distill.train.device import select_device

    return gpu_candidates(options) if select_device(options.device).startswith("gpu") else []


def time_engine(engine: Engine, batches: Sequence[Inputs],
                repeats: int = TIMING_REPEATS) -> float:
    """Rows per second of ``engine`` over ``batches``: one warm-up pass (a TensorRT engine is
    built then), then the best of ``repeats`` timed passes (logits copied to the host, so GPU
    work is finished inside the timing)."""
    rows = sum(len(b["input_ids"]) for b in batches)
    for b in batches:
        engine.logits(b)
    best = float("inf")
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        for b in batches:
            engine.logits(b)
        best = min(best, time.perf_counter() - start)
    return round(rows / max(best, 1e-9), 2)


def choose(teacher, sample: Sequence[Inputs], candidates: Sequence[Candidate],
           options: EngineOptions, weights_sha: Optional[str] = None,
           repeats: int = TIMING_REPEATS) -> Tuple[Engine, dict]:
    """Build and measure every candidate on ``sample`` (checked on its first
    ``DYGRAPH_CHECK_ROWS`` rows against FP32 dygraph, timed on all of it) and return the engine
    ``pick`` chooses with the report; FP32 dygraph when no candidate passes."""
    reference = fp32_reference(teacher, options)
    head = _head(sample)
    trials, built = [], []
    for cand in candidates:
        trial, engine = Trial(cand), None
        try:
            engine = build_engine(cand.engine, teacher, cand.options(options), weights_sha)
            trial.info = dict(engine.info)
            trial.check = compare(engine, reference, head)
            trial.passed = within(trial.check, tolerance_for(engine))
            trial.rows_per_s = time_engine(engine, sample, repeats)
        except Exception as err:  # noqa: BLE001  (export, TensorRT or CUDA failures: many types)
            trial.error = f"{type(err).__name__}: {err}"
            trial.passed, engine = False, None
            log.warning("engine candidate %s failed: %s", cand.to_json(), trial.error)
        trials.append(trial)
        built.append(engine)
    best = pick(trials)
    rows = int(sum(len(b["input_ids"]) for b in sample))
    choice = {"sample_rows": rows, "check_rows": int(len(head[0]["input_ids"])),
              "repeats": repeats, "trials": [t.to_json() for t in trials], "chosen": best}
    if best is None:
        engine = reference
        report = {"requested": "auto", "engine": "dygraph", "choice": choice,
                  "fallback_reason": "no candidate passed its check"}
        log.warning("no labelling engine candidate passed its check; FP32 dygraph labels")
    else:
        engine = built[best]
        report = {"requested": "auto", "engine": engine.info["engine"], "choice": choice,
                  "check": dict(trials[best].check, reference="dygraph")}
        log.info("labelling engine chosen by speed: %s",
                 ", ".join(f"{t.candidate.engine}/{(t.info or {}).get('precision')}: "
                           f"{t.rows_per_s} rows/s{'' if t.passed else ' (failed)'}"
                           for t in trials))
    report["candidate"] = (trials[best].candidate if best is not None
                           else Candidate("dygraph")).to_json()
    return engine, _describe(report, engine)


def _describe(report: dict, engine: Engine) -> dict:
    report.update({k: engine.info[k] for k in ("threads", "device", "path", "cache_hit",
                                                "export_seconds", "tensorrt") if k in engine.info})
    report.update(amp=bool(engine.info.get("amp", False)),
                  precision=engine.info.get("precision", "fp32"))
    return report


def labelling_engine(name: str, teacher, sample: Sequence[Inputs],
                     options: Optional[EngineOptions] = None,
                     weights_sha: Optional[str] = None,
                     candidates: Optional[Sequence] = None) -> Tuple[Engine, dict]:
    """Build engine ``name`` and check it on ``sample`` (padded batches of the texts to label);
    returns ``(engine, report)``.

    ``auto`` on a GPU (or with ``candidates`` given) is ``choose``: measured. Otherwise an
    engine must match FP32 dygraph on the first ``DYGRAPH_CHECK_ROWS`` rows, within
    ``FP32_TOLERANCE`` (``AMP_TOLERANCE`` in FP16; AMP dygraph that misses it labels in FP32
    instead, with a warning). ``auto`` falls back to dygraph with a warning when the export
    fails or disagrees; a named engine raises ``EngineError``. A quantized engine is measured
    against the (so checked) ONNX FP32 engine on all of ``sample``: ``report["check"]`` has the
    max abs diff and argmax agreement, for the caller to log and keep next to the soft labels.
    ``report["amp"]`` / ``report["precision"]`` say how the labels were computed.
    """
    options = options or EngineOptions()
    todo = auto_candidates(name, options, candidates)
    if todo:
        return choose(teacher, sample, todo, options, weights_sha)
    resolved = resolve_name(name, options.device)
    report = {"requested": name, "engine": resolved}
    head = _head(sample)
    if resolved == "dygraph":
        engine = build_engine("dygraph", teacher, options)
        if engine.info["amp"]:
            reference = fp32_reference(teacher, options)
            try:
                report["check"] = dict(check_fp32(engine, reference, head), reference="dygraph")
            except EngineError as err:
                log.warning("%s; labelling in FP32 instead", err)
                engine = reference
                report["fallback_reason"] = str(err)
        return engine, _describe(report, engine)
    try:
        engine = build_engine(resolved, teacher, options, weights_sha)
        dygraph = fp32_reference(teacher, options)  # the model where it already runs
        if resolved in QUANTIZED:
            fp32 = build_engine("onnx", teacher, options, weights_sha)
            report["fp32_check"] = check_fp32(fp32, dygraph, head)
            report["check"] = compare(engine, fp32, sample)
            report["check"]["reference"] = "onnx"
        else:
            report["check"] = check_fp32(engine, dygraph, head)
            report["check"]["reference"] = "dygraph"
    except EngineError as err:
        if name != "auto":
            raise
        log.warning("%s; labelling with dygraph instead", err)
        engine = build_engine("dygraph", teacher, replace(options, amp=False))
        report.update(engine="dygraph", fallback_reason=str(err))
    return engine, _describe(report, engine)
