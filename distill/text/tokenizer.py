"""Teacher tokenizers (no Paddle): WordPiece (BERT/ERNIE vocab.txt) and SentencePiece (e5/XLM-R).

Both implement the encoder contract of ``distill/ARCHITECTURE.md``::

    tok = WordPieceTokenizer("vocab.txt")                    # BERT uncased / ERNIE 1.0 Chinese
    batch = tok.encode(["a movie", "好看"], ["first text's partner", "second"], max_len=128)
    batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]   # (B, T) int64
    tok.save("out/"); distill.text.encoders.load_encoder("out/")  # dispatches on encoder.json

Pairs: ``[CLS] a [SEP] b [SEP]`` (types 0.. 1..) for WordPiece, ``<s> a </s></s> b </s>``
(types all 0) for SentencePiece; truncation is longest-first (the same rule as HF tokenizers);
rows are padded to the longest row of the batch.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from distill.core.errors import UserError
from distill.core.io import atomic_path, read_json, write_json
from distill.text.batch import cut_pair, pad_rows

ENCODER_FILE = "encoder.json"
WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class TokenizerError(UserError):
    """A vocabulary or tokenizer file that cannot be used; the message names the file."""


def longest_first(len_a: int, len_b: int, budget: int) -> Tuple[int, int]:
    """Lengths kept by longest-first truncation of a pair into ``budget`` tokens.

    Same rule as HF tokenizers: only the longer side is cut while the shorter one fits in
    half; otherwise both get half (the second side gets the odd token).
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    short, long_ = sorted((len_a, len_b))
    long_ = short if short > budget else max(short, budget - short)
    if short + long_ > budget:
        short, long_ = budget // 2, budget // 2 + budget % 2
    return (short, long_) if len_a <= len_b else (long_, short)


# PaddleNLP's BasicTokenizer splits these off as tokens of their own (after lowercasing), besides
# punctuation: every Unicode symbol (category S*: emoji, currency, math, ...) and a few others.
PADDLENLP_SYMBOLS = r"[\p{S}\x{00AD}\x{00B2}\x{00BA}\x{3007}\x{00B5}\x{00D8}\x{014B}\x{01B1}]"


def _check_batch(texts_a: Sequence[str], texts_b: Optional[Sequence[str]], max_len: int,
                 specials: int):
    if isinstance(texts_a, str):
        raise TypeError("encode() takes a list of texts, not a single string")
    if texts_b is not None and len(texts_b) != len(texts_a):
        raise ValueError(f"texts_b has {len(texts_b)} rows but texts_a has {len(texts_a)}")
    if max_len < specials + (1 if texts_b is None else 2):
        raise ValueError(f"max_len={max_len} leaves no room for text after {specials} special "
                         f"tokens")


