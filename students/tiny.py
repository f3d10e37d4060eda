"""Tiny transformer student: the ERNIE architecture with fewer (and optionally narrower) layers.

It reuses the teacher's tokenizer as its encoder. With ``init="teacher"`` (widths must match) it
starts from the teacher: embeddings, the chosen encoder layers (default: every k-th, e.g. layers
[2, 5, 8, 11] of 12 for 4 student layers), pooler and classifier are copied. Otherwise it starts
from random weights. Example::

    config = tiny_config_for(teacher.config, {"num_layers": 3})     # teacher widths, 3 layers
    model = TinyStudent(config, vocab_size=teacher.tokenizer.vocab_size, num_labels=2)
    init_from_teacher(model, teacher.model)                         # layers 1, 3, 5 of a 6-layer teacher

Parameters live under ``model.*`` with the teacher's (PaddleNLP) names below that.
"""
import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import paddle.nn as nn

from distill.core.errors import UserError
from students.base import StudentConfig
from teachers.config import ErnieConfig
from teachers.model import ErnieForSequenceClassification

# What the tokenizer decides, not the student config
_FROM_TOKENIZER = ("vocab_size", "pad_token_id")
_TINY_SIZES = {"num_layers": 4, "hidden_size": 312, "intermediate_size": 1200}


def _encoder_fields() -> list:
    """ErnieConfig's fields (less the tokenizer's), with a tiny student's default sizes."""
    out = []
    for f in dataclasses.fields(ErnieConfig):
        if f.name in _FROM_TOKENIZER:
            continue
        if f.name in _TINY_SIZES:
            default = dataclasses.field(default=_TINY_SIZES[f.name])
        elif f.default is not dataclasses.MISSING:
            default = dataclasses.field(default=f.default)
        else:
            default = dataclasses.field(default_factory=f.default_factory)
        out.append((f.name, f.type, default))
    return out


_TinyFields = dataclasses.make_dataclass(
    "_TinyFields", _encoder_fields() + [
        ("init", str, dataclasses.field(default="teacher")),  # teacher | random
        ("teacher_layers", Tuple[int, ...], dataclasses.field(default=())),  # () = every k-th
    ], bases=(StudentConfig,))
_SHARED = tuple(name for name, _, _ in _encoder_fields())


@dataclasses.dataclass
class TinyConfig(_TinyFields):
    """Every ``ErnieConfig`` field but vocab_size/pad_token_id (tiny sizes by default), plus
    ``init`` (teacher | random) and ``teacher_layers`` (0-based teacher layers to copy)."""

    def validate(self, where: str) -> None:
        self._choice(where, "init", self.init, ("teacher", "random"))
        self.ernie_config(vocab_size=2)  # ConfigError naming the field of a bad encoder setting
        if self.teacher_layers and len(self.teacher_layers) != self.num_layers:
            raise UserError(f"{where}: teacher_layers {list(self.teacher_layers)} must name "
                            f"num_layers = {self.num_layers} layers")

    def ernie_config(self, vocab_size: int, pad_id: int = 0) -> ErnieConfig:
        return ErnieConfig(vocab_size=vocab_size, pad_token_id=pad_id,
                           **{name: getattr(self, name) for name in _SHARED})


def tiny_config_for(teacher_config: ErnieConfig, overrides: Optional[Dict[str, Any]] = None,
                    where: str = "student 'tiny' config", config_class=None) -> TinyConfig:
    """A TinyConfig (or ``config_class``, a subclass) with the teacher's widths and settings,
    4 layers (at most the teacher's), then ``overrides`` (e.g. ``{"num_layers": 3}`` or
    ``{"hidden_size": 256, "init": "random"}``)."""
    values: Dict[str, Any] = {name: getattr(teacher_config, name) for name in _SHARED}
    values["num_layers"] = min(4, teacher_config.num_layers)
    values.update(overrides or {})
    return (config_class or TinyConfig).from_dict(values, where=where)


