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


# ------------------------------------------------------------------------- AMP and auto's choice

from teachers import engines as eng  # noqa: E402
from teachers.soft_labels import CHOICE_FILE, engine_for_job, label_variant, LabelStore  # noqa: E402


def _trial(rate, passed=True, engine="dygraph"):
    return eng.Trial(eng.Candidate(engine), rows_per_s=rate, passed=passed)


def test_pick_is_the_fastest_candidate_that_passed_its_check():
    assert eng.pick([_trial(10.0), _trial(30.0, engine="paddle-inference")]) == 1
    # the fastest failed its check: never chosen, whatever its speed
    assert eng.pick([_trial(10.0), _trial(500.0, passed=False), _trial(20.0)]) == 2
    assert eng.pick([_trial(20.0), _trial(20.0, engine="paddle-inference")]) == 0  # tie: first
    assert eng.pick([_trial(None), _trial(5.0, passed=False)]) is None
    assert eng.pick([]) is None


def test_auto_measures_on_gpu_only_and_candidates_follow_amp():
    cpu = EngineOptions(device="cpu")
    assert eng.auto_candidates("auto", cpu) == []  # CPU: onnx, measured fastest (design.md)
    assert eng.auto_candidates("onnx", cpu, ["dygraph"]) == []  # a named engine is not measured
    with_amp = eng.gpu_candidates(EngineOptions(amp=True))
    assert [(c.engine, c.amp, c.amp_level) for c in with_amp] == [
        ("dygraph", True, "O1"), ("dygraph", True, "O2"), ("paddle-inference", True, "O1")]
    assert [(c.engine, c.amp) for c in eng.gpu_candidates(EngineOptions(amp=False))] == [
        ("dygraph", False), ("paddle-inference", False)]
    with pytest.raises(UserError, match="never chosen by speed"):
        eng.auto_candidates("auto", cpu, ["onnx-int8"])


def test_amp_is_never_used_on_cpu(teacher, options, batches, reference):
    """The same rule as training (distill.train.device.use_amp): asked for, still off on CPU."""
    import dataclasses

    engine = build_engine("dygraph", teacher, dataclasses.replace(options, amp=True,
                                                                  amp_level="O2"))
    assert engine.info["amp"] is False and engine.info["precision"] == "fp32"
    assert engine.model is teacher.model  # no FP16 copy made
    np.testing.assert_allclose(np.concatenate([engine.logits(b) for b in batches]), reference,
                               atol=1e-5)
    _, report = labelling_engine("dygraph", teacher, batches[:1], options)
    assert report["amp"] is False and report["precision"] == "fp32"
    assert label_variant("dygraph", options, measured=True) is None  # CPU labels: today's key


def test_tensorrt_is_not_claimed_without_it():
    from distill.backends.paddle_inference import tensorrt_available, tensorrt_versions

    if paddle.device.is_compiled_with_cuda():
        pytest.skip("a CUDA build: TensorRT may really be there")
    assert tensorrt_available() is False
    assert tensorrt_versions()["compiled"] == "0.0.0"


def test_auto_times_real_engines_and_labels_with_the_fastest_that_passed(teacher, options,
                                                                         batches, reference):
    engine, report = labelling_engine("auto", teacher, batches[:2], options,
                                      candidates=("dygraph", "paddle-inference"))
    trials = report["choice"]["trials"]
    assert [t["engine"] for t in trials] == ["dygraph", "paddle-inference"]
    assert all(t["passed"] and t["rows_per_s"] > 0 and t["error"] is None for t in trials)
    assert all(t["check"]["rows"] == eng.DYGRAPH_CHECK_ROWS for t in trials)
    assert report["choice"]["sample_rows"] == 32
    rebuilt = [eng.Trial(eng.Candidate(t["engine"]), t["rows_per_s"], passed=t["passed"])
               for t in trials]
    chosen = report["choice"]["chosen"]
    assert chosen == eng.pick(rebuilt)  # the recorded timings decide, nothing else
    assert report["engine"] == engine.info["engine"] == trials[chosen]["engine"]
    assert report["amp"] is False and report["precision"] == "fp32"
    got = np.concatenate([engine.logits(b) for b in batches])
    np.testing.assert_allclose(got, reference, atol=1e-4)


def test_a_candidate_that_fails_is_recorded_and_not_chosen(teacher, options, batches, tmp_path):
    import dataclasses

    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the export cache would go")
    broken = dataclasses.replace(options, cache_root=str(blocked))
    engine, report = labelling_engine("auto", teacher, batches[:1], broken,
                                      candidates=("paddle-inference", "dygraph"))
    first, second = report["choice"]["trials"]
    assert first["error"] and not first["passed"] and first["rows_per_s"] is None
    assert second["passed"] and report["choice"]["chosen"] == 1
    assert report["engine"] == "dygraph" and engine.info["engine"] == "dygraph"


def test_soft_labels_choice_is_recorded_once_and_reused(teacher, examples, options, tmp_path,
                                                        reference, batches):
    common = dict(batch_size=8, progress=False, device="cpu", threads=1,
                  engine_cache=options.cache_root, candidates=("paddle-inference", "dygraph"))
    out = tmp_path / "labels"
    got = soft_labels(teacher, examples, out, engine="auto", **common)
    np.testing.assert_allclose(got, reference, atol=1e-4)
    report = json.loads((out / "engine.json").read_text())
    record = json.loads((out / CHOICE_FILE).read_text())
    assert report["requested"] == "auto" and report["amp"] is False
    assert len(report["choice"]["trials"]) == 2 and report["choice"]["sample_rows"] == 8
    assert record["candidate"]["engine"] == report["engine"]
    key = json.loads((out / "key.json").read_text())["key"]
    assert record["key"] == key
    # another shard (or a resumed run) of the same job builds the recorded engine, unmeasured
    sample = [batches[0]]
    _, again = engine_for_job(teacher, "auto", LabelStore(out, key), sample, options,
                              eng.weights_sha256(teacher.model), common["candidates"])
    assert again["choice_reused"] and again["engine"] == record["candidate"]["engine"]
    assert again["choice"] == record["choice"]
    # an unreadable record (or one of another job) is measured again and replaced
    (out / CHOICE_FILE).write_text("{not json")
    _, fresh = engine_for_job(teacher, "auto", LabelStore(out, key), sample, options,
                              eng.weights_sha256(teacher.model), common["candidates"])
    assert "choice_reused" not in fresh and len(fresh["choice"]["trials"]) == 2
    assert json.loads((out / CHOICE_FILE).read_text())["key"] == key
    # FP32 on CPU: the labels share the cache of a named FP32 engine
    np.testing.assert_array_equal(
        soft_labels(teacher, examples, out, engine="dygraph", **dict(common, candidates=None)),
        got)
