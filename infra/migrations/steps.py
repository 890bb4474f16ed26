"""The vocabulary of a run: what it does to a migration, how that ended, and who hears about it.

:class:`Progress` is what the runner reports to (the CLI prints lines, the tests record events);
:class:`StepResult` is what a command returns for each migration it touched.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from infra.migrations.ledger import LockHolder
from infra.migrations.source import Migration

__all__ = ["LOCK_NOT_AVAILABLE", "Action", "NullProgress", "Outcome", "Progress", "StepResult", "backoff"]

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired


class Action(StrEnum):
    APPLY = "apply"
    RESUME = "resume"
    ROLLBACK = "rollback"


class Outcome(StrEnum):
    DONE = "done"
    NOOP = "no-op"  # an empty or comment-only section: recorded, nothing run
    STAGED = "staged"  # --single-transaction: ran, and commits (or not) with the whole run


class Progress(Protocol):
    """Where the runner reports progress (the CLI prints; tests record)."""

    def lock_waiting(self, holder: LockHolder) -> None: ...
    def started(self, migration: Migration, action: Action) -> None: ...
    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None: ...
    def finished(self, migration: Migration, action: Action, outcome: Outcome, ms: float) -> None: ...


class NullProgress:
    def lock_waiting(self, holder: LockHolder) -> None:
        pass

    def started(self, migration: Migration, action: Action) -> None:
        pass

    def retrying(self, migration: Migration, attempt: int, delay: float, reason: str) -> None:
        pass

    def finished(self, migration: Migration, action: Action, outcome: Outcome, ms: float) -> None:
        pass


@dataclass(frozen=True)
class StepResult:
    """One migration applied (or rolled back) by this run."""

    version: int
    name: str
    filename: str
    action: Action
    outcome: Outcome
    ms: float
    attempts: int = 1
    statements: int = 0


def backoff(base: float, attempt: int, maximum: float = float("inf")) -> float:
    """Seconds to wait before retry ``attempt``: doubled each time up to ``maximum``, jittered."""
    cap = min(base * 2 ** (attempt - 1), maximum)
    return random.uniform(cap / 2, cap)  # noqa: S311 - jitter, not crypto
