"""`distill train`: the command line of ``students.train``."""
import argparse
import json
from pathlib import Path
from typing import Any, Dict, Optional

from distill.cli.tokens import TOKEN_HELP, add_task_arguments, train_tokens, wants_tokens
from distill.core.errors import UserError
from distill.core.io import owned_output
from students import train as library
from students.registry import STUDENTS
from students.train import (LossConfig, VocabConfig, default_train_config, load_soft_labels,
                            train_student)

DESCRIPTION = library.__doc__ + TOKEN_HELP + """
    distill train --kind lstm --train ner/train.txt --dev ner/dev.txt --test ner/test.txt \\
        --augmented ner/aug.jsonl --soft-labels labels/train labels/aug --out runs/lstm_kd
trains a tagger (kinds lstm, cnn, tiny; tiny needs --teacher, a token teacher) on the soft
labels of 'distill label' folders (training sentences, then augmented ones), default loss
soft_ce:0.5,hard_ce:0.5 (plain: hard_ce:1); --config '{"crf": true}' adds a linear-chain CRF
(loss crf instead of hard_ce, Viterbi decoding); dev/test report entity precision/recall/F1.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=STUDENTS.names())
    parser.add_argument("--train", required=True, help="training file (.tsv/.jsonl/.csv)")
    parser.add_argument("--dev", help="dev file: picks the best epoch")
    parser.add_argument("--test", help="test file: reported")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--augmented", help="augmented rows (distill augment output)")
    parser.add_argument("--soft-labels", nargs="+", metavar="NPY_OR_DIR",
                        help="teacher logits (.npy files or 'distill label' dirs), stacked in "
                             "order: the training rows, then the augmented rows")
    parser.add_argument("--teacher", help="teacher dir: tokenizer/initial layers for tiny; "
                                          "runs online for hidden_mse/attention losses")
    parser.add_argument("--loss", help="NAME:WEIGHT,... (default soft_ce:1 with soft labels, "
                                       "else hard_ce:1); names: soft_ce kl logit_mse hard_ce "
                                       "hidden_mse attention crf (CRF taggers)")
    parser.add_argument("--temperature", type=float, default=1.0, help="T of soft_ce/kl")
    parser.add_argument("--config", help="student config as JSON (or a .json file), "
                                         "e.g. '{\"filter_sizes\": [2, 3, 4]}'")
    parser.add_argument("--vocab", choices=("words", "teacher"), default="words",
                        help="word students: word vocabulary or the teacher's tokenizer")
    parser.add_argument("--min-freq", type=int, default=1)
    parser.add_argument("--max-vocab", type=int, default=50000)
    parser.add_argument("--max-len", type=int, default=128)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--optimizer", choices=("adam", "adamw", "sgd"))
    parser.add_argument("--patience", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-amp", action="store_true",
                        help="no mixed precision on GPU (AMP is never used on CPU)")
    parser.add_argument("--no-progress", action="store_true")
    add_task_arguments(parser, unit=True)


def main(args) -> int:
    """Run with ``--out`` owned by the tool and locked (one process at a time)."""
    with owned_output(args.out, "--out folder"):
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    from distill.data.examples import load_task, read_examples

    if wants_tokens(args, args.train, args.teacher):
        return train_tokens(args, parse_json_arg(args.config, "--config"))
    task = load_task(args.train, args.dev, args.test)
    augmented = read_examples(args.augmented, require_label=False) if args.augmented else None
    logits = load_soft_labels(args.soft_labels) if args.soft_labels else None
    teacher = None
    if args.teacher:
        from teachers.checkpoint import load_teacher

        teacher = load_teacher(args.teacher)
    train_config = default_train_config(
        args.kind, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        weight_decay=args.weight_decay, optimizer=args.optimizer, patience=args.patience,
        seed=args.seed, device=args.device, amp=False if args.no_amp else None)
    result = train_student(
        args.kind, parse_json_arg(args.config, "--config"), task, args.out, train_config,
        teacher_logits=logits, augmented=augmented, teacher=teacher,
        loss=LossConfig(terms=args.loss, temperature=args.temperature),
        vocab=VocabConfig(source=args.vocab, min_freq=args.min_freq, max_size=args.max_vocab),
        max_len=args.max_len, progress=not args.no_progress)
    line = {k: result[k] for k in ("kind", "mode", "loss", "parameters")}
    for split in ("dev", "test"):
        if split in result:
            line[split] = result[split]
    print(json.dumps(line))
    print(f"student saved to {result['student_dir']}")
    return 0


def parse_json_arg(text: Optional[str], flag: str) -> Dict[str, Any]:
    if not text:
        return {}
    source = Path(text)
    raw = source.read_text(encoding="utf-8") if source.suffix == ".json" and source.exists() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as err:
        raise UserError(f"{flag}: not valid JSON ({err.msg}); e.g. {flag} '{{\"emb_dim\": 64}}'") from None
    if not isinstance(value, dict):
        raise UserError(f"{flag}: expected a JSON object, got {raw!r}")
    return value
