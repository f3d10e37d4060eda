"""The token-task (NER) bodies of ``distill augment``, ``finetune``, ``label`` and ``train``.

Not a command: each command module adds ``add_task_arguments`` and calls ``wants_tokens`` to
choose, then one of ``augment_tokens`` / ``finetune_tokens`` / ``label_tokens`` /
``train_tokens``. Token files are
CoNLL (``.txt``/``.conll``/``.bio``/``.bioes``/``.bmes``: ``token TAG`` per line, a blank line
between sentences) or JSONL (``{"tokens": [...], "tags": [...]}``); see docs/token_tasks.md.
"""
import json
from pathlib import Path
from typing import List, Optional

from distill.core.errors import UserError

TOKEN_HELP = """
Token tasks (NER): --task token, or automatically for CoNLL files (.txt/.conll/.bio/.bioes/.bmes:
'token TAG' per line, a blank line between sentences) and JSONL files of
{"tokens": [...], "tags": [...]}. Tag schemes bio/bioes/bmes (--scheme auto detects it from the
training file); a tag that breaks the scheme is an error naming file and line unless
--on-invalid repair. See docs/token_tasks.md.
"""


def add_task_arguments(parser, storage: bool = False, unit: bool = False) -> None:
    """``--task`` and the token options (``--scheme``, ``--on-invalid``; ``--unit`` for students,
    ``--storage`` and ``--top-k`` for soft labels)."""
    group = parser.add_argument_group("token tasks (NER)")
    group.add_argument("--task", choices=("auto", "sentence", "token"), default="auto",
                       help="auto: token for CoNLL/token-JSONL files or a token teacher, "
                            "else sentence")
    group.add_argument("--scheme", choices=("auto", "bio", "bioes", "bmes"), default="auto",
                       help="tag scheme of token files (auto: from the training/input file)")
    group.add_argument("--on-invalid", choices=("raise", "repair"), default="raise",
                       help="a tag that breaks the scheme (I- after O): error naming file and "
                            "line, or repair the sentence")
    if unit:
        group.add_argument("--unit", choices=("char", "word"), default="char",
                           help="tokens are characters (joined without spaces) or words: "
                                "how the package splits text")
    if storage:
        group.add_argument("--storage", choices=("float32", "float16", "topk"),
                           default="float16", help="how the per-token logits are stored")
        group.add_argument("--top-k", type=int, default=3, help="k of --storage topk")


def _teacher_task(teacher: Optional[str]) -> Optional[str]:
    """``token`` when ``teacher`` is a saved token teacher folder (``teacher.json``)."""
    meta = Path(teacher) / "teacher.json" if teacher else None
    if meta is None or not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError):
        return None  # the loader names the problem


def wants_tokens(args, data: Optional[str], teacher: Optional[str] = None) -> bool:
    """Whether the command runs the token path: ``--task``, else token data (``is_token_file``)
    or a token teacher folder (with sentence files, the token reader then says what it expects)."""
    from distill.data.tokens import is_token_file

    if args.task != "auto":
        return args.task == "token"
    return bool(data and is_token_file(data)) or _teacher_task(teacher) == "token"


def _token_teacher(source: str, tags=None, seed: int = 0):
    """A saved token teacher (``tags=None``), or any teacher with a fresh token head for ``tags``."""
    from teachers.token_model import load_token_teacher

    if tags is None and _teacher_task(source) != "token":
        raise UserError(f"--teacher {source}: not a token teacher (its teacher.json has no "
                        "\"task\": \"token\"); fine-tune one first: distill finetune --task token "
                        "--teacher ... --train TRAIN.txt --out DIR")
    return load_token_teacher(source, tags, seed)


def _load_task(args, train: str, dev: Optional[str], test: Optional[str]):
    from distill.data.tokens import load_token_task

    return load_token_task(train, dev, test, scheme=args.scheme,
                           unit=getattr(args, "unit", "char"), on_invalid=args.on_invalid)


def augment_tokens(args, mask_token: str) -> int:
    """``distill augment`` on a token file: tag-aligned samples (``distill.data.augment.tokens``:
    mask ``O`` tokens, same-type entity replacement, n-gram windows that never cut an entity)."""
    from distill.data.augment.tokens import TokenAugmentConfig, augment_token_examples
    from distill.data.tokens import read_token_examples, write_token_examples

    rows = read_token_examples(args.input, scheme=args.scheme, on_invalid=args.on_invalid)
    ngram = {} if args.ngram_range is None else {"ngram_range": tuple(args.ngram_range)}
    config = TokenAugmentConfig(n_iter=args.n_iter, p_mask=args.p_mask, p_entity=args.p_entity,
                                p_ng=args.p_ng, seed=args.seed, mask_token=mask_token, **ngram)
    out = augment_token_examples(list(rows), config, rows.scheme)
    write_token_examples(args.output, (list(rows) if args.keep_original else []) + out)
    print(f"distill augment: {len(out)} tag-aligned samples from {len(rows)} sentences "
          f"({rows.scheme}); wrote {args.output}")
    return 0


