"""The ERNIE encoder (BERT/ERNIE post-LN layout) in Paddle, with hidden states and attentions.

Parameter names equal PaddleNLP's ``ErnieForSequenceClassification`` (``ernie.embeddings.*``,
``ernie.encoder.layers.N.self_attn.q_proj.*``, ``linear1``, ``norm1``, ...,
``ernie.pooler.dense.*``, ``classifier.*``); Linear weights are ``(in, out)``.
Written with plain ``paddle.nn`` layers (no ``nn.TransformerEncoder``) so that every layer's
attention probabilities can be returned. Export-safe: no Python branching on tensor values,
additive float masks, dynamic batch size and length (``paddle.jit.to_static`` with
``InputSpec([None, None], "int64")``).

>>> model = ErnieForSequenceClassification(ErnieConfig(vocab_size=100, hidden_size=32,
...     num_layers=2, num_heads=4, intermediate_size=64), num_labels=3)
>>> out = model(paddle.to_tensor([[1, 5, 2, 0]]), output_hidden_states=True)
>>> out["logits"].shape, len(out["hidden_states"])
([1, 3], 3)
"""
from typing import Dict, Optional

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from teachers.config import ErnieConfig

# Added to attention scores of padded keys: exp(-1e4) underflows to 0 in FP32 and FP16 alike.
MASK_BIAS = -10000.0


def _weight_attr(config: ErnieConfig) -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.TruncatedNormal(
        mean=0.0, std=config.initializer_range))


def _layer_norm(config: ErnieConfig) -> nn.LayerNorm:
    return nn.LayerNorm(config.hidden_size, epsilon=config.layer_norm_eps)


class ErnieEmbeddings(nn.Layer):
    """word + position (+ token type) (+ task type) embeddings, then LayerNorm and dropout.

    Position ids are ``config.position_offset + 0..T-1`` (ERNIE-M starts at 2); there is no
    token-type table when ``config.type_vocab_size`` is 0 (ERNIE-M).
    """

    def __init__(self, config: ErnieConfig):
        super().__init__()
        H, attr = config.hidden_size, _weight_attr(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, H, weight_attr=attr)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, H, weight_attr=attr)
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, H, weight_attr=attr)
            if config.type_vocab_size > 0 else None)
        self.position_offset = config.position_offset
        self.pad_id = config.pad_token_id if config.zero_pad_embedding else None
        self.task_id = config.task_id
        self.task_type_embeddings = (
            nn.Embedding(config.task_type_vocab_size, H, weight_attr=attr)
            if config.use_task_id else None)
        self.layer_norm = _layer_norm(config)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(self, input_ids, token_type_ids):
        # input_ids, token_type_ids: (B, T) int64
        ones = paddle.ones_like(input_ids)
        position_ids = paddle.cumsum(ones, axis=1) - ones                    # (B, T) 0..T-1
        if self.position_offset:
            position_ids = position_ids + self.position_offset               # (B, T) off..off+T-1
        words = self.word_embeddings(input_ids)                              # (B, T, H)
        if self.pad_id is not None:  # as Embedding(padding_idx=pad): the pad token reads zeros
            words = words * paddle.cast(input_ids != self.pad_id, words.dtype).unsqueeze(-1)
        x = words + self.position_embeddings(position_ids)                   # (B, T, H)
        if self.token_type_embeddings is not None:
            x = x + self.token_type_embeddings(token_type_ids)               # (B, T, H)
        if self.task_type_embeddings is not None:
            x = x + self.task_type_embeddings(ones * self.task_id)           # (B, T, H)
        return self.dropout(self.layer_norm(x))                              # (B, T, H)


class ErnieSelfAttention(nn.Layer):
    """Multi-head scaled dot-product self-attention that also returns its probabilities."""

    def __init__(self, config: ErnieConfig):
        super().__init__()
        H, attr = config.hidden_size, _weight_attr(config)
        self.num_heads, self.head_dim = config.num_heads, config.head_dim
        self.scale = float(self.head_dim) ** -0.5
        self.q_proj = nn.Linear(H, H, weight_attr=attr)
        self.k_proj = nn.Linear(H, H, weight_attr=attr)
        self.v_proj = nn.Linear(H, H, weight_attr=attr)
        self.out_proj = nn.Linear(H, H, weight_attr=attr)
        self.dropout = nn.Dropout(config.attention_dropout)

    def _split(self, x):
        # (B, T, H) -> (B, heads, T, head_dim)
        return x.reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, x, attn_bias):
        # x: (B, T, H); attn_bias: (B, 1, 1, T) additive float mask
        q = self._split(self.q_proj(x))                                          # (B, heads, T, hd)
        k, v = self._split(self.k_proj(x)), self._split(self.v_proj(x))
        scores = paddle.matmul(q * self.scale, k, transpose_y=True) + attn_bias  # (B, heads, T, T)
        probs = F.softmax(scores, axis=-1)                                       # (B, heads, T, T)
        context = paddle.matmul(self.dropout(probs), v)                          # (B, heads, T, hd)
        context = context.transpose([0, 2, 1, 3]).reshape([0, 0, self.num_heads * self.head_dim])
        return self.out_proj(context), probs                                     # (B, T, H), probs


