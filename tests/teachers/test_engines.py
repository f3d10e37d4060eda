"""Labelling engines: every engine gives the dygraph logits (INT8 loosely), exports are cached by
weights hash, and soft_labels through ONNX Runtime equals the dygraph soft labels."""
import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.data.batching import encode_examples, make_batch
from distill.data.examples import read_examples
from distill.core.errors import UserError
from teachers.checkpoint import random_teacher
from teachers.config import ErnieConfig
from teachers.engines import (ENGINES, EngineOptions, build_engine, compare, labelling_engine,
                              resolve_name)
from teachers.soft_labels import soft_labels
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke"


@pytest.fixture(scope="module")
def examples():
    return read_examples(SMOKE / "train.tsv")[:40]


def _teacher(examples, folder, seed=0):
    write_wordpiece_vocab([ex.text_a for ex in examples], folder / "vocab.txt")
    tokenizer = WordPieceTokenizer(folder / "vocab.txt")
    # initializer_range 0.2: logits of order 1, so a wrong engine cannot hide under rounding
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64,
                         initializer_range=0.2)
    return random_teacher(config, tokenizer, num_labels=3, seed=seed, max_len=32)


@pytest.fixture(scope="module")
def teacher(examples, tmp_path_factory):
    return _teacher(examples, tmp_path_factory.mktemp("vocab"))


@pytest.fixture(scope="module")
def options(tmp_path_factory):
    return EngineOptions(threads=1, device="cpu",
                         cache_root=str(tmp_path_factory.mktemp("engines")))


@pytest.fixture(scope="module")
def batches(teacher, examples):
    """Padded batches of real rows with different lengths (padding must not leak into logits)."""
    data = encode_examples(teacher.tokenizer, examples, max_len=32)
    return [make_batch(data, np.arange(i, min(i + 16, len(data))))["inputs"]
            for i in range(0, len(data), 16)]


@pytest.fixture(scope="module")
def reference(teacher, batches):
    """Dygraph logits computed directly, without the engine classes."""
    with paddle.no_grad():
        return np.concatenate([teacher.model(**{k: paddle.to_tensor(v) for k, v in b.items()}
                                             )["logits"].numpy() for b in batches])


def test_registry_and_auto():
    assert ENGINES.names() == ["dygraph", "paddle-inference", "onnx", "onnx-int8"]
    assert resolve_name("auto", "cpu") == "onnx"
    with pytest.raises(UserError, match="onnx-int8"):
        resolve_name("tensorrt", "cpu")


@pytest.mark.parametrize("name", ["dygraph", "paddle-inference", "onnx"])
def test_fp32_engines_match_dygraph(name, teacher, options, batches, reference):
    engine = build_engine(name, teacher, options)
    got = np.concatenate([engine.logits(b) for b in batches])
    assert got.dtype == np.float32 and got.shape == reference.shape == (40, 3)
    assert np.abs(reference).max() > 0.3  # meaningful logits
    np.testing.assert_allclose(got, reference, atol=1e-4)
    assert engine.info["threads"] == 1 and engine.info["engine"] == name


def test_int8_engine_is_close_and_quantized(teacher, options, batches, reference):
    engine = build_engine("onnx-int8", teacher, options)
    got = np.concatenate([engine.logits(b) for b in batches])
    assert engine.info["details"]["quantized_weight_fraction"] > 0.5
    assert np.abs(got - reference).max() < 0.1 * np.abs(reference).max()
    assert not np.array_equal(got, reference)  # it really runs INT8 weights
    fp32 = build_engine("onnx", teacher, options)
    check = compare(engine, fp32, batches)
    assert check["rows"] == 40 and check["argmax_agreement"] >= 0.9


def test_exports_are_cached_by_weights_hash(examples, teacher, options, tmp_path):
    first = build_engine("onnx", teacher, options)
    again = build_engine("onnx", teacher, options)
    assert again.info["cache_hit"] and again.info["path"] == first.info["path"]
    other = _teacher(examples, tmp_path, seed=1)  # other weights: a new export, not the cache
    fresh = build_engine("onnx", other, options)
    assert not fresh.info["cache_hit"] and fresh.info["path"] != first.info["path"]
    folder = Path(fresh.info["path"]).parent
    meta = json.loads((folder / "engine.json").read_text())
    assert meta["weights_sha256"].startswith(folder.parent.name)


def test_labelling_engine_reports_the_int8_check(teacher, options, batches):
    engine, report = labelling_engine("onnx-int8", teacher, batches[:1], options)
    assert report["engine"] == "onnx-int8" and report["check"]["rows"] == 16
    assert report["check"]["reference"] == "onnx" and report["fp32_check"]["max_abs_diff"] < 1e-4
    assert 0 < report["check"]["max_abs_diff"] < 1


def test_soft_labels_through_onnx_equal_dygraph(teacher, examples, options, tmp_path):
    common = dict(batch_size=8, progress=False, device="cpu", threads=1,
                  engine_cache=options.cache_root)
    dygraph = soft_labels(teacher, examples, tmp_path / "dy", engine="dygraph", **common)
    onnx = soft_labels(teacher, examples, tmp_path / "onnx", engine="onnx", **common)
    np.testing.assert_allclose(onnx, dygraph, atol=1e-4)
    report = json.loads((tmp_path / "onnx" / "engine.json").read_text())
    assert report["engine"] == "onnx" and report["check"]["max_abs_diff"] < 1e-4
    int8 = soft_labels(teacher, examples, tmp_path / "onnx", engine="onnx-int8", **common)
    assert not np.array_equal(int8, onnx)  # own cache key: not the FP32 labels from the cache
    np.testing.assert_array_equal(
        soft_labels(teacher, examples, tmp_path / "onnx", engine="onnx", **common), onnx)


def test_onnx_sessions_split_rows_and_match(teacher, options, batches, reference):
    import dataclasses

    engine = build_engine("onnx", teacher, dataclasses.replace(options, threads=2, sessions=2))
    assert engine.info["sessions"] == 2 and len(engine.runners) == 2
    got = np.concatenate([engine.logits(b) for b in batches] + [engine.logits(
        {k: v[:1] for k, v in batches[0].items()})])  # a 1-row batch is not split
    np.testing.assert_allclose(got[:-1], reference, atol=1e-4)
    np.testing.assert_allclose(got[-1], reference[0], atol=1e-4)
