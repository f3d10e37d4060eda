"""Open an edge package safely: bounded extraction, paths kept inside, manifest and config checked.

A package is untrusted input (downloaded, mailed, copied from a USB stick). Loading it:

* reads the ``.tar.gz`` through a counter that stops after ``PackageLimits.max_bytes``
  decompressed bytes (a 1 MB gzip bomb is refused, not written to /tmp), and allows at most
  ``max_files`` entries;
* accepts only regular files and folders whose names are plain relative parts (letters, digits,
  ``_ . -``; no ``..``, no absolute names, no links, devices or sparse files) under ONE top
  folder; every other entry is refused by name, before anything is written;
* reads ``manifest.json`` first and checks its schema (messages name the field), then checks each
  archive member's size against the manifest BEFORE extracting it, and copies at most the declared
  number of bytes while hashing; a missing, extra, resized or altered file is refused;
* extracts by writing each member to a path built from its checked name (no ``extractall``), so
  it does not depend on ``tarfile``'s ``filter="data"`` (Python >= 3.11.4 / 3.10.12 / 3.9.17)
  and is as strict on every Python this project supports;
* checks ``config.json`` (labels, max length, task, input names, model file) with messages that
  name the field; paths named inside the package (model file, encoder files) must be plain
  relative names that the manifest lists.

The manifest proves integrity, not authenticity: its sha256 sums catch a truncated, corrupted or
partly replaced package, but whoever can change the package can also rewrite the manifest. Load
packages from sources you trust (or check the archive's own sha256 against one you got from the
producer over a trusted channel); a package can never make the loader read or write outside its
own folder, and it cannot run code (ONNX graphs run in ONNX Runtime's CPU provider; no pickle).
"""
import dataclasses
import gzip
import hashlib
import json
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from distill.core.errors import PackageError, UserError
from distill.core.io import sha256_file
from distill.text.encoders import INPUT_NAMES

MANIFEST, CONFIG, OLD_CONFIG = "manifest.json", "config.json", "preprocess.json"
ENCODER_DIR, TOKENIZER_JSON = "encoder", "tokenizer.json"
TASKS = ("text-classification", "token-classification")
_PART = re.compile(r"^\w[\w.-]*$")  # one path component: no '..', no leading '.', no '/' '\\' ':'
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class PackageLimits:
    """Bounds on what loading a package may cost (decompressed bytes, entries, JSON sizes)."""

    max_bytes: int = 4 << 30          # all decompressed bytes of the archive (4 GiB)
    max_files: int = 10_000           # entries in the archive
    max_json_bytes: int = 16 << 20    # manifest.json / config.json each (16 MiB)


@dataclasses.dataclass
class PackageConfig:
    """``config.json``, checked: what the predictor needs besides the model and encoder."""

    labels: List[str]
    max_len: int
    text_pairs: bool
    input_names: List[str]
    model_file: str
    task: str = "text-classification"
    format: str = "onnx"
    token: Dict[str, Any] = dataclasses.field(default_factory=dict)  # token: scheme, unit[, crf]


def safe_relpath(rel: Any, field: str, shown) -> str:
    """``rel`` if it is a plain relative POSIX path (``a/b.txt``), else ``PackageError``."""
    if not isinstance(rel, str) or not rel:
        raise PackageError(f"{shown}: {field} must be a relative file name, got {rel!r}")
    parts = rel.split("/")
    if any(not _PART.match(p) for p in parts) or len(parts) > 8:
        raise PackageError(f"{shown}: {field} {rel!r} is not a plain relative path inside the "
                           f"package (only letters, digits, '_', '.', '-' and '/' between names; "
                           f"no '..', no absolute path)")
    return rel


# --------------------------------------------------------------------------- manifest / config

