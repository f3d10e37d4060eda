"""`distill serve` under load: texts/s and latency for one-text requests at concurrency 1, 8 and
32 and for batch clients (8 or 32 texts per request), against the same model's raw ONNX Runtime
throughput measured in the same run.

    python -m bench.serve            # BOW (movies_en recipe size) and the tiny transformer
    python -m bench.serve --quick    # BOW only, fewer requests (about a minute)

Packages: a BOW student at the size of ``recipes/movies_en/bow_from_minilm.yaml`` and (full run)
the tiny transformer of ``tiny_from_minilm.yaml``, random weights (speed does not depend on them),
exported to ONNX FP32 and packaged by ``export_model(..., package=...)``. Load: real movies_en
test sentences, 1, 8 or 32 per request (``SHAPES``), from an asyncio HTTP/1.1 keep-alive client
in this process with N connections (requests) in flight (see ``load`` for why not httpx); the
server (``distill serve``, one worker, ``--threads 1``, on 127.0.0.1 only) runs in its own
process. Every load loop is bounded by a request count AND a time limit.

Reference rates, measured in the same run on one thread:
* ``raw ORT`` — ``session.run`` on pre-encoded batches of 32 (the model alone);
* ``predictor`` — ``Predictor.predict`` on batches of 32 (encoding + ONNX Runtime + softmax),
  after a first pass over the texts (``predictor_cold``: that first pass, empty word cache).
Server columns: texts/s, p50/p99 latency per request, errors, mean texts per ONNX Runtime call
(from ``/metadata``), and the ratios to the two references. Client and server share the
machine's cores, so the client's own cost is part of the numbers. Writes
bench/results/serve.md and .json.
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bench.common import ROOT, base_parser, machine, machine_line, md_table, results_dir, \
    write_results

MAX_LEN = 128
MAX_WAIT_MS = 2.0
READ_TIMEOUT = 120.0  # seconds for one answer; a slower one counts as an error
# (texts per request, concurrency) rows: one text per request at 1, 8 and 32 connections, then
# batch clients sending 8 and 32 texts per request (the transformer, ~1000x slower, gets one
# such row at concurrency 8 so that every answer comes within READ_TIMEOUT)
SHAPES = {"bow": ((1, 1), (1, 8), (1, 32), (8, 32), (32, 32)),
          "tiny": ((1, 1), (1, 8), (1, 32), (8, 8))}


def build_packages(kinds, out: Path) -> Dict[str, Path]:
    """Random-weight students at recipe size, exported to ONNX FP32 and packaged."""
    import paddle

    from bench.speed import student_config
    from distill.data.examples import read_examples
    from distill.data.fetch import fetch
    from distill.export.exporter import ExportConfig, LoadedModel, export_model
    from distill.text.vocab import WordVocab
    from students.registry import build_student

    data = fetch("movies_en")
    train = read_examples(Path(data) / "train.tsv")
    test = read_examples(Path(data) / "test.tsv")[:200]
    labels = sorted({e.label for e in train})
    packages = {}
    for kind in kinds:
        paddle.seed(0)
        if kind == "tiny":
            from students.tiny import TinyStudent, tiny_config_for
            from teachers.checkpoint import load_teacher

            teacher = load_teacher("minilm-l6", num_labels=len(labels))
            typed = tiny_config_for(teacher.config, student_config("tiny"))
            model = TinyStudent(typed, vocab_size=teacher.config.vocab_size,
                                num_labels=len(labels), pad_id=teacher.tokenizer.pad_id)
            encoder = teacher.tokenizer
        else:
            encoder = WordVocab.build([e.text_a for e in train], language="en")
            model = build_student(kind, student_config(kind), encoder.vocab_size, len(labels),
                                  encoder.pad_id)
        model.eval()
        loaded = LoadedModel(model, encoder, labels, MAX_LEN, kind=kind, name=kind)
        result = export_model(loaded, out_dir=out / kind, eval_examples=test,
                              config=ExportConfig(formats=("onnx",), max_len=MAX_LEN, threads=1,
                                                  timed=False, max_accuracy_drop=0.99,
                                                  max_disagreement=None),
                              package=f"bench-{kind}")
        packages[kind] = result.package
    return packages


def references(package: Path, texts: List[str], seconds: float) -> Dict[str, float]:
    """Texts/s of raw ONNX Runtime (pre-encoded batches of 32) and of the Predictor, 1 thread;
    ``predictor_cold``: the Predictor's first pass over ``texts`` (empty word cache; at most
    ``seconds``)."""
    from distill.serve.predict import load_package

    batches = [texts[i:i + 32] for i in range(0, len(texts) - 31, 32)]
    predictor = load_package(package, threads=1)
    done, start = 0, time.perf_counter()
    for batch in batches:  # one pass at most, bounded in time (the transformer is slow)
        predictor.predict(batch, batch_size=32)
        done += len(batch)
        if time.perf_counter() - start > seconds:
            break
    cold = done / (time.perf_counter() - start)
    feeds = []
    for batch in batches:
        enc = predictor.encoder.encode(batch, max_len=predictor.max_len)
        feeds.append({n: enc[n] for n in predictor.input_names})

    cpu: Dict[str, float] = {}

    def rate(name, step) -> float:
        done, start, cpu0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - start < seconds:  # bounded in time
            for i in range(len(batches)):
                step(i)
                done += len(batches[i])
        cpu[name] = 1e6 * (time.process_time() - cpu0) / done  # CPU microseconds per text
        return done / (time.perf_counter() - start)

    return {"raw_ort": rate("raw_ort", lambda i: predictor.session.run(None, feeds[i])),
            "predictor": rate("predictor", lambda i: predictor.predict(batches[i], batch_size=32)),
            "predictor_cold": cold, "raw_ort_cpu_us": cpu["raw_ort"],
            "predictor_cpu_us": cpu["predictor"]}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(package: Path, max_batch: int, max_wait_ms: float):
    import httpx

    port = _free_port()
    code = "import sys; from distill.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", str(package), "--host",
                             "127.0.0.1", "--port", str(port), "--threads", "1", "--max-batch",
                             str(max_batch), "--max-wait-ms", str(max_wait_ms), "--log-level",
                             "warning"], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # at most 60 s
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


async def _http_worker(host: str, port: int, bodies: List[bytes], state: Dict[str, int],
                       requests: int, seconds: float, start: float, latencies: List[float]):
    """One keep-alive HTTP/1.1 connection sending POST /predict requests in turn (the bodies
    are encoded beforehand; answers are read whole but not parsed)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while state["sent"] < requests and time.perf_counter() - start < seconds:
            body = bodies[state["sent"] % len(bodies)]
            state["sent"] += 1
            t0 = time.perf_counter()
            writer.write(b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
            lines = head.decode("latin-1").split("\r\n")
            length = next(int(l.split(":", 1)[1]) for l in lines
                          if l.lower().startswith("content-length:"))
            await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT)
            latencies.append(time.perf_counter() - t0)
            if lines[0].split()[1] != "200":
                state["errors"] += 1
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, StopIteration):
        state["errors"] += 1
    finally:
        writer.close()