def finetune_tokens(args) -> int:
    """``distill finetune --task token``: a token head on the teacher, hard CE, best dev F1."""
    from distill.train.trainer import TrainConfig
    from teachers.finetune import limit_examples
    from teachers.token_model import finetune_token_teacher

    if args.data or not args.train:
        raise UserError("token tasks: give --train FILE [--dev FILE --test FILE] (a built-in token "
                        "data set runs through a recipe: data.builtin: msra_ner)")
    if args.save_format == "paddlenlp":
        raise UserError("--save-format paddlenlp: token teachers are saved in this tool's "
                        "format only")
    task = _load_task(args, args.train, args.dev, args.test)
    task.train = list(limit_examples(task.train, args.limit_train, args.seed))
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size,
                         micro_batch_size=args.micro_batch_size, lr=args.lr,
                         warmup_ratio=args.warmup_ratio, patience=args.patience,
                         device=args.device, amp=not args.no_amp, seed=args.seed,
                         progress=not args.no_progress, eval_metric="f1")
    teacher = _token_teacher(args.teacher, task.tags, args.seed)
    result = finetune_token_teacher(teacher, task, config, args.out, max_len=args.max_len,
                                    train_layers=args.train_layers)
    dev, test = result["dev"] or {}, result["test"] or {}
    print(f"fine-tuned token teacher {teacher.name} on {task.name} ({task.scheme}, "
          f"{len(task.tags)} tags): dev entity F1 {dev.get('f1', 'n/a')}, test entity F1 "
          f"{test.get('f1', 'n/a')}, {result['train_time_s']} s; teacher saved to "
          f"{result['teacher_dir']}")
    return 0


def label_tokens(args) -> int:
    """``distill label`` on token data: per sentence, the teacher's (L, C) logits of each token."""
    import time

    from distill.data.tokens import read_token_examples
    from teachers.token_soft_labels import MERGED, token_soft_labels

    unsupported = [flag for flag, given in (("--merge", args.merge), ("--shard", args.shard),
                                            ("--sessions", args.sessions != 1),
                                            ("--engine", args.engine not in ("auto", "dygraph")))
                   if given]
    if unsupported:
        raise UserError(f"{', '.join(unsupported)}: token soft labels run on Paddle dygraph in one "
                        "process (no shards, no ONNX engines yet)")
    if not args.teacher or not args.input:
        raise UserError("--teacher and --input are required")
    examples = read_token_examples(args.input, scheme=args.scheme, require_tags=False,
                                   on_invalid=args.on_invalid)
    if not examples:
        raise UserError(f"{args.input}: no sentences to label")
    teacher = _token_teacher(args.teacher)
    start = time.perf_counter()
    logits = token_soft_labels(teacher, list(examples), args.out, batch_size=args.batch_size,
                               max_len=args.max_len, storage=args.storage, top_k=args.top_k,
                               chunk_batches=args.chunk_batches, progress=not args.no_progress,
                               device=args.device)
    tokens = sum(len(x) for x in logits)
    print(f"{len(logits)} sentences, {tokens} tokens x {len(teacher.labels)} tags soft labels "
          f"({args.storage}) in {time.perf_counter() - start:.1f} s -> {Path(args.out) / MERGED}")
    return 0


def load_soft_label_dirs(paths: List[str]):
    """The per-sentence soft labels of ``distill label`` folders (or their ``soft_labels.npz``),
    stacked in order."""
    from teachers.token_soft_labels import MERGED, load_token_soft_labels

    out = []
    for path in paths:
        folder = Path(path).parent if Path(path).name == MERGED else Path(path)
        out.extend(load_token_soft_labels(folder))
    return out


def train_tokens(args, config: dict) -> int:
    """``distill train`` on token files: a tagger, plain or distilled from token soft labels."""
    from distill.data.tokens import read_token_examples
    from students.train import LossConfig
    from students.train_tokens import default_token_train_config, train_token_student

    if args.vocab != "words":
        raise UserError("--vocab teacher is for sentence students; the lstm/cnn taggers read "
                        "a vocabulary of the tokens, the tiny tagger the teacher's tokenizer")
    task = _load_task(args, args.train, args.dev, args.test)
    augmented = (list(read_token_examples(args.augmented, task.scheme, require_tags=False,
                                          on_invalid=args.on_invalid, types=task.types))
                 if args.augmented else None)
    logits = load_soft_label_dirs(args.soft_labels) if args.soft_labels else None
    teacher = _token_teacher(args.teacher) if args.teacher else None
    train_config = default_token_train_config(
        args.kind, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        weight_decay=args.weight_decay, optimizer=args.optimizer, patience=args.patience,
        seed=args.seed, device=args.device)
    result = train_token_student(
        args.kind, config, task, args.out, train_config, teacher_logits=logits,
        augmented=augmented, teacher=teacher,
        loss=LossConfig(terms=args.loss, temperature=args.temperature),
        vocab={"min_freq": args.min_freq, "max_size": args.max_vocab}, max_len=args.max_len,
        progress=not args.no_progress)
    line = {k: result[k] for k in ("kind", "mode", "loss", "parameters")}
    for split in ("dev", "test"):
        if split in result:
            line[split] = {k: result[split].get(k) for k in ("f1", "precision", "recall")}
    print(json.dumps(line))
    print(f"tagger saved to {result['student_dir']}")
    return 0
