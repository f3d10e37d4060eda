"""CPU cores and thread counts, portable (Linux, macOS, Windows); no Paddle."""
import os


def usable_cores() -> int:
    """CPU cores this process may run on: its affinity mask where the OS has one, else all."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux only; absent on macOS/Windows
    return len(affinity(0)) if affinity else (os.cpu_count() or 1)


def num_threads() -> int:
    """Threads for CPU math: ``OMP_NUM_THREADS`` when set, else every usable core."""
    return int(os.environ.get("OMP_NUM_THREADS") or usable_cores())
