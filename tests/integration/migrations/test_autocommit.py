"""``-- migrate:no-transaction`` files: statement by statement, progress recorded, INVALID indexes."""

from __future__ import annotations

import psycopg
import pytest

from infra.errors import MigrationError, ValidationError
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from tests.fixtures.migrations import MigrationsDir, Recorder, ledger_rows, query, with_options
from tests.fixtures.pg import PgDatabase

NO_TX = "-- migrate:no-transaction\n"


def _index_valid(db: PgDatabase, name: str) -> bool | None:
    rows = query(
        db,
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
        (name,),
    )
    return None if not rows else bool(rows[0][0])


def test_no_transaction_file_mixing_concurrent_indexes_and_other_statements(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(
        1, "t", "CREATE TABLE t (id bigint, v text);\nINSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 500) g;"
    )
    mig_dir.write(
        2,
        "indexes",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_v ON t (v);\n"
        "ALTER TABLE t ADD COLUMN w bigint;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n"
        "UPDATE t SET w = id;",
        "DROP INDEX CONCURRENTLY IF EXISTS t_id;\nDROP INDEX CONCURRENTLY IF EXISTS t_v;\nALTER TABLE t DROP COLUMN w;",
        head=NO_TX,
    )
    plan = commands.plan(target)
    item = plan.items[1]
    assert item.transaction == "no-transaction"
    assert [s.lock_mode for s in item.statements] == [
        "SHARE UPDATE EXCLUSIVE",
        "ACCESS EXCLUSIVE",
        "SHARE UPDATE EXCLUSIVE",
        "ROW EXCLUSIVE",
    ]
    commands.migrate(target)
    assert _index_valid(pg_db, "t_v") is True
    assert _index_valid(pg_db, "t_id") is True
    assert query(pg_db, "SELECT count(*) FROM t WHERE w = id") == [(500,)]
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 4, 4)
    assert commands.migrate(target).applied == ()
    commands.rollback(target, to=1)
    assert _index_valid(pg_db, "t_v") is None
    assert ledger_rows(pg_db) == [(1, "applied", "transaction", None, None)]


def test_failed_concurrent_index_is_detected_and_rebuilt_on_request(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);\nINSERT INTO t VALUES (1), (1), (2);")
    mig_dir.write(
        2,
        "unique_id",
        "INSERT INTO t VALUES (100);\nCREATE UNIQUE INDEX CONCURRENTLY t_id_uq ON t (id);\nINSERT INTO t VALUES (200);",
        head=NO_TX,
    )
    with pytest.raises(MigrationError) as failed:
        commands.migrate(target)
    text = str(failed.value)
    assert "0002_unique_id.sql:4:" in text
    assert "23505" in text
    assert "statements 1..1 stay applied" in text
    assert "index public.t_id_uq is INVALID" in text
    assert "--rebuild-invalid-indexes" in text
    assert _index_valid(pg_db, "t_id_uq") is False
    assert ledger_rows(pg_db)[1] == (2, "failed", "no-transaction", 1, 3)

    # a failed row stops the next run before any SQL, naming the statement and the fix
    with pytest.raises(ValidationError, match=r"0002_unique_id\.sql failed at statement 2 of 3: .*--retry-failed"):
        commands.migrate(target)

    with psycopg.connect(**pg_db.admin_params(), autocommit=True) as conn:
        conn.execute("DELETE FROM t WHERE ctid = (SELECT max(ctid) FROM t WHERE id = 1)")
    # resuming refuses to go on over the INVALID index unless told to rebuild it
    with pytest.raises(MigrationError, match=r"index public\.t_id_uq is INVALID after an interrupted"):
        commands.migrate(with_options(target, retry_failed=True))
    progress = Recorder()
    result = commands.migrate(with_options(target, retry_failed=True, rebuild_invalid_indexes=True), progress=progress)
    assert [(s.version, s.action, s.statements) for s in result.applied] == [(2, "resume", 2)]
    assert _index_valid(pg_db, "t_id_uq") is True
    assert query(pg_db, "SELECT id, count(*) FROM t WHERE id >= 100 GROUP BY id ORDER BY id") == [(100, 1), (200, 1)]
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 3, 3)


def test_changed_applied_statement_of_a_partial_migration_is_refused(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    path = mig_dir.write(2, "fill", "INSERT INTO t VALUES (1);\nINSERT INTO t VALUES ('x');", head=NO_TX)
    with pytest.raises(MigrationError, match="22P02"):
        commands.migrate(target)
    # editing a statement that is not applied yet is how a failed file is fixed ...
    mig_dir.write(2, "fill", "INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);", head=NO_TX)
    commands.migrate(with_options(target, retry_failed=True))
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]
    # ... while the applied checksum is now the fixed file's, and a later edit is drift
    path.write_text(path.read_text().replace("(1)", "(3)"))
    with pytest.raises(ValidationError, match=r"0002_fill\.sql was changed"):
        commands.validate(target)


def test_a_failed_first_statement_says_no_statement_is_recorded(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "first", "SELECT 1 / 0;\nCREATE TABLE t (id bigint);", head=NO_TX)
    with pytest.raises(MigrationError) as failed:
        commands.migrate(target)
    text = str(failed.value)
    assert "0001_first.sql:3:" in text
    assert "1..0" not in text
    assert "no statement is recorded, a rerun with --retry-failed resumes at statement 1" in text
    assert query(pg_db, "SELECT to_regclass('t')") == [(None,)]
    assert ledger_rows(pg_db) == [(1, "failed", "no-transaction", 0, 2)]