def check_manifest(manifest: Any, shown) -> Dict[str, Any]:
    """Validate the manifest's schema (the fields the loader relies on); return it."""
    where = f"{shown}: {MANIFEST}"
    if not isinstance(manifest, dict):
        raise PackageError(f"{where}: expected a JSON object, got {type(manifest).__name__}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise PackageError(f"{where}: field 'files' must be a non-empty object "
                           f"{{relative path: {{sha256, size_bytes}}}}, got {_kind(files)}")
    for rel, entry in files.items():
        safe_relpath(rel, f"{MANIFEST} field 'files' key", shown)
        if rel == MANIFEST:
            raise PackageError(f"{where}: field 'files' must not list {MANIFEST} itself")
        if not isinstance(entry, dict):
            raise PackageError(f"{where}: field 'files.{rel}' must be an object with sha256 and "
                               f"size_bytes, got {_kind(entry)}")
        digest, size = entry.get("sha256"), entry.get("size_bytes")
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise PackageError(f"{where}: field 'files.{rel}.sha256' must be 64 lowercase hex "
                               f"digits, got {digest!r}")
        if not _is_int(size) or size < 0:
            raise PackageError(f"{where}: field 'files.{rel}.size_bytes' must be a "
                               f"non-negative integer, got {size!r}")
    for key in ("name", "teacher", "student"):
        if key in manifest and not isinstance(manifest[key], str):
            raise PackageError(f"{where}: field '{key}' must be a string, got "
                               f"{_kind(manifest[key])}")
    return manifest


def check_config(raw: Any, listed: Dict[str, Any], shown, file: str = CONFIG) -> PackageConfig:
    """Validate ``config.json`` (or an old package's ``preprocess.json``) into a PackageConfig."""
    where = f"{shown}: {file}"
    if not isinstance(raw, dict):
        raise PackageError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    if file == OLD_CONFIG:  # packages written before config.json existed
        labels = raw.get("labels")
        if not isinstance(labels, list):
            raise PackageError(f"{where}: field 'labels' must be a list of label names, got "
                               f"{_kind(labels)}")
        id2label: Any = {str(i): label for i, label in enumerate(labels)}
        max_len, field_len = raw.get("max_len"), "max_len"
    else:
        id2label, max_len, field_len = raw.get("id2label"), raw.get("max_length"), "max_length"
    if not isinstance(id2label, dict) or not id2label:
        raise PackageError(f"{where}: field 'id2label' must be a non-empty object "
                           f"{{\"0\": label, ...}}, got {_kind(id2label)}")
    if sorted(id2label, key=lambda k: (len(k), k)) != [str(i) for i in range(len(id2label))]:
        raise PackageError(f"{where}: field 'id2label' must have the keys \"0\"..\""
                           f"{len(id2label) - 1}\", got {sorted(id2label)[:5]}")
    labels = [id2label[str(i)] for i in range(len(id2label))]
    for i, label in enumerate(labels):
        if not isinstance(label, str) or not label:
            raise PackageError(f"{where}: field 'id2label.{i}' must be a non-empty string, got "
                               f"{label!r}")
    if len(set(labels)) != len(labels):
        raise PackageError(f"{where}: field 'id2label' repeats a label name")
    if not _is_int(max_len) or not 1 <= max_len <= 65536:
        raise PackageError(f"{where}: field '{field_len}' must be an integer in 1..65536, got "
                           f"{max_len!r}")
    text_pairs = raw.get("text_pairs", False)
    if not isinstance(text_pairs, bool):
        raise PackageError(f"{where}: field 'text_pairs' must be true or false, got "
                           f"{text_pairs!r}")
    names = raw.get("input_names", list(INPUT_NAMES))
    if not isinstance(names, list) or not names or any(n not in INPUT_NAMES for n in names):
        raise PackageError(f"{where}: field 'input_names' must be a non-empty list drawn from "
                           f"{', '.join(INPUT_NAMES)}, got {names!r}")
    task = raw.get("task", TASKS[0])
    if task not in TASKS:
        raise PackageError(f"{where}: field 'task' must be one of {', '.join(TASKS)}, got "
                           f"{task!r}")
    model_file = safe_relpath(raw.get("model_file", "model.onnx"), f"{file} field 'model_file'",
                              shown)
    if model_file not in listed:
        raise PackageError(f"{where}: field 'model_file' names {model_file}, which is not in "
                           f"{MANIFEST}")
    fmt = raw.get("format", "onnx")
    if not isinstance(fmt, str):
        raise PackageError(f"{where}: field 'format' must be a string, got {_kind(fmt)}")
    token = {}
    if task == "token-classification":  # NER packages: how to split text and read tags
        token = raw.get("token")
        if not isinstance(token, dict) or token.get("scheme") not in ("bio", "bioes", "bmes") \
                or token.get("unit") not in ("char", "word"):
            raise PackageError(f"{where}: field 'token' must be {{\"scheme\": bio|bioes|bmes, "
                               f"\"unit\": char|word}}, got {token!r}")
        if "crf" in token:
            _check_crf(token["crf"], len(labels), where)
    return PackageConfig(labels=labels, max_len=int(max_len), text_pairs=text_pairs,
                         input_names=list(names), model_file=model_file, task=task, format=fmt,
                         token=dict(token))


