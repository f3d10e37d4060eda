"""ERNIE Tiny / ERNIE-M tokenizers: their rules, files and safety (parity with PaddleNLP itself is
in tests/teachers/test_parity.py, under make test-parity)."""
import os
import pickle

import pytest
from hypothesis import given, strategies as st

from distill.text.encoders import load_encoder
from distill.text.ernie_tokenizers import ErnieMTokenizer, ErnieTinyTokenizer, read_word_dict
from distill.text.batch import cut_pair
from distill.text.tokenizer import TokenizerError, WordPieceTokenizer

TEXTS = ["今天天气不错，我们去公园散步", "The movie was GREAT 2026年", "人工智能 model [MASK] 好",
         "百度飞桨 hello world!", "ok"]


def _loop(len_a, len_b, budget, first_on_tie):
    """One token at a time from the longer side (PaddleNLP's loop; the word encoders' on a tie)."""
    while len_a + len_b > budget:
        if len_a > len_b or (first_on_tie and len_a == len_b):
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 100), st.booleans())
def test_cut_pair_equals_the_one_token_loop(len_a, len_b, budget, first_on_tie):
    assert cut_pair(len_a, len_b, budget, first_on_tie) == _loop(len_a, len_b, budget, first_on_tie)


@pytest.mark.parametrize("piece, parts", [
    ("\u2581ab12cd", ["\u2581ab", "12", "cd"]), ("\u2581你好", ["你", "好"]),
    ("\u258112", ["12"]), ("a1", ["a", "1"]), ("12你", ["12", "你"]),
    ("\u2581ok,", ["\u2581ok", ","]), ("\u2581Data", ["\u2581Data"])])
def test_ernie_m_splits_pieces_at_cjk_punctuation_and_digits(piece, parts):
    assert ErnieMTokenizer.split_piece(piece) == parts


def _spm(tmp_path, model_type):
    import sentencepiece as spm

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(TEXTS * 20) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "m"),
                                   vocab_size=60, model_type=model_type, num_threads=1,
                                   hard_vocab_limit=False, minloglevel=2, bos_id=-1, eos_id=-1)
    return spm.SentencePieceProcessor(model_file=str(tmp_path / "m.model"))


def test_ernie_tiny_cuts_words_then_pieces_and_round_trips(tmp_path):
    sp = _spm(tmp_path, "unigram")
    pieces = [sp.id_to_piece(i) for i in range(1, sp.get_piece_size())]
    vocab = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + pieces
    words = ["今天", "天气", "不错", "人工智能", "百度飞桨"]
    tok = ErnieTinyTokenizer(tmp_path / "m.model", vocab, words)
    assert tok.cut("今天天气不错abc") == ["今天", "天气", "不错", "a", "b", "c"]
    assert tok.cut("人工智能人工") == ["人工智能", "人", "工"]  # longest match first
    assert "[MASK]" in tok.tokenize("人工智能 model [MASK] 好")
    batch = tok.encode(TEXTS[:2], TEXTS[2:4], max_len=16)
    assert batch["input_ids"].shape[1] <= 16 and batch["input_ids"][0, 0] == 1
    assert set(batch["token_type_ids"][0].tolist()) == {0, 1}
    tok.save(tmp_path / "saved")
    assert sorted(os.listdir(tmp_path / "saved")) == [
        "dict.wordseg.pickle", "encoder.json", "spm_cased_simp_sampled.model", "vocab.txt"]
    again = load_encoder(tmp_path / "saved")
    assert isinstance(again, ErnieTinyTokenizer) and again.words == tok.words
    assert again.encode(TEXTS)["input_ids"].tolist() == tok.encode(TEXTS)["input_ids"].tolist()


def test_ernie_m_pairs_have_two_separators_and_no_types(tmp_path):
    sp = _spm(tmp_path, "bpe")
    pieces = [sp.id_to_piece(i) for i in range(1, sp.get_piece_size())]
    vocab = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"] + pieces + list("今天气不错")
    tok = ErnieMTokenizer(tmp_path / "m.model", vocab)
    assert tok.pad_id == 1
    batch = tok.encode(["今天"], ["不错"], max_len=32)
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == 0 and ids.count(2) == 3 and batch["token_type_ids"].max() == 0
    tok.save(tmp_path / "saved")
    assert isinstance(load_encoder(tmp_path / "saved"), ErnieMTokenizer)


def test_word_dictionary_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    (tmp_path / "evil.pickle").write_bytes(pickle.dumps({"词": Evil()}))
    with pytest.raises(TokenizerError, match="global 'posix.system' is not allowed"):
        read_word_dict(tmp_path / "evil.pickle")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "ok.pickle").write_bytes(pickle.dumps({"今天": 3, "天气": 1}))
    assert read_word_dict(tmp_path / "ok.pickle") == ["今天", "天气"]


def test_wordpiece_in_paddlenlp_mode_splits_symbols_and_truncates_pairs_its_way():
    vocab = ["[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"] + list("abcdefxyz²😀") + ["phone"]
    plain, nlp = WordPieceTokenizer(vocab), WordPieceTokenizer(vocab, paddlenlp=True)
    assert plain.tokenize("😀phone x²") == ["[UNK]", "[UNK]"]
    assert nlp.tokenize("😀phone x²") == ["😀", "phone", "x", "²"]
    batch = nlp.encode(["a b c d e"], ["x y z f a"], max_len=9)  # 5 + 5 -> 3 + 3
    assert batch["input_ids"][0].tolist() == [1, 5, 6, 7, 2, 11, 12, 13, 2]
    assert batch["token_type_ids"][0].tolist() == [0] * 5 + [1] * 4
    batch = nlp.encode(["a b c d e"], ["x y z f"], max_len=8)  # 5 + 4 -> 3 + 2 (a loses first)
    assert batch["input_ids"][0].tolist() == [1, 5, 6, 7, 2, 11, 12, 2]
