"""`distill fetch`: the command line of ``distill.data.fetch``."""
from pathlib import Path

from distill.data import fetch as library
from distill.data.fetch import (ENTRIES, FetchError, MANIFEST, describe_stats, fetch, home, list_entries, read_json)

DESCRIPTION = library.__doc__


def add_arguments(parser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"entries to fetch: {', '.join(ENTRIES.names())}")
    parser.add_argument("--all", action="store_true", help="fetch every entry")
    parser.add_argument("--list", action="store_true", help="list the entries and exit")
    parser.add_argument("--force", action="store_true", help="download and rebuild even if cached")
    parser.add_argument("--home", default=None,
                        help="cache root (default: $ERNIE_DISTILL_HOME or ~/.cache/ernie-distill)")

def main(args) -> int:
    root = Path(args.home) if args.home else home()
    if args.list:
        print(list_entries(root=root))
        return 0
    names = ENTRIES.names() if args.all else list(args.names)
    if not names:
        raise FetchError("name one or more entries, or --all; see: distill fetch --list")
    for name in names:
        ENTRIES.get(name)  # unknown names fail before any download
    for name in names:
        path = fetch(name, force=args.force, root=root)
        entry = ENTRIES.get(name)
        stats = read_json(path / MANIFEST)["stats"]
        print(f"{name}: {path}")
        for text in describe_stats(entry, stats):
            print(f"    {text}")
    return 0
