"""Distillation losses and their weighted composite (the trainer's ``loss_fn``).

Every loss is a ``paddle.nn.Layer`` called as ``term(outputs, batch, teacher_outputs)`` and
returning a scalar; ``outputs`` is the student's output dict (``logits`` (B, C), on request
``hidden_states`` / ``attentions`` / ``mask``), ``batch`` the trainer batch (``labels`` (B,) int64
with -1 = no gold label, ``teacher_logits`` (B, C) float32) and ``teacher_outputs`` the online
teacher's output dict (only for the intermediate-layer losses). Names, in ``LOSSES``:

==============  ====================================================================================
``soft_ce``     T² · mean_b −Σ_c softmax(t/T) · log_softmax(s/T)          (Hinton et al., ERNIE Slim)
``kl``          T² · mean_b Σ_c p_t (log p_t − log p_s), p = softmax(·/T)  (KL(teacher ‖ student))
``logit_mse``   mean_b mean_c (s − t)²                                     (Tang et al. 2019)
``hard_ce``     mean over rows with a gold label of −log_softmax(s)[y]     (rows with y = −1 ignored)
``hidden_mse``  mean over mapped layers and real tokens of mean_h (W·h_s + b − h_t)²    (TinyBERT)
``attention``   KL(p_t ‖ p_s) per real query row (or MSE over real query/key pairs), mean over
                mapped layers, heads and rows                                           (TinyBERT)
``crf``         token taggers with a CRF (``config: {crf: true}``): mean over sentences with gold
                tags of the CRF's −log p(tags | emissions)       (linear-chain CRF, ``students.crf``)
==============  ====================================================================================

Token tasks (``distill.data.token_batching``): the student's ``logits`` are (B, T, C) per sub-token;
every logit loss first gathers each token's first sub-token with ``batch["token_index"]`` (B, W)
-> (B, W, C), then takes its per-row value per token and averages over the real tokens only
(``batch["token_mask"]`` (B, W); padding never contributes). ``teacher_logits`` are then
(B, W, C) and ``labels`` (B, W) with -1 = no gold tag.

The composite is built from data::

    loss_fn = build_loss([{"name": "soft_ce", "weight": 0.9, "params": {"temperature": 2}},
                          {"name": "hard_ce", "weight": 0.1}])
    print(loss_fn)                      # 0.9*soft_ce(T=2) + 0.1*hard_ce
    loss, parts = loss_fn(model(**inputs), batch)   # parts: {"soft_ce": 0.41, "hard_ce": 0.69}

or from the CLI form ``parse_loss_spec("soft_ce:0.9,hard_ce:0.1")``. ``hidden_mse`` and
``attention`` need the teacher's intermediate states, so ``build_loss(..., teacher=model)`` runs
the teacher inside the loss (eval mode, no gradients) when, and only when, such a term is present;
``WeightedSum.model_kwargs`` tells the trainer which extra outputs to ask the student for.
"""
import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from distill.core.errors import UserError
from distill.core.registry import Registry

LOSSES: Registry = Registry("loss")
_EPS = 1e-12


def _tensor(x, dtype: Optional[str] = None):
    """NumPy arrays from the batch become tensors; tensors pass through."""
    if not isinstance(x, paddle.Tensor):
        x = paddle.to_tensor(np.asarray(x))
    return x.astype(dtype) if dtype is not None and x.dtype != getattr(paddle, dtype) else x


def _teacher_logits(batch: Dict, teacher_outputs: Optional[Dict]):
    if "teacher_logits" in batch:
        return _tensor(batch["teacher_logits"], "float32")  # (B, C) or (B, W, C)
    if teacher_outputs is not None:
        return _token_rows(teacher_outputs["logits"].detach(), batch)[0]  # (B, C) or (B, W, C)
    raise UserError("this loss needs teacher logits: give soft labels (--soft-labels) or a teacher")


