"""Exceptions raised by the infra package.

The tree; each class carries its exit code (``exit_code``), read in exactly one place, infra/cli.py::

    InfraError                      every error this package raises on purpose
    ├── ConfigError                 bad stack configuration (names key, value, allowed, fix)
    ├── ContractError               a stack output is missing or malformed
    ├── TunnelError                 the bastion tunnel could not be opened or was lost
    │   └── ToolMissing             ssh / aws / session-manager-plugin / gcloud not installed
    ├── SecretError                 a secret could not be resolved
    ├── AutomationError             the Pulumi CLI / Automation API failed
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
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AutomationError",
    "ChecksumMismatch",
    "ConfigError",
    "ContractError",
    "ExitCode",
    "InfraError",
    "LintBlocked",
    "LockTimeout",
    "MigrationError",
    "MigrationParseError",
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


class InfraError(Exception):
    """Base class: every error this package raises on purpose."""

    exit_code: ExitCode = ExitCode.ERROR


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


class SafetyError(InfraError):
    """A guarded action was refused: production stack, or a missing confirmation."""


class RestoreError(InfraError):
    """The restore drill could not produce a usable copy (the message names why and the fix)."""


class MigrationError(InfraError):
    """The migration engine refused to run or a migration failed."""


class MigrationParseError(MigrationError):
    """A migration file could not be parsed; the message names the file and line."""


class ValidationError(MigrationError):
    """The ledger and the migration files disagree."""


class ChecksumMismatch(ValidationError):
    """An applied migration file was changed after it was applied."""


class LockTimeout(MigrationError):
    """Another runner held the migration advisory lock for longer than --lock-wait."""


class LintBlocked(MigrationError):
    """Lint findings block a migration on a production stack."""
