"""The bundled migrations apply from scratch through the real runner as the managed-style admin,
roll back to zero, and forward again; objects belong to app_owner, never to the login that ran them."""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest
from psycopg import sql

from infra.migrations import commands
from infra.migrations.runner import RunOptions
from infra.restore.checks import CORE_TABLES
from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import GROUP_ROLES, migration_files, target_for

TABLES = {
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
}


def _app_objects(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """What the migrations could leave behind in this database."""
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM pg_namespace WHERE nspname IN ('app', 'app_private')),
               (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname IN ('app', 'app_private')),
               (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname IN ('app', 'app_private')),
               (SELECT count(*) FROM pg_default_acl WHERE defaclrole = 'app_owner'::regrole)
        """
    ).fetchone()
    assert row is not None
    return {"schema": row[0], "relations": row[1], "functions": row[2], "default_acls": row[3]}


def test_up_down_up_as_the_non_superuser_admin(pg_db: PgDatabase) -> None:
    target = target_for(pg_db)
    result = commands.migrate(target)
    assert [f"{s.version:04d}_{s.name}.sql" for s in result.applied] == [p.name for p in migration_files()]
    with pg_db.connect_admin(autocommit=True) as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert flags == (False, True, False)  # the managed admin's shape
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'app'")}
        assert tables == TABLES
        # the restore drill counts the rows of every one of them (0009's documents were missing there)
        assert set(CORE_TABLES) == tables
        owners = conn.execute(
            """
            SELECT pg_get_userbyid(c.relowner) FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app'
            UNION SELECT pg_get_userbyid(p.proowner) FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'app'
            UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app'
            """
        ).fetchall()
        assert owners == [("app_owner",)]
        # each file ends with RESET ROLE: the runner's ledger row is written as the runner
        assert conn.execute("SELECT DISTINCT db_user FROM migrations_ledger.applied").fetchall() == [
            (pg_db.admin_user,)
        ]

    commands.rollback(target, to=0)
    with pg_db.connect_admin(autocommit=True) as conn:
        assert _app_objects(conn) == {"schema": 0, "relations": 0, "functions": 0, "default_acls": 0}
        # roles are cluster-wide and deliberately survive the rollback (see 0001's down section)
        present = {
            r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(GROUP_ROLES),))
        }
        assert present == set(GROUP_ROLES)

    assert len(commands.migrate(target).applied) == len(migration_files())
    with pg_db.connect_admin(autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM app.roles").fetchone() == (3,)


def test_each_step_rolls_back_to_the_previous_one(pg_db: PgDatabase) -> None:
    files = migration_files()
    assert [f.name[:4] for f in files] == [f"{i:04d}" for i in range(1, len(files) + 1)]
    target = target_for(pg_db)
    for version in range(1, len(files) + 1):
        commands.migrate(target, to=version)
        commands.rollback(target, to=version - 1)
        commands.migrate(target, to=version)
    assert commands.status(target).pending == ()


def test_group_roles_are_nologin_without_bypassrls(schema_db: PgDatabase) -> None:
    with schema_db.connect_admin(autocommit=True) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = ANY(%s)",
            (list(GROUP_ROLES),),
        ).fetchall()
        assert sorted(rows) == sorted((name, False, False, False) for name in GROUP_ROLES)
        # PG16: the creator's automatic grant is ADMIN only; 0001 adds SET so objects get app_owner
        assert conn.execute("SELECT pg_has_role(current_user, 'app_owner', 'SET')").fetchone() == (True,)


def test_a_runner_that_cannot_act_as_app_owner_gets_a_fix(schema_db: PgDatabase, pg_db: PgDatabase) -> None:
    """A second CREATEROLE admin (not the roles' creator) on a fresh database: refused with the GRANT to run."""
    name = "t_other_admin"
    with pg_db.connect_superuser(autocommit=True) as su:
        su.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        su.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE").format(sql.Identifier(name)))
        su.execute(sql.SQL("CREATE SCHEMA other AUTHORIZATION {}").format(sql.Identifier(name)))
    try:
        with pg_db.connect_superuser(autocommit=True) as su:
            su.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(name)))
            up = (migration_files()[0]).read_text().split("-- migrate:up", 1)[1].split("-- migrate:down", 1)[0]
            block = up[up.index("DO $owner$") : up.index("$owner$;") + len("$owner$;")]
            with pytest.raises(psycopg.errors.RaiseException) as info:
                su.execute(block)
            assert "cannot act as app_owner" in str(info.value)
            assert info.value.diag.message_hint == f"as the role that created app_owner run: GRANT app_owner TO {name}"
    finally:
        with pg_db.connect_superuser(autocommit=True) as su:
            su.execute("DROP SCHEMA other")
            su.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_all_files_in_one_transaction(pg_db: PgDatabase) -> None:
    """``migrate --single-transaction``: each file's SET LOCAL ROLE / RESET ROLE pair keeps the
    ledger rows written as the runner, and a failure would leave nothing behind."""
    target = dataclasses.replace(target_for(pg_db), options=RunOptions(single_transaction=True))
    assert len(commands.migrate(target).applied) == len(migration_files())
    with pg_db.connect_admin() as conn:
        rows = conn.execute("SELECT DISTINCT db_user, transaction_mode FROM migrations_ledger.applied").fetchall()
        assert rows == [(pg_db.admin_user, "single-transaction")]
