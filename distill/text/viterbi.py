"""Linear-chain CRF decoding and scoring in NumPy (no Paddle): what a CRF tagger's package runs.

A CRF tagger (``students.crf``) scores a tag path y over W tokens as
``start[y_0] + sum_t emissions[t, y_t] + sum_t transitions[y_{t-1}, y_t] + end[y_{W-1}]``;
``viterbi`` returns the best path, ``path_score`` that score and ``log_partition`` the log of
the sum over every path (so ``path_score - log_partition`` is the path's log-probability).
"""
from typing import Dict, List, Sequence

import numpy as np


def viterbi(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray) -> List[int]:
    """(W, C) emissions, (C, C) transitions (from, to), (C,) start/end -> the best W tag ids."""
    emissions = np.asarray(emissions, dtype=np.float64)
    if len(emissions) == 0:
        return []
    score = start + emissions[0]  # (C,)
    back = []
    for t in range(1, len(emissions)):
        total = score[:, None] + transitions  # (C from, C to)
        back.append(total.argmax(axis=0))  # (C,)
        score = total.max(axis=0) + emissions[t]
    best = [int((score + end).argmax())]
    for pointers in reversed(back):
        best.append(int(pointers[best[-1]]))
    return best[::-1]


def path_score(emissions: np.ndarray, path: Sequence[int], transitions: np.ndarray,
               start: np.ndarray, end: np.ndarray) -> float:
    """The unnormalised score of one tag path (see the module docstring)."""
    path = list(path)
    score = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
    return float(score + sum(transitions[a, b] for a, b in zip(path, path[1:])))


def log_partition(emissions: np.ndarray, transitions: np.ndarray, start: np.ndarray,
                  end: np.ndarray) -> float:
    """log sum over every tag path of exp(path_score) (the forward algorithm)."""
    alpha = start + np.asarray(emissions[0], dtype=np.float64)  # (C,)
    for t in range(1, len(emissions)):
        total = alpha[:, None] + transitions  # (C from, C to)
        top = total.max(axis=0)
        alpha = top + np.log(np.exp(total - top).sum(axis=0)) + emissions[t]
    final = alpha + end
    return float(final.max() + np.log(np.exp(final - final.max()).sum()))


def crf_arrays(params: Dict[str, Sequence]) -> Dict[str, np.ndarray]:
    """``{"transitions", "start", "end"}`` (lists, as stored in a package's config.json) as arrays."""
    return {k: np.asarray(params[k], dtype=np.float64) for k in ("transitions", "start", "end")}
