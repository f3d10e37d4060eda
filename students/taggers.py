"""Token taggers (NER students): logits for every position, (B, T, C).

* ``BiLSTMTagger`` (kind ``lstm_tagger``): embeddings -> bidirectional LSTM (the backward pass runs
  over each row reversed within its own length, as ``students.rnn`` does, so padding never
  reaches a real token and the ONNX export matches) -> dropout -> Linear per token.
* ``CNNTagger`` (kind ``cnn_tagger``): embeddings -> ``num_layers`` blocks of centred 1-D
  convolutions of several widths (written as Linear over shifted copies, static slice bounds,
  like ``students.cnn``) with ReLU, each block's output masked -> Linear per token.
* ``TinyTagger`` (kind ``tiny_tagger``): the ERNIE architecture with fewer layers and a token
  head; it reads the teacher's sub-tokens and can start from the teacher's layers
  (``students.tiny.build_tiny``).

Tags are decoded by argmax and repaired into valid spans (``distill.text.tags``), or, with
``config: {crf: true}``, by Viterbi over a linear-chain CRF (``students.crf``: ``model.crf``,
trained by the ``crf`` loss). The forward pass gives the emissions either way, so the models take
the three standard inputs and export like the sentence students (the CRF's transitions travel in
the package's ``config.json``).
"""
import dataclasses
from typing import Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from distill.core.errors import UserError
from students.base import StudentConfig, TokenEmbedding, float_mask, outputs
from students.rnn import bidirectional
from students.crf import LinearChainCRF
from students.tiny import TinyConfig, TinyStudent
from teachers.token_model import ErnieForTokenClassification


@dataclasses.dataclass
class RNNTaggerConfig(StudentConfig):
    emb_dim: int = 128
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    dropout: float = 0.1
    type_vocab_size: int = 0  # token tasks have one segment
    crf: bool = False  # a linear-chain CRF over the emissions (students.crf)

    def validate(self, where: str) -> None:
        if self.num_layers < 1:
            raise UserError(f"{where}: num_layers must be >= 1, got {self.num_layers}")


class BiLSTMTagger(nn.Layer):
    config_class = RNNTaggerConfig

    def __init__(self, config: RNNTaggerConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.embeddings = TokenEmbedding(vocab_size, config.emb_dim, config.type_vocab_size, pad_id)
        sizes = [config.emb_dim] + [2 * config.hidden_size] * (config.num_layers - 1)
        self.forward_rnns = nn.LayerList([nn.LSTM(n, config.hidden_size) for n in sizes])
        self.backward_rnns = nn.LayerList([nn.LSTM(n, config.hidden_size) for n in sizes])
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.hidden_size, num_labels)
        self.crf = LinearChainCRF(num_labels) if config.crf else None

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        emb = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E)
        seq, _ = bidirectional(self, emb, mask)  # (B, T, 2H), 0 at padding
        logits = self.classifier(self.dropout(seq))  # (B, T, C)
        return outputs(logits, mask, [emb, seq], output_hidden_states)


@dataclasses.dataclass
class CNNTaggerConfig(StudentConfig):
    emb_dim: int = 128
    filter_sizes: Tuple[int, ...] = (3, 5)
    num_filters: int = 128  # per width and block
    num_layers: int = 2
    dropout: float = 0.2
    type_vocab_size: int = 0
    crf: bool = False

    def validate(self, where: str) -> None:
        if not self.filter_sizes or min(self.filter_sizes) < 1:
            raise UserError(f"{where}: filter_sizes must be positive widths, got {self.filter_sizes}")
        if self.num_layers < 1:
            raise UserError(f"{where}: num_layers must be >= 1, got {self.num_layers}")


class CNNTagger(nn.Layer):
    config_class = CNNTaggerConfig

    def __init__(self, config: CNNTaggerConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.embeddings = TokenEmbedding(vocab_size, config.emb_dim, config.type_vocab_size, pad_id)
        width = config.num_filters * len(config.filter_sizes)
        self.blocks = nn.LayerList()
        for layer in range(config.num_layers):
            size_in = config.emb_dim if layer == 0 else width
            self.blocks.append(nn.LayerList([nn.Linear(k * size_in, config.num_filters)
                                             for k in config.filter_sizes]))
        self.half = max(config.filter_sizes) // 2  # zero vectors on each side
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(width, num_labels)
        self.crf = LinearChainCRF(num_labels) if config.crf else None

    def _block(self, x, linears, mask):
        """x (B, T, D) -> (B, T, F·widths): width-k windows centred on each position."""
        P = self.half
        zeros = paddle.zeros_like(x[:, :1]).tile([1, P, 1]) if P else None  # (B, P, D)
        padded = paddle.concat([zeros, x, zeros], axis=1) if P else x  # (B, T + 2P, D)
        out = []
        for k, linear in zip(self.config.filter_sizes, linears):
            left = (k - 1) // 2
            # shift i reads position t - left + i = padded index t + P - left + i
            starts = [P - left + i for i in range(k)]
            shifts = [padded[:, s:s - 2 * P] if s < 2 * P else padded[:, s:] for s in starts]
            windows = paddle.concat(shifts, axis=-1) if k > 1 else shifts[0]  # (B, T, k·D)
            out.append(F.relu(linear(windows)))  # (B, T, F)
        return paddle.concat(out, axis=-1) * mask.unsqueeze(-1)  # (B, T, F·widths), 0 at padding

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        x = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E), zeros at padding
        hidden = [x]
        for linears in self.blocks:
            x = self._block(self.dropout(x) if len(hidden) > 1 else x, linears, mask)
            hidden.append(x)
        logits = self.classifier(self.dropout(x))  # (B, T, C)
        return outputs(logits, mask, hidden, output_hidden_states)


@dataclasses.dataclass
class TinyTaggerConfig(TinyConfig):
    crf: bool = False


class TinyTagger(TinyStudent):
    """A small ERNIE with a token head (``TinyTaggerConfig``; ``pooling`` is unused). Built and
    initialised from the teacher by ``students.tiny.build_tiny`` / ``init_from_teacher``."""

    config_class = TinyTaggerConfig
    head_class = ErnieForTokenClassification
    what = "tiny tagger"
    must_match = tuple(n for n in TinyStudent.must_match if n != "pooling")
    copies_pooler = False  # the token head never reads the pooler

    def __init__(self, config: TinyTaggerConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__(config, vocab_size, num_labels, pad_id)
        self.crf = LinearChainCRF(num_labels) if config.crf else None
