"""Load any saved text encoder (WordPiece, SentencePiece, word vocabulary) from its directory.

No Paddle here: the edge predictor uses this.
"""
import importlib
import json
from pathlib import Path

from distill.errors import UserError

# encoder.json "type" -> "module:Class"; each class has a ``load(dir)`` classmethod.
ENCODER_TYPES = {
    "wordpiece": "teachers.tokenizer:WordPieceTokenizer",
    "sentencepiece": "teachers.tokenizer:SentencePieceTokenizer",
    "words": "students.vocab:WordVocab",
}


def load_encoder(directory):
    """Read ``encoder.json`` in ``directory`` and load the encoder it names."""
    meta_path = Path(directory) / "encoder.json"
    if not meta_path.exists():
        raise UserError(f"{meta_path}: missing; is this a saved model or package directory?")
    kind = json.loads(meta_path.read_text(encoding="utf-8")).get("type")
    if kind not in ENCODER_TYPES:
        raise UserError(f"{meta_path}: unknown encoder type {kind!r}; expected one of "
                        f"{', '.join(ENCODER_TYPES)}")
    module_name, class_name = ENCODER_TYPES[kind].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls.load(directory)
