"""HTTP server for an edge package: Starlette on uvicorn, dynamic micro-batching, no Paddle.

    distill serve reviews-bow.tar.gz --port 8000 --max-batch 32 --max-wait-ms 5

    curl -s localhost:8000/predict -d '{"texts": ["great phone", "broke in a week"]}'
    {"results": [{"label": "pos", "score": 0.97, "probabilities": {...}}, ...], "batch_size": 2}

Endpoints:

* ``POST /predict`` — body ``{"texts": [...], "texts_b": [...]}`` (``texts_b`` only for pair
  models, one per text). Answer: ``results`` (label, score, probabilities per text, in order) and
  ``batch_size``: how many texts went through the ONNX Runtime call that served this request
  (micro-batching made observable).
* ``GET /healthz`` — ``{"status": "ok"}`` (503 ``shutting down`` once a shutdown has begun).
* ``GET /metadata`` — the package's manifest and config, the server settings, and counters:
  requests, texts, ONNX Runtime calls (``batches``), the largest batch, a histogram of batch
  sizes, and ``open_requests`` (``POST /predict`` requests begun and not yet answered).

Micro-batching: requests wait in a queue; one worker task takes the first and every request
already queued behind it (up to ``max_batch`` texts). Only when others were queued too (clients
are sending concurrently) does it wait for more, until ``max_batch`` texts or ``max_wait_ms``
after the first; a lone request runs at once. While a batch is computed, new requests queue up
and form the next batch.

Where the model runs: encoding a batch and writing the answers happen on the event loop. A
short ONNX Runtime call (running mean of its CPU time under ``INLINE_S``, 5 ms: e.g. the BOW
student; with ``--threads`` > 1 only the calling thread's share counts) runs on
the event loop as well: handing it to a thread and back costs two GIL hand-overs, and on a busy
machine each waits for the OS to schedule the other thread again (py-spy on the BOW server at
load ~20 showed the event loop waiting on the GIL in ``executor.submit`` for ~45 % of its
time). Longer calls (transformers) run on one model thread, which frees the GIL inside ONNX
Runtime, so the loop keeps accepting and parsing requests meanwhile; ``serve`` shortens the
GIL switch interval (``SWITCH_S``) so that this thread gets the GIL back promptly when its call
returns. ``/metadata`` says which (``serving.inline``).

A request with more than ``max_batch`` texts runs alone, in chunks of ``max_batch``.
``POST /predict`` is a plain ASGI function in front of the Starlette app (``_PredictRoute``);
the other paths are Starlette's.

Validation (never a 500 for user input): bodies over ``max_body_bytes`` (or more than
``max_texts`` texts, or a text over ``max_text_chars``) get 413; malformed JSON, a body that is not
an object, unknown fields, wrong types, empty texts, a missing or superfluous ``texts_b`` get 422
with a message naming the field. A failed request leaves the server as it was.

Shutdown (SIGINT/SIGTERM): uvicorn stops accepting connections, lets the requests in flight
finish (they are in the queue or running, and the batch worker keeps going until they are
answered), then the worker stops. ``workers > 1`` starts that many processes (uvicorn's
supervisor), each with its own model copy and ``threads`` ONNX Runtime threads.
"""
import asyncio
import collections
import contextlib
import concurrent.futures
import dataclasses
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from distill.core.errors import UserError
from distill.serve.predict import Predictor, load_package

ENV_PACKAGE, ENV_SETTINGS = "DISTILL_SERVE_PACKAGE", "DISTILL_SERVE_SETTINGS"
SWITCH_S = 0.0005  # GIL switch interval of a server process (Python's default: 0.005)
INLINE_S = 0.005   # ONNX Runtime calls cheaper than this (mean CPU s) run on the event loop


