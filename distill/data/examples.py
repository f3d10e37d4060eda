"""Read and write labelled text files (TSV, JSONL, CSV) into ``Example`` rows; no Paddle here.

Formats, chosen by suffix (``.tsv``, ``.jsonl``, ``.csv``) or ``fmt=``:

* **TSV** — a header line, then one row per line, fields separated by tabs, read with the
  ``csv`` module and ``QUOTE_NONE`` (as in the ERNIE repo): quotes are ordinary characters, so
  raw text needs no escaping, but a text can contain neither a tab nor a line break.
  ``write_examples`` refuses such texts (write ``.jsonl`` or ``.csv`` instead).
* **JSONL** — one JSON object per line (``{"text_a": ..., "label": ...}``); any text works.
* **CSV** — a header line, standard ``csv`` quoting; quoted fields may hold commas, quotes,
  tabs and line breaks.

Columns: ``text_a`` (required), ``text_b`` (optional, sentence pairs), ``label`` (required
unless ``require_label=False``) and ``source_id`` (optional int, kept for augmented rows).
``columns={"text_a": "review", "label": "sentiment"}`` maps our names to the file's.

Errors raise ``DataError`` naming the file, the 1-based line and the field. With
``on_error="skip"`` bad rows are dropped instead: the returned list is an ``Examples`` (a
``list`` subclass) whose ``.skipped`` holds the count and ``.problems`` the first messages, and
one warning is logged on the ``distill.data.examples`` logger. Header problems, a missing file and an
unknown format always raise.

Example::

    from distill.data.examples import load_task, label_ids
    task = load_task("data/train.tsv", "data/dev.tsv", "data/test.tsv")
    y = label_ids(task.train, task.labels)          # (N,) int64
"""
import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from distill.core.errors import DataError
from distill.core.io import PathLike, atomic_path, json_object_line

log = logging.getLogger("distill.data.examples")

FORMATS = {".tsv": "tsv", ".jsonl": "jsonl", ".csv": "csv"}
FIELDS = ("text_a", "text_b", "label", "source_id")
MAX_PROBLEMS = 10  # messages kept on Examples.problems in skip mode


@dataclass(frozen=True)
class Example:
    text_a: str
    text_b: Optional[str] = None
    label: Optional[str] = None  # None for unlabelled rows (augmented, prediction input)
    source_id: Optional[int] = None  # augmented rows: index of the original in its file
    line: int = field(default=0, compare=False)  # 1-based line in the source file, for errors


@dataclass
class Task:
    name: str
    train: List[Example]
    dev: List[Example]
    test: List[Example]
    labels: List[str]  # label vocabulary in order of first appearance in train

    @property
    def num_labels(self) -> int:
        return len(self.labels)


class Examples(list):
    """A list of ``Example`` that also reports how many rows ``on_error="skip"`` dropped."""

    def __init__(self, rows: Iterable[Example] = (), skipped: int = 0,
                 problems: Optional[List[str]] = None):
        super().__init__(rows)
        self.skipped = skipped
        self.problems = list(problems or [])


def detect_format(path: PathLike, fmt: Optional[str] = None) -> str:
    """``tsv``/``jsonl``/``csv`` from ``fmt`` or the file suffix; DataError otherwise."""
    if fmt is not None:
        if fmt.lower().lstrip(".") not in FORMATS.values():
            raise DataError(path, None, None,
                            f"unknown format '{fmt}'; use one of: {', '.join(FORMATS.values())}")
        return fmt.lower().lstrip(".")
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(path, None, None,
                        f"unknown format suffix '{suffix or '(none)'}'; name the file "
                        f"{', '.join(FORMATS)} or pass fmt=")
    return FORMATS[suffix]


# ----------------------------------------------------------------------------------- reading

