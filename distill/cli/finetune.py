"""`distill finetune`: the command line of ``teachers.finetune``."""

from distill.cli.tokens import TOKEN_HELP, add_task_arguments, finetune_tokens, wants_tokens
from distill.core.io import owned_output
from teachers import finetune as library
from teachers.finetune import (UserError, finetune, limit_examples)

DESCRIPTION = library.__doc__ + TOKEN_HELP + """
    distill finetune --teacher e5-small --train ner/train.txt --dev ner/dev.txt --out runs/ner
puts a token head on the teacher and keeps the epoch of best dev entity F1 (OUT/teacher).
"""


def add_arguments(parser) -> None:
    parser.add_argument("--teacher", required=True,
                        help="built-in teacher name (minilm-l6, e5-small) or a checkpoint dir")
    data = parser.add_argument_group("data (a built-in data set or three files)")
    data.add_argument("--data", help="built-in data set: movies_en, reviews_zh")
    data.add_argument("--train", help="training file (.tsv/.jsonl/.csv)")
    data.add_argument("--dev", help="dev file, picks the best epoch")
    data.add_argument("--test", help="test file, scored once at the end")
    data.add_argument("--limit-train", type=int, default=None, metavar="N",
                      help="train on a seeded random subset of N examples")
    parser.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    parser.add_argument("--save-format", choices=["auto", "canonical", "paddlenlp"],
                        default="auto",
                        help="OUT/teacher: paddlenlp = also a PaddleNLP model folder "
                             "(AutoModelForSequenceClassification.from_pretrained), or an error "
                             "before training when the teacher cannot be one; auto = when "
                             "possible (default); canonical = this tool's files only")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=int, default=2)
    train.add_argument("--lr", type=float, default=5e-5)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--micro-batch-size", type=int, default=None,
                       help="accumulate gradients over batch-size/micro-batch-size slices")
    train.add_argument("--max-len", type=int, default=128,
                       help="tokens per text, specials included")
    train.add_argument("--warmup-ratio", type=float, default=0.1)
    train.add_argument("--patience", type=int, default=None, help="early stopping (epochs)")
    train.add_argument("--train-layers", type=int, default=None, metavar="N",
                       help="freeze embeddings and all but the top N encoder layers")
    train.add_argument("--device", default="auto", help="auto, cpu, gpu or gpu:N")
    train.add_argument("--no-amp", action="store_true", help="no mixed precision on GPU")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--no-progress", action="store_true")
    add_task_arguments(parser)


def main(args) -> int:
    """Run with ``--out`` owned by the tool and locked (one process at a time)."""
    with owned_output(args.out, "--out folder"):
        return _main(args)


def _main(args) -> int:
    from distill.data.examples import load_task

    if wants_tokens(args, args.train):
        return finetune_tokens(args)
    from distill.train.trainer import TrainConfig
    from teachers.checkpoint import load_teacher

    if args.data:
        if args.train or args.dev or args.test:
            raise UserError("give either --data or --train/--dev/--test, not both")
        from distill.data.fetch import load_builtin_task

        task = load_builtin_task(args.data)
    elif args.train:
        task = load_task(args.train, args.dev, args.test)
    else:
        raise UserError("no data: give --data NAME or --train FILE [--dev FILE --test FILE]")
    task.train = limit_examples(task.train, args.limit_train, args.seed)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                         micro_batch_size=args.micro_batch_size, lr=args.lr,
                         warmup_ratio=args.warmup_ratio, patience=args.patience,
                         device=args.device, amp=not args.no_amp, seed=args.seed,
                         progress=not args.no_progress)
    teacher = load_teacher(args.teacher, num_labels=len(task.labels))
    if args.save_format == "paddlenlp":  # fail before hours of training, not after
        from teachers.checkpoint import paddlenlp_problems

        problems = paddlenlp_problems(teacher)
        if problems:
            raise UserError(f"--save-format paddlenlp: teacher {teacher.name} cannot be saved "
                            f"in PaddleNLP format: " + "; ".join(problems))
    result = finetune(teacher, task, config, args.out, max_len=args.max_len,
                      train_layers=args.train_layers, save_format=args.save_format)
    dev, test = result["dev"] or {}, result["test"] or {}
    print(f"fine-tuned {teacher.name} on {task.name}: dev accuracy {dev.get('accuracy', 'n/a')}, "
          f"test accuracy {test.get('accuracy', 'n/a')}, {result['train_time_s']} s training "
          f"({result['train_examples_per_s']} examples/s); teacher saved to "
          f"{result['teacher_dir']}")
    return 0