def default_teacher_layers(n_student: int, n_teacher: int) -> List[int]:
    """Every k-th teacher layer, ending on the last: 4 of 12 -> [2, 5, 8, 11]; 3 of 6 -> [1, 3, 5]."""
    if n_student > n_teacher:
        raise UserError(f"a {n_student}-layer student cannot copy layers from a "
                        f"{n_teacher}-layer teacher; use init='random' or fewer layers")
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]


class TinyStudent(nn.Layer):
    """A small ERNIE with ``head_class`` on top (sentence classification here; the token
    tagger ``students.taggers.TinyTagger`` swaps the head)."""

    config_class = TinyConfig
    head_class = ErnieForSequenceClassification
    what = "tiny student"  # in error messages
    # config fields that must equal the teacher's for init="teacher"
    must_match = ("vocab_size", "hidden_size", "num_heads", "intermediate_size", "type_vocab_size",
                  "max_position_embeddings", "use_task_id", "task_type_vocab_size", "pooling",
                  "position_offset")
    copies_pooler = True

    def __init__(self, config: TinyConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.ernie_config = config.ernie_config(vocab_size, pad_id)
        self.model = self.head_class(self.ernie_config, num_labels)

    @property
    def classifier(self):
        return self.model.classifier

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        return self.model(input_ids, token_type_ids, attention_mask,
                          output_hidden_states=output_hidden_states,
                          output_attentions=output_attentions)


def init_from_teacher(student: TinyStudent, teacher: nn.Layer) -> List[int]:
    """Copy embeddings, the chosen layers, the pooler (sentence students) and the classifier
    from ``teacher`` (the model of the student's kind: sequence or token classification);
    returns the teacher layers used."""
    s_cfg, t_cfg, what = student.ernie_config, teacher.config, student.what
    for name in student.must_match:
        if getattr(s_cfg, name) != getattr(t_cfg, name):
            raise UserError(f"{what} init='teacher': {name} is {getattr(s_cfg, name)} in the "
                            f"student but {getattr(t_cfg, name)} in the teacher; match it or use "
                            "init='random'")
    layers = list(student.config.teacher_layers) or default_teacher_layers(
        s_cfg.num_layers, t_cfg.num_layers)
    bad = [j for j in layers if not 0 <= j < t_cfg.num_layers]
    if bad:
        raise UserError(f"{what} teacher_layers {bad} are outside the teacher's "
                        f"0..{t_cfg.num_layers - 1}")
    if list(student.classifier.weight.shape) != list(teacher.classifier.weight.shape):
        raise UserError(f"{what} has {student.classifier.weight.shape[1]} labels, the teacher "
                        f"{teacher.classifier.weight.shape[1]}")
    src, dst = teacher.ernie, student.model.ernie
    dst.embeddings.set_state_dict(src.embeddings.state_dict())
    for i, j in enumerate(layers):
        dst.encoder.layers[i].set_state_dict(src.encoder.layers[j].state_dict())
    if student.copies_pooler and dst.pooler is not None:
        dst.pooler.set_state_dict(src.pooler.state_dict())
    student.model.classifier.set_state_dict(teacher.classifier.state_dict())
    return layers


def build_tiny(cls, config: Optional[Dict[str, Any]], encoder, num_labels: int, teacher=None,
               where: str = "student 'tiny' config") -> Tuple[nn.Layer, Optional[List[int]]]:
    """A ``cls`` (``TinyStudent`` or ``TinyTagger``) for ``encoder``: the teacher's widths when
    a teacher (``teachers.checkpoint.Teacher``) is given, its layers copied when
    ``init="teacher"``; returns (model, the teacher layers copied or None)."""
    tiny = (tiny_config_for(teacher.config, config, where=where, config_class=cls.config_class)
            if teacher is not None else cls.config_class.from_dict(config, where=where))
    if tiny.init == "teacher" and teacher is None:
        raise UserError(f"{cls.what} with init='teacher' needs --teacher (a teacher), or config "
                        "init='random'")
    # the teacher's embedding table may have more rows than its tokenizer has tokens
    vocab_size = teacher.config.vocab_size if tiny.init == "teacher" else encoder.vocab_size
    model = cls(tiny, vocab_size, num_labels, encoder.pad_id)
    return model, (init_from_teacher(model, teacher.model) if tiny.init == "teacher" else None)