@dataclasses.dataclass
class ServeConfig:
    """Server settings (``distill serve`` flags)."""

    max_batch: int = 32            # texts per ONNX Runtime call
    max_wait_ms: float = 5.0       # how long a batch waits for more requests after its first
    max_body_bytes: int = 1 << 20  # 1 MiB per request body
    max_texts: int = 1024          # texts per request
    max_text_chars: int = 100_000  # characters per text
    threads: Optional[int] = None  # ONNX Runtime intra-op threads (None: usable cores)

    def validate(self) -> None:
        for name in ("max_batch", "max_body_bytes", "max_texts", "max_text_chars"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.max_wait_ms <= 10_000:
            raise UserError(f"max_wait_ms must be in 0..10000, got {self.max_wait_ms}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"threads must be at least 1, got {self.threads}")


class RequestError(Exception):
    """A bad request: HTTP ``status`` and a message for the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass
class _Job:
    texts: List[str]
    texts_b: Optional[List[str]]
    future: "asyncio.Future[Any]"


def _cpu_timed(fn, *args):
    """``(fn(*args), CPU seconds of this thread)``: the call's cost, whatever the machine load."""
    began = time.thread_time()
    out = fn(*args)
    return out, time.thread_time() - began


class MicroBatcher:
    """Collects concurrent requests into one model call (see the module docstring)."""

    def __init__(self, predictor: Predictor, config: ServeConfig):
        self.predictor, self.config = predictor, config
        self.queue: "asyncio.Queue[_Job]" = asyncio.Queue()
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="onnx")
        self.task: Optional[asyncio.Task] = None
        # running mean of one ONNX Runtime call's CPU seconds; the first runs on the model thread
        self.call_seconds, self.calls = float("inf"), 0
        self._carry: Optional[_Job] = None
        self.stats: Dict[str, Any] = {"requests": 0, "texts": 0, "batches": 0, "largest_batch": 0,
                                      "failed_batches": 0, "open_requests": 0,
                                      "inline": False}
        self.batch_sizes: "collections.Counter[int]" = collections.Counter()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Answer whatever is still queued, then stop the worker."""
        while not self.queue.empty() or self._carry is not None:
            await asyncio.sleep(0.01)
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.executor.shutdown(wait=True)

    async def submit(self, texts: List[str], texts_b: Optional[List[str]]):
        """(results, batch size) for one request, computed together with concurrent ones."""
        future = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Job(texts, texts_b, future))  # unbounded queue: never blocks
        return await future

    async def _predict(self, loop, texts: List[str], texts_b: Optional[List[str]]):
        """Results for ``texts`` in chunks of ``max_batch``. Encoding and answers run on the
        event loop; the ONNX Runtime call runs on the loop too while calls are short (under
        ``INLINE_S``), on the model thread once they are long (see the module docstring)."""
        step, predictor = self.config.max_batch, self.predictor
        if not isinstance(predictor, Predictor):  # entity spans: the token predictor whole
            return await loop.run_in_executor(self.executor, predictor.predict, texts, texts_b,
                                              step)
        results: List[Dict[str, Any]] = []
        for start in range(0, len(texts), step):
            chunk_b = None if texts_b is None else texts_b[start:start + step]
            feed = predictor.feed(texts[start:start + step], chunk_b)
            if self.call_seconds < INLINE_S:
                logits, took = _cpu_timed(predictor.run, feed)
            else:
                logits, took = await loop.run_in_executor(self.executor, _cpu_timed,
                                                          predictor.run, feed)
            self.call_seconds = took if self.calls == 0 else 0.8 * self.call_seconds + 0.2 * took
            self.calls += 1
            self.stats["inline"] = self.call_seconds < INLINE_S
            results += predictor.results(logits)
        return results

    def _drain(self, jobs: List[_Job], count: int) -> int:
        """Move already queued jobs into the batch (no waiting) until ``max_batch`` texts."""
        while count < self.config.max_batch and self._carry is None and not self.queue.empty():
            job = self.queue.get_nowait()
            if count + len(job.texts) > self.config.max_batch:
                self._carry = job  # first of the next batch
            else:
                jobs.append(job)
                count += len(job.texts)
        return count

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._carry is not None:
                first, self._carry = self._carry, None
            else:
                first = await self.queue.get()
            jobs = [first]
            count = self._drain(jobs, len(first.texts))
            # Wait for more only when others were queued too (concurrent clients are sending):
            # a lone request runs at once instead of idling max_wait_ms.
            deadline = loop.time() + self.config.max_wait_ms / 1000.0
            while len(jobs) > 1 and count < self.config.max_batch and self._carry is None:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if count + len(job.texts) > self.config.max_batch:
                    self._carry = job
                    break
                jobs.append(job)
                count = self._drain(jobs, count + len(job.texts))
            await self._serve(loop, jobs, count)

    async def _serve(self, loop, jobs: List[_Job], count: int) -> None:
        texts = [t for job in jobs for t in job.texts] if len(jobs) > 1 else jobs[0].texts
        pairs = jobs[0].texts_b is not None
        texts_b = [t for job in jobs for t in job.texts_b] if pairs else None  # type: ignore
        try:
            results = await self._predict(loop, texts, texts_b)
        except Exception as err:  # noqa: BLE001 - answered as a 500 to these requests only
            self.stats["failed_batches"] += 1
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        size = min(count, self.config.max_batch)
        self.stats["batches"] += -(-count // self.config.max_batch)  # ONNX Runtime calls
        self.stats["largest_batch"] = max(self.stats["largest_batch"], size)
        self.batch_sizes[size] += 1
        start = 0
        for job in jobs:
            n = len(job.texts)
            if not job.future.done():  # the client may have gone away
                job.future.set_result((results[start:start + n], size))
            start += n


def parse_request(body: bytes, predictor: Predictor, config: ServeConfig):
    """Checked ``(texts, texts_b)`` from a request body, or ``RequestError`` (413/422)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise RequestError(422, "body is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise RequestError(422, f"body is not valid JSON: {err.msg} (line {err.lineno}, "
                                f"column {err.colno})") from None
    except RecursionError:
        raise RequestError(422, "body is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise RequestError(422, f"body must be a JSON object like {{\"texts\": [...]}}, got "
                                f"{type(data).__name__}")
    unknown = sorted(set(data) - {"texts", "texts_b"})
    if unknown:
        raise RequestError(422, f"unknown field '{unknown[0]}'; expected texts and, for pair "
                                f"models, texts_b")
    texts = _texts(data.get("texts"), "texts", config)
    texts_b = data.get("texts_b")
    if predictor.text_pairs and texts_b is None:
        raise RequestError(422, "this model reads text pairs: give texts_b, one per text")
    if not predictor.text_pairs and texts_b is not None:
        raise RequestError(422, "this model reads single texts: leave out texts_b")
    if texts_b is not None:
        texts_b = _texts(texts_b, "texts_b", config)
        if len(texts_b) != len(texts):
            raise RequestError(422, f"texts_b has {len(texts_b)} texts but texts has "
                                    f"{len(texts)}")
    return texts, texts_b


def _texts(value: Any, field: str, config: ServeConfig) -> List[str]:
    if not isinstance(value, list):
        got = "nothing" if value is None else f"a {type(value).__name__}"
        raise RequestError(422, f"field '{field}' must be a list of strings, got {got}")
    if not value:
        raise RequestError(422, f"field '{field}' is empty")
    if len(value) > config.max_texts:
        raise RequestError(413, f"field '{field}' has {len(value)} texts; at most "
                                f"{config.max_texts} per request")
    for i, text in enumerate(value):
        if not isinstance(text, str):
            raise RequestError(422, f"field '{field}[{i}]' must be a string, got "
                                    f"{type(text).__name__}")
        if not text.strip():
            raise RequestError(422, f"field '{field}[{i}]' is empty")
        if len(text) > config.max_text_chars:
            raise RequestError(413, f"field '{field}[{i}]' has {len(text)} characters; at most "
                                    f"{config.max_text_chars}")
    return value


async def _read_body(scope, receive, limit: int) -> bytes:
    """The request body from ASGI ``receive`` messages; 413 ``RequestError`` over ``limit``."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise RequestError(413, f"body of {value.decode()} bytes; at most {limit}")
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(400, "client disconnected")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body over {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def _send_json(send, status: int, data: Any) -> None:
    # orjson: the bytes of json.dumps(ensure_ascii=False, separators=(",", ":")) at a fraction
    # of the cost (32 answers with their probabilities are most of a BOW batch's JSON time)
    body = orjson.dumps(data)
    await send({"type": "http.response.start", "status": status,
                "headers": _JSON_HEADERS + [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _PredictRoute:
    """``POST /predict`` as a plain ASGI function in front of the Starlette app.

    Starlette's middleware stack, router, ``Request`` and ``JSONResponse`` cost more per
    request than the BOW model costs per text, so the one hot path reads the ASGI messages
    itself; every other path and the lifespan go to Starlette.
    """

    def __init__(self, app: Starlette, predictor: Predictor, config: ServeConfig,
                 state: Dict[str, Any]):
        self.app, self.predictor, self.config, self.state = app, predictor, config, state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.state["stopping"]:
            await _send_json(send, 503, {"error": "shutting down"})
            return
        stats = self.state["batcher"].stats
        stats["open_requests"] += 1
        try:
            await self._predict(scope, receive, send)
        finally:
            stats["open_requests"] -= 1

    async def _predict(self, scope, receive, send) -> None:
        try:
            body = await _read_body(scope, receive, self.config.max_body_bytes)
            texts, texts_b = parse_request(body, self.predictor, self.config)
        except RequestError as err:
            await _send_json(send, err.status, {"error": str(err)})
            return
        batcher: MicroBatcher = self.state["batcher"]
        batcher.stats["requests"] += 1
        batcher.stats["texts"] += len(texts)
        try:
            results, size = await batcher.submit(texts, texts_b)
        except UserError as err:  # the encoder refused an input the checks above let through
            await _send_json(send, 422, {"error": str(err)})
            return
        except Exception as err:  # noqa: BLE001 - the model failed: a 500 for this batch only
            await _send_json(send, 500, {"error": f"prediction failed: {type(err).__name__}"})
            return
        await _send_json(send, 200, {"results": results, "batch_size": size})


def create_app(predictor: Predictor, config: Optional[ServeConfig] = None) -> "_PredictRoute":
    """The ASGI app for a loaded package (run it with uvicorn): ``POST /predict`` in front of
    a Starlette app with ``/healthz``, ``/metadata`` and the lifespan (batch worker)."""
    config = config or ServeConfig()
    config.validate()
    state: Dict[str, Any] = {"batcher": None, "stopping": False}

    async def predict_other_method(request: Request) -> JSONResponse:
        return JSONResponse({"error": "use POST"}, status_code=405, headers={"Allow": "POST"})

    async def healthz(request: Request) -> JSONResponse:
        if state["stopping"]:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metadata(request: Request) -> JSONResponse:
        batcher: MicroBatcher = state["batcher"]
        cfg = predictor.config
        return JSONResponse({
            "manifest": predictor.manifest,
            "config": dataclasses.asdict(cfg) if cfg else None,
            "server": dataclasses.asdict(config),
            "serving": {**batcher.stats, "pid": os.getpid(),
                        "batch_sizes": {str(k): v for k, v in sorted(batcher.batch_sizes.items())}},
        })

    @contextlib.asynccontextmanager
    async def lifespan(app):
        batcher = MicroBatcher(predictor, config)
        batcher.start()
        state["batcher"] = batcher
        try:
            yield
        finally:
            state["stopping"] = True
            await batcher.stop()

    app = Starlette(routes=[Route("/predict", predict_other_method,
                                  methods=["GET", "PUT", "PATCH", "DELETE"]),
                            Route("/healthz", healthz, methods=["GET"]),
                            Route("/metadata", metadata, methods=["GET"])],
                    lifespan=lifespan)
    return _PredictRoute(app, predictor, config, state)


def app_from_env() -> "_PredictRoute":
    """App factory for ``workers > 1`` (each uvicorn worker process loads the package itself)."""
    settings = json.loads(os.environ.get(ENV_SETTINGS, "{}"))
    config = ServeConfig(**settings)
    sys.setswitchinterval(SWITCH_S)  # as in ``serve``
    return create_app(load_package(os.environ[ENV_PACKAGE], threads=config.threads), config)


def serve(package, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          config: Optional[ServeConfig] = None, log_level: str = "info") -> None:
    """Load ``package`` and serve it until SIGINT/SIGTERM (graceful: in-flight requests finish)."""
    import uvicorn

    config = config or ServeConfig()
    config.validate()
    if workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    if not 0 <= port <= 65535:
        raise UserError(f"port must be in 0..65535, got {port}")
    # The event loop thread is busy under load; when the model thread's ONNX Runtime call
    # returns it waits for the GIL until the loop thread yields it, by default after 5 ms,
    # which is longer than the BOW model's whole batch. Hand the GIL over after SWITCH_S.
    sys.setswitchinterval(SWITCH_S)
    predictor = load_package(package, threads=config.threads)  # bad package: exit 2 before binding
    options = dict(host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30,
                   access_log=False)
    if workers == 1:
        uvicorn.run(create_app(predictor, config), **options)
        return
    del predictor
    os.environ[ENV_PACKAGE] = os.path.abspath(str(package))
    os.environ[ENV_SETTINGS] = json.dumps(dataclasses.asdict(config))
    uvicorn.run("distill.serve.server:app_from_env", factory=True, workers=workers, **options)
