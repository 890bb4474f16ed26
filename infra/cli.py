"""``python -m infra <command>``: argument parsing and the one place errors become exit codes.

Exit codes (a documented contract, see README "Exit codes"; defined by :class:`infra.errors.ExitCode`):

    0  ok
    1  error (bad input, refused action, failed migration, unreachable database, could not check)
    2  something to act on: migrations pending (``status --exit-code``) or drift found (``drift``)
   64  the command line is wrong (usage)
  130  interrupted (Ctrl-C, SIGTERM)

  141  stdout was closed before the report was written (``status | head``); nothing is printed

Each stage's command module exposes ``register(subparsers)``, which adds its sub-commands with
``set_defaults(handler=...)``; a handler takes the parsed ``argparse.Namespace`` and returns an
exit code. Only the module of the command being run is imported (:data:`COMMANDS`); help, a
mistyped command or no command at all get every module, so they read as they always did.
Handlers print reports to stdout; diagnostics go to stderr through ``logging``. An error is
printed as one line on stderr (``--traceback`` shows the stack as well, for a bug report); a
command run with ``--json`` also prints it on stdout as ``{"error": {...}}``, with the fields the
error carries (file, line, statement, sqlstate, fix, problems, findings, lock holder).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import re
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from infra.errors import ExitCode, InfraError

__all__ = ["Handler", "build_parser", "main"]

Handler = Callable[[argparse.Namespace], int]

# The stages' command modules, in pipeline order; each has register(subparsers). The migration
# engine's verbs are registered by the post-deploy stage, which adds `--stack` to them.
COMMAND_MODULES: tuple[str, ...] = (
    "infra.provision.synth",
    "infra.provision.graph",
    "infra.postdeploy.cli",
    "infra.postdeploy.seed_cli",
    "infra.local.cli",
    "infra.drift.cli",
    "infra.restore.cli",
    "infra.acceptance.cli",
)

# Which module registers each command, so `python -m infra migrate` imports the engine's command
# module and not every stage's (the drift, local, restore and acceptance stages cost ~70 ms of
# start-up with .pyc, more without). tests/unit/test_cli.py compares it with what the modules register.
COMMANDS: Mapping[str, str] = {
    "synth": "infra.provision.synth",
    "graph": "infra.provision.graph",
    **dict.fromkeys(
        ("postdeploy", "migrate", "status", "validate", "plan", "rollback", "baseline", "repair", "lint", "import"),
        "infra.postdeploy.cli",
    ),
    "seed": "infra.postdeploy.seed_cli",
    "reset": "infra.postdeploy.seed_cli",
    "tunnel": "infra.local.cli",
    "local": "infra.local.cli",
    "drift": "infra.drift.cli",
    "restore-drill": "infra.restore.cli",
    "acceptance": "infra.acceptance.cli",
    "teardown": "infra.acceptance.cli",
}

# The options before the command; none takes a value (-v counts: -vv).
_GLOBAL_FLAG = re.compile(r"-v+|--verbose|--traceback")

_log = logging.getLogger("infra")


class _Registrar(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on a usage error; 2 means "drift found" here, so usage errors raise instead."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


def command_modules(argv: Sequence[str]) -> tuple[str, ...]:
    """The modules to register for ``argv``: its command's alone when the command is known; all of
    them for help (``-h`` before the command), an abbreviated option, a typo or no command."""
    for arg in argv:
        if _GLOBAL_FLAG.fullmatch(arg):
            continue
        if arg in COMMANDS:
            return (COMMANDS[arg],)
        break
    return COMMAND_MODULES


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv`` (see :func:`command_modules`); without ``argv``, every command."""
    parser = _Parser(
        prog="python -m infra",
        description="Private PostgreSQL 16 on AWS or GCP: synth, migrate, drift, local demo.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more diagnostics on stderr")
    parser.add_argument("--traceback", action="store_true", help="on an error, show the stack (for a bug report)")
    parser.set_defaults(json=False)  # commands with machine-readable output add --json
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_Parser
    )
    for name in COMMAND_MODULES if argv is None else command_modules(argv):
        module: _Registrar = importlib.import_module(name)
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return ExitCode.USAGE
    logging.basicConfig(
        level=logging.DEBUG if args.verbose > 1 else logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler: Handler = args.handler
    try:
        try:
            code = handler(args)
        except InfraError as exc:
            if args.traceback:
                traceback.print_exc(file=sys.stderr)
            print(f"error: {exc}", file=sys.stderr)
            if args.json:
                print(json.dumps({"error": exc.fields()}, indent=2, sort_keys=True, default=str))
            code = exc.exit_code
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return ExitCode.INTERRUPTED
        sys.stdout.flush()  # a closed pipe shows here, not at exit (where Python would print a traceback)
    except BrokenPipeError:
        _silence_stdout()
        return ExitCode.BROKEN_PIPE
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush of what was left cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
