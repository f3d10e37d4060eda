"""Soft labels: equal to a direct forward pass, in input order; resumable, shardable, cached."""
from pathlib import Path

import numpy as np
import paddle
import pytest

from distill.cli import main as cli
from distill.data.examples import read_examples, write_examples
from distill.core.errors import UserError
from teachers.checkpoint import random_teacher, save_teacher
from teachers.config import ErnieConfig
from teachers.soft_labels import (compare_bucketing, merge_shards, parse_shard, shard_from_env,
                                  soft_labels)
from distill.text.tokenizer import WordPieceTokenizer, write_wordpiece_vocab

SMOKE = Path(__file__).resolve().parents[2] / "recipes" / "data" / "smoke"


@pytest.fixture(scope="module")
def examples():
    return read_examples(SMOKE / "train.tsv")[:45]


@pytest.fixture(scope="module")
def teacher(examples, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    write_wordpiece_vocab([ex.text_a for ex in examples], path)
    tokenizer = WordPieceTokenizer(path)
    config = ErnieConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2,
                         num_heads=2, intermediate_size=64, max_position_embeddings=64)
    return random_teacher(config, tokenizer, num_labels=3, seed=0, max_len=32)


@pytest.fixture(scope="module")
def direct(teacher, examples):
    """Logits from one forward pass per text, in input order (no padding at all)."""
    rows = []
    with paddle.no_grad():
        for ex in examples:
            enc = teacher.tokenizer.encode([ex.text_a], max_len=32)
            rows.append(teacher.model(**{k: paddle.to_tensor(v) for k, v in enc.items()}
                                      )["logits"].numpy())
    return np.concatenate(rows)


class Chunks:
    """Records chunk callbacks; raises after ``stop_after`` of them (an interrupted run)."""

    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def __call__(self, number, done):
        self.calls.append((number, done))
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            raise KeyboardInterrupt


def run(teacher, examples, out, **kwargs):
    base = dict(batch_size=4, chunk_batches=2, progress=False, device="cpu")
    base.update(kwargs)
    return soft_labels(teacher, examples, out, **base)


def test_soft_labels_equal_a_direct_forward_pass_in_input_order(tmp_path, teacher, examples,
                                                                 direct):
    logits = run(teacher, examples, tmp_path)
    assert logits.shape == (45, 3) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, direct, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "soft_labels.npy"), logits)
    plain = run(teacher, examples, tmp_path / "plain", bucket=False)
    np.testing.assert_allclose(plain, direct, atol=1e-5)
    assert not teacher.model.training


def test_repeat_is_a_cache_hit_and_a_new_max_len_is_not(tmp_path, teacher, examples):
    first = run(teacher, examples, tmp_path)
    chunks = Chunks()
    np.testing.assert_array_equal(run(teacher, examples, tmp_path, on_chunk=chunks), first)
    assert chunks.calls == []  # no batch ran
    run(teacher, examples, tmp_path, max_len=8, on_chunk=chunks)
    assert chunks.calls  # another key: recomputed


def test_interrupted_labelling_resumes_where_it_stopped(tmp_path, teacher, examples, direct):
    with pytest.raises(KeyboardInterrupt):
        run(teacher, examples, tmp_path, on_chunk=Chunks(stop_after=2))
    assert not (tmp_path / "soft_labels.npy").exists()
    rest = Chunks()
    logits = run(teacher, examples, tmp_path, on_chunk=rest)
    assert rest.calls[0] == (2, 16 + 8)  # chunks 0-1 (2 x 2 batches x 4 rows) were kept
    assert rest.calls[-1][1] == 45 and len(rest.calls) == 4  # 29 rows left: 8 batches
    np.testing.assert_allclose(logits, direct, atol=1e-5)


def test_two_shards_and_merge_equal_the_unsharded_run(tmp_path, teacher, examples, direct):
    part0 = run(teacher, examples, tmp_path, shard=(0, 2))
    np.testing.assert_allclose(part0, direct[0::2], atol=1e-5)
    with pytest.raises(UserError, match="1/2"):
        merge_shards(tmp_path, 2)
    part1 = run(teacher, examples, tmp_path, shard=(1, 2))  # completes the set: merges
    np.testing.assert_allclose(part1, direct[1::2], atol=1e-5)
    merged = np.load(tmp_path / "soft_labels.npy")
    np.testing.assert_allclose(merged, run(teacher, examples, tmp_path / "one"), atol=1e-6)
    np.testing.assert_array_equal(merge_shards(tmp_path), merged)