def read_vocab_file(path) -> List[str]:
    """Tokens in id order from a vocab.txt: one token per line (BERT, PaddleNLP) or
    ``token<TAB>id`` (ERNIE repo). Duplicate ids or an empty file raise ``TokenizerError``."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TokenizerError(f"{path}: vocabulary file missing") from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise TokenizerError(f"{path}: empty vocabulary")
    if all("\t" in line for line in lines):
        by_id: Dict[int, str] = {}
        for n, line in enumerate(lines, 1):
            token, _, index = line.rpartition("\t")
            try:
                idx = int(index)
            except ValueError:
                raise TokenizerError(
                    f"{path}, line {n}: expected 'token<TAB>id', got {line!r}") from None
            if idx in by_id:
                raise TokenizerError(f"{path}, line {n}: id {idx} used twice")
            by_id[idx] = token
        return [by_id.get(i, f"[unused_id_{i}]") for i in range(max(by_id) + 1)]
    return [line.rstrip("\r") for line in lines]


class TokenTable:
    """The encoder contract's look-ups for a tokenizer holding ``tokens`` (id order), ``_ids``
    (token -> id) and ``pad_token``."""

    tokens: List[str]
    _ids: Dict[str, int]
    pad_token: str

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    @property
    def pad_id(self) -> int:
        return self._ids[self.pad_token]

    def token_to_id(self, token: str) -> Optional[int]:
        return self._ids.get(token)

    def id_to_token(self, index: int) -> str:
        return self.tokens[index]


class WordPieceTokenizer(TokenTable):
    """BERT/ERNIE WordPiece on HF ``tokenizers``: BertNormalizer (clean text, CJK characters
    split one by one, optional lowercase + accent stripping) + BertPreTokenizer + WordPiece.

    ``vocab``: a vocab.txt path or the token list in id order. Special tokens written in the
    text (``[MASK]`` from augmentation) map to their ids. ``paddlenlp=True``: PaddleNLP's
    ``ErnieTokenizer`` conventions, which ERNIE checkpoints from PaddleNLP were trained with:
    symbols (emoji, ``²``, ``©``...) are split off as their own tokens, and pairs are truncated
    one token at a time from the longer side (the second on ties).
    """

    kind = "wordpiece"

    def __init__(self, vocab: Union[str, Path, Sequence[str]], lowercase: bool = True,
                 strip_accents: Optional[bool] = None, unk_token: str = "[UNK]",
                 cls_token: str = "[CLS]", sep_token: str = "[SEP]", pad_token: str = "[PAD]",
                 mask_token: str = "[MASK]", paddlenlp: bool = False):
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

        source = str(vocab) if isinstance(vocab, (str, Path)) else "vocabulary"
        is_file = isinstance(vocab, (str, Path))
        self.tokens: List[str] = read_vocab_file(vocab) if is_file else list(vocab)
        ids: Dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            ids.setdefault(token, i)
        for name, token in (("unk_token", unk_token), ("cls_token", cls_token),
                            ("sep_token", sep_token), ("pad_token", pad_token)):
            if token not in ids:
                raise TokenizerError(f"{source}: {name} {token!r} is not in the vocabulary")
        self.lowercase, self.strip_accents = lowercase, strip_accents
        self.unk_token, self.cls_token = unk_token, cls_token
        self.sep_token, self.pad_token = sep_token, pad_token
        self.mask_token = mask_token if mask_token in ids else unk_token
        self._ids = ids
        tok = Tokenizer(models.WordPiece(vocab=ids, unk_token=unk_token,
                                         max_input_chars_per_word=100))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
            lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.paddlenlp = bool(paddlenlp)
        if self.paddlenlp:
            tok.pre_tokenizer = pre_tokenizers.Sequence([
                pre_tokenizers.BertPreTokenizer(),
                pre_tokenizers.Split(Regex(PADDLENLP_SYMBOLS), behavior="isolated")])
        cls_id, sep_id = ids[cls_token], ids[sep_token]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls_token} $A {sep_token}",
            pair=f"{cls_token} $A {sep_token} $B:1 {sep_token}:1",
            special_tokens=[(cls_token, cls_id), (sep_token, sep_id)])
        specials = (pad_token, unk_token, cls_token, sep_token, mask_token)
        tok.add_special_tokens([t for t in specials if t in ids])
        self._tok = tok

    def tokenize(self, text: str) -> List[str]:
        """WordPiece tokens of one text, without [CLS]/[SEP]."""
        self._tok.no_truncation()
        self._tok.no_padding()
        return self._tok.encode(text, add_special_tokens=False).tokens

    def encode(self, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
               max_len: int = 128) -> Dict[str, np.ndarray]:
        """Batch-encode: ``input_ids``, ``token_type_ids``, ``attention_mask``, (B, T) int64."""
        _check_batch(texts_a, texts_b, max_len, 2 if texts_b is None else 3)
        if not len(texts_a):
            return pad_rows([], self.pad_id)
        if self.paddlenlp and texts_b is not None:
            return self._encode_pairs_paddlenlp(texts_a, texts_b, max_len)
        self._tok.enable_truncation(max_len, strategy="longest_first")
        self._tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        inputs = list(texts_a) if texts_b is None else list(zip(texts_a, texts_b))
        encodings = self._tok.encode_batch(inputs)
        return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}

    def _encode_pairs_paddlenlp(self, texts_a, texts_b, max_len: int) -> Dict[str, np.ndarray]:
        """[CLS] a [SEP] b [SEP] with PaddleNLP's pair truncation."""
        self._tok.no_truncation()
        self._tok.no_padding()
        side_a = self._tok.encode_batch(list(texts_a), add_special_tokens=False)
        side_b = self._tok.encode_batch(list(texts_b), add_special_tokens=False)
        cls, sep = self._ids[self.cls_token], self._ids[self.sep_token]
        rows, types = [], []
        for a, b in zip(side_a, side_b):
            na, nb = cut_pair(len(a.ids), len(b.ids), max_len - 3)
            first, second = [cls] + a.ids[:na] + [sep], b.ids[:nb] + [sep]
            rows.append(first + second)
            types.append([0] * len(first) + [1] * len(second))
        return pad_rows(rows, self.pad_id, types)

    def hf_tokenizer(self, max_len: int):
        """This tokenizer as a standalone ``tokenizers.Tokenizer`` (what ``tokenizer.json``
        holds): same ids, truncation to ``max_len`` longest-first, padding to the longest row.
        In ``paddlenlp`` mode a pair that needs truncating may keep its odd token on the other
        side than ``encode`` does (``tokenizers`` has no PaddleNLP rule)."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_str(self._tok.to_str())
        tok.enable_truncation(max_len, strategy="longest_first")
        tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        return tok

    def save(self, directory) -> None:
        """Write ``vocab.txt`` (one token per line) and ``encoder.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "vocab.txt") as tmp:
            tmp.write_text("".join(t + "\n" for t in self.tokens), encoding="utf-8")
        write_json(directory / ENCODER_FILE, {
            "type": self.kind, "vocab": "vocab.txt", "lowercase": self.lowercase,
            "strip_accents": self.strip_accents, "unk_token": self.unk_token,
            "cls_token": self.cls_token, "sep_token": self.sep_token,
            "pad_token": self.pad_token, "mask_token": self.mask_token,
            "paddlenlp": self.paddlenlp})

    @classmethod
    def load(cls, directory) -> "WordPieceTokenizer":
        meta = _read_meta(directory, cls.kind)
        return cls(Path(directory) / meta.pop("vocab", "vocab.txt"), **meta)


