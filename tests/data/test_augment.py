"""Augmentation: word splitting/joining, the three rules' rates, POS pools, determinism
(seeds, workers), de-duplication, source ids and the CLI on Chinese and English files."""
import random
import re

import pytest

from distill.data.augment.augmenter import (AugmentConfig, AugmentConfigError, AugmentStats, augment_examples,
                             augment_file, augment_texts, mask_token_for)
from distill.data.augment.rules import (RULES, RuleContext, WordPools, augment_words,
                                   rule_probabilities)
from distill.cli import main as cli
from distill.data.examples import Example, read_examples, write_examples
from distill.core.errors import UserError
from distill.data.augment.postag import load_tagger, pool_key
from distill.text.words import detect_language, join_words, split_english, squeeze_spaces

EN = [
    "I don't like this movie, it's 2.5 hours of boring stuff.",
    "A great film with a wonderful cast and a clever script.",
    "The plot is thin but the actors are fun to watch.",
    "He said \"hello there\" (quietly)... and I can't forget it.",
    "A well-known director makes a dull, lifeless picture; 90% of it is filler.",
    "The students' favourite scene costs $5.50 to see in the 1990s revival!",
    "It was funny, sad and surprising at the same time.",
    "We'd watch it again, though they're not sure why.",
]
ZH = [
    "这个酒店的服务很好，但是房间有点小，早餐也一般般。",
    "我用 iPhone 拍照，效果非常不错，电池也耐用。",
    "质量太差了，用了两天就坏了，不推荐购买。",
    "物流很快，包装完好，客服态度也很热情。",
    "屏幕显示清晰，运行速度快，性价比很高。",
    "房间干净整洁，位置方便，下次还会再来。",
    "声音太小，做工粗糙，和描述的不一样。",
    "价格便宜，送货及时，总体来说比较满意。",
]
CJK_SPACE = re.compile(r"[\u4e00-\u9fff]\s+[\u4e00-\u9fff]")


# ------------------------------------------------------------------------------ words
@pytest.mark.parametrize("text", EN + ["Visit https://x.com/a?b=1. Mail a.b@c.org!",
                                       "WON'T you'll I'm rock'n'roll o'clock and/or 8/10"])
def test_english_split_and_join_round_trip(text):
    words = split_english(text)
    assert join_words(words, "en") == text
    assert not any(w.isspace() or not w for w in words)


def test_english_splits_contractions_and_keeps_mask_token():
    assert split_english("I don't [UNK] it's", keep="[UNK]") == ["I", "do", "n't", "[UNK]", "it", "'s"]
    assert split_english("can't", keep="[UNK]") == ["ca", "n't"]
    assert join_words(["I", "ca", "n't", "say", ",", "it", "'s", "\"", "ok", "\"", "."],
                      "en") == "I can't say, it's \"ok\"."


def test_chinese_join_keeps_source_spaces_and_adds_none():
    tagger = load_tagger("zh")
    (words, tags), = tagger.tag(["我用  iPhone 拍照，很好 "])
    assert words == ["我", "用", " ", "iPhone", " ", "拍照", "，", "很", "好"]
    assert join_words(words, "zh") == "我用 iPhone 拍照，很好"
    # two Latin words that meet after a replacement get a space, CJK never does
    assert join_words(["很", "good", "movie", "。"], "zh") == "很good movie。"
    assert squeeze_spaces([" ", "a", " ", "\t", "b", " "]) == ["a", " ", "b"]


def test_language_detection():
    assert detect_language(ZH) == "zh"
    assert detect_language(EN) == "en"
    assert detect_language(["我用 iPhone and Android 拍照，效果不错"]) == "zh"


# ------------------------------------------------------------------------------ rules
def _synthetic(n_words=20000, seed=0):
    rng = random.Random(seed)
    vocab = {"NN": [f"noun{i}" for i in range(50)], "VB": [f"verb{i}" for i in range(30)],
             "JJ": [f"adj{i}" for i in range(20)]}
    tags = [rng.choice(list(vocab)) for _ in range(n_words)]
    words = [rng.choice(vocab[t]) for t in tags]
    pools = WordPools()
    pools.update(words, tags)
    return words, tags, pools.freeze()


