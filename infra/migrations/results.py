"""What the commands return: plain frozen values that the CLI prints and ``--json`` dumps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from infra.migrations.ledger import AppliedMigration, EventAction
from infra.migrations.lint import Finding
from infra.migrations.steps import StepResult
from infra.migrations.validate import Problem

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
    line: int
    sql: str
    lock_mode: str
    table: str | None
    blocks: str


@dataclass(frozen=True)
class PlanItem:
    label: str
    transaction: PlanMode
    lock_timeout: str
    statement_timeout: str
    allow: tuple[str, ...]
    statements: tuple[StatementPlan, ...]
    findings: tuple[Finding, ...]


@dataclass(frozen=True)
class PlanResult:
    items: tuple[PlanItem, ...]
    environment: str | None
    blocking: tuple[Finding, ...]  # findings that would block migrate on production
    problems: tuple[Problem, ...] = ()  # broken files: a run stops at the first


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

    @property
    def blocking(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if not f.allowed)
