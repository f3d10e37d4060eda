"""N-gram bag-of-words student (fastText-style): hashed word n-grams (and optionally character
n-grams) -> one embedding bag -> optional tanh layers -> classifier.

The n-gram settings live in the config because they size the embedding table; the encoder
(``distill.text.ngrams.NgramVocab``, Paddle-free, so the edge package runs it) turns text into
word ids followed by n-gram bucket ids, and the model is the BOW student over those ids.
With the defaults (mean pooling, no activation, no hidden layer) it is fastText's architecture.

    config = NgramConfig(word_ngrams=(1, 2), buckets=65536, emb_dim=64)
    encoder = NgramStudent.build_encoder(config, train_texts, VocabConfig())
    model = NgramStudent(config, vocab_size=encoder.vocab_size, num_labels=2)
    out = model(**encoder.encode(["not good"]))          # {"logits": (B, C)}
"""
import dataclasses
from typing import Optional, Sequence, Tuple

from distill.core.errors import UserError
from students.bow import BOWConfig, BOWStudent


@dataclasses.dataclass
class NgramConfig(BOWConfig):
    emb_dim: int = 64
    hidden_sizes: Tuple[int, ...] = ()  # () = a linear classifier on the bag, as fastText
    pooling: str = "mean"
    activation: str = "none"  # none | softsign | tanh on the pooled bag
    word_ngrams: Tuple[int, ...] = (1, 2)  # [lo, hi]: word n-gram lengths (1 = the words themselves)
    buckets: int = 65536  # hash buckets shared by every n-gram longer than one word
    char_ngrams: Optional[Tuple[int, ...]] = None  # [lo, hi]: character n-grams of <word>, or None

    def validate(self, where: str) -> None:
        self._choice(where, "pooling", self.pooling, ("sum", "mean"))
        self._choice(where, "activation", self.activation, ("none", "softsign", "tanh"))
        for name in ("word_ngrams", "char_ngrams"):
            value = getattr(self, name)
            if value is None and name == "char_ngrams":
                continue
            if (not isinstance(value, (list, tuple)) or len(value) != 2
                    or not all(isinstance(v, int) for v in value) or not 1 <= value[0] <= value[1]):
                raise UserError(f"{where}: {name}={value!r}; give [lo, hi] with 1 <= lo <= hi")
            setattr(self, name, tuple(value))
        if not isinstance(self.buckets, int) or self.buckets < 1:
            raise UserError(f"{where}: buckets={self.buckets!r}; give an integer >= 1")


class NgramStudent(BOWStudent):
    """The BOW student over words + hashed n-gram buckets (``vocab_size`` = words + buckets)."""

    config_class = NgramConfig

    @staticmethod
    def build_encoder(config: NgramConfig, texts: Sequence[str], vocab):
        """The student's encoder: a word table from ``texts`` (``vocab``: a VocabConfig) plus the
        config's n-gram hashing."""
        from distill.text.ngrams import NgramVocab

        if vocab.source != "words":
            raise UserError("student 'ngram' builds its own word + n-gram encoder; "
                            "vocab.source must be 'words'")
        return NgramVocab.build(texts, language=vocab.language, min_freq=vocab.min_freq,
                                max_size=vocab.max_size, ngram_range=config.word_ngrams,
                                buckets=config.buckets, char_ngrams=config.char_ngrams)