def test_each_rule_fires_at_its_rate():
    words, tags, pools = _synthetic()
    ctx = RuleContext(tags, pools, "[UNK]", (1, 5))
    rng = random.Random(0)
    masked = RULES.get("mask")(words, rng, 0.1, ctx)
    share = sum(m == "[UNK]" for m in masked) / len(words)
    assert abs(share - 0.1) < 0.01
    replaced = RULES.get("pos")(words, rng, 0.1, ctx)
    share = sum(a != b for a, b in zip(words, replaced)) / len(words)
    assert abs(share - 0.1) < 0.01
    assert len(replaced) == len(words) and words == _synthetic()[0]  # input untouched
    short = RuleContext(tags[:40], pools, "[UNK]", (1, 5))
    cut = [len(RULES.get("ngram")(words[:40], rng, 0.25, short)) < 40 for _ in range(4000)]
    assert abs(sum(cut) / len(cut) - 0.25) < 0.025


def test_composed_sample_masks_and_replaces_exclusively_at_paper_rates():
    words, tags, pools = _synthetic()
    ctx = RuleContext(tags, pools, "[UNK]", (1, 5))
    probs = rule_probabilities(p_mask=0.2, p_pos=0.3, p_ng=0.0)
    out = augment_words(words, random.Random(1), probs, ctx)
    masked = sum(o == "[UNK]" for o in out) / len(words)
    swapped = sum(o != w and o != "[UNK]" for o, w in zip(out, words)) / len(words)
    assert abs(masked - 0.2) < 0.012 and abs(swapped - 0.3) < 0.012


def test_ngram_is_a_contiguous_piece_within_range():
    words = [f"w{i}" for i in range(30)]
    ctx = RuleContext([None] * 30, WordPools().freeze(), "[UNK]", (2, 4))
    rng = random.Random(3)
    for _ in range(200):
        gram = RULES.get("ngram")(words, rng, 1.0, ctx)
        assert 2 <= len(gram) <= 4
        start = words.index(gram[0])
        assert words[start:start + len(gram)] == gram


def test_pos_replacement_keeps_the_tag():
    words, tags, pools = _synthetic(5000)
    ctx = RuleContext(tags, pools, "[UNK]", (1, 5))
    out = RULES.get("pos")(words, random.Random(2), 0.5, ctx)
    changed = [(o, t) for o, w, t in zip(out, words, tags) if o != w]
    assert len(changed) > 2000
    assert all(o[:3] == {"NN": "nou", "VB": "ver", "JJ": "adj"}[t] for o, t in changed)


def test_pos_replacement_moves_sentence_initial_capitals():
    pools = WordPools()
    pools.update(["The", "the", "a", "A", "Paris"], ["DT", "DT", "DT", "DT", "NNP"])
    pools.freeze()
    ctx = RuleContext(["DT", "NN", "IN", "DT", "NN", "NNP"], pools)
    words = ["The", "film", "of", "the", "year", "Rome"]
    rng = random.Random(0)
    for _ in range(20):
        out = RULES.get("pos")(words, rng, 1.0, ctx)
        assert out[0] in ("A",) and out[3] in ("a",) and out[5] == "Paris"


def test_pools_sample_by_frequency_and_avoid_the_word():
    pools = WordPools()
    pools.update(["good"] * 90 + ["bad"] * 10 + ["ok"], ["JJ"] * 101)
    pools.freeze()
    rng = random.Random(0)
    draws = [pools.sample("JJ", rng) for _ in range(5000)]
    assert 0.86 < draws.count("good") / 5000 < 0.94
    assert all(pools.sample("JJ", rng, avoid="good") != "good" for _ in range(200))
    lonely = WordPools()
    lonely.update(["only"], ["NN"])
    assert lonely.freeze().sample("NN", rng, avoid="only") is None


@pytest.mark.parametrize("lang, texts", [("en", EN), ("zh", ZH)])
def test_real_tagger_replacements_keep_their_pos(lang, texts):
    """Run the real tagger, replace with p=1, and re-tag each replacement in the corpus pools."""
    tagger = load_tagger(lang)
    pools = WordPools()
    tagged = tagger.tag(texts)
    for words, tags in tagged:
        pools.update(words, [pool_key(w, t) for w, t in zip(words, tags)])
    pools.freeze()
    checked = 0
    for words, tags in tagged:
        keys = [pool_key(w, t) for w, t in zip(words, tags)]
        out = RULES.get("pos")(words, random.Random(0), 1.0, RuleContext(keys, pools))
        for new, old, key in zip(out, words, keys):
            if new != old:  # in the pool, maybe with a sentence-initial capital moved
                assert key is not None and (pools.count(key, new) or
                                            pools.count(key, new[:1].lower() + new[1:]))
                checked += 1
            if key is None:  # punctuation / spaces never change
                assert new == old
    assert checked > 30


