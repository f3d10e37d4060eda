"""The one training loop: teacher fine-tuning, plain students and distilled students.

The trainer never looks inside a model or a loss. A model is called as
``model(**batch["inputs"], **forward_kwargs)`` and returns a dict with ``"logits"`` (B, C);
a loss is ``loss_fn(outputs, batch) -> (loss, {part: float})`` where ``batch`` is the contract
dict of ``distill.data.batching`` with its arrays turned into Paddle tensors (``index`` stays NumPy).

``out_dir`` gets:

* ``metrics.jsonl`` — one JSON object per logged step (``"type": "step"``) and per epoch
  (``"type": "epoch"``, with the dev metrics);
* ``best/model_state.pdparams`` + ``best/best.json`` — the weights of the best dev epoch;
* ``last/`` — model (``model_state.pdparams``; the loss's own parameters, if it has any, in
  ``loss_state.pdparams``), optimizer accumulators, LR scheduler, loss scaler and the loop
  position (epoch, step, early-stopping counters), written atomically at every epoch end and every
  ``save_every_steps`` steps. ``fit`` on the same ``out_dir`` resumes from it and ends with the
  same weights as an uninterrupted run: batch order depends only on ``(seed, epoch)`` and the
  dropout RNG is re-seeded from ``(seed, step)`` before every optimizer step.

Data parallel: started by ``paddle.distributed.launch`` (``distill.train.distributed``) with W
processes, every rank walks the same seeded global batch order and takes its own contiguous
slice of each global batch (``batch_size / W`` rows; gradient accumulation when
``micro_batch_size`` is smaller), ``paddle.DataParallel`` all-reduces the gradients (model and
the loss's own parameters together), so one step equals a single-process step over the same
global batch. Every rank evaluates dev, rank 0's result decides best epoch and early stopping for
all, and only rank 0 writes ``metrics.jsonl``, ``best/`` and ``last/``. With W = 1 nothing changes.

Example::

    from distill.train.trainer import TrainConfig, Trainer
    trainer = Trainer(model, loss_fn, TrainConfig(epochs=2, batch_size=32, lr=5e-5), "runs/t")
    summary = trainer.fit(train_plan, dev_plan)   # the model now holds the best dev weights
"""
import contextlib
import dataclasses
import functools
import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

import numpy as np
import paddle
from tqdm import tqdm

from distill.train import distributed

from distill.data.batching import restore_order
from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json
from distill.core.safe_pickle import StateFileError, load_state, load_state_dict
from distill.train.metrics import METRICS, TOKEN_METRICS, classification_metrics
from distill.core.registry import Registry
from distill.train.device import amp_level, place_layers, seed_everything, select_device, use_amp

log = logging.getLogger("distill.train.trainer")

SCHEDULES = ("linear", "constant")
DEVICES_HELP = "auto, cpu, gpu or gpu:N"
# config fields that may change between an interrupted run and its resumption
RESUME_FREE_FIELDS = ("device", "progress", "log_every", "save_every_steps")


