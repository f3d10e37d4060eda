"""ERNIE's SentencePiece tokenizers (no Paddle): ERNIE Tiny and ERNIE-M, as PaddleNLP ships them.

Both split text into pieces with the ``sentencepiece`` library and map pieces to ids through the
model's own ``vocab.txt`` (a piece missing from it becomes ``[UNK]``); they differ in what comes
before and after::

    ERNIE Tiny  files spm_cased_simp_sampled.model + vocab.txt + dict.wordseg.pickle
                lowercase; cut the text into words of the word dictionary (greedy longest match,
                at most 5 characters, as ERNIE Tiny was trained); drop spaces; join the words with
                spaces; SentencePiece. Pairs: [CLS] a [SEP] b [SEP], types 0.. 1..
    ERNIE-M     files sentencepiece.bpe.model + vocab.txt; case kept; SentencePiece, then every
                piece is split again at CJK characters, a few punctuation marks and digit/non-digit
                boundaries. Pairs: [CLS] a [SEP] [SEP] b [SEP], types all 0 (ERNIE-M has none).

Special tokens written in the text (``[MASK]`` from augmentation) map to their ids. Pairs are
truncated longest-first the way PaddleNLP does it (one token at a time from the longer side, the
second side on ties). Usage is the encoder contract of ``distill.text.tokenizer``::

    tok = ErnieTinyTokenizer.from_files("dir/")               # PaddleNLP's file names
    batch = tok.encode(["今天天气不错"], ["适合出门"], max_len=64)
    tok.save("out/"); distill.text.encoders.load_encoder("out/")

The word dictionary is a pickle: it is read with an unpickler that refuses every global, so only
plain containers of strings and numbers load (a crafted file cannot run code).
"""
import io
import itertools
import pickle
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from distill.core.io import atomic_path, write_json
from distill.text.batch import cut_pair, pad_rows
from distill.text.tokenizer import (ENCODER_FILE, TokenizerError, TokenTable, _check_batch,
                                    _read_meta, read_vocab_file)

SPIECE_UNDERLINE = "\u2581"
# ERNIE-M splits pieces after each of these (and each CJK character).
ERNIE_M_PUNCT = set(",;:.?!~，；：。？！《》【】")


class _NoGlobals(pickle.Unpickler):
    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a word dictionary")


def read_word_dict(path) -> List[str]:
    """The words of a pickled word dictionary (a dict, set or list of strings), no code run."""
    path = Path(path)
    try:
        data = _NoGlobals(io.BytesIO(path.read_bytes())).load()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: word dictionary missing") from None
    except Exception as err:  # noqa: BLE001  (pickle raises many types for bad files)
        raise TokenizerError(f"{path}: not a plain pickled word dictionary "
                             f"({type(err).__name__}: {err})") from None
    if not isinstance(data, (dict, set, frozenset, list, tuple)) or \
            not all(isinstance(w, str) for w in data):
        raise TokenizerError(f"{path}: expected a dict/set/list of words, got "
                             f"{type(data).__name__}")
    return sorted(data)


