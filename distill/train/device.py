"""Device selection, mixed precision and seeding for Paddle (imported lazily, never at start-up)."""
import os
import random

import numpy as np

from distill.core.errors import UserError


def select_device(name: str = "auto") -> str:
    """Return the Paddle device string for ``auto``/``cpu``/``gpu``/``gpu:N`` and make it current.

    ``auto`` picks the GPU when Paddle was built with CUDA and sees a device, else the CPU.
    Under ``paddle.distributed`` launch, the local rank chooses the GPU; no id is hard-coded.
    """
    import paddle

    has_gpu = paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "auto":
        name = "gpu" if has_gpu else "cpu"
    if name.startswith("gpu"):
        if not has_gpu:
            raise UserError(f"device '{name}' requested but Paddle sees no GPU; use 'cpu' or 'auto'")
        if name == "gpu":
            name = f"gpu:{int(os.environ.get('PADDLE_LOCAL_RANK', os.environ.get('FLAGS_selected_gpus', 0)))}"
    elif name != "cpu":
        raise UserError(f"unknown device '{name}'; use auto, cpu, gpu or gpu:N")
    paddle.set_device(name)
    return name


def use_amp(device: str, requested: bool = True) -> bool:
    """Mixed precision only pays (and is only supported well) on GPU."""
    return requested and device.startswith("gpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Paddle so that a run repeats exactly on the same machine."""
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)
