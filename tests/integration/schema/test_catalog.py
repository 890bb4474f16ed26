"""Rules every table of the schema keeps, checked in the catalog so a future migration cannot forget them:
row-level security on tenant-scoped tables, an index behind every foreign key, timestamptz only,
updated_at maintained by trigger, and default privileges that reach tables created later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import use_tenant


@pytest.fixture
def conn(schema_db: PgDatabase) -> Iterator[psycopg.Connection[Any]]:
    with schema_db.connect_admin(autocommit=True) as c:
        yield c


def test_every_tenant_scoped_table_has_forced_rls_and_both_policies(conn: psycopg.Connection[Any]) -> None:
    rows = conn.execute(
        """
        SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
               array(SELECT p.polname FROM pg_policy p WHERE p.polrelid = c.oid ORDER BY 1)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'app' AND c.relkind = 'r'
          AND (c.relname = 'tenants' OR EXISTS (
              SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped))
        ORDER BY 1
        """
    ).fetchall()
    assert len(rows) == 9
    for name, enabled, forced, policies in rows:
        assert enabled, name
        assert forced, name
        assert {"tenant_isolation", "platform_admin_all"} <= set(policies), name


def test_every_foreign_key_has_an_index(conn: psycopg.Connection[Any]) -> None:
    missing = conn.execute(
        """
        SELECT c.conrelid::regclass::text, c.conname
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
        WHERE c.contype = 'f' AND n.nspname = 'app'
          AND NOT EXISTS (
              SELECT 1 FROM pg_index i
              WHERE i.indrelid = c.conrelid
                AND (SELECT array_agg(x ORDER BY x) FROM unnest((i.indkey::int2[])[0:cardinality(c.conkey) - 1]) x)
                    = (SELECT array_agg(x ORDER BY x) FROM unnest(c.conkey) x))
        """
    ).fetchall()
    assert missing == []


def test_timestamps_are_timestamptz_and_updated_at_has_a_trigger(conn: psycopg.Connection[Any]) -> None:
    naive = conn.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = 'app' AND data_type = 'timestamp without time zone'"
    ).fetchall()
    assert naive == []
    untriggered = conn.execute(
        """
        SELECT c.table_name FROM information_schema.columns c
        WHERE c.table_schema = 'app' AND c.column_name = 'updated_at'
          AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = format('app.%I', c.table_name)::regclass
                          AND t.tgfoid = 'app.set_updated_at'::regproc)
        """
    ).fetchall()
    assert untriggered == []


def test_updated_at_moves_on_update(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        use_tenant(conn, "00000000-0000-4000-8000-000000000001")
        conn.execute(
            "INSERT INTO app.tenants (id, slug, name, created_at, updated_at)"
            " VALUES ('00000000-0000-4000-8000-000000000001', 'clock', 'Clock', now() - interval '1 day',"
            " now() - interval '1 day')"
        )
        conn.execute("UPDATE app.tenants SET name = 'Clock 2'")
        row = conn.execute("SELECT updated_at = now(), created_at < now() FROM app.tenants").fetchone()
    assert row == (True, True)


def test_future_tables_get_the_same_grants(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction(force_rollback=True):  # leave nothing behind
        conn.execute("SET LOCAL ROLE app_owner")
        conn.execute("CREATE TABLE app.later (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, note text)")
        conn.execute("CREATE FUNCTION app.later_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'")
        row = conn.execute(
            """
            SELECT has_table_privilege('app_readwrite', 'app.later', 'SELECT, INSERT, UPDATE, DELETE'),
                   has_table_privilege('app_readwrite', 'app.later', 'TRUNCATE'),
                   has_table_privilege('app_readonly', 'app.later', 'SELECT'),
                   has_table_privilege('app_readonly', 'app.later', 'INSERT'),
                   has_table_privilege('platform_admin', 'app.later', 'SELECT, INSERT, UPDATE, DELETE'),
                   has_function_privilege('app_readwrite', 'app.later_fn()', 'EXECUTE'),
                   has_schema_privilege('public', 'app', 'USAGE')
            """
        ).fetchone()
    assert row == (True, False, True, False, True, False, False)


def test_readonly_reads_every_column_but_the_secrets(conn: psycopg.Connection[Any]) -> None:
    """A new column must be granted to app_readonly deliberately (0007); this lists what it may not read."""
    hidden = conn.execute(
        """
        SELECT c.table_name || '.' || c.column_name FROM information_schema.columns c
        WHERE c.table_schema = 'app'
          AND NOT has_column_privilege('app_readonly', format('app.%I', c.table_name), c.column_name, 'SELECT')
        ORDER BY 1
        """
    ).fetchall()
    assert hidden == [("tenant_api_keys.key_hash",), ("users.password_hash",)]