class _VocabSentencePiece(TokenTable):
    """SentencePiece pieces, ids from a BERT-style vocab.txt with [CLS]/[SEP]/[PAD]/[UNK]/[MASK]."""

    kind = ""
    MODEL_FILE = ""
    pair_separators = 1            # [SEP] tokens between the two texts of a pair
    pair_types = True              # second text gets token type 1

    def __init__(self, model: Union[bytes, str, Path], vocab: Union[str, Path, Sequence[str]],
                 lowercase: bool = False, unk_token: str = "[UNK]", cls_token: str = "[CLS]",
                 sep_token: str = "[SEP]", pad_token: str = "[PAD]", mask_token: str = "[MASK]"):
        import sentencepiece as spm

        if isinstance(model, (str, Path)):
            try:
                model = Path(model).read_bytes()
            except FileNotFoundError:
                raise TokenizerError(f"{model}: sentencepiece model missing") from None
        self._proto = bytes(model)
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        except Exception as err:  # noqa: BLE001
            raise TokenizerError(f"{self.MODEL_FILE}: not a sentencepiece model ({err})") from None
        source = str(vocab) if isinstance(vocab, (str, Path)) else "vocabulary"
        self.tokens: List[str] = (read_vocab_file(vocab) if isinstance(vocab, (str, Path))
                                  else list(vocab))
        self._ids: Dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            self._ids.setdefault(token, i)
        for name, token in (("unk_token", unk_token), ("cls_token", cls_token),
                            ("sep_token", sep_token), ("pad_token", pad_token)):
            if token not in self._ids:
                raise TokenizerError(f"{source}: {name} {token!r} is not in the vocabulary")
        self.lowercase = lowercase
        self.unk_token, self.cls_token, self.sep_token = unk_token, cls_token, sep_token
        self.pad_token = pad_token
        self.mask_token = mask_token if mask_token in self._ids else unk_token
        specials = sorted({unk_token, cls_token, sep_token, pad_token, self.mask_token},
                          key=len, reverse=True)
        self._specials = set(specials)
        self._special_re = re.compile("(" + "|".join(map(re.escape, specials)) + ")")

    def _pieces(self, text: str) -> List[str]:
        raise NotImplementedError

    def tokenize(self, text: str) -> List[str]:
        """Tokens of one text (no [CLS]/[SEP] added); special tokens in the text are kept whole."""
        out: List[str] = []
        for chunk in self._special_re.split(text):
            if chunk in self._specials:
                out.append(chunk)
            elif chunk.strip():
                chunk = chunk.lower() if self.lowercase else chunk
                out.extend(p if p in self._ids else self.unk_token
                           for p in self._pieces(chunk.strip()))
        return out

    def _ids_of(self, text: str) -> List[int]:
        return [self._ids[t] for t in self.tokenize(text)]

    def encode(self, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
               max_len: int = 128) -> Dict[str, np.ndarray]:
        """Batch-encode: ``input_ids``, ``token_type_ids``, ``attention_mask``, (B, T) int64."""
        seps = self.pair_separators
        _check_batch(texts_a, texts_b, max_len, 2 if texts_b is None else 2 + seps)
        cls, sep = self._ids[self.cls_token], self._ids[self.sep_token]
        rows: List[List[int]] = []
        types: List[List[int]] = []
        for i, text in enumerate(texts_a):
            a = self._ids_of(text)
            if texts_b is None:
                row = [cls] + a[:max_len - 2] + [sep]
                rows.append(row)
                types.append([0] * len(row))
                continue
            b = self._ids_of(texts_b[i])
            na, nb = cut_pair(len(a), len(b), max_len - 2 - seps)
            first = [cls] + a[:na] + [sep] * seps
            second = b[:nb] + [sep]
            rows.append(first + second)
            types.append([0] * len(first) + [int(self.pair_types)] * len(second))
        return pad_rows(rows, self.pad_id, types)

    # -- files ----------------------------------------------------------------------------
    def _extra_files(self, directory: Path) -> Dict[str, str]:
        return {}

    def save(self, directory) -> None:
        """Write PaddleNLP's tokenizer files and ``encoder.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / self.MODEL_FILE) as tmp:
            tmp.write_bytes(self._proto)
        with atomic_path(directory / "vocab.txt") as tmp:
            tmp.write_text("".join(t + "\n" for t in self.tokens), encoding="utf-8")
        write_json(directory / ENCODER_FILE, {
            "type": self.kind, "model": self.MODEL_FILE, "vocab": "vocab.txt",
            "lowercase": self.lowercase, "unk_token": self.unk_token, "cls_token": self.cls_token,
            "sep_token": self.sep_token, "pad_token": self.pad_token,
            "mask_token": self.mask_token, **self._extra_files(directory)})

    @classmethod
    def load(cls, directory):
        directory = Path(directory)
        meta = _read_meta(directory, cls.kind)
        model = directory / meta.pop("model", cls.MODEL_FILE)
        vocab = directory / meta.pop("vocab", "vocab.txt")
        return cls._from_meta(directory, model, vocab, meta)

    @classmethod
    def _from_meta(cls, directory: Path, model: Path, vocab: Path, meta: dict):
        return cls(model, vocab, **meta)


class ErnieTinyTokenizer(_VocabSentencePiece):
    """ERNIE Tiny: word-dictionary cut, then SentencePiece, ids from vocab.txt (lowercased)."""

    kind = "ernie-tiny"
    MODEL_FILE = "spm_cased_simp_sampled.model"
    WORD_DICT_FILE = "dict.wordseg.pickle"
    WINDOW = 5  # longest dictionary word tried, in characters

    def __init__(self, model, vocab, words: Iterable[str], lowercase: bool = True, **specials):
        super().__init__(model, vocab, lowercase=lowercase, **specials)
        self.words = frozenset(words)

    def cut(self, text: str) -> List[str]:
        """Greedy longest match against the word dictionary; other characters stand alone."""
        out, i = [], 0
        while i < len(text):
            size = next((n for n in range(min(self.WINDOW, len(text) - i), 1, -1)
                         if text[i:i + n] in self.words), 1)
            out.append(text[i:i + size])
            i += size
        return out

    def _pieces(self, text: str) -> List[str]:
        words = " ".join(w for w in self.cut(text) if w != " ")
        return self._sp.encode(words.lower() if self.lowercase else words, out_type=str)

    def _extra_files(self, directory: Path) -> Dict[str, str]:
        with atomic_path(directory / self.WORD_DICT_FILE) as tmp:
            tmp.write_bytes(pickle.dumps({w: 1 for w in sorted(self.words)}, protocol=2))
        return {"word_dict": self.WORD_DICT_FILE}

    @classmethod
    def _from_meta(cls, directory, model, vocab, meta):
        words = read_word_dict(directory / meta.pop("word_dict", cls.WORD_DICT_FILE))
        return cls(model, vocab, words, **meta)

    @classmethod
    def from_files(cls, directory, lowercase: bool = True, **specials) -> "ErnieTinyTokenizer":
        """Read PaddleNLP's ernie-tiny files from ``directory``."""
        directory = Path(directory)
        return cls(directory / cls.MODEL_FILE, directory / "vocab.txt",
                   read_word_dict(directory / cls.WORD_DICT_FILE), lowercase=lowercase,
                   **specials)


