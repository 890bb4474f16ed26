"""Exceptions raised by the infra package.

The tree; each class carries its exit code (``exit_code``), read in exactly one place, infra/cli.py::

    InfraError                      every error this package raises on purpose
    ├── ConfigError                 bad stack configuration (names key, value, allowed, fix)
    ├── ContractError               a stack output is missing or malformed
    ├── TunnelError                 the bastion tunnel could not be opened or was lost
    │   └── ToolMissing             ssh / aws / session-manager-plugin / gcloud not installed
    ├── SecretError                 a secret could not be resolved
    ├── AutomationError             the Pulumi CLI / Automation API failed
    ├── ProvisionError              the cloud reported a value the program cannot build on
    ├── SafetyError                 a guarded action was refused (production, missing --confirm)
    ├── RestoreError                the restore drill could not restore (no backup, PITR off, time
    │                               outside the window, a copy that never became available)
    └── MigrationError              the migration engine refused or failed
        ├── MigrationParseError     a file could not be parsed (file and line)
        ├── ValidationError         ledger and files disagree (changed, missing, out of order)
        │   └── ChecksumMismatch    an applied file was changed
        ├── LockTimeout             another runner holds the advisory lock
        └── LintBlocked             squawk findings block a production migration

Messages are short, lowercase, name what blocked the action and the value (``!r``),
and never contain a password. Exceptions have no side effects (no logging in ``__init__``).

The migration errors carry their facts as fields (``file``, ``line``, ``statement``, ``sqlstate``,
``fix``; the problems, findings or lock holder) and are formatted late, in ``__str__``; the CLI
prints ``str(exc)`` as one line, or :meth:`InfraError.fields` as a JSON object with ``--json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol

__all__ = [
    "AutomationError",
    "ChecksumMismatch",
    "ConfigError",
    "ContractError",
    "Describable",
    "ExitCode",
    "InfraError",
    "LintBlocked",
    "LockTimeout",
    "MigrationError",
    "MigrationParseError",
    "ProvisionError",
    "RestoreError",
    "SafetyError",
    "SecretError",
    "ToolMissing",
    "TunnelError",
    "ValidationError",
]


class ExitCode(IntEnum):
    """``python -m infra``'s exit codes: a documented contract a scheduler acts on (README "Exit codes")."""

    OK = 0
    ERROR = 1  # bad input, refused action, failed migration, unreachable database, could not check
    ATTENTION = 2  # something to act on: migrations pending (``status --exit-code``) or drift found
    USAGE = 64  # the command line itself is wrong (sysexits EX_USAGE; not 2, which means drift)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM
    # stdout was closed before the report was written (``status | head``): 128 + SIGPIPE, what a
    # shell reports for any tool a closed pipe ends; nothing is printed about it
    BROKEN_PIPE = 141


class Describable(Protocol):
    """A fact an error carries (a problem, a lint finding, a lock holder) that formats itself."""

    def describe(self) -> str: ...


class InfraError(Exception):
    """Base class: every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def fields(self) -> dict[str, object]:
        """The error as data for ``--json`` (``type`` and ``message``, plus what a subclass carries)."""
        return {"type": type(self).__name__, "message": str(self), "exit_code": int(self.exit_code)}


class ConfigError(InfraError):
    """A stack configuration value is missing, malformed or not allowed."""

    def __init__(self, key: str, value: object, allowed: str, fix: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.fix = fix
        super().__init__(f"config {key}={value!r} is not allowed: {allowed}; fix: {fix}")


class ContractError(InfraError):
    """A stack output that the post-deploy step needs is missing or malformed."""


class TunnelError(InfraError):
    """The tunnel through the bastion could not be opened, or was lost."""


class ToolMissing(TunnelError):
    """A command-line tool the tunnel needs is not installed."""


class SecretError(InfraError):
    """A secret could not be resolved (the message never contains its value)."""


class AutomationError(InfraError):
    """The Pulumi CLI (through the Automation API) failed."""


class ProvisionError(InfraError):
    """The cloud reported a value (during ``pulumi up``) that the program cannot build on."""


class SafetyError(InfraError):
    """A guarded action was refused: production stack, or a missing confirmation."""


class RestoreError(InfraError):
    """The restore drill could not produce a usable copy (the message names why and the fix)."""


class MigrationError(InfraError):
    """The migration engine refused to run or a migration failed.

    ``message`` says what happened (lowercase, values with ``!r``; a server error keeps its own
    text and SQLSTATE); ``file``/``line`` where, ``statement`` the SQL it concerns, ``sqlstate`` the
    server's code, ``fix`` what to do.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        statement: str | None = None,
        sqlstate: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.statement = statement
        self.sqlstate = sqlstate
        self.fix = fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file and self.line else self.file
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}; fix: {self.fix}" if self.fix else text

    def fields(self) -> dict[str, object]:
        found = {
            "file": self.file,
            "line": self.line,
            "statement": self.statement,
            "sqlstate": self.sqlstate,
            "fix": self.fix,
        }
        return super().fields() | {k: v for k, v in found.items() if v is not None}


class MigrationParseError(MigrationError):
    """A migration file could not be parsed, or is not a migration; ``file`` and ``line`` say where."""


class ValidationError(MigrationError):
    """The ledger and the migration files disagree; ``problems`` lists each disagreement with its fix."""

    def __init__(self, problems: Sequence[Describable]) -> None:
        super().__init__("\n".join(p.describe() for p in problems))
        self.problems = tuple(problems)

    def fields(self) -> dict[str, object]:
        return super().fields() | {"problems": [p.describe() for p in self.problems]}


class ChecksumMismatch(ValidationError):
    """An applied migration file was changed after it was applied."""


class LockTimeout(MigrationError):
    """Another runner held the migration advisory lock for longer than --lock-wait (``holder``)."""

    def __init__(self, holder: Describable, waited: float) -> None:
        super().__init__(
            f"another runner holds the migration lock: {holder.describe()}; waited {waited:g}s",
            fix="wait for it to finish, or raise --lock-wait",
        )
        self.holder = holder
        self.waited = waited

    def fields(self) -> dict[str, object]:
        return super().fields() | {"holder": self.holder.describe(), "waited_seconds": self.waited}


class LintBlocked(MigrationError):
    """Lint ``findings`` block a migration on a production stack."""

    def __init__(self, findings: Sequence[Describable]) -> None:
        super().__init__(
            "lint findings block migrate on production:\n" + "\n".join(f.describe() for f in findings),
            fix="change the migration, or after review add '-- migrate:allow <rule>' to it",
        )
        self.findings = tuple(findings)

    def fields(self) -> dict[str, object]:
        return super().fields() | {"findings": [f.describe() for f in self.findings]}
