"""Issue 11.7: after the post-deploy bootstrap, ``readonly`` has no temporary-table or large-object rights.

The bootstrap runs as the managed-style admin (not superuser) on a fresh database, as in the cloud.
"""

from __future__ import annotations

import secrets
from typing import Any

import psycopg
import pytest
from psycopg import errors

from infra.postdeploy.bootstrap import USER_GROUPS, bootstrap_roles
from tests.fixtures.pg import PgDatabase


def test_readonly_cannot_create_temp_tables_or_large_objects(pg_db: PgDatabase) -> None:
    passwords = {user: secrets.token_urlsafe(18) for user in USER_GROUPS}

    def connect(user: str, password: str | None = None) -> psycopg.Connection[Any]:
        params: dict[str, Any] = {**pg_db.cluster.tcp_params(user, pg_db.name), "password": password or passwords[user]}
        return psycopg.connect(**params)

    def can_login(user: str, password: str) -> bool:
        try:
            connect(user, password).close()
        except psycopg.OperationalError:
            return False
        return True

    with pg_db.connect_admin() as admin:
        first = bootstrap_roles(admin, pg_db.name, passwords, can_login)
        assert f"temporary tables on {pg_db.name} for app_owner and app_readwrite only" in first.actions
        assert bootstrap_roles(admin, pg_db.name, passwords, can_login).actions == ()  # idempotent
    with connect("readonly") as conn:
        # even in a transaction it turned read-write itself, TEMP is gone
        conn.execute("SET TRANSACTION READ WRITE")
        with pytest.raises(errors.InsufficientPrivilege, match="temporary"):
            conn.execute("CREATE TEMP TABLE stash (x text)")
        conn.rollback()
        # the attack: a persistent large object, committed
        with pytest.raises(errors.ReadOnlySqlTransaction, match="lo_from_bytea"):
            conn.execute("SELECT lo_from_bytea(0, 'stash'::bytea)")
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)
    with connect("app") as conn:  # the application keeps its temporary tables
        conn.execute("CREATE TEMP TABLE scratch (x text)")
