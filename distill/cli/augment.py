"""`distill augment`: the command line of ``distill.data.augment.augmenter``."""
import argparse
import sys
from typing import Tuple

from distill.cli.tokens import TOKEN_HELP, add_task_arguments, augment_tokens, wants_tokens
from distill.data.augment import augmenter as library
from distill.data.augment.augmenter import (AugmentConfig, LANGS, TAGGERS, augment_file, mask_token_for)

DESCRIPTION = library.__doc__ + TOKEN_HELP + """
    distill augment ner/train.txt ner/aug.jsonl --n-iter 4 --encoder runs/t/teacher
writes tag-aligned samples of a token file: O tokens masked (--p-mask), entities replaced by
training entities of the same type (--p-entity), n-gram windows that never cut an entity
(--p-ng, --ngram-range, default 4,20); --p-pos, --lang, --tagger are sentence-only.
"""


def add_arguments(parser) -> None:
    d = AugmentConfig()
    parser.add_argument("input", metavar="IN", help="training file (.tsv/.jsonl/.csv)")
    parser.add_argument("output", metavar="OUT", help="augmented file (.tsv/.jsonl/.csv)")
    parser.add_argument("--n-iter", type=int, default=d.n_iter, help="samples per original (20)")
    parser.add_argument("--p-mask", type=float, default=d.p_mask, help="word mask rate (0.1)")
    parser.add_argument("--p-pos", type=float, default=d.p_pos,
                        help="same-POS word replacement rate (0.1)")
    parser.add_argument("--p-ng", type=float, default=d.p_ng, help="n-gram sampling rate (0.25)")
    parser.add_argument("--p-entity", type=float, default=0.3,
                        help="token files: same-type entity replacement rate (0.3)")
    parser.add_argument("--ngram-range", type=parse_ngram_range, default=None, metavar="LO,HI",
                        help="n of the n-gram rule (default 1,5 English, 2,10 Chinese)")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--lang", choices=("auto",) + LANGS, default=d.lang,
                        help="text language (auto: from the share of CJK characters)")
    parser.add_argument("--workers", type=int, default=d.workers,
                        help="processes (the output is the same for any number)")
    parser.add_argument("--keep-original", action="store_true",
                        help="also write the originals, with their labels")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mask-token", default=d.mask_token,
                       help="token for masked words (default [UNK])")
    group.add_argument("--encoder", metavar="DIR",
                       help="take the mask token from this saved teacher/encoder directory")
    parser.add_argument("--tagger", default=d.tagger, choices=["auto"] + TAGGERS.names(),
                        help="POS tagger (auto: jieba for zh, spacy for en, else rules)")
    parser.add_argument("--spacy-model", default=d.spacy_model, metavar="PACKAGE",
                        help=f"spaCy pipeline for English POS tags (default {d.spacy_model})")
    parser.add_argument("--format", choices=("tsv", "jsonl", "csv"),
                        help="input format (default: from the suffix)")
    add_task_arguments(parser)


def main(args) -> int:
    mask_token = args.mask_token
    if args.encoder:
        from distill.text.encoders import load_encoder

        mask_token = mask_token_for(load_encoder(args.encoder))
    if wants_tokens(args, args.input):
        return augment_tokens(args, mask_token)
    config = AugmentConfig(n_iter=args.n_iter, p_mask=args.p_mask, p_pos=args.p_pos,
                           p_ng=args.p_ng, ngram_range=args.ngram_range, seed=args.seed,
                           lang=args.lang, mask_token=mask_token, tagger=args.tagger,
                           spacy_model=args.spacy_model,
                           workers=args.workers, keep_original=args.keep_original)
    stats = augment_file(args.input, args.output, config, fmt=args.format,
                         progress=sys.stderr.isatty())
    print(f"distill augment: {stats.summary()}; wrote {args.output}")
    return 0


def parse_ngram_range(text: str) -> Tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 1,5, got {text!r}") from None
    return lo, hi
