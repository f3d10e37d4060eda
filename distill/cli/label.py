"""`distill label`: the command line of ``teachers.soft_labels``."""
import argparse
import time
from pathlib import Path

from distill.cli.tokens import TOKEN_HELP, add_task_arguments, label_tokens, wants_tokens
from teachers import soft_labels as library
from teachers.engines import ENGINES
from teachers.soft_labels import (MERGED, UserError, merge_shards, parse_shard, soft_labels)

DESCRIPTION = library.__doc__ + TOKEN_HELP + """
    distill label --teacher runs/ner/teacher/teacher --input ner/train.txt --out labels/train
writes labels/train/soft_labels.npz (+ .json): per sentence, the teacher's logits of each token's
first sub-token, float16 by default (--storage); --shard/--merge/--engine onnx are sentence-only.
"""


def add_arguments(parser) -> None:
    parser.add_argument("--teacher", help="fine-tuned teacher dir (distill finetune's teacher/)")
    parser.add_argument("--input", help="texts to label (.tsv/.jsonl/.csv; labels optional), or "
                                        "token sentences (.txt/.conll CoNLL or token JSONL; "
                                        "tags optional)")
    parser.add_argument("--out", required=True, help="output folder (re-run to resume)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-len", type=int, default=None,
                        help="tokens per text (default: the teacher's max_len)")
    parser.add_argument("--shard", default=None, metavar="i/n",
                        help="label only rows i, i+n, ... (default: from paddle.distributed)")
    parser.add_argument("--merge", action="store_true",
                        help="only assemble soft_labels.npy from finished shards")
    parser.add_argument("--no-bucket", action="store_true",
                        help="batch rows in file order instead of sorted by length")
    parser.add_argument("--chunk-batches", type=int, default=16,
                        help="batches per chunk file (the resume granularity)")
    parser.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N")
    parser.add_argument("--engine", default="auto",
                        choices=("auto", *ENGINES.names()),
                        help="auto = onnx on CPU; on GPU the fastest of dygraph (AMP) and Paddle "
                             "Inference (TensorRT when present) that passes the check against FP32 "
                             "dygraph, timings in engine.json; onnx-int8 is compared with onnx FP32 "
                             "on 256 rows (engine.json)")
    parser.add_argument("--no-amp", action="store_true",
                        help="no FP16 mixed precision on GPU (AMP is never used on CPU)")
    parser.add_argument("--amp-level", default="O1", choices=("O1", "O2"),
                        help="dygraph AMP level on GPU (auto also measures O2 and keeps it only "
                             "if it passes the check)")
    parser.add_argument("--tensorrt", default=None, action=argparse.BooleanOptionalAction,
                        help="paddle-inference on GPU: TensorRT on/off (default: when Paddle "
                             "was built with it)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores)")
    parser.add_argument("--sessions", type=int, default=1,
                        help="ONNX engines: split each batch over this many sessions "
                             "(threads/sessions threads each)")
    parser.add_argument("--engine-cache", default=None,
                        help="exported engines (default: next to a --teacher dir, TEACHER.engines)")
    parser.add_argument("--no-progress", action="store_true")
    add_task_arguments(parser, storage=True)


def main(args) -> int:
    if wants_tokens(args, args.input, args.teacher):
        return label_tokens(args)
    shard = parse_shard(args.shard) if args.shard else None
    if args.merge:
        logits = merge_shards(args.out, shard[1] if shard else None)
        print(f"merged {logits.shape[0]} x {logits.shape[1]} soft labels into "
              f"{Path(args.out) / MERGED}")
        return 0
    if not args.teacher or not args.input:
        raise UserError("--teacher and --input are required (unless --merge)")
    from distill.data.examples import read_examples
    from teachers.checkpoint import load_teacher

    examples = read_examples(args.input, require_label=False)
    teacher = load_teacher(args.teacher)
    engine_cache = args.engine_cache
    if engine_cache is None and Path(args.teacher).is_dir():
        engine_cache = str(Path(args.teacher).resolve()) + ".engines"
    start = time.perf_counter()
    logits = soft_labels(teacher, examples, args.out, batch_size=args.batch_size,
                         max_len=args.max_len, shard=shard, progress=not args.no_progress,
                         bucket=not args.no_bucket, chunk_batches=args.chunk_batches,
                         device=args.device, engine=args.engine, threads=args.threads,
                         engine_cache=engine_cache, sessions=args.sessions,
                         amp=not args.no_amp, amp_level=args.amp_level,
                         tensorrt=args.tensorrt)
    seconds = time.perf_counter() - start
    where = Path(args.out) / MERGED
    print(f"{logits.shape[0]} x {logits.shape[1]} soft labels in {seconds:.1f} s"
          + (f" -> {where}" if where.exists() else f" (shard {args.shard}; merge when all done)"))
    return 0
