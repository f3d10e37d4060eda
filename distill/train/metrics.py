"""Classification metrics (scikit-learn), as plain fractions in [0, 1].

    >>> classification_metrics([0, 1, 1, 1], [0, 1, 1, 0])
    {'accuracy': 0.75, 'macro_f1': 0.733...}
"""
from typing import Dict, Sequence

import numpy as np

METRICS = ("accuracy", "macro_f1")


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int]) -> Dict[str, float]:
    """Accuracy and macro-F1 (unweighted mean over the classes present in either array)."""
    from sklearn.metrics import accuracy_score, f1_score  # lazy: a light module import

    y_true = np.asarray(y_true, dtype=np.int64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} items but y_pred has {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("no examples to score")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
