"""Token augmentation: tags stay aligned, entities stay whole (property test), deterministic."""
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from distill.data.augment.tokens import (EntityPools, TokenAugmentConfig, TokenRuleContext,
                                         augment_sentence, augment_token_examples, ngram_rule)
from distill.data.tokens import TokenExample
from distill.text import tags as tagging

TYPES = ["PER", "LOC", "ORG"]
FILLER = list("的了是在我有他这中大来上国个到说们为子和你地出道也时年")


@st.composite
def sentences(draw, scheme):
    """A tagged sentence: filler characters with whole entities of random types and lengths."""
    tokens, spans = [], []
    for _ in range(draw(st.integers(0, 4))):
        tokens += draw(st.lists(st.sampled_from(FILLER), max_size=4))
        entity = draw(st.lists(st.sampled_from("张李王北京上海大学银行社"), min_size=1, max_size=5))
        spans.append((len(tokens), len(tokens) + len(entity), draw(st.sampled_from(TYPES))))
        tokens += entity
    tokens += draw(st.lists(st.sampled_from(FILLER), min_size=0 if spans else 1, max_size=4))
    return TokenExample(tuple(tokens), tuple(tagging.encode_spans(len(tokens), spans, scheme)))


@settings(max_examples=150, deadline=None)
@given(st.data(), st.sampled_from(sorted(tagging.SCHEMES)), st.integers(0, 10 ** 6))
def test_augmented_tags_stay_aligned_and_entities_whole(data, scheme, seed):
    rows = data.draw(st.lists(sentences(scheme), min_size=1, max_size=6))
    pools = EntityPools.from_examples(rows)
    known = {kind: set(pools.entities(kind)) for kind in TYPES}
    config = TokenAugmentConfig(n_iter=5, p_mask=0.3, p_entity=0.5, p_ng=0.5,
                                ngram_range=(1, 6), seed=seed)
    for ex in augment_token_examples(rows, config, scheme, pools):
        original = rows[ex.source_id]
        assert len(ex.tokens) == len(ex.tags) > 0
        assert tagging.first_violation(ex.tags, scheme) is None
        for start, end, kind in tagging.decode_spans(ex.tags):
            assert ex.tokens[start:end] in known[kind]  # a whole entity of the same type
            assert "[MASK]" not in ex.tokens[start:end]
        for tok, tag in zip(ex.tokens, ex.tags):  # only O tokens are ever masked
            assert tok != "[MASK]" or tag == "O"
        assert (ex.tokens, ex.tags) != (original.tokens, original.tags)


def test_ngram_window_widens_instead_of_cutting():
    tokens = list("我在北京大学读书")
    tags = ["O", "O", "B-ORG", "M-ORG", "M-ORG", "E-ORG", "O", "O"]
    ctx = TokenRuleContext("bmes", EntityPools(), ngram_range=(2, 2))
    for seed in range(50):
        out_tokens, out_tags = ngram_rule(tokens, tags, random.Random(seed), 1.0, ctx)
        if "B-ORG" in out_tags or "E-ORG" in out_tags:
            assert "".join(out_tokens).count("北京大学") == 1
            assert out_tags.count("B-ORG") == out_tags.count("E-ORG") == 1


def test_augmentation_is_deterministic_under_a_seed():
    rows = [TokenExample(tuple("张三在北京"), ("B-PER", "E-PER", "O", "B-LOC", "E-LOC")),
            TokenExample(tuple("李四去上海"), ("B-PER", "E-PER", "O", "B-LOC", "E-LOC"))]
    config = TokenAugmentConfig(n_iter=6, p_mask=0.3, p_entity=0.7, seed=3)
    first = augment_token_examples(rows, config, "bmes")
    assert first == augment_token_examples(rows, config, "bmes") and first
    swapped = [ex for ex in first if "李四" in "".join(ex.tokens) and ex.source_id == 0]
    assert swapped  # an entity of the other sentence, same type, was drawn
    tokens, tags = augment_sentence(rows[0].tokens, rows[0].tags, random.Random(0),
                                    TokenAugmentConfig(p_mask=0, p_entity=0, p_ng=0),
                                    TokenRuleContext("bmes", EntityPools()))
    assert (tuple(tokens), tuple(tags)) == (rows[0].tokens, rows[0].tags)
