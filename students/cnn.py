"""CNN student: embeddings -> 1-D convolutions of several widths -> ReLU -> masked max-pool over
time -> dropout -> classifier.

Each convolution pads ``width - 1`` zeros on the right, so output position t reads tokens
t..t+width-1 and a sequence shorter than the widest filter still works; only positions that start
on a real token are pooled. Padding embeddings are zero, so the result does not depend on how much
batch padding a row gets.

    model = CNNStudent(CNNConfig(filter_sizes=(2, 3, 4), num_filters=128), vocab_size=20000, num_labels=2)
"""
import dataclasses
from typing import Tuple

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from distill.errors import UserError
from students.base import StudentConfig, TokenEmbedding, float_mask, outputs


@dataclasses.dataclass
class CNNConfig(StudentConfig):
    emb_dim: int = 128
    filter_sizes: Tuple[int, ...] = (2, 3, 4)
    num_filters: int = 128  # per filter width
    dropout: float = 0.2
    type_vocab_size: int = 2

    def validate(self, where: str) -> None:
        if not self.filter_sizes or min(self.filter_sizes) < 1:
            raise UserError(f"{where}: filter_sizes must be positive widths, got {self.filter_sizes}")


class CNNStudent(nn.Layer):
    config_class = CNNConfig

    def __init__(self, config: CNNConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.embeddings = TokenEmbedding(vocab_size, config.emb_dim, config.type_vocab_size, pad_id)
        self.convs = nn.LayerList([
            nn.Conv1D(config.emb_dim, config.num_filters, k, padding=[0, k - 1])  # NCL: paddle2onnx rejects NLC
            for k in config.filter_sizes
        ])
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.num_filters * len(config.filter_sizes), num_labels)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        emb = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E), zeros at padding
        channels_first = emb.transpose([0, 2, 1])  # (B, E, T)
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(channels_first)) * mask.unsqueeze(1)  # (B, F, T); >= 0: zeroed padding never wins
            pooled.append(h.max(axis=2))  # (B, F)
        x = self.dropout(paddle.concat(pooled, axis=-1))  # (B, F * n_widths)
        logits = self.classifier(x)  # (B, C)
        return outputs(logits, mask, [emb], output_hidden_states)
