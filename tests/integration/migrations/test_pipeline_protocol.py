"""What a ``transaction:false`` section relies on in PostgreSQL 16's pipeline (extended-protocol)
handling, checked against the server itself (src/backend/tcop/postgres.c ``exec_execute_message``,
src/backend/access/transam/xact.c ``PreventInTransactionBlock``): if a later release changes any
of it, these fail before the runner does (infra/migrations/messages.py ``Pipeline``)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import pq

from infra.migrations.messages import pipeline_results
from tests.fixtures.pg import PgDatabase

_OK = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def _send(conn: psycopg.Connection[Any], statements: list[str]) -> tuple[list[str | None], str | None]:
    """Each statement alone, one Sync after the last (as the runner sends them); each one's command
    tag (None: skipped) and the SQLSTATE of the error, if any."""
    results = pipeline_results(conn, [text.encode() for text in statements])
    assert len(results) == len(statements)
    tags = [(r.command_status or b"").decode() if r.status in _OK else None for r in results]
    errors = [r.error_field(pq.DiagnosticField.SQLSTATE) for r in results if r.status == pq.ExecStatus.FATAL_ERROR]
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        conn.execute("ROLLBACK")
    return tags, errors[0].decode() if errors and errors[0] else None


def _indexes(conn: psycopg.Connection[Any]) -> dict[str, bool]:
    rows = conn.execute(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = 'p'::regclass"
    ).fetchall()
    return {str(name): bool(valid) for name, valid in rows}


@pytest.fixture
def conn(pg_db: PgDatabase) -> Any:
    with pg_db.connect_admin(autocommit=True) as c:
        c.execute("CREATE TABLE p (a int); CREATE TABLE log (n int)")
        c.execute("INSERT INTO p SELECT generate_series(1, 100)")
        yield c


def test_an_error_skips_everything_up_to_the_sync(conn: psycopg.Connection[Any]) -> None:
    tags, error = _send(
        conn,
        [
            "BEGIN", "INSERT INTO log VALUES (1)", "COMMIT",
            "CREATE INDEX CONCURRENTLY p_bad ON p (nope)",
            "BEGIN", "INSERT INTO log VALUES (2)", "COMMIT",
            "CREATE INDEX CONCURRENTLY p_a ON p (a)",
        ],
    )  # fmt: skip
    assert error == "42703"
    assert tags == ["BEGIN", "INSERT 0 1", "COMMIT", None, None, None, None, None]
    assert conn.execute("SELECT n FROM log").fetchall() == [(1,)]
    assert _indexes(conn) == {}


def test_a_no_transaction_statement_runs_first_or_after_commit_only(conn: psycopg.Connection[Any]) -> None:
    tags, error = _send(
        conn,
        [
            "CREATE INDEX CONCURRENTLY p_1 ON p (a)",
            "BEGIN", "INSERT INTO log VALUES (1)", "COMMIT",
            "CREATE INDEX CONCURRENTLY p_2 ON p (a)",
            "BEGIN", "INSERT INTO log VALUES (2)", "COMMIT",
            "VACUUM p",
        ],
    )  # fmt: skip
    assert error is None, tags
    assert _indexes(conn) == {"p_1": True, "p_2": True}
    # after any other statement of the pipeline (here VACUUM's last transaction) the server refuses it
    tags, error = _send(conn, ["VACUUM p", "CREATE INDEX CONCURRENTLY p_3 ON p (a)"])
    assert error == "25001"
    assert tags == ["VACUUM", None]
    assert "p_3" not in _indexes(conn)


def test_a_concurrent_build_is_marked_valid_by_the_next_commit(conn: psycopg.Connection[Any]) -> None:
    # its last step stays open until the runner's next transaction commits: if that one fails,
    # the index stays INVALID (which the runner detects and names on the next run)
    tags, error = _send(conn, ["CREATE INDEX CONCURRENTLY p_a ON p (a)", "BEGIN", "SELECT 1 / 0", "COMMIT"])
    assert error == "22012"
    assert tags[:2] == ["CREATE INDEX", "BEGIN"]
    assert _indexes(conn) == {"p_a": False}
    tags, error = _send(
        conn, ["CREATE INDEX CONCURRENTLY p_b ON p (a)", "BEGIN", "INSERT INTO log VALUES (3)", "COMMIT"]
    )
    assert error is None
    assert _indexes(conn)["p_b"] is True
    assert conn.execute("SELECT n FROM log").fetchall() == [(3,)]
