"""Token tasks (named-entity recognition): read and write tagged token files; no Paddle here.

Formats, chosen by suffix or ``fmt=``:

* **CoNLL** (``.txt``, ``.conll``, ``.bio``, ``.bioes``, ``.bmes``) — one token per line, its
  tag in the last whitespace-separated field (``中 B-LOC``; CoNLL-2003's ``EU NNP B-NP B-ORG``
  works too: first field token, last field tag), a blank line between sentences, ``-DOCSTART-``
  lines skipped, CRLF accepted. Every line of a file must have the same number of fields.
  Unlabelled files (``require_tags=False``) may hold one field per line.
* **JSONL** (``.jsonl``) — one sentence per line: ``{"tokens": ["中", "国"], "tags": ["B-LOC", "E-LOC"]}``.

Tag schemes (``distill.text.tags``): ``bio``, ``bioes``, ``bmes``, or ``auto`` (the smallest
scheme covering the training file's prefixes). A tag that breaks the scheme (``I-PER`` after
``O``; a BIOES entity without its ``E``) raises a ``DataError`` naming the file and the line of
that token, unless ``on_invalid="repair"``: then the sentence is repaired (conlleval reading:
the stray tag starts an entity) and the count is kept on ``TokenExamples.repaired``.

Errors name the file, the 1-based line and the field (``token``/``tags``), as the sentence readers
of ``distill.data.examples`` do. Example::

    from distill.data.tokens import load_token_task
    task = load_token_task("ner/train.txt", "ner/dev.txt", "ner/test.txt", scheme="auto")
    task.tags         # ['O', 'B-LOC', 'E-LOC', 'M-LOC', 'S-LOC', ...]: the label vocabulary
    task.train[0].tokens, task.train[0].tags
"""
import json
import logging
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from distill.core.errors import DataError
from distill.core.io import PathLike, atomic_path, json_object_line
from distill.text import tags as tagging

log = logging.getLogger("distill.data.tokens")

TOKEN_FORMATS = {".txt": "conll", ".conll": "conll", ".bio": "conll", ".bioes": "conll",
                 ".bmes": "conll", ".jsonl": "jsonl"}
UNITS = ("char", "word")  # how a sentence's tokens join into text (and split again at serving)
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class TokenExample:
    """One sentence: its tokens and (when labelled) one tag per token."""

    tokens: Tuple[str, ...]
    tags: Optional[Tuple[str, ...]] = None
    source_id: Optional[int] = None  # augmented rows: index of the original in train
    line: int = field(default=0, compare=False)  # 1-based line of the first token, for errors


class TokenExamples(list):
    """A list of ``TokenExample`` that also says how many sentences ``on_invalid="repair"`` changed."""

    def __init__(self, rows=(), repaired: int = 0, scheme: Optional[str] = None):
        super().__init__(rows)
        self.repaired = repaired
        self.scheme = scheme  # the scheme the file was read (and validated) with


@dataclass
class TokenTask:
    name: str
    train: List[TokenExample]
    dev: List[TokenExample]
    test: List[TokenExample]
    tags: List[str]  # label vocabulary: tagging.tag_vocabulary(types, scheme)
    scheme: str  # bio | bioes | bmes
    unit: str = "char"  # char: tokens join without spaces (Chinese); word: joined by spaces

    @property
    def labels(self) -> List[str]:
        """The tag vocabulary (the classification tasks' name for it)."""
        return self.tags

    @property
    def num_labels(self) -> int:
        return len(self.tags)

    @property
    def types(self) -> List[str]:
        return sorted({t.split("-", 1)[1] for t in self.tags if t != tagging.OUTSIDE})


def detect_token_format(path: PathLike, fmt: Optional[str] = None) -> str:
    if fmt is not None:
        if fmt not in set(TOKEN_FORMATS.values()):
            raise DataError(path, None, None, f"unknown token format '{fmt}'; use conll or jsonl")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in TOKEN_FORMATS:
        raise DataError(path, None, None,
                        f"unknown token file suffix '{suffix or '(none)'}'; name the file "
                        f"{', '.join(TOKEN_FORMATS)} or pass fmt=")
    return TOKEN_FORMATS[suffix]


def is_token_file(path: PathLike) -> bool:
    """Whether ``path`` holds token data: a CoNLL suffix (``.txt``, ``.conll``, ``.bio``, ...),
    or ``.jsonl`` whose first record has a ``tokens`` field. The commands use it to pick the
    token path (``--task auto``); an unreadable file is not token data (its reader says why)."""
    suffix = Path(path).suffix.lower()
    if TOKEN_FORMATS.get(suffix) == "conll":
        return True
    if suffix != ".jsonl":
        return False
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            first = next((line for line in handle if line.strip()), "")
        record = json.loads(first)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "tokens" in record


# ----------------------------------------------------------------------------------- reading

def _lines(path: Path) -> Iterator[Tuple[int, str]]:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield number, raw.decode("utf-8").rstrip("\n").rstrip("\r")
            except UnicodeDecodeError as err:
                raise DataError(path, number, None,
                                f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                                f"{err.start + 1}); re-save the file as UTF-8") from None


