"""The migration engine against a real PostgreSQL 16 (TLS verify-full, non-superuser admin)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.cli import main
from infra.enums import Environment
from infra.errors import (
    ChecksumMismatch,
    LintBlocked,
    LockTimeout,
    MigrationError,
    SafetyError,
    ValidationError,
)
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from infra.migrations.ledger import ledger_environment, stamp_environment
from tests.fixtures.migrations import (
    MigrationsDir,
    Recorder,
    cli_argv,
    ledger_rows,
    lock_held,
    query,
    table_exists,
    with_options,
)
from tests.fixtures.pg import PgDatabase


def test_fresh_apply_then_rerun_is_a_noop(pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext) -> None:
    for i, name in enumerate(("a", "b", "c"), start=1):
        mig_dir.table(i, name)
    progress = Recorder()
    result = commands.migrate(target, progress=progress)
    assert [s.version for s in result.applied] == [1, 2, 3]
    assert progress.events[:2] == [("start-apply", "0001_create_a"), ("done-apply", "0001_create_a")]
    assert all(table_exists(pg_db, t) for t in ("a", "b", "c"))
    rows = query(
        pg_db,
        "SELECT version, name, status, transaction_mode, run_id, applied_by, duration_ms >= 0, checksum "
        "FROM migrations_ledger.applied ORDER BY version",
    )
    assert [r[:4] for r in rows] == [
        (1, "create_a", "applied", "transaction"),
        (2, "create_b", "applied", "transaction"),
        (3, "create_c", "applied", "transaction"),
    ]
    assert {r[4] for r in rows} == {result.run_id}
    assert all(r[6] for r in rows)
    from infra.migrations.source import checksum

    assert rows[0][7] == checksum(mig_dir.path / "0001_create_a.sql")

    again = commands.migrate(target)
    assert again.applied == ()
    assert len(ledger_rows(pg_db)) == 3
    assert not lock_held(pg_db)


def test_a_crlf_inside_a_literal_is_stored_as_written(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    # psql stores the file's bytes: the engine used to send the LF-normalised text, so the value lost its CR
    path = mig_dir.path / "0001_crlf.sql"
    path.write_bytes(b"-- migrate:up\r\nCREATE TABLE t (v text);\r\nINSERT INTO t VALUES ('a\r\nb');\r\n")
    commands.migrate(target)
    assert query(pg_db, "SELECT v FROM t") == [("a\r\nb",)]
    from infra.migrations.source import checksum

    assert query(pg_db, "SELECT filename, checksum FROM migrations_ledger.applied") == [
        ("0001_crlf.sql", checksum(path))
    ]


def test_failing_statement_rolls_back_with_no_ledger_row_and_lock_released(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    mig_dir.write(2, "broken", "CREATE TABLE half (id bigint);\n\nINSERT INTO missing_table VALUES (1);")
    with pytest.raises(MigrationError, match=r"0002_broken\.sql:4: .*missing_table.*42P01.*rolled back"):
        commands.migrate(target)
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    assert not table_exists(pg_db, "half")
    assert not lock_held(pg_db)
    # fixing the file (it was never applied, so its checksum is free to change) lets the run go on
    mig_dir.write(2, "broken", "CREATE TABLE half (id bigint);")
    assert [s.version for s in commands.migrate(target).applied] == [2]


def test_validation_refuses_tampered_missing_and_out_of_order_before_any_sql(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_db.admin_password)
    mig_dir.table(1, "a")
    mig_dir.table(3, "c")
    commands.migrate(target)
    pending = mig_dir.table(4, "d")  # would run if validation let it

    # tampered: an applied file changed (a CRLF checkout alone would not count: checksums normalise)
    first = mig_dir.path / "0001_create_a.sql"
    original = first.read_bytes()
    first.write_bytes(original.replace(b"\n", b"\r\n"))
    assert [s.version for s in commands.migrate(with_options(target), to=3).applied] == []
    first.write_bytes(original + b"-- an edit\n")
    with pytest.raises(ChecksumMismatch, match=r"0001_create_a\.sql was changed.*repair --version 1"):
        commands.migrate(target)
    assert not table_exists(pg_db, "d")
    first.write_bytes(original)

    # missing: an applied file deleted
    third = mig_dir.path / "0003_create_c.sql"
    kept = third.read_bytes()
    third.unlink()
    with pytest.raises(ValidationError, match=r"0003_create_c\.sql is in the ledger .* file is missing"):
        commands.migrate(target)
    third.write_bytes(kept)

    # out of order: a new file below the highest applied version
    mig_dir.table(2, "b")
    with pytest.raises(ValidationError, match=r"0002_create_b\.sql is new .* below the highest applied version 3"):
        commands.migrate(target)
    assert not table_exists(pg_db, "d")
    assert not table_exists(pg_db, "b")
    assert pending.exists()

    # and the CLI maps the refusal to exit code 1
    assert main(cli_argv(pg_db, "validate", mig_dir.path)[3:]) == 1


def test_cli_refusal_exit_code_and_status_exit_code(
    pg_db: PgDatabase, mig_dir: MigrationsDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_db.admin_password)
    mig_dir.table(1, "a")
    argv = cli_argv(pg_db, "status", mig_dir.path, "--exit-code")[3:]
    assert main(argv) == 2
    assert "pending  0001_create_a.sql" in capsys.readouterr().out
    assert main(cli_argv(pg_db, "migrate", mig_dir.path)[3:]) == 0
    out = capsys.readouterr().out
    assert "0001_create_a ... done (" in out
    assert main(argv) == 0
    capsys.readouterr()
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["pending"] == []
    assert [row["version"] for row in doc["applied"]] == [1]


def test_repair_accepts_a_changed_checksum_with_an_audit_row(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    path = mig_dir.table(1, "a")
    commands.migrate(target)
    path.write_text(path.read_text() + "-- reviewed comment\n")
    with pytest.raises(ChecksumMismatch):
        commands.validate(target)
    with pytest.raises(SafetyError, match="--reason"):
        commands.repair(target, version=1, reason=" ")
    result = commands.repair(target, version=1, reason="comment only, reviewed in PR 42")
    assert result.action == "repair"
    assert result.old_checksum != result.new_checksum
    assert commands.validate(target).applied == 1
    audit = query(
        pg_db, "SELECT action, version, reason, by_user, old_checksum, new_checksum FROM migrations_ledger.events"
    )
    assert audit == [
        ("repair", 1, "comment only, reviewed in PR 42", audit[0][3], result.old_checksum, result.new_checksum)
    ]
    assert "@" in audit[0][3]


def test_dry_run_changes_nothing(pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext) -> None:
    mig_dir.table(1, "a")
    mig_dir.table(2, "b")
    result = commands.migrate(target, dry_run=True)
    assert result.planned == ("0001_create_a", "0002_create_b")
    assert result.applied == ()
    assert not table_exists(pg_db, "a")
    assert query(pg_db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'migrations_ledger'") == [(0,)]
    commands.migrate(target, to=1)
    assert commands.migrate(target, dry_run=True).planned == ("0002_create_b",)
    assert not table_exists(pg_db, "b")
    assert [r[0] for r in ledger_rows(pg_db)] == [1]


def test_rollback_runs_down_sections_and_refuses_without_one(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    mig_dir.table(2, "b")
    mig_dir.table(3, "c")
    commands.migrate(target)
    result = commands.rollback(target, to=1, reason="test")
    assert [s.version for s in result.rolled_back] == [3, 2]
    assert table_exists(pg_db, "a")
    assert not table_exists(pg_db, "b")
    assert not table_exists(pg_db, "c")
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    assert query(pg_db, "SELECT action, version FROM migrations_ledger.events ORDER BY id") == [
        ("rollback", 3),
        ("rollback", 2),
    ]
    commands.migrate(target)
    mig_dir.write(4, "irreversible", "CREATE TABLE d (id bigint);")
    commands.migrate(target)
    with pytest.raises(MigrationError, match=r"0004_irreversible\.sql has no '-- migrate:down' section"):
        commands.rollback(target, to=2)
    # refused before any SQL
    assert table_exists(pg_db, "c")
    assert table_exists(pg_db, "d")


def test_rollback_on_production_needs_confirm(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    mig_dir.table(2, "b")
    prod = MigrationContext(target.connection, target.migrations_dir, Environment.PRODUCTION, "prod", target.options)
    commands.migrate(prod)
    with psycopg.connect(**_admin(pg_db)) as conn:
        assert ledger_environment(conn) == "production"
    with pytest.raises(SafetyError, match="--confirm prod"):
        commands.rollback(prod, to=1)
    # the ledger's stamp guards even a run that does not say production
    with pytest.raises(SafetyError, match="--confirm"):
        commands.rollback(MigrationContext(target.connection, target.migrations_dir, stack="prod"), to=1, confirm="dev")
    with pytest.raises(SafetyError, match="marked environment 'production'"):
        commands.migrate(MigrationContext(target.connection, target.migrations_dir, Environment.DEV))
    assert table_exists(pg_db, "b")
    commands.rollback(prod, to=1, confirm="prod")
    assert not table_exists(pg_db, "b")


def _admin(db: PgDatabase) -> dict[str, Any]:
    return {**db.admin_params(), "autocommit": True}


def test_stamp_environment_roundtrip(pg_db: PgDatabase) -> None:
    with psycopg.connect(**_admin(pg_db)) as conn:
        assert ledger_environment(conn) is None
        stamp_environment(conn, "staging", by="test")
        assert ledger_environment(conn) == "staging"


def test_baseline_adopts_an_existing_database(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    for i, name in enumerate(("a", "b", "c"), start=1):
        mig_dir.table(i, name)
    with psycopg.connect(**_admin(pg_db)) as conn:  # the database predates the engine
        conn.execute("CREATE TABLE a (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)")
        conn.execute("CREATE TABLE b (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)")
    result = commands.baseline(target, version=2, reason="adopt legacy")
    assert result.versions == (1, 2)
    assert [r[:3] for r in ledger_rows(pg_db)] == [(1, "applied", "baseline"), (2, "applied", "baseline")]
    assert [s.version for s in commands.migrate(target).applied] == [3]
    with pytest.raises(SafetyError, match="baseline refused"):
        commands.baseline(target, version=3)


def test_lock_timeout_retries_then_succeeds(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    commands.migrate(target)
    mig_dir.write(2, "alter_a", "ALTER TABLE a ADD COLUMN w text;", "ALTER TABLE a DROP COLUMN w;")
    blocker = psycopg.connect(**_admin(pg_db))
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE a IN ACCESS SHARE MODE")  # a long read: conflicts with ALTER TABLE

    def release() -> None:
        if not blocker.closed:
            blocker.execute("COMMIT")
            blocker.close()

    progress = Recorder(on_retry=release)
    fast = with_options(target, lock_timeout="200ms", lock_retries=3)
    result = commands.migrate(fast, progress=progress)
    assert [(s.version, s.attempts) for s in result.applied] == [(2, 2)]
    assert ("retry", "0002_alter_a") in progress.events
    assert query(
        pg_db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'w'"
    ) == [(1,)]


def test_a_lock_timeout_in_a_transaction_false_section_retries_from_that_statement(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    commands.migrate(target)
    mig_dir.write(
        2,
        "fill_then_alter",
        "CREATE TABLE fills (n int);\nINSERT INTO fills VALUES (1);\nALTER TABLE a ADD COLUMN w text;\n"
        "INSERT INTO fills VALUES (2);",
        head="-- migrate:no-transaction\n",
    )
    blocker = psycopg.connect(**_admin(pg_db))
    blocker.execute("BEGIN")
    blocker.execute("LOCK TABLE a IN ACCESS SHARE MODE")

    def release() -> None:
        if not blocker.closed:
            blocker.execute("COMMIT")
            blocker.close()

    progress = Recorder(on_retry=release)
    result = commands.migrate(with_options(target, lock_timeout="200ms", lock_retries=3), progress=progress)
    assert [(s.version, s.attempts) for s in result.applied] == [(2, 2)]
    assert progress.events.count(("retry", "0002_fill_then_alter")) == 1
    # the statements before the one that waited ran once; the rest after the retry
    assert query(pg_db, "SELECT n FROM fills ORDER BY n") == [(1,), (2,)]
    assert query(
        pg_db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'a' AND column_name = 'w'"
    ) == [(1,)]
    assert ledger_rows(pg_db)[1] == (2, "applied", "no-transaction", 4, 4)


def test_lock_timeout_gives_up_after_bounded_retries(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    commands.migrate(target)
    mig_dir.write(2, "alter_a", "ALTER TABLE a ADD COLUMN w text;")
    with psycopg.connect(**_admin(pg_db)) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("LOCK TABLE a IN ACCESS SHARE MODE")
        progress = Recorder()
        with pytest.raises(MigrationError, match=r"0002_alter_a\.sql:2: .*55P03.*gave up after 3 attempts"):
            commands.migrate(with_options(target, lock_timeout="100ms", lock_retries=2), progress=progress)
        assert [e for e in progress.events if e[0] == "retry"] == [("retry", "0002_alter_a")] * 2
        blocker.execute("ROLLBACK")
    assert [r[0] for r in ledger_rows(pg_db)] == [1]


def test_single_transaction_rolls_back_the_whole_run(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    mig_dir.table(2, "b")
    mig_dir.write(3, "bad", "SELECT 1/0;")
    with pytest.raises(MigrationError, match="0003_bad"):
        commands.migrate(with_options(target, single_transaction=True))
    assert ledger_rows(pg_db) == []
    assert not table_exists(pg_db, "a")
    mig_dir.write(3, "bad", "SELECT 1;")
    result = commands.migrate(with_options(target, single_transaction=True))
    assert [s.version for s in result.applied] == [1, 2, 3]


def test_lock_wait_times_out_naming_the_holder(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    from infra.migrations.ledger import LOCK_KEY

    with psycopg.connect(**_admin(pg_db), application_name="migrate:other-runner") as holder:
        holder.execute("SELECT pg_try_advisory_lock(%s, %s)", LOCK_KEY)
        progress = Recorder()
        with pytest.raises(LockTimeout, match=r"pid \d+ \(migrate:other-runner, user admin, client 127\.0\.0\.1"):
            commands.migrate(with_options(target, lock_wait=0.5), progress=progress)
        assert progress.events[0][0] == "lock-wait"
    assert not table_exists(pg_db, "a")


def test_two_runners_in_threads_apply_each_migration_once(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "hits", "CREATE TABLE hits (version int NOT NULL);")
    for v in range(2, 7):
        mig_dir.write(v, f"hit_{v}", f"INSERT INTO hits VALUES ({v}); SELECT pg_sleep(0.05);")
    results: list[object] = []
    barrier = threading.Barrier(2)

    def run() -> None:
        barrier.wait()
        try:
            results.append(commands.migrate(target))
        except Exception as exc:  # the test asserts below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(r, commands.MigrateResult) for r in results), results
    applied = sorted(s.version for r in results if isinstance(r, commands.MigrateResult) for s in r.applied)
    assert applied == [1, 2, 3, 4, 5, 6]
    assert query(pg_db, "SELECT version, count(*) FROM hits GROUP BY version ORDER BY version") == [
        (v, 1) for v in range(2, 7)
    ]


def test_production_lint_findings_block_unless_allowed(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    prod = MigrationContext(target.connection, target.migrations_dir, Environment.PRODUCTION, "prod", target.options)
    commands.migrate(prod)
    mig_dir.write(2, "index_a", "CREATE INDEX a_v ON a (v);")
    with pytest.raises(LintBlocked, match=r"0002_index_a\.sql:2:\d+: require-concurrent-index-creation"):
        commands.migrate(prod)
    assert not query(pg_db, "SELECT 1 FROM pg_class WHERE relname = 'a_v'")
    # a dev run is not blocked by lint; the plan shows the finding either way
    plan = commands.plan(prod)
    assert [f.rule for f in plan.items[0].findings] == ["require-concurrent-index-creation"]
    assert plan.items[0].statements[0].lock_mode == "SHARE"
    mig_dir.write(
        2, "index_a", "CREATE INDEX a_v ON a (v);", head="-- migrate:allow require-concurrent-index-creation\n"
    )
    assert [s.version for s in commands.migrate(prod).applied] == [2]


def test_invalid_statement_positions_map_to_file_lines(mig_dir: MigrationsDir, target: MigrationContext) -> None:
    mig_dir.write(1, "typo", "CREATE TABLE ok (id bigint);\nSELECT 1;\nCREAT TABLE nope (id bigint);")
    with pytest.raises(MigrationError, match=r"0001_typo\.sql:4: syntax error"):
        commands.migrate(target)


def test_parse_error_names_file_and_line(mig_dir: MigrationsDir, target: MigrationContext) -> None:
    (mig_dir.path / "0001_bad.sql").write_text("-- migrate:up\n-- migrate:lock-timeout soon\nSELECT 1;\n")
    from infra.errors import MigrationParseError

    with pytest.raises(MigrationParseError, match=r"0001_bad\.sql:2: 'migrate:lock-timeout' needs a duration"):
        commands.migrate(target)


def test_a_role_switch_in_one_file_neither_blocks_the_ledger_nor_leaks_into_the_next(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    role = f"mig_role_{pg_db.name}"
    mig_dir.write(
        1,
        "role",
        f"CREATE ROLE {role} NOLOGIN;\nGRANT {role} TO CURRENT_USER;\nGRANT CREATE ON SCHEMA public TO {role};",
    )
    # a session-level SET ROLE (not LOCAL) to a role that may not touch the ledger
    mig_dir.write(
        2, "as_role", f"SET ROLE {role};\nSET search_path = pg_catalog;\nCREATE TABLE public.owned_by_role (id bigint);"
    )
    mig_dir.write(3, "as_login", "CREATE TABLE owned_by_login (id bigint);")
    mig_dir.write(
        4,
        "no_tx_as_role",
        f"SET ROLE {role};\nCREATE TABLE public.no_tx_by_role (id bigint);",
        head="-- migrate:no-transaction\n",
    )
    mig_dir.write(5, "after_no_tx", "CREATE TABLE after_no_tx (id bigint);")
    try:
        commands.migrate(target)
        owners = dict(
            query(
                pg_db,
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename",
            )
        )
        assert owners == {
            "owned_by_role": role,
            "owned_by_login": "admin",
            "no_tx_by_role": role,
            "after_no_tx": "admin",
        }
        assert [r[:2] for r in ledger_rows(pg_db)] == [(v, "applied") for v in range(1, 6)]
    finally:
        with pg_db.connect_superuser(autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}".encode())
            conn.execute(f"DROP ROLE IF EXISTS {role}".encode())


def test_a_missing_migrations_dir_is_refused_before_connecting(tmp_path: Path, target: MigrationContext) -> None:
    absent = MigrationContext(target.connection, tmp_path / "nope", options=target.options)
    with pytest.raises(MigrationError, match=r"migrations directory '.*nope' does not exist"):
        commands.migrate(absent)
    with pytest.raises(MigrationError, match="does not exist"):
        commands.status(absent)
