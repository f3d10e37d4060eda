"""Word embeddings that start from the teacher's: ``vocab: {embeddings: teacher}`` in a recipe.

A word student's embedding table is random at the start and learns every word from the task's
rows alone. The teacher has seen far more text: each word of the student's vocabulary is cut
into the teacher's sub-word pieces, the pieces' rows of the teacher's input embedding table are
averaged, the (words, H) matrix is centred and reduced to the student's ``emb_dim`` by PCA, and
scaled to the spread of the random table it replaces. Words the teacher's tokenizer gives no
piece for, the special tokens and (n-gram student) the hashed n-gram buckets keep their random
rows; the padding row stays zero.

    vectors, found = teacher_word_vectors(encoder_words(encoder), teacher, dim=128)
    init_word_embeddings(model, encoder, teacher)    # in place; returns the rows set
"""
from typing import List, Sequence, Tuple

import numpy as np

from distill.text.vocab import SPECIALS


def encoder_words(encoder) -> List[str]:
    """The words behind the first ids of a word encoder (``WordVocab`` or ``NgramVocab``)."""
    words = encoder.words
    return list(words if isinstance(words, list) else words.words)


def teacher_word_vectors(words: Sequence[str], teacher, dim: int) -> Tuple[np.ndarray, np.ndarray]:
    """``(V, dim)`` float32 vectors and a ``(V,)`` bool mask of the words that got one.

    Each word's vector is the mean of its teacher pieces' input embeddings; the found words'
    vectors are centred and projected on their first ``min(dim, H)`` principal components
    (later columns stay 0 when ``dim`` > H).
    """
    from sklearn.decomposition import PCA

    table = teacher.model.ernie.embeddings.word_embeddings.weight.numpy()  # (P, H)
    tokenizer = teacher.tokenizer
    means = np.zeros((len(words), table.shape[1]), dtype=np.float32)  # (V, H)
    found = np.zeros(len(words), dtype=bool)                          # (V,)
    for row, word in enumerate(words):
        if word in SPECIALS:
            continue
        ids = [tokenizer.token_to_id(p) for p in tokenizer.tokenize(word)]
        ids = [i for i in ids if i is not None]
        if ids:
            means[row] = table[ids].mean(axis=0)
            found[row] = True
    vectors = np.zeros((len(words), dim), dtype=np.float32)  # (V, dim)
    components = min(dim, table.shape[1], int(found.sum()))
    if components:
        reduced = PCA(n_components=components, svd_solver="full").fit_transform(means[found])
        vectors[found, :components] = reduced  # (V_found, components)
    return vectors, found


def init_word_embeddings(model, encoder, teacher) -> int:
    """Overwrite ``model``'s word-embedding rows with the teacher's vectors; returns how many rows.

    The vectors are scaled so their standard deviation equals the random table's, so the
    learning rate that suits the random start suits this one.
    """
    weight = model.embeddings.word.weight            # (V_model, E)
    table = weight.numpy()
    words = encoder_words(encoder)
    vectors, found = teacher_word_vectors(words, teacher, table.shape[1])
    if not found.any():
        return 0
    spread = float(vectors[found].std()) or 1.0
    rows = np.flatnonzero(found)
    table[rows] = vectors[rows] * (float(table.std()) / spread)
    weight.set_value(table.astype(table.dtype))
    return int(rows.size)
