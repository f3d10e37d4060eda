"""Small students: BOW, CNN, BiLSTM/BiGRU, tiny transformer, and their vocabularies.

Importing this package does not import Paddle (tokenizers/vocabularies serve the Paddle-free
predictor); importing distill first binds zlib and sets the thread count (see distill/__init__).
"""
import distill  # noqa: F401