def test_real_english_tagger_agrees_on_replaced_words():
    """The replacement, re-tagged by spaCy in its new sentence, mostly has the old tag."""
    tagger = load_tagger("en", "spacy")
    tagged = tagger.tag(EN)
    pools = WordPools()
    for words, tags in tagged:
        pools.update(words, [pool_key(w, t) for w, t in zip(words, tags)])
    pools.freeze()
    same = total = 0
    rng = random.Random(5)
    for words, tags in tagged:
        keys = [pool_key(w, t) for w, t in zip(words, tags)]
        out = RULES.get("pos")(words, rng, 0.15, RuleContext(keys, pools))
        (new_words, new_tags), = tagger.tag([join_words(out, "en")])
        if len(new_words) != len(words):
            continue
        for i, (a, b) in enumerate(zip(words, out)):
            if a != b:
                total += 1
                same += new_tags[i] == tags[i]
    assert total >= 5 and same / total >= 0.6


# ------------------------------------------------------------------------------ pipeline
def test_same_seed_same_output_other_seed_differs():
    a = augment_texts(EN, n_iter=5, seed=0)
    assert a == augment_texts(EN, n_iter=5, seed=0)
    b = augment_texts(EN, n_iter=5, seed=1)
    assert a[0] != b[0]


def test_outputs_are_nonempty_unique_changed_and_point_to_their_source():
    new, src = augment_texts(ZH, n_iter=20, seed=0)
    assert len(new) == len(src) > 3 * len(ZH)
    assert len(set(new)) == len(new)
    assert not set(new) & set(ZH)
    assert all(t.strip() and t.replace("[UNK]", "").strip("，。 ") for t in new)
    assert sorted(set(src)) == list(range(len(ZH))) and src == sorted(src)
    assert not any(CJK_SPACE.search(t) for t in new)
    assert not any(re.search(r"[^ ]iPhone|iPhone[^ ]", t) for t in new)  # its spaces stay


def test_source_ids_point_to_the_original():
    # n-grams only: every output is a piece of its original (Chinese: a substring)
    new, src = augment_texts(ZH, n_iter=10, p_mask=0, p_pos=0, p_ng=1.0, seed=0)
    assert new and all(t in ZH[s] for t, s in zip(new, src))
    # masks only: the output is the original with some words masked
    new, src = augment_texts(EN, n_iter=4, p_mask=0.3, p_pos=0, p_ng=0, seed=0)
    for text, s in zip(new, src):
        words, orig = split_english(text, keep="[UNK]"), split_english(EN[s])
        assert len(words) == len(orig)
        assert all(w in ("[UNK]", o) for w, o in zip(words, orig)) and "[UNK]" in words


def test_duplicates_and_identical_samples_are_counted():
    config = AugmentConfig(n_iter=20, p_mask=0.0, p_pos=0.0, p_ng=0.5, seed=0, lang="en",
                           tagger="rules")
    stats = AugmentStats()
    rows = list(augment_examples([Example("a b"), Example("a b c"), Example("b")], config, stats))
    texts = [r.text_a for r in rows]
    assert len(texts) == len(set(texts)) and not {"a b", "a b c", "b"} & set(texts)
    assert stats.originals == 3 and stats.generated == len(rows)
    assert stats.dropped_identical > 0 and stats.dropped_duplicate > 0
    assert stats.generated + stats.dropped_duplicate + stats.dropped_identical + \
        stats.dropped_empty == 60
    assert "rules" in stats.summary()


def test_pairs_are_augmented_independently_and_originals_kept():
    rows = [Example("the film is good", "a fine cast", "positive"),
            Example("the film is bad", "a weak cast", "negative")]
    config = AugmentConfig(n_iter=10, p_mask=0.3, p_pos=0.0, p_ng=0.0, seed=0, lang="en",
                           keep_original=True, tagger="rules")
    out = list(augment_examples(rows, config))
    assert out[0] == Example("the film is good", "a fine cast", "positive", 0)
    assert all(r.text_b is not None for r in out)
    augmented = [r for r in out if r.label is None]
    assert any(r.text_a == rows[r.source_id].text_a and r.text_b != rows[r.source_id].text_b
               for r in augmented)
    assert any(r.text_b == rows[r.source_id].text_b and r.text_a != rows[r.source_id].text_a
               for r in augmented)


def test_workers_do_not_change_the_output(tmp_path):
    src = tmp_path / "train.tsv"
    write_examples(src, [Example(t, label=str(i % 2)) for i, t in enumerate(ZH * 3)])
    one, two = tmp_path / "one.tsv", tmp_path / "two.tsv"
    common = dict(n_iter=8, seed=3, chunk_size=2, keep_original=True)
    augment_file(src, one, AugmentConfig(workers=1, **common))
    stats = augment_file(src, two, AugmentConfig(workers=2, **common))
    assert one.read_bytes() == two.read_bytes()
    assert stats.lang == "zh" and stats.tagger.startswith("jieba")


