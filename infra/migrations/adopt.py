"""Adopting a live database from the ledger another tool left in it (``baseline --from-ledger``).

The other tool's ledger says which of its migrations ran; the import mapping
(:data:`~infra.migrations.importers.MAP_FILE`) says which of our files each one became. Adoption
records exactly those files, and only when everything agrees:

* **dbmate**: ``schema_migrations(version)``, one row per applied version.
* **golang-migrate**: ``schema_migrations(version, dirty)``, one row: the last version applied;
  every file up to it counts as applied. ``dirty`` means a migration failed half-way: refused.
  (ory's popx keeps pop's ``schema_migration(version)``, one row per version: pass
  ``--ledger-table schema_migration``.)
* **diesel**: ``__diesel_schema_migrations(version)``, one row per applied version.
* **flyway**: ``flyway_schema_history``, one row per script run, in ``installed_rank`` order: a
  failed row (``success = false``) is refused, an undo row un-applies its version, a
  ``BASELINE`` row stands for every version up to its own.

Refused, naming the row or file and the fix: a ledger row no imported file stands for, a file left
out below one that ran (the tool would run it later; this engine would call it out of order), and
a ledger that is not there. Then the catalog check (:func:`catalog_differences`): the files that
ran are applied to a scratch PostgreSQL 16 and its catalog is compared with the live one, the
other tool's ledger table left out of both.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from infra.errors import MigrationError, SafetyError
from infra.migrations import catalog
from infra.migrations.ledger import LEDGER_SCHEMA
from infra.migrations.source import Migration, Source

if TYPE_CHECKING:  # the importers load with `baseline`, not with every verb that registers it
    from infra.migrations.importers import ImportMap, MappedMigration

__all__ = [
    "CLUSTER_KINDS",
    "LEDGER_TOOLS",
    "Adoption",
    "ForeignLedger",
    "adopted",
    "catalog_differences",
    "from_ledger",
    "read_foreign_ledger",
    "refuse_differences",
    "up_to",
]

#: The tools whose ledger can be adopted, and the table each keeps by default.
LEDGER_TOOLS: dict[str, str] = {
    "dbmate": "schema_migrations",
    "golang-migrate": "schema_migrations",
    "diesel": "__diesel_schema_migrations",
    "flyway": "flyway_schema_history",
}


@dataclass(frozen=True)
class ForeignLedger:
    """What the other tool's ledger says: its table, the role that owns it (the role the tool ran
    as), and the applied keys; ``upto`` for golang-migrate (its one row) and a Flyway baseline."""

    tool: str
    table: str  # schema.name
    owner: str
    applied: tuple[str, ...]
    upto: str | None = None


def read_foreign_ledger(conn: psycopg.Connection[Any], tool: str, table: str | None = None) -> ForeignLedger:
    """Read ``tool``'s ledger table (``table``, default :data:`LEDGER_TOOLS`, found on the search path).

    Raises :class:`SafetyError` for a dirty or failed ledger, :class:`MigrationError` when absent.
    """
    if tool not in LEDGER_TOOLS:
        raise MigrationError(f"--from-ledger {tool!r}: known: {', '.join(LEDGER_TOOLS)}")
    name = table or LEDGER_TOOLS[tool]
    row = conn.execute(
        "SELECT n.nspname, c.relname, pg_catalog.pg_get_userbyid(c.relowner) FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
        (name,),
    ).fetchone()
    if row is None:
        raise MigrationError(
            f"no {tool} ledger: table {name!r} does not exist on the search path; fix: --ledger-table "
            "schema.table if the tool was configured with another one"
        )
    qualified = sql.Identifier(str(row[0]), str(row[1]))
    where = f"{row[0]}.{row[1]}"
    columns = {
        str(r[0])
        for r in conn.execute(
            "SELECT attname FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 "
            "AND NOT attisdropped",
            (name,),
        ).fetchall()
    }
    if tool == "flyway":
        return _flyway(conn, qualified, where, str(row[2]))
    if tool == "golang-migrate" and "dirty" in columns:
        rows = conn.execute(sql.SQL("SELECT version::text, dirty FROM {}").format(qualified)).fetchall()
        if len(rows) > 1:
            raise MigrationError(f"{where} has {len(rows)} rows; golang-migrate keeps one")
        if rows and rows[0][1]:
            raise SafetyError(
                f"the golang-migrate ledger {where} is dirty at version {rows[0][0]}: that migration failed "
                "part-way and its changes may be half-applied; fix: repair the database by hand, then mark it "
                f"with golang-migrate's `migrate force <version>` and adopt again"
            )
        upto = str(rows[0][0]) if rows else None
        return ForeignLedger(tool, where, str(row[2]), (upto,) if upto else (), upto)
    if "version" not in columns:
        raise MigrationError(f"{where} has no version column: not a {tool} ledger; fix: --ledger-table")
    versions = conn.execute(sql.SQL("SELECT version::text FROM {} ORDER BY 1").format(qualified)).fetchall()
    return ForeignLedger(tool, where, str(row[2]), tuple(str(v[0]) for v in versions))


def _flyway(conn: psycopg.Connection[Any], table: sql.Identifier, where: str, owner: str) -> ForeignLedger:
    from infra.migrations.importers.flyway import version_key

    rows = conn.execute(
        sql.SQL("SELECT version, type, script, success FROM {} ORDER BY installed_rank").format(table)
    ).fetchall()
    applied: dict[tuple[int, ...], str] = {}
    upto: str | None = None
    for version, kind, script, success in rows:
        if not success:
            raise SafetyError(
                f"the flyway ledger {where} records a failed run of {script} (version {version}); fix: repair "
                "the database by hand and remove the failed row (flyway repair), then adopt again"
            )
        if version is None or kind == "SCHEMA":
            continue  # repeatable scripts and flyway's own schema-creation marker
        key = version_key(str(version))
        if kind in ("BASELINE", "SQL_BASELINE"):
            upto = str(version)
        elif kind in ("UNDO_SQL", "DELETE"):
            applied.pop(key, None)
        else:
            applied[key] = str(version)
    return ForeignLedger("flyway", where, owner, tuple(applied.values()), upto)


def adopted(ledger: ForeignLedger, mapping: ImportMap) -> tuple[MappedMigration, ...]:
    """The imported files the ledger says ran: a prefix of the mapping's order, or a refusal."""
    from infra.migrations.importers.flyway import version_key

    if mapping.tool != ledger.tool:
        raise MigrationError(
            f"the import mapping is from {mapping.tool} but --from-ledger says {ledger.tool}; fix: adopt "
            f"with --from-ledger {mapping.tool}, or import the {ledger.tool} history"
        )
    order = sorted(mapping.migrations, key=lambda m: m.order)
    ran: set[str] = set()
    if ledger.tool == "flyway":
        index = {version_key(m.ledger_key): m for m in order}
        for version in ledger.applied:
            found = index.get(version_key(version))
            if found is None:
                raise _unknown(ledger, version)
            ran.add(found.file)
        if ledger.upto is not None:
            ran |= {m.file for m in order if version_key(m.ledger_key) <= version_key(ledger.upto)}
    elif ledger.upto is not None:  # golang-migrate: one row, the last version applied
        keys = [m.ledger_key for m in order]
        if ledger.upto not in keys:
            raise _unknown(ledger, ledger.upto)
        ran = {m.file for m in order[: keys.index(ledger.upto) + 1]}
    else:
        index_by_key = mapping.by_key()
        for version in ledger.applied:
            found_m = index_by_key.get(version)
            if found_m is None:
                raise _unknown(ledger, version)
            ran.add(found_m.file)
    count = len(ran)
    prefix = order[:count]
    missing = [m for m in prefix if m.file not in ran]
    if missing:
        later = next(m for m in order[count:] if m.file in ran)
        raise MigrationError(
            f"{missing[0].file} ({', '.join(missing[0].sources)}) never ran according to {ledger.table}, but "
            f"{later.file} after it did; {ledger.tool} would still run it, this engine would call it out of "
            f"order; fix: apply it with {ledger.tool} first, then adopt"
        )
    return tuple(prefix)