def _token_rows(logits, batch: Dict):
    """Sentence logits (B, C) pass through (weights None). Sub-token logits (B, T, C) of a token
    task are gathered at ``batch["token_index"]`` -> (B, W, C), weights ``token_mask`` (B, W)."""
    if len(logits.shape) != 3:
        return logits, None
    if "token_index" not in batch:
        raise UserError("the model returns per-token logits but the batch has no token_index: "
                        "token students need token-task batches (distill.data.token_batching)")
    index = _tensor(batch["token_index"], "int64").unsqueeze(-1)  # (B, W, 1)
    rows = paddle.take_along_axis(logits, index.expand([-1, -1, logits.shape[-1]]), axis=1)
    return rows, _tensor(batch["token_mask"], "float32")  # (B, W, C), (B, W)


def _mean(values, weights):
    """values (B,) -> mean; values (B, W) with weights (B, W) -> weighted mean over real tokens."""
    if weights is None:
        return values.mean()
    return (values * weights).sum() / weights.sum().clip(min=1.0)


@dataclass
class LossContext:
    """Facts about the models that some losses need to build themselves (projection sizes, layers)."""

    student_hidden: Optional[int] = None
    teacher_hidden: Optional[int] = None
    student_layers: Optional[int] = None
    teacher_layers: Optional[int] = None
    layer_map: Optional[List[int]] = None  # 0-based teacher layer behind each student layer
    crf: Optional[Any] = None  # the student's CRF layer (students.crf), for the crf loss


class LossTerm(nn.Layer):
    """Base class. ``needs`` = extra student outputs; ``online`` = needs the teacher's internals."""

    name = "loss"
    needs: Tuple[str, ...] = ()
    online = False

    def describe(self) -> str:
        return self.name


