"""What a restored copy must satisfy, checked on the copy itself.

1. **Ledger**: the copy's migration ledger equals the source's ledger as of the restore time:
   every migration the source applied at or before the restore point is there, none applied
   after it is (:func:`compare_ledgers`, pure). A ledger row's ``applied_at`` is taken a few
   milliseconds before its transaction commits, so rows within :data:`COMMIT_SLACK` of the
   restore point may be on either side.
2. **Catalog**: the copy's catalog (:func:`infra.migrations.catalog.introspect`) equals the snapshot
   the migration runner recorded with that ledger, inside the transaction of the run's last
   migration; a restore point inside a run (the ledger's head newer than the snapshot) is named.
3. **Row counts**: the core tables are counted on the copy with row-level security out of the way
   (as ``app_owner``, ``NO FORCE ROW LEVEL SECURITY`` inside a transaction that is rolled back:
   the copy keeps nothing); plausible means every wallet's balance equals the sum of its coin
   transactions (a torn restore breaks that), and the append-only tables hold no more rows than
   the source has now when the source's count is exact.
4. **Read checks** as the read-only login (:func:`infra.postdeploy.verify.verify_readonly`).

Nothing here writes to the source; the copy is read, except for the rolled-back transaction of 3.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from infra.migrations import catalog
from infra.migrations.connection import ConnectionSpec
from infra.migrations.ledger import LEDGER_SCHEMA, AppliedMigration, read_ledger
from infra.postdeploy.verify import Check, Mint, verify_readonly

__all__ = [
    "APPEND_ONLY",
    "COMMIT_SLACK",
    "CORE_TABLES",
    "CopyCounts",
    "RestorePoint",
    "RowCount",
    "SourceFacts",
    "catalog_check",
    "compare_ledgers",
    "count_copy",
    "plausible_counts",
    "read_source",
    "verify_copy",
]

#: The product's core tables (README "The schema"); those the copy's schema has are counted.
CORE_TABLES: tuple[str, ...] = (
    "tenants",
    "users",
    "roles",
    "permissions",
    "role_permissions",
    "user_roles",
    "subscriptions",
    "virtual_wallets",
    "coin_transactions",
    "audit_logs",
    "tenant_api_keys",
    "documents",
)
#: Rows are only ever inserted (0004, 0005): a copy of the past cannot hold more than the source now.
APPEND_ONLY: frozenset[str] = frozenset({"coin_transactions", "audit_logs"})
#: A ledger row's applied_at precedes its commit by the rest of its transaction.
COMMIT_SLACK = dt.timedelta(seconds=1)


@dataclass(frozen=True)
class RestorePoint:
    """What the copy should hold: everything committed by ``lower``, nothing committed after ``upper``.

    An explicit ``--to T`` is ``T..T``; ``latest`` is the newest restorable time read before the
    request up to the moment of the request (the cloud picks the exact point in between).
    """

    lower: dt.datetime
    upper: dt.datetime


@dataclass(frozen=True)
class SourceFacts:
    """The source database now: its ledger and its row counts (exact, or the planner's estimate)."""

    ledger: tuple[AppliedMigration, ...]
    counts: Mapping[str, int]
    exact: bool


@dataclass(frozen=True)
class RowCount:
    table: str
    copy: int
    source: int | None  # None: the source has no such table, or no estimate yet
    exact: bool


@dataclass(frozen=True)
class CopyCounts:
    counts: Mapping[str, int]
    unbalanced_wallets: int | None  # None: the copy has no wallets table
    sample_tenant: uuid.UUID | None  # the tenant with the most users, for the read checks
    sample_users: int


def _key(row: AppliedMigration) -> tuple[int, str, str]:
    return row.version, row.name, row.checksum


def compare_ledgers(copy: Sequence[AppliedMigration], source: Sequence[AppliedMigration], point: RestorePoint) -> Check:
    """The copy's ledger against the source's ledger as of ``point`` (pure)."""
    must = {_key(r) for r in source if r.status == "applied" and r.applied_at <= point.lower - COMMIT_SLACK}
    may = {_key(r) for r in source if r.applied_at <= point.upper + COMMIT_SLACK} - must
    held = {_key(r) for r in copy}
    missing = sorted(must - held)
    extra = sorted(held - must - may)
    versions = ", ".join(f"{v:04d}" for v, _, _ in sorted(held)) or "none"
    if not missing and not extra:
        return Check(
            "ledger", True, f"{len(held)} migration(s) ({versions}), as the source's ledger at the restore time"
        )
    problems = []
    if missing:
        problems.append("missing " + ", ".join(f"{v:04d}_{n}" for v, n, _ in missing))
    if extra:
        problems.append("not in the source's ledger by then " + ", ".join(f"{v:04d}_{n}" for v, n, _ in extra))
    return Check("ledger", False, "; ".join(problems))


def catalog_check(conn: psycopg.Connection[Any], ledger: Sequence[AppliedMigration]) -> Check:
    """The copy's catalog against the snapshot recorded with its ledger."""
    expected = catalog.stored(conn)
    if expected is None:
        if not ledger:
            return Check("catalog", True, "no migrations at the restore time, no catalog expected")
        return Check("catalog", False, "the ledger holds no catalog snapshot; run `migrate` once on the source")
    row = conn.execute(
        sql.SQL("SELECT updated_at FROM {}.settings WHERE key = %s").format(sql.Identifier(LEDGER_SCHEMA)),
        (catalog.SNAPSHOT_KEY,),
    ).fetchone()
    recorded: dt.datetime | None = row[0] if row else None
    head = max(ledger, key=lambda r: r.applied_at, default=None)
    if head is not None and recorded is not None and head.applied_at > recorded:
        return Check(
            "catalog",
            False,
            f"the restore point falls inside a migration run: {head.filename} was applied after the catalog "
            f"snapshot was recorded ({recorded.isoformat()}); restore to a time after that run",
        )
    changes = catalog.compare(expected, catalog.introspect(conn))
    if not changes:
        objects = expected.count()
        return Check("catalog", True, f"{objects} object(s), as recorded with the ledger")
    shown = "; ".join(c.describe() for c in changes[:5]) + (
        f"; and {len(changes) - 5} more" if len(changes) > 5 else ""
    )
    return Check("catalog", False, f"{len(changes)} difference(s) from the ledger's catalog: {shown}")


def count_copy(conn: psycopg.Connection[Any]) -> CopyCounts:
    """Exact counts of the core tables on the copy, as their owner, in a rolled-back transaction.

    ``conn`` is the ``migrator`` login (member of ``app_owner``). FORCE ROW LEVEL SECURITY applies
    policies to the owner too; it is lifted only inside this transaction, which is rolled back.
    """
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE app_owner")
        present = [
            (str(name), bool(forced))
            for name, forced in conn.execute(
                "SELECT c.relname, c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'app' AND c.relkind = 'r' AND c.relname = ANY(%s) ORDER BY c.relname",
                (list(CORE_TABLES),),
            ).fetchall()
        ]
        counts: dict[str, int] = {}
        for name, forced in present:
            table = sql.Identifier("app", name)
            if forced:
                conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(table))
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
            counts[name] = int(row[0]) if row else 0
        unbalanced: int | None = None
        if {"virtual_wallets", "coin_transactions"} <= counts.keys():
            row = conn.execute(
                "SELECT count(*) FROM app.virtual_wallets w WHERE w.balance <> "
                "coalesce((SELECT sum(c.amount) FROM app.coin_transactions c WHERE c.wallet_id = w.id), 0)"
            ).fetchone()
            unbalanced = int(row[0]) if row else 0
        sample: uuid.UUID | None = None
        users = 0
        if {"tenants", "users"} <= counts.keys():
            found = conn.execute(
                "SELECT t.id, count(u.id) FROM app.tenants t LEFT JOIN app.users u ON u.tenant_id = t.id "
                "GROUP BY t.id ORDER BY count(u.id) DESC, t.id LIMIT 1"
            ).fetchone()
            if found is not None:
                sample, users = found[0], int(found[1])
    return CopyCounts(counts, unbalanced, sample, users)


