"""Atomic file writes, JSON helpers and checksums: every artifact lands complete or not at all."""
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator, Optional, Type, Union

from distill.core.errors import DataError, UserError

PathLike = Union[str, os.PathLike]


#: Every folder the tool creates holds this file; only such folders are ever replaced or removed.
MARKER = ".distill-owned"
#: The lock file of a run/output folder (see :func:`folder_lock`).
LOCK = ".distill-lock"
_WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device",
                 getattr(errno, "EDQUOT", -1): "disk quota exceeded",
                 errno.EROFS: "the file system is read-only",
                 errno.EACCES: "permission denied", errno.EPERM: "not permitted"}


def is_owned(folder: PathLike) -> bool:
    """True for a real folder (not a link) carrying the tool's ownership marker."""
    folder = Path(folder)
    return folder.is_dir() and not folder.is_symlink() and (folder / MARKER).is_file()


def mark_owned(folder: PathLike) -> None:
    """Put the ownership marker into ``folder`` (created by the tool)."""
    marker = Path(folder) / MARKER
    if not marker.exists():
        marker.write_text("created by ernie-distill; the tool may replace or delete this folder\n",
                          encoding="utf-8")


def ensure_owned_dir(folder: PathLike, what: str = "output folder") -> Path:
    """Create ``folder`` (marked as the tool's) or accept it if it is the tool's or empty.

    An existing non-empty folder without the marker, or a file in the way, is a ``UserError``
    naming it: the tool never adopts (and later deletes) what a user put there.
    """
    folder = Path(folder)
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"{folder}: the {what} is in the way of an existing "
                        f"{'link' if folder.is_symlink() else 'file'}; choose another path")
    if folder.is_dir() and not is_owned(folder):
        if any(p.name != LOCK for p in folder.iterdir()):
            raise UserError(f"{folder}: the {what} already exists and was not created by this tool "
                            f"(no {MARKER} file in it); choose a new or empty folder — nothing in "
                            f"it is replaced or deleted")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        mark_owned(folder)
    except OSError as err:
        raise write_error(folder, err) from None
    return folder


def remove_owned(folder: PathLike) -> bool:
    """Delete ``folder`` if the tool made it (marker present); refuse anything else. False if absent."""
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return False
    if not is_owned(folder):
        raise UserError(f"{folder}: not removed: this tool did not create it (no {MARKER} file "
                        f"in it); move it away yourself if it should be redone")
    shutil.rmtree(folder)
    return True


def write_error(path: PathLike, err: OSError) -> Exception:
    """A ``UserError`` for a disk-full / read-only / permission failure; ``err`` itself otherwise."""
    reason = _WRITE_ERRNOS.get(err.errno)
    if reason is None:
        return err
    return UserError(f"{path}: cannot write: {reason} ({err.strerror or err}); nothing was "
                     f"replaced — free space or choose a writable location and run again")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only if the block succeeds.

    Works for files and directories (write a whole directory, then it appears at once; it gets
    the ownership marker). What is replaced: an existing *file* by a file (like ``>`` in a
    shell), an existing folder only when the tool made it (marker present). A folder the tool
    did not make, a folder in the way of a file or a file in the way of a folder is a
    ``UserError`` naming it, and nothing is deleted. Disk full / read-only / permission denied
    are ``UserError`` too.
    """
    path = Path(path)

    def check(writing_dir: Optional[bool]) -> None:
        if path.is_dir() and not path.is_symlink():
            if writing_dir is False:
                raise UserError(f"{path}: is an existing folder; expected a file path (the folder "
                                f"is left as it is)")
            if not is_owned(path):
                raise UserError(f"{path}: is an existing folder this tool did not create (no "
                                f"{MARKER} file in it); not replaced — choose another path or "
                                f"move it away yourself")
        elif writing_dir and (path.exists() or path.is_symlink()):
            raise UserError(f"{path}: a file is in the way of the output folder; not replaced")

    check(None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except FileExistsError:
        raise UserError(f"{path.parent}: a file is in the way of the output folder") from None
    except NotADirectoryError:
        raise UserError(f"{path}: a parent of this path is a file, not a folder") from None
    except OSError as err:
        raise write_error(path, err) from None
    target = tmp / path.name
    try:
        try:
            yield target
            writing_dir = target.is_dir() and not target.is_symlink()
            if writing_dir:
                mark_owned(target)
            check(writing_dir)
            if writing_dir and path.is_dir():
                old = tmp / (path.name + ".old")
                os.replace(path, old)  # moved aside, then removed with tmp
            os.replace(target, path)
        except OSError as err:
            raise write_error(path, err) from None
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


def json_object_line(path: PathLike, line: int, text: str) -> dict:
    """One line of a JSONL file as a JSON object; else a ``DataError`` naming the file and line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(path, line, None, f"malformed JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(path, line, None,
                        f"expected a JSON object per line, found {type(obj).__name__}")
    return obj


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file; a folder, missing or unreadable path is a ``UserError`` naming it."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(chunk), b""):
                h.update(block)
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder; expected a file") from None
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except PermissionError:
        raise UserError(f"{path}: not readable (permission denied)") from None
    return h.hexdigest()