class _Lines:
    """Decode a file line by line (split on ``\\n`` only), tracking the 1-based line number.

    Undecodable lines raise (or, in skip mode, are dropped and counted) with their line number.
    """

    def __init__(self, path: Path, handle, skip: bool, sink: List[DataError]):
        self.path, self.handle, self.skip, self.sink = path, handle, skip, sink
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        for raw in self.handle:
            self.number += 1
            if self.number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # UTF-8 byte-order mark
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                error = DataError(self.path, self.number, None,
                                  f"not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                                  f"{err.start + 1}); re-save the file as UTF-8")
                if not self.skip or self.number == 1:  # no header, no file
                    raise error from None
                self.sink.append(error)


def _resolve_columns(columns: Optional[Dict[str, str]]) -> Dict[str, str]:
    columns = dict(columns or {})
    unknown = sorted(set(columns) - set(FIELDS))
    if unknown:
        raise DataError("columns", None, unknown[0],
                        f"unknown field; columns maps {', '.join(FIELDS)} to file column names")
    return {name: columns.get(name, name) for name in FIELDS}


def _make_example(path, line: int, get, has, cols: Dict[str, str], labels: Optional[Sequence[str]],
                  require_label: bool) -> Example:
    """Build one Example from a row accessor ``get(field) -> value``; raises DataError."""
    def text(name: str) -> str:
        value = get(cols[name])
        if not isinstance(value, str):
            raise DataError(path, line, cols[name],
                            f"expected a string, found {type(value).__name__} {value!r}")
        if not value.strip():
            raise DataError(path, line, cols[name], "empty text")
        return value

    text_a = text("text_a")
    # a blank text_b means "no second text" (files may mix single texts and pairs)
    text_b = None
    if has(cols["text_b"]) and get(cols["text_b"]) != "" and str(get(cols["text_b"])).strip():
        text_b = text("text_b")
    label = None
    if has(cols["label"]):
        value = get(cols["label"])
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise DataError(path, line, cols["label"],
                            f"expected a label string, found {type(value).__name__} {value!r}")
        label = str(value).strip() or None
        if label is not None and labels is not None and label not in labels:
            raise DataError(path, line, cols["label"],
                            f"label '{label}' does not occur in the training data "
                            f"(known labels: {', '.join(labels)})")
    if label is None and require_label:
        raise DataError(path, line, cols["label"], "empty label")
    source_id = None
    if has(cols["source_id"]):
        value = get(cols["source_id"])
        try:
            source_id = None if value in ("", None) else int(value)
        except (TypeError, ValueError):
            raise DataError(path, line, cols["source_id"],
                            f"expected an integer row index, found {value!r}") from None
        if isinstance(value, (bool, float)):
            raise DataError(path, line, cols["source_id"],
                            f"expected an integer row index, found {value!r}")
    return Example(text_a, text_b, label, source_id, line)


def _check_header(path, header: List[str], cols: Dict[str, str], require_label: bool,
                  columns_given: Dict[str, str]) -> None:
    needed = ["text_a"] + (["label"] if require_label else [])
    needed += [name for name in ("text_b", "source_id") if name in columns_given]
    for name in needed:
        if cols[name] not in header:
            hint = "" if name in columns_given else f"; pass columns={{'{name}': ...}}"
            raise DataError(path, 1, cols[name],
                            f"the header has no column '{cols[name]}' (found: "
                            f"{', '.join(header) or 'nothing'}){hint}")
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise DataError(path, 1, duplicates[0], "column appears twice in the header")


def _rows_delimited(path: Path, lines: _Lines, fmt: str) -> Iterator[Tuple[int, object]]:
    """Yield (start line, fields or DataError) for TSV (QUOTE_NONE) and CSV (standard quoting)."""
    if fmt == "tsv":
        for text in lines:
            row_line = lines.number
            text = text.rstrip("\n").rstrip("\r")
            if not text.strip():
                continue
            try:
                yield row_line, next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE))
            except csv.Error as err:
                yield row_line, DataError(path, row_line, None, f"unreadable TSV row: {err}")
        return
    reader = csv.reader(lines)
    while True:
        start = lines.number + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield start, DataError(path, start, None, f"unreadable CSV row: {err}")
            continue
        if row and any(cell.strip() for cell in row):
            yield start, row


