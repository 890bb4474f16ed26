"""The embedded PostgreSQL 16 is what the other tests rely on: version, TLS enforced, SCRAM."""

from __future__ import annotations

import psycopg
import pytest

from tests.fixtures.pg import PgDatabase


def test_server_is_postgres_16_with_tls_verify_full(pg_db: PgDatabase) -> None:
    with pg_db.connect_admin() as conn:
        assert conn.info.server_version // 10000 == 16
        row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row is not None
        assert row[0] is True
        assert row[1].startswith("TLSv1.")
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)


def test_plaintext_tcp_is_refused(pg_db: PgDatabase) -> None:
    params = {**pg_db.admin_params(), "sslmode": "disable"}
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(**params)


def test_wrong_server_name_fails_verify_full(pg_db: PgDatabase) -> None:
    params = {**pg_db.admin_params(), "host": "not-the-db.example"}
    with pytest.raises(psycopg.OperationalError, match="does not match host name"):
        psycopg.connect(**params)