def request_bodies(texts: List[str], per_request: int) -> List[bytes]:
    """JSON bodies of ``per_request`` consecutive test sentences each, cycling over the set."""
    return [json.dumps({"texts": [texts[(i + k) % len(texts)] for k in range(per_request)]}
                       ).encode("utf-8") for i in range(0, len(texts), per_request)]


async def _load(host: str, port: int, bodies: List[bytes], concurrency: int, requests: int,
                seconds: float):
    latencies: List[float] = []
    state = {"sent": 0, "errors": 0}
    start = time.perf_counter()
    await asyncio.gather(*[_http_worker(host, port, bodies, state, requests, seconds, start,
                                        latencies) for _ in range(concurrency)])
    return latencies, state["errors"], time.perf_counter() - start


def load(url: str, texts: List[str], concurrency: int, requests: int, seconds: float,
         per_request: int = 1) -> Dict[str, object]:
    """``concurrency`` connections, each sending requests of ``per_request`` texts until
    ``requests`` are sent in all or ``seconds`` have passed.

    A plain asyncio HTTP/1.1 keep-alive client (on uvloop when installed): on this machine an
    ``httpx.AsyncClient`` spent more CPU than the server it measured (30 vs 113 requests/s at
    concurrency 1, 10 vs 784 at 32, same server, same run), so it measured itself rather than
    ``distill serve``.
    """
    host, port = url.split("//", 1)[1].split(":")
    bodies = request_bodies(texts, per_request)
    runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    cpu0 = time.process_time()
    latencies, errors, elapsed = runner(_load(host, int(port), bodies, concurrency, requests,
                                              seconds))
    client_cpu = time.process_time() - cpu0
    lat = np.array(latencies or [float("nan")]) * 1000
    return {"concurrency": concurrency, "texts_per_request": per_request,
            "requests": len(latencies), "seconds": round(elapsed, 2),
            "rps": len(latencies) / elapsed, "texts_per_s": per_request * len(latencies) / elapsed,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "errors": errors,
            "client_cpu_us": 1e6 * client_cpu / max(1, per_request * len(latencies))}


