"""Word segmentation and detokenization for augmentation (English regex words, Chinese glue rules).

No Paddle and no tagger here: ``distill.data.augment.postag`` segments Chinese with jieba (its POS tagger
segments and tags in one go) and English with :func:`split_english` below.

    >>> split_english("I don't like it, it's 2.5/10!")
    ['I', 'do', "n't", 'like', 'it', ',', 'it', "'s", '2.5/10', '!']
    >>> join_words(['I', 'do', "n't", 'like', 'it', ',', 'it', "'s", '2.5/10', '!'], "en")
    "I don't like it, it's 2.5/10!"
    >>> join_words(['我', '用', ' ', 'iPhone', ' ', '拍照', '。'], "zh")
    '我用 iPhone 拍照。'
"""
import functools
from typing import Iterable, List, Optional, Sequence

import regex

LANGS = ("zh", "en")

# CJK ideographs (and the compatibility block) decide the language; kana/hangul count as CJK too.
CJK_CHAR = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
LATIN_CHAR = regex.compile(r"\p{Latin}")
_WORD_CHAR = regex.compile(r"[\p{L}\p{N}]")

# English contraction clitics, split off as the Penn Treebank (and spaCy's tagger) expects them.
CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'d", "'m")
_CLITIC_SET = frozenset(c.replace("'", q) for c in CLITICS for q in ("'", "\u2019"))

_EN_PATTERN = r"""
  (?:https?://|www\.)[^\s]+[^\s.,!?;:)\]}'"]           # URL (trailing punctuation left off)
| [\w.+-]+@\w+(?:\.\w+)+                              # e-mail address
| \p{L}+(?=n['\u2019]t\b)                             # "do" of "don't", "ca" of "can't"
| n['\u2019]t\b                                       # "n't"
| (?<=[\p{L}\]>])['\u2019](?:s|re|ve|ll|d|m)\b        # "'s" "'re" "'ve" "'ll" "'d" "'m"
| \p{N}+(?:[.,:/]\p{N}+)*(?:%|\p{L}+)?                # 2.5  1,000  8/10  10:30  90%  3rd  1990s
| [\p{L}\p{M}][\p{L}\p{M}\p{N}]*                      # a word, then -part or 'part (not a clitic)
  (?:-[\p{L}\p{N}]+|['\u2019](?!(?:s|re|ve|ll|d|m|t)\b)[\p{L}\p{N}]+)*
| \.{2,}|[!?]+|-{2,}                                  # "..."  "?!"  "--"
| [^\s\w]|_+                                          # any other single symbol
"""
_EN_WORD = regex.compile(_EN_PATTERN, regex.VERBOSE | regex.IGNORECASE)

# English spacing: no space before closers/clitics, none after openers; straight quotes alternate.
_NO_SPACE_BEFORE = regex.compile(r"^(?:[.,!?;:%)\]}\u2026\u201d\u2019]+|\.{2,}|[!?]+)$")
_NO_SPACE_AFTER = frozenset("([{$#\u201c\u2018")
_STRAIGHT_QUOTES = frozenset("\"'")


@functools.lru_cache(maxsize=1 << 18)
def is_word(token: str) -> bool:
    """True when ``token`` holds a letter, digit or CJK character (not punctuation or space)."""
    return bool(_WORD_CHAR.search(token))


def is_clitic(token: str) -> bool:
    """True for an English contraction clitic such as ``n't`` or ``'s``."""
    return token.lower() in _CLITIC_SET


def cjk_share(texts: Iterable[str]) -> float:
    """Share of CJK characters among the CJK + Latin letters of ``texts`` (0.0 when none)."""
    cjk = latin = 0
    for text in texts:
        cjk += len(CJK_CHAR.findall(text))
        latin += len(LATIN_CHAR.findall(text))
    return cjk / (cjk + latin) if cjk + latin else 0.0