@dataclass(frozen=True)
class Adoption:
    """What ``baseline`` records: the files, the relations to leave out of the catalog check (the
    other tool's ledger), the role the files ran as there, and the reason for the audit log."""

    migrations: tuple[Migration, ...]
    leave_out: tuple[str, ...] = ()
    login: str | None = None
    reason: str = ""


def up_to(files: Source, version: int) -> Adoption:
    """Every file up to ``version`` (``baseline --version``)."""
    migrations = tuple(m for m in files.migrations if m.version <= version)
    if not any(m.version == version for m in migrations):
        raise MigrationError(f"baseline --version {version}: no migration file has that version")
    return _checked(files, Adoption(migrations))


def from_ledger(
    files: Source, conn: psycopg.Connection[Any], tool: str, mapping: ImportMap, table: str | None
) -> Adoption:
    """The files ``tool``'s ledger in ``conn`` says ran, through the import ``mapping``."""
    foreign = read_foreign_ledger(conn, tool, table)
    by_name = {m.filename: m for m in files.migrations}
    broken = {b.filename: b for b in files.broken}
    migrations = []
    for chosen in adopted(foreign, mapping):
        if chosen.file in broken:
            raise broken[chosen.file].error
        if chosen.file not in by_name:
            raise MigrationError(
                f"the import mapping names {chosen.file} but {files.directory} has no such file",
                fix="--migrations-dir (the import's DEST) or --mapping",
            )
        migrations.append(by_name[chosen.file])
    if not migrations:
        raise MigrationError(f"{foreign.table} records no migration: nothing to adopt", fix="run migrate")
    reason = f"adopted from the {tool} ledger {foreign.table}"
    return _checked(files, Adoption(tuple(migrations), (foreign.table,), foreign.owner, reason))