def test_english_falls_back_to_the_rule_tagger_and_says_so():
    config = AugmentConfig(n_iter=3, seed=0, lang="en", spacy_model="no_such_spacy_model")
    stats = AugmentStats()
    with pytest.warns(UserWarning, match="no_such_spacy_model"):
        rows = list(augment_examples([Example(t) for t in EN], config, stats))
    assert rows and stats.tagger.startswith("rules") and "rules (fallback" in stats.summary()
    with pytest.raises(UserError, match="no_such_spacy_model"):
        load_tagger("en", "spacy", spacy_model="no_such_spacy_model")
    with pytest.raises(UserError, match="for 'zh' text"):
        load_tagger("en", "jieba")


def test_config_is_validated():
    for bad in (dict(p_mask=1.5), dict(p_mask=0.6, p_pos=0.6), dict(n_iter=0),
                dict(ngram_range=(3, 2)), dict(lang="fr"), dict(tagger="nltk"),
                dict(mask_token="")):
        with pytest.raises(AugmentConfigError):
            AugmentConfig(**bad)
    assert AugmentConfig(ngram_range=[2, 3]).ngram_range == (2, 3)
    assert AugmentConfig().ngrams_for("zh") == (2, 10)


def test_mask_token_comes_from_the_teacher_encoder(tmp_path, capsys):
    from distill.text.tokenizer import SentencePieceTokenizer, WordPieceTokenizer

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film", "is", "good"]
    assert mask_token_for(WordPieceTokenizer(vocab)) == "[MASK]"
    assert mask_token_for(WordPieceTokenizer([t for t in vocab if t != "[MASK]"])) == "[UNK]"
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁the", "▁film", "▁", "<mask>"]
    sp = SentencePieceTokenizer.from_pieces(pieces, [0, 0, 0, 0, -1, -1, -3, 0], unk_id=3)
    assert mask_token_for(sp) == "<mask>"
    WordPieceTokenizer(vocab).save(tmp_path / "teacher")
    src, out = tmp_path / "train.jsonl", tmp_path / "aug.jsonl"
    write_examples(src, [Example(t, label="x") for t in EN])
    assert cli(["augment", str(src), str(out), "--n-iter", "3", "--p-mask", "0.3",
                "--tagger", "rules", "--encoder", str(tmp_path / "teacher")]) == 0
    rows = read_examples(out, require_label=False)
    assert any("[MASK]" in r.text_a for r in rows)
    assert not any("[UNK]" in r.text_a for r in rows)
    assert "rules" in capsys.readouterr().out


# ------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize("lang, texts, suffix", [("zh", ZH, ".tsv"), ("en", EN, ".jsonl")])
def test_cli_round_trip(tmp_path, capsys, lang, texts, suffix):
    src = tmp_path / f"train{suffix}"
    write_examples(src, [Example(t, label="pos" if i % 2 else "neg")
                         for i, t in enumerate(texts)])
    out = tmp_path / f"aug{suffix}"
    code = cli(["augment", str(src), str(out), "--n-iter", "4", "--seed", "7",
                "--keep-original", "--mask-token", "[MASK]"])
    assert code == 0
    line = capsys.readouterr().out
    assert f"{len(texts)} originals" in line and "lines/s" in line and f"lang {lang}" in line
    assert ("jieba" if lang == "zh" else "spacy") in line
    rows = read_examples(out, require_label=False)
    originals = [r for r in rows if r.label is not None]
    assert [r.text_a for r in originals] == texts
    assert [r.source_id for r in originals] == list(range(len(texts)))
    augmented = [r for r in rows if r.label is None]
    assert len(augmented) > len(texts)
    assert any("[MASK]" in r.text_a for r in augmented)
    assert all(r.source_id is not None and r.text_a not in texts for r in augmented)
    assert [r.source_id for r in rows] == sorted(r.source_id for r in rows)
    if lang == "zh":
        assert not any(CJK_SPACE.search(r.text_a) for r in augmented)


def test_cli_reports_bad_input_and_settings(tmp_path, capsys):
    src = tmp_path / "train.tsv"
    src.write_text("text_a\tlabel\nfine\tpos\n\tneg\n", encoding="utf-8")
    assert cli(["augment", str(src), str(tmp_path / "o.tsv")]) == 2
    assert "line 3" in capsys.readouterr().err
    src.write_text("text_a\tlabel\nfine film\tpos\n", encoding="utf-8")
    assert cli(["augment", str(src), str(tmp_path / "o.tsv"), "--p-mask", "2"]) == 2
    assert "p_mask" in capsys.readouterr().err
    assert not (tmp_path / "o.tsv").exists()
