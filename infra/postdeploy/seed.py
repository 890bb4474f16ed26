"""Development data and the development reset: ``python -m infra seed`` and ``python -m infra reset``.

:func:`seed` runs every ``schema/seed/*.sql`` file, in name order, in one transaction. The files
are idempotent (fixed ids, ``ON CONFLICT DO NOTHING``, ledger rows through
``app.post_coin_transaction`` with fixed idempotency keys), so seeding twice changes nothing.

:func:`reset` drops the application schema ``app`` with everything in it, forgets the ledger's
rows (each one recorded as a ``forget`` event with the reason) and re-applies every migration
through the engine.

Both refuse, before changing anything, when the stack's environment is production or the
database's migration ledger is stamped production; ``reset`` also needs ``confirm`` to repeat
the stack name (or, without a stack, the database name). Refusals raise
:class:`~infra.errors.SafetyError`; database failures :class:`~infra.errors.InfraError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from infra.enums import Environment
from infra.errors import InfraError, SafetyError
from infra.migrations import commands, ledger
from infra.migrations.connection import ConnectionSpec, connect
from infra.migrations.ledger import LEDGER_SCHEMA, ledger_environment, lock_holder
from infra.migrations.runner import new_run_id, operator
from infra.paths import MIGRATIONS_DIR, SEED_DIR

if TYPE_CHECKING:
    from infra.migrations.connection import ConnectionSpec

__all__ = [
    "APP_SCHEMA",
    "SEED_DIR",
    "ResetResult",
    "SeedResult",
    "refuse_production",
    "refuse_production_stack",
    "reset",
    "seed",
    "seed_for_postdeploy",
]

APP_SCHEMA = "app"
#: Every schema the migrations create: reset drops them all (app_private holds the tenant-context key).
APP_SCHEMAS = (APP_SCHEMA, "app_private")


@dataclass(frozen=True)
class SeedResult:
    database: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class ResetResult:
    database: str
    forgotten: tuple[int, ...]  # ledger versions forgotten before re-applying
    applied: tuple[str, ...]  # labels the engine applied afterwards


def refuse_production(conn: psycopg.Connection[Any], environment: Environment | None, action: str, where: str) -> None:
    """Raise SafetyError when ``environment`` or the database's ledger says production."""
    if environment == Environment.PRODUCTION:
        raise SafetyError(f"refusing to {action} {where}: the stack's environment is production")
    try:
        stamped = ledger_environment(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        # Fail closed: a ledger we may not read could say production.
        raise SafetyError(
            f"refusing to {action} {where}: cannot read its migration ledger ({LEDGER_SCHEMA}) to rule out "
            "production; fix: connect as the migrator (or the admin)"
        ) from exc
    if stamped == Environment.PRODUCTION.value:
        raise SafetyError(
            f"refusing to {action} {where}: its migration ledger marks it production (table {LEDGER_SCHEMA}.settings)"
        )


def refuse_production_stack(stack: str, environment: Environment, action: str) -> None:
    """The stack-level half of the guard, checked before any secret is read or tunnel opened."""
    if environment == Environment.PRODUCTION:
        raise SafetyError(f"refusing to {action} stack {stack!r}: its environment is production")


def _database(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute("SELECT current_database()").fetchone()
    return str(row[0]) if row else "?"


def seed_files(seed_dir: Path = SEED_DIR) -> tuple[Path, ...]:
    return tuple(sorted(p for p in seed_dir.glob("*.sql") if p.is_file()))


def seed(spec: ConnectionSpec, *, environment: Environment | None = None, seed_dir: Path = SEED_DIR) -> SeedResult:
    """Load the development data (idempotent). Raises SafetyError on production, InfraError on failure."""
    files = seed_files(seed_dir)
    if not files:
        raise InfraError(f"no seed files in {seed_dir}; fix: add schema/seed/*.sql")
    with connect(spec, new_run_id()) as conn:
        where = f"database {_database(conn)!r}"
        refuse_production(conn, environment, "seed", where)
        found = conn.execute("SELECT to_regclass('app.tenants') IS NOT NULL").fetchone()
        if not found or not found[0]:
            raise InfraError(f"{where} has no app schema yet; fix: run `python -m infra migrate` first")
        with conn.transaction():
            for path in files:
                try:
                    conn.execute(path.read_text(encoding="utf-8").encode())
                except psycopg.Error as exc:
                    raise InfraError(f"seed file {path.name} failed: {_one_line(exc)}") from exc
        return SeedResult(_database(conn), tuple(p.name for p in files))


def reset(
    spec: ConnectionSpec,
    *,
    confirm: str | None,
    environment: Environment | None = None,
    stack: str | None = None,
    migrations_dir: Path = MIGRATIONS_DIR,
) -> ResetResult:
    """Drop schema ``app``, forget the ledger, re-apply every migration.

    Refuses (SafetyError) on production, without ``confirm`` equal to ``stack`` (or the database
    name when there is no stack), and while a migration run holds the engine's advisory lock.
    """
    if environment == Environment.PRODUCTION:
        raise SafetyError(f"refusing to reset {stack or spec.describe()!r}: the stack's environment is production")
    run_id = new_run_id()
    with connect(spec, run_id) as conn:
        database = _database(conn)
        refuse_production(conn, environment, "reset", f"database {database!r}")
        expected = stack or database
        if confirm != expected:
            raise SafetyError(
                f"reset drops schema {APP_SCHEMA!r} of database {database!r} and all its data; "
                f"fix: repeat the {'stack' if stack else 'database'} name: --confirm {expected}"
            )
        forgotten = _drop_and_forget(conn, run_id, confirm)
    applied = commands.migrate(commands.MigrationContext(spec, migrations_dir, environment, stack)).applied
    return ResetResult(database, forgotten, tuple(Path(s.filename).stem for s in applied))


def _drop_and_forget(conn: psycopg.Connection[Any], run_id: str, confirm: str) -> tuple[int, ...]:
    """Under the engine's advisory lock: drop the schema and the ledger rows in one transaction."""
    got = conn.execute(ledger.try_lock_sql()).fetchone()
    if not got or not got[0]:
        holder = lock_holder(conn)
        raise SafetyError(
            f"reset refused: {holder.describe()} holds the migration lock; fix: retry when it has finished"
        )
    try:
        with conn.transaction():
            for schema in APP_SCHEMAS:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
            if not ledger.ledger_exists(conn):
                return ()
            actor = ledger.Actor(operator(), run_id)
            rows = conn.execute(ledger.forget_all(actor, f"reset --confirm {confirm}")).fetchall()
            return tuple(sorted(int(r[0]) for r in rows))
    except psycopg.Error as exc:
        raise InfraError(f"reset failed: {_one_line(exc)}") from exc
    finally:
        conn.execute(ledger.unlock_sql())


def seed_for_postdeploy(params: ConnectionSpec) -> None:
    """The post-deploy/local demo seed step: seed as the given login (``migrator``)."""
    seed(params)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