def _conll_sentences(path: Path, require_tags: bool
                     ) -> Iterator[Tuple[List[str], Optional[List[str]], List[int]]]:
    """(tokens, tags or None, line numbers) per blank-line separated block."""
    width: Optional[int] = None
    width_line = 0
    tokens: List[str] = []
    tags: List[str] = []
    lines: List[int] = []
    for number, text in _lines(path):
        fields = text.split()
        if not fields or fields[0] == DOCSTART:
            if tokens:
                yield tokens, (tags if width and width > 1 else None), lines
            tokens, tags, lines = [], [], []
            continue
        if width is None:
            width, width_line = len(fields), number
            if width < 2 and require_tags:
                raise DataError(path, number, "tags",
                                f"expected 'token TAG' (token, whitespace, tag), found {text!r}")
        elif len(fields) != width:
            raise DataError(path, number, None,
                            f"ragged line: {len(fields)} whitespace-separated fields, but line "
                            f"{width_line} has {width} (expected 'token ... TAG' on every line)")
        tokens.append(fields[0])
        if width > 1:
            tags.append(fields[-1])
        lines.append(number)
    if tokens:
        yield tokens, (tags if width and width > 1 else None), lines


def _jsonl_sentences(path: Path, require_tags: bool
                     ) -> Iterator[Tuple[List[str], Optional[List[str]], List[int]]]:
    for number, text in _lines(path):
        if not text.strip():
            continue
        obj = json_object_line(path, number, text)
        names = ("tokens", "tags") if require_tags else ("tokens",)
        for name in names:
            if name not in obj:
                raise DataError(path, number, name, "missing field")
        for name in ("tokens", "tags"):
            value = obj.get(name)
            if name == "tags" and value is None:
                continue
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise DataError(path, number, name, f"expected a list of strings, found {value!r}")
        tokens, tags = obj["tokens"], obj.get("tags")
        if not tokens:
            raise DataError(path, number, "tokens", "empty sentence")
        bad = [i for i, token in enumerate(tokens) if not token.strip() or len(token.split()) > 1]
        if bad:
            raise DataError(path, number, "tokens",
                            f"token {bad[0]} ({tokens[bad[0]]!r}) is empty or holds whitespace")
        if tags is not None and len(tags) != len(tokens):
            raise DataError(path, number, "tags",
                            f"{len(tags)} tags for {len(tokens)} tokens (one tag per token)")
        yield tokens, tags, [number] * len(tokens)


def read_token_examples(path: PathLike, scheme: str = "auto", fmt: Optional[str] = None,
                        require_tags: bool = True, on_invalid: str = "raise",
                        types: Optional[Sequence[str]] = None) -> TokenExamples:
    """Read a CoNLL/JSONL token file (see the module docstring).

    ``scheme``: ``bio``/``bioes``/``bmes``, or ``auto`` (detected from this file's tags).
    ``types``: when given, an entity type outside it is an error (dev/test against train).
    ``on_invalid``: ``raise`` (DataError at the first tag that breaks the scheme) or ``repair``.
    """
    if on_invalid not in ("raise", "repair"):
        raise ValueError(f"on_invalid must be 'raise' or 'repair', not {on_invalid!r}")
    path = Path(path)
    fmt = detect_token_format(path, fmt)
    if not path.is_file():
        raise DataError(path, None, None,
                        "file not found" if not path.exists() else "not a regular file")
    reader = _conll_sentences if fmt == "conll" else _jsonl_sentences
    raw = list(reader(path, require_tags))
    if scheme == "auto":
        all_tags = [t for _, tags, _ in raw if tags for t in tags]
        for _, tags, lines in raw:
            for tag, line in zip(tags or (), lines):
                problem = _malformed(tag)
                if problem:
                    raise DataError(path, line, "tags", problem)
        try:
            scheme = tagging.detect_scheme(all_tags)
        except ValueError as err:
            raise DataError(path, None, "tags", str(err)) from None
    try:
        scheme = tagging.check_scheme(scheme)
    except ValueError as err:
        raise DataError(path, None, "tags", str(err)) from None
    known = None if types is None else set(types)
    out, repaired = [], 0
    for tokens, tags, lines in raw:
        if tags is None:
            if require_tags:
                raise DataError(path, lines[0], "tags", "the sentence has no tags")
            out.append(TokenExample(tuple(tokens), None, None, lines[0]))
            continue
        for tag, line in zip(tags, lines):
            problem = tagging.tag_problem(tag, scheme)
            if problem:
                raise DataError(path, line, "tags", problem)
            if known is not None and tag != tagging.OUTSIDE and tag[2:] not in known:
                raise DataError(path, line, "tags",
                                f"entity type '{tag[2:]}' does not occur in the training data "
                                f"(known types: {', '.join(sorted(known)) or 'none'})")
        violation = tagging.first_violation(tags, scheme)
        if violation is not None:
            if on_invalid == "raise":
                position, problem = violation
                raise DataError(path, lines[position], "tags",
                                f"{problem}; fix the file or read it with "
                                "on_invalid='repair' (recipe: data.on_invalid: repair)")
            tags = tagging.repair(tags, scheme)
            repaired += 1
        out.append(TokenExample(tuple(tokens), tuple(tags), None, lines[0]))
    if repaired:
        log.warning("%s: repaired %d sentence(s) that broke the %s scheme", path, repaired, scheme)
    return TokenExamples(out, repaired=repaired, scheme=scheme)