def _checked(files: Source, adoption: Adoption) -> Adoption:
    """No broken file among or below the adopted ones, and no file between them that never ran."""
    last = adoption.migrations[-1]
    for item in files.broken:
        if item.version is None or item.version <= last.version:
            raise item.error
    extra = [m.filename for m in files.migrations if m.version <= last.version and m not in adoption.migrations]
    if extra:
        raise MigrationError(
            f"{extra[0]} sits among the adopted files but never ran",
            fix=f"renumber it above {last.filename}, or apply it with the other tool first",
        )
    return adoption


def _unknown(ledger: ForeignLedger, key: str) -> MigrationError:
    return MigrationError(
        f"{ledger.table} records version {key}, which no imported file stands for; fix: import the history "
        "that holds it (the mapping is the one written by python -m infra import), or restore that migration"
    )


def user_schemas(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname !~ '^pg_' "
        "AND nspname NOT IN ('information_schema', %s)",
        (LEDGER_SCHEMA,),
    ).fetchall()
    return {str(r[0]) for r in rows}


#: Catalog kinds left out of the adoption check: roles are cluster-wide, and the twin has the live
#: cluster's roles by name only (no attributes, no memberships), so those would always differ.
CLUSTER_KINDS = frozenset({"role", "membership"})


def catalog_differences(
    live: psycopg.Connection[Any], twin: psycopg.Connection[Any], leave_out: Sequence[str] = ()
) -> list[catalog.CatalogDifference]:
    """What differs between the live catalog and the one the files produced on the twin, in every
    schema either has (not ours, not PostgreSQL's), leaving out the relations ``leave_out``
    (``schema.name``: the other tool's ledger table) with their indexes and constraints, and the
    :data:`CLUSTER_KINDS`."""
    schemas = tuple(sorted(user_schemas(live) | user_schemas(twin)))
    skip = set(leave_out)
    for name in leave_out:
        rows = live.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class c "
            "ON c.oid = i.indexrelid JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "WHERE i.indrelid = to_regclass(%s)",
            (name,),
        ).fetchall()
        skip |= {str(r[0]) for r in rows}
    pattern = re.compile("|".join(re.escape(s) + r"(\.|$)" for s in skip)) if skip else None

    def kept(found: catalog.Catalog) -> catalog.Catalog:
        objects = {
            kind: {name: attrs for name, attrs in items.items() if pattern is None or not pattern.match(name)}
            for kind, items in found.objects.items()
            if kind not in CLUSTER_KINDS
        }
        return catalog.Catalog(found.server_version_num, objects)

    return catalog.compare(kept(catalog.introspect(twin, schemas)), kept(catalog.introspect(live, schemas)))


def refuse_differences(
    live: psycopg.Connection[Any], twin: psycopg.Connection[Any], leave_out: Sequence[str] = ()
) -> None:
    """Raise :class:`SafetyError` listing (up to 20) what :func:`catalog_differences` finds."""
    changes = catalog_differences(live, twin, leave_out)
    if changes:
        shown = "; ".join(c.describe() for c in changes[:20])
        more = f" (and {len(changes) - 20} more)" if len(changes) > 20 else ""
        raise SafetyError(
            "baseline refused: the live database is not what the adopted files produce on PostgreSQL 16: "
            f"{shown}{more}; fix: bring the database (or the files) in line, then adopt again"
        )
