"""Shared test set-up. Importing distill first makes Paddle safe to import (see distill/__init__).

Hypothesis: ``make test`` draws the same examples on every run (profile ``gate``, derandomized),
so a commit passes or fails CI for its code, not its luck. ``HYPOTHESIS_PROFILE=explore make
test`` draws fresh random examples to hunt for new failures; pin what it finds with ``@example``.
"""
import os

import distill  # noqa: F401


import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

settings.register_profile("gate", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


@pytest.fixture(scope="session")
def toy_sentiment():
    """A tiny trained BOW student on a synthetic two-label task (export/package/predict tests).

    Returns a dict: ``train``/``test`` (distill.data.examples.Example lists), ``labels``, ``vocab``
    (distill.text.vocab.WordVocab), ``model`` (BOWStudent in eval mode, ~100 % test accuracy).
    """
    import numpy as np
    import paddle

    from distill.data.examples import Example
    from students.registry import build_student
    from distill.text.vocab import WordVocab

    rng = np.random.default_rng(0)
    labels = ["neg", "pos"]
    cues = [["bad", "awful", "poor", "boring", "dull"], ["good", "great", "lovely", "superb", "fun"]]
    filler = [f"w{i}" for i in range(400)]

    def make(n):
        rows = []
        for _ in range(n):
            y = int(rng.integers(2))
            words = list(rng.choice(filler, size=int(rng.integers(3, 10))))
            for _ in range(2):
                words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(cues[y])))
            rows.append(Example(" ".join(words), label=labels[y]))
        return rows

    train, test = make(320), make(64)
    vocab = WordVocab.build([e.text_a for e in train], language="en")
    paddle.seed(0)
    model = build_student("bow", {"emb_dim": 32, "hidden_sizes": [32]},
                          vocab_size=vocab.vocab_size, num_labels=2)
    fit_toy_model(model, vocab, train, labels, epochs=4, lr=1e-2, max_len=32)
    return {"train": train, "test": test, "labels": labels, "vocab": vocab, "model": model}


def fit_toy_model(model, vocab, rows, labels, epochs: int, lr: float, max_len: int) -> None:
    """Train ``model`` in place on ``rows`` with hard cross-entropy (Adam, batches of 32), then
    leave it in eval mode: a real trained model for the export and package tests."""
    import numpy as np
    import paddle

    optimizer = paddle.optimizer.Adam(learning_rate=lr, parameters=model.parameters())
    y = np.array([labels.index(e.label) for e in rows])
    model.train()
    for _ in range(epochs):
        for start in range(0, len(rows), 32):
            enc = vocab.encode([e.text_a for e in rows[start:start + 32]], max_len=max_len)
            logits = model(**{k: paddle.to_tensor(v) for k, v in enc.items()})["logits"]
            loss = paddle.nn.functional.cross_entropy(logits, paddle.to_tensor(y[start:start + 32]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
    model.eval()


@pytest.fixture(scope="session")
def fit_toy():
    """``fit_toy_model``, for tests that train a model of their own on the toy task."""
    return fit_toy_model
