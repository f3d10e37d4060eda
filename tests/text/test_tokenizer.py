"""Teacher tokenizers: WordPiece and SentencePiece against the encoder contract.

Run: .venv/bin/python -m pytest -q tests/test_tokenizer.py
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from distill.text.encoders import load_encoder
from distill.text.tokenizer import (SentencePieceTokenizer, TokenizerError, WordPieceTokenizer,
                                longest_first, read_vocab_file, write_wordpiece_vocab)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "this", "film", "is", "good", "very",
         "bad", "a", "##s", "中", "国", "电", "影", "很", "好", "cafe", "!"]


@pytest.fixture
def wp():
    return WordPieceTokenizer(VOCAB)


def ids_of(tok, tokens):
    return [tok.token_to_id(t) for t in tokens]


def test_single_and_pair_format(wp):
    out = wp.encode(["this film is good"], ["very bad"])
    assert set(out) == {"input_ids", "token_type_ids", "attention_mask"}
    assert all(v.dtype == np.int64 for v in out.values())
    assert out["input_ids"][0].tolist() == ids_of(wp, "[CLS] this film is good [SEP] very bad [SEP]".split())
    assert out["token_type_ids"][0].tolist() == [0] * 6 + [1] * 3
    single = wp.encode(["films !"])
    assert single["input_ids"][0].tolist() == ids_of(wp, ["[CLS]", "film", "##s", "!", "[SEP]"])
    assert wp.tokenize("This FILM") == ["this", "film"]


def test_padding_to_longest_row(wp):
    out = wp.encode(["good", "this film is very bad", "a"], max_len=128)
    assert out["input_ids"].shape == (3, 7)
    assert out["attention_mask"].tolist()[0] == [1, 1, 1, 0, 0, 0, 0]
    assert out["input_ids"][0, 3:].tolist() == [wp.pad_id] * 4 and wp.pad_id == 0
    empty = wp.encode([])
    assert empty["input_ids"].shape == (0, 0)


def test_truncation_is_longest_first(wp):
    out = wp.encode(["a " * 10], ["good good"], max_len=10)
    types = out["token_type_ids"][0]
    assert out["input_ids"].shape == (1, 10) and types.tolist().count(1) == 3  # b kept whole: 2 + [SEP]
    both = wp.encode(["a " * 10], ["good " * 10], max_len=11)
    assert both["token_type_ids"][0].tolist().count(1) == 5            # 8 tokens: 4 + 4
    assert wp.encode(["a " * 300], max_len=16)["input_ids"].shape == (1, 16)


def test_longest_first_rule_matches_hf_tokenizers(wp):
    """The SentencePiece side uses longest_first(); it must cut pairs exactly like HF tokenizers."""
    for la in (0, 1, 3, 6, 9):
        for lb in (1, 2, 5, 9):
            for max_len in (5, 8, 12):
                out = wp.encode(["a " * la], ["a " * lb], max_len=max_len)
                types = out["token_type_ids"][0].tolist()
                kept_b = types.count(1) - 1
                kept_a = len(types) - 3 - kept_b
                assert longest_first(la, lb, max_len - 3) == (kept_a, kept_b), (la, lb, max_len)


def test_chinese_characters_case_and_accents(wp):
    assert wp.tokenize("中国电影很好!") == ["中", "国", "电", "影", "很", "好", "!"]
    assert wp.tokenize("中国film") == ["中", "国", "film"]
    assert wp.tokenize("Café") == ["cafe"]
    cased = WordPieceTokenizer(VOCAB, lowercase=False)
    assert cased.tokenize("Good good") == ["[UNK]", "good"]


def test_mask_token_in_text_and_missing_specials(tmp_path, wp):
    assert wp.mask_token == "[MASK]" and wp.unk_token == "[UNK]"
    assert wp.tokenize("this [MASK] is good") == ["this", "[MASK]", "is", "good"]
    no_mask = WordPieceTokenizer([t for t in VOCAB if t != "[MASK]"])
    assert no_mask.mask_token == "[UNK]"
    (tmp_path / "vocab.txt").write_text("[PAD]\n[CLS]\n[SEP]\nhello\n")
    with pytest.raises(TokenizerError, match=r"vocab.txt: unk_token '\[UNK\]' is not in the vocabulary"):
        WordPieceTokenizer(tmp_path / "vocab.txt")


def test_ernie_tab_separated_vocab(tmp_path):
    lines = [f"{t}\t{i}" for i, t in enumerate(VOCAB)]
    lines[5], lines[6] = lines[6], lines[5]          # order in the file does not matter, ids do
    (tmp_path / "vocab.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert read_vocab_file(tmp_path / "vocab.txt") == VOCAB
    tok = WordPieceTokenizer(tmp_path / "vocab.txt")
    assert tok.encode(["this film"])["input_ids"][0].tolist() == [2, 5, 6, 3]
    (tmp_path / "bad.txt").write_text("[PAD]\t0\n[UNK]\tx\n")
    with pytest.raises(TokenizerError, match="bad.txt, line 2"):
        read_vocab_file(tmp_path / "bad.txt")


def test_argument_errors(wp):
    with pytest.raises(ValueError, match="texts_b has 1 rows but texts_a has 2"):
        wp.encode(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="max_len=3"):
        wp.encode(["a"], ["b"], max_len=3)
    with pytest.raises(TypeError):
        wp.encode("a single string")


def test_wordpiece_save_load_round_trip(tmp_path):
    tok = WordPieceTokenizer(VOCAB, lowercase=False)
    tok.save(tmp_path / "enc")
    meta = json.loads((tmp_path / "enc" / "encoder.json").read_text())
    assert meta["type"] == "wordpiece" and meta["lowercase"] is False
    again = load_encoder(tmp_path / "enc")
    assert isinstance(again, WordPieceTokenizer) and again.vocab_size == len(VOCAB)
    texts, pairs = ["this Film is good", "中国"], ["very bad", "好"]
    for key, value in tok.encode(texts, pairs).items():
        assert np.array_equal(value, again.encode(texts, pairs)[key])


def test_vocab_from_texts_covers_them(tmp_path):
    texts = ["A very good film!", "films are bad", "很好看的电影", "Un café, s'il vous plaît"]
    size = write_wordpiece_vocab(texts, tmp_path / "vocab.txt", max_words=3)
    tok = WordPieceTokenizer(tmp_path / "vocab.txt")
    assert tok.vocab_size == size and tok.tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok.token_to_id("[UNK]") not in tok.encode(texts)["input_ids"]
    assert "[UNK]" not in tok.tokenize("verygood filmsfilms")          # built from seen characters
    assert write_wordpiece_vocab(texts, tmp_path / "again.txt", max_words=3) == size
    assert (tmp_path / "again.txt").read_text() == (tmp_path / "vocab.txt").read_text()


# --- SentencePiece ------------------------------------------------------------------------------
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁hello", "▁world", "▁", "h", "e", "l", "o", "w", "r",
          "d", "▁good", "▁film", "<mask>", "▁query", ":"]
SCORES = [0, 0, 0, 0, -1, -1, -3, -5, -5, -5, -5, -5, -5, -5, -2, -2, 0, -2, -3]


@pytest.fixture
def sp():
    return SentencePieceTokenizer.from_pieces(PIECES, SCORES, unk_id=3, normalizer_map=[("Ｈ", "h"), ("\u200b", "")])


def test_sentencepiece_pieces_and_normalizer(sp):
    assert sp.vocab_size == len(PIECES) and sp.pad_id == 1 and sp.mask_token == "<mask>"
    assert sp.tokenize("  hello   world ") == ["▁hello", "▁world"]
    assert sp.tokenize("Ｈello\u200b world") == ["▁hello", "▁world"]
    assert sp.tokenize("hello <mask>") == ["▁hello", "▁", "<mask>"]
    assert sp.encode(["good 你"])["input_ids"][0].tolist() == [0, 14, 6, 3, 2]   # unknown -> <unk>


def test_sentencepiece_pairs_padding_truncation(sp):
    out = sp.encode(["hello world", "good"], ["film", "hello hello hello"])
    assert out["input_ids"].tolist() == [[0, 4, 5, 2, 2, 15, 2, 1],
                                         [0, 14, 2, 2, 4, 4, 4, 2]]
    assert out["attention_mask"].tolist()[0] == [1] * 7 + [0]
    assert not out["token_type_ids"].any()
    cut = sp.encode(["hello " * 6], ["good " * 2], max_len=8)         # budget 4: a 2, b 2
    assert cut["input_ids"].tolist() == [[0, 4, 4, 2, 2, 14, 14, 2]]
    assert sp.encode(["hello " * 20], max_len=5)["input_ids"].tolist() == [[0, 4, 4, 4, 2]]


def test_sentencepiece_prefix_and_round_trip(tmp_path):
    sp = SentencePieceTokenizer.from_pieces(PIECES, SCORES, unk_id=3, prefix="query: ")
    assert sp.encode(["hello"])["input_ids"].tolist() == [[0, 17, 18, 4, 2]]
    assert sp.tokenize("hello") == ["▁hello"]                          # no prefix in tokenize()
    sp.save(tmp_path / "enc")
    again = load_encoder(tmp_path / "enc")
    assert isinstance(again, SentencePieceTokenizer) and again.prefix == "query: "
    texts = ["hello world", "good film", "Ｈello"]
    assert np.array_equal(again.encode(texts)["input_ids"], sp.encode(texts)["input_ids"])
    from_file = SentencePieceTokenizer(tmp_path / "enc" / "sentencepiece.model", prefix="query: ")
    assert np.array_equal(from_file.encode(texts)["input_ids"], sp.encode(texts)["input_ids"])


def test_tokenizers_do_not_import_paddle():
    code = ("import sys, distill.text.encoders, distill.text.tokenizer; "
            "assert 'paddle' not in sys.modules, 'paddle imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
