"""The ``distill`` command: a thin dispatcher over the toolkit's modules.

Each command lives in its own module, which provides ``add_arguments(parser)`` and
``main(args) -> int``. Only the chosen command's module is imported, so ``distill predict``
never loads Paddle and ``distill --help`` is instant.
"""
import argparse
import importlib
import sys
from typing import List, Optional

from distill.errors import UserError

# command -> (module, one-line summary); the order is the pipeline's order.
COMMANDS = {
    "fetch": ("distill.fetch", "download built-in data sets and teacher weights into the cache"),
    "augment": ("distill.augment", "expand a training file with mask / POS / n-gram rules"),
    "finetune": ("teachers.finetune", "fine-tune an ERNIE-family teacher on a task"),
    "label": ("teachers.soft_labels", "write the teacher's logits (soft labels) for a text file"),
    "train": ("students.train", "train a student, plain or distilled from soft labels"),
    "export": ("distill.export", "export a model to Paddle/ONNX, FP32 and INT8, and measure it"),
    "predict": ("distill.predict", "predict with an edge package (no Paddle needed)"),
    "run": ("distill.runner", "run a YAML recipe end to end: data -> teacher -> students -> package"),
}


def _top_parser() -> argparse.ArgumentParser:
    lines = [f"  {name:<10}{summary}" for name, (_, summary) in COMMANDS.items()]
    return argparse.ArgumentParser(
        prog="distill",
        description="ernie-distill: distil ERNIE-family teachers into small edge-ready students.",
        epilog="commands:\n" + "\n".join(lines) + "\n\nRun 'distill COMMAND --help' for details.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _top_parser()
    top.add_argument("--version", action="version", version=_version())
    top.add_argument("command", choices=list(COMMANDS), metavar="COMMAND")
    if not argv or argv[0] not in COMMANDS:
        top.parse_args(argv)  # prints help / version / the error for an unknown command
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(
        prog=f"distill {name}",
        description=(module.__doc__ or COMMANDS[name][1]).strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except UserError as err:
        print(f"distill {name}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"distill {name}: interrupted; finished work is kept, re-run to resume",
              file=sys.stderr)
        return 130


def _version() -> str:
    from distill import __version__

    return f"ernie-distill {__version__}"


if __name__ == "__main__":
    sys.exit(main())
