"""BiLSTM / BiGRU students (Tang et al. 2019): embeddings -> bidirectional RNN (lengths from the
mask) -> max / mean / last pooling -> tanh MLP -> classifier.

    model = BiLSTMStudent(RNNConfig(hidden_size=128, pooling="max"), vocab_size=20000, num_labels=2)

``last`` pooling concatenates the forward state at each row's last real token with the backward
state at its first token.

Why two one-way RNNs and no ``sequence_length``: paddle2onnx 1.3.1 drops the RNN's
``sequence_length`` input (measured: exported BiLSTM logits off by 0.1 for padded rows). Instead
the backward direction runs forward over each row reversed within its own length (a gather), so
trailing padding never reaches a real token's state in either direction and the exported model
matches (padding must be on the right, as every encoder here produces).
"""
import dataclasses

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from students.base import StudentConfig, TokenEmbedding, float_mask, masked_max, masked_mean, outputs


@dataclasses.dataclass
class RNNConfig(StudentConfig):
    emb_dim: int = 128
    hidden_size: int = 128  # per direction
    num_layers: int = 1
    pooling: str = "max"  # max | mean | last
    mlp_size: int = 128  # 0 = classifier straight on the pooled state
    dropout: float = 0.1
    type_vocab_size: int = 2

    def validate(self, where: str) -> None:
        self._choice(where, "pooling", self.pooling, ("max", "mean", "last"))


class _BiRNNStudent(nn.Layer):
    config_class = RNNConfig
    cell = "lstm"

    def __init__(self, config: RNNConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.embeddings = TokenEmbedding(vocab_size, config.emb_dim, config.type_vocab_size, pad_id)
        rnn_class = nn.LSTM if self.cell == "lstm" else nn.GRU
        sizes = [config.emb_dim] + [2 * config.hidden_size] * (config.num_layers - 1)
        self.forward_rnns = nn.LayerList([rnn_class(n, config.hidden_size) for n in sizes])
        self.backward_rnns = nn.LayerList([rnn_class(n, config.hidden_size) for n in sizes])
        self.dropout = nn.Dropout(config.dropout)
        width = 2 * config.hidden_size
        self.mlp = nn.Linear(width, config.mlp_size) if config.mlp_size > 0 else None
        self.classifier = nn.Linear(config.mlp_size if config.mlp_size > 0 else width, num_labels)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        emb = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E)
        seq, length = bidirectional(self, emb, mask)  # (B, T, 2H), (B, 1)
        if self.config.pooling == "max":
            x = masked_max(seq, mask)  # (B, 2H)
        elif self.config.pooling == "mean":
            x = masked_mean(seq, mask)  # (B, 2H)
        else:
            last = (length - 1.0).astype("int64").unsqueeze(-1)  # (B, 1, 1)
            h = self.config.hidden_size
            ahead_last = _gather_time(seq[:, :, :h], last).squeeze(1)  # (B, H) at the last real token
            back_first = seq[:, 0, h:]  # (B, H): the backward pass ends at the first token
            x = paddle.concat([ahead_last, back_first], axis=-1)  # (B, 2H)
        x = self.dropout(x)
        if self.mlp is not None:
            x = self.dropout(F.tanh(self.mlp(x)))  # (B, M)
        logits = self.classifier(x)  # (B, C)
        return outputs(logits, mask, [emb, seq], output_hidden_states)


def bidirectional(layer: nn.Layer, emb, mask):
    """``layer.forward_rnns``/``backward_rnns`` (with ``layer.dropout`` between layers) over
    ``emb`` (B, T, E) -> (B, T, 2H) states, 0 at padding, and the row lengths (B, 1). The
    backward RNN reads each row reversed within its own length (see the module docstring)."""
    position = paddle.cumsum(paddle.ones_like(mask), axis=1) - 1.0  # (B, T): 0, 1, 2, ...
    length = mask.sum(axis=1, keepdim=True)  # (B, 1)
    # reverse each row within its length; padding positions map to themselves
    reverse = (mask * (length - 1.0 - position) + (1.0 - mask) * position).astype("int64")
    reverse = reverse.unsqueeze(-1)  # (B, T, 1)
    seq = emb
    for i, (fwd, bwd) in enumerate(zip(layer.forward_rnns, layer.backward_rnns)):
        if i > 0:
            seq = layer.dropout(seq)
        ahead, _ = fwd(seq)  # (B, T, H)
        back, _ = bwd(_gather_time(seq, reverse))  # (B, T, H), in reversed order
        back = _gather_time(back, reverse)  # (B, T, H), back in reading order
        seq = paddle.concat([ahead, back], axis=-1) * mask.unsqueeze(-1)  # (B, T, 2H)
    return seq, length


def _gather_time(x, index):
    """x (B, T, H), index (B, T', 1) int64 -> (B, T', H): x[b, index[b, t], :]."""
    return paddle.take_along_axis(x, index.expand([-1, -1, x.shape[-1]]), axis=1)


class BiLSTMStudent(_BiRNNStudent):
    cell = "lstm"


class BiGRUStudent(_BiRNNStudent):
    cell = "gru"