def _ernie_m_class(char: str) -> str:
    if "\u4e00" <= char <= "\u9fff" or char in ERNIE_M_PUNCT:
        return "alone"
    return "digit" if char.isdigit() else "other"


class ErnieMTokenizer(_VocabSentencePiece):
    """ERNIE-M: SentencePiece, each piece split at CJK characters, punctuation and digit runs."""

    kind = "ernie-m"
    MODEL_FILE = "sentencepiece.bpe.model"
    pair_separators = 2
    pair_types = False

    def __init__(self, model, vocab, lowercase: bool = False, **specials):
        super().__init__(model, vocab, lowercase=lowercase, **specials)

    @staticmethod
    def split_piece(piece: str) -> List[str]:
        """'▁ab12cd' -> ['▁ab', '12', 'cd']; '▁你好' -> ['你', '好']; a lone '▁' is dropped.
        The word-start mark stays on the group it starts (it never starts a split itself)."""
        out: List[str] = []
        groups = itertools.groupby(enumerate(piece), key=lambda ic: (
            "mark" if ic[1] == SPIECE_UNDERLINE and ic[0] == 0 else _ernie_m_class(ic[1])))
        pending = ""
        for kind, chars in groups:
            text = "".join(c for _, c in chars)
            if kind == "mark":
                pending = text
            elif kind == "alone":
                out.extend(text)
                pending = ""
            elif kind == "digit" and pending:
                out.append(text)          # '▁' before a digit run is dropped
                pending = ""
            else:
                out.append(pending + text)
                pending = ""
        return out

    def _pieces(self, text: str) -> List[str]:
        pieces = self._sp.encode(text, out_type=str)
        return [p for piece in pieces if piece != SPIECE_UNDERLINE
                for p in self.split_piece(piece)]

    @classmethod
    def from_files(cls, directory, lowercase: bool = False, **specials) -> "ErnieMTokenizer":
        """Read PaddleNLP's ernie-m files from ``directory``."""
        directory = Path(directory)
        return cls(directory / cls.MODEL_FILE, directory / "vocab.txt", lowercase=lowercase,
                   **specials)
