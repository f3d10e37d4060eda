"""Package loading with untrusted archives: paths stay inside, sizes bounded and checked against
the manifest, schema errors name the field, label count vs model outputs, fuzzing (hypothesis)."""
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from distill.core.errors import PackageError, UserError
from distill.serve.loader import PackageLimits
from distill.serve.predict import load_package


def _unpack(package, where: Path) -> Path:
    with tarfile.open(package) as tar:
        tar.extractall(where, filter="data")
    return where / "toy"


def _rehash(root: Path) -> None:
    """Rewrite the manifest's size and sha256 of every file (so deeper checks get reached)."""
    manifest = json.loads((root / "manifest.json").read_text())
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != "manifest.json":
            files[rel] = {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                          "size_bytes": p.stat().st_size}
    manifest["files"] = files
    (root / "manifest.json").write_text(json.dumps(manifest))


def _pack(root: Path, dst: Path) -> Path:
    with tarfile.open(dst, "w:gz") as tar:
        tar.add(root, arcname=root.name)
    return dst


def _edit_json(root: Path, rel: str, change) -> None:
    path = root / rel
    value = json.loads(path.read_text())
    value = change(value)
    path.write_text(json.dumps(value))


def _tar_with(dst: Path, entries) -> Path:
    """A .tar.gz from (TarInfo, bytes or None) pairs."""
    with tarfile.open(dst, "w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def _info(name, kind=tarfile.REGTYPE, **fields):
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info


@pytest.mark.parametrize("name, kind, fields, message", [
    ("toy/../evil.txt", tarfile.REGTYPE, {}, "not a plain relative path"),
    ("/tmp/evil.txt", tarfile.REGTYPE, {}, "not a plain relative path"),
    ("toy/link", tarfile.SYMTYPE, {"linkname": "/etc/passwd"}, "symbolic link"),
    ("toy/hard", tarfile.LNKTYPE, {"linkname": "toy/manifest.json"}, "hard link"),
    ("toy/dev", tarfile.CHRTYPE, {"devmajor": 1, "devminor": 3}, "device"),
    ("toy/fifo", tarfile.FIFOTYPE, {}, "fifo"),
    ("other/x.txt", tarfile.REGTYPE, {}, "one top folder"),
])
def test_entries_leaving_the_package_or_not_plain_files_are_refused_before_writing(
        package, tmp_path, name, kind, fields, message):
    with tarfile.open(package) as tar:
        good = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    data = b"x" if kind == tarfile.REGTYPE else None
    bad = _tar_with(tmp_path / "bad.tar.gz", good + [(_info(name, kind, **fields), data)])
    with pytest.raises(PackageError, match=message):
        load_package(bad)


def test_a_decompression_bomb_stops_at_the_byte_limit(tmp_path):
    zeros = b"\0" * (20 << 20)  # 20 MB of zeros: about 20 KB compressed
    bomb = _tar_with(tmp_path / "bomb.tar.gz", [(_info("toy/model.onnx"), zeros)])
    assert bomb.stat().st_size < 100_000
    with pytest.raises(PackageError, match="more than 1048576 bytes"):
        load_package(bomb, limits=PackageLimits(max_bytes=1 << 20))


def test_sizes_are_checked_against_the_manifest_before_extraction(package, tmp_path):
    root = _unpack(package, tmp_path / "a")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["model.onnx"]["size_bytes"] = 10
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match=r"model\.onnx has \d+ bytes, manifest\.json says 10"):
        load_package(_pack(root, tmp_path / "a.tar.gz"))
    manifest["files"]["model.onnx"]["size_bytes"] = 1 << 40
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="more than the limit"):
        load_package(_pack(root, tmp_path / "b.tar.gz"))


