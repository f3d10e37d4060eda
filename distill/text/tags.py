"""Tag schemes of token tasks (BIO, BIOES, BMES): parsing, validation, repair and span decoding.

No Paddle and no data-layer imports: the edge predictor (``distill.serve``) decodes spans with
this module, and ``distill.data.tokens`` validates files with it.

Schemes (``O`` = outside an entity in every scheme)::

    bio     B-X begins an entity, I-X continues it
    bioes   B-X begins, I-X continues, E-X ends a multi-token entity, S-X is a one-token entity
    bmes    the same as bioes with M-X for the middle (MSRA's spelling)

A sequence is *valid* when every inside tag continues an open entity of its type and (bioes/bmes)
every entity is closed by E or is a single S. ``repair`` turns any sequence into a valid one with
the conlleval reading: an inside or end tag that continues nothing starts a new entity, an entity
left open ends where the next one starts. ``decode_spans`` reads spans from a sequence (repairing
it first, so a predicted sequence always decodes)::

    >>> decode_spans(["B-PER", "E-PER", "O", "S-LOC"], "bioes")
    [(0, 2, 'PER'), (3, 4, 'LOC')]
    >>> encode_spans(4, [(0, 2, "PER"), (3, 4, "LOC")], "bmes")
    ['B-PER', 'E-PER', 'O', 'S-LOC']
"""
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

OUTSIDE = "O"
SCHEMES: Dict[str, Tuple[str, ...]] = {
    "bio": ("B", "I"),
    "bioes": ("B", "I", "E", "S"),
    "bmes": ("B", "M", "E", "S"),
}
Span = Tuple[int, int, str]  # (first token, one past the last token, entity type)


def check_scheme(scheme: str) -> str:
    """The scheme name in lower case; ValueError naming the choices otherwise."""
    name = str(scheme).lower()
    if name not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; choose one of: {', '.join(SCHEMES)}")
    return name


def split_tag(tag: str) -> Tuple[str, Optional[str]]:
    """``"B-PER"`` -> ``("B", "PER")``; ``"O"`` -> ``("O", None)``; ValueError when malformed.

    ``B_PER`` (underscore) is accepted too; the type is everything after the first separator.
    """
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) >= 3 and tag[1] in "-_" and tag[0].isalpha():
        return tag[0].upper(), tag[2:]
    raise ValueError(f"tag {tag!r} is neither 'O' nor PREFIX-TYPE (e.g. B-PER)")


def tag_problem(tag: str, scheme: str) -> Optional[str]:
    """Why ``tag`` cannot occur in ``scheme``, or None when it can."""
    try:
        prefix, _ = split_tag(tag)
    except ValueError as err:
        return str(err)
    if prefix != OUTSIDE and prefix not in SCHEMES[scheme]:
        return (f"tag {tag!r} has prefix {prefix!r}, which scheme {scheme} does not use "
                f"(prefixes: {', '.join(SCHEMES[scheme])}, and O)")
    return None


def detect_scheme(tags: Iterable[str]) -> str:
    """The smallest scheme whose prefixes cover ``tags``: bio, then bioes, then bmes.

    ValueError when a tag is malformed or no scheme covers the prefixes (e.g. both I and M).
    """
    prefixes = set()
    for tag in tags:
        prefix, _ = split_tag(tag)
        if prefix != OUTSIDE:
            prefixes.add(prefix)
    for name, allowed in SCHEMES.items():
        if prefixes <= set(allowed):
            return name
    known = ", ".join(f"{name} ({'/'.join(allowed)})" for name, allowed in SCHEMES.items())
    raise ValueError(f"the tag prefixes {', '.join(sorted(prefixes))} fit none of the schemes "
                     f"{known}")


def tag_vocabulary(types: Iterable[str], scheme: str) -> List[str]:
    """Every tag of ``scheme`` over ``types``: ``O`` first, then by type (sorted), then prefix."""
    scheme = check_scheme(scheme)
    return [OUTSIDE] + [f"{p}-{t}" for t in sorted(set(types)) for p in SCHEMES[scheme]]


def _read_spans(tags: Sequence[str]) -> List[Span]:
    """Spans by the conlleval reading (any scheme's prefixes; see the module docstring)."""
    spans: List[Span] = []
    start, kind = None, None  # the open entity

    def close(end: int) -> None:
        nonlocal start, kind
        if start is not None:
            spans.append((start, end, kind))
        start, kind = None, None

    for i, tag in enumerate(tags):
        prefix, typ = split_tag(tag)
        if prefix == OUTSIDE:
            close(i)
        elif prefix == "S":
            close(i)
            spans.append((i, i + 1, typ))
        elif prefix == "B":
            close(i)
            start, kind = i, typ
        else:  # I, M or E: continue the open entity of this type, else start one here
            if kind != typ:
                close(i)
                start, kind = i, typ
            if prefix == "E":
                close(i + 1)
    close(len(tags))
    return spans


def encode_spans(length: int, spans: Iterable[Span], scheme: str) -> List[str]:
    """Tags of a ``length``-token sequence holding ``spans`` (sorted, non-overlapping)."""
    scheme = check_scheme(scheme)
    inside = "M" if scheme == "bmes" else "I"
    tags = [OUTSIDE] * length
    last_end = 0
    for start, end, typ in sorted(spans):
        if not 0 <= start < end <= length or start < last_end:
            raise ValueError(f"span ({start}, {end}, {typ}) is empty, out of 0..{length} or "
                             "overlaps the previous one")
        last_end = end
        if scheme == "bio":
            tags[start:end] = [f"B-{typ}"] + [f"I-{typ}"] * (end - start - 1)
        elif end - start == 1:
            tags[start] = f"S-{typ}"
        else:
            tags[start:end] = [f"B-{typ}"] + [f"{inside}-{typ}"] * (end - start - 2) + [f"E-{typ}"]
    return tags


def repair(tags: Sequence[str], scheme: str) -> List[str]:
    """A valid sequence of ``scheme`` with the same entities as the conlleval reading of ``tags``.

    Tags of another scheme's prefixes are read too (so ``repair`` also converts between schemes).
    """
    return encode_spans(len(tags), _read_spans(tags), scheme)


def first_violation(tags: Sequence[str], scheme: str) -> Optional[Tuple[int, str]]:
    """(position, explanation) of the first tag that breaks ``scheme``, or None when valid."""
    scheme = check_scheme(scheme)
    for i, tag in enumerate(tags):
        problem = tag_problem(tag, scheme)
        if problem:
            return i, problem
    fixed = repair(tags, scheme)
    for i, (tag, good) in enumerate(zip(tags, fixed)):
        if tag != good:
            before = f"after {tags[i - 1]!r}" if i else "at the start of the sentence"
            after = f", before {tags[i + 1]!r}" if i + 1 < len(tags) else ", at the end"
            return i, (f"tag {tag!r} {before}{after} breaks the {scheme} scheme "
                       f"(the repaired sequence has {good!r} here)")
    return None


def decode_spans(tags: Sequence[str], scheme: Optional[str] = None) -> List[Span]:
    """Entity spans ``(start, end, type)`` (token positions, end exclusive) of any sequence.

    ``scheme`` is only checked when given: decoding reads every scheme's prefixes.
    """
    if scheme is not None:
        check_scheme(scheme)
    return _read_spans(tags)