@dataclass
class TrainConfig:
    """Settings of one training run (teacher fine-tuning or student training).

    ``batch_size`` is the global batch (one optimizer step). With ``micro_batch_size`` set, each
    batch is run in ``batch_size / micro_batch_size`` slices whose gradients are accumulated
    (as the ERNIE repo does), so memory follows the micro batch and results the global one.
    """

    epochs: int = 3
    batch_size: int = 32
    micro_batch_size: Optional[int] = None  # None: the whole batch at once
    lr: float = 5e-5
    weight_decay: float = 0.01  # decoupled (AdamW) on matrices only; biases/LayerNorm excluded
    warmup_ratio: float = 0.1  # share of the optimizer steps with the LR rising linearly
    schedule: str = "linear"  # linear: decay to 0 after warm-up; constant: stay at lr
    max_grad_norm: Optional[float] = 1.0  # global-norm clipping; None: off
    optimizer: str = "adamw"  # adamw | adam | sgd
    patience: Optional[int] = None  # stop after this many epochs without dev improvement
    seed: int = 42
    device: str = "auto"  # auto | cpu | gpu | gpu:N
    amp: bool = True  # mixed precision; used only on GPU (always off on CPU)
    amp_level: str = "O1"  # O1: listed ops in FP16; O2: FP16 weights + FP32 master copies (GPU)
    eval_metric: str = "accuracy"  # accuracy | macro_f1 (token tasks: f1 | ...): the best epoch
    max_steps: Optional[int] = None  # stop after this many optimizer steps
    log_every: int = 50  # steps between metrics.jsonl step records
    save_every_steps: Optional[int] = None  # also checkpoint last/ every N steps
    progress: bool = True  # tqdm progress bar
    data_fingerprint: str = ""  # hash of the training data: a checkpoint of other data is not resumed

    def __post_init__(self):
        def bad(name, problem):
            raise UserError(f"train config, field '{name}': {problem} "
                            f"(got {getattr(self, name)!r})")

        for name in ("epochs", "batch_size", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                bad(name, "must be a positive integer")
        for name in ("micro_batch_size", "patience", "max_steps", "save_every_steps"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                bad(name, "must be a positive integer or null")
        if self.micro_batch_size is not None and (
                self.micro_batch_size > self.batch_size or self.batch_size % self.micro_batch_size):
            bad("micro_batch_size", f"must divide batch_size ({self.batch_size})")
        if not self.lr > 0:
            bad("lr", "must be > 0")
        if self.weight_decay < 0:
            bad("weight_decay", "must be >= 0")
        if not 0 <= self.warmup_ratio < 1:
            bad("warmup_ratio", "must be in [0, 1)")
        if self.schedule not in SCHEDULES:
            bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            bad("max_grad_norm", "must be > 0 or null")
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", f"must be one of {', '.join(OPTIMIZERS.names())}")
        if self.eval_metric not in METRICS + TOKEN_METRICS:
            bad("eval_metric", f"must be one of {', '.join(METRICS + TOKEN_METRICS)}")
        if self.device != "auto" and self.device != "cpu" and not self.device.startswith("gpu"):
            bad("device", f"must be {DEVICES_HELP}")
        if self.amp_level not in ("O1", "O2"):
            bad("amp_level", "must be O1 or O2")

    @property
    def accumulation_steps(self) -> int:
        return self.batch_size // (self.micro_batch_size or self.batch_size)


# ------------------------------------------------------------------------------ optimizers

def _clip(config: TrainConfig):
    return None if config.max_grad_norm is None else paddle.nn.ClipGradByGlobalNorm(
        config.max_grad_norm)


def _decay(config: TrainConfig):
    return paddle.regularizer.L2Decay(config.weight_decay) if config.weight_decay else None


def _adamw(params, lr, config: TrainConfig, decay_names):
    return paddle.optimizer.AdamW(learning_rate=lr, parameters=params,
                                  weight_decay=config.weight_decay,
                                  apply_decay_param_fun=lambda name: name in decay_names,
                                  grad_clip=_clip(config))


def _adam(params, lr, config: TrainConfig, decay_names):
    return paddle.optimizer.Adam(learning_rate=lr, parameters=params,
                                 weight_decay=_decay(config), grad_clip=_clip(config))


def _sgd(params, lr, config: TrainConfig, decay_names):
    return paddle.optimizer.SGD(learning_rate=lr, parameters=params,
                                weight_decay=_decay(config), grad_clip=_clip(config))


OPTIMIZERS: Registry = Registry("optimizer")
OPTIMIZERS.add("adamw", _adamw)
OPTIMIZERS.add("adam", _adam)
OPTIMIZERS.add("sgd", _sgd)


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """LR multiplier at optimizer step ``step`` (0-based): linear warm-up to 1 over ``warmup``
    steps, then constant or linear decay reaching 0 just after step ``total - 1``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


# ------------------------------------------------------------------------------ batches

def to_tensors(batch):
    """Turn the NumPy arrays of a batch dict (nested) into Paddle tensors; ``index`` stays."""
    if isinstance(batch, dict):
        return {k: (v if k == "index" else to_tensors(v)) for k, v in batch.items()}
    if isinstance(batch, np.ndarray):
        return paddle.to_tensor(batch)
    return batch


def batch_rows(batch: Dict) -> int:
    if "index" in batch:
        return len(batch["index"])
    return len(next(iter(batch["inputs"].values())))


def split_batch(batch, start: int, stop: int):
    """Rows ``start:stop`` of every array in a (nested) batch dict."""
    if isinstance(batch, dict):
        return {k: split_batch(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, np.ndarray):
        return batch[start:stop]
    return batch


def _sum_over_ranks(loss: float, parts: Dict[str, float]) -> Tuple[float, Dict[str, float]]:
    """All-reduce (sum) a step's loss and its parts (the same keys on every rank)."""
    import paddle.distributed as dist

    keys = sorted(parts)
    values = paddle.to_tensor([loss] + [parts[k] for k in keys], dtype="float64")
    dist.all_reduce(values)
    out = values.numpy().tolist()
    return out[0], dict(zip(keys, out[1:]))


def epoch_batches(batches, epoch: int) -> Iterator[Dict]:
    """Epoch ``epoch`` of ``batches``: ``batches.epoch(epoch)`` when it has it (a ``BatchPlan``),
    else the iterable itself (the same order every epoch)."""
    return iter(batches.epoch(epoch)) if hasattr(batches, "epoch") else iter(batches)


# ------------------------------------------------------------------------------ evaluation

@contextlib.contextmanager
def _restoring_modes(model: paddle.nn.Layer):
    layers = [model] + list(model.sublayers())
    modes = [layer.training for layer in layers]
    try:
        yield model
    finally:
        for layer, mode in zip(layers, modes):
            layer.training = mode


def count_parameters(model: paddle.nn.Layer) -> int:
    """Number of scalar weights in ``model`` (trainable or not)."""
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))


