"""Recipes: a YAML file (or a dict) validated into typed dataclasses before anything runs.

A recipe is data, never code. ``load_recipe(path)`` checks every key and value and raises a
:class:`~distill.core.errors.RecipeError` that names the key path (``students[1].loss.temperature``),
the YAML line, and the valid keys or values. Relative paths resolve against the recipe file's
directory. Sections (see ``recipes/custom_tsv.yaml`` for a commented template)::

    name: my_task              # run name (default: the file name)
    task: sentence             # sentence (classification) | token (NER; docs/token_tasks.md)
    seeds: [0]                 # student training seeds; several seeds give mean and _std
    device: auto               # auto | cpu | gpu | gpu:N
    runtime: {nproc: 1, nnodes: 1, master: HOST:PORT}   # data-parallel processes (docs/distributed.md)
    data: {builtin: movies_en} or {train: a.tsv, dev: b.tsv, test: c.tsv, format, columns, ...},
          + max_train / max_dev / max_test: seeded samples of the splits (CPU budgets)
    teacher: {source: minilm-l6 | PATH | random, random: {ErnieConfig fields}, max_len,
              finetune: {enabled, max_train, train_layers, + TrainConfig fields},
              labels: {batch_size, engine: auto | onnx | paddle-inference | dygraph, amp, chunk_batches}}
             or a list of those: an ensemble, each fine-tuned and labelling on its own
    ensemble: {rule: logits | probabilities, weights: dev | equal | [w, ...], grid_step}
    augment: {enabled, max_source, + AugmentConfig fields (n_iter, p_mask, p_pos, p_ng, seed...)}
    students: [{name, kind, config: {the kind's config}, vocab: VocabConfig, loss: LossConfig,
                baseline, train: TrainConfig, baseline_train, max_len}]
    export: {enabled, package, teacher, teacher_formats, + ExportConfig fields (formats, calib_size, threads...)}

Settings that belong to another module (the trainer's ``TrainConfig``, a student's config, the
augmenter's ``AugmentConfig``, the loss, the exporter's ``ExportConfig``) are validated against
that module's own dataclass, so there is one definition of each setting. Command line
overrides use the same paths: ``distill run R.yaml --set teacher.finetune.epochs=1 --set
students[0].train.lr=0.01`` (a student may also be named: ``students.bow.train.lr=0.01``).
"""
import copy
import dataclasses
import inspect
import json
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

from distill.core.errors import RecipeError, UserError
from distill.core.io import plain_name_problem
from distill.data.augment import AugmentConfig
from distill.data.fetch import ENTRIES
from distill.export.exporter import ExportConfig
from distill.train.losses import LOSSES
from distill.train.trainer import TrainConfig
from students.registry import student_registry
from students.train import LossConfig, VocabConfig
from teachers.config import ErnieConfig
from teachers.engines import ENGINES

def _path(default=None):
    """A field holding a file path: resolved against the recipe's folder and checked to exist."""
    return field(default=default, metadata={"path": True})


def _late(default):
    """A key added after run folders existed: while it keeps its default it stays out of the stage
    fingerprints (``fingerprint_settings``), so adding it leaves cached stages valid."""
    return field(default=default, metadata={"late": True})


def fingerprint_settings(spec) -> Any:
    """``dataclasses.asdict(spec)`` less every ``_late`` key still at its default: what a stage's
    fingerprint hashes of a recipe section."""
    if dataclasses.is_dataclass(spec):
        return {f.name: fingerprint_settings(getattr(spec, f.name))
                for f in dataclasses.fields(spec)
                if not (f.metadata.get("late") and getattr(spec, f.name) == f.default)}
    if isinstance(spec, (list, tuple)):
        return type(spec)(fingerprint_settings(v) for v in spec)
    if isinstance(spec, dict):
        return {k: fingerprint_settings(v) for k, v in spec.items()}
    return copy.deepcopy(spec)


