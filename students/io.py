"""Save a trained student to a directory and load it back (weights, config, encoder, labels).

A student directory holds::

    model_state.pdparams   the weights (paddle.save of the state dict)
    student.json           {"kind", "config", "labels", "max_len", "vocab_size" (embedding rows), "pad_id",
                            "toolkit_version", ...extra}
    encoder.json + files   the encoder (WordVocab or the teacher's tokenizer)

It is written atomically (it appears complete or not at all). Example::

    save_student("runs/movies/cnn", model, "cnn", vocab, labels=["negative", "positive"], max_len=128)
    model, encoder, meta = load_student("runs/movies/cnn")
    logits = predict_logits(model, encoder, ["a lovely film"], max_len=meta["max_len"])
"""
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from distill.core import __version__
from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json
from distill.core.safe_pickle import load_state_dict

WEIGHTS, META = "model_state.pdparams", "student.json"


def save_student(directory, model, kind: str, encoder, labels: Sequence[str], max_len: int,
                 extra: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model`` (a student of ``kind``), its encoder and labels to ``directory``."""
    import paddle

    directory = Path(directory)
    meta = {"kind": kind, "config": model.config.to_dict(), "labels": list(labels),
            "max_len": int(max_len), "vocab_size": int(model.vocab_size),
            "pad_id": int(encoder.pad_id), "toolkit_version": __version__}
    meta.update(extra or {})
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        paddle.save(model.state_dict(), str(tmp / WEIGHTS))
        encoder.save(tmp)
        write_json(tmp / META, meta)
    return directory


def load_student(directory) -> Tuple[Any, Any, Dict[str, Any]]:
    """Return ``(model, encoder, meta)`` from a directory written by ``save_student``; model in eval mode."""
    from distill.text.encoders import load_encoder
    from students.registry import build_student

    directory = Path(directory)
    meta_path = directory / META
    if not meta_path.exists():
        raise UserError(f"{meta_path}: missing; {directory} is not a saved student directory")
    meta = read_json(meta_path)
    for key in ("kind", "config", "labels", "max_len"):
        if key not in meta:
            raise UserError(f"{meta_path}: field '{key}' is missing")
    encoder = load_encoder(directory)
    model = build_student(meta["kind"], meta["config"],
                          vocab_size=meta.get("vocab_size", encoder.vocab_size),
                          num_labels=len(meta["labels"]), pad_id=encoder.pad_id,
                          task=meta.get("task", "sentence"))
    state = load_state_dict(directory / WEIGHTS)  # restricted: never runs code from the file
    missing = sorted(set(model.state_dict()) - set(state))
    if missing:
        raise UserError(f"{directory / WEIGHTS}: weights missing for {', '.join(missing[:5])}")
    model.set_state_dict(state)
    model.eval()
    return model, encoder, meta


def predict_logits(model, encoder, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
                   max_len: int = 128, batch_size: int = 64) -> np.ndarray:
    """(N, C) float32 logits in input order (batches sorted by length, no gradients)."""
    import paddle

    from distill.data.batching import BatchPlan, encode_texts, restore_order

    data = encode_texts(encoder, list(texts_a), None if texts_b is None else list(texts_b),
                        max_len=max_len)
    was_training = model.training
    model.eval()
    index, values = [], []
    with paddle.no_grad():
        for batch in BatchPlan(data, batch_size, shuffle=False, bucket=True):
            inputs = {k: paddle.to_tensor(v) for k, v in batch["inputs"].items()}
            values.append(model(**inputs)["logits"].numpy())
            index.append(batch["index"])
    if was_training:
        model.train()
    if not values:
        return np.zeros((0, 0), dtype=np.float32)
    return restore_order(np.concatenate(index), np.concatenate(values), len(data))


def predict(directory, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
            batch_size: int = 64) -> List[str]:
    """Labels predicted by the student saved in ``directory``."""
    model, encoder, meta = load_student(directory)
    logits = predict_logits(model, encoder, texts_a, texts_b, meta["max_len"], batch_size)
    return [meta["labels"][i] for i in logits.argmax(axis=1)]
