"""Shared set-up of the token export tests: a tagger trained on the smoke NER task."""
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke_ner"


@pytest.fixture(scope="module")
def train_smoke_tagger(tmp_path_factory):
    """``train(kind, config, epochs)`` -> (task, student dir, result) on the smoke NER task."""
    from distill.data.tokens import load_token_task
    from students.train_tokens import default_token_train_config, train_token_student

    def train(kind, config, epochs):
        task = load_token_task(SMOKE / "train.txt", SMOKE / "dev.txt", SMOKE / "test.txt")
        out = tmp_path_factory.mktemp(kind)
        settings = default_token_train_config(kind, epochs=epochs, lr=1e-2, batch_size=16,
                                              progress=False)
        result = train_token_student(kind, config, task, out, settings, progress=False)
        return task, out / "student", result

    return train
