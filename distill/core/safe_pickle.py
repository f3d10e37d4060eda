"""Read ``paddle.save``'d state files without running code from them.

``paddle.load`` is ``pickle.load``: a crafted ``.pdparams`` runs whatever it names. This module
reads the same files with a restricted unpickler that resolves only the few globals a saved
state needs (numpy's array reconstruction, ``dtype``, numpy scalars, ``OrderedDict``, ``tuple``
for Paddle 2.1 tensors, ``_codecs.encode`` for protocol-2 bytes) and refuses every other global
with a :class:`RefusedGlobal` naming the file and the global, *before* anything is called. The
result is then checked to hold only dicts/lists/tuples of str, numbers, bool, None, bytes and
numeric numpy arrays (object arrays are refused).

Paddle's own conventions are applied like ``paddle.load(..., return_numpy=True)`` does: big
parameters split over several keys (``UnpackBigParamInfor@@``) are joined, the name table
(``StructuredToParameterName@@``) is dropped and ``(name, ndarray)`` pairs (Paddle 2.1 tensors)
become the array. ``layer.set_state_dict`` and ``Tensor.set_value`` accept numpy arrays, so
callers need nothing else. No Paddle import here.

Every failure is a :class:`StateFileError` (a ``UserError``, exit 2) naming the file; run-folder
readers catch it to treat a truncated or corrupt checkpoint as "not done".
"""
import collections
import io
import pickle
import pickletools
from pathlib import Path
from typing import Any, Dict, Union

import numpy as np

from distill.core.errors import UserError

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct, scalar as _scalar
except ImportError:  # pragma: no cover  (numpy 1.x)
    from numpy.core.multiarray import _reconstruct, scalar as _scalar

NAME_TABLE = "StructuredToParameterName@@"
BIG_PARAMS = "UnpackBigParamInfor@@"
MAX_DEPTH = 64

# (module, name) -> the object handed to the unpickler. Nothing else resolves.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "tuple"): tuple,
    ("__builtin__", "tuple"): tuple,
    ("_codecs", "encode"): None,  # filled below: a bytes-only wrapper
}