class ErnieLayer(nn.Layer):
    """Post-LN block: x = LN(x + Attn(x)); x = LN(x + W2 act(W1 x))."""

    def __init__(self, config: ErnieConfig):
        super().__init__()
        H, attr = config.hidden_size, _weight_attr(config)
        self.self_attn = ErnieSelfAttention(config)
        self.norm1 = _layer_norm(config)
        self.linear1 = nn.Linear(H, config.intermediate_size, weight_attr=attr)
        self.linear2 = nn.Linear(config.intermediate_size, H, weight_attr=attr)
        self.norm2 = _layer_norm(config)
        self.dropout1 = nn.Dropout(config.hidden_dropout)
        self.dropout2 = nn.Dropout(config.hidden_dropout)
        # exact (erf) GELU, as BERT and ERNIE use
        self.activation = nn.GELU() if config.hidden_act == "gelu" else nn.ReLU()

    def forward(self, x, attn_bias):
        # x: (B, T, H)
        attn_out, probs = self.self_attn(x, attn_bias)
        x = self.norm1(x + self.dropout1(attn_out))                                 # (B, T, H)
        ffn = self.linear2(self.activation(self.linear1(x)))                        # (B, T, H)
        return self.norm2(x + self.dropout2(ffn)), probs


class ErnieEncoder(nn.Layer):
    def __init__(self, config: ErnieConfig):
        super().__init__()
        self.layers = nn.LayerList([ErnieLayer(config) for _ in range(config.num_layers)])


class ErniePooler(nn.Layer):
    """tanh(Linear(h[CLS])), as ERNIE/BERT pretraining left it."""

    def __init__(self, config: ErnieConfig):
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H, weight_attr=_weight_attr(config))

    def forward(self, sequence_output):
        return paddle.tanh(self.dense(sequence_output[:, 0]))                     # (B, H)


def mean_pool(sequence_output, mask):
    """Masked mean over tokens: (B, T, H), (B, T) float -> (B, H)."""
    summed = paddle.sum(sequence_output * mask.unsqueeze(-1), axis=1)                # (B, H)
    count = paddle.clip(paddle.sum(mask, axis=1, keepdim=True), min=1e-9)          # (B, 1)
    return summed / count


class ErnieModel(nn.Layer):
    """The encoder. ``forward`` returns a dict:

    ``sequence_output`` (B, T, H); ``pooled`` (B, H) (``config.pooling``); ``mask`` (B, T) float;
    on request ``hidden_states`` (L+1 tensors (B, T, H): embeddings, then each layer) and
    ``attentions`` (L tensors (B, heads, T, T)).
    """

    def __init__(self, config: ErnieConfig):
        super().__init__()
        self.config = config
        self.embeddings = ErnieEmbeddings(config)
        self.encoder = ErnieEncoder(config)
        # Mean pooling has no parameters; a checkpoint's pooler is then ignored.
        self.pooler = ErniePooler(config) if config.pooling == "cls" else None

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> Dict:
        # input_ids: (B, T) int64; token_type_ids: (B, T) int64; attention_mask: (B, T) 1 = token
        if token_type_ids is None:
            token_type_ids = paddle.zeros_like(input_ids)
        if attention_mask is None:
            mask = paddle.cast(input_ids != self.config.pad_token_id, "float32")  # (B, T)
        else:
            mask = paddle.cast(attention_mask, "float32")                          # (B, T)
        attn_bias = ((1.0 - mask) * MASK_BIAS).unsqueeze([1, 2])                    # (B, 1, 1, T)

        x = self.embeddings(input_ids, token_type_ids)                            # (B, T, H)
        hidden_states, attentions = [x], []
        for layer in self.encoder.layers:
            x, probs = layer(x, attn_bias)
            hidden_states.append(x)
            attentions.append(probs)

        pooled = self.pooler(x) if self.pooler is not None else mean_pool(x, mask)  # (B, H)
        out = {"sequence_output": x, "pooled": pooled, "mask": mask}
        if output_hidden_states:
            out["hidden_states"] = hidden_states
        if output_attentions:
            out["attentions"] = attentions
        return out


class ErnieWithHead(nn.Layer):
    """ERNIE + dropout + a Linear head on the encoder output named ``head_input``. Output contract
    of every model: ``logits`` always; ``hidden_states``, ``attentions`` and ``mask`` on request."""

    head_input = "pooled"

    def __init__(self, config: ErnieConfig, num_labels: int):
        super().__init__()
        if num_labels < 1:
            raise ValueError(f"num_labels must be >= 1, got {num_labels}")
        self.config, self.num_labels = config, num_labels
        self.ernie = ErnieModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.classifier = nn.Linear(config.hidden_size, num_labels,
                                    weight_attr=_weight_attr(config))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None,
                output_hidden_states: bool = False, output_attentions: bool = False) -> Dict:
        enc = self.ernie(input_ids, token_type_ids, attention_mask,
                         output_hidden_states=output_hidden_states,
                         output_attentions=output_attentions)
        out = {"logits": self.classifier(self.dropout(enc[self.head_input]))}
        if output_hidden_states:
            out["hidden_states"] = enc["hidden_states"]
        if output_attentions:
            out["attentions"] = enc["attentions"]
        if output_hidden_states or output_attentions:
            out["mask"] = enc["mask"]
        return out


class ErnieForSequenceClassification(ErnieWithHead):
    """The head on the pooled vector: ``logits`` (B, C)."""

    head_input = "pooled"


def build_model(config: ErnieConfig, num_labels: int, seed: Optional[int] = None):
    """A freshly initialised classifier; ``seed`` makes the initial weights repeatable."""
    if seed is not None:
        paddle.seed(seed)
    return ErnieForSequenceClassification(config, num_labels)
