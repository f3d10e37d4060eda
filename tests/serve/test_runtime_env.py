"""The runtime installs alone: an environment with ONLY the runtime's dependencies (pinned like
requirements.txt, no Paddle, no onnx, no scikit-learn, no site-packages) loads and runs every
package kind and serves one over HTTP, on an interpreter without ``os.sched_getaffinity``.

The environment is ``pip install --no-deps --target`` of the pins below, built once and cached
under ``$ERNIE_DISTILL_HOME/runtime-env/<hash>`` (seconds after the first run), and run with
``python -S`` so that the test virtualenv's site-packages are not visible.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from distill.core.io import atomic_path, fingerprint, home
from distill.serve.predict import load_package

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# setup.py's RUNTIME and what they need (onnxruntime: flatbuffers, packaging, protobuf;
# starlette: anyio, idna, typing_extensions; uvicorn: click, h11, and its fast paths httptools
# and uvloop; orjson for the server's answers).
RUNTIME = ("numpy", "onnxruntime", "flatbuffers", "packaging", "protobuf", "tokenizers",
           "sentencepiece", "jieba", "regex", "starlette", "anyio", "idna", "typing_extensions",
           "uvicorn", "click", "h11", "httptools", "uvloop", "orjson")
ABSENT = ("paddle", "paddleslim", "paddle2onnx", "onnx", "sklearn", "yaml", "safetensors",
          "huggingface_hub", "pytest")


def _pins():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    found = {}
    for line in lines:
        name, _, version = line.partition("==")
        if version and name.strip().lower().replace("-", "_") in RUNTIME:
            found[name.strip().lower().replace("-", "_")] = f"{name.strip()}=={version.strip()}"
    missing = sorted(set(RUNTIME) - set(found))
    assert not missing, f"not pinned in requirements.txt: {missing}"
    return [found[n] for n in RUNTIME]


@pytest.fixture(scope="module")
def runtime_env():
    pins = _pins()
    target = home() / "runtime-env" / fingerprint(pins, sys.version_info[:2])
    if not (target / ".complete").exists():
        with atomic_path(target) as tmp:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                            "--disable-pip-version-check", "--target", str(tmp), *pins],
                           check=True, timeout=1200)
            (tmp / ".complete").write_text("\n".join(pins) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(PYTHONPATH=os.pathsep.join([str(target), str(ROOT)]), PYTHONNOUSERSITE="1")
    return env


def _run(env, code, *args, **kwargs):
    return subprocess.run([sys.executable, "-S", "-c", code, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300, **kwargs)


PROBE = """
import importlib.util, json, os, sys
del os.sched_getaffinity  # as on macOS and Windows
present = [m for m in %r if importlib.util.find_spec(m) is not None]
assert not present, f"the runtime env should not have {present}"
from distill.serve.predict import load_package
from distill.text.encoders import load_encoder
out = {}
for path in sys.argv[1:3]:
    out[path] = [r["label"] for r in load_package(path, threads=1).predict(
        ["good great fun w1", "bad awful w2", "superb w3"])]
sp = load_encoder(sys.argv[3])
out["sentencepiece"] = sp.encode(["hello world"], max_len=16)["input_ids"].tolist()
zh = load_encoder(sys.argv[4])
out["words_zh"] = zh.encode(["这部电影很好看"], max_len=16)["input_ids"].tolist()
import distill.serve.server  # starlette + uvicorn
import httptools  # uvicorn's fast HTTP parser, part of the runtime
if sys.platform != "win32":
    import uvloop
print(json.dumps(out))
""" % (ABSENT,)


def test_a_runtime_only_environment_loads_and_runs_every_package_kind(
        runtime_env, package, teacher_package, tmp_path):
    from distill.text.tokenizer import SentencePieceTokenizer
    from distill.text.vocab import WordVocab

    sp = SentencePieceTokenizer.from_pieces(
        ["<s>", "<pad>", "</s>", "<unk>", "\u2581hello", "\u2581world", "\u2581", "h", "e", "l",
         "o", "w", "r", "d", "<mask>"], [0, 0, 0, 0, -1, -1, -2, -3, -3, -3, -3, -3, -3, -3, 0],
        unk_id=3)
    sp.save(tmp_path / "sp")
    zh = WordVocab.build(["这部电影很好看", "电影不好看"], language="zh")
    zh.save(tmp_path / "zh")
    teacher, _ = teacher_package
    done = _run(runtime_env, PROBE, package, teacher, tmp_path / "sp", tmp_path / "zh")
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    texts = ["good great fun w1", "bad awful w2", "superb w3"]
    for path in (package, teacher):
        assert got[str(path)] == [r["label"] for r in load_package(path).predict(texts)]
    assert got["sentencepiece"] == sp.encode(["hello world"], max_len=16)["input_ids"].tolist()
    assert got["words_zh"] == zh.encode(["这部电影很好看"], max_len=16)["input_ids"].tolist()


def test_a_runtime_only_environment_serves_a_package(runtime_env, package):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = ("import os, sys; del os.sched_getaffinity\n"
            "from distill.cli import main; sys.exit(main(sys.argv[1:]))")
    proc = subprocess.Popen([sys.executable, "-S", "-c", code, "serve", str(package), "--port",
                             str(port), "--threads", "1", "--log-level", "warning"],
                            env=runtime_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):  # at most 60 s
            assert proc.poll() is None, proc.stderr.read()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        answer = httpx.post(f"{url}/predict", json={"texts": ["great superb fun"]}, timeout=60)
        assert answer.status_code == 200 and answer.json()["results"][0]["label"] == "pos"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
