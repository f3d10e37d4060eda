"""``STUDENTS``: student kind -> model class, and ``build_student`` (imports Paddle).

    from students.registry import STUDENTS, build_student
    model = build_student("cnn", {"filter_sizes": [2, 3, 4]}, vocab_size=vocab.vocab_size, num_labels=2)

``TAGGERS`` holds the token-task students under the same kind names (``lstm``, ``cnn``,
``tiny``); ``build_student(..., task="token")`` picks from it.

``students.STUDENTS`` / ``students.build_student`` reach the same objects lazily, so
``import students`` stays Paddle-free.
"""
from typing import Any, Dict, Optional

from distill.core.registry import Registry
from students.bow import BOWStudent
from students.cnn import CNNStudent
from students.ngram import NgramStudent
from students.rnn import BiGRUStudent, BiLSTMStudent
from students.taggers import BiLSTMTagger, CNNTagger, TinyTagger
from students.tiny import TinyStudent

STUDENTS: Registry = Registry("student kind")
STUDENTS.add("bow", BOWStudent)
STUDENTS.add("cnn", CNNStudent)
STUDENTS.add("lstm", BiLSTMStudent)
STUDENTS.add("gru", BiGRUStudent)
STUDENTS.add("tiny", TinyStudent)
STUDENTS.add("ngram", NgramStudent)

TAGGERS: Registry = Registry("token student kind")
TAGGERS.add("lstm", BiLSTMTagger)
TAGGERS.add("cnn", CNNTagger)
TAGGERS.add("tiny", TinyTagger)
TASKS = {"sentence": STUDENTS, "token": TAGGERS}


def student_registry(task: str = "sentence") -> Registry:
    """The kinds of students for a task type (``sentence`` or ``token``)."""
    if task not in TASKS:
        raise ValueError(f"unknown task type {task!r}; use one of {', '.join(TASKS)}")
    return TASKS[task]


def build_student(kind: str, config: Optional[Dict[str, Any]], vocab_size: int, num_labels: int,
                  pad_id: int = 0, task: str = "sentence"):
    """A freshly initialised student of ``kind`` (``config`` = its config dataclass as a dict)."""
    cls = student_registry(task).get(kind)
    typed = cls.config_class.from_dict(config, where=f"student '{kind}' config")
    return cls(typed, vocab_size=vocab_size, num_labels=num_labels, pad_id=pad_id)
