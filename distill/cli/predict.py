"""`distill predict`: classify texts (or text pairs) with an edge package. No Paddle.

    distill predict reviews-bow.tar.gz "great phone, long battery" "screen broke in a week"
    distill predict qqp-tiny.tar.gz "how old are you?" "hi" --text-b "what is your age?" --text-b "hello"
    distill predict reviews-bow.tar.gz --input texts.txt --json        # one text per line
    distill predict qqp-tiny.tar.gz --input pairs.jsonl --json         # {"text_a", "text_b"} rows

Input files: ``.txt`` has one text per line (blank lines skipped); ``.jsonl`` has one JSON object
per line with ``text`` or ``text_a`` (and ``text_b`` for pair models); ``.tsv``/``.csv`` are read
like training files (``text_a``/``text_b`` columns). ``--json`` prints one JSON object per line:
``{"text", ["text_b",] "label", "score", "probabilities"}``; a token-classification (NER)
package prints ``{"text", "entities": [{"start", "end", "type", "text", "score"}]}``.
"""
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from distill.core.errors import DataError, UserError
from distill.serve.predict import load_package

DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    parser.add_argument("package", help="NAME.tar.gz written by 'distill export --package'")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--text-b", action="append", default=None, metavar="TEXT",
                        help="the second text of a pair (pair models): once per text, in order")
    parser.add_argument("--input", help="file of texts: .txt one per line, .jsonl, .tsv or .csv")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads (default: usable cores)")


def read_jsonl(path: Path) -> Tuple[List[str], Optional[List[str]]]:
    """``text``/``text_a`` (+ ``text_b``) of each JSON line; errors name the line and field."""
    texts, texts_b = [], []
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, n, None, f"invalid JSON ({err.msg})") from None
        if not isinstance(row, dict):
            raise DataError(path, n, None, f"expected a JSON object, got {type(row).__name__}")
        field = "text" if "text" in row else "text_a"
        text = row.get(field)
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, n, field, "expected a non-empty string (keys: text or text_a)")
        b = row.get("text_b")
        if b is not None and (not isinstance(b, str) or not b.strip()):
            raise DataError(path, n, "text_b", "expected a non-empty string")
        texts.append(text)
        texts_b.append(b)
    has_b = [b is not None for b in texts_b]
    if any(has_b) and not all(has_b):
        raise DataError(path, has_b.index(False) + 1, "text_b",
                        "some rows have text_b and some do not")
    return texts, (texts_b if any(has_b) else None)


def _lines(path: Path) -> List[str]:
    if not path.is_file():
        raise UserError(f"{path}: input file not found" if not path.exists()
                        else f"{path}: not a file")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise DataError(path, line, None, "not valid UTF-8 text") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read ({err.strerror})") from None


def read_input(path) -> Tuple[List[str], Optional[List[str]]]:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return read_jsonl(path)
    if suffix in (".tsv", ".csv"):
        from distill.data.examples import read_examples

        rows = read_examples(path, require_label=False)
        texts_b = [r.text_b for r in rows]
        return [r.text_a for r in rows], (texts_b if any(t is not None for t in texts_b) else None)
    return [line for line in _lines(path) if line.strip()], None


def main(args) -> int:
    texts, texts_b = list(args.texts), args.text_b
    if args.input:
        if texts or texts_b:
            raise UserError("give texts on the command line or --input FILE, not both")
        texts, texts_b = read_input(args.input)
        if not texts:
            raise UserError(f"{args.input}: no texts in the file")
    if not texts:
        raise UserError("no input texts: give texts after the package or --input FILE")
    if texts_b is not None and len(texts_b) != len(texts):
        raise UserError(f"{len(texts)} text(s) but {len(texts_b)} --text-b; give one --text-b "
                        f"per text")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    predictor = load_package(args.package, threads=args.threads)
    results = predictor.predict(texts, texts_b, batch_size=args.batch_size)
    for i, (text, result) in enumerate(zip(texts, results)):
        if "entities" in result:  # a token-classification (NER) package
            if args.json:
                print(json.dumps(result, ensure_ascii=False))
            else:
                spans = " ".join(f"{e['type']}:{e['text']}[{e['start']}:{e['end']}]"
                                 for e in result["entities"])
                print(f"{spans or '-'}\t{text}")
            continue
        if args.json:
            row = {"text": text, **({"text_b": texts_b[i]} if texts_b else {}), **result}
            print(json.dumps(row, ensure_ascii=False))
        else:
            probs = " ".join(f"{l}={p:.4f}" for l, p in result["probabilities"].items())
            shown = text if not texts_b else f"{text}\t{texts_b[i]}"
            print(f"{result['label']}\t{probs}\t{shown}")
    sys.stdout.flush()
    return 0
