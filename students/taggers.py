"""Token taggers (NER students): logits for every position, (B, T, C).

* ``BiLSTMTagger`` (kind ``lstm_tagger``): embeddings -> bidirectional LSTM (the backward pass runs
  over each row reversed within its own length, as ``students.rnn`` does, so padding never
  reaches a real token and the ONNX export matches) -> dropout -> Linear per token.
* ``CNNTagger`` (kind ``cnn_tagger``): embeddings -> ``num_layers`` blocks of centred 1-D
  convolutions of several widths (written as Linear over shifted copies, static slice bounds,
  like ``students.cnn``) with ReLU, each block's output masked -> Linear per token.
* ``TinyTagger`` (kind ``tiny_tagger``): the ERNIE architecture with fewer layers and a token
  head; it reads the teacher's sub-tokens and can start from the teacher's layers
  (``init_tagger_from_teacher``).

No CRF layer yet: tags are decoded by argmax and repaired into valid spans
(``distill.text.tags``). The models take the three standard inputs and so export like the
sentence students.
"""
import dataclasses
from typing import List, Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from distill.core.errors import UserError
from students.base import StudentConfig, TokenEmbedding, float_mask, outputs
from students.rnn import _gather_time
from students.tiny import TinyConfig, default_teacher_layers
from teachers.token_model import ErnieForTokenClassification


@dataclasses.dataclass
class RNNTaggerConfig(StudentConfig):
    emb_dim: int = 128
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    dropout: float = 0.1
    type_vocab_size: int = 0  # token tasks have one segment

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

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        emb = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E)
        position = paddle.cumsum(paddle.ones_like(mask), axis=1) - 1.0  # (B, T)
        length = mask.sum(axis=1, keepdim=True)  # (B, 1)
        reverse = (mask * (length - 1.0 - position) + (1.0 - mask) * position).astype("int64")
        reverse = reverse.unsqueeze(-1)  # (B, T, 1)
        seq = emb
        for i, (fwd, bwd) in enumerate(zip(self.forward_rnns, self.backward_rnns)):
            if i > 0:
                seq = self.dropout(seq)
            ahead, _ = fwd(seq)  # (B, T, H)
            back, _ = bwd(_gather_time(seq, reverse))  # (B, T, H), reversed order
            back = _gather_time(back, reverse)  # (B, T, H), reading order
            seq = paddle.concat([ahead, back], axis=-1) * mask.unsqueeze(-1)  # (B, T, 2H)
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


class TinyTagger(nn.Layer):
    """A small ERNIE with a token head (``TinyConfig``; ``pooling`` is unused)."""

    config_class = TinyConfig

    def __init__(self, config: TinyConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.ernie_config = config.ernie_config(vocab_size, pad_id)
        self.model = ErnieForTokenClassification(self.ernie_config, num_labels)

    @property
    def classifier(self):
        return self.model.classifier

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        return self.model(input_ids, token_type_ids, attention_mask,
                          output_hidden_states=output_hidden_states,
                          output_attentions=output_attentions)


def init_tagger_from_teacher(student: TinyTagger, teacher: ErnieForTokenClassification) -> List[int]:
    """Copy embeddings, every k-th layer (or ``teacher_layers``) and the token head; returns
    the teacher layers used."""
    s_cfg, t_cfg = student.ernie_config, teacher.config
    for name in ("vocab_size", "hidden_size", "num_heads", "intermediate_size", "type_vocab_size",
                 "max_position_embeddings"):
        if getattr(s_cfg, name) != getattr(t_cfg, name):
            raise UserError(f"tiny tagger init='teacher': {name} is {getattr(s_cfg, name)} in the "
                            f"student but {getattr(t_cfg, name)} in the teacher; match it or use "
                            "init='random'")
    layers = list(student.config.teacher_layers) or default_teacher_layers(
        s_cfg.num_layers, t_cfg.num_layers)
    bad = [j for j in layers if not 0 <= j < t_cfg.num_layers]
    if bad:
        raise UserError(f"tiny tagger teacher_layers {bad} are outside the teacher's "
                        f"0..{t_cfg.num_layers - 1}")
    if list(student.classifier.weight.shape) != list(teacher.classifier.weight.shape):
        raise UserError(f"tiny tagger has {student.classifier.weight.shape[1]} tags, the teacher "
                        f"{teacher.classifier.weight.shape[1]}")
    src, dst = teacher.ernie, student.model.ernie
    dst.embeddings.set_state_dict(src.embeddings.state_dict())
    for i, j in enumerate(layers):
        dst.encoder.layers[i].set_state_dict(src.encoder.layers[j].state_dict())
    student.model.classifier.set_state_dict(teacher.classifier.state_dict())
    return layers