@pytest.mark.parametrize("rel, change, message", [
    ("manifest.json", lambda m: [m], "manifest.json: expected a JSON object, got list"),
    ("manifest.json", lambda m: {**m, "files": []}, "field 'files' must be a non-empty object"),
    ("config.json", lambda c: {k: v for k, v in c.items() if k != "id2label"},
     "field 'id2label' must be a non-empty object"),
    ("config.json", lambda c: {**c, "id2label": {"0": "neg", "2": "pos"}}, "keys \"0\""),
    ("config.json", lambda c: {**c, "max_length": "long"}, "field 'max_length'"),
    ("config.json", lambda c: {**c, "text_pairs": "no"}, "field 'text_pairs'"),
    ("config.json", lambda c: {**c, "model_file": "../../etc/passwd"}, "field 'model_file'"),
    ("config.json", lambda c: {**c, "model_file": "/etc/passwd"}, "field 'model_file'"),
    ("config.json", lambda c: {**c, "input_names": ["pixels"]}, "field 'input_names'"),
    ("config.json", lambda c: {**c, "id2label": {"0": "a", "1": "b", "2": "c"}},
     r"outputs of shape \(1, 2\) for one text, but config\.json field 'id2label' has 3 labels"),
    ("encoder/encoder.json", lambda e: {**e, "vocab_file": "/etc/passwd"}, "field 'vocab_file'"),
    ("encoder/encoder.json", lambda e: {**e, "vocab_file": "../manifest.json"},
     "field 'vocab_file'"),
    ("encoder/encoder.json", lambda e: {**e, "language": "klingon"}, "encoder"),
])
def test_schema_errors_name_the_file_and_field(package, tmp_path, rel, change, message):
    root = _unpack(package, tmp_path / "x")
    _edit_json(root, rel, change)
    if rel != "manifest.json":
        _rehash(root)
    with pytest.raises(PackageError, match=message):
        load_package(_pack(root, tmp_path / "x.tar.gz"))
    with pytest.raises(PackageError, match=message):
        load_package(root)  # an unpacked folder gets the same checks


def test_a_model_that_is_not_onnx_is_refused_by_name(package, tmp_path):
    root = _unpack(package, tmp_path / "x")
    (root / "model.onnx").write_bytes(b"\x08\x07garbage that is not a protobuf model")
    _rehash(root)
    with pytest.raises(PackageError, match="model.onnx is not a model ONNX Runtime can load"):
        load_package(_pack(root, tmp_path / "x.tar.gz"))


def test_symlinks_in_an_unpacked_folder_are_refused(package, tmp_path):
    root = _unpack(package, tmp_path / "x")
    (root / "model.onnx").unlink()
    (root / "model.onnx").symlink_to("/etc/passwd")
    with pytest.raises(PackageError, match="symbolic link"):
        load_package(root)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_refused_cleanly(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("fuzz") / "p.tar.gz"
    path.write_bytes(data)
    with pytest.raises(PackageError):
        load_package(path)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=12)
FILES = ("manifest.json", "config.json", "encoder/encoder.json")


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(FILES), key=st.sampled_from(
    ["files", "id2label", "max_length", "text_pairs", "input_names", "model_file", "format",
     "task", "type", "vocab_file", "language", "lowercase", "vocab_size", "name", "*whole*"]),
    value=JSON, rehash=st.booleans(), archive=st.booleans())
@example(target="config.json", key="text_pairs", value=True, rehash=True, archive=False)
def test_random_structures_in_the_package_files_load_or_raise_a_user_error(
        package, tmp_path_factory, target, key, value, rehash, archive):
    work = tmp_path_factory.mktemp("fuzz")
    root = _unpack(package, work)
    _edit_json(root, target, lambda obj: value if key == "*whole*" or not isinstance(obj, dict)
               else {**obj, key: value})
    if rehash and target != "manifest.json":
        _rehash(root)
    source = _pack(root, work / "p.tar.gz") if archive else root
    try:
        predictor = load_package(source, threads=1)
    except UserError as err:  # PackageError is a UserError
        assert str(err)
        return
    # a package that says its model reads text pairs is asked with a pair
    result = predictor.predict(["good great fun"], ["so so"] if predictor.text_pairs else None)
    assert result[0]["label"] in predictor.labels
