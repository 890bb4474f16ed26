"""What the commands return: plain frozen values that the CLI prints and ``--json`` dumps.

The lint, lock and measurement types appear in annotations only, so that ``migrate`` and
``status`` start without loading those modules (``plan`` and ``lint`` import them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from infra.migrations.ledger import AppliedMigration, EventAction
from infra.migrations.steps import StepResult
from infra.migrations.validate import Problem

if TYPE_CHECKING:
    from infra.migrations.lint import Finding
    from infra.migrations.locks import RelationLock
    from infra.migrations.measure import MeasuredLock, MeasuredStatement

__all__ = [
    "BaselineResult",
    "LintResult",
    "MigrateResult",
    "PlanItem",
    "PlanResult",
    "RepairResult",
    "RollbackResult",
    "StatementPlan",
    "StatusResult",
    "ValidateResult",
]

#: How ``plan`` says a pending migration will run.
PlanMode = Literal["transaction", "no-transaction", "resume", "no-op"]


@dataclass(frozen=True)
class MigrateResult:
    run_id: str
    applied: tuple[StepResult, ...]
    planned: tuple[str, ...]  # labels of what was (or, with dry_run, would be) applied
    dry_run: bool
    environment: str | None
    single_transaction: bool = False
    stop: Problem | None = None  # dry run: the broken file a run would stop at


@dataclass(frozen=True)
class StatusResult:
    applied: tuple[AppliedMigration, ...]
    pending: tuple[str, ...]
    problems: tuple[Problem, ...]
    environment: str | None


@dataclass(frozen=True)
class ValidateResult:
    files: int
    applied: int
    pending: tuple[str, ...]


@dataclass(frozen=True)
class StatementPlan:
    """One pending statement: the strongest lock read from its parse tree (``lock_mode`` on ``table``,
    what it ``blocks``), every lock (``locks``), what may be rewritten, what the tree cannot tell
    (``notes``) and, with ``--measure``, what PostgreSQL took (``measured``)."""

    line: int
    sql: str
    lock_mode: str
    table: str | None
    blocks: str
    locks: tuple[RelationLock, ...] = ()
    rewrites: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    measured: MeasuredStatement | None = None

    @classmethod
    def of(cls, line: int, text: str, measured: MeasuredStatement | None = None) -> StatementPlan:
        """The plan of one statement: its locks read from its parse tree, and what was measured."""
        from infra.migrations.locks import statement_locks

        derived = statement_locks(text)
        mode, table, blocks = derived.summary()
        return cls(line, text, mode, table, blocks, derived.locks, derived.rewrites, derived.notes, measured)


@dataclass(frozen=True)
class PlanItem:
    label: str
    transaction: PlanMode
    lock_timeout: str
    statement_timeout: str
    allow: tuple[str, ...]
    statements: tuple[StatementPlan, ...]
    findings: tuple[Finding, ...]
    held: tuple[MeasuredLock, ...] = ()  # --measure, transactional: what the migration holds until its commit


@dataclass(frozen=True)
class PlanResult:
    items: tuple[PlanItem, ...]
    environment: str | None
    blocking: tuple[Finding, ...]  # findings that would block migrate on production
    problems: tuple[Problem, ...] = ()  # broken files: a run stops at the first
    measured: bool = False  # locks measured on a scratch PostgreSQL 16 (plan --measure)


@dataclass(frozen=True)
class RollbackResult:
    run_id: str
    rolled_back: tuple[StepResult, ...]


@dataclass(frozen=True)
class BaselineResult:
    run_id: str
    versions: tuple[int, ...]


@dataclass(frozen=True)
class RepairResult:
    run_id: str
    version: int
    action: EventAction  # repair | forget
    old_checksum: str | None
    new_checksum: str | None


@dataclass(frozen=True)
class LintResult:
    files: tuple[str, ...]
    findings: tuple[Finding, ...]
    problems: tuple[Problem, ...] = ()  # files that could not be linted (broken)
    baseline: Path | None = None  # written by lint --write-baseline

    @property
    def blocking(self) -> tuple[Finding, ...]:
        """Findings neither allowed by their file nor in the lint baseline: ``lint`` fails on these."""
        return tuple(f for f in self.findings if f.counts)
