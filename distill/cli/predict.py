"""`distill predict`: the command line of ``distill.serve.predict``."""
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from distill.serve import predict as library
from distill.serve.predict import (UserError, load_package)

DESCRIPTION = library.__doc__


def add_arguments(parser) -> None:
    parser.add_argument("package", help="NAME.tar.gz written by 'distill export --package'")
    parser.add_argument("texts", nargs="*", help="texts to classify")
    parser.add_argument("--input", help="file of texts: .txt one per line, or .tsv/.jsonl/.csv")
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads (default: usable cores)")

def _read_input(path) -> Tuple[List[str], Optional[List[str]]]:
    path = Path(path)
    if path.suffix.lower() in (".tsv", ".jsonl", ".csv"):
        from distill.data.examples import read_examples

        rows = read_examples(path, require_label=False)
        texts_b = [r.text_b for r in rows]
        has_b = any(t is not None for t in texts_b)
        return [r.text_a for r in rows], (texts_b if has_b else None)
    if not path.is_file():
        raise UserError(f"{path}: input file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line.strip()], None

def main(args) -> int:
    texts, texts_b = list(args.texts), None
    if args.input:
        if texts:
            raise UserError("give texts on the command line or --input FILE, not both")
        texts, texts_b = _read_input(args.input)
        if not texts:
            raise UserError(f"{args.input}: no texts in the file")
    if not texts:
        raise UserError("no input texts: give texts after the package or --input FILE")
    predictor = load_package(args.package, threads=args.threads)
    results = predictor.predict(texts, texts_b, batch_size=args.batch_size)
    for text, result in zip(texts, results):
        if args.json:
            print(json.dumps({"text": text, **result}, ensure_ascii=False))
        else:
            probs = " ".join(f"{l}={p:.4f}" for l, p in result["probabilities"].items())
            print(f"{result['label']}\t{probs}\t{text}")
    sys.stdout.flush()
    return 0
