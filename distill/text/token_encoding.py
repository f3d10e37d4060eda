"""Encode pre-split tokens (characters or words) for token tasks; no Paddle (the edge runtime uses it).

Every encoder of the toolkit works here:

* ``WordVocab`` (BiLSTM/CNN taggers): one id per token, no special tokens; position of token j is j.
* ``WordPieceTokenizer``: ``[CLS]`` + each token's word pieces + ``[SEP]``.
* ``SentencePieceTokenizer`` (e5): ``<s>`` + each token's pieces + ``</s>``. A token tokenized
  alone gets SentencePiece's word-start piece: a bare ``▁`` in front of other pieces is
  dropped (Chinese characters would otherwise cost two positions each).

``first[j]`` is the position of token j's first sub-token (the one the tagger predicts from);
tokens cut by ``max_len`` get ``-1`` (they are predicted ``O``). Sub-tokens are cached per
distinct token, so a 2-million-character corpus encodes in seconds.

    rows = [["中", "国"], ["张", "三", "来"]]
    ids, first = encode_token_rows(tokenizer, rows, max_len=128)   # lists of int lists
    split_text("张三 来了", "char")    # [("张", 0, 1), ("三", 1, 2), ("来", 3, 4), ("了", 4, 5)]
"""
import re
from typing import Dict, List, Sequence, Tuple

UNITS = ("char", "word")
_WORD = re.compile(r"\S+")
_SP_SPACE = "\u2581"


def split_text(text: str, unit: str) -> List[Tuple[str, int, int]]:
    """(token, start, end) character offsets of the tokens of ``text``: every non-space character
    (``char``) or every whitespace-separated word (``word``)."""
    if unit == "char":
        return [(ch, i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]
    if unit == "word":
        return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
    raise ValueError(f"unknown token unit {unit!r}; use one of {', '.join(UNITS)}")


def join_tokens(tokens: Sequence[str], unit: str) -> str:
    """The text of a token row (``split_text`` gives the same tokens back)."""
    return ("" if unit == "char" else " ").join(tokens)


class _Pieces:
    """Token -> sub-token ids (cached) and the special ids around a row, for one encoder."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.cache: Dict[str, List[int]] = {}
        kind = getattr(encoder, "kind", None) or ("words" if hasattr(encoder, "index") else None)
        self.kind = kind
        if kind == "words":
            self.head, self.tail = [], []
        elif kind == "wordpiece":
            self.head = [encoder.token_to_id(encoder.cls_token)]
            self.tail = [encoder.token_to_id(encoder.sep_token)]
        elif kind == "sentencepiece":
            prefix = encoder.tokenize(encoder.prefix) if encoder.prefix.strip() else []
            self.head = [encoder.bos_id] + [self._piece_id(p) for p in prefix]
            self.tail = [encoder.eos_id]
        else:
            raise TypeError(f"cannot encode tokens with {type(encoder).__name__}")
        self.unk = (encoder.unk_id if kind == "words"
                    else encoder.token_to_id(encoder.unk_token))

    def _piece_id(self, piece: str) -> int:
        index = self.encoder.token_to_id(piece)
        return self.unk if index is None else index

    def __call__(self, token: str) -> List[int]:
        ids = self.cache.get(token)
        if ids is not None:
            return ids
        if self.kind == "words":
            key = token.lower() if self.encoder.lowercase else token
            ids = [self.encoder.index.get(key, self.encoder.unk_id)]
        else:
            pieces = self.encoder.tokenize(token)
            if self.kind == "sentencepiece" and len(pieces) > 1 and pieces[0] == _SP_SPACE:
                pieces = pieces[1:]
            ids = [self._piece_id(p) for p in pieces] or [self.unk]
        self.cache[token] = ids
        return ids


def encode_token_rows(encoder, rows: Sequence[Sequence[str]], max_len: int = 128
                      ) -> Tuple[List[List[int]], List[List[int]]]:
    """(ids per row, first sub-token position per token per row); see the module docstring."""
    pieces = _Pieces(encoder)
    budget = max_len - len(pieces.head) - len(pieces.tail)
    if budget < 1:
        raise ValueError(f"max_len={max_len} leaves no room for tokens")
    all_ids, all_first = [], []
    for row in rows:
        ids = list(pieces.head)
        first = []
        for token in row:
            sub = pieces(token)
            if len(ids) - len(pieces.head) + len(sub) > budget:
                first.append(-1)  # cut: no room for this token (nor any after it)
                budget = -1
                continue
            first.append(len(ids))
            ids.extend(sub)
        budget = max_len - len(pieces.head) - len(pieces.tail)
        all_ids.append(ids + pieces.tail)
        all_first.append(first)
    return all_ids, all_first
