"""ERNIE-family teachers: model, tokenizers, checkpoint loaders, fine-tuning, soft labels.

Importing this package does not import Paddle (tokenizers/vocabularies serve the Paddle-free
predictor); importing distill first binds zlib and sets the thread count (see distill/__init__).
"""
import distill.core  # noqa: F401  (runs distill/__init__: zlib before any Paddle import)