def _check_crf(crf: Any, num_labels: int, where) -> None:
    """A CRF tagger's ``token.crf``: ``transitions`` C x C, ``start`` and ``end`` C numbers."""
    shapes = {"transitions": (num_labels, num_labels), "start": (num_labels,),
              "end": (num_labels,)}
    try:
        ok = isinstance(crf, dict) and all(
            np.asarray(crf[k], dtype=np.float64).shape == shape for k, shape in shapes.items())
    except (KeyError, TypeError, ValueError):
        ok = False
    if not ok:
        raise PackageError(f"{where}: field 'token.crf' must hold 'transitions' "
                           f"({num_labels} x {num_labels} numbers), 'start' and 'end' "
                           f"({num_labels} numbers each) for the {num_labels} labels")


def check_encoder_files(encoder_meta: Any, listed: Dict[str, Any], shown) -> None:
    """Files named by ``encoder/encoder.json`` must be plain names inside ``encoder/``, listed."""
    where = f"{shown}: {ENCODER_DIR}/encoder.json"
    if not isinstance(encoder_meta, dict):
        raise PackageError(f"{where}: expected a JSON object, got {type(encoder_meta).__name__}")
    for key in ("vocab", "vocab_file", "model"):
        if key in encoder_meta:
            name = encoder_meta[key]
            if not isinstance(name, str) or not _PART.match(name):
                raise PackageError(f"{where}: field '{key}' must be a plain file name inside "
                                   f"{ENCODER_DIR}/, got {name!r}")
            if f"{ENCODER_DIR}/{name}" not in listed:
                raise PackageError(f"{where}: field '{key}' names {ENCODER_DIR}/{name}, which is "
                                   f"not in {MANIFEST}")