def _read_delimited(path, handle, fmt, cols, columns_given, labels, require_label, skip,
                    problems) -> List[Example]:
    lines = _Lines(path, handle, skip, problems)
    out: List[Example] = []
    header: Optional[List[str]] = None
    for line, row in _rows_delimited(path, lines, fmt):
        if header is None:  # header problems always raise: no row can be read without it
            if isinstance(row, DataError):
                raise row
            header = [name.strip() for name in row]
            _check_header(path, header, cols, require_label, columns_given)
            continue
        try:
            if isinstance(row, DataError):
                raise row
            if len(row) != len(header):
                sep = "tab" if fmt == "tsv" else "comma"
                missing = header[len(row)] if len(row) < len(header) else None
                raise DataError(path, line, missing,
                                f"expected {len(header)} {sep}-separated columns "
                                f"({', '.join(header)}), found {len(row)}")
            values = dict(zip(header, row))
            out.append(_make_example(path, line, values.__getitem__, values.__contains__, cols,
                                     labels, require_label))
        except DataError as error:
            if not skip:
                raise
            problems.append(error)
    if header is None:
        raise DataError(path, None, None, "the file is empty (expected a header line)")
    return out


def _read_jsonl(path, handle, cols, columns_given, labels, require_label, skip,
                problems) -> List[Example]:
    lines = _Lines(path, handle, skip, problems)
    out: List[Example] = []
    needed = ["text_a"] + (["label"] if require_label else [])
    needed += [name for name in ("text_b", "source_id") if name in columns_given]
    for text in lines:
        line = lines.number
        if not text.strip():
            continue
        try:
            obj = json_object_line(path, line, text)
            for name in needed:
                if cols[name] not in obj:
                    raise DataError(path, line, cols[name], "missing field")
            out.append(_make_example(path, line, obj.__getitem__,
                                     lambda key, o=obj: o.get(key) is not None, cols, labels,
                                     require_label))
        except DataError as error:
            if not skip:
                raise
            problems.append(error)
    return out


