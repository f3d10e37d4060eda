"""What every checkpoint module shares: the loaded ``Teacher``, the error type, a format's
``NameScheme`` and the ``RawCheckpoint`` a format reader returns."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

import paddle

from distill.core.errors import UserError
from teachers.config import ErnieConfig
from teachers.model import ErnieForSequenceClassification

FORMAT_VERSION = 1


class CheckpointError(UserError):
    """A checkpoint that cannot be loaded as asked; the message names files and tensors."""


@dataclass
class Teacher:
    """A loaded teacher: the classifier model, its tokenizer (an encoder) and its label names."""

    name: str
    config: ErnieConfig
    model: ErnieForSequenceClassification
    tokenizer: Any
    labels: List[str]
    max_len: int = 128

    def encode(self, texts_a, texts_b=None) -> Dict[str, np.ndarray]:
        return self.tokenizer.encode(texts_a, texts_b, max_len=self.max_len)

    def embed(self, texts_a, texts_b=None, batch_size: int = 32) -> np.ndarray:
        """Pooled encoder vectors (N, H) float32 in input order (eval mode, no gradients)."""
        was_training = self.model.training
        self.model.eval()
        chunks = []
        try:
            with paddle.no_grad():
                for start in range(0, len(texts_a), batch_size):
                    part_b = None if texts_b is None else texts_b[start:start + batch_size]
                    batch = self.encode(texts_a[start:start + batch_size], part_b)
                    out = self.model.ernie(**{k: paddle.to_tensor(v) for k, v in batch.items()})
                    chunks.append(out["pooled"].numpy())
        finally:
            if was_training:
                self.model.train()
        if not chunks:
            return np.zeros((0, self.config.hidden_size), np.float32)
        return np.concatenate(chunks)


@dataclass
class NameScheme:
    """How one format names tensors: role table, whether Linear weights are (out, in), a
    normaliser for harmless spelling variants and a pattern for tensors it may carry unused
    (pretraining heads, optimizer state, buffers)."""

    name: str
    table: Dict[str, str]
    transposed: bool = False
    normalize: Callable[[str], str] = lambda n: n
    ignore: Optional[str] = None


@dataclass
class RawCheckpoint:
    """What a format reader found: config, tensors under their own names, tokenizer, metadata."""

    path: Path
    scheme: NameScheme
    config: ErnieConfig
    tensors: Dict[str, np.ndarray]
    tokenizer: Any
    name: str
    labels: Optional[List[str]] = None
    max_len: int = 128
    extra: Dict[str, Any] = field(default_factory=dict)


def listing(names: List[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", ... and {len(names) - limit} more" if len(names) > limit else "")