def _malformed(tag: str) -> Optional[str]:
    """Why ``tag`` fits no scheme at all (bad spelling or unknown prefix), or None."""
    try:
        prefix, _ = tagging.split_tag(tag)
    except ValueError as err:
        return str(err)
    known = sorted({p for prefixes in tagging.SCHEMES.values() for p in prefixes})
    if prefix != tagging.OUTSIDE and prefix not in known:
        return f"tag {tag!r} has prefix {prefix!r}; known prefixes: {', '.join(known)}, and O"
    return None


# ----------------------------------------------------------------------------------- writing

def write_token_examples(path: PathLike, examples: Sequence[TokenExample],
                         fmt: Optional[str] = None) -> None:
    """Write sentences atomically as CoNLL (``token TAG`` lines) or JSONL; reads back equal."""
    path = Path(path)
    fmt = detect_token_format(path, fmt)
    parts: List[str] = []
    for ex in examples:
        if fmt == "jsonl":
            obj: Dict = {"tokens": list(ex.tokens)}
            if ex.tags is not None:
                obj["tags"] = list(ex.tags)
            if ex.source_id is not None:
                obj["source_id"] = ex.source_id
            parts.append(json.dumps(obj, ensure_ascii=False) + "\n")
        else:
            rows = (ex.tokens if ex.tags is None
                    else [f"{tok} {tag}" for tok, tag in zip(ex.tokens, ex.tags)])
            parts.append("".join(row + "\n" for row in rows) + "\n")
    with atomic_path(path) as tmp:
        tmp.write_text("".join(parts), encoding="utf-8")


# ----------------------------------------------------------------------------------- tasks

def split_off(examples: Sequence[TokenExample], fraction: float, seed: int
              ) -> Tuple[List[TokenExample], List[TokenExample]]:
    """(rest, held-out): ``round(n * fraction)`` sentences drawn by ``random.Random(seed)``;
    both parts keep the file order (the same split on every machine)."""
    n = len(examples)
    held = set(random.Random(seed).sample(range(n), round(n * fraction)))
    rest = [ex for i, ex in enumerate(examples) if i not in held]
    return rest, [ex for i, ex in enumerate(examples) if i in held]


def types_of(examples: Sequence[TokenExample]) -> List[str]:
    return sorted({tag[2:] for ex in examples for tag in (ex.tags or ()) if tag != tagging.OUTSIDE})


def load_token_task(train: PathLike, dev: Optional[PathLike], test: Optional[PathLike],
                    scheme: str = "auto", fmt: Optional[str] = None, unit: str = "char",
                    name: Optional[str] = None, on_invalid: str = "raise",
                    dev_fraction: Optional[float] = None, split_seed: int = 2019) -> TokenTask:
    """Read train/dev/test token files; the scheme and entity types come from train.

    ``dev=None`` with ``dev_fraction`` splits the dev set off train (seeded by ``split_seed``).
    """
    if unit not in UNITS:
        raise DataError(train, None, None, f"unknown token unit '{unit}'; use char or word")
    train_rows = read_token_examples(train, scheme, fmt, on_invalid=on_invalid)
    if not train_rows:
        raise DataError(train, None, None, "no sentences in the training file")
    scheme = train_rows.scheme
    types = types_of(train_rows)
    if not types:
        raise DataError(train, None, "tags", "the training file has no entity (every tag is O)")

    def split(path):
        if path is None:
            return []
        return list(read_token_examples(path, scheme, fmt, on_invalid=on_invalid, types=types))

    train_list, dev_rows = list(train_rows), split(dev)
    if dev is None and dev_fraction:
        train_list, dev_rows = split_off(train_list, dev_fraction, split_seed)
    return TokenTask(name=name or Path(train).resolve().parent.name, train=train_list,
                     dev=dev_rows, test=split(test), tags=tagging.tag_vocabulary(types, scheme),
                     scheme=scheme, unit=unit)


def tag_ids(examples: Sequence[TokenExample], tags: Sequence[str]) -> List[np.ndarray]:
    """Per sentence, (L,) int64 tag ids; -1 for every token of an unlabelled sentence."""
    index = {tag: i for i, tag in enumerate(tags)}
    out = []
    for ex in examples:
        if ex.tags is None:
            out.append(np.full(len(ex.tokens), -1, dtype=np.int64))
            continue
        try:
            out.append(np.array([index[t] for t in ex.tags], dtype=np.int64))
        except KeyError as err:
            raise DataError("examples", ex.line or None, "tags",
                            f"tag {err.args[0]!r} is not one of: {', '.join(tags)}") from None
    return out


def unlabelled(examples: Sequence[TokenExample]) -> List[TokenExample]:
    """The sentences without their tags (prediction input)."""
    return [replace(ex, tags=None) for ex in examples]