def detect_language(texts: Iterable[str], threshold: float = 0.2) -> str:
    """``"zh"`` when at least ``threshold`` of the letters are CJK, else ``"en"``.

    A Chinese character is about one word and an English word about five letters, so 20% CJK
    letters already means most *words* are Chinese.
    """
    return "zh" if cjk_share(texts) >= threshold else "en"


def split_english(text: str, keep: Optional[str] = None) -> List[str]:
    """Split English text into words, numbers, clitics and punctuation.

    ``keep`` (e.g. the mask token ``[UNK]``) is kept as one token wherever it appears.
    """
    if not keep or keep not in text:
        return _EN_WORD.findall(text)
    return _english_with(keep).findall(text)


@functools.lru_cache(maxsize=8)
def _english_with(keep: str):
    literal = "".join(c if c.isalnum() else "\\" + c for c in keep)  # safe in VERBOSE mode
    return regex.compile(literal + "\n|" + _EN_PATTERN,
                         regex.VERBOSE | regex.IGNORECASE)


def squeeze_spaces(tokens: Sequence[str]) -> List[str]:
    """Turn every whitespace run into one ``" "`` token and drop leading/trailing ones.

    Chinese word lists keep the source's spaces (around embedded Latin words, say) as tokens,
    so that joining them back adds no space and loses none.
    """
    out: List[str] = []
    for tok in tokens:
        if tok.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        elif tok:
            out.append(tok)
    while out and out[-1] == " ":
        out.pop()
    return out


def strip_spaces(tokens: Sequence[str]) -> List[str]:
    """Drop whitespace tokens at both ends (an n-gram cut may start or end on one)."""
    lo, hi = 0, len(tokens)
    while lo < hi and tokens[lo].isspace():
        lo += 1
    while hi > lo and tokens[hi - 1].isspace():
        hi -= 1
    return list(tokens[lo:hi])


def join_words(tokens: Sequence[str], lang: str) -> str:
    """Detokenize: Chinese glues tokens (space tokens kept), English uses normal spacing."""
    if lang == "zh":
        return _join_chinese(tokens)
    return _join_english(tokens)


def _join_chinese(tokens: Sequence[str]) -> str:
    parts: List[str] = []
    for tok in tokens:
        # Two Latin words only touch after a replacement (jieba keeps letter runs whole):
        # put a space between them so they do not merge into one word.
        if parts and parts[-1][-1:].isascii() and parts[-1][-1:].isalpha() \
                and tok[:1].isascii() and tok[:1].isalpha():
            parts.append(" ")
        parts.append(tok)
    return "".join(parts).strip()


_PLAIN, _CLOSE, _OPEN, _QUOTE, _SLASH = range(5)


@functools.lru_cache(maxsize=1 << 16)
def _spacing(token: str) -> int:
    """How an English token attaches: closer/clitic, opener, straight quote, slash or plain."""
    if token in _STRAIGHT_QUOTES:
        return _QUOTE
    if _NO_SPACE_BEFORE.match(token) or is_clitic(token):
        return _CLOSE
    if token in _NO_SPACE_AFTER:
        return _OPEN
    return _SLASH if token == "/" else _PLAIN


def _join_english(tokens: Sequence[str]) -> str:
    parts: List[str] = []
    open_quote = {q: False for q in _STRAIGHT_QUOTES}
    glue_next = True  # no space before the first token
    for tok in tokens:
        kind = _spacing(tok)
        glue, glue_next = glue_next, False
        if kind == _QUOTE:
            if tok == "'" and not open_quote[tok] and parts and parts[-1][-1:] in "sS":
                glue = True          # possessive: the students' books
            else:
                glue = glue or open_quote[tok]      # a closing quote hugs the word before
                glue_next = not open_quote[tok]     # an opening quote hugs the word after
                open_quote[tok] = not open_quote[tok]
        elif kind == _CLOSE:
            glue = True
        elif kind == _OPEN:
            glue_next = True
        elif kind == _SLASH:     # and/or, 8/10: no spaces around a slash
            glue = glue_next = True
        parts.append(tok if glue else " " + tok)
    return "".join(parts)
