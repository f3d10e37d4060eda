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
  requests, texts, ONNX Runtime calls (``batches``), the largest batch and a histogram of batch
  sizes.

Micro-batching: requests wait in a queue; one worker task takes the first, then keeps taking
requests until ``max_batch`` texts are collected or ``max_wait_ms`` has passed since the first,
and runs them all in ONE ``Predictor.logits`` call on a single background thread (the event
loop stays free to accept requests meanwhile, so under load batches fill while the previous one
runs). A request with more than ``max_batch`` texts runs alone, in chunks of ``max_batch``.

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
from typing import Any, Dict, List, Optional

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from distill.core.errors import UserError
from distill.serve.predict import Predictor, load_package, softmax

ENV_PACKAGE, ENV_SETTINGS = "DISTILL_SERVE_PACKAGE", "DISTILL_SERVE_SETTINGS"


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


class MicroBatcher:
    """Collects concurrent requests into one model call (see the module docstring)."""

    def __init__(self, predictor: Predictor, config: ServeConfig):
        self.predictor, self.config = predictor, config
        self.queue: "asyncio.Queue[_Job]" = asyncio.Queue()
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="onnx")
        self.task: Optional[asyncio.Task] = None
        self._carry: Optional[_Job] = None
        self.stats: Dict[str, Any] = {"requests": 0, "texts": 0, "batches": 0, "largest_batch": 0,
                                      "failed_batches": 0}
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
        await self.queue.put(_Job(texts, texts_b, future))
        return await future

    async def _next_job(self, timeout: Optional[float]) -> Optional[_Job]:
        if self._carry is not None:
            job, self._carry = self._carry, None
            return job
        if timeout is None:
            return await self.queue.get()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._next_job(None)
            jobs, count = [first], len(first.texts)
            deadline = loop.time() + self.config.max_wait_ms / 1000.0
            while count < self.config.max_batch:
                job = await self._next_job(max(0.0, deadline - loop.time()))
                if job is None:
                    break
                if count + len(job.texts) > self.config.max_batch:
                    self._carry = job  # first of the next batch
                    break
                jobs.append(job)
                count += len(job.texts)
            await self._serve(loop, jobs, count)

    async def _serve(self, loop, jobs: List[_Job], count: int) -> None:
        texts = [t for job in jobs for t in job.texts]
        pairs = jobs[0].texts_b is not None
        texts_b = [t for job in jobs for t in job.texts_b] if pairs else None  # type: ignore
        try:
            results = await loop.run_in_executor(self.executor, self._predict, texts, texts_b)
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

    def _predict(self, texts: List[str], texts_b: Optional[List[str]]) -> List[Dict[str, Any]]:
        step = self.config.max_batch
        labels = self.predictor.labels
        out: List[Dict[str, Any]] = []
        for start in range(0, len(texts), step):
            chunk_b = None if texts_b is None else texts_b[start:start + step]
            probs = softmax(self.predictor.logits(texts[start:start + step], chunk_b))  # (B, C)
            for row in probs:
                best = int(row.argmax())
                out.append({"label": labels[best], "score": float(row[best]),
                            "probabilities": {l: float(p) for l, p in zip(labels, row)}})
        return out


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


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"body of {declared} bytes; at most {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"body over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(predictor: Predictor, config: Optional[ServeConfig] = None) -> Starlette:
    """The ASGI app for a loaded package (run it with uvicorn)."""
    config = config or ServeConfig()
    config.validate()
    state: Dict[str, Any] = {"batcher": None, "stopping": False}

    async def predict(request: Request) -> JSONResponse:
        if state["stopping"]:
            return JSONResponse({"error": "shutting down"}, status_code=503)
        try:
            body = await _read_body(request, config.max_body_bytes)
            texts, texts_b = parse_request(body, predictor, config)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        batcher: MicroBatcher = state["batcher"]
        batcher.stats["requests"] += 1
        batcher.stats["texts"] += len(texts)
        try:
            results, size = await batcher.submit(texts, texts_b)
        except UserError as err:  # the encoder refused an input the checks above let through
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"results": results, "batch_size": size})

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

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                             Route("/healthz", healthz, methods=["GET"]),
                             Route("/metadata", metadata, methods=["GET"])],
                     lifespan=lifespan)


def app_from_env() -> Starlette:
    """App factory for ``workers > 1`` (each uvicorn worker process loads the package itself)."""
    settings = json.loads(os.environ.get(ENV_SETTINGS, "{}"))
    config = ServeConfig(**settings)
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
