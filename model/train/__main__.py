"""``python -m model.train STEP …``: the train recipes without the rest of the CLI (GPU hosts)."""

from __future__ import annotations

import argparse
import sys

from model.cli_support import CommandError
from model.train.commands import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.train")
    commands = parser.add_subparsers(dest="command")
    register(commands, commands)  # no bench entries here
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"docomplete: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
