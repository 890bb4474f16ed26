"""The runner as a real process: SIGKILL mid-migration, two runners at once, no password leaks,
and the round trips it costs, counted by a TCP proxy."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from infra.cli import main
from infra.errors import MigrationError
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from infra.migrations.connection import connect
from tests.fixtures.migrations import (
    MigrationsDir,
    cli_argv,
    cli_env,
    ledger_rows,
    query,
    spec_for,
    table_exists,
)
from tests.fixtures.pg import PgDatabase
from tests.fixtures.proxy import TcpProxy

pytestmark = pytest.mark.slow


def _wait_for_query(db: PgDatabase, needle: str, proc: subprocess.Popen[str], timeout: float = 30) -> int:
    """Poll pg_stat_activity until a migrate session runs a query containing ``needle``; its pid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = query(
            db,
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'migrate:%%' "
            "AND state = 'active' AND query LIKE %s",
            (f"%{needle}%",),
        )
        if rows:
            return int(rows[0][0])
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"runner exited {proc.returncode} early: {out}{err}")
        time.sleep(0.02)  # polling a condition with a deadline, not waiting for a fixed time
    raise AssertionError(f"no migrate session ran {needle!r} within {timeout}s")


def _wait_for_exit(db: PgDatabase, pid: int, timeout: float = 15) -> None:
    """Poll until the server session ``pid`` is gone (the server noticed its client died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not query(db, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)):
            return
        time.sleep(0.02)
    raise AssertionError(f"server session {pid} outlived its killed client by {timeout}s")


def _spawn(db: PgDatabase, migrations: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cli_argv(db, "migrate", migrations, *extra),
        env=cli_env(db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_migration_then_rerun_completes(pg_db: PgDatabase, mig_dir: MigrationsDir) -> None:
    mig_dir.table(1, "a")
    mig_dir.write(
        2,
        "slow",
        "CREATE TABLE slow_started (id bigint);\n"
        "SELECT pg_sleep(4) AS slow_marker;\n"
        "CREATE TABLE slow_done (id bigint);",
    )
    mig_dir.table(3, "c")
    proc = _spawn(pg_db, mig_dir.path)
    backend = _wait_for_query(pg_db, "slow_marker", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    # client_connection_check_interval: the server cancels the orphaned migration at once
    _wait_for_exit(pg_db, backend)
    # the killed transaction left nothing: no ledger row, no half of the migration
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    assert not table_exists(pg_db, "slow_started")

    rerun = subprocess.run(
        cli_argv(pg_db, "migrate", mig_dir.path), env=cli_env(pg_db), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "0002_slow ... done" in rerun.stdout
    assert [r[0] for r in ledger_rows(pg_db)] == [1, 2, 3]
    assert table_exists(pg_db, "slow_done")


def test_sigkill_in_no_transaction_file_resumes_at_the_first_unapplied_statement(
    pg_db: PgDatabase, mig_dir: MigrationsDir
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    mig_dir.write(
        2,
        "backfill",
        "INSERT INTO t VALUES (1);\n"
        "SELECT pg_sleep(1.5) AS resume_marker;\n"
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n"
        "INSERT INTO t VALUES (2);",
        head="-- migrate:no-transaction\n",
    )
    proc = _spawn(pg_db, mig_dir.path)
    backend = _wait_for_query(pg_db, "resume_marker", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    _wait_for_exit(pg_db, backend)
    assert ledger_rows(pg_db)[1] == (2, "partial", "no-transaction", 1, 4)

    rerun = subprocess.run(
        cli_argv(pg_db, "migrate", mig_dir.path), env=cli_env(pg_db), capture_output=True, text=True, timeout=60
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming 0002_backfill ... done" in rerun.stdout
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,), (2,)]  # statement 1 ran once
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 4, 4)


def test_two_runner_processes_apply_each_migration_exactly_once(pg_db: PgDatabase, mig_dir: MigrationsDir) -> None:
    mig_dir.write(1, "hits", "CREATE TABLE hits (version int NOT NULL);")
    for v in range(2, 6):
        mig_dir.write(v, f"hit_{v}", f"INSERT INTO hits VALUES ({v});\nSELECT pg_sleep(0.1);")
    # a concurrent index build while the other runner polls for the lock: a blocking
    # pg_advisory_lock waiter would deadlock with it
    mig_dir.write(
        6,
        "hits_index",
        "INSERT INTO hits VALUES (6);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS hits_version ON hits (version);",
        head="-- migrate:no-transaction\n",
    )
    procs = [_spawn(pg_db, mig_dir.path), _spawn(pg_db, mig_dir.path)]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert query(pg_db, "SELECT version, count(*) FROM hits GROUP BY version ORDER BY version") == [
        (v, 1) for v in range(2, 7)
    ]
    assert [r[0] for r in ledger_rows(pg_db)] == [1, 2, 3, 4, 5, 6]


def test_no_password_in_process_list_output_or_server_log(pg_db: PgDatabase, mig_dir: MigrationsDir) -> None:
    password = pg_db.admin_password
    mig_dir.write(1, "slow", "SELECT pg_sleep(1) AS secret_check_marker;")
    log = pg_db.cluster.log_path
    log_offset = log.stat().st_size
    proc = _spawn(pg_db, mig_dir.path, "--json")
    _wait_for_query(pg_db, "secret_check_marker", proc)
    seen_in_argv = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:
            continue
        if password.encode() in raw:
            seen_in_argv.append(cmdline.parent.name)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert seen_in_argv == []
    assert password not in out
    assert password not in err
    with log.open("rb") as f:
        f.seek(log_offset)
        assert password.encode() not in f.read()


def test_password_in_dsn_is_refused_without_echoing_it(
    pg_db: PgDatabase, mig_dir: MigrationsDir, capsys: pytest.CaptureFixture[str]
) -> None:
    dsn = f"postgresql://admin:Sup3rSecretValue@localhost:{pg_db.cluster.port}/{pg_db.name}"
    assert main(["status", "--dsn", dsn, "--migrations-dir", str(mig_dir.path)]) == 1
    captured = capsys.readouterr()
    assert "must not contain a password" in captured.err
    assert "Sup3rSecretValue" not in captured.out + captured.err


def test_a_migration_costs_one_round_trip(pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext) -> None:
    n = 12
    for v in range(1, n + 1):
        mig_dir.write(
            v, f"t{v}", f"CREATE TABLE t{v} (id bigint PRIMARY KEY, v text);\nCREATE INDEX t{v}_v ON t{v} (v);"
        )
    with TcpProxy("127.0.0.1", pg_db.cluster.port) as proxy:
        spec = spec_for(pg_db, port=proxy.port)
        connect(spec, "probe").close()
        proxy.wait_closed()
        # TLS + SCRAM handshake and the closing Terminate: the same for any client
        connection_cost = proxy.stats().round_trips
        proxy.reset()
        started = time.perf_counter()
        result = commands.migrate(MigrationContext(spec, target.migrations_dir, options=target.options))
        print(f"migrate through proxy: {time.perf_counter() - started:.3f}s")
        assert len(result.applied) == n
        proxy.wait_closed()
        stats = proxy.stats()
        assert stats.connections == 1
        # one message to lock + create + read the ledger, one per migration
        assert stats.round_trips <= connection_cost + 1 + n
        proxy.reset()
        commands.migrate(MigrationContext(spec, target.migrations_dir, options=target.options))
        proxy.wait_closed()
        assert proxy.stats().round_trips <= connection_cost + 1


def test_a_transaction_false_section_costs_one_round_trip_up_and_down(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(
        1, "t", "CREATE TABLE t (id bigint, v text);\nINSERT INTO t SELECT g, 'x' FROM generate_series(1, 50) g;"
    )
    mig_dir.write(
        2,
        "indexes",
        "CREATE INDEX CONCURRENTLY t_v ON t (v);\nUPDATE t SET v = 'y' WHERE id = 1;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY t_id ON t (id);",
        "DROP INDEX CONCURRENTLY t_id;\nDROP INDEX CONCURRENTLY t_v;",
        head="-- migrate:no-transaction\n",
    )
    with TcpProxy("127.0.0.1", pg_db.cluster.port) as proxy:
        spec = spec_for(pg_db, port=proxy.port)
        connect(spec, "probe").close()
        proxy.wait_closed()
        connection_cost = proxy.stats().round_trips
        proxy.reset()
        context = MigrationContext(spec, target.migrations_dir, options=target.options)
        assert [s.version for s in commands.migrate(context).applied] == [1, 2]
        proxy.wait_closed()
        # the lock and ledger read, migration 1, and all three statements of 2 with their records
        assert proxy.stats().round_trips == connection_cost + 1 + 2
        assert query(pg_db, "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                     "WHERE i.indrelid = 't'::regclass ORDER BY 1") == [("t_id", True), ("t_v", True)]  # fmt: skip
        assert ledger_rows(pg_db) == [(1, "applied", "transaction", None, None), (2, "applied", "no-transaction", 3, 3)]
        assert query(pg_db, "SELECT duration_ms >= 0 FROM migrations_ledger.applied WHERE version = 2") == [(True,)]
        proxy.reset()
        commands.rollback(context, to=1)
        proxy.wait_closed()
        assert proxy.stats().round_trips == connection_cost + 1 + 1
        assert ledger_rows(pg_db) == [(1, "applied", "transaction", None, None)]
        assert query(pg_db, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass") == [(0,)]


def test_a_guard_failure_in_a_transaction_false_section_stops_before_the_next_statement(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    mig_dir.write(
        2,
        "sneaky",
        "INSERT INTO t VALUES (1);\nDO $$ BEGIN PERFORM set_config('lock_timeout', '0', false); "
        "INSERT INTO t VALUES (2); END $$;\nCREATE INDEX CONCURRENTLY t_id ON t (id);",
        head="-- migrate:no-transaction\n",
    )
    with pytest.raises(MigrationError, match="the migration changed what the runner pins: lock_timeout") as failed:
        commands.migrate(target)
    assert "0002_sneaky.sql:4:" in str(failed.value)
    # statement 1 is applied and recorded; statement 2 rolled back with its record; 3 never ran
    assert query(pg_db, "SELECT id FROM t") == [(1,)]
    assert query(pg_db, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass") == [(0,)]
    assert ledger_rows(pg_db)[1] == (2, "failed", "no-transaction", 1, 3)


def _migrate_and_cut_the_link_at(pg_db: PgDatabase, target: MigrationContext, marker: str) -> list[BaseException]:
    """Run migrate through a proxy and drop the link while a statement containing ``marker`` runs;
    what migrate raised."""
    errors: list[BaseException] = []
    with TcpProxy("127.0.0.1", pg_db.cluster.port) as proxy:
        spec = spec_for(pg_db, port=proxy.port)

        def run() -> None:
            try:
                commands.migrate(MigrationContext(spec, target.migrations_dir, options=target.options))
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not query(
            pg_db,
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE %s AND state = 'active' AND pid <> pg_backend_pid()",
            (f"%{marker}%",),
        ):
            time.sleep(0.02)
        proxy.drop()
        t.join(timeout=20)
    return errors


def test_lost_connection_mid_migration_leaves_nothing_and_rerun_completes(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "slow", "CREATE TABLE dropped (id bigint);\nSELECT pg_sleep(1.5) AS drop_marker;")
    errors = _migrate_and_cut_the_link_at(pg_db, target, "drop_marker")
    assert errors, "the migration should fail when its connection is cut"
    assert ledger_rows(pg_db) == []
    assert not table_exists(pg_db, "dropped")
    assert [s.version for s in commands.migrate(target).applied] == [1]


def test_lost_connection_in_a_transaction_false_section_is_resumed_after_the_last_recorded_statement(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    mig_dir.write(
        2,
        "steps",
        "INSERT INTO t VALUES (1);\nSELECT pg_sleep(1.5) AS drop_marker;\nINSERT INTO t VALUES (3);",
        head="-- migrate:no-transaction\n",
    )
    errors = _migrate_and_cut_the_link_at(pg_db, target, "drop_marker")
    assert len(errors) == 1, errors
    assert isinstance(errors[0], MigrationError), errors
    message = str(errors[0])
    assert "nothing ran" not in message
    assert "the ledger row says how far the section got" in message
    assert "pipeline mode" not in message  # libpq's aftermath does not replace the lost connection's error
    # statement 1 is applied and recorded; the server ends the session during statement 2
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,)]
    assert ledger_rows(pg_db)[1] == (2, "partial", "no-transaction", 1, 3)
    result = commands.migrate(target)
    assert [(s.version, s.action, s.statements) for s in result.applied] == [(2, "resume", 2)]
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,), (3,)]
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 3, 3)


def test_a_backend_terminated_in_a_transaction_false_section_says_why_and_where_then_resumes(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    # the server ends the session with an error of its own (as pg_terminate_backend from another
    # session or a shutdown would): the error names it and the statement, not libpq's aftermath
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    mig_dir.write(
        2,
        "steps",
        "INSERT INTO t VALUES (1);\nSELECT pg_terminate_backend(pg_backend_pid());\nINSERT INTO t VALUES (3);",
        head="-- migrate:no-transaction\n",
    )
    with pytest.raises(MigrationError) as failed:
        commands.migrate(target)
    message = str(failed.value)
    assert "0002_steps.sql:4:" in message
    assert "terminating connection due to administrator command (SQLSTATE 57P01)" in message
    assert "pipeline" not in message
    assert "statements 1..1 stay applied and are recorded, a rerun resumes at statement 2" in message
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,)]
    assert ledger_rows(pg_db)[1] == (2, "partial", "no-transaction", 1, 3)
    # statement 2 was never recorded, so it may change; the rerun resumes there
    mig_dir.write(
        2, "steps", "INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nINSERT INTO t VALUES (3);",
        head="-- migrate:no-transaction\n",
    )  # fmt: skip
    result = commands.migrate(target)
    assert [(s.version, s.action, s.statements) for s in result.applied] == [(2, "resume", 2)]
    assert query(pg_db, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (3,)]
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 3, 3)


def test_a_reply_lost_after_a_transaction_false_rollback_ran_does_not_claim_the_ledger_still_lists_it(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint);")
    mig_dir.write(
        2, "index", "CREATE INDEX CONCURRENTLY t_id ON t (id);", "DROP INDEX CONCURRENTLY t_id;",
        head="-- migrate:no-transaction\n",
    )  # fmt: skip
    commands.migrate(target)
    # each reply waits in the proxy: the server has run the whole down section when the link is cut
    with TcpProxy("127.0.0.1", pg_db.cluster.port, delay=0.15) as proxy:
        spec = spec_for(pg_db, port=proxy.port)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                commands.rollback(MigrationContext(spec, target.migrations_dir, options=target.options), to=1)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=run)
        t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(ledger_rows(pg_db)) > 1:
            time.sleep(0.02)
        proxy.drop()
        t.join(timeout=20)
    assert len(errors) == 1, errors
    assert isinstance(errors[0], MigrationError), errors
    message = str(errors[0])
    assert "still lists the migration" not in message
    assert "status shows whether the ledger still lists it" in message
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    assert query(pg_db, "SELECT count(*) FROM pg_index WHERE indrelid = 't'::regclass") == [(0,)]


def test_cli_json_status_is_machine_readable(pg_db: PgDatabase, mig_dir: MigrationsDir) -> None:
    mig_dir.table(1, "a")
    env = cli_env(pg_db)
    out = subprocess.run(
        cli_argv(pg_db, "migrate", mig_dir.path, "--json"), env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert [a["version"] for a in doc["applied"]] == [1]
    assert "0001_create_a ... done" in out.stderr  # progress goes to stderr when stdout is JSON
