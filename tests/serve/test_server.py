"""`distill serve` on a real uvicorn: micro-batching is observable, bad bodies get 4xx with a
message, the server keeps working after them, and SIGTERM lets in-flight requests finish."""
import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from distill.cli import main as cli_main
from distill.serve.predict import load_package


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(package, *flags):
    """A `distill serve` process on 127.0.0.1; returns (process, base URL) once /healthz answers."""
    port = _free_port()
    code = "import sys; from distill.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", code, "serve", str(package), "--port",
                             str(port), "--threads", "1", "--log-level", "warning", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # at most 60 s
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server did not start in 60 s")


def _stop(proc) -> bool:
    """SIGTERM; True when the server exited cleanly (uvicorn re-raises the signal after its
    graceful shutdown, so -SIGTERM is a clean exit too)."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return code in (0, -signal.SIGTERM)


@pytest.fixture(scope="module")
def server(package):
    proc, url = _start(package, "--max-batch", "64", "--max-wait-ms", "400",
                       "--max-body-bytes", "4096", "--max-texts", "8")
    yield url
    assert _stop(proc)


def test_concurrent_requests_are_batched_into_one_model_call(server, package):
    texts = [f"great superb fun w{i}" if i % 2 else f"awful dull poor w{i}" for i in range(12)]

    async def fire():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*[client.post(f"{server}/predict", json={"texts": [t]})
                                          for t in texts])

    expected = load_package(package, threads=1).predict(texts)
    # A lone request runs at once, so the first of a burst may go alone; the others queue
    # behind it. Bursts until one shows a shared batch (the first does, almost always).
    for _ in range(5):
        before = httpx.get(f"{server}/metadata").json()["serving"]
        responses = asyncio.run(fire())
        after = httpx.get(f"{server}/metadata").json()["serving"]
        assert [r.status_code for r in responses] == [200] * len(texts)
        got = [r.json()["results"][0] for r in responses]
        assert [g["label"] for g in got] == [e["label"] for e in expected]
        assert after["requests"] - before["requests"] == len(texts)
        sizes = [r.json()["batch_size"] for r in responses]
        if max(sizes) > 1:
            break
    assert max(sizes) > 1, sizes  # several requests answered by one ONNX Runtime call
    assert after["batches"] - before["batches"] < len(texts)
    assert after["largest_batch"] >= max(sizes)


def test_several_texts_per_request_come_back_in_order(server, package):
    texts = ["great superb fun", "awful dull poor", "superb", "dull w9"]
    response = httpx.post(f"{server}/predict", json={"texts": texts}, timeout=60)
    assert response.status_code == 200
    expected = load_package(package, threads=1).predict(texts)
    for got, want in zip(response.json()["results"], expected):
        assert got["label"] == want["label"]
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-6)


@pytest.mark.parametrize("body, status, message", [
    (b"not json", 422, "not valid JSON"),
    (b"\xff\xfe", 422, "not UTF-8"),
    (b"[1, 2]", 422, "must be a JSON object"),
    (b'{"texts": "one text"}', 422, "field 'texts' must be a list of strings, got a str"),
    (b'{"texts": ["ok", 3]}', 422, r"field 'texts\[1\]' must be a string"),
    (b'{"texts": []}', 422, "field 'texts' is empty"),
    (b'{"texts": ["  "]}', 422, r"field 'texts\[0\]' is empty"),
    (b'{"text": ["good"]}', 422, "unknown field 'text'"),
    (b'{"texts": ["good"], "texts_b": ["fun"]}', 422, "single texts"),
    (b'{"texts": ["a","b","c","d","e","f","g","h","i"]}', 413, "at most 8 per request"),
    (b'{"texts": ["' + b"x" * 5000 + b'"]}', 413, "at most 4096"),
])
def test_malformed_bodies_get_4xx_with_a_message_and_the_next_request_succeeds(
        server, body, status, message):
    response = httpx.post(f"{server}/predict", content=body, timeout=60)
    assert response.status_code == status
    assert response.json()["error"]
    assert re.search(message, response.json()["error"]), response.json()
    ok = httpx.post(f"{server}/predict", json={"texts": ["great fun"]}, timeout=60)
    assert ok.status_code == 200 and ok.json()["results"][0]["label"] == "pos"


def test_health_metadata_and_wrong_method(server):
    assert httpx.get(f"{server}/healthz").json() == {"status": "ok"}
    meta = httpx.get(f"{server}/metadata").json()
    assert meta["manifest"]["name"] == "toy" and meta["config"]["labels"] == ["neg", "pos"]
    assert meta["server"]["max_batch"] == 64
    assert httpx.get(f"{server}/predict").status_code == 405


def test_shutdown_finishes_in_flight_requests(package):
    """SIGTERM while a request is half sent: the server stops listening, then still reads the
    rest of that request and answers it before it exits."""
    proc, url = _start(package)
    port = int(url.rsplit(":", 1)[1])
    body = json.dumps({"texts": ["great superb fun"]}).encode()
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)
    try:
        conn.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json"
                     b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5])
        for _ in range(300):  # at most 30 s until the server has begun this request
            if httpx.get(f"{url}/metadata").json()["serving"]["open_requests"] == 1:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the server never began the half-sent request")
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):  # at most 30 s until it refuses new connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the server kept accepting connections after SIGTERM")
        conn.sendall(body[5:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    finally:
        conn.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), answer[:300]
    assert json.loads(payload)["results"][0]["label"] == "pos"
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM)


def test_a_bad_package_or_setting_exits_2_before_binding(tmp_path, package, capsys):
    assert cli_main(["serve", str(tmp_path / "missing.tar.gz")]) == 2
    assert "package not found" in capsys.readouterr().err
    assert cli_main(["serve", str(package), "--max-batch", "0"]) == 2
    assert "max_batch" in capsys.readouterr().err
