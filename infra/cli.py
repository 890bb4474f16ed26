"""``python -m infra <command>``: argument parsing and the one place errors become exit codes.

Exit codes (a documented contract, see README "Exit codes"):

    0  ok
    1  error (bad input, refused action, failed migration, unreachable database, ...)
    2  something to act on: migrations pending (``status --exit-code``) or drift found (``drift``)
  130  interrupted (Ctrl-C)

Each command module exposes ``register(subparsers)``, which adds its sub-commands with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns an
exit code. Handlers print reports to stdout; diagnostics go to stderr through ``logging``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from infra.errors import InfraError

__all__ = ["EXIT_ATTENTION", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_OK", "Handler", "main"]

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_ATTENTION = 2  # pending migrations or drift: a scheduler acts on it
EXIT_INTERRUPTED = 130

Handler = Callable[[argparse.Namespace], int]

# Modules that contribute sub-commands; each has register(subparsers).
COMMAND_MODULES: tuple[str, ...] = (
    "infra.synth",
    "infra.postdeploy_cli",
    "infra.drift",
    "infra.migrations.cli",
    "infra.seed_cli",
)

_log = logging.getLogger("infra")


class _Registrar(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra",
        description="Private PostgreSQL 16 on AWS or GCP: synth, migrate, drift, local demo.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics on stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        module: _Registrar = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except InfraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