def _kind(value) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_json_bytes(data: bytes, what: str, shown) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PackageError(f"{shown}: {what} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise PackageError(f"{shown}: {what}, line {err.lineno}: invalid JSON ({err.msg})") \
            from None
    except RecursionError:
        raise PackageError(f"{shown}: {what}: JSON nested too deeply") from None


def read_json_file(path: Path, what: str, shown, limits: PackageLimits) -> Any:
    if path.stat().st_size > limits.max_json_bytes:
        raise PackageError(f"{shown}: {what} is larger than {limits.max_json_bytes} bytes")
    return read_json_bytes(path.read_bytes(), what, shown)


# ------------------------------------------------------------------------------------ folders

def verify_dir(root: Path, shown=None, limits: PackageLimits = PackageLimits()) -> Dict[str, Any]:
    """Check an unpacked package folder against its manifest; return the manifest."""
    shown = shown or root
    manifest_path = root / MANIFEST
    if manifest_path.is_symlink() or not manifest_path.is_file():
        raise PackageError(f"{shown}: {MANIFEST} is missing")
    manifest = check_manifest(read_json_file(manifest_path, MANIFEST, shown, limits), shown)
    listed = manifest["files"]
    total = sum(entry["size_bytes"] for entry in listed.values())
    if total > limits.max_bytes:
        raise PackageError(f"{shown}: {MANIFEST} lists {total} bytes, more than the limit of "
                           f"{limits.max_bytes}")
    present: List[str] = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_symlink():
            raise PackageError(f"{shown}: {rel} is a symbolic link; packages hold only files")
        if p.is_file():
            present.append(rel)
    for rel in sorted(listed):
        entry, file = listed[rel], root / rel
        if not file.is_file():
            raise PackageError(f"{shown}: file {rel} is missing (listed in {MANIFEST})")
        if file.stat().st_size != entry["size_bytes"]:
            raise PackageError(f"{shown}: file {rel} has {file.stat().st_size} bytes, "
                               f"{MANIFEST} says {entry['size_bytes']}")
        if sha256_file(file) != entry["sha256"]:
            raise PackageError(f"{shown}: file {rel} does not match its sha256 in {MANIFEST} "
                               f"(corrupted or modified)")
    extra = sorted(set(present) - set(listed) - {MANIFEST})
    if extra:
        raise PackageError(f"{shown}: file {extra[0]} is not listed in {MANIFEST}")
    return manifest


# ----------------------------------------------------------------------------------- archives

class _BoundedStream:
    """A seekable read-only view of a decompressed stream that refuses to go past ``limit``."""

    def __init__(self, raw, limit: int, shown):
        self.raw, self.limit, self.shown = raw, limit, shown

    def _refuse(self):
        raise PackageError(f"{self.shown}: more than {self.limit} bytes once decompressed; "
                           f"refused (the limit is PackageLimits.max_bytes)")

    def read(self, size: int = -1) -> bytes:
        room = self.limit - self.raw.tell()
        if size is None or size < 0 or size > room + 1:
            size = room + 1
        data = self.raw.read(size)
        if self.raw.tell() > self.limit:
            self._refuse()
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: offset, 1: self.raw.tell() + offset}.get(whence)
        if target is None:  # SEEK_END would decompress everything
            raise PackageError(f"{self.shown}: unsupported seek in a package archive")
        if target > self.limit:
            self._refuse()
        return self.raw.seek(target)

    def tell(self) -> int:
        return self.raw.tell()


def extract_archive(path: Path, dest: Path, limits: PackageLimits = PackageLimits()) -> Path:
    """Check and extract ``path`` (a package ``.tar.gz``) into ``dest``; return its top folder.

    Nothing is written before every entry's name, type and size has been checked against the
    manifest; each file is hashed while it is copied. Raises ``PackageError``.
    """
    try:
        with gzip.open(path, "rb") as gz:
            stream = _BoundedStream(gz, limits.max_bytes, path)
            with tarfile.open(fileobj=stream, mode="r:") as tar:  # type: ignore[arg-type]
                top, files = _check_members(tar, path, limits)
                manifest_member = files.pop(MANIFEST, None)
                if manifest_member is None:
                    raise PackageError(f"{path}: {MANIFEST} is missing")
                if manifest_member.size > limits.max_json_bytes:
                    raise PackageError(f"{path}: {MANIFEST} is larger than "
                                       f"{limits.max_json_bytes} bytes")
                manifest_bytes = _read_member(tar, manifest_member)
                manifest = check_manifest(read_json_bytes(manifest_bytes, MANIFEST, path), path)
                listed = manifest["files"]
                _check_against_manifest(files, listed, path, limits)
                root = dest / top
                root.mkdir()
                (root / MANIFEST).write_bytes(manifest_bytes)
                for rel in sorted(files):
                    _extract_checked(tar, files[rel], root, rel, listed[rel], path)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise PackageError(f"{path}: not a readable .tar.gz package ({err})") from None
    except OSError as err:
        if err.errno is None:  # gzip/tarfile format errors raised as a bare OSError
            raise PackageError(f"{path}: not a readable .tar.gz package ({err})") from None
        raise UserError(f"{path}: cannot unpack the package into {dest} ({err.strerror})") \
            from None
    return root