@contextlib.contextmanager
def eval_mode(model: paddle.nn.Layer):
    """Put ``model`` (every sub-layer) in eval mode under ``paddle.no_grad``; restore the
    previous per-layer modes afterwards, whatever happens inside."""
    with _restoring_modes(model):
        model.eval()
        with paddle.no_grad():
            yield model


@contextlib.contextmanager
def train_mode(model: paddle.nn.Layer):
    """Put ``model`` in training mode (dropout on); restore the previous modes afterwards."""
    with _restoring_modes(model):
        model.train()
        yield model


def _predict(model, batches: Iterable[Dict], forward_kwargs: Optional[Dict] = None
             ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    logits, labels, index = [], [], []
    seen = 0
    with eval_mode(model):
        for batch in batches:
            n = batch_rows(batch)
            out = model(**to_tensors(batch["inputs"]), **(forward_kwargs or {}))
            logits.append(out["logits"].astype("float32").numpy())  # (B, C)
            index.append(batch["index"] if "index" in batch else np.arange(seen, seen + n))
            if "labels" in batch:
                labels.append(np.asarray(batch["labels"]))
            seen += n
    if not logits:
        raise ValueError("no batches to predict")
    index_parts, index = index, np.concatenate(index)
    logits = restore_order(index, np.concatenate(logits), len(index))
    gold = None
    if len(labels) == len(index_parts):  # every batch had labels
        gold = restore_order(index, np.concatenate(labels), len(index))
    return logits, gold


def predict_logits(model, batches: Iterable[Dict], forward_kwargs: Optional[Dict] = None
                   ) -> np.ndarray:
    """(N, C) float32 logits in input order (batches' ``index``), no-grad, model mode restored."""
    return _predict(model, batches, forward_kwargs)[0]


def evaluate(model, batches: Iterable[Dict], labels: Optional[np.ndarray] = None,
             forward_kwargs: Optional[Dict] = None) -> Dict[str, float]:
    """Accuracy and macro-F1 against ``labels`` (N,) in input order, or the batches' labels."""
    logits, gold = _predict(model, batches, forward_kwargs)
    if labels is None:
        if gold is None:
            raise ValueError("evaluate needs labels: pass labels= or batches with 'labels'")
        labels = gold
    return classification_metrics(labels, logits.argmax(axis=1))


# ------------------------------------------------------------------------------ trainer

@dataclass
class TrainState:
    """Where the loop is; saved in ``last/trainer_state.json``."""

    epoch: int = 0  # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch done
    step: int = 0  # optimizer steps done
    best_score: Optional[float] = None
    best_epoch: Optional[int] = None  # 1-based
    best_step: Optional[int] = None
    best_dev: Optional[Dict[str, float]] = None
    bad_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False
    loss_sum: float = 0.0  # running sums of the current epoch
    loss_rows: int = 0
    window_loss: float = 0.0  # running sums since the last step record
    window_rows: int = 0
    window_parts: dict = dataclasses.field(default_factory=dict)
    train_time_s: float = 0.0  # training steps only (batch building included, dev eval not)
    eval_time_s: float = 0.0
    rows_trained: int = 0
    metrics_bytes: int = 0  # length of metrics.jsonl at the save
    dev_history: list = dataclasses.field(default_factory=list)


class _ModelAndLoss(paddle.nn.Layer):
    """The model and its loss as one layer, so that ``paddle.DataParallel`` all-reduces the
    gradients of both (a hidden-state projection lives in the loss). Returns the loss tensor; the
    parts of the last call are in ``parts``."""

    def __init__(self, model, loss_fn, forward_kwargs):
        super().__init__()
        self.model = model
        if isinstance(loss_fn, paddle.nn.Layer):
            self.loss_fn = loss_fn
        else:
            object.__setattr__(self, "loss_fn", loss_fn)
        self.forward_kwargs = forward_kwargs
        self.parts: Dict[str, float] = {}

    def forward(self, batch):
        outputs = self.model(**batch["inputs"], **self.forward_kwargs)
        loss, self.parts = self.loss_fn(outputs, batch)
        return loss


class Trainer:
    """``Trainer(model, loss_fn, config, out_dir).fit(train_batches, dev_batches) -> summary``.

    ``train_batches``: a ``distill.data.batching.BatchPlan`` (re-shuffled per epoch) or any
    re-iterable of batch dicts with ``__len__``. ``dev_batches``: batches with ``labels``, or
    None (then every epoch counts as best). ``forward_kwargs`` go to every training forward call
    (default: the loss's ``model_kwargs`` attribute if it has one, e.g.
    ``{"output_hidden_states": True}``). A loss that is a ``paddle.nn.Layer`` with parameters
    (a hidden-state projection) has them trained and checkpointed along with the model.
    ``evaluator(model, dev_batches) -> metrics`` scores dev (default: ``evaluate``, accuracy and
    macro-F1; token tasks pass ``distill.train.token_eval.TokenEvaluator``).
    """

    def __init__(self, model: paddle.nn.Layer, loss_fn: Callable, config: TrainConfig,
                 out_dir, forward_kwargs: Optional[Dict] = None,
                 evaluator: Optional[Callable] = None):
        self.model, self.loss_fn, self.config = model, loss_fn, config
        self.evaluator = evaluator or evaluate
        self.out_dir = Path(out_dir)
        if forward_kwargs is None:  # a loss may say which extra outputs it needs
            forward_kwargs = getattr(loss_fn, "model_kwargs", None)
        self.forward_kwargs = dict(forward_kwargs or {})
        self.world = distributed.World()
        self._parallel = None  # paddle.DataParallel(model + loss) when W > 1
        self._amp_level = config.amp_level

    def _layers(self) -> Dict[str, paddle.nn.Layer]:
        """The layers whose parameters are trained: the model, and the loss when it has
        parameters of its own (e.g. a hidden-state projection)."""
        layers = {"model": self.model}
        if isinstance(self.loss_fn, paddle.nn.Layer) and self.loss_fn.parameters():
            layers["loss"] = self.loss_fn
        return layers

    def _param_names(self) -> Dict[str, str]:
        """Paddle's parameter name -> stable structured name (``model.emb.weight``)."""
        return {p.name: f"{prefix}.{n}" for prefix, layer in self._layers().items()
                for n, p in layer.named_parameters()}

    # paths
    @property
    def last_dir(self) -> Path:
        return self.out_dir / "last"

    @property
    def best_dir(self) -> Path:
        return self.out_dir / "best"

    @property
    def metrics_path(self) -> Path:
        return self.out_dir / "metrics.jsonl"

    def fit(self, train_batches, dev_batches=None) -> Dict:
        """Train (or resume) to the end; the model ends with the best dev weights, in the mode
        it had before (layers are in training mode during the steps)."""
        with contextlib.ExitStack() as modes:
            for layer in self._layers().values():
                modes.enter_context(train_mode(layer))
            return self._fit(train_batches, dev_batches)

    def _fit(self, train_batches, dev_batches) -> Dict:
        cfg = self.config
        me = distributed.world()
        if cfg.batch_size % me.size:
            raise UserError(f"train config, field 'batch_size': the global batch ({cfg.batch_size}) "
                            f"must split evenly over {me.size} processes")
        self.world = distributed.init()
        if me.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        device = select_device(cfg.device)
        amp = use_amp(device, cfg.amp)
        level = amp_level(cfg.amp_level)
        # the model, the loss's own layers and a teacher the loss runs must share the device
        place_layers(device, self.model,
                     self.loss_fn if isinstance(self.loss_fn, paddle.nn.Layer) else None,
                     getattr(self.loss_fn, "teacher", None))
        seed_everything(cfg.seed)

        steps_per_epoch = len(train_batches)
        if steps_per_epoch == 0:
            raise UserError("no training batches: the training set is empty")
        total_steps = cfg.epochs * steps_per_epoch
        if cfg.max_steps is not None:
            total_steps = min(total_steps, cfg.max_steps)
        params = [p for layer in self._layers().values() for p in layer.parameters()
                  if not p.stop_gradient]
        if not params:
            raise UserError("the model has no trainable parameters (all are frozen)")
        decay_names = {p.name for p in params if p.ndim >= 2}
        scheduler = paddle.optimizer.lr.LambdaDecay(
            cfg.lr, functools.partial(lr_factor, warmup=int(cfg.warmup_ratio * total_steps),
                                      total=total_steps, schedule=cfg.schedule))
        optimizer = OPTIMIZERS.get(cfg.optimizer)(params, scheduler, cfg, decay_names)
        scaler = paddle.amp.GradScaler(enable=amp, init_loss_scaling=2.0 ** 15)

        state = self._resume(optimizer, scheduler, scaler, params)
        if me.distributed:  # every rank read rank 0's last/: they must agree on where they are
            where = (state.epoch, state.batch_in_epoch, state.step)
            if distributed.broadcast_object(where) != where:
                raise UserError(f"{self.last_dir}: the processes read different checkpoints "
                                f"(rank {me.rank} at epoch/batch/step {where}); is {self.out_dir} "
                                "on a file system all machines share?")
        if amp and level == "O2":  # FP16 weights with FP32 master copies (GPU only; see docs)
            paddle.amp.decorate(models=self.model, optimizers=optimizer, level="O2",
                                master_weight=True, save_dtype="float32")
        self._amp_level = level
        self._parallel = None
        if me.distributed:  # after _resume: its zero step must not go through the reducer
            self._parallel = paddle.DataParallel(
                _ModelAndLoss(self.model, self.loss_fn, self.forward_kwargs))
        if state.finished:
            log.info("%s: training already finished; loading the best weights", self.out_dir)
            self._load_best()
            return self._summary(state, resumed_from=state.step)
        resumed_from = state.step
        self._open_metrics(state)

        for epoch in range(state.epoch, cfg.epochs):
            batches = itertools.islice(epoch_batches(train_batches, epoch),
                                       state.batch_in_epoch, None)
            bar = tqdm(total=steps_per_epoch, initial=state.batch_in_epoch, leave=False,
                       desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                       unit="batch")
            hit_max = False
            tick = time.perf_counter()
            for batch in batches:
                # dropout stream per step (and per rank: W = 1 gives the single-process stream)
                paddle.seed(cfg.seed * 1_000_003 + state.step * me.size + me.rank)
                lr = float(optimizer.get_lr())  # the rate this step uses
                loss, parts, rows = self._step(batch, optimizer, scheduler, scaler, amp)
                state.step += 1
                state.batch_in_epoch += 1
                state.loss_sum += loss * rows
                state.loss_rows += rows
                state.rows_trained += rows
                state.window_loss += loss * rows
                state.window_rows += rows
                for k, v in parts.items():
                    state.window_parts[k] = state.window_parts.get(k, 0.0) + v * rows
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
                if state.step % cfg.log_every == 0:
                    self._log({"type": "step", "epoch": epoch + 1, "step": state.step,
                               "loss": state.window_loss / state.window_rows,
                               **{k: v / state.window_rows for k, v in state.window_parts.items()},
                               "lr": lr})
                    state.window_loss, state.window_rows, state.window_parts = 0.0, 0, {}
                hit_max = cfg.max_steps is not None and state.step >= cfg.max_steps
                state.train_time_s += time.perf_counter() - tick
                if (cfg.save_every_steps and state.step % cfg.save_every_steps == 0
                        and not hit_max and state.batch_in_epoch < steps_per_epoch):
                    self._save_last(state, optimizer, scheduler, scaler, params)
                if hit_max:
                    break
                tick = time.perf_counter()
            bar.close()
            tick = time.perf_counter()
            self._end_epoch(state, epoch, dev_batches)
            state.eval_time_s += time.perf_counter() - tick
            if hit_max or state.stopped_early or state.epoch == cfg.epochs:
                state.finished = True
            self._save_last(state, optimizer, scheduler, scaler, params)
            if state.finished:
                break
        distributed.barrier()  # rank 0 has written best/
        self._load_best()
        return self._summary(state, resumed_from=resumed_from)

    # one optimizer step over one global batch
    def _step(self, batch, optimizer, scheduler, scaler, amp) -> Tuple[float, Dict, int]:
        rows = batch_rows(batch)  # the global batch
        me = self.world
        lo, hi = me.rank * rows // me.size, (me.rank + 1) * rows // me.size  # this rank's slice
        micro = min(self.config.micro_batch_size or rows, max(1, hi - lo))
        # (start, stop, weight): each slice's loss mean enters as n / rows of the global mean;
        # DataParallel averages over W ranks, hence the factor W. A rank left without rows
        # (a short last batch) still joins the all-reduce, with weight 0.
        slices = [(s, min(s + micro, hi), min(micro, hi - s) / rows * me.size)
                  for s in range(lo, hi, micro)] or [(0, 1, 0.0)]
        total_loss, total_parts = 0.0, {}
        for k, (start, stop, weight) in enumerate(slices):
            part = to_tensors(split_batch(batch, start, stop))
            sync = self._parallel is None or k == len(slices) - 1
            with contextlib.nullcontext() if sync else self._parallel.no_sync():
                with paddle.amp.auto_cast(enable=amp, level=self._amp_level):
                    if self._parallel is not None:
                        loss = self._parallel(part)
                        parts = self._parallel._layers.parts
                    else:
                        outputs = self.model(**part["inputs"], **self.forward_kwargs)
                        loss, parts = self.loss_fn(outputs, part)
                scaler.scale(loss * weight).backward()  # mean over the global batch
            n = stop - start if weight else 0  # rows of the global batch this slice holds
            total_loss += float(loss) * n / rows
            for key, v in parts.items():
                total_parts[key] = total_parts.get(key, 0.0) + float(v) * n / rows
        scaler.step(optimizer)
        scaler.update()
        optimizer.clear_grad()
        scheduler.step()
        if me.distributed:  # the global batch's loss (and parts) on every rank
            total_loss, total_parts = _sum_over_ranks(total_loss, total_parts)
        if not np.isfinite(total_loss):
            raise FloatingPointError(f"training loss is {total_loss}; lower the learning rate")
        return total_loss, total_parts, rows

    def _end_epoch(self, state: TrainState, epoch: int, dev_batches) -> None:
        cfg = self.config
        record = {"type": "epoch", "epoch": epoch + 1, "step": state.step,
                  "train_loss": state.loss_sum / max(1, state.loss_rows)}
        improved = True
        if dev_batches is not None:
            # every rank holds the same weights; rank 0's numbers decide for all
            dev = distributed.broadcast_object(self.evaluator(self.model, dev_batches))
            record["dev"] = dev
            state.dev_history.append({"epoch": epoch + 1, **dev})
            score = dev[cfg.eval_metric]
            improved = state.best_score is None or score > state.best_score
            if improved:
                state.best_score, state.best_dev = score, dev
        if improved:
            state.best_epoch, state.best_step, state.bad_epochs = epoch + 1, state.step, 0
            if self.world.main:
                with atomic_path(self.best_dir) as tmp:
                    tmp.mkdir()
                    paddle.save(self.model.state_dict(), str(tmp / "model_state.pdparams"))
                    write_json(tmp / "best.json", {"epoch": epoch + 1, "step": state.step,
                                                   "dev": state.best_dev})
        else:
            state.bad_epochs += 1
            if cfg.patience is not None and state.bad_epochs >= cfg.patience:
                state.stopped_early = True
        record.update(best=improved, train_time_s=round(state.train_time_s, 3))
        self._log(record)
        state.epoch, state.batch_in_epoch = epoch + 1, 0
        state.loss_sum, state.loss_rows = 0.0, 0
        log.info("epoch %d: %s", epoch + 1, json.dumps(record))

    # metrics.jsonl
    def _open_metrics(self, state: TrainState) -> None:
        if not self.world.main:
            return
        mode = "r+b" if self.metrics_path.exists() else "wb"
        with open(self.metrics_path, mode) as f:  # drop records written after the checkpoint
            f.truncate(state.metrics_bytes)

    def _log(self, record: Dict) -> None:
        if not self.world.main:
            return
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # checkpoints
    def _config_dict(self) -> Dict:
        return {k: v for k, v in dataclasses.asdict(self.config).items()
                if k not in RESUME_FREE_FIELDS}

    def _save_last(self, state, optimizer, scheduler, scaler, params) -> None:
        if not self.world.main:
            return
        state.metrics_bytes = self.metrics_path.stat().st_size
        names = self._param_names()
        accumulators = {f"{names[pname]}/{kind}": var.numpy()
                        for kind, per_param in optimizer._accumulators.items()
                        for pname, var in per_param.items()}
        with atomic_path(self.last_dir) as tmp:
            tmp.mkdir()
            for prefix, layer in self._layers().items():
                paddle.save(layer.state_dict(), str(tmp / f"{prefix}_state.pdparams"))
            paddle.save({"accumulators": accumulators, "scheduler": scheduler.state_dict(),
                         "scaler": scaler.state_dict()}, str(tmp / "optimizer.pdopt"))
            write_json(tmp / "trainer_state.json", {"config": self._config_dict(),
                                                    "state": dataclasses.asdict(state)})

    def _resume(self, optimizer, scheduler, scaler, params) -> TrainState:
        state_path = self.last_dir / "trainer_state.json"
        if not state_path.exists():
            return TrainState()
        try:  # read everything before touching the model: a bad file means "start over"
            saved = read_json(state_path)
            if not isinstance(saved, dict) or not isinstance(saved.get("config"), dict):
                raise StateFileError(state_path, "not a trainer state (no 'config' mapping)")
            state = TrainState(**saved["state"])
            weights = {prefix: load_state_dict(self.last_dir / f"{prefix}_state.pdparams")
                       for prefix in self._layers()}
            extra = load_state(self.last_dir / "optimizer.pdopt")
            if not isinstance(extra, dict) or not {"accumulators", "scheduler", "scaler"} <= set(extra):
                raise StateFileError(self.last_dir / "optimizer.pdopt", "not an optimizer state")
        except (UserError, OSError, ValueError, TypeError, KeyError) as err:
            log.warning("%s: unreadable checkpoint, training starts over (%s)", self.last_dir, err)
            return TrainState()
        mine = self._config_dict()
        defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
        data_key = "data_fingerprint"
        if saved["config"].get(data_key, "") != mine.get(data_key, ""):
            log.warning("%s: the training data changed since this checkpoint was written; "
                        "training starts over", self.out_dir)
            return TrainState()
        changed = [k for k in mine if saved["config"].get(k, defaults.get(k)) != mine[k]]
        if changed:
            k = changed[0]
            raise UserError(f"{state_path}: written with {k}={saved['config'].get(k)!r} but this "
                            f"run has {k}={mine[k]!r}; use another output directory or delete "
                            f"{self.last_dir} to start over")
        # Optimizer accumulators are created lazily by the first step, and Paddle keys them by
        # names carrying process-wide counters; so take one step with zero gradients to create
        # them, then overwrite weights and accumulators with the saved ones, matched by
        # structured parameter names.
        paddle.add_n([(p * 0.0).sum() for p in params]).backward()
        optimizer.step()
        optimizer.clear_grad()
        for prefix, layer in self._layers().items():
            layer.set_state_dict(weights[prefix])
        scheduler.set_state_dict(extra["scheduler"])
        scaler.load_state_dict(extra["scaler"])
        names = self._param_names()
        for kind, per_param in optimizer._accumulators.items():
            for pname, var in per_param.items():
                key = f"{names[pname]}/{kind}"
                if key not in extra["accumulators"]:
                    raise UserError(f"{self.last_dir}: optimizer state lacks {key}; delete "
                                    f"{self.last_dir} to start over")
                var.set_value(extra["accumulators"][key])
        log.info("resuming %s at epoch %d, step %d", self.out_dir, state.epoch + 1, state.step)
        return state

    def _load_best(self) -> None:
        path = self.best_dir / "model_state.pdparams"
        if path.exists():
            self.model.set_state_dict(load_state_dict(path))

    def _summary(self, state: TrainState, resumed_from: int) -> Dict:
        return {"best_epoch": state.best_epoch, "best_step": state.best_step,
                "best_dev": state.best_dev, "epochs_run": state.epoch, "steps": state.step,
                "stopped_early": state.stopped_early, "train_time_s": state.train_time_s,
                "eval_time_s": state.eval_time_s, "rows_trained": state.rows_trained,
                "train_rows_per_s": state.rows_trained / max(state.train_time_s, 1e-9),
                "resumed_from_step": resumed_from, "dev_history": state.dev_history,
                "out_dir": str(self.out_dir)}
