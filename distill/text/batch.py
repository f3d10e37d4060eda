"""What every encoder does to a batch once its rows are id lists: pair truncation and padding."""
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from distill.core.errors import UserError


def check_word_batch(texts_a: Sequence[str], texts_b: Optional[Sequence[str]],
                     max_len: int) -> None:
    """A word encoder's batch: as many ``texts_b`` as ``texts_a``; room for a word (a pair: a word
    each and the separator)."""
    if texts_b is not None and len(texts_b) != len(texts_a):
        raise ValueError(f"texts_a has {len(texts_a)} rows but texts_b has {len(texts_b)}")
    least = 1 if texts_b is None else 3
    if max_len < least:
        raise UserError(f"max_len must be at least {least}, got {max_len}")


def cut_pair(len_a: int, len_b: int, budget: int, first_on_tie: bool = False) -> Tuple[int, int]:
    """Lengths kept when a pair is cut into ``budget`` tokens one token at a time from the longer
    side; on a tie from the second side (PaddleNLP's rule) or, ``first_on_tie``, the first."""
    excess = len_a + len_b - budget
    if excess <= 0:
        return len_a, len_b
    first = min(abs(len_a - len_b), excess)  # from the longer side until both are equal
    if len_a > len_b:
        len_a -= first
    else:
        len_b -= first
    rest = excess - first                    # then alternately
    cut_a, cut_b = ((rest + 1) // 2, rest // 2) if first_on_tie else (rest // 2, (rest + 1) // 2)
    return max(len_a - cut_a, 0), max(len_b - cut_b, 0)


def pad_rows(rows: Sequence[List[int]], pad_id: int,
             types: Optional[Sequence[List[int]]] = None) -> Dict[str, np.ndarray]:
    """Right-pad id lists to the longest row: the contract's three (B, T) int64 arrays
    (``token_type_ids`` all 0 when ``types`` is None)."""
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))  # (B,)
    width = int(lengths.max()) if len(rows) else 0
    mask = np.arange(width) < lengths[:, None]  # (B, T) True on real tokens, row-major
    total = int(lengths.sum())
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    input_ids[mask] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=total)
    token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
    if types is not None:
        token_type_ids[mask] = np.fromiter(itertools.chain.from_iterable(types), dtype=np.int64,
                                           count=total)
    return {"input_ids": input_ids, "token_type_ids": token_type_ids,
            "attention_mask": mask.astype(np.int64)}