def _check_members(tar: tarfile.TarFile, shown, limits: PackageLimits) \
        -> Tuple[str, Dict[str, tarfile.TarInfo]]:
    """Every entry's name and type checked; returns the top folder and {relative path: member}."""
    tops, files, total = set(), {}, 0
    for count, member in enumerate(tar, 1):
        if count > limits.max_files:
            raise PackageError(f"{shown}: more than {limits.max_files} entries; refused")
        name = member.name
        kind = ("symbolic link" if member.issym() else "hard link" if member.islnk()
                else "fifo" if member.isfifo() else "device" if member.isdev() else "sparse file" if member.issparse()
                else None)
        if kind is None and not (member.isfile() or member.isdir()):
            kind = "special entry"
        if kind:
            raise PackageError(f"{shown}: entry {name!r} is a {kind}; packages hold only files "
                               f"and folders")
        parts = name.rstrip("/").split("/")
        if any(not _PART.match(p) for p in parts):
            raise PackageError(f"{shown}: entry {name!r} is not a plain relative path (absolute, "
                               f"'..' or unusual characters); refused")
        tops.add(parts[0])
        if len(tops) > 1:
            raise PackageError(f"{shown}: expected one top folder in the archive, found "
                               f"{', '.join(sorted(tops))}")
        if member.isfile():
            if len(parts) < 2:
                raise PackageError(f"{shown}: file {name!r} is outside the package's top folder")
            rel = "/".join(parts[1:])
            if rel in files:
                raise PackageError(f"{shown}: entry {name!r} appears twice")
            total += member.size
            if total > limits.max_bytes:
                raise PackageError(f"{shown}: files add up to more than {limits.max_bytes} bytes;"
                                   f" refused")
            files[rel] = member
    if not tops:
        raise PackageError(f"{shown}: expected one top folder in the archive, found nothing")
    return tops.pop(), files


def _check_against_manifest(files: Dict[str, tarfile.TarInfo], listed: Dict[str, Any], shown,
                            limits: PackageLimits) -> None:
    declared = sum(entry["size_bytes"] for entry in listed.values())
    if declared > limits.max_bytes:
        raise PackageError(f"{shown}: {MANIFEST} lists {declared} bytes, more than the limit of "
                           f"{limits.max_bytes}")
    for rel in sorted(files):
        if rel not in listed:
            raise PackageError(f"{shown}: file {rel} is not listed in {MANIFEST}")
        if files[rel].size != listed[rel]["size_bytes"]:
            raise PackageError(f"{shown}: file {rel} has {files[rel].size} bytes, {MANIFEST} "
                               f"says {listed[rel]['size_bytes']}")
    for rel in sorted(listed):
        if rel not in files:
            raise PackageError(f"{shown}: file {rel} is missing (listed in {MANIFEST})")
    paths = set(files)
    for rel in paths:  # a file may not also be a folder ("a" and "a/b")
        parent = rel.rsplit("/", 1)[0] if "/" in rel else None
        while parent:
            if parent in paths:
                raise PackageError(f"{shown}: {parent} is both a file and a folder")
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file
    return handle.read(member.size)


def _extract_checked(tar: tarfile.TarFile, member: tarfile.TarInfo, root: Path, rel: str,
                     entry: Dict[str, Any], shown) -> None:
    target = root.joinpath(*rel.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tar.extractfile(member)
    assert handle is not None
    digest, left = hashlib.sha256(), entry["size_bytes"]
    with open(target, "xb") as out:  # "x": never follows or replaces anything already there
        while left > 0:
            block = handle.read(min(_CHUNK, left))
            if not block:
                raise PackageError(f"{shown}: file {rel} is truncated")
            digest.update(block)
            out.write(block)
            left -= len(block)
    if digest.hexdigest() != entry["sha256"]:
        raise PackageError(f"{shown}: file {rel} does not match its sha256 in {MANIFEST} "
                           f"(corrupted or modified)")


def read_config(root: Path, listed: Dict[str, Any], shown, limits: PackageLimits) \
        -> PackageConfig:
    """``config.json`` (or an old package's ``preprocess.json``), checked."""
    for file in (CONFIG, OLD_CONFIG):
        if file in listed:
            return check_config(read_json_file(root / file, file, shown, limits), listed, shown,
                                file)
    raise PackageError(f"{shown}: file {CONFIG} is missing (not in {MANIFEST})")

