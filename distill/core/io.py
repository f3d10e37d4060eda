"""Atomic file writes, JSON helpers and checksums: every artifact lands complete or not at all."""
import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Type, Union

from distill.core.errors import UserError

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    Works for files and directories (write a whole directory, then it appears at once).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


def read_json(path: PathLike, error: Type[UserError] = UserError):
    """Parse a JSON file. A missing, unreadable or invalid file raises ``error`` (a ``UserError``)
    naming the file, and the line for invalid JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: missing") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; expected a JSON file") from None
    except PermissionError:
        raise error(f"{path}: not readable (permission denied)") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise error(f"{path}, line {err.lineno}: invalid JSON ({err.msg})") from None


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (settings, file hashes, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def home() -> Path:
    """The cache root: ``$ERNIE_DISTILL_HOME`` or ``~/.cache/ernie-distill``."""
    return Path(os.environ.get("ERNIE_DISTILL_HOME", Path.home() / ".cache" / "ernie-distill"))