def read_examples(path: PathLike, fmt: Optional[str] = None,
                  columns: Optional[Dict[str, str]] = None,
                  labels: Optional[Sequence[str]] = None, require_label: bool = True,
                  on_error: str = "raise") -> List[Example]:
    """Read a TSV/JSONL/CSV file into ``Example`` rows (see the module docstring).

    ``labels``: when given, a label outside it is an error (dev/test against train's labels).
    ``require_label=False`` reads unlabelled files (augmented rows, prediction input); labels
    are still kept when the column is there. ``on_error="skip"`` drops bad rows; the result's
    ``.skipped`` counts them and a warning is logged.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', not {on_error!r}")
    path = Path(path)
    fmt = detect_format(path, fmt)
    columns_given = dict(columns or {})
    cols = _resolve_columns(columns_given)
    if not path.is_file():
        raise DataError(path, None, None,
                        "file not found" if not path.exists() else "not a regular file")
    skip = on_error == "skip"
    problems: List[DataError] = []
    with open(path, "rb") as handle:
        if fmt == "jsonl":
            rows = _read_jsonl(path, handle, cols, columns_given, labels, require_label, skip,
                               problems)
        else:
            rows = _read_delimited(path, handle, fmt, cols, columns_given, labels,
                                   require_label, skip, problems)
    problems.sort(key=lambda error: error.line or 0)
    result = Examples(rows, skipped=len(problems),
                      problems=[str(p) for p in problems[:MAX_PROBLEMS]])
    if problems:
        log.warning("%s: skipped %d bad row(s); first: %s", path, len(problems), problems[0])
    return result


# ----------------------------------------------------------------------------------- writing

def _present(examples: Sequence[Example]) -> List[str]:
    names = ["text_a"]
    names += [name for name in ("text_b", "label", "source_id")
              if any(getattr(ex, name) is not None for ex in examples)]
    return names


def write_examples(path: PathLike, examples: Iterable[Example], fmt: Optional[str] = None,
                   fields: Optional[Sequence[str]] = None) -> int:
    """Write examples atomically as TSV/JSONL/CSV (by suffix); reads back equal with read_examples.

    Columns: ``fields``, or ``text_a`` plus ``text_b``/``label``/``source_id`` when any example has
    them (then ``examples`` must be a sequence). Rows are streamed, so an iterator of millions of
    augmented rows never sits in memory. Missing values are written empty in TSV/CSV and omitted
    in JSONL; CSV uses RFC 4180 line ends (a field holding \\r or \\n is quoted). TSV refuses a
    text containing a tab or line break (DataError naming the row): use ``.jsonl`` or ``.csv``.
    Returns the number of rows written.
    """
    path = Path(path)
    fmt = detect_format(path, fmt)
    names = list(fields) if fields is not None else _present(examples)
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        if fmt == "jsonl":
            for ex in examples:
                obj = {name: getattr(ex, name) for name in names if getattr(ex, name) is not None}
                handle.write(json.dumps(obj, ensure_ascii=False) + "\n")
                count += 1
            return count
        if fmt == "tsv":
            writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None,
                                lineterminator="\n")
        else:
            writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(names)
        for ex in examples:
            row = ["" if getattr(ex, name) is None else str(getattr(ex, name)) for name in names]
            if fmt == "tsv":
                for name, value in zip(names, row):
                    if any(ch in value for ch in "\t\n\r"):
                        raise DataError(path, count + 2, name,
                                        "a TSV text cannot contain a tab or line break; "
                                        "write .jsonl or .csv instead")
            writer.writerow(row)
            count += 1
    return count


# ----------------------------------------------------------------------------------- tasks

def labels_of(examples: Iterable[Example]) -> List[str]:
    """The label vocabulary in order of first appearance."""
    seen: Dict[str, None] = {}
    for ex in examples:
        if ex.label is not None:
            seen.setdefault(ex.label, None)
    return list(seen)


def load_task(train: PathLike, dev: Optional[PathLike], test: Optional[PathLike],
              fmt: Optional[str] = None, columns: Optional[Dict[str, str]] = None,
              name: Optional[str] = None, on_error: str = "raise") -> Task:
    """Read train/dev/test; labels come from train (first appearance) and bind dev/test.

    ``dev``/``test`` may be None (empty splits). ``name`` defaults to train's folder name.
    """
    train_rows = read_examples(train, fmt, columns, on_error=on_error)
    if not train_rows:
        raise DataError(train, None, None, "no examples in the training file")
    labels = labels_of(train_rows)
    if len(labels) < 2:
        raise DataError(train, None, "label",
                        f"a classification task needs at least 2 labels, found {labels}")

    def split(path):
        if path is None:
            return []
        return read_examples(path, fmt, columns, labels=labels, on_error=on_error)

    return Task(name=name or Path(train).resolve().parent.name, train=train_rows,
                dev=split(dev), test=split(test), labels=labels)


def label_ids(examples: Sequence[Example], labels: Sequence[str]) -> np.ndarray:
    """(N,) int64 index of each example's label in ``labels``; DataError for unknown/missing."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.empty(len(examples), dtype=np.int64)
    for i, ex in enumerate(examples):
        if ex.label not in index:
            problem = ("the example has no label" if ex.label is None else
                       f"label '{ex.label}' is not one of: {', '.join(labels)}")
            raise DataError("examples", ex.line or None, "label", problem)
        out[i] = index[ex.label]
    return out