def _codecs_encode(text, encoding="utf-8"):
    """``_codecs.encode`` as protocol-2 pickles of bytes use it: str -> bytes, latin-1 only."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in (
            "latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(text).__name__}, {encoding!r}) refused")
    return text.encode("latin-1")


_ALLOWED[("_codecs", "encode")] = _codecs_encode

PathLike = Union[str, Path]


class StateFileError(UserError):
    """A state file that cannot be read safely: truncated, corrupt, or naming a refused global."""

    def __init__(self, path, problem: str):
        self.path, self.problem = str(path), problem
        super().__init__(f"{path}: {problem}")


class RefusedGlobal(StateFileError):
    """The file asks to import something outside the allow-list (it may try to run code)."""

    def __init__(self, path, module: str, name: str):
        self.module, self.name = module, name
        super().__init__(path, f"refused to load: the file names the Python global "
                               f"'{module}.{name}', which a saved state dict never needs "
                               f"(it may be trying to run code); not loaded")


class _Restricted(pickle.Unpickler):
    def __init__(self, f, path: str):
        super().__init__(f, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise RefusedGlobal(self._path, module, name)
        return found

    def persistent_load(self, pid):
        raise StateFileError(self._path, "refused to load: the file uses persistent ids "
                                         "(not a paddle.save'd state dict)")


def _check(obj, path: str, where: str, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise StateFileError(path, f"nested deeper than {MAX_DEPTH} levels at {where or 'top'}")
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise StateFileError(path, f"refused to load: {where or 'top'} is an array of Python "
                                       "objects (only numeric arrays are accepted)")
        return
    if isinstance(obj, np.generic):
        if isinstance(obj, np.object_) or obj.dtype.hasobject:
            raise StateFileError(path, f"refused to load: {where or 'top'} is a Python object")
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, (str, int)):
                raise StateFileError(path, f"refused to load: key {key!r} at {where or 'top'} "
                                           "is not a string")
            _check(value, path, f"{where}/{key}" if where else str(key), depth + 1)
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check(value, path, f"{where}[{i}]", depth + 1)
        return
    raise StateFileError(path, f"refused to load: {where or 'top'} is a "
                               f"{type(obj).__module__}.{type(obj).__name__}")


def _paddle_conventions(obj, path: str):
    """Apply what ``paddle.load(return_numpy=True)`` does to a loaded state."""
    if isinstance(obj, dict):
        if BIG_PARAMS in obj:
            info = obj.pop(BIG_PARAMS)
            try:
                for key, value in dict(info).items():
                    parts = [obj.pop(part) for part in value["slices"]]
                    obj[key] = np.concatenate(parts).reshape(value["OriginShape"])
            except (KeyError, TypeError, ValueError) as err:
                raise StateFileError(path, f"corrupt split-parameter table ({err})") from None
        obj.pop(NAME_TABLE, None)
        return type(obj)((k, _paddle_conventions(v, path)) for k, v in obj.items())
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[0], str) \
            and isinstance(obj[1], np.ndarray):
        return obj[1]  # a Paddle 2.1 tensor: (name, data)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_paddle_conventions(v, path) for v in obj)
    return obj


def _check_opcodes(data: bytes, path: str) -> None:
    """Refuse memo indices a pickler never writes: a huge one makes the C unpickler allocate
    (and zero) a memo table of up to 64 GB before anything else can fail."""
    puts = 0
    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if not isinstance(arg, int) or arg < 0 or arg > puts:
                    raise StateFileError(path, f"corrupt: memo index {arg} out of sequence; not "
                                               "a paddle.save'd state")
                puts = max(puts, arg + 1)
            elif op.name == "MEMOIZE":
                puts += 1
    except StateFileError:
        raise
    except Exception as err:  # noqa: BLE001  (genops raises ValueError and others on bad bytes)
        raise StateFileError(path, f"truncated or corrupt, not a paddle.save'd state "
                                   f"({type(err).__name__}: {err})") from None


def loads_state(data: bytes, path: str = "<bytes>") -> Any:
    """:func:`load_state` for bytes already read (``path`` is only used in messages)."""
    if not data:
        raise StateFileError(path, "empty file (truncated?); not a paddle.save'd state")
    _check_opcodes(data, path)
    try:
        obj = _Restricted(io.BytesIO(data), path).load()
    except StateFileError:
        raise
    except RecursionError:
        raise StateFileError(path, "nested too deeply; not a paddle.save'd state") from None
    except MemoryError:
        raise StateFileError(path, "declares more data than fits in memory; corrupt") from None
    except Exception as err:  # noqa: BLE001  (pickle raises many types for corrupt bytes)
        raise StateFileError(path, f"truncated or corrupt, not a paddle.save'd state "
                                   f"({type(err).__name__}: {err})") from None
    try:
        _check(obj, path, "")
        return _paddle_conventions(obj, path)
    except RecursionError:
        raise StateFileError(path, "nested too deeply; not a paddle.save'd state") from None


def load_state(path: PathLike) -> Any:
    """The object ``paddle.save`` wrote to ``path``, read without running code from the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise StateFileError(path, "is a folder, expected a file") from None
    except FileNotFoundError:
        raise StateFileError(path, "missing") from None
    except OSError as err:
        raise StateFileError(path, f"cannot read ({err.strerror or err})") from None
    return loads_state(data, str(path))


def load_state_dict(path: PathLike) -> Dict[str, np.ndarray]:
    """A flat ``{name: ndarray}`` state dict (model weights) read from ``path``."""
    state = load_state(path)
    if not isinstance(state, dict):
        raise StateFileError(path, f"expected a dict of tensors, got {type(state).__name__}")
    out = {}
    for key, value in state.items():
        if not isinstance(value, (np.ndarray, np.generic)):
            raise StateFileError(path, f"entry '{key}' is a {type(value).__name__}, "
                                       "expected a tensor")
        out[str(key)] = np.asarray(value)
    return out
