"""``ErnieConfig``: the typed hyper-parameters of an ERNIE/BERT-layout encoder (no Paddle here).

>>> cfg = ErnieConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=4,
...                   intermediate_size=64)
>>> cfg.save("ernie_config.json"); ErnieConfig.load("ernie_config.json") == cfg
True
"""
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict

from distill.core.errors import UserError
from distill.core.io import read_json, write_json

ACTIVATIONS = ("gelu", "relu")
POOLINGS = ("cls", "mean")
# PaddleNLP model families our encoder reproduces (their ``model_type`` and parameter prefix).
FAMILIES = ("ernie", "ernie_gram", "ernie_m")


class ConfigError(UserError):
    """An invalid or unreadable ``ErnieConfig``; the message names the file and field."""


@dataclass
class ErnieConfig:
    """Shape and behaviour of the encoder. Defaults are ERNIE-base sizes.

    ``pooling``: ``"cls"`` = tanh(Linear(h[CLS])) as ERNIE/BERT classifiers do; ``"mean"`` =
    mean of the token states under the attention mask (sentence-transformers, e5).
    ``use_task_id`` adds ERNIE 2.0/3.0 task-type embeddings (``task_type_vocab_size`` rows, the
    constant ``task_id`` is looked up for every token); 0 rows / ``False`` = none, as in BERT.
    ``type_vocab_size = 0``: no token-type (segment) embedding (ERNIE-M).
    ``position_offset``: added to position ids 0..T-1 before the lookup (ERNIE-M: 2).
    ``zero_pad_embedding``: the pad token's word embedding is looked up as zeros (PaddleNLP's
    ``ernie``/``ernie_gram`` build it with ``padding_idx``); only padded positions change.
    ``family``: which PaddleNLP model class the weights belong to (``ernie``, ``ernie_gram``,
    ``ernie_m``); it names the parameter prefix and ``model_type`` when saving in PaddleNLP format.
    """

    vocab_size: int
    hidden_size: int = 768
    num_layers: int = 12
    num_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    task_type_vocab_size: int = 0
    use_task_id: bool = False
    task_id: int = 0
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    pooling: str = "cls"
    initializer_range: float = 0.02
    position_offset: int = 0
    zero_pad_embedding: bool = False
    family: str = "ernie"

    def __post_init__(self):
        self.validate()

    def validate(self, where: str = "ErnieConfig") -> None:
        """Raise ``ConfigError`` naming the first bad field."""
        def bad(field, problem):
            raise ConfigError(f"{where}: field '{field}' {problem}")

        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
                     "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                bad(name, f"must be a positive integer, got {value!r}")
        for name in ("type_vocab_size", "position_offset"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(name, f"must be an integer >= 0, got {value!r}")
        if self.position_offset >= self.max_position_embeddings:
            bad("position_offset", f"= {self.position_offset} leaves no row of the "
                                   f"{self.max_position_embeddings} position embeddings")
        if self.family not in FAMILIES:
            bad("family", f"must be one of {', '.join(FAMILIES)}, got {self.family!r}")
        if self.hidden_size % self.num_heads:
            bad("hidden_size",
                f"= {self.hidden_size} is not divisible by num_heads = {self.num_heads}")
        if self.hidden_act not in ACTIVATIONS:
            bad("hidden_act", f"must be one of {', '.join(ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.pooling not in POOLINGS:
            bad("pooling", f"must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        if self.use_task_id and self.task_type_vocab_size < 1:
            bad("task_type_vocab_size", "must be >= 1 when use_task_id is true")
        if self.use_task_id and not 0 <= self.task_id < self.task_type_vocab_size:
            bad("task_id", f"= {self.task_id} is outside [0, {self.task_type_vocab_size})")
        if not 0 <= self.pad_token_id < self.vocab_size:
            bad("pad_token_id",
                f"= {self.pad_token_id} is outside the vocabulary [0, {self.vocab_size})")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                bad(name, f"must be in [0, 1), got {getattr(self, name)!r}")
        if not self.layer_norm_eps > 0:
            bad("layer_norm_eps", f"must be > 0, got {self.layer_norm_eps!r}")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Dict[str, Any], where: str = "ErnieConfig") -> "ErnieConfig":
        """Build from a dict; unknown or missing fields raise ``ConfigError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; "
                              f"expected some of {', '.join(sorted(names))}")
        if "vocab_size" not in data:
            raise ConfigError(f"{where}: field 'vocab_size' is missing")
        try:
            config = cls.__new__(cls)
            for f in dataclasses.fields(cls):
                default = f.default if f.default is not dataclasses.MISSING else None
                setattr(config, f.name, data.get(f.name, default))
            config.validate(where)
        except TypeError as err:  # e.g. a string where a number belongs
            raise ConfigError(f"{where}: {err}") from None
        return config

    def save(self, path) -> None:
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> "ErnieConfig":
        path = Path(path)
        data = read_json(path, ConfigError)
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object")
        return cls.from_dict(data, where=str(path))