class SoftCrossEntropy(LossTerm):
    """Soft cross-entropy: s, t (B, C) -> T² · mean_b −Σ_c softmax(t/T)_c · log_softmax(s/T)_c."""

    name = "soft_ce"

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise UserError(f"loss soft_ce: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def describe(self) -> str:
        return f"soft_ce(T={self.temperature:g})"

    def forward(self, outputs, batch, teacher_outputs=None):
        T = self.temperature
        student, weights = _token_rows(outputs["logits"], batch)  # (B, C) or (B, W, C)
        target = F.softmax(_teacher_logits(batch, teacher_outputs) / T, axis=-1)  # like student
        log_p = F.log_softmax(student / T, axis=-1)
        return _mean(-(target * log_p).sum(axis=-1), weights) * (T * T)


class KLDivergence(LossTerm):
    """KL(teacher ‖ student): s, t (B, C) -> T² · mean_b Σ_c p_t (log p_t − log p_s), p = softmax(·/T).

    Equals ``soft_ce`` minus the teacher's entropy: same gradient, but 0 when the student matches.
    """

    name = "kl"

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise UserError(f"loss kl: temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def describe(self) -> str:
        return f"kl(T={self.temperature:g})"

    def forward(self, outputs, batch, teacher_outputs=None):
        T = self.temperature
        student, weights = _token_rows(outputs["logits"], batch)  # (B, C) or (B, W, C)
        log_t = F.log_softmax(_teacher_logits(batch, teacher_outputs) / T, axis=-1)  # like student
        log_s = F.log_softmax(student / T, axis=-1)
        return _mean((log_t.exp() * (log_t - log_s)).sum(axis=-1), weights) * (T * T)


class LogitMSE(LossTerm):
    """Logit regression (Tang et al.): s, t (B, C) -> mean over B·C of (s − t)²."""

    name = "logit_mse"

    def forward(self, outputs, batch, teacher_outputs=None):
        student, weights = _token_rows(outputs["logits"], batch)  # (B, C) or (B, W, C)
        diff = student - _teacher_logits(batch, teacher_outputs)
        return _mean((diff * diff).mean(axis=-1), weights)


class HardCrossEntropy(LossTerm):
    """Cross-entropy on gold labels: s (B, C), y (B,) -> mean over rows with y >= 0 of −log_softmax(s)[y].

    Rows with y = −1 (augmented or unlabelled rows) are ignored; a batch with none gives 0.
    """

    name = "hard_ce"

    def forward(self, outputs, batch, teacher_outputs=None):
        if "labels" not in batch:
            raise UserError("loss hard_ce needs gold labels, but the training batches have none")
        student, weights = _token_rows(outputs["logits"], batch)  # (B, C) or (B, W, C)
        labels = _tensor(batch["labels"], "int64")  # (B,) or (B, W)
        valid = (labels >= 0).astype("float32")
        if weights is not None:
            valid = valid * weights
        log_p = F.log_softmax(student, axis=-1)
        picked = paddle.take_along_axis(log_p, labels.clip(min=0).unsqueeze(-1), axis=-1)
        return -(picked.squeeze(-1) * valid).sum() / valid.sum().clip(min=1.0)


def _layer_pairs(layers, n_student: Optional[int], n_teacher: Optional[int],
                 layer_map: Optional[Sequence[int]], offset: int, loss: str) -> List[Tuple[int, int]]:
    """(student index, teacher index) pairs into ``hidden_states`` (offset 0: index 0 is the
    embeddings, index m is layer m) or ``attentions`` (offset 1: index m-1 is layer m).

    ``layers``: explicit ``[[s, t], ...]`` index pairs; ``"uniform"``: student layer m <-> teacher
    layer m·k (k = n_teacher / n_student); ``"auto"``: the ``layer_map`` the tiny student was
    initialised from (student layer m <-> teacher layer layer_map[m-1] + 1), else uniform.
    Embeddings are paired with embeddings.
    """
    if layers == "auto":
        layers = "uniform" if not layer_map else "map"
    if layers == "map":
        pairs = [(m, int(t) + 1) for m, t in enumerate(layer_map, start=1)]
        pairs = ([(0, 0)] if offset == 0 else []) + pairs
        return [(s - offset, t - offset) for s, t in pairs]
    if layers == "uniform":
        if not n_student or not n_teacher:
            raise UserError(f"loss {loss}: layers='{layers}' needs the student's and teacher's "
                            "layer counts; give explicit layers or a teacher")
        if n_teacher % n_student:
            raise UserError(f"loss {loss}: cannot map {n_student} student layers uniformly onto "
                            f"{n_teacher} teacher layers; give explicit layers")
        k = n_teacher // n_student
        first = 0 if offset == 0 else 1
        return [(m - offset, m * k - offset) for m in range(first, n_student + 1)]
    try:
        pairs = [(int(s), int(t)) for s, t in layers]
    except (TypeError, ValueError):
        raise UserError(f"loss {loss}: layers must be 'auto', 'uniform' or a list of "
                        f"[student, teacher] index pairs, got {layers!r}") from None
    if not pairs:
        raise UserError(f"loss {loss}: layers is empty")
    return pairs


def _check_same_tokens(student_shape, teacher_shape, loss: str) -> None:
    """Intermediate losses compare token by token: batch and sequence sizes must agree."""
    if list(student_shape) != list(teacher_shape):
        raise UserError(f"loss {loss}: student and teacher (batch, tokens) sizes differ "
                        f"({list(student_shape)} vs {list(teacher_shape)}); intermediate losses "
                        "need a student that shares the teacher's tokenizer (kind 'tiny')")


class HiddenMSE(LossTerm):
    """Hidden-state MSE through a learned projection (TinyBERT).

    For each mapped pair (i, j): h_s = student hidden_states[i] (B, T, Hs), h_t = teacher
    hidden_states[j] (B, T, Ht), mask (B, T); term = Σ_{b,t} mask · mean_h (h_s W + b − h_t)² / Σ mask.
    The loss is the mean over pairs. One projection ``Linear(Hs, Ht)`` is shared by all pairs
    (TinyBERT's); ``project=False`` needs Hs == Ht and compares directly.
    """

    name = "hidden_mse"
    needs = ("hidden_states",)
    online = True

    def __init__(self, layers: Union[str, Sequence[Sequence[int]]] = "auto",
                 student_hidden: Optional[int] = None, teacher_hidden: Optional[int] = None,
                 student_layers: Optional[int] = None, teacher_layers: Optional[int] = None,
                 layer_map: Optional[Sequence[int]] = None, project: bool = True):
        super().__init__()
        self.pairs = _layer_pairs(layers, student_layers, teacher_layers, layer_map, 0, self.name)
        if project:
            if not student_hidden or not teacher_hidden:
                raise UserError("loss hidden_mse: the projection needs student_hidden and "
                                "teacher_hidden (given automatically when a teacher is given)")
            self.projection = nn.Linear(student_hidden, teacher_hidden)
        else:
            if student_hidden and teacher_hidden and student_hidden != teacher_hidden:
                raise UserError(f"loss hidden_mse: project=false needs equal widths, got "
                                f"{student_hidden} and {teacher_hidden}")
            self.projection = None

    def describe(self) -> str:
        return f"hidden_mse({','.join(f'{s}->{t}' for s, t in self.pairs)})"

    def forward(self, outputs, batch, teacher_outputs=None):
        if teacher_outputs is None or "hidden_states" not in teacher_outputs:
            raise UserError("loss hidden_mse needs the teacher's hidden states: give --teacher")
        if "hidden_states" not in outputs:
            raise UserError("loss hidden_mse: the student returned no hidden states")
        student, teacher = outputs["hidden_states"], teacher_outputs["hidden_states"]
        mask = _tensor(batch["inputs"]["attention_mask"], "float32")  # (B, T)
        total = 0.0
        for i, j in self.pairs:
            if not (-len(student) <= i < len(student) and -len(teacher) <= j < len(teacher)):
                raise UserError(f"loss hidden_mse: layer pair ({i}, {j}) is out of range for "
                                f"{len(student)} student and {len(teacher)} teacher hidden states")
            h_s, h_t = student[i], teacher[j].detach()  # (B, T, Hs), (B, T, Ht)
            _check_same_tokens(h_s.shape[:-1], h_t.shape[:-1], self.name)
            if self.projection is not None:
                h_s = self.projection(h_s)  # (B, T, Ht)
            per_token = ((h_s - h_t) ** 2).mean(axis=-1)  # (B, T)
            total = total + (per_token * mask).sum() / mask.sum().clip(min=1.0)
        return total / len(self.pairs)


class AttentionLoss(LossTerm):
    """Attention-distribution loss (TinyBERT): student/teacher attentions (B, heads, T, T), rows sum to 1.

    ``mode="kl"``: KL(p_t ‖ p_s) over keys for every real query row, mean over rows, heads and
    mapped layers. ``mode="mse"``: (p_s − p_t)² mean over real (query, key) pairs, heads and layers.
    When head counts differ, both sides are first averaged over heads.
    """

    name = "attention"
    needs = ("attentions",)
    online = True

    def __init__(self, layers: Union[str, Sequence[Sequence[int]]] = "auto", mode: str = "kl",
                 student_layers: Optional[int] = None, teacher_layers: Optional[int] = None,
                 layer_map: Optional[Sequence[int]] = None):
        super().__init__()
        if mode not in ("kl", "mse"):
            raise UserError(f"loss attention: mode must be 'kl' or 'mse', got {mode!r}")
        self.mode = mode
        self.pairs = _layer_pairs(layers, student_layers, teacher_layers, layer_map, 1, self.name)

    def describe(self) -> str:
        return f"attention_{self.mode}({','.join(f'{s}->{t}' for s, t in self.pairs)})"

    def forward(self, outputs, batch, teacher_outputs=None):
        if teacher_outputs is None or "attentions" not in teacher_outputs:
            raise UserError("loss attention needs the teacher's attentions: give --teacher")
        if "attentions" not in outputs:
            raise UserError("loss attention: the student returned no attentions")
        student, teacher = outputs["attentions"], teacher_outputs["attentions"]
        mask = _tensor(batch["inputs"]["attention_mask"], "float32")  # (B, T)
        query = mask.unsqueeze(1).unsqueeze(-1)  # (B, 1, T, 1)
        key = mask.unsqueeze(1).unsqueeze(1)  # (B, 1, 1, T)
        total = 0.0
        for i, j in self.pairs:
            if not (-len(student) <= i < len(student) and -len(teacher) <= j < len(teacher)):
                raise UserError(f"loss attention: layer pair ({i}, {j}) is out of range for "
                                f"{len(student)} student and {len(teacher)} teacher attention maps")
            a_s, a_t = student[i], teacher[j].detach()  # (B, Hs, T, T), (B, Ht, T, T)
            _check_same_tokens([a_s.shape[0]] + a_s.shape[2:], [a_t.shape[0]] + a_t.shape[2:],
                               self.name)
            if a_s.shape[1] != a_t.shape[1]:
                a_s, a_t = a_s.mean(axis=1, keepdim=True), a_t.mean(axis=1, keepdim=True)
            heads = a_s.shape[1]
            if self.mode == "kl":
                per_row = (a_t * (a_t.clip(min=_EPS).log() - a_s.clip(min=_EPS).log()) * key).sum(-1)
                term = (per_row * query.squeeze(-1)).sum() / (mask.sum().clip(min=1.0) * heads)
            else:
                pair = query * key  # (B, 1, T, T)
                term = (((a_s - a_t) ** 2) * pair).sum() / (pair.sum().clip(min=1.0) * heads)
            total = total + term
        return total / len(self.pairs)


class CRFLoss(LossTerm):
    """The negative log-likelihood of the gold tags under the student's linear-chain CRF,
    averaged over the sentences that have gold tags (tokens with label −1 never count)."""

    name = "crf"

    def __init__(self, crf=None):
        super().__init__()
        if crf is None:
            raise UserError("loss crf needs a tagger with a CRF layer (student config crf: true)")
        self._crf = [crf]  # a reference, not a sublayer: the student owns and trains it

    def forward(self, outputs, batch, teacher_outputs=None):
        if "labels" not in batch:
            raise UserError("loss crf needs gold tags, but the training batches have none")
        emissions, weights = _token_rows(outputs["logits"], batch)  # (B, W, C), (B, W)
        if weights is None:
            raise UserError("loss crf is for token taggers (per-token logits)")
        labels = _tensor(batch["labels"], "int64")  # (B, W)
        mask = (labels >= 0).astype("float32") * weights  # (B, W): a prefix of each row
        nll = self._crf[0].nll(emissions, labels, mask)  # (B,)
        rows = mask[:, 0]  # (B,) 1 for sentences with gold tags
        return (nll * rows).sum() / rows.sum().clip(min=1.0)


for _cls in (SoftCrossEntropy, KLDivergence, LogitMSE, HardCrossEntropy, HiddenMSE, AttentionLoss,
             CRFLoss):
    LOSSES.add(_cls.name, _cls)


@contextlib.contextmanager
def _frozen(model):
    """Eval mode and no gradients inside; the previous mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with paddle.no_grad():
            yield model
    finally:
        if was_training:
            model.train()


class WeightedSum(nn.Layer):
    """Σ_i w_i · loss_i; ``str()`` is the formula, e.g. ``0.9*soft_ce(T=2) + 0.1*hard_ce``.

    Called as ``loss_fn(outputs, batch) -> (loss, {part: float})``; part names are the loss names
    (``name#2`` for a repeat). With a ``teacher`` and an online term (hidden/attention), the
    teacher runs on ``batch["inputs"]`` inside ``teacher_context`` (default: eval + no_grad).
    """

    def __init__(self, terms: Sequence[Tuple[float, LossTerm]], teacher=None, teacher_context=None):
        super().__init__()
        if not terms:
            raise UserError("a loss needs at least one term")
        self.weights = [float(w) for w, _ in terms]
        self.terms = nn.LayerList([t for _, t in terms])
        self.labels: List[str] = []
        for term in self.terms:
            label = term.name
            n = 2
            while label in self.labels:
                label, n = f"{term.name}#{n}", n + 1
            self.labels.append(label)
        self.online = any(t.online for t in self.terms)
        if self.online and teacher is None:
            raise UserError(f"{self}: intermediate-layer losses need a teacher (--teacher)")
        # a plain attribute (not a sublayer): the teacher's weights are not trained or saved here
        object.__setattr__(self, "_teacher", teacher if self.online else None)
        self._teacher_context = teacher_context or _frozen

    @property
    def teacher(self):
        return self._teacher

    @property
    def model_kwargs(self) -> Dict[str, bool]:
        """Extra keyword arguments the student must be called with for these terms."""
        needs = {n for t in self.terms for n in t.needs}
        return {"output_hidden_states": "hidden_states" in needs,
                "output_attentions": "attentions" in needs}

    def __str__(self) -> str:
        return " + ".join(f"{w:g}*{t.describe()}" for w, t in zip(self.weights, self.terms))

    def __repr__(self) -> str:
        return f"WeightedSum({self})"

    def forward(self, outputs, batch):
        teacher_outputs = None
        if self._teacher is not None:
            inputs = {k: _tensor(v) for k, v in batch["inputs"].items()}
            with self._teacher_context(self._teacher):
                teacher_outputs = self._teacher(**inputs, **self.model_kwargs)
        total = 0.0
        parts: Dict[str, float] = {}
        for label, weight, term in zip(self.labels, self.weights, self.terms):
            value = term(outputs, batch, teacher_outputs)
            parts[label] = float(value)
            total = total + weight * value
        return total, parts


def parse_loss_spec(text: str) -> List[Dict[str, Any]]:
    """``"soft_ce:0.9,hard_ce:0.1"`` -> ``[{"name": "soft_ce", "weight": 0.9}, ...]`` (weight 1 if left out)."""
    specs = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = item.partition(":")
        try:
            specs.append({"name": name.strip(), "weight": float(weight) if weight else 1.0})
        except ValueError:
            raise UserError(f"--loss: bad weight {weight!r} in {item!r}; "
                            "expected NAME:WEIGHT[,NAME:WEIGHT...]") from None
    if not specs:
        raise UserError(f"--loss: no terms in {text!r}; expected NAME:WEIGHT[,NAME:WEIGHT...]")
    return specs


def build_term(name: str, params: Optional[Dict[str, Any]] = None,
               context: Optional[LossContext] = None) -> LossTerm:
    """One loss from its registry name; context facts fill parameters the user left out."""
    cls = LOSSES.get(name)
    params = dict(params or {})
    accepted = inspect.signature(cls.__init__).parameters
    unknown = sorted(set(params) - set(accepted) - {"self"})
    if unknown:
        known = [p for p in accepted if p != "self"]
        raise UserError(f"loss {name}: unknown parameter(s) {', '.join(unknown)}; "
                        f"known: {', '.join(known) or 'none'}")
    for key, value in vars(context or LossContext()).items():
        if key in accepted and key not in params and value is not None:
            params[key] = value
    return cls(**params)


def build_loss(specs: Sequence[Dict[str, Any]], teacher=None, context: Optional[LossContext] = None,
               temperature: Optional[float] = None, teacher_context=None) -> WeightedSum:
    """A ``WeightedSum`` from ``[{name, weight, params}, ...]``.

    ``temperature`` is the default for the terms that take one; ``context`` (or a ``teacher`` with
    an ``ErnieConfig`` at ``teacher.config``) supplies layer counts and widths.
    """
    terms = []
    for i, spec in enumerate(specs):
        extra = sorted(set(spec) - {"name", "weight", "params"})
        if "name" not in spec or extra:
            raise UserError(f"loss term {i}: expected keys name, weight, params; got {sorted(spec)}")
        params = dict(spec.get("params") or {})
        if temperature is not None and "temperature" in inspect.signature(
                LOSSES.get(spec["name"]).__init__).parameters:
            params.setdefault("temperature", temperature)
        terms.append((float(spec.get("weight", 1.0)), build_term(spec["name"], params, context)))
    return WeightedSum(terms, teacher=teacher, teacher_context=teacher_context)
