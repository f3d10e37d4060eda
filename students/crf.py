"""A linear-chain CRF over a tagger's per-token emissions (``config: {crf: true}``).

The tagger's forward pass is unchanged (``logits`` = emissions, so every export format works as
before); the CRF adds three parameters, ``transitions`` (C, C), ``start`` and ``end`` (C,), which
the ``crf`` loss trains (``nll``: the forward algorithm, checked against
``distill.text.viterbi.log_partition``) and which decoding uses (``decode``: Paddle's
``paddle.text.viterbi_decode``; packages decode with ``distill.text.viterbi.viterbi``).
"""
from typing import Dict, List

import numpy as np
import paddle
import paddle.nn as nn


class LinearChainCRF(nn.Layer):
    """Transition scores between tags; starts at 0 (decoding = argmax until trained)."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        zeros = nn.initializer.Constant(0.0)
        self.transitions = self.create_parameter([num_tags, num_tags], default_initializer=zeros)
        self.start = self.create_parameter([num_tags], default_initializer=zeros)
        self.end = self.create_parameter([num_tags], default_initializer=zeros)

    def nll(self, emissions, tags, mask):
        """Negative log-likelihood of ``tags`` per sentence.

        emissions (B, W, C) float32; tags (B, W) int64; mask (B, W) float32, 1 on each sentence's
        tagged tokens (a prefix), 0 after. Rows with an empty mask give 0. -> (B,)"""
        return self._log_partition(emissions, mask) - self._path_score(emissions, tags, mask)

    def _log_partition(self, emissions, mask):
        alpha = self.start.unsqueeze(0) + emissions[:, 0]  # (B, C)
        for t in range(1, emissions.shape[1]):
            total = alpha.unsqueeze(2) + self.transitions.unsqueeze(0)  # (B, C from, C to)
            step = paddle.logsumexp(total, axis=1) + emissions[:, t]  # (B, C)
            keep = mask[:, t:t + 1]  # (B, 1): past the end, alpha stays
            alpha = keep * step + (1.0 - keep) * alpha
        return paddle.logsumexp(alpha + self.end.unsqueeze(0), axis=1) * mask[:, 0]  # (B,)

    def _path_score(self, emissions, tags, mask):
        c = self.num_tags
        safe = tags.clip(min=0)  # (B, W)
        emit = paddle.take_along_axis(emissions, safe.unsqueeze(-1), axis=-1).squeeze(-1)  # (B, W)
        score = (emit * mask).sum(axis=1)  # (B,)
        if emissions.shape[1] > 1:
            pairs = safe[:, :-1] * c + safe[:, 1:]  # (B, W-1) flat (from, to)
            moves = paddle.gather(self.transitions.reshape([-1]), pairs.reshape([-1]))
            score = score + (moves.reshape(pairs.shape) * mask[:, 1:]).sum(axis=1)
        last = (mask.sum(axis=1, keepdim=True) - 1.0).clip(min=0).astype("int64")  # (B, 1)
        last_tag = paddle.take_along_axis(safe, last, axis=1).squeeze(1)  # (B,)
        ends = paddle.gather(self.start, safe[:, 0]) + paddle.gather(self.end, last_tag)  # (B,)
        return score + ends * mask[:, 0]

    def decode(self, emissions, lengths) -> List[List[int]]:
        """Best tag ids per sentence: emissions (B, W, C), lengths (B,) int64 (>= 1)."""
        b, w, c = emissions.shape
        first = paddle.nn.functional.one_hot(paddle.zeros([b], "int64"), w).unsqueeze(-1)
        last = paddle.nn.functional.one_hot(lengths - 1, w).unsqueeze(-1)  # (B, W, 1)
        potentials = emissions + first * self.start + last * self.end  # start/end folded in
        _, paths = paddle.text.viterbi_decode(potentials, self.transitions, lengths,
                                              include_bos_eos_tag=False)
        paths = paths.numpy()
        return [paths[i, :int(n)].tolist() for i, n in enumerate(lengths.numpy())]

    def arrays(self) -> Dict[str, np.ndarray]:
        """The parameters as float64 arrays (``distill.text.viterbi``'s arguments)."""
        return {"transitions": self.transitions.numpy().astype(np.float64),
                "start": self.start.numpy().astype(np.float64),
                "end": self.end.numpy().astype(np.float64)}