def plausible_counts(copy: CopyCounts, source: SourceFacts) -> tuple[Check, tuple[RowCount, ...]]:
    """Row counts side by side, and whether the copy's are plausible (pure)."""
    rows = tuple(
        RowCount(table, count, source.counts.get(table), source.exact) for table, count in sorted(copy.counts.items())
    )
    problems: list[str] = []
    if copy.unbalanced_wallets:
        problems.append(f"{copy.unbalanced_wallets} wallet(s) whose balance differs from the sum of their transactions")
    if source.exact:
        for r in rows:
            if r.table in APPEND_ONLY and r.source is not None and r.copy > r.source:
                problems.append(f"app.{r.table} holds {r.copy} rows, more than the source's {r.source} (append-only)")
    if not copy.counts:
        problems.append("the copy has none of the core tables")
    if problems:
        return Check("row-counts", False, "; ".join(problems)), rows
    total = sum(copy.counts.values())
    balanced = "" if copy.unbalanced_wallets is None else ", every wallet balance equals its transactions"
    return Check("row-counts", True, f"{len(rows)} core table(s), {total} row(s){balanced}"), rows


def verify_copy(
    migrator: ConnectionSpec, readonly: ConnectionSpec, source: SourceFacts, point: RestorePoint
) -> tuple[tuple[Check, ...], tuple[RowCount, ...]]:
    """Every check on the copy reached through ``migrator`` and ``readonly`` connection parameters.

    A login that fails (a password rotated after the restore time is not in the copy) is a failed
    check, not a crash: the report still prints and the copy is still deleted.
    """
    checks: list[Check] = []
    rows: tuple[RowCount, ...] = ()
    counts: CopyCounts | None = None
    try:
        with migrator.connect(autocommit=True, application_name="restore-drill") as conn:
            ledger, _environment = read_ledger(conn)
            checks.append(compare_ledgers(ledger, source.ledger, point))
            checks.append(catalog_check(conn, ledger))
            counts = count_copy(conn)
    except psycopg.Error as exc:
        checks.append(Check("migrator", False, f"{type(exc).__name__}: {_first_line(exc)}{_LOGIN_HINT}"))
    if counts is not None:
        counted, rows = plausible_counts(counts, source)
        checks.append(counted)
    try:
        with readonly.connect(autocommit=True, application_name="restore-drill") as conn:
            result = verify_readonly(
                conn,
                mint=_minter(migrator),
                tenant=counts.sample_tenant if counts else None,
                tenant_users=counts.sample_users if counts else None,
            )
        checks += [Check(f"readonly {c.name}", c.ok, c.detail) for c in result.checks]
    except psycopg.Error as exc:
        checks.append(Check("readonly", False, f"{type(exc).__name__}: {_first_line(exc)}{_LOGIN_HINT}"))
    return tuple(checks), rows


