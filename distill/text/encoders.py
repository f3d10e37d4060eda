"""Load any saved text encoder (WordPiece, SentencePiece, word vocabulary, hashed word n-grams)
from its directory.

No Paddle here: the edge runtime uses this.
"""
from pathlib import Path

from distill.core.errors import UserError
from distill.core.io import read_json
from distill.text.ernie_tokenizers import ErnieMTokenizer, ErnieTinyTokenizer
from distill.text.ngrams import NgramVocab
from distill.text.tokenizer import SentencePieceTokenizer, WordPieceTokenizer
from distill.text.vocab import WordVocab

# The model inputs of every encoded batch, int64 (B, T) each; exported models take these names.
INPUT_NAMES = ("input_ids", "token_type_ids", "attention_mask")

# encoder.json "type" -> class with a ``load(dir)`` classmethod.
ENCODER_TYPES = {
    "wordpiece": WordPieceTokenizer,
    "sentencepiece": SentencePieceTokenizer,
    "ernie-tiny": ErnieTinyTokenizer,
    "ernie-m": ErnieMTokenizer,
    "words": WordVocab,
    "words-ngram": NgramVocab,
}


def load_encoder(directory):
    """Read ``encoder.json`` in ``directory`` and load the encoder it names."""
    meta_path = Path(directory) / "encoder.json"
    if not meta_path.exists():
        raise UserError(f"{meta_path}: missing; is this a saved model or package directory?")
    meta = read_json(meta_path)
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in ENCODER_TYPES:
        raise UserError(f"{meta_path}: unknown encoder type {kind!r}; expected one of "
                        f"{', '.join(ENCODER_TYPES)}")
    return ENCODER_TYPES[kind].load(directory)