def test_a_rank_resumes_its_own_shard_and_rank_0_merges(tmp_path, teacher, examples, direct):
    """The data-parallel path (merge=False, one shard per rank): a rank stopped mid-way resumes
    with only its own unlabelled rows; the merge after both ranks equals the direct pass."""
    with pytest.raises(KeyboardInterrupt):
        run(teacher, examples, tmp_path, shard=(1, 2), merge=False,
            on_chunk=Chunks(stop_after=1))
    rest = Chunks()
    part1 = run(teacher, examples, tmp_path, shard=(1, 2), merge=False, on_chunk=rest)
    assert rest.calls[0] == (1, 8 + 8)  # chunk 0 (2 batches x 4 rows) kept; 14 of 22 rows left
    assert rest.calls[-1][1] == 22 and len(rest.calls) == 2  # 4 batches: 2 chunks
    np.testing.assert_allclose(part1, direct[1::2], atol=1e-5)
    assert not (tmp_path / "soft_labels.npy").exists()  # merge=False: the caller merges
    part0 = run(teacher, examples, tmp_path, shard=(0, 2), merge=False)
    np.testing.assert_allclose(part0, direct[0::2], atol=1e-5)
    np.testing.assert_allclose(merge_shards(tmp_path, 2), direct, atol=1e-5)


def test_shard_selection():
    assert parse_shard("1/4") == (1, 4)
    with pytest.raises(UserError):
        parse_shard("4/4")
    assert shard_from_env({"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2"}) == (1, 2)
    assert shard_from_env({}) == (0, 1)


def test_bucketing_throughput_is_measured_both_ways(teacher, examples):
    result = compare_bucketing(teacher, examples, batch_size=8, device="cpu")
    assert result["plain"]["sentences"] == result["bucketed"]["sentences"] == 45
    assert result["bucketed"]["padding_fraction"] < result["plain"]["padding_fraction"]
    assert result["speedup"] > 0


def test_cli_label_sharded_then_merged(tmp_path, teacher, examples, direct):
    save_teacher(teacher, tmp_path / "teacher")
    texts = tmp_path / "texts.jsonl"
    write_examples(texts, [ex.__class__(text_a=ex.text_a) for ex in examples])  # no labels
    common = ["label", "--teacher", str(tmp_path / "teacher"), "--input", str(texts),
              "--out", str(tmp_path / "labels"), "--batch-size", "8", "--device", "cpu",
              "--no-progress"]
    assert cli(common + ["--shard", "0/2"]) == 0
    assert cli(["label", "--out", str(tmp_path / "labels"), "--merge"]) == 2  # shard 1 missing
    # the precision switches are accepted (AMP and TensorRT are GPU-only: FP32 labels here)
    assert cli(common + ["--shard", "1/2", "--no-amp", "--amp-level", "O2", "--no-tensorrt"]) == 0
    assert cli(["label", "--out", str(tmp_path / "labels"), "--merge"]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "labels" / "soft_labels.npy"), direct,
                               atol=1e-5)


def test_merge_is_checked_no_duplicate_no_stray_no_gap(tmp_path, teacher, examples):
    """merge=False leaves the merge to the caller (rank 0 of a data-parallel run); the merge
    refuses a shard that labels a row twice or holds a row of another shard."""
    import shutil

    from teachers.soft_labels import KEY_FILE, LabelStore
    from distill.core.io import read_json

    for i in range(2):
        part = run(teacher, examples, tmp_path, shard=(i, 2), merge=False, engine="dygraph")
        assert len(part) == len(range(i, len(examples), 2))
    assert not (tmp_path / "soft_labels.npy").exists()  # nobody merged
    good = tmp_path.parent / "good"
    shutil.copytree(tmp_path, good)
    store = LabelStore(tmp_path, read_json(tmp_path / KEY_FILE)["key"])
    index, logits = store.done((0, 2))
    store.write_chunk((0, 2), 99, index[:3], logits[:3])  # rows 0, 2, 4 again
    with pytest.raises(UserError, match="labelled twice"):
        merge_shards(tmp_path, 2)
    (store.shard_dir((0, 2)) / "chunk-00099.npz").unlink()
    store.write_chunk((0, 2), 99, np.array([1]), logits[:1])  # row 1 belongs to shard 1
    with pytest.raises(UserError, match="outside shard 0/2"):
        merge_shards(tmp_path, 2)
    merged = merge_shards(good, 2)
    np.testing.assert_allclose(merged, run(teacher, examples, tmp_path / "one", engine="dygraph"),
                               atol=1e-5)
