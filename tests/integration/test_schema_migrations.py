"""The bundled migrations apply from scratch as the managed-style admin, roll back to zero, and forward again."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import GROUP_ROLES, apply, migration_files

pytestmark = pytest.mark.integration

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
}


def _app_objects(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """What exists in this database that the migrations could have left behind."""
    row = conn.execute(
        """
        SELECT (SELECT count(*) FROM pg_namespace WHERE nspname = 'app'),
               (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'app'),
               (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                 WHERE n.nspname = 'app'),
               (SELECT count(*) FROM pg_default_acl d
                 WHERE d.defaclrole = 'app_owner'::regrole)
        """
    ).fetchone()
    assert row is not None
    return {"schema": row[0], "relations": row[1], "functions": row[2], "default_acls": row[3]}


def test_up_down_up_as_the_non_superuser_admin(pg_db: PgDatabase) -> None:
    with pg_db.connect_admin(autocommit=True) as conn:
        flags = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert flags == (False, True, False)  # the managed admin's shape

        apply(conn)
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'app'")}
        assert tables == TABLES
        # everything belongs to the owner role, nothing to the login that ran the migrations
        owners = conn.execute(
            """
            SELECT DISTINCT pg_get_userbyid(c.relowner) FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'app'
            UNION SELECT DISTINCT pg_get_userbyid(p.proowner) FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'app'
            UNION SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app'
            """
        ).fetchall()
        assert owners == [("app_owner",)]

        apply(conn, direction="down")
        assert _app_objects(conn) == {"schema": 0, "relations": 0, "functions": 0, "default_acls": 0}
        # roles are cluster-wide and deliberately survive the rollback (see 0001's down)
        present = {
            r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (list(GROUP_ROLES),))
        }
        assert present == set(GROUP_ROLES)

        apply(conn)
        assert _app_objects(conn)["schema"] == 1
        count = conn.execute("SELECT count(*) FROM app.roles").fetchone()
        assert count == (3,)


def test_each_step_rolls_back_to_the_previous_one(pg_db: PgDatabase) -> None:
    files = migration_files()
    assert [f.name[:4] for f in files] == [f"{i:04d}" for i in range(1, len(files) + 1)]
    with pg_db.connect_admin(autocommit=True) as conn:
        for i, path in enumerate(files):
            apply(conn, files=files[: i + 1][-1:])
            apply(conn, direction="down", files=[path])
            apply(conn, files=[path])
        apply(conn, direction="down")
        assert _app_objects(conn)["schema"] == 0


def test_group_roles_are_nologin_without_bypassrls(pg_db: PgDatabase) -> None:
    with pg_db.connect_admin(autocommit=True) as conn:
        apply(conn)
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolbypassrls, rolsuper FROM pg_roles WHERE rolname = ANY(%s)",
            (list(GROUP_ROLES),),
        ).fetchall()
        assert sorted(rows) == sorted((name, False, False, False) for name in GROUP_ROLES)
        # PG16: the creator's automatic grant is ADMIN only; 0001 adds SET so objects get app_owner
        row = conn.execute("SELECT pg_has_role(current_user, 'app_owner', 'SET')").fetchone()
        assert row == (True,)
