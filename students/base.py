"""Pieces every student shares: the config base class, token embeddings with segments, masked pooling.

All tensor code avoids Python branching on tensor values so the students export with
``paddle.jit.to_static`` + paddle2onnx with dynamic batch and sequence length.
"""
import dataclasses
from typing import Any, Dict, Optional

import paddle
import paddle.nn as nn

from distill.core.errors import UserError


@dataclasses.dataclass
class StudentConfig:
    """Base for the students' typed configs; ``from_dict`` rejects unknown keys by name."""

    @classmethod
    def from_dict(cls, values: Optional[Dict[str, Any]] = None, where: str = "student config"):
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}; "
                            f"known keys: {', '.join(known)}")
        for name, value in values.items():  # JSON gives lists where the dataclass has tuples
            if isinstance(value, list) and isinstance(known[name].default, tuple):
                values[name] = tuple(value)
        config = cls(**values)
        config.validate(where)
        return config

    def to_dict(self) -> Dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def validate(self, where: str) -> None:
        """Subclasses check their choices here and raise ``UserError`` naming the field."""

    @staticmethod
    def _choice(where: str, field: str, value, choices) -> None:
        if value not in choices:
            raise UserError(f"{where}: {field}={value!r}; choose one of {', '.join(map(str, choices))}")


class TokenEmbedding(nn.Layer):
    """Word embedding plus an optional learned segment embedding (text_a = 0, text_b = 1).

    Padding positions come out as zeros, so pooling and convolutions never see them.
    """

    def __init__(self, vocab_size: int, emb_dim: int, type_vocab_size: int = 2, pad_id: int = 0):
        super().__init__()
        self.word = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.segment = nn.Embedding(type_vocab_size, emb_dim) if type_vocab_size > 0 else None
        self.pad_id = pad_id

    def forward(self, input_ids, token_type_ids, mask):
        x = self.word(input_ids)  # (B, T, E)
        if self.segment is not None:
            if token_type_ids is None:
                token_type_ids = paddle.zeros_like(input_ids)
            x = x + self.segment(token_type_ids)  # (B, T, E)
        return x * mask.unsqueeze(-1)  # (B, T, E), zeros at padding


def float_mask(input_ids, attention_mask, pad_id: int = 0):
    """(B, T) float32 mask: the given attention_mask, else ``input_ids != pad_id``."""
    if attention_mask is None:
        return (input_ids != pad_id).astype("float32")
    return attention_mask.astype("float32")


def masked_mean(x, mask):
    """x (B, T, H), mask (B, T) -> (B, H): mean over real tokens (0 for an all-padding row)."""
    total = (x * mask.unsqueeze(-1)).sum(axis=1)  # (B, H)
    count = mask.sum(axis=1, keepdim=True).clip(min=1.0)  # (B, 1)
    return total / count


def masked_max(x, mask, fill: float = -1e4):
    """x (B, T, H), mask (B, T) -> (B, H): max over real tokens; padding counts as ``fill``."""
    return (x + (1.0 - mask.unsqueeze(-1)) * fill).max(axis=1)


def outputs(logits, mask, hidden_states, output_hidden_states: bool) -> Dict[str, Any]:
    """The shared output contract: logits always; hidden states and mask on request."""
    out = {"logits": logits}
    if output_hidden_states:
        out["hidden_states"] = hidden_states
        out["mask"] = mask
    return out
