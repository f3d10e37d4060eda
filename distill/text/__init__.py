"""Text encoders: WordPiece/SentencePiece tokenizers, word vocabularies, word splitting, and the
loader that opens any saved encoder. No Paddle: the edge runtime uses this layer."""
