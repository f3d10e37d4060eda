"""Small students: BOW, CNN, BiLSTM/BiGRU, tiny transformer, and their vocabularies.

Importing this package does not import Paddle (tokenizers/vocabularies serve the Paddle-free
predictor); importing distill first binds zlib and sets the thread count (see distill/__init__).
"""
import distill.core  # noqa: F401  (runs distill/__init__: zlib before any Paddle import)


def __getattr__(name):  # PEP 562: the registry (and Paddle) load on first use only
    if name in ("STUDENTS", "build_student"):
        from students import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'students' has no attribute {name!r}")