class SentencePieceTokenizer:
    """SentencePiece (unigram/BPE) via the ``sentencepiece`` library, XLM-R pair format.

    ``model``: a serialized ``ModelProto`` (bytes) or a ``.model`` file. ``prefix`` is put in
    front of every text (e5 wants ``"query: "``). Texts are stripped first. Token type ids
    are all 0 (RoBERTa-style models have no segment embedding worth using).
    """

    kind = "sentencepiece"
    MODEL_FILE = "sentencepiece.model"

    def __init__(self, model: Union[bytes, str, Path], prefix: str = "", bos_token: str = "<s>",
                 eos_token: str = "</s>", pad_token: str = "<pad>", unk_token: str = "<unk>",
                 mask_token: str = "<mask>"):
        import sentencepiece as spm

        if isinstance(model, (str, Path)):
            try:
                model = Path(model).read_bytes()
            except FileNotFoundError:
                raise TokenizerError(f"{model}: sentencepiece model missing") from None
        self._proto = bytes(model)
        self._sp = spm.SentencePieceProcessor(model_proto=self._proto)
        self.prefix = prefix
        self.bos_token, self.eos_token = bos_token, eos_token
        self.pad_token, self.unk_token = pad_token, unk_token
        for name, token in (("bos_token", bos_token), ("eos_token", eos_token),
                            ("pad_token", pad_token), ("unk_token", unk_token)):
            if self.token_to_id(token) is None:
                raise TokenizerError(f"sentencepiece model: {name} {token!r} is not a piece")
        self.mask_token = mask_token if self.token_to_id(mask_token) is not None else unk_token
        self.bos_id, self.eos_id = self.token_to_id(bos_token), self.token_to_id(eos_token)

    @classmethod
    def from_pieces(cls, pieces: Sequence[str], scores: Sequence[float], unk_id: int,
                    control: Iterable[str] = ("<s>", "<pad>", "</s>"),
                    user_defined: Iterable[str] = ("<mask>",),
                    normalizer_map: Optional[Sequence[Tuple[str, str]]] = None,
                    **options) -> "SentencePieceTokenizer":
        """Build a UNIGRAM model from pieces in id order and their scores.

        ``control`` pieces never come out of text; ``user_defined`` ones (the mask token) are
        matched literally in the text; ``normalizer_map`` (source -> replacement strings) is
        compiled into the model's ``precompiled_charsmap`` (NFKC-style rules of e5/XLM-R).
        """
        import sentencepiece as spm
        from sentencepiece import sentencepiece_model_pb2 as pb

        if len(pieces) != len(scores):
            raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
        control, user_defined = set(control), set(user_defined)
        proto = pb.ModelProto()
        proto.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
        proto.trainer_spec.vocab_size = len(pieces)
        proto.trainer_spec.unk_id = unk_id
        kinds = pb.ModelProto.SentencePiece
        for i, (piece, score) in enumerate(zip(pieces, scores)):
            entry = proto.pieces.add()
            entry.piece, entry.score = piece, float(score)
            if i == unk_id:
                entry.type = kinds.UNKNOWN
            elif piece in control:
                entry.type = kinds.CONTROL
            elif piece in user_defined:
                entry.type = kinds.USER_DEFINED
        for special, field in (("<s>", "bos_id"), ("</s>", "eos_id"), ("<pad>", "pad_id")):
            present = special in control and special in pieces
            setattr(proto.trainer_spec, field, pieces.index(special) if present else -1)
        if normalizer_map:
            spm.set_min_log_level(1)  # the rule compiler logs INFO lines to stderr otherwise
            normalizer = spm.SentencePieceNormalizer(norm_map=sorted(normalizer_map))
            proto.normalizer_spec.ParseFromString(normalizer.serialized_normalizer_spec())
            proto.normalizer_spec.name = "precompiled"
        else:
            proto.normalizer_spec.name = "identity"
        proto.normalizer_spec.add_dummy_prefix = True
        proto.normalizer_spec.remove_extra_whitespaces = True
        proto.normalizer_spec.escape_whitespaces = True
        return cls(proto.SerializeToString(), **options)

    # -- contract -------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @property
    def pad_id(self) -> int:
        return self.token_to_id(self.pad_token)

    def token_to_id(self, token: str) -> Optional[int]:
        index = self._sp.piece_to_id(token)
        unknown = index == self._sp.unk_id() and token != self._sp.id_to_piece(index)
        return None if unknown else index

    def id_to_token(self, index: int) -> str:
        return self._sp.id_to_piece(index)

    def tokenize(self, text: str) -> List[str]:
        """Pieces of one stripped text (no prefix, no <s>/</s>)."""
        return self._sp.encode(text.strip(), out_type=str)

    def _ids(self, texts: Sequence[str]) -> List[List[int]]:
        return self._sp.encode([self.prefix + t.strip() for t in texts], out_type=int)

    def encode(self, texts_a: Sequence[str], texts_b: Optional[Sequence[str]] = None,
               max_len: int = 128) -> Dict[str, np.ndarray]:
        """Batch-encode: ``input_ids``, ``token_type_ids``, ``attention_mask``, (B, T) int64."""
        _check_batch(texts_a, texts_b, max_len, 2 if texts_b is None else 4)
        bos, eos = self.bos_id, self.eos_id
        rows: List[List[int]] = []
        if texts_b is None:
            for a in self._ids(texts_a):
                rows.append([bos] + a[:max_len - 2] + [eos])
        else:
            for a, b in zip(self._ids(texts_a), self._ids(texts_b)):
                na, nb = longest_first(len(a), len(b), max_len - 4)
                rows.append([bos] + a[:na] + [eos, eos] + b[:nb] + [eos])
        return pad_rows(rows, self.pad_id)

    def hf_tokenizer(self, max_len: int):
        """This tokenizer as a ``tokenizers.Tokenizer`` (``tokenizer.json``): a Unigram model with
        the same pieces and scores, the model's own precompiled normalizer, the prefix, XLM-R's
        pair template, longest-first truncation to ``max_len`` and padding to the longest row.

        It gives the same ids as ``encode`` on ordinary text (tests compare them); known
        difference: a run of characters missing from the vocabulary may become one ``<unk>``
        here and one per character (or the reverse) in ``sentencepiece``.
        """
        from sentencepiece import sentencepiece_model_pb2 as pb
        from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers
        from tokenizers import processors

        proto = pb.ModelProto()
        proto.ParseFromString(self._proto)
        kinds = pb.ModelProto.SentencePiece
        tok = Tokenizer(models.Unigram([(p.piece, p.score) for p in proto.pieces],
                                       unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
        steps = [normalizers.Strip()]
        if self.prefix:
            steps.append(normalizers.Prepend(self.prefix))
        if proto.normalizer_spec.precompiled_charsmap:
            steps.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
        steps += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip()]
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
        bos, eos = self.bos_token, self.eos_token
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
            special_tokens=[(bos, self.bos_id), (eos, self.eos_id)])
        literal = [p.piece for p in proto.pieces if p.type == kinds.USER_DEFINED]
        tok.add_special_tokens([AddedToken(t, normalized=False) for t in literal])
        tok.enable_truncation(max_len, strategy="longest_first")
        tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        return tok

    def save(self, directory) -> None:
        """Write ``sentencepiece.model`` and ``encoder.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / self.MODEL_FILE) as tmp:
            tmp.write_bytes(self._proto)
        write_json(directory / ENCODER_FILE, {
            "type": self.kind, "model": self.MODEL_FILE, "prefix": self.prefix,
            "bos_token": self.bos_token, "eos_token": self.eos_token, "pad_token": self.pad_token,
            "unk_token": self.unk_token, "mask_token": self.mask_token})

    @classmethod
    def load(cls, directory) -> "SentencePieceTokenizer":
        meta = _read_meta(directory, cls.kind)
        return cls(Path(directory) / meta.pop("model", cls.MODEL_FILE), **meta)


def _read_meta(directory, kind: str) -> dict:
    path = Path(directory) / ENCODER_FILE
    meta = read_json(path, TokenizerError)
    if not isinstance(meta, dict) or meta.pop("type", None) != kind:
        raise TokenizerError(f"{path}: not a {kind} encoder")
    return meta


def write_wordpiece_vocab(texts: Iterable[str], path, max_words: int = 5000,
                          lowercase: bool = True) -> int:
    """Write a small vocab.txt for a randomly initialised teacher: the five BERT specials,
    every character seen (alone and as ``##`` continuation) and the ``max_words`` most frequent
    words (split like ``WordPieceTokenizer`` splits them). Returns the vocabulary size.

    >>> write_wordpiece_vocab(["a good film", "很好看"], "vocab.txt")  # doctest: +SKIP
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                            strip_accents=None, lowercase=lowercase)
    splitter = pre_tokenizers.BertPreTokenizer()
    words: Counter = Counter()
    chars: Counter = Counter()
    for text in texts:
        for word, _ in splitter.pre_tokenize_str(normalizer.normalize_str(text)):
            words[word] += 1
            chars.update(word)
    by_count = lambda counter: sorted(counter, key=lambda k: (-counter[k], k))  # noqa: E731
    char_list = by_count(chars)
    tokens = list(WORDPIECE_SPECIALS) + char_list + ["##" + c for c in char_list]
    seen = set(tokens)
    tokens += [w for w in by_count(words) if len(w) > 1 and w not in seen][:max_words]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return len(tokens)

