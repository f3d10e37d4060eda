"""Word vocabulary and the BOW/CNN/BiLSTM/BiGRU students: contract, padding, pairs, training, save/load."""
import json
import subprocess
import sys

import numpy as np
import paddle
import pytest

from distill.text.encoders import load_encoder
from distill.core.errors import UserError
from students.io import load_student, predict, predict_logits, save_student
from students.registry import STUDENTS, build_student
from distill.text.vocab import WordVocab, detect_language

WORD_KINDS = ["bow", "cnn", "lstm", "gru"]
SMALL = {
    "bow": {"emb_dim": 16, "hidden_sizes": [16]},
    "cnn": {"emb_dim": 16, "num_filters": 8, "filter_sizes": [2, 3, 5], "dropout": 0.0},
    "lstm": {"emb_dim": 16, "hidden_size": 8, "mlp_size": 8, "dropout": 0.0},
    "gru": {"emb_dim": 16, "hidden_size": 8, "mlp_size": 0, "pooling": "last", "dropout": 0.0},
}
POS = "good great lovely superb fun".split()
NEG = "bad awful dull boring weak".split()
FILLER = "the film movie story was is really quite a".split()


def toy_task(n=48, seed=0):
    """Sentiment rows: label 1 iff the text has a positive word (plus filler words)."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(1, 6)))
        words.insert(int(rng.integers(0, len(words) + 1)), rng.choice(POS if label else NEG))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, np.array(labels, dtype=np.int64)


def tensors(enc):
    return {k: paddle.to_tensor(v) for k, v in enc.items()}


# -- vocabulary ------------------------------------------------------------------------------

def test_vocab_specials_frequency_order_and_limits():
    vocab = WordVocab.build(["b a a", "c b a", "A!"], min_freq=2)
    assert vocab.words[:4] == ["[PAD]", "[UNK]", "[SEP]", "[MASK]"]
    assert vocab.words[4:] == ["a", "b"]  # lowercased; c and ! are below min_freq
    assert vocab.pad_id == 0 and vocab.unk_id == 1
    assert WordVocab.build(["b a a", "c b a"], max_size=5).words[4:] == ["a"]


def test_vocab_encode_pads_to_longest_and_maps_unknown_words():
    vocab = WordVocab.build(["a good film", "a bad film"])
    enc = vocab.encode(["good film", "a zebra", ""], max_len=8)
    assert {k: v.dtype for k, v in enc.items()} == {k: np.int64 for k in enc}
    assert enc["input_ids"].shape == (3, 2)
    assert enc["input_ids"][1, 1] == vocab.unk_id
    assert enc["input_ids"][2].tolist() == [vocab.unk_id, vocab.pad_id]  # empty text -> one [UNK]
    assert enc["attention_mask"].tolist() == [[1, 1], [1, 1], [1, 0]]
    assert vocab.encode(["a good film a good film"], max_len=4)["input_ids"].shape == (1, 4)


def test_vocab_pairs_use_sep_and_segments_and_cut_longest_first():
    vocab = WordVocab.build(["a b c d e f g"])
    enc = vocab.encode(["a b c d e", "a"], ["f g", "b"], max_len=6)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    words = [vocab.words[i] for i in ids[0]]
    assert words == ["a", "b", "c", "[SEP]", "f", "g"]
    assert types[0].tolist() == [0, 0, 0, 0, 1, 1]
    assert [vocab.words[i] for i in ids[1][:3]] == ["a", "[SEP]", "b"]
    assert types[1].tolist()[:3] == [0, 0, 1] and enc["attention_mask"][1].sum() == 3


def test_vocab_keeps_mask_token_whole():
    vocab = WordVocab.build(["a [MASK] film"])
    assert vocab.tokenize("The [MASK] film!") == ["the", "[MASK]", "film", "!"]
    assert vocab.encode(["[MASK]"])["input_ids"][0, 0] == vocab.mask_id
    assert vocab.tokenize("a <mask> film")[1] == "[MASK]"  # SentencePiece teachers' spelling


def test_chinese_uses_jieba_words():
    texts = ["这部电影很好看", "酒店服务太差了"]
    assert detect_language(texts) == "zh" and detect_language(["a good film"]) == "en"
    vocab = WordVocab.build(texts)
    assert vocab.language == "zh"
    assert "电影" in vocab.index and "很" in vocab.index  # words, not single characters only


def test_vocab_save_load_through_encoder_registry(tmp_path):
    vocab = WordVocab.build(["这部电影很好看", "a good film"], language="zh")
    vocab.save(tmp_path)
    assert json.loads((tmp_path / "encoder.json").read_text())["type"] == "words"
    again = load_encoder(tmp_path)
    assert isinstance(again, WordVocab) and again.words == vocab.words and again.language == "zh"
    for key, value in vocab.encode(["电影好看 film"], ["差"]).items():
        np.testing.assert_array_equal(value, again.encode(["电影好看 film"], ["差"])[key])
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    with pytest.raises(UserError, match="must start with"):
        WordVocab.load(tmp_path)


def test_vocab_module_does_not_import_paddle():
    code = "import sys, distill.text.vocab; distill.text.vocab.WordVocab.build(['a b']); print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- students --------------------------------------------------------------------------------

def test_registry_lists_kinds_and_rejects_unknown_config():
    assert set(WORD_KINDS) <= set(STUDENTS.names())
    with pytest.raises(UserError, match="unknown student kind 'mlp'"):
        build_student("mlp", {}, 10, 2)
    with pytest.raises(UserError, match="unknown key.*hiden"):
        build_student("bow", {"hiden": 3}, 10, 2)
    with pytest.raises(UserError, match="pooling"):
        build_student("lstm", {"pooling": "sum"}, 10, 2)


@pytest.mark.parametrize("kind", WORD_KINDS)
def test_output_contract_and_padding_independence(kind):
    paddle.seed(1)
    model = build_student(kind, SMALL[kind], vocab_size=30, num_labels=3)
    model.eval()
    ids = np.array([[5, 6, 7, 8, 0, 0, 0], [9, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    out = model(paddle.to_tensor(ids), None, paddle.to_tensor(mask), output_hidden_states=True)
    assert out["logits"].shape == [2, 3]
    assert out["mask"].shape == [2, 7] and all(h.shape[:2] == [2, 7] for h in out["hidden_states"])
    # a row's logits do not depend on the batch padding it gets (1 token: shorter than widest filter)
    alone = model(paddle.to_tensor(ids[1:, :1]), None, paddle.to_tensor(mask[1:, :1]))["logits"]
    np.testing.assert_allclose(alone.numpy()[0], out["logits"].numpy()[1], atol=1e-5)
    assert "hidden_states" not in model(paddle.to_tensor(ids))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_rnn_matches_paddle_bidirectional_rnn_with_sequence_length(kind):
    """The two one-way RNNs (backward = reversed within each length) equal Paddle's bidirect RNN."""
    paddle.seed(2)
    model = build_student(kind, {"emb_dim": 6, "hidden_size": 5, "pooling": "max"}, 20, 2)
    model.eval()
    rnn_class = paddle.nn.LSTM if kind == "lstm" else paddle.nn.GRU
    ref = rnn_class(6, 5, direction="bidirect")
    fwd, bwd = model.forward_rnns[0].state_dict(), model.backward_rnns[0].state_dict()
    state = {}
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        state[f"{name}_l0"] = fwd[f"{name}_l0"]
        state[f"{name}_l0_reverse"] = bwd[f"{name}_l0"]
        state[f"0.cell_fw.{name}"] = fwd[f"{name}_l0"]
        state[f"0.cell_bw.{name}"] = bwd[f"{name}_l0"]
    ref.set_state_dict(state)
    ids = np.array([[3, 4, 5, 6, 7], [8, 9, 0, 0, 0], [10, 11, 12, 0, 0]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    out = model(paddle.to_tensor(ids), None, paddle.to_tensor(mask), output_hidden_states=True)
    emb, seq = out["hidden_states"]
    expected, _ = ref(emb, sequence_length=paddle.to_tensor(mask.sum(1)))
    np.testing.assert_allclose(seq.numpy(), expected.numpy() * mask[..., None], atol=1e-5)


@pytest.mark.parametrize("kind", WORD_KINDS)
def test_pairs_change_the_prediction_through_segments(kind):
    paddle.seed(3)
    vocab = WordVocab.build(["good film", "bad film"])
    model = build_student(kind, SMALL[kind], vocab.vocab_size, 2)
    model.eval()
    pair = tensors(vocab.encode(["good film"], ["bad film"]))
    assert pair["token_type_ids"].numpy().tolist() == [[0, 0, 0, 1, 1]]
    swapped = dict(pair, token_type_ids=paddle.zeros_like(pair["token_type_ids"]))
    assert not np.allclose(model(**pair)["logits"].numpy(), model(**swapped)["logits"].numpy())


@pytest.mark.parametrize("kind", WORD_KINDS)
def test_each_student_trains_and_its_loss_falls(kind):
    paddle.seed(4)
    texts, labels = toy_task()
    vocab = WordVocab.build(texts)
    model = build_student(kind, SMALL[kind], vocab.vocab_size, 2)
    inputs = tensors(vocab.encode(texts))
    y = paddle.to_tensor(labels)
    optimizer = paddle.optimizer.Adam(learning_rate=0.02, parameters=model.parameters())
    losses = []
    for _ in range(25):
        loss = paddle.nn.functional.cross_entropy(model(**inputs)["logits"], y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    assert (model(**inputs)["logits"].numpy().argmax(1) == labels).mean() > 0.9


@pytest.mark.parametrize("kind", WORD_KINDS)
def test_save_load_round_trip_gives_identical_logits(kind, tmp_path):
    paddle.seed(5)
    texts, _ = toy_task(12)
    vocab = WordVocab.build(texts)
    model = build_student(kind, SMALL[kind], vocab.vocab_size, 2)
    model.eval()
    save_student(tmp_path / "student", model, kind, vocab, ["neg", "pos"], max_len=16)
    assert (tmp_path / "student" / "model_state.pdparams").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp dir left
    loaded, encoder, meta = load_student(tmp_path / "student")
    assert meta["kind"] == kind and meta["labels"] == ["neg", "pos"] and meta["max_len"] == 16
    assert meta["config"] == model.config.to_dict()
    before = predict_logits(model, vocab, texts, max_len=16, batch_size=5)
    after = predict_logits(loaded, encoder, texts, max_len=16, batch_size=5)
    np.testing.assert_array_equal(before, after)
    assert predict(tmp_path / "student", texts[:3]) == [["neg", "pos"][i] for i in after[:3].argmax(1)]


def test_load_student_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="student.json"):
        load_student(tmp_path)


# -- tiny transformer ------------------------------------------------------------------------

def wordpiece():
    from distill.text.tokenizer import WordPieceTokenizer

    words = sorted(set(POS + NEG + FILLER))
    return WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)


def tiny_teacher(tokenizer, layers=4, num_labels=2):
    from teachers.config import ErnieConfig
    from teachers.model import ErnieForSequenceClassification

    paddle.seed(6)
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, num_layers=layers,
                         num_heads=2, intermediate_size=32, max_position_embeddings=64)
    model = ErnieForSequenceClassification(config, num_labels)
    model.eval()
    return model


