"""`fleetserve`: the command line over the collection's playbooks.

Subcommands live in fleetserve.commands, one module each, exposing ``register(subparsers)``; each
registered parser sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from fleetserve import __version__, commands
from fleetserve.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetserve",
        description="Take GPU servers to MiniMax models behind verified OpenAI-compatible endpoints.",
    )
    parser.add_argument("--version", action="version", version=f"fleetserve {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"fleetserve.commands.{info.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"fleetserve: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fleetserve: interrupted", file=sys.stderr)
        return 130
