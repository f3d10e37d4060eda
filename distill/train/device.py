"""Device selection, mixed precision and seeding for Paddle (imported lazily, never at start-up).

Device strings: ``auto`` (the GPU when Paddle sees one, else the CPU), ``cpu``, ``gpu`` (the GPU
this process was given) and ``gpu:N``. Under ``paddle.distributed.launch --gpus 2,3`` each process
gets its GPU in ``FLAGS_selected_gpus`` (an id among the visible devices: 2, then 3), which wins
over ``PADDLE_LOCAL_RANK`` (0, then 1): the local rank is only the fallback when the launcher set
no device list.
"""
import contextlib
import io
import os
import random
import re
import sys
from dataclasses import dataclass
from typing import Mapping, Optional

import numpy as np

from distill.core.errors import UserError

# Paddle's start-up notice when OMP_NUM_THREADS > 1 (``paddle.base.__bootstrap__``): this package
# sets the variable on purpose (``distill/__init__``), and the OpenBLAS failure it warns of does
# not concern the MKL wheel the lock pins.
THREADS_NOTICE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY.")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|gpu)(?::(\d+))?$")
AMP_LEVELS = ("O1", "O2")


def import_paddle() -> None:
    """Import Paddle once, holding back only its ``THREADS_NOTICE`` (its other start-up output
    passes through); a ``UserError`` saying how to install it when it does not import."""
    if sys.modules.get("paddle") is not None:
        return
    held = io.StringIO()
    try:
        with contextlib.redirect_stderr(held):
            import paddle  # noqa: F401
    except ImportError as err:
        raise UserError(f"this needs Paddle, which does not import here ({err}); install the "
                        "training stack: pip install \"ernie-distill[train]\" (the runtime "
                        "install only runs packages: distill predict, distill serve)") from None
    finally:
        sys.stderr.write("".join(line for line in held.getvalue().splitlines(True)
                                 if not line.startswith(THREADS_NOTICE)))


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed device string: ``kind`` is auto/cpu/gpu, ``index`` the GPU id when given."""

    kind: str
    index: Optional[int] = None


def parse_device(name: str) -> DeviceSpec:
    """``"gpu:1"`` -> ``DeviceSpec("gpu", 1)``; UserError for anything else than auto/cpu/gpu/gpu:N."""
    match = DEVICE_PATTERN.match(str(name).strip().lower())
    if not match or (match.group(2) is not None and match.group(1) != "gpu"):
        raise UserError(f"unknown device '{name}'; use auto, cpu, gpu or gpu:N")
    index = match.group(2)
    return DeviceSpec(match.group(1), None if index is None else int(index))


def launched_gpu(environ: Optional[Mapping[str, str]] = None) -> int:
    """The GPU id this process should use when the device string says just ``gpu``:
    the launcher's ``FLAGS_selected_gpus`` (first entry), else ``PADDLE_LOCAL_RANK``, else 0."""
    environ = os.environ if environ is None else environ
    selected = (environ.get("FLAGS_selected_gpus") or "").split(",")[0].strip()
    if selected:
        if not selected.isdigit():
            raise UserError(f"FLAGS_selected_gpus={environ['FLAGS_selected_gpus']!r}: expected "
                            "GPU ids such as 0 or 2,3")
        return int(selected)
    rank = (environ.get("PADDLE_LOCAL_RANK") or "").strip()
    return int(rank) if rank.isdigit() else 0


def route_device(name: str, gpu_count: int, environ: Optional[Mapping[str, str]] = None) -> str:
    """The Paddle device string (``cpu`` or ``gpu:N``) for ``name`` on a machine with
    ``gpu_count`` GPUs visible to Paddle (no Paddle call: testable on CPU)."""
    spec = parse_device(name)
    kind = spec.kind
    if kind == "auto":
        kind = "gpu" if gpu_count > 0 else "cpu"
    if kind == "cpu":
        return "cpu"
    if gpu_count <= 0:
        raise UserError(f"device '{name}' requested but Paddle sees no GPU; use 'cpu' or 'auto'")
    index = spec.index if spec.index is not None else launched_gpu(environ)
    if index >= gpu_count:
        raise UserError(f"device '{name}' resolves to gpu:{index} but Paddle sees only "
                        f"{gpu_count} GPU(s) (ids 0-{gpu_count - 1})")
    return f"gpu:{index}"


def gpu_count() -> int:
    import paddle

    if not paddle.device.is_compiled_with_cuda():
        return 0
    return int(paddle.device.cuda.device_count())


def select_device(name: str = "auto") -> str:
    """Return the Paddle device string for ``auto``/``cpu``/``gpu``/``gpu:N`` and make it current
    (``route_device`` decides; under the launcher, ``gpu`` is the launcher's GPU)."""
    import paddle

    device = route_device(name, gpu_count())
    paddle.set_device(device)
    return device


def place_name(device: str) -> str:
    """How Paddle prints the place of a tensor on ``device`` (``cpu`` -> ``Place(cpu)``)."""
    return f"Place({device})"


def place_layers(device: str, *layers) -> None:
    """Move every given layer (None skipped) to ``device``: the model, the loss (its projection
    layers) and a teacher the loss runs internally must all sit where the model is.

    A layer already there is left alone (on CPU nothing moves: the one-process run is
    unchanged): ``Layer.to`` fails on Paddle 2.6's LSTM, whose zero-size ``_dropout_state``
    buffer (place "undefined") cannot be copied (measured: BiLSTM students on CPU)."""
    for layer in layers:
        if layer is not None and layer_devices(layer) - {place_name(device)}:
            layer.to(device=device)


def layer_devices(layer) -> set:
    """The places (as strings, e.g. ``Place(cpu)``) of all parameters and buffers of ``layer``
    (buffers not allocated yet, such as an RNN's dropout state, have no place and are skipped)."""
    tensors = list(layer.parameters()) + list(layer.buffers())
    return {str(t.place) for t in tensors} - {"Place(undefined:0)"}


def use_amp(device: str, requested: bool = True) -> bool:
    """Mixed precision only pays (and is only supported well) on GPU: off on CPU, whatever asked."""
    return bool(requested) and device.startswith("gpu")


def amp_level(level: str) -> str:
    """Check an AMP level: ``O1`` (white-listed ops in FP16, weights FP32) or ``O2`` (weights
    in FP16 with FP32 master copies)."""
    if level not in AMP_LEVELS:
        raise UserError(f"amp_level must be one of {', '.join(AMP_LEVELS)}, got {level!r}")
    return level


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Paddle so that a run repeats exactly on the same machine."""
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