def test_tiny_from_all_teacher_layers_equals_the_teacher():
    from students.tiny import TinyStudent, init_from_teacher, tiny_config_for

    tok = wordpiece()
    teacher = tiny_teacher(tok)
    student = TinyStudent(tiny_config_for(teacher.config, {"num_layers": 4}), tok.vocab_size, 2)
    assert init_from_teacher(student, teacher) == [0, 1, 2, 3]
    student.eval()
    enc = tensors(tok.encode(["good film", "a dull story was"], ["bad", "fun"]))
    np.testing.assert_allclose(student(**enc)["logits"].numpy(), teacher(**enc)["logits"].numpy(),
                               atol=1e-6)


def test_tiny_copies_every_kth_layer_and_returns_hidden_states_and_attentions():
    from students.tiny import TinyStudent, default_teacher_layers, init_from_teacher, tiny_config_for

    assert default_teacher_layers(4, 12) == [2, 5, 8, 11]
    assert default_teacher_layers(3, 6) == [1, 3, 5]
    tok = wordpiece()
    teacher = tiny_teacher(tok)
    student = TinyStudent(tiny_config_for(teacher.config, {"num_layers": 2}), tok.vocab_size, 2)
    assert init_from_teacher(student, teacher) == [1, 3]
    copied = student.model.ernie.encoder.layers[0].linear1.weight.numpy()
    np.testing.assert_array_equal(copied, teacher.ernie.encoder.layers[1].linear1.weight.numpy())
    out = student(**tensors(tok.encode(["good film"])), output_hidden_states=True,
                  output_attentions=True)
    assert len(out["hidden_states"]) == 3 and len(out["attentions"]) == 2
    assert out["attentions"][0].shape == [1, 2, 4, 4]  # [CLS] good film [SEP]
    with pytest.raises(UserError, match="hidden_size"):
        narrow = TinyStudent(tiny_config_for(teacher.config, {"hidden_size": 8}), tok.vocab_size, 2)
        init_from_teacher(narrow, teacher)


def test_tiny_trains_and_round_trips_with_the_teacher_tokenizer(tmp_path):
    tok = wordpiece()
    paddle.seed(7)
    config = {"num_layers": 2, "hidden_size": 16, "num_heads": 2, "intermediate_size": 32,
              "hidden_dropout": 0.0, "attention_dropout": 0.0, "init": "random",
              "max_position_embeddings": 64}
    model = build_student("tiny", config, tok.vocab_size, 2, pad_id=tok.pad_id)
    texts, labels = toy_task()
    inputs, y = tensors(tok.encode(texts)), paddle.to_tensor(labels)
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    losses = []
    for _ in range(25):
        loss = paddle.nn.functional.cross_entropy(model(**inputs)["logits"], y)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0], losses
    model.eval()
    save_student(tmp_path / "tiny", model, "tiny", tok, ["neg", "pos"], max_len=32)
    loaded, encoder, meta = load_student(tmp_path / "tiny")
    assert type(encoder).__name__ == "WordPieceTokenizer" and meta["config"]["init"] == "random"
    np.testing.assert_array_equal(predict_logits(model, tok, texts, texts[::-1], max_len=32),
                                  predict_logits(loaded, encoder, texts, texts[::-1], max_len=32))
