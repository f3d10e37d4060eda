"""`distill serve`: the command line of ``distill.serve.server`` (HTTP, micro-batching, no Paddle).

    distill serve reviews-bow.tar.gz                      # http://127.0.0.1:8000
    distill serve reviews-bow.tar.gz --host 0.0.0.0 --port 8080 --workers 2 --threads 1 \\
        --max-batch 32 --max-wait-ms 5

    curl -s localhost:8000/predict -d '{"texts": ["great phone"]}'
    curl -s localhost:8000/healthz;  curl -s localhost:8000/metadata

Stop with Ctrl-C or SIGTERM: requests in flight are answered first. docs/edge.md has a Python
client example.
"""
from distill.serve.server import ServeConfig, serve

DESCRIPTION = __doc__


def add_arguments(parser) -> None:
    defaults = ServeConfig()
    parser.add_argument("package", help="NAME.tar.gz written by 'distill export --package'")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every one)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes, each with its own model copy (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="ONNX Runtime intra-op threads per worker (default: usable cores)")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch,
                        help=f"texts per ONNX Runtime call (default {defaults.max_batch})")
    parser.add_argument("--max-wait-ms", type=float, default=defaults.max_wait_ms,
                        help="how long a batch waits for more requests after its first "
                             f"(default {defaults.max_wait_ms})")
    parser.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes,
                        help=f"larger request bodies get 413 (default {defaults.max_body_bytes})")
    parser.add_argument("--max-texts", type=int, default=defaults.max_texts,
                        help=f"texts per request (default {defaults.max_texts})")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])


def main(args) -> int:
    config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                         max_body_bytes=args.max_body_bytes, max_texts=args.max_texts,
                         threads=args.threads)
    serve(args.package, host=args.host, port=args.port, workers=args.workers, config=config,
          log_level=args.log_level)
    return 0
