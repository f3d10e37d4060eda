"""Data-parallel runs on ``paddle.distributed``: who am I, the collectives we use, and the launcher.

A run with N processes is started by Paddle's own launcher (``python -m paddle.distributed.launch``),
never by a home-made pool: ``launch_command`` builds the command, ``launch`` runs it. The launcher
gives each process ``PADDLE_TRAINER_ID`` (global rank) and ``PADDLE_TRAINERS_NUM`` (world size);
on CPU the collectives run on gloo, on GPUs on NCCL, with the same code.

    distill run R.yaml --nproc 2                    # becomes, on this machine:
    python -m paddle.distributed.launch --nproc_per_node 2 --log_dir RUN/launch \\
        PYTHON -u -m distill run R.yaml ...

On CPU each process gets ``cores / nproc`` threads (``OMP_NUM_THREADS``) so processes do not
fight over the cores. No Paddle import at module load (the CLI imports this to build the command).
"""
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Mapping, Optional, Sequence

from distill.core.errors import UserError
from distill.core.runtime import usable_cores

WORLD_ENV = "PADDLE_TRAINERS_NUM"
RANK_ENV = "PADDLE_TRAINER_ID"
NPROC_ENV = "DISTILL_NPROC"  # set by `distill run --nproc` for the launched processes


@dataclass(frozen=True)
class World:
    """This process's place in the job: global ``rank`` of ``size`` processes."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, results and reports."""
        return self.rank == 0


def world(environ: Optional[Mapping[str, str]] = None) -> World:
    """The ``World`` from the launcher's environment (``World(0, 1)`` outside a launch)."""
    environ = os.environ if environ is None else environ
    try:
        size = int(environ.get(WORLD_ENV, "1") or 1)
        rank = int(environ.get(RANK_ENV, "0") or 0)
    except ValueError:
        raise UserError(f"{RANK_ENV}/{WORLD_ENV} must be integers, got "
                        f"{environ.get(RANK_ENV)!r}/{environ.get(WORLD_ENV)!r}") from None
    if size < 1 or not 0 <= rank < size:
        raise UserError(f"{RANK_ENV}={rank} is not below {WORLD_ENV}={size}")
    return World(rank, size)


_initialised = False


def init() -> World:
    """Join the process group once (``paddle.distributed.init_parallel_env``) when launched
    with more than one process; a no-op otherwise. Returns the ``World``."""
    global _initialised
    me = world()
    if me.distributed and not _initialised:
        import paddle.distributed as dist

        dist.init_parallel_env()
        _initialised = True
    return me


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if init().distributed:
        import paddle.distributed as dist

        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` (any picklable value) on every rank; decisions such as early
    stopping and the best epoch are taken from rank 0 so no rank can diverge."""
    if not init().distributed:
        return obj
    import paddle.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wait_for(check: Callable[[], bool], what: str, poll_s: float = 0.2,
             timeout_s: Optional[float] = None) -> None:
    """Poll ``check()`` until it is true (waiting on rank 0's files through the shared file
    system; no collective, so no gloo/NCCL timeout however long rank 0 works)."""
    start = time.monotonic()
    while not check():
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise TimeoutError(f"waited {timeout_s:.0f} s for {what}")
        time.sleep(poll_s)


def threads_per_process(nproc: int, cores: Optional[int] = None) -> int:
    """CPU threads for each of ``nproc`` processes on this machine (at least 1)."""
    return max(1, (cores or usable_cores()) // max(1, nproc))


def check_master(master: Optional[str]) -> Optional[str]:
    if master is None:
        return None
    host, _, port = master.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--master {master}: expected host:port, e.g. 10.0.0.1:8090")
    return master


def launch_command(args: Sequence[str], nproc: int, nnodes: int = 1,
                   master: Optional[str] = None, log_dir=None,
                   devices: Optional[str] = None, python: Optional[str] = None) -> List[str]:
    """The ``paddle.distributed.launch`` command running ``python -u -m distill ARGS`` in
    ``nproc`` processes per node on ``nnodes`` nodes (``master`` = rank 0 node's host:port,
    needed when ``nnodes > 1``)."""
    if not isinstance(nproc, int) or nproc < 1:
        raise UserError(f"--nproc must be a positive integer, got {nproc!r}")
    if not isinstance(nnodes, int) or nnodes < 1:
        raise UserError(f"--nnodes must be a positive integer, got {nnodes!r}")
    if nnodes > 1 and not master:
        raise UserError("--nnodes > 1 needs --master HOST:PORT (the first machine's address)")
    cmd = [python or sys.executable, "-m", "paddle.distributed.launch",
           "--nproc_per_node", str(nproc)]
    if nnodes > 1:
        cmd += ["--nnodes", str(nnodes)]
    if master:
        cmd += ["--master", check_master(master)]
    if log_dir is not None:
        cmd += ["--log_dir", str(log_dir)]
    if devices:
        cmd += ["--devices", devices]
    # a non-.py "script" is run as given: the interpreter itself, running the distill module
    return cmd + [python or sys.executable, "-u", "-m", "distill", *args]


def launch(args: Sequence[str], nproc: int, nnodes: int = 1, master: Optional[str] = None,
           log_dir=None, threads: Optional[int] = None,
           environ: Optional[Mapping[str, str]] = None) -> int:
    """Run ``distill ARGS`` under ``paddle.distributed.launch`` and return its exit code.

    Rank 0's output is shown; every rank's log is in ``log_dir/workerlog.N``. The launcher stops
    all processes when one fails (then re-running the same command resumes the run).
    """
    env = dict(os.environ if environ is None else environ)
    env["OMP_NUM_THREADS"] = str(threads or threads_per_process(nproc))
    env[NPROC_ENV] = str(nproc * nnodes)
    project = str(Path(__file__).resolve().parents[2])  # the checkout, for `-m distill`
    env["PYTHONPATH"] = os.pathsep.join(p for p in (project, env.get("PYTHONPATH")) if p)
    if log_dir is not None:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
    cmd = launch_command(args, nproc, nnodes, master, log_dir)
    return subprocess.call(cmd, env=env)