_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def plain_name_problem(name) -> Optional[str]:
    """Why ``name`` cannot be a file/folder name inside an output folder (None when it can).

    Plain names only: letters, digits, ``_ . -``, not starting with ``.`` or ``-``, at most
    100 characters. So no separators, no ``..``, no absolute paths, no hidden files.
    """
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name):
        return (f"{name!r} is not a plain name: use letters, digits, '_', '.', '-' (not first), "
                f"at most 100 characters, no '/' or '..'")
    return None


def fingerprint(*parts) -> str:
    """A short stable hash of JSON-serialisable parts (settings, file hashes, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def home() -> Path:
    """The cache root: ``$ERNIE_DISTILL_HOME`` or ``~/.cache/ernie-distill``."""
    return Path(os.environ.get("ERNIE_DISTILL_HOME", Path.home() / ".cache" / "ernie-distill"))


# ------------------------------------------------------------------------------ folder locks
LOCKS_ENV = "DISTILL_HELD_LOCKS"  # folders locked by an ancestor process (launched ranks inherit it)


def _process_start(pid: int) -> Optional[str]:
    """The kernel's start time of ``pid`` (clock ticks since boot), None if unknown/not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _describe_holder(info: dict) -> str:
    return (f"pid {info.get('pid', '?')} (started {info.get('started', '?')}"
            f"{', host ' + info['host'] if info.get('host') else ''}, command: "
            f"{info.get('command', '?')})")


@contextlib.contextmanager
def folder_lock(folder: PathLike, what: str = "run folder") -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the block.

    A second process fails at once with a ``UserError`` naming the holder's pid and start time.
    The lock is a kernel ``flock`` on ``folder/.distill-lock``: it dies with its process, so a
    lock left by a killed run is stale, detected (its pid is gone or is another process) and
    taken over with a warning. Processes launched by the holder (``--nproc`` ranks) inherit the
    lock through ``$DISTILL_HELD_LOCKS`` and do not take it again.
    """
    import fcntl
    import logging
    import socket
    import sys
    import time

    folder = Path(folder)
    key = str(folder.resolve())
    held = [p for p in os.environ.get(LOCKS_ENV, "").split(os.pathsep) if p]
    if key in held:  # an ancestor holds it for us
        yield folder
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except FileExistsError:
        raise UserError(f"{folder}: the {what} is in the way of an existing file") from None
    except NotADirectoryError:
        raise UserError(f"{folder}: the {what} path goes through a file") from None
    except OSError as err:
        raise write_error(folder, err) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
            except ValueError:
                info = {}
            raise UserError(f"{folder}: the {what} is in use by another distill process: "
                            f"{_describe_holder(info)}; wait for it to finish or use another "
                            f"folder") from None
        try:
            old = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "{}")
        except ValueError:
            old = {}
        if old.get("pid"):
            logging.getLogger("distill.core.io").warning(
                "%s: taking over the stale lock of %s (that process is gone)", folder,
                _describe_holder(old))
        pid = os.getpid()
        info = {"pid": pid, "process_start": _process_start(pid), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "command": " ".join(sys.argv)[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
        os.environ[LOCKS_ENV] = os.pathsep.join(held + [key])
        try:
            yield folder
        finally:
            os.environ[LOCKS_ENV] = os.pathsep.join(held)
            if not held:
                os.environ.pop(LOCKS_ENV, None)
            os.ftruncate(fd, 0)  # an empty lock file: released cleanly (not stale)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def owned_output(folder: PathLike, what: str = "output folder") -> Iterator[Path]:
    """:func:`ensure_owned_dir` then :func:`folder_lock`: the CLI's ``--out`` of a command that
    writes a folder of its own (``distill train``/``export``/``finetune``)."""
    ensure_owned_dir(folder, what)
    with folder_lock(folder, what) as locked:
        yield locked