def process_cpu(pid: int) -> Optional[float]:
    """CPU seconds (user + system, all threads) of process ``pid`` so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench(quick: bool, max_wait_ms: float = MAX_WAIT_MS) -> Dict[str, object]:
    import httpx

    from distill.data.examples import read_examples
    from distill.data.fetch import fetch

    info: Dict[str, object] = {"machine": machine(), "quick": quick, "max_len": MAX_LEN,
                               "server": {"workers": 1, "threads": 1, "max_batch": 32,
                                          "max_wait_ms": max_wait_ms}, "models": {}}
    texts = [e.text_a for e in read_examples(Path(fetch("movies_en")) / "test.tsv")]
    kinds = ("bow",) if quick else ("bow", "tiny")
    requests, seconds = (600, 8.0) if quick else (3000, 20.0)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        packages = build_packages(kinds, Path(tmp))
        for kind, package in packages.items():
            ref = references(package, texts, 3.0 if quick else 10.0)
            proc, url = start_server(package, 32, max_wait_ms)
            rows = []
            try:
                load(url, texts, 4, 50, 10.0)  # warm-up
                for per_request, c in SHAPES[kind]:
                    before = httpx.get(f"{url}/metadata").json()["serving"]
                    cpu0 = process_cpu(proc.pid)
                    row = load(url, texts, c, requests, seconds, per_request)
                    cpu1 = process_cpu(proc.pid)
                    after = httpx.get(f"{url}/metadata").json()["serving"]
                    row["server_cpu_us"] = (None if cpu0 is None or cpu1 is None else
                                            1e6 * (cpu1 - cpu0) / max(1, after["texts"]
                                                                      - before["texts"]))
                    row["inline"] = after.get("inline")
                    calls = after["batches"] - before["batches"]
                    row["mean_batch"] = (after["texts"] - before["texts"]) / max(1, calls)
                    row["vs_raw_ort"] = row["texts_per_s"] / ref["raw_ort"]
                    row["vs_predictor"] = row["texts_per_s"] / ref["predictor"]
                    rows.append(row)
                    print(f"{kind} c={c} x{per_request}: {row['texts_per_s']:.0f} texts/s "
                          f"({100 * row['vs_raw_ort']:.1f} % of raw ORT), p50 "
                          f"{row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms, "
                          f"errors {row['errors']}", flush=True)
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            info["models"][kind] = {"package_bytes": package.stat().st_size, "reference": ref,
                                    "load": rows}
    info["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return info


AIM = 0.70  # issue 18: the BOW package at concurrency 32 serves >= 70 % of raw ORT, no errors


def verdicts(info: Dict[str, object]) -> List[str]:
    """Which concurrency-32 BOW rows meet the aim, in words."""
    out = []
    for r in info["models"].get("bow", {}).get("load", []):
        if r["concurrency"] != 32:
            continue
        met = r["vs_raw_ort"] >= AIM and r["errors"] == 0
        cpu = r.get("server_cpu_us")
        raw_cpu = info["models"]["bow"]["reference"]["raw_ort_cpu_us"]
        share = f" (by CPU time {100 * raw_cpu / cpu:.0f} %)" if cpu else ""
        out.append(f"{r['texts_per_request']} text(s) per request: "
                   f"{100 * r['vs_raw_ort']:.0f} % of raw ORT{share}, {r['errors']} errors -> "
                   f"{'meets' if met else 'misses'} the aim")
    return out


def markdown(info: Dict[str, object]) -> str:
    lines = ["### Serving (`distill serve` under load)", "",
             f"Measured on {machine_line(info['machine'])}; load average at the end "
             f"{info['machine']['load_average_end'][0]}. One server worker with 1 ONNX Runtime "
             f"thread, max batch {info['server']['max_batch']}, max wait "
             f"{info['server']['max_wait_ms']} ms (only while other requests are queued); "
             f"requests of 1, 8 or 32 movies_en test sentences; asyncio HTTP/1.1 keep-alive "
             f"client on the same machine. Throughput in texts/s (= requests/s x texts per "
             f"request).", ""]
    for kind, m in info["models"].items():
        ref = m["reference"]
        lines.append(f"{kind}: raw ONNX Runtime {ref['raw_ort']:,.0f} texts/s (pre-encoded "
                     f"batches of 32; {ref['raw_ort_cpu_us']:,.1f} CPU us per text), predictor "
                     f"{ref['predictor']:,.0f} texts/s (batches of 32, encoding included; "
                     f"{ref['predictor_cpu_us']:,.1f} CPU us per text; its first pass over the "
                     f"texts {ref['predictor_cold']:,.0f} texts/s"
                     f"{', word cache empty' if kind != 'tiny' else ''}).")
    lines.append("")
    rows = []
    for kind, m in info["models"].items():
        for r in m["load"]:
            server_cpu = r.get("server_cpu_us")
            rows.append([kind, r["texts_per_request"], r["concurrency"], r["requests"],
                         r["texts_per_s"], r["p50_ms"], r["p99_ms"], r["errors"],
                         r["mean_batch"], f"{100 * r['vs_raw_ort']:.1f} %",
                         f"{100 * r['vs_predictor']:.0f} %",
                         "-" if server_cpu is None else server_cpu, r["client_cpu_us"],
                         "-" if not server_cpu else
                         f"{100 * m['reference']['raw_ort_cpu_us'] / server_cpu:.0f} %"])
    lines.append(md_table(["model", "texts per request", "concurrency", "requests", "texts/s",
                           "p50 ms", "p99 ms", "errors", "texts per ORT call",
                           "server / raw ORT", "server / predictor", "server CPU us/text",
                           "client CPU us/text", "raw ORT CPU / server CPU"], rows))
    verdict = verdicts(info)
    lines += ["", "Aim (BOW, concurrency 32, >= 70 % of raw ONNX Runtime, zero errors): "
              + ("; ".join(verdict) if verdict else "no BOW rows at concurrency 32") + ".", "",
              "CPU columns: CPU time (user + system, all threads) per text of the server process "
              "and of the client during the row, and the raw ONNX Runtime CPU time per text "
              "divided by the server's: roughly the share of raw ONNX Runtime throughput the "
              "server would reach with a core of its own (and the client another). CPU time "
              "depends far less on the other processes than throughput does, so on a loaded "
              "machine this column says more about the server than the texts/s ratio.", "",
              "Reading the ratios: the references run batches of 32 consecutive sentences, "
              "each padded to its longest one, in this process on one thread; the server "
              "additionally parses HTTP and JSON, encodes, and writes a JSON answer per text, "
              "while the client shares the same cores. For the BOW model, whose ONNX Runtime "
              "call costs microseconds per text, that per-request work decides the one-text "
              "rows; requests carrying many texts spread it. The word cache is warm after the "
              "first pass over the 1,275 test sentences (traffic with unseen words runs at the "
              "cold rate above for those words). For the transformer the server's batches are "
              "smaller than 32 and pad less, so it can beat the b32 reference. With a load "
              "average above the 2 cores, the server, the client and the references each got a "
              "fraction of a core at different moments: compare rows within one table, not with "
              "an idle machine."]
    return "\n".join(lines)


def summary(info: Dict[str, object]) -> str:
    parts = []
    for kind, m in info["models"].items():
        for r in m["load"]:
            if r["concurrency"] == 32:
                parts.append(f"{kind} c=32 x{r['texts_per_request']}: "
                             f"{r['texts_per_s']:.0f} texts/s ({100 * r['vs_raw_ort']:.1f} % of "
                             f"raw ORT, {100 * r['vs_predictor']:.0f} % of the predictor), "
                             f"errors {r['errors']}")
    return "serve: " + "; ".join(parts)


def main(argv=None) -> int:
    parser = base_parser(__doc__.split("\n")[0])
    parser.add_argument("--max-wait-ms", type=float, default=MAX_WAIT_MS,
                        help="the server's --max-wait-ms")
    args = parser.parse_args(argv)
    info = bench(args.quick, args.max_wait_ms)
    path = write_results("serve", info, markdown(info), results_dir(args))
    print(f"wrote {path}")
    print(summary(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
