"""Schema drift: the ledger against the files, and the live catalog against the expected one.

* **ledger** (the engine's own validation, :func:`infra.migrations.validate.check`): pending
  migrations, applied files that were edited or removed, failed or partial runs;
* **catalog**: :func:`infra.migrations.catalog.introspect` on the live database against the
  expected catalog of the applied migrations (:mod:`infra.drift.expected`), attribute by
  attribute, each difference with its severity (:mod:`infra.drift.rules`), minus what the managed
  service adds by itself (:data:`infra.drift.rules.MANAGED_SERVICE`).

Reads only. Raises (exit 1) when it cannot see: unreadable migration files, a ledger the login
cannot read, an expected catalog that cannot be built, a server of another major version.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg

from infra.drift.expected import Expected
from infra.drift.model import DriftItem, Severity
from infra.drift.rules import MANAGED_SERVICE, IgnoreList, severity
from infra.errors import InfraError, MigrationError
from infra.migrations import catalog, source, validate
from infra.migrations.catalog import EXISTS, Catalog
from infra.migrations.ledger import AppliedMigration, read_ledger
from infra.migrations.source import Migration, Source

__all__ = ["ExpectedSource", "catalog_items", "ledger_items", "schema_drift"]

# the ledger's problem kinds, as an attribute name and what each means for the expected value
_LEDGER_ATTRIBUTES = {
    "changed": "checksum",
    "renamed": "file name",
    "missing": "file",
    "out-of-order": "version order",
    "failed": "status",
    "partial-changed": "applied statements",
    "broken": "file",
}


class ExpectedSource(Protocol):
    """Where the expected catalog comes from (:class:`infra.drift.expected.ExpectedCatalogs`)."""

    def get(self, migrations: Sequence[Migration]) -> Expected: ...


def ledger_items(files_now: Source, rows: Sequence[AppliedMigration]) -> list[DriftItem]:
    """Ledger and files disagreeing, and pending files, as drift items (the engine's messages as notes)."""
    validation = validate.check(files_now, rows)
    by_version = {row.version: row for row in rows}
    files = {m.filename: m for m in files_now.migrations}
    items: list[DriftItem] = []
    for problem in validation.all_problems:
        attribute = _LEDGER_ATTRIBUTES.get(problem.kind, problem.kind)
        mig = files.get(problem.file)
        row = by_version.get(mig.version) if mig is not None else None
        expected: str | None
        actual: str | None
        if problem.kind == "changed" and mig is not None and row is not None:
            expected, actual = f"sha256 {row.checksum[:12]} (applied)", f"sha256 {mig.checksum[:12]} (file now)"
        elif problem.kind == "missing":
            expected, actual = "present", "absent"
        elif problem.kind == "broken":
            expected, actual = "a valid migration", "does not parse"
        elif problem.kind == "failed" and row is not None:
            expected, actual = "applied", row.status
        else:
            expected, actual = None, problem.kind
        items.append(
            DriftItem(
                "schema",
                "ledger",
                f"migration {problem.file}",
                attribute,
                expected,
                actual,
                Severity.STRUCTURE,
                problem.describe(),
            )
        )
    for mig in validation.todo():
        items.append(
            DriftItem(
                "schema",
                "ledger",
                f"migration {mig.filename}",
                "applied",
                "yes",
                "no",
                Severity.STRUCTURE,
                "pending: `python -m infra plan` shows what it will do, `migrate` applies it",
            )
        )
    return items


def catalog_items(expected: Catalog, actual: Catalog, ignore: IgnoreList = MANAGED_SERVICE) -> list[DriftItem]:
    """Every attribute that differs between the two catalogs, with its severity, minus ``ignore``."""
    if expected.server_major != actual.server_major:
        raise InfraError(
            f"the live server is PostgreSQL {actual.server_major} but the expected catalog was built on "
            f"{expected.server_major}; catalogs of different major versions cannot be compared attribute by "
            "attribute; fix: build the expected catalog on the same major version (PG16_BINDIR)"
        )
    items: list[DriftItem] = []
    for diff in catalog.compare(expected, actual):
        if ignore.ignores(diff.kind, diff.name, diff.attribute):
            continue
        before = expected.objects.get(diff.kind, {}).get(diff.name)
        after = actual.objects.get(diff.kind, {}).get(diff.name)
        note = ""
        if diff.attribute == EXISTS:
            note = "created outside the migrations" if diff.actual == "present" else "dropped outside the migrations"
        items.append(
            DriftItem(
                "schema",
                "catalog",
                f"{diff.kind} {diff.name}",
                diff.attribute,
                diff.expected,
                diff.actual,
                severity(diff.kind, diff.attribute, before, after),
                note,
            )
        )
    return items


def applied_files(migrations: Sequence[Migration], rows: Sequence[AppliedMigration]) -> tuple[Migration, ...]:
    """The files of the migrations the ledger records as applied (what the live schema was built from).

    An applied version whose file is missing cannot be replayed: the ledger check reports it, and
    its objects then show in the catalog comparison as created outside the migrations.
    """
    applied = {row.version for row in rows if row.status == "applied"}
    return tuple(m for m in migrations if m.version in applied)


def schema_drift(
    conn: psycopg.Connection[Any],
    migrations_dir: Path,
    expected: ExpectedSource,
    *,
    ignore: IgnoreList = MANAGED_SERVICE,
    schemas: tuple[str, ...] = catalog.APP_SCHEMAS,
) -> tuple[list[DriftItem], str]:
    """The schema's drift items, and how the expected catalog was obtained. Reads only.

    Raises MigrationError when the files cannot be read, InfraError when the ledger or the
    catalog cannot be read or the expected catalog cannot be built.
    """
    if not migrations_dir.is_dir():
        raise MigrationError(f"migrations directory {str(migrations_dir)!r} does not exist; fix: --migrations-dir")
    files_now = source.load(migrations_dir)
    try:
        rows, _environment = read_ledger(conn)
        live = catalog.introspect(conn, schemas)
    except psycopg.Error as exc:
        raise InfraError(f"cannot read the ledger and catalog of the live database: {_one_line(exc)}") from None
    items = ledger_items(files_now, rows)
    built = expected.get(applied_files(files_now.migrations, rows))
    items += catalog_items(built.catalog, live, ignore)
    return items, built.describe()


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
