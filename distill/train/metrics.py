"""Classification metrics (scikit-learn) and entity metrics (seqeval), as fractions in [0, 1].

    >>> classification_metrics([0, 1, 1, 1], [0, 1, 1, 0])
    {'accuracy': 0.75, 'macro_f1': 0.733...}
    >>> entity_metrics([["B-PER", "E-PER", "O"]], [["B-PER", "E-PER", "O"]], "bioes")["f1"]
    1.0
"""
import warnings
from typing import Dict, List, Sequence

import numpy as np

METRICS = ("accuracy", "macro_f1")
TOKEN_METRICS = ("f1", "precision", "recall", "token_accuracy")


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


def entity_metrics(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]],
                   scheme: str) -> Dict[str, object]:
    """Entity-level micro precision/recall/F1 (seqeval, strict mode for ``scheme``), per type,
    and token accuracy. ``y_true``/``y_pred``: one tag list per sentence, equal lengths.

    Strict mode counts an entity only when its tags are exactly the scheme's (a predicted
    ``I-PER`` after ``O`` is no entity); BMES sequences are scored as BIOES (M read as I).
    Returns ``{"f1", "precision", "recall", "token_accuracy", "per_type": {type: {...}}}``.
    """
    from seqeval.metrics import classification_report  # lazy: a light module import
    from seqeval.scheme import IOB2, IOBES

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted")
    gold: List[List[str]] = []
    pred: List[List[str]] = []
    for i, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {i}: {len(t)} gold tags but {len(p)} predicted")
        gold.append(_as_seqeval(t, scheme))
        pred.append(_as_seqeval(p, scheme))
    if not gold:
        raise ValueError("no sentences to score")
    mode = {"bio": IOB2, "bioes": IOBES, "bmes": IOBES}[scheme]
    with warnings.catch_warnings():  # numpy warns on the averages when nothing is an entity
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(gold, pred, mode="strict", scheme=mode,
                                       output_dict=True, zero_division=0)
    tokens = sum(len(t) for t in gold)
    correct = sum(a == b for t, p in zip(gold, pred) for a, b in zip(t, p))
    micro = report.get("micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0})
    per_type = {name: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                       "f1": float(v["f1-score"]), "support": int(v["support"])}
                for name, v in report.items() if not name.endswith(" avg")}
    return {"f1": float(micro["f1-score"]), "precision": float(micro["precision"]),
            "recall": float(micro["recall"]), "token_accuracy": correct / max(tokens, 1),
            "per_type": per_type}


def _as_seqeval(tags: Sequence[str], scheme: str) -> List[str]:
    """seqeval's spelling: BMES's M is IOBES's I."""
    if scheme != "bmes":
        return list(tags)
    return ["I" + tag[1:] if tag.startswith("M-") else tag for tag in tags]
