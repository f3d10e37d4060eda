"""Shared bench helpers: machine facts, timing, FLOP counts, GEMM peak, result files.

Every bench writes ``bench/results/<name>.json`` (numbers + ``machine``) and ``<name>.md``
(tables) through ``write_results``; ``bench.all.update_docs`` pastes the ``.md`` files into
docs/benchmarks.md. Import ``distill`` before Paddle (this module does).
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import distill  # noqa: F401  (zlib + OMP_NUM_THREADS before any Paddle import)
import numpy as np

from distill.core.errors import UserError
from distill.core.io import write_json, write_text
from distill.train.device import import_paddle

try:
    import_paddle()  # without its notice about the OMP_NUM_THREADS that distill set
except UserError:
    pass  # a runtime-only install: a bench that needs Paddle fails where it imports it

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


# ------------------------------------------------------------------------------ machine

def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> List[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                return sorted(f for f in flags if f in ("avx", "avx2", "fma", "avx512f",
                                                          "avx512_vnni", "avx_vnni", "amx_tile"))
    except OSError:
        pass
    return []


def git_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=ROOT, capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> Dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("paddlepaddle", "paddle2onnx", "onnxruntime", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def cores() -> int:
    """Cores this process may run on (fewer than the machine's when pinned with taskset)."""
    return len(os.sched_getaffinity(0))


def machine_cores(m: Dict[str, object]) -> int:
    """The machine's cores as recorded in ``machine()`` facts (older results only say ``cores``)."""
    return int(m.get("machine_cores") or m.get("cores") or 1)


def machine() -> Dict[str, object]:
    """Facts that make a number comparable: CPU, cores, threads, load, versions, date, commit."""
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": cores(),
            "machine_cores": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "versions": versions()}


def machine_line(m: Dict[str, object]) -> str:
    v = m.get("versions", {})
    total = machine_cores(m)
    cores = f"{m['cores']} cores" if total == m["cores"] else f"pinned to {m['cores']} of {total} cores"
    return (f"{m['cpu']} ({cores}, {'/'.join(m.get('cpu_flags', []))}), "
            f"load average {m['load_average'][0]} at start; Paddle {v.get('paddlepaddle')}, "
            f"ONNX Runtime {v.get('onnxruntime')}; {m['date']}, commit {m['commit']}")


# ------------------------------------------------------------------------------ timing

def timed(fn: Callable[[], object], repeat: int = 1) -> float:
    """Seconds of the fastest of ``repeat`` calls (least disturbed by other processes)."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# ------------------------------------------------------------------------------ FLOPs

def encoder_flops(config, lengths: Sequence[int], num_labels: int = 2) -> float:
    """Multiply-add FLOPs (2 per MAC) of an ERNIE/BERT classifier forward over rows of these
    token counts. Per layer and row of T tokens: Q/K/V/out projections 8*T*H^2, feed-forward
    4*T*H*I, attention scores and weighted sum 4*T^2*H; plus pooler 2*H^2 (cls) and head 2*H*C.
    Embeddings, LayerNorm, softmax and GELU are left out (a few % and not GEMM work)."""
    H, I, L = config.hidden_size, config.intermediate_size, config.num_layers
    t = np.asarray(lengths, dtype=np.float64)
    per_layer = 8 * t * H * H + 4 * t * H * I + 4 * t * t * H
    head = (2 * H * H if config.pooling == "cls" else 0) + 2 * H * num_labels
    return float(np.sum(L * per_layer + head))


def gemm_flops(m: int, k: int, n: int) -> float:
    return 2.0 * m * k * n


# ------------------------------------------------------------------------------ GEMM peak

def gemm_peak(size: int = 2048, repeat: int = 5, threads: Optional[int] = None
              ) -> Dict[str, float]:
    """GFLOP/s of a plain (size x size) @ (size x size) FP32 matrix multiply in Paddle (the
    peak the issue asks for; threads = OMP_NUM_THREADS = cores), NumPy and ONNX Runtime."""
    threads = int(threads or cores())
    flops = gemm_flops(size, size, size)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    out = {"size": size, "threads": threads}

    import paddle

    paddle.base.core.set_num_threads(threads)
    pa, pb = paddle.to_tensor(a), paddle.to_tensor(b)
    paddle.matmul(pa, pb).numpy()
    out["paddle"] = flops / timed(lambda: paddle.matmul(pa, pb).numpy(), repeat) / 1e9

    np.dot(a, b)
    out["numpy"] = flops / timed(lambda: np.dot(a, b), repeat) / 1e9

    session = _ort_matmul_session(size, size, size, threads)
    session.run(None, {"a": a, "b": b})
    out["onnxruntime"] = flops / timed(lambda: session.run(None, {"a": a, "b": b}), repeat) / 1e9
    out["best"] = max(out["paddle"], out["numpy"], out["onnxruntime"])
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}


def ort_gemm(m: int, k: int, n: int, threads: int, repeat: int = 5) -> float:
    """GFLOP/s of ONNX Runtime on one (m x k) @ (k x n) FP32 MatMul (e.g. an encoder's shape)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    session = _ort_matmul_session(m, k, n, threads)
    session.run(None, {"a": a, "b": b})
    return round(gemm_flops(m, k, n) / timed(lambda: session.run(None, {"a": a, "b": b}),
                                             repeat) / 1e9, 1)


def _ort_matmul_session(m: int, k: int, n: int, threads: int):
    import onnx
    from onnx import TensorProto, helper

    from distill.serve.predict import onnx_session

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = RESULTS / f".gemm-{os.getpid()}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    try:
        return onnx_session(path, threads)
    finally:
        path.unlink()


# ------------------------------------------------------------------------------ output

def run_teacher(run_dir: Path, kind: str, vocab: Dict):
    """The run's fine-tuned teacher when a student of ``kind``/``vocab`` needs it (a tiny
    transformer: its tokenizer and layers; a teacher vocabulary), else None."""
    if kind != "tiny" and vocab.get("source") != "teacher":
        return None
    from teachers.checkpoint import load_teacher

    return load_teacher(run_dir / "teacher" / "teacher")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 10 else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_results(name: str, data: Dict[str, object], markdown: str,
                  out_dir: Optional[Path] = None) -> Path:
    """``<out_dir>/<name>.json`` and ``.md`` (atomic); returns the .md path."""
    out_dir = Path(out_dir or RESULTS)
    write_json(out_dir / f"{name}.json", data)
    write_text(out_dir / f"{name}.md", markdown.rstrip() + "\n")
    return out_dir / f"{name}.md"


def load_results(name: str, out_dir: Optional[Path] = None) -> Optional[dict]:
    path = Path(out_dir or RESULTS) / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes (under two minutes); results go to results/quick/")
    parser.add_argument("--out", default=None,
                        help="results folder (default: bench/results, --quick: bench/results/quick)")
    return parser


def results_dir(args) -> Path:
    if args.out:
        return Path(args.out)
    return RESULTS / "quick" if args.quick else RESULTS