def _minter(migrator: ConnectionSpec) -> Mint:
    """Tenant tokens for the read-only checks, minted on the copy by the owner (``migrator``); none
    on a copy from before the signed tenant context (0008)."""

    def mint(tenant: uuid.UUID) -> str | None:
        with migrator.connect(autocommit=True, application_name="restore-drill") as conn:
            found = conn.execute("SELECT to_regprocedure('app.mint_tenant_token(uuid,interval)') IS NOT NULL")
            if found.fetchone() != (True,):
                return None
            row = conn.execute("SELECT app.mint_tenant_token(%s, interval '5 minutes')", (tenant,)).fetchone()
            return None if row is None else str(row[0])

    return mint


_LOGIN_HINT = (
    " (at the restore time this login may not exist yet, or have had another password: "
    "the copy holds the roles of that moment)"
)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or ["no detail"])[0][:300]


def read_source(conn: psycopg.Connection[Any], *, exact: bool) -> SourceFacts:
    """The source's ledger, and its core tables' row counts: exact (``exact``, a superuser session
    that row-level security does not filter) or the planner's estimate (``reltuples``; any login)."""
    ledger, _environment = read_ledger(conn)
    counts: dict[str, int] = {}
    if exact:
        for (name,) in conn.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'app' AND c.relkind = 'r' AND c.relname = ANY(%s)",
            (list(CORE_TABLES),),
        ).fetchall():
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("app", name))).fetchone()
            counts[str(name)] = int(row[0]) if row else 0
    else:
        for name, estimate in conn.execute(
            "SELECT c.relname, c.reltuples::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'app' AND c.relkind = 'r' AND c.relname = ANY(%s) AND c.reltuples >= 0",
            (list(CORE_TABLES),),
        ).fetchall():
            counts[str(name)] = int(estimate)
    return SourceFacts(ledger=ledger, counts=counts, exact=exact)