def _typed(schema: type, **fill):
    """A mapping validated against another layer's config dataclass; ``fill`` supplies values the
    recipe never gives (only for the check)."""
    return field(default_factory=dict, metadata={"schema": schema, "fill": fill})


def _rest(schema: type):
    """Every key of the section that is not one of its own fields goes here and is validated
    against the dataclass ``schema`` (so the section reads flat: ``finetune: {enabled: true, epochs: 2}``)."""
    return field(default_factory=dict, metadata={"schema": schema, "rest": True})


# ----------------------------------------------------------------------------------- schema
@dataclass
class DataSpec:
    """Where the task comes from: a built-in data set, or the user's three files."""

    builtin: Optional[str] = None            # reviews_zh | movies_en  (see `distill fetch --list`)
    train: Optional[str] = _path()
    dev: Optional[str] = _path()
    test: Optional[str] = _path()
    format: Optional[typing.Literal["tsv", "jsonl", "csv"]] = None   # None: from the suffix
    columns: Optional[Dict[str, str]] = None  # our field -> the file's column: {text_a: review}
    on_error: typing.Literal["raise", "skip"] = "raise"
    max_train: Optional[int] = None          # keep a seeded sample of this many training rows
    max_dev: Optional[int] = _late(None)     # ... of dev rows (a CPU budget; None: all of them)
    max_test: Optional[int] = _late(None)    # ... of test rows (say so beside every test number)
    # task: token only (CoNLL .txt/.conll or JSONL files; docs/token_tasks.md)
    scheme: typing.Literal["auto", "bio", "bioes", "bmes"] = "auto"
    unit: typing.Literal["char", "word"] = "char"   # tokens joined without / with spaces
    on_invalid: typing.Literal["raise", "repair"] = "raise"  # tags that break the scheme

    def recipe_check(self, where: "_Context", path: str) -> None:
        for key in ("max_train", "max_dev", "max_test"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                where.fail(f"{path}.{key}", f"expected a number of rows >= 1, got {getattr(self, key)}")
        files = [self.train, self.dev, self.test]
        if self.builtin is None and not all(files):
            where.fail(path, "give either 'builtin' or all three of 'train', 'dev', 'test'")
        if self.builtin is not None and any(files):
            where.fail(path, "give either 'builtin' or train/dev/test files, not both")
        if self.builtin is not None:
            names = _builtin_names("token_dataset" if where.task == "token" else "dataset")
            if self.builtin not in names:
                where.fail(f"{path}.builtin", f"unknown built-in data set '{self.builtin}'; "
                                              f"choose one of: {', '.join(names)}")


@dataclass
class FinetuneSpec:
    """Fine-tuning the teacher on the task; other keys are ``TrainConfig`` fields (epochs, lr...)."""

    enabled: bool = True
    max_train: Optional[int] = None          # fine-tune on a seeded sample of this many rows
    train_layers: Optional[int] = None       # train only the top N encoder layers (+ head)
    probe_head: bool = _late(False)          # task: token: fit the head on frozen features first
    train: Dict[str, Any] = _rest(TrainConfig)


@dataclass
class LabelSpec:
    """Soft labels (teacher logits) for the training and augmented rows."""

    batch_size: int = 64
    # auto: ONNX Runtime FP32 on CPU (~4x Paddle dygraph); on GPU the fastest of dygraph (AMP)
    # and Paddle Inference (TensorRT when present) that passes the check; teachers/engines.py
    engine: str = "auto"                     # auto | a name in teachers.engines.ENGINES
    amp: bool = _late(True)                  # FP16 mixed precision, GPU only (never on CPU)
    amp_level: typing.Literal["O1", "O2"] = _late("O1")  # O2 only where its check holds (docs/distributed.md)
    tensorrt: Optional[bool] = _late(None)   # Paddle Inference on GPU: None = when the build has it
    threads: Optional[int] = None            # None: every usable core
    sessions: int = 1                        # ONNX engines: parallel sessions per batch
    chunk_batches: int = 16                  # batches per resumable chunk on disk
    # task: token only: how the per-token logits are stored (docs/token_tasks.md)
    storage: typing.Literal["float32", "float16", "topk"] = "float16"
    top_k: int = 3

    def recipe_check(self, where: "_Context", path: str) -> None:
        if self.engine != "auto" and self.engine not in ENGINES.names():
            where.fail(f"{path}.engine", f"unknown engine '{self.engine}'; choose one of: auto, "
                                         f"{', '.join(ENGINES.names())}")


@dataclass
class TeacherSpec:
    source: str = "minilm-l6"                # built-in name | checkpoint dir/file | random
    random: Dict[str, Any] = _typed(ErnieConfig, vocab_size=2)  # for `random`
    max_len: int = 128
    # task: token only: keep the lowest N encoder layers, the token head reads layer N
    # (teachers.token_model.keep_lower_layers); None: all of them
    layers: Optional[int] = _late(None)
    finetune: FinetuneSpec = field(default_factory=FinetuneSpec)
    labels: LabelSpec = field(default_factory=LabelSpec)

    def recipe_check(self, where: "_Context", path: str) -> None:
        if self.layers is not None:
            if where.task != "token":
                where.fail(f"{path}.layers", "only for task: token (a sentence head reads the "
                                             "pooled top layer)")
            if self.layers < 1:
                where.fail(f"{path}.layers", f"must be >= 1 (got {self.layers})")
        if self.finetune.probe_head and where.task != "token":
            where.fail(f"{path}.finetune.probe_head", "only for task: token")
        positions = _teacher_positions(self, where.base_dir)
        if positions is not None and self.max_len > positions:
            where.fail(f"{path}.max_len", f"{self.max_len} is more than the teacher's "
                                          f"{positions} positions (max_position_embeddings)")
        if self.source == "random" or (where.base_dir / self.source).exists():
            return
        names = _builtin_names("weights")
        if self.source not in names:
            where.fail(f"{path}.source", f"'{self.source}' is neither a built-in teacher "
                                         f"({', '.join(names)}), 'random', nor an existing "
                                         f"checkpoint (looked for {where.base_dir / self.source})")


def _teacher_positions(spec: "TeacherSpec", base_dir: Path) -> Optional[int]:
    """The teacher's position count when the recipe already tells it (random or a checkpoint
    folder with a readable config); None otherwise (the teacher stage checks it after loading)."""
    if spec.source == "random":
        value = spec.random.get("max_position_embeddings", 512)
        return value if isinstance(value, int) else None
    folder = base_dir / spec.source
    for name in ("ernie_config.json", "model_config.json", "config.json"):
        try:
            value = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        value = value.get("max_position_embeddings") if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


@dataclass
class EnsembleSpec:
    """How the soft labels of several teachers (``teacher`` given as a list) are combined
    (``teachers.ensemble``): mean of logits or of probabilities, weights chosen on dev."""

    rule: typing.Literal["logits", "probabilities"] = "logits"
    weights: Union[str, List[float]] = "dev"  # dev | equal | one number per teacher
    grid_step: float = 0.1                   # weights: dev searches multiples of this

    def recipe_check(self, where: "_Context", path: str) -> None:
        if isinstance(self.weights, str) and self.weights not in ("dev", "equal"):
            where.fail(f"{path}.weights", f"'{self.weights}': use dev, equal or a list of numbers")
        if isinstance(self.weights, list) and (any(w < 0 for w in self.weights)
                                               or sum(self.weights) <= 0):
            where.fail(f"{path}.weights", "weights must be >= 0 with a positive sum")
        n = round(1.0 / self.grid_step) if self.grid_step > 0 else 0
        if n < 1 or abs(n * self.grid_step - 1.0) > 1e-9:
            where.fail(f"{path}.grid_step", f"{self.grid_step} must divide 1 (0.1, 0.25, 0.5 ...)")


@dataclass
class AugmentSpec:
    """Data augmentation of the training set; other keys are ``AugmentConfig`` fields (n_iter,
    p_mask, p_pos, p_ng, ngram_range, seed, lang, tagger, workers, ...)."""

    enabled: bool = True
    max_source: Optional[int] = None         # augment only a seeded sample of this many rows
    p_entity: float = 0.3                    # task: token: same-type entity replacement
    rules: Dict[str, Any] = _rest(AugmentConfig)


@dataclass
class StudentSpec:
    name: str
    kind: str                                # a key of students.registry.STUDENTS
    config: Dict[str, Any] = field(default_factory=dict)   # the kind's config dataclass
    vocab: Dict[str, Any] = _typed(VocabConfig)
    loss: Dict[str, Any] = _typed(LossConfig)   # {terms, temperature}
    baseline: bool = True                    # also train the plain student on gold labels
    train: Dict[str, Any] = _typed(TrainConfig)  # over the kind's defaults
    baseline_train: Optional[Dict[str, Any]] = None        # overrides of `train` for the baseline
    max_len: Optional[int] = None            # tokens (words) per text; None: the teacher's max_len

    def recipe_check(self, where: "_Context", path: str) -> None:
        kinds = student_registry(where.task)  # token tasks: the taggers of the same kind names
        if self.kind not in kinds.names():
            where.fail(f"{path}.kind", f"unknown {where.task} student kind '{self.kind}'; choose "
                                       f"one of: {', '.join(kinds.names())}")
        _bind_schema(kinds.get(self.kind).config_class, self.config, f"{path}.config", where)
        if self.loss.get("terms") is not None:
            self._check_loss_terms(where, f"{path}.loss.terms")
        if self.baseline_train is not None:
            _bind_schema(TrainConfig, {**self.train, **self.baseline_train},
                         f"{path}.baseline_train", where)


    def _check_loss_terms(self, where: "_Context", path: str) -> None:
        try:
            specs = LossConfig(**self.loss).specs("distilled")
            for spec in specs:
                LOSSES.get(spec.get("name"))
        except (UserError, TypeError, AttributeError) as err:
            where.fail(path, str(err))


@dataclass
class ExportSpec:
    """Export, measurement and packaging; other keys are ``ExportConfig`` fields (formats,
    calib_size, max_accuracy_drop as a fraction, threads, algo, ...)."""

    enabled: bool = True
    package: bool = True                     # package the best accepted ONNX student
    teacher: bool = True                     # also export/measure the teacher (for speed-ups)
    teacher_formats: List[str] = field(default_factory=lambda: ["onnx"])  # INT8 ones add minutes
    max_f1_drop: float = 0.5                 # task: token: the guard's entity-F1 loss, in points
    settings: Dict[str, Any] = _rest(ExportConfig)

    def recipe_check(self, where: "_Context", path: str) -> None:
        _bind_schema(ExportConfig, {**self.settings, "formats": self.teacher_formats},
                     f"{path}.teacher_formats", where)


@dataclass
class RuntimeSpec:
    """Processes of a run: ``nproc`` per machine (data parallel through
    ``paddle.distributed.launch``; 1 = one process, as before), ``nnodes`` machines, ``master``
    the first machine's host:port. ``distill run --nproc/--nnodes/--master`` override these."""

    nproc: int = 1
    nnodes: int = 1
    master: Optional[str] = None

    def recipe_check(self, where: "_Context", path: str) -> None:
        for name in ("nproc", "nnodes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                where.fail(f"{path}.{name}", f"must be a positive integer, got {value!r}")
        if self.master is not None and not re.fullmatch(r"[^:\s]+:\d+", str(self.master)):
            where.fail(f"{path}.master", f"expected host:port, got {self.master!r}")
        if self.nnodes > 1 and self.master is None:
            where.fail(f"{path}.master", "nnodes > 1 needs the first machine's host:port")


@dataclass
class Recipe:
    data: DataSpec
    teacher: Union[TeacherSpec, List[TeacherSpec]]  # a list: an ensemble (see ``teachers()``)
    students: List[StudentSpec]
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    ensemble: EnsembleSpec = field(default_factory=EnsembleSpec)
    export: ExportSpec = field(default_factory=ExportSpec)
    seeds: List[int] = field(default_factory=lambda: [0])
    device: str = "auto"
    name: Optional[str] = None
    task: typing.Literal["sentence", "token"] = "sentence"
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)

    def teachers(self) -> List[TeacherSpec]:
        """Every teacher; the first is the primary one (augmentation's mask token, the tiny
        student's tokenizer and layers, online loss terms)."""
        return list(self.teacher) if isinstance(self.teacher, list) else [self.teacher]

    def recipe_check(self, where: "_Context", path: str) -> None:
        if isinstance(self.teacher, list) and not self.teacher:
            where.fail("teacher", "list at least one teacher")
        if isinstance(self.teacher, list) and len(self.teacher) > 1 and self.task == "token":
            where.fail("teacher", "task: token takes one teacher (ensembles are for sentence tasks)")
        weights = self.ensemble.weights
        if isinstance(weights, list) and len(weights) != len(self.teachers()):
            where.fail("ensemble.weights", f"{len(weights)} weights for {len(self.teachers())} "
                                           f"teachers")
        if not self.students:
            where.fail("students", "list at least one student")
        names = [s.name for s in self.students]
        if self.name is not None and plain_name_problem(self.name):
            where.fail("name", plain_name_problem(self.name))
        for i, name in enumerate(names):
            if plain_name_problem(name):
                where.fail(f"students[{i}].name", plain_name_problem(name))
            if names.index(name) != i:
                where.fail(f"students[{i}].name", f"duplicate student name '{name}'")
        if not self.seeds:
            where.fail("seeds", "list at least one seed")
        for i, seed in enumerate(self.seeds):
            if not 0 <= seed < 2 ** 32:
                where.fail(f"seeds[{i}]", f"{seed} is not a seed; expected 0 ... 4294967295")
        if not re.fullmatch(r"auto|cpu|gpu(:\d+)?", self.device):
            where.fail("device", f"'{self.device}' is not one of auto, cpu, gpu, gpu:N")


def _builtin_names(kind: str) -> List[str]:
    """Names of the built-in entries of ``kind`` (dataset | weights)."""
    return [name for name in ENTRIES.names() if ENTRIES.get(name).kind == kind]


# ------------------------------------------------------------------------------ validation
class _Context:
    """Error reporting for one recipe: the source name and the YAML line of every key path."""

    def __init__(self, source: str, lines: Dict[str, int], base_dir: Path,
                 task: str = "sentence"):
        self.source, self.lines, self.base_dir = source, lines, base_dir
        self.task = task  # the recipe's task type: sections check their keys against it

    def line_of(self, path: str) -> Optional[int]:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = re.sub(r"(\.[^.\[\]]+|\[\d+\])$", "", path) if re.search(r"[.\[]", path) else ""
        return None

    def fail(self, path: str, problem: str):
        line = self.line_of(path)
        where = self.source + (f", line {line}" if line else "")
        raise RecipeError(f"{where}: {path}: {problem}" if path else f"{where}: {problem}")


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin in (list, List):
        return "a list"
    if origin in (dict, Dict) or tp is dict:
        return "a mapping"
    if origin in (tuple, Tuple):
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _shape_of(tp) -> str:
    """``list``, ``mapping`` or ``other``: what kind of YAML value a type takes."""
    origin = typing.get_origin(tp) or tp
    if origin in (list, List, tuple):
        return "list"
    if origin in (dict, Dict) or dataclasses.is_dataclass(tp):
        return "mapping"
    return "other"


def _convert(tp, value, path: str, ctx: _Context, meta=None):
    """Check ``value`` against type ``tp``; return it converted (dataclasses built)."""
    meta = meta or {}
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) > 1:  # a list or a mapping picks its own option, so errors stay precise
            shaped = [o for o in options if _shape_of(o) == _shape_of(type(value))]
            options = shaped if len(shaped) == 1 else options
        if len(options) == 1:
            return _convert(options[0], value, path, ctx, meta)
        for option in options:
            try:
                return _convert(option, value, path, ctx, meta)
            except RecipeError:
                continue
        ctx.fail(path, f"expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            ctx.fail(path, f"{value!r} is not allowed; choose one of: "
                           + ", ".join(str(a) for a in args))
        return value
    if meta.get("schema") and isinstance(value, dict):
        return _bind_schema(meta["schema"], value, path, ctx, fill=meta.get("fill"))
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, ctx)
    if origin in (list, List) or tp is list:
        if not isinstance(value, list):
            ctx.fail(path, f"expected a list, got {value!r}")
        inner = args[0] if args else Any
        return [_convert(inner, v, f"{path}[{i}]", ctx) for i, v in enumerate(value)]
    if origin in (tuple, Tuple):
        if not isinstance(value, (list, tuple)):
            ctx.fail(path, f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{path}[{i}]", ctx) for i, v in enumerate(value))
        if len(value) != len(args):
            ctx.fail(path, f"expected a list of {len(args)} values, got {value!r}")
        return tuple(_convert(a, v, f"{path}[{i}]", ctx) for i, (a, v) in enumerate(zip(args, value)))
    if origin in (dict, Dict) or tp is dict:
        if not isinstance(value, dict):
            ctx.fail(path, f"expected a mapping, got {value!r}")
        inner = args[1] if args else Any
        return {str(k): _convert(inner, v, f"{path}.{k}", ctx) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            ctx.fail(path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            ctx.fail(path, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            ctx.fail(path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            ctx.fail(path, f"expected a string, got {value!r}")
        if meta.get("path"):
            resolved = (ctx.base_dir / value).resolve()
            if not resolved.exists():
                ctx.fail(path, f"file not found: {value} (looked for {resolved})")
            return str(resolved)
        return value
    if isinstance(tp, type) and isinstance(value, tp):
        return value
    ctx.fail(path, f"expected {_type_name(tp)}, got {value!r}")


def _build(cls, value, path: str, ctx: _Context):
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and missing required ones."""
    if not isinstance(value, dict):
        ctx.fail(path, f"expected a mapping with keys {', '.join(f.name for f in dataclasses.fields(cls))}, "
                       f"got {value!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls) if f.init}
    join = (lambda k: f"{path}.{k}") if path else (lambda k: str(k))
    rest = next((f for f in known.values() if f.metadata.get("rest")), None)
    kwargs = {}
    if rest is not None:  # the section's other keys belong to another module's dataclass
        own = {k for k in known if k != rest.name}
        extra = {k: v for k, v in value.items() if k not in own}
        kwargs[rest.name] = _bind_schema(rest.metadata["schema"], extra, path, ctx,
                                         own=[k for k in known if k != rest.name])
        value = {k: v for k, v in value.items() if k in own}
    for key in value:
        if key not in known:
            ctx.fail(join(key), f"unknown key; valid keys here: {', '.join(known)}")
    for name, f in known.items():
        if name in value and name not in kwargs:
            kwargs[name] = _convert(hints[name], value[name], join(name), ctx, dict(f.metadata))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            ctx.fail(join(name), "missing required key")
    try:
        obj = cls(**kwargs)
    except RecipeError:
        raise
    except (TypeError, ValueError, UserError) as err:  # the dataclass's own checks
        ctx.fail(path, str(err))
    validate = getattr(obj, "validate", None)  # other modules' dataclasses check themselves
    if callable(validate):
        try:
            validate(path) if inspect.signature(validate).parameters else validate()
        except RecipeError:
            raise
        except (UserError, ValueError) as err:
            ctx.fail(path, str(err))
    if hasattr(obj, "recipe_check"):  # cross-field checks of the recipe's own sections
        obj.recipe_check(ctx, path)
    return obj


def _bind_schema(cls: type, value: dict, path: str, ctx: _Context, fill=None, own=()):
    """Validate a mapping against the dataclass ``cls``; keep the mapping.

    ``fill``: values the check needs but a recipe never gives; ``own``: the enclosing section's
    own keys, listed with the class's in an unknown-key error.
    """
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in (fill or {})]
    join = (lambda k: f"{path}.{k}") if path else (lambda k: str(k))
    for key in value:
        if key not in names:
            ctx.fail(join(key), f"unknown key; valid keys here: {', '.join(list(own) + names)}")
    _build(cls, {**(fill or {}), **value}, path, ctx)  # raises on a bad value
    return dict(value)


MAX_RECIPE_NODES = 100_000  # values in the recipe with every alias expanded


def _read_recipe_text(file: Path) -> str:
    try:
        data = file.read_bytes()
    except PermissionError:
        raise RecipeError(f"{file}: not readable (permission denied)") from None
    except OSError as err:
        raise RecipeError(f"{file}: cannot read ({err.strerror or err})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise RecipeError(f"{file}, line {line}: not UTF-8 text (byte 0x{data[err.start]:02x} at "
                          f"offset {err.start}); save the recipe as UTF-8") from None


def _check_expanded_size(node, file: Path) -> None:
    """Refuse a document whose aliases expand to more than ``MAX_RECIPE_NODES`` values.

    YAML aliases share nodes, so a 1 KB "billion laughs" is a tiny graph that becomes huge when
    walked as a tree; sizes are summed per distinct node (memoised), in time linear in the file.
    """
    sizes: Dict[int, int] = {}
    open_nodes = set()  # ids on the current path: an alias back to one of them is a cycle
    if node is None:
        return
    stack = [(node, False)]
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes:
            continue
        kids = []
        if isinstance(current, yaml.MappingNode):
            kids = [n for pair in current.value for n in pair]
        elif isinstance(current, yaml.SequenceNode):
            kids = list(current.value)
        if children_done or not kids:
            total = 1 + sum(sizes[id(k)] for k in kids)
            if total > MAX_RECIPE_NODES:
                raise RecipeError(f"{file}: the recipe expands to more than {MAX_RECIPE_NODES} "
                                  f"values (YAML aliases repeating aliases); refused")
            sizes[id(current)] = total
            open_nodes.discard(id(current))
            continue
        if id(current) in open_nodes:
            raise RecipeError(f"{file}, line {current.start_mark.line + 1}: a YAML alias refers to "
                              f"a value that contains it (a cycle); refused")
        open_nodes.add(id(current))
        stack.append((current, True))
        for kid in kids:
            if id(kid) in open_nodes:
                raise RecipeError(f"{file}, line {kid.start_mark.line + 1}: a YAML alias refers to "
                                  f"a value that contains it (a cycle); refused")
            if id(kid) not in sizes:
                stack.append((kid, False))


def _key_lines(node, prefix: str = "", lines: Optional[Dict[str, int]] = None) -> Dict[str, int]:
    """Map every key path of a composed YAML document to its 1-based line."""
    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
            lines[path] = key_node.start_mark.line + 1
            _key_lines(value_node, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = f"{prefix}[{i}]"
            lines[path] = item.start_mark.line + 1
            _key_lines(item, path, lines)
    return lines


# ------------------------------------------------------------------------------ overrides
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _split_key(key: str) -> List[Any]:
    steps, pos = [], 0
    for match in _STEP.finditer(key):
        if match.start() not in (pos, pos + 1):
            break
        steps.append(int(match.group(2)) if match.group(2) is not None else match.group(1))
        pos = match.end()
    if not steps or pos != len(key):
        raise RecipeError(f"--set {key}: cannot parse the key; use e.g. students[0].train.lr=0.01")
    return steps


def apply_overrides(raw: dict, overrides: List[str]) -> dict:
    """Apply ``section.key=value`` overrides (value parsed as YAML) to a raw recipe dict."""
    raw = copy.deepcopy(raw)
    for item in overrides or []:
        if "=" not in item:
            raise RecipeError(f"--set {item}: expected KEY=VALUE, e.g. teacher.max_len=64")
        key, text = item.split("=", 1)
        try:
            _check_expanded_size(yaml.compose(text, Loader=yaml.SafeLoader), f"--set {key}")
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise RecipeError(f"--set {item}: the value is not valid YAML: {err}") from None
        steps, node = _split_key(key.strip()), raw
        for i, step in enumerate(steps):
            last = i == len(steps) - 1
            if isinstance(node, list) and isinstance(step, str):  # students.NAME -> by name
                named = [s for s in node if isinstance(s, dict) and s.get("name") == step]
                if not named:
                    raise RecipeError(f"--set {key}: no list item named '{step}'")
                step = node.index(named[0])
            if isinstance(node, list):
                if not isinstance(step, int) or step >= len(node):
                    raise RecipeError(f"--set {key}: index {step} is out of range")
            elif not isinstance(node, dict):
                raise RecipeError(f"--set {key}: '{steps[i - 1]}' is not a mapping")
            if last:
                node[step] = value
            else:
                if isinstance(node, dict) and node.get(step) is None:
                    node[step] = {}
                node = node[step]
    return raw


# ----------------------------------------------------------------------------------- loading
@dataclass
class LoadedRecipe:
    """A validated recipe with where it came from and its raw (overridden) mapping."""

    recipe: Recipe
    raw: dict
    path: Optional[str]
    base_dir: str
    lines: Dict[str, int]

    @property
    def name(self) -> str:
        return self.recipe.name or (Path(self.path).stem if self.path else "recipe")

    def fail(self, path: str, problem: str):
        """Raise a RecipeError for ``path`` with its YAML line (for checks made later)."""
        _Context(self.path or "recipe", self.lines, Path(self.base_dir)).fail(path, problem)

    def settings(self) -> dict:
        settings = dataclasses.asdict(self.recipe)
        if self.recipe.runtime == RuntimeSpec():  # one process: the settings as they always were
            settings.pop("runtime")
        return settings


def parse_recipe(raw, source: str = "recipe", base_dir=".", lines=None) -> Recipe:
    task = raw.get("task", "sentence") if isinstance(raw, dict) else "sentence"
    ctx = _Context(source, lines or {}, Path(base_dir).resolve(),
                   task if task in ("sentence", "token") else "sentence")
    if not isinstance(raw, dict):
        ctx.fail("", f"a recipe is a mapping with sections data, teacher, students, ...; got {raw!r}")
    return _build(Recipe, raw, "", ctx)


def load_recipe(recipe, overrides: Optional[List[str]] = None, base_dir=None) -> LoadedRecipe:
    """Load and validate a recipe from a YAML path or a dict (paths relative to ``base_dir``,
    default the current directory for a dict, the file's folder for a file)."""
    if isinstance(recipe, dict):
        raw, path, lines = recipe, None, {}
        base = Path(base_dir or ".").resolve()
    else:
        file = Path(recipe)
        if file.is_dir():
            raise RecipeError(f"{file}: is a folder; expected a recipe .yaml file")
        if not file.is_file():
            raise RecipeError(f"{file}: recipe file not found")
        text = _read_recipe_text(file)
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            _check_expanded_size(node, file)  # before anything walks the tree (alias bombs)
            raw = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise RecipeError(f"{file}: not valid YAML: {err}") from None
        except RecursionError:
            raise RecipeError(f"{file}: nested too deeply to be a recipe") from None
        lines, path = (_key_lines(node) if node is not None else {}), str(file)
        base = Path(base_dir).resolve() if base_dir else file.resolve().parent
    raw = apply_overrides(raw if raw is not None else {}, overrides or [])
    parsed = parse_recipe(raw, path or "recipe", base, lines)
    return LoadedRecipe(recipe=parsed, raw=raw, path=path, base_dir=str(base), lines=lines)
