"""Bag-of-words student (the ERNIE Slim student): embeddings -> masked sum/mean -> softsign/tanh ->
tanh hidden layers -> classifier.

    model = BOWStudent(BOWConfig(emb_dim=128, hidden_sizes=(128, 96)), vocab_size=20000, num_labels=2)
    out = model(input_ids, token_type_ids, attention_mask)   # {"logits": (B, C)}
"""
import dataclasses
from typing import Tuple

import paddle.nn as nn
import paddle.nn.functional as F

from students.base import StudentConfig, TokenEmbedding, float_mask, masked_mean, outputs


@dataclasses.dataclass
class BOWConfig(StudentConfig):
    emb_dim: int = 128
    hidden_sizes: Tuple[int, ...] = (128, 96)  # tanh layers between the pooled bag and the classifier
    pooling: str = "sum"  # sum | mean over real tokens
    activation: str = "softsign"  # softsign | tanh, applied to the pooled bag
    dropout: float = 0.0
    type_vocab_size: int = 2  # segment embedding for text_a/text_b pairs; 0 = none

    def validate(self, where: str) -> None:
        self._choice(where, "pooling", self.pooling, ("sum", "mean"))
        self._choice(where, "activation", self.activation, ("softsign", "tanh"))


class BOWStudent(nn.Layer):
    config_class = BOWConfig

    def __init__(self, config: BOWConfig, vocab_size: int, num_labels: int, pad_id: int = 0):
        super().__init__()
        self.config, self.pad_id, self.vocab_size = config, pad_id, vocab_size
        self.embeddings = TokenEmbedding(vocab_size, config.emb_dim, config.type_vocab_size, pad_id)
        sizes = [config.emb_dim] + list(config.hidden_sizes)
        self.hidden = nn.LayerList([nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])])
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(sizes[-1], num_labels)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states=False, output_attentions=False):
        mask = float_mask(input_ids, attention_mask, self.pad_id)  # (B, T)
        emb = self.embeddings(input_ids, token_type_ids, mask)  # (B, T, E), zeros at padding
        if self.config.pooling == "mean":
            x = masked_mean(emb, mask)  # (B, E)
        else:
            x = emb.sum(axis=1)  # (B, E)
        if self.config.activation == "softsign":
            x = F.softsign(x)
        elif self.config.activation == "tanh":
            x = F.tanh(x)  # "none" (the n-gram student's default) leaves the bag as it is
        for layer in self.hidden:
            x = self.dropout(F.tanh(layer(x)))  # (B, H_i)
        logits = self.classifier(x)  # (B, C)
        return outputs(logits, mask, [emb], output_hidden_states)
