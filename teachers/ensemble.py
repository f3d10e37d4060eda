"""Combine several teachers' logits into one set of soft labels, weights chosen on dev.

NumPy only (no Paddle). Two rules:

* ``logits`` — the weighted mean of the teachers' logits, ``sum_i w_i z_i`` (N, C);
* ``probabilities`` — the weighted mean of their softmax probabilities, returned as
  log-probabilities ``log(sum_i w_i softmax(z_i))`` so that every student loss that reads logits
  (soft CE / KL take their softmax, which gives back the mixed probabilities) can use them.

Weights: ``equal``, a fixed list, or ``dev``: every weight vector on a simplex grid of step
``grid_step`` (0.1: 11 vectors for two teachers, 66 for three) is scored by dev accuracy; the best
wins, ties going to the vector closest to equal weights. Test rows are never looked at.

    logits, info = choose_weights([dev_a, dev_b], dev_labels, rule="logits", weights="dev")
    soft = combine([train_a, train_b], info["weights"], "logits")
"""
import itertools
from typing import Dict, List, Sequence, Union

import numpy as np

from distill.core.errors import UserError

RULES = ("logits", "probabilities")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def combine(logits: Sequence[np.ndarray], weights: Sequence[float], rule: str = "logits") -> np.ndarray:
    """(N, C) float32 combined logits of the teachers' (N, C) logits (see the module docstring)."""
    if rule not in RULES:
        raise UserError(f"ensemble rule {rule!r}; choose one of {', '.join(RULES)}")
    if len(logits) != len(weights) or not logits:
        raise UserError(f"{len(weights)} ensemble weights for {len(logits)} teachers")
    shapes = {np.shape(z) for z in logits}
    if len(shapes) != 1:
        raise UserError(f"the teachers' logits differ in shape: {sorted(shapes)}")
    w = np.asarray(weights, dtype=np.float64)
    if (w < 0).any() or w.sum() <= 0:
        raise UserError(f"ensemble weights must be >= 0 with a positive sum, got {list(weights)}")
    w = w / w.sum()
    stack = np.stack([np.asarray(z, dtype=np.float64) for z in logits])  # (K, N, C)
    if rule == "logits":
        out = np.tensordot(w, stack, axes=1)  # (N, C)
    else:
        probs = np.tensordot(w, np.stack([_softmax(z) for z in stack]), axes=1)  # (N, C)
        out = np.log(np.clip(probs, 1e-12, None))
    return out.astype(np.float32)


def simplex_grid(k: int, step: float) -> List[np.ndarray]:
    """Every weight vector of ``k`` non-negative multiples of ``step`` summing to 1."""
    n = int(round(1.0 / step))
    if n < 1 or abs(n * step - 1.0) > 1e-9:
        raise UserError(f"ensemble grid_step must divide 1 (0.1, 0.25, 0.5 ...), got {step}")
    return [np.asarray(c, dtype=np.float64) / n
            for c in itertools.product(range(n + 1), repeat=k) if sum(c) == n]


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(labels)).mean())


def choose_weights(dev_logits: Sequence[np.ndarray], dev_labels: np.ndarray, rule: str = "logits",
                   weights: Union[str, Sequence[float]] = "dev", grid_step: float = 0.1) -> Dict:
    """Weights by ``weights`` (``dev`` | ``equal`` | a list) and the dev accuracy of every member
    and of the ensemble: ``{"weights", "dev_accuracy", "members_dev_accuracy", "chosen_on"}``."""
    k = len(dev_logits)
    members = [accuracy(z, dev_labels) for z in dev_logits]
    if isinstance(weights, str) and weights == "equal":
        chosen, on = np.full(k, 1.0 / k), "equal weights"
    elif isinstance(weights, str) and weights == "dev":
        if len(dev_labels) == 0:
            raise UserError("ensemble weights 'dev' need labelled dev rows")
        equal = np.full(k, 1.0 / k)
        scored = [(accuracy(combine(dev_logits, w, rule), dev_labels),
                   -float(np.abs(w - equal).sum()), tuple(w)) for w in simplex_grid(k, grid_step)]
        chosen, on = np.asarray(max(scored)[2]), "dev"
    elif isinstance(weights, str):
        raise UserError(f"ensemble weights {weights!r}: use 'dev', 'equal' or a list of numbers")
    else:
        if len(weights) != k:
            raise UserError(f"{len(weights)} ensemble weights for {k} teachers")
        chosen, on = np.asarray(weights, dtype=np.float64), "given"
        chosen = chosen / chosen.sum() if chosen.sum() > 0 else chosen
    return {"weights": [round(float(w), 6) for w in chosen], "rule": rule, "chosen_on": on,
            "dev_accuracy": accuracy(combine(dev_logits, chosen, rule), dev_labels)
            if len(dev_labels) else None,
            "members_dev_accuracy": members}
