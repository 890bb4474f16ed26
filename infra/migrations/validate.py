"""Files against the ledger, without a database: what a run would do, or what forbids it.

:func:`check` is pure (a :class:`~infra.migrations.source.Source` and ledger rows in, a
:class:`Validation` out) and never raises, so every refusal is decided before any migration SQL is
sent, and ``status``/``plan``/``drift`` report the same disagreements ``migrate`` refuses.

A broken pending file (bad content, a version used twice) does not block the others: ``migrate``
applies what comes before it and stops there (:attr:`Validation.stop`); the read-only commands show
the rest. A file whose *name* is wrong has no place in the order, so it blocks ``migrate`` from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from infra.errors import ChecksumMismatch, ValidationError
from infra.migrations.ledger import AppliedMigration, LedgerStatus
from infra.migrations.source import BrokenFile, Migration, Source

__all__ = ["Problem", "ProblemKind", "Validation", "check", "raise_problems"]


class ProblemKind(StrEnum):
    CHANGED = "changed"  # an applied file was edited
    MISSING = "missing"  # an applied file is gone
    RENAMED = "renamed"  # an applied version now has another file name
    OUT_OF_ORDER = "out-of-order"  # a new file below the highest applied version
    FAILED = "failed"  # a no-transaction section failed part-way
    PARTIAL_CHANGED = "partial-changed"  # its applied statements were edited since
    BROKEN = "broken"  # the file cannot be parsed, or is not a migration


@dataclass(frozen=True)
class Problem:
    """Why the files and the ledger disagree, with the fix."""

    kind: ProblemKind
    file: str
    message: str
    fix: str

    def describe(self) -> str:
        return f"{self.message}; fix: {self.fix}"


@dataclass(frozen=True)
class Validation:
    """What a run would do: resume a partial migration, then apply ``pending``; or the problems."""

    applied: tuple[AppliedMigration, ...]
    pending: tuple[Migration, ...]  # in version order, up to (not including) ``stop``
    resume: tuple[Migration, AppliedMigration] | None
    problems: tuple[Problem, ...]  # each refuses a run before any SQL
    stop: BrokenFile | None = None  # the first pending file that is broken: a run stops there
    later: tuple[Problem, ...] = ()  # the broken pending files (``stop`` first)
    blocked: tuple[Migration, ...] = ()  # pending files after ``stop`` (status and plan still show them)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        return (*self.problems, *self.later)

    def todo(self, target: int | None = None) -> tuple[Migration, ...]:
        """The migrations a run applies, in order (a resumed one first), up to ``target``."""
        first = (self.resume[0],) if self.resume else ()
        return tuple(m for m in (*first, *self.pending) if target is None or m.version <= target)


def _broken(item: BrokenFile) -> Problem:
    error = item.error
    where = f"{item.filename}:{error.line}" if error.line else item.filename
    return Problem(ProblemKind.BROKEN, item.filename, f"{where}: {error.message}", error.fix or "correct the file")


def check(source: Source, rows: Sequence[AppliedMigration], *, retry_failed: bool = False) -> Validation:
    """Compare files with the ledger. Never raises: problems are returned, with their fixes."""
    files = {m.version: m for m in source.migrations}
    broken = {b.version: b for b in source.broken if b.version is not None}
    problems = [_broken(b) for b in source.broken if b.version is None]
    resume: tuple[Migration, AppliedMigration] | None = None
    for row in rows:
        mig = files.get(row.version)
        bad = broken.get(row.version)
        if mig is None and bad is not None:
            if row.status is not LedgerStatus.APPLIED or bad.checksum != row.checksum:
                problems.append(_broken(bad))  # it ran; an unchanged file need not parse until a rollback
            continue
        if mig is None:
            problems.append(
                Problem(
                    ProblemKind.MISSING,
                    row.display_name,
                    f"{row.display_name} is in the ledger (applied {row.applied_at:%Y-%m-%d %H:%M} by "
                    f"{row.applied_by}) but the file is missing",
                    "restore it from version control, or if it was removed on purpose: python -m infra repair "
                    f"--version {row.version} --forget --reason '...'",
                )
            )
            continue
        # format-1 rows have no file name: the slug is all they can be compared by
        if (row.filename is not None and row.filename != mig.filename) or (
            row.filename is None and row.name != mig.name
        ):
            problems.append(
                Problem(
                    ProblemKind.RENAMED,
                    mig.filename,
                    f"version {row.version} was applied as {row.display_name} but the file is now {mig.filename}",
                    f"rename it back (or accept with: python -m infra repair --version {row.version} --reason '...')",
                )
            )
            continue
        if row.status is LedgerStatus.APPLIED:
            if row.checksum != mig.checksum:
                problems.append(
                    Problem(
                        ProblemKind.CHANGED,
                        mig.filename,
                        f"{mig.filename} was changed after it was applied on {row.applied_at:%Y-%m-%d} "
                        f"(ledger sha256 {row.checksum[:12]}, file {mig.checksum[:12]})",
                        "restore the applied content from version control and put the change in a new migration, "
                        f"or accept it: python -m infra repair --version {row.version} --reason '...'",
                    )
                )
            continue
        found = _resumable(mig, row, retry_failed)
        if isinstance(found, Problem):
            problems.append(found)
        else:
            resume = (mig, row)
    top = max((r.version for r in rows), default=None)
    applied_versions = {r.version for r in rows}
    pending: list[Migration] = []
    later: list[Problem] = []
    stop: BrokenFile | None = None
    blocked: list[Migration] = []
    new: list[tuple[int, Migration | BrokenFile]] = [(m.version, m) for m in source.migrations]
    new += [(version, b) for version, b in broken.items() if version is not None]
    new.sort(key=lambda pair: pair[0])
    for version, item in new:
        if version in applied_versions:
            continue
        if top is not None and version < top:
            problems.append(_out_of_order(item, top))
        elif isinstance(item, BrokenFile):
            stop = stop or item
            later.append(_broken(item))
        elif stop is None:
            pending.append(item)
        else:
            blocked.append(item)
    return Validation(tuple(rows), tuple(pending), resume, tuple(problems), stop, tuple(later), tuple(blocked))


def _out_of_order(item: Migration | BrokenFile, top: int) -> Problem:
    slug = item.name if isinstance(item, Migration) else item.filename.partition("_")[2].removesuffix(".sql")
    renamed = f"{top + 1:04d}_{slug}.sql" if slug else f"{top + 1:04d}.sql"
    return Problem(
        ProblemKind.OUT_OF_ORDER,
        item.filename,
        f"{item.filename} is new but its version {item.version} is below the highest applied version {top}",
        f"renumber it above {top:04d} (e.g. {renamed})",
    )


def _resumable(mig: Migration, row: AppliedMigration, retry_failed: bool) -> Problem | None:
    """A partial (interrupted) or failed no-transaction row: resumable when the statements already
    applied are still the file's first statements."""
    done = row.statements_applied or 0
    hashes = tuple(s.sha256 for s in mig.up[:done])
    if not mig.directives.no_transaction or len(mig.up) < done or hashes != row.statement_hashes:
        return Problem(
            ProblemKind.PARTIAL_CHANGED,
            mig.filename,
            f"{mig.filename} stopped after statement {done} of {row.statements_total} and its applied "
            "statements were changed since",
            "restore them from version control, or repair the database by hand and then: "
            f"python -m infra repair --version {row.version} --forget --reason '...'",
        )
    if row.status is LedgerStatus.FAILED and not retry_failed:
        return Problem(
            ProblemKind.FAILED,
            mig.filename,
            f"{mig.filename} failed at statement {done + 1} of {row.statements_total}: {row.last_error}; "
            f"statements 1..{done} stay applied",
            "fix the cause (the file's later statements or the database), then rerun with --retry-failed",
        )
    return None


def raise_problems(problems: Sequence[Problem]) -> None:
    """Raise :class:`ValidationError` (or :class:`ChecksumMismatch`) listing every problem."""
    if not problems:
        return
    if all(p.kind is ProblemKind.CHANGED for p in problems):
        raise ChecksumMismatch(problems)
    raise ValidationError(problems)
