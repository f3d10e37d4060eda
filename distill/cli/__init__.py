"""The ``distill`` command: a thin dispatcher over one module per command.

Each command is a module of this package with ``DESCRIPTION``, ``add_arguments(parser)`` and
``main(args) -> int``. Only the chosen command's module is imported, so ``distill predict``
never loads Paddle and ``distill --help`` is instant. ``-v``/``-q`` (before or after the command)
set the log level of the toolkit's messages (resume, engine parity, retries).
"""
import argparse
import importlib
import logging
import sys
from typing import List, Optional

from distill.core import __version__
from distill.core.errors import UserError

# command -> one-line summary; the order is the pipeline's order.
COMMANDS = {
    "fetch": "download built-in data sets and teacher weights into the cache",
    "augment": "expand a training file with mask / POS / n-gram rules",
    "convert": "convert a teacher checkpoint (ERNIE, PaddleNLP, HF) to this tool's/PaddleNLP's layout",
    "finetune": "fine-tune an ERNIE-family teacher on a task",
    "label": "write the teacher's logits (soft labels) for a text file",
    "train": "train a student, plain or distilled from soft labels",
    "export": "export a model to Paddle/ONNX, FP32 and INT8, and measure it",
    "predict": "predict with an edge package (no Paddle needed)",
    "serve": "serve an edge package over HTTP with micro-batching (no Paddle needed)",
    "run": "run a YAML recipe end to end: data -> teacher -> students -> package",
}

# the commands that load Paddle (the others start without it)
PADDLE_COMMANDS = ("convert", "finetune", "label", "train", "export", "run")

VERBOSITY_FLAGS = {"-v", "-vv", "-q", "-qq", "--verbose", "--quiet"}


def _add_verbosity(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=0,
                       help="more messages (-v: debug; -vv: also the libraries' info)")
    group.add_argument("-q", "--quiet", action="count", default=0,
                       help="only warnings and errors (-qq: errors)")


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<10}{summary}" for name, summary in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="distill",
        description="ernie-distill: distil ERNIE-family teachers into small edge-ready students.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun 'distill COMMAND --help' for details.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ernie-distill {__version__}")
    _add_verbosity(parser)
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    return parser


OWN_LOGGERS = ("distill", "teachers", "students")


def configure_logging(verbose: int = 0, quiet: int = 0) -> None:
    """The toolkit's messages at INFO (-v: DEBUG; -q: WARNING; -qq: ERROR); other libraries'
    at WARNING (-vv: INFO), so ONNX Runtime's quantizer chatter stays out of the way."""
    ours = max(logging.DEBUG, min(logging.INFO + 10 * (quiet - verbose), logging.CRITICAL))
    logging.basicConfig(level=logging.INFO if verbose > 1 else max(ours, logging.WARNING),
                        format="%(levelname)s %(name)s: %(message)s", force=True)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(ours)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    position = next((i for i, a in enumerate(argv) if a in COMMANDS), None)
    if position is None or not set(argv[:position]) <= VERBOSITY_FLAGS:
        top.parse_args(argv)  # prints help / version / the error for an unknown command
        return 2
    outer, name, rest = argv[:position], argv[position], argv[position + 1:]
    try:
        if name in PADDLE_COMMANDS:
            from distill.train.device import import_paddle

            import_paddle()  # first, without Paddle's notice about OMP_NUM_THREADS
        module = importlib.import_module(f"distill.cli.{name}")
        parser = argparse.ArgumentParser(
            prog=f"distill {name}", description=(module.DESCRIPTION or COMMANDS[name]).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_verbosity(parser)
        module.add_arguments(parser)
        args = parser.parse_args(outer + rest)
        configure_logging(args.verbose, args.quiet)
        return int(module.main(args) or 0)
    except UserError as err:
        print(f"distill {name}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"distill {name}: interrupted; finished work is kept, re-run to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
