"""Issue 10's findings, one test each, on PostgreSQL 16: the database and the ledger afterwards.

1 comments and missing semicolons never break the message; 2 NUL bytes, invalid UTF-8 and a message
the server did not run whole are never reported applied; 3 standard_conforming_strings cannot be
changed for the next migration, and a database whose default is off installs the schema right;
4 RESET ALL, timeouts, advisory unlocks and temporary tables cannot leak past a migration; 5 dbmate's
own markers, empty sections, irreversibility, a broken file that stops only migrate; 6 versions of
any length and exact file names; 7 a 2 MB file of 32k INSERTs; 8 --json errors, a closed pipe, a
failed --single-transaction run.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from psycopg import pq

from infra.cli import main
from infra.errors import MigrationError, MigrationParseError
from infra.migrations import commands, source
from infra.migrations.commands import MigrationContext
from infra.migrations.connection import connect
from infra.migrations.ledger import LOCK_KEY
from infra.migrations.runner import Runner
from tests.fixtures.migrations import (
    MigrationsDir,
    Recorder,
    cli_argv,
    cli_env,
    ledger_rows,
    lock_held,
    query,
    table_exists,
    with_options,
)
from tests.fixtures.pg import PgDatabase
from tests.fixtures.schema import migration_files, target_for


def _file(mig_dir: MigrationsDir, name: str, text: str) -> Path:
    path = mig_dir.path / name
    path.write_text(text)
    return path


def _columns(db: PgDatabase, table: str) -> list[str]:
    rows = query(
        db,
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 ORDER BY attnum",
        (table,),
    )
    return [r[0] for r in rows]


def _ledger_files(db: PgDatabase) -> list[tuple[Any, ...]]:
    if not table_exists(db, "migrations_ledger.applied"):
        return []
    return query(db, "SELECT version, filename, status FROM migrations_ledger.applied ORDER BY version")


# -- 1 ---------------------------------------------------------------------------------------------


def test_1_a_comment_before_the_semicolon_and_a_last_statement_without_one(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    _file(
        mig_dir,
        "0001_comments.sql",
        "-- migrate:up\n"
        "CREATE TABLE t (a int) -- note\n"
        ";\n"
        "ALTER TABLE t ADD b int;\n"
        "ALTER TABLE t ADD c int\n"
        "-- a comment line after the last statement, which has no semicolon\n"
        "-- migrate:down\n"
        "DROP TABLE t -- gone\n",
    )
    _file(mig_dir, "0002_blame.sql", "-- migrate:up\nSELECT 1 -- one\n;\nSELECT 1 / 0 -- boom\n;\nSELECT 3;\n")
    with pytest.raises(MigrationError, match=r"^0002_blame\.sql:4: division by zero \(SQLSTATE 22012\); rolled back"):
        commands.migrate(target)
    assert _columns(pg_db, "t") == ["a", "b", "c"]
    assert _ledger_files(pg_db) == [(1, "0001_comments.sql", "applied")]
    commands.rollback(target, to=0)
    assert not table_exists(pg_db, "t")
    assert _ledger_files(pg_db) == []


# -- 2 ---------------------------------------------------------------------------------------------


def test_2_a_nul_byte_stops_the_run_at_its_file_with_the_line(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "first", "CREATE TABLE first (id int);")
    (mig_dir.path / "0002_nul.sql").write_bytes(b"-- migrate:up\nCREATE TABLE nul_before (id int);\nSELECT '\x00';\n")
    mig_dir.write(3, "after", "CREATE TABLE after_nul (id int);")
    with pytest.raises(MigrationParseError, match=r"^0002_nul\.sql:3: nul byte in the file; the migrations before"):
        commands.migrate(target)
    assert table_exists(pg_db, "first")
    assert not table_exists(pg_db, "nul_before")
    assert not table_exists(pg_db, "after_nul")
    assert _ledger_files(pg_db) == [(1, "0001_first.sql", "applied")]
    (mig_dir.path / "0004_latin1.sql").write_bytes(b"-- migrate:up\nSELECT '\xe9';\n")
    with pytest.raises(MigrationParseError, match=r"0002_nul\.sql:3"):
        commands.migrate(target)  # still stopped at the first broken file
    assert [p.file for p in commands.status(target).problems] == ["0002_nul.sql", "0004_latin1.sql"]


def test_2_applied_is_only_reported_when_the_server_ran_every_statement(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    # A NUL that got past the parser (here: put in by hand) makes libpq send only the text before it.
    path = mig_dir.write(1, "victim", "CREATE TABLE victim (id int);")
    mig = source.parse(path)
    forged = dataclasses.replace(mig.up[0], text="CREATE TABLE victim (id int)\x00; SELECT 1")
    mig = dataclasses.replace(mig, up_section=dataclasses.replace(mig.up_section, statements=(forged,)))
    with connect(target.connection, "forged") as conn:
        runner = Runner(conn, "forged", target.options)
        runner.acquire()
        with pytest.raises(
            MigrationError, match=r"the server answered \d+ of the \d+ statements sent; rolled back"
        ) as e:
            runner.apply_transactional(mig)
        answered, sent = map(int, re.findall(r"answered (\d+) of the (\d+)", str(e.value))[0])
        assert sent - answered == 4  # the victim's statement ends the message: guard, role, ledger row, COMMIT
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
    assert not table_exists(pg_db, "victim")
    assert _ledger_files(pg_db) == []


# -- 3 ---------------------------------------------------------------------------------------------


def test_3_standard_conforming_strings_cannot_change_how_the_next_migration_is_read(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    regex = "CREATE TABLE years (y text CHECK (y ~ '^\\d{4}$'));"
    _file(mig_dir, "0001_off.sql", "-- migrate:up\nSET standard_conforming_strings = off;\n")
    mig_dir.write(2, "years", regex)
    with pytest.raises(MigrationParseError, match=r"0001_off\.sql:2: standard_conforming_strings changes how"):
        commands.migrate(target)
    assert _ledger_files(pg_db) == []
    # hidden from the parser in a DO block, the runner's guard rolls the migration back
    _file(
        mig_dir,
        "0001_off.sql",
        "-- migrate:up\nCREATE TABLE off_marker (id int);\n"
        "DO $$ BEGIN EXECUTE 'SET standard_conforming_strings = off'; END $$;\n",
    )
    with pytest.raises(MigrationError, match=r"0001_off\.sql: the migration changed what the runner pins: "):
        commands.migrate(target)
    assert not table_exists(pg_db, "off_marker")
    assert _ledger_files(pg_db) == []
    # the crafted literal of the report: with the setting pinned on, the COMMIT is transaction control
    _file(mig_dir, "0001_off.sql", "-- migrate:up\nSELECT 'a\\'; COMMIT; CREATE TABLE smuggled (id int); --';\n")
    with pytest.raises(MigrationParseError, match=r"0001_off\.sql:2: transaction control"):
        commands.migrate(target)
    _file(mig_dir, "0001_off.sql", "-- migrate:up\nSELECT 1;\n")
    commands.migrate(target)
    check = query(pg_db, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'years'::regclass")
    assert check == [("CHECK ((y ~ '^\\d{4}$'::text))",)]
    assert not table_exists(pg_db, "smuggled")
    assert [r[0] for r in _ledger_files(pg_db)] == [1, 2]


def test_3_the_bundled_schema_installs_right_where_the_database_default_is_off(pg_db: PgDatabase) -> None:
    with pg_db.connect_superuser(autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{pg_db.name}" SET standard_conforming_strings = off'.encode())
    with pg_db.connect_admin() as conn:
        assert conn.execute("SHOW standard_conforming_strings").fetchone() == ("off",)
    commands.migrate(target_for(pg_db))
    with pg_db.connect_superuser(autocommit=True) as conn:
        conn.execute("SET standard_conforming_strings = on")  # how the definitions are printed, not stored
        rows = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname IN ('users_email_check', 'tenants_domain_check')"
        ).fetchall()
    checks = dict(rows)
    assert "'^[^@\\s]+@[^@\\s]+$'" in checks["users_email_check"]
    assert "\\.[a-z]{2,}$'" in checks["tenants_domain_check"]
    assert len(_ledger_files(pg_db)) == len(migration_files())


# -- 4 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        ("RESET ALL;", r"0001_x\.sql:3: reset all would undo the runner's timeouts"),
        ("SET lock_timeout = 0;", r"0001_x\.sql:3: lock_timeout is the runner's"),
        (f"SELECT pg_advisory_unlock({LOCK_KEY[0]}, {LOCK_KEY[1]});", r"0001_x\.sql:3: pg_advisory_unlock\(\)"),
    ],
)
def test_4_a_file_cannot_undo_the_runners_guarantees(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, sql: str, error: str
) -> None:
    _file(mig_dir, "0001_x.sql", f"-- migrate:up\nCREATE TABLE guarded (id int);\n{sql}\n")
    with pytest.raises(MigrationParseError, match=error):
        commands.migrate(target)
    assert not table_exists(pg_db, "guarded")
    assert _ledger_files(pg_db) == []
    assert not lock_held(pg_db)


@pytest.mark.parametrize(
    ("body", "changed"),
    [
        ("SET lock_timeout = 0", "lock_timeout"),
        ("PERFORM set_config('statement_timeout', '0', false)", "statement_timeout"),
        (f"PERFORM pg_catalog.pg_advisory_unlock({LOCK_KEY[0]} + 0, {LOCK_KEY[1]})", None),
        ("EXECUTE 'SELECT pg_advisory_' || 'unlock_all()'", "the migration lock"),  # the name never appears whole
    ],
)
def test_4_hidden_in_a_do_block_the_guard_rolls_the_migration_back(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, body: str, changed: str | None
) -> None:
    _file(mig_dir, "0001_x.sql", f"-- migrate:up\nCREATE TABLE guarded (id int);\nDO $$ BEGIN {body}; END $$;\n")
    if changed is None:  # the parser sees the name even inside the body
        with pytest.raises(MigrationParseError, match="pg_advisory_unlock"):
            commands.migrate(target)
    else:
        with pytest.raises(MigrationError, match=f"the migration changed what the runner pins: {changed}"):
            commands.migrate(target)
    assert not table_exists(pg_db, "guarded")
    assert _ledger_files(pg_db) == []


def test_4_the_guard_cannot_be_shadowed_through_the_search_path(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    # a file puts its own schema before pg_catalog, with a current_setting that always answers
    # what the guard expects, then turns the lock timeout off
    shadow = (
        "CREATE SCHEMA shadow;\n"
        "CREATE FUNCTION shadow.current_setting(text) RETURNS text LANGUAGE sql "
        "AS $$ SELECT CASE $1 WHEN 'lock_timeout' THEN '500ms' ELSE pg_catalog.current_setting($1) END $$;\n"
        "SELECT pg_catalog.set_config('search_path', 'shadow, pg_catalog', false);\n"
        "DO $$ BEGIN PERFORM pg_catalog.set_config('lock_timeout', '0', false); END $$;\n"
        "CREATE TABLE public.shadowed (id int);"
    )
    _file(mig_dir, "0001_shadow.sql", f"-- migrate:up\n{shadow}\n")
    with pytest.raises(MigrationError, match="the migration changed what the runner pins: lock_timeout"):
        commands.migrate(with_options(target, lock_timeout="500ms"))
    assert not table_exists(pg_db, "shadowed")
    assert _ledger_files(pg_db) == []


def test_4_temporary_tables_do_not_survive_into_the_next_migration(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "scratch", "CREATE TEMP TABLE scratch (id int);\nINSERT INTO scratch VALUES (1);")
    mig_dir.write(
        2,
        "look",
        "CREATE TABLE seen AS SELECT count(*) AS n FROM pg_class WHERE relname = 'scratch' AND relpersistence = 't';",
    )
    _file(mig_dir, "0003_again.sql", "-- migrate:up transaction:false\nCREATE TEMP TABLE scratch (id int);\n")
    mig_dir.write(4, "after_no_tx", "CREATE TABLE seen_after AS SELECT to_regclass('pg_temp.scratch') AS r;")
    commands.migrate(target)
    assert query(pg_db, "SELECT n FROM seen") == [(0,)]
    assert query(pg_db, "SELECT r FROM seen_after") == [(None,)]
    assert [r[0] for r in _ledger_files(pg_db)] == [1, 2, 3, 4]


def test_4_prepared_statements_cursors_listens_and_sequence_state_do_not_survive_either(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(
        1,
        "leave",
        "CREATE SEQUENCE s;\nSELECT nextval('s');\nPREPARE p AS SELECT 1;\n"
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1;\nLISTEN ch;",
    )
    _file(mig_dir, "0002_leave_no_tx.sql", "-- migrate:up transaction:false\nPREPARE q AS SELECT 2;\nLISTEN ch2;\n")
    # the same names again: a leftover would make these fail ("already exists")
    mig_dir.write(3, "again", "PREPARE p AS SELECT 3;\nDECLARE c CURSOR WITH HOLD FOR SELECT 3;")
    mig_dir.write(
        4,
        "look",
        "CREATE TABLE leftovers AS SELECT (SELECT count(*) FROM pg_prepared_statements) AS prepared, "
        "(SELECT count(*) FROM pg_cursors) AS cursors, (SELECT count(*) FROM pg_listening_channels()) AS listens;\n"
        "DO $$ BEGIN PERFORM currval('s'); RAISE EXCEPTION 'currval survived'; "
        "EXCEPTION WHEN object_not_in_prerequisite_state THEN NULL; END $$;",
    )
    commands.migrate(target)
    assert query(pg_db, "SELECT prepared, cursors, listens FROM leftovers") == [(0, 0, 0)]
    assert [r[0] for r in _ledger_files(pg_db)] == [1, 2, 3, 4]


# -- 5 ---------------------------------------------------------------------------------------------


def test_5_dbmate_transaction_false_on_up_and_down(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id int);", "DROP TABLE t;")
    _file(
        mig_dir,
        "0002_index.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n"
        "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY t_id;\n",
    )
    _file(
        mig_dir,
        "0003_down_only.sql",
        "-- migrate:up\nCREATE INDEX t_plain ON t (id);\n"
        "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY t_plain;\n",
    )
    commands.migrate(target)
    assert query(pg_db, "SELECT relname FROM pg_class WHERE relname LIKE 't\\_%%' ORDER BY 1") == [
        ("t_id",),
        ("t_plain",),
    ]
    assert [r[:3] for r in ledger_rows(pg_db)] == [
        (1, "applied", "transaction"),
        (2, "applied", "no-transaction"),
        (3, "applied", "transaction"),
    ]
    commands.rollback(target, to=1)
    assert query(pg_db, "SELECT relname FROM pg_class WHERE relname LIKE 't\\_%%'") == []
    assert [r[0] for r in ledger_rows(pg_db)] == [1]


def test_5_empty_sections_are_reported_noops_and_the_marker_refuses_rollback(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.table(1, "a")
    _file(mig_dir, "0002_empty.sql", "-- migrate:up\n-- migrate:down\n-- nothing to undo\n")
    _file(mig_dir, "0003_final.sql", "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:irreversible drops data\n")
    progress = Recorder()
    commands.migrate(target, progress=progress)
    assert ("no-op-apply", "0002_empty") in progress.events
    assert [r[0] for r in ledger_rows(pg_db)] == [1, 2, 3]
    with pytest.raises(MigrationError, match=r"0003_final\.sql is marked '-- migrate:irreversible' \(line 3\)"):
        commands.rollback(target, to=1)
    assert table_exists(pg_db, "b")
    assert [r[0] for r in ledger_rows(pg_db)] == [1, 2, 3]
    _file(mig_dir, "0003_final.sql", "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n")
    commands.repair(target, version=3, reason="reviewed: b can go")
    rolled = Recorder()
    commands.rollback(target, to=1, progress=rolled)
    assert ("no-op-rollback", "0002_empty") in rolled.events
    assert not table_exists(pg_db, "b")
    assert table_exists(pg_db, "a")
    assert [r[0] for r in ledger_rows(pg_db)] == [1]


def test_5_a_broken_file_stops_migrate_there_and_blocks_no_read_only_command(
    pg_db: PgDatabase,
    mig_dir: MigrationsDir,
    target: MigrationContext,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_db.admin_password)
    mig_dir.table(1, "a")
    _file(mig_dir, "0002_broken.sql", "-- migrate:up\nCREATE TABLE b (id int);\nVACUUM a;\n")
    mig_dir.table(3, "c")
    assert main(cli_argv(pg_db, "status", mig_dir.path)[3:]) == 1
    out = capsys.readouterr().out
    assert "pending  0001_create_a.sql" in out
    assert "pending  0003_create_c.sql" in out
    assert "problem  0002_broken.sql:3: this statement cannot run inside a transaction" in out
    assert main(cli_argv(pg_db, "plan", mig_dir.path)[3:]) == 1
    out = capsys.readouterr().out
    assert "== 0001_create_a" in out
    assert "== 0003_create_c" in out
    assert main(cli_argv(pg_db, "validate", mig_dir.path)[3:]) == 1
    assert "0002_broken.sql:3" in capsys.readouterr().err
    assert main(cli_argv(pg_db, "migrate", mig_dir.path)[3:]) == 1
    captured = capsys.readouterr()
    assert "0001_create_a ... done" in captured.out
    assert "error: 0002_broken.sql:3: this statement cannot run inside a transaction" in captured.err
    assert table_exists(pg_db, "a")
    assert not table_exists(pg_db, "b")
    assert not table_exists(pg_db, "c")
    assert [r[0] for r in ledger_rows(pg_db)] == [1]


# -- 6 ---------------------------------------------------------------------------------------------


def test_6_versions_of_any_length_and_the_exact_file_name(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    _file(mig_dir, "000001_x.sql", "-- migrate:up\nCREATE TABLE x (id int);\n-- migrate:down\nDROP TABLE x;\n")
    _file(mig_dir, "20240101120000_y.sql", "-- migrate:up\nCREATE TABLE y (id int);\n")
    _file(mig_dir, "12345678901234567890_z.sql", "-- migrate:up\nCREATE TABLE z (id int);\n")
    commands.migrate(target)
    assert _ledger_files(pg_db) == [
        (1, "000001_x.sql", "applied"),
        (20240101120000, "20240101120000_y.sql", "applied"),
        (12345678901234567890, "12345678901234567890_z.sql", "applied"),  # above bigint's 9223372036854775807
    ]
    assert commands.status(target).applied[0].display_name == "000001_x.sql"
    for name in ("0008_x.SQL", "\u0660\u0660\u0660\u0668_x.sql"):
        path = _file(mig_dir, name, "-- migrate:up\nCREATE TABLE refused (id int);\n")
        with pytest.raises(MigrationError, match=r"fix: rename it to '0008_x\.sql'"):
            commands.migrate(target)
        path.unlink()
    assert not table_exists(pg_db, "refused")
    assert len(_ledger_files(pg_db)) == 3


def test_6_a_format_one_ledger_is_upgraded_in_place(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    first = mig_dir.table(1, "a")
    with pg_db.connect_admin(autocommit=True) as conn:
        conn.execute(
            "CREATE SCHEMA migrations_ledger;"
            "CREATE TABLE migrations_ledger.applied (version bigint PRIMARY KEY, name text NOT NULL, checksum text "
            "NOT NULL, status text NOT NULL, transaction_mode text NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
            "clock_timestamp(), duration_ms double precision, applied_by text NOT NULL, db_user text NOT NULL DEFAULT "
            "current_user, run_id text NOT NULL, statements_applied integer, statements_total integer, "
            "statement_hashes text[], last_error text);"
            "CREATE TABLE migrations_ledger.settings (key text PRIMARY KEY, value text NOT NULL, updated_at "
            "timestamptz NOT NULL DEFAULT clock_timestamp(), updated_by text NOT NULL DEFAULT current_user);"
            "CREATE TABLE migrations_ledger.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at "
            "timestamptz NOT NULL DEFAULT clock_timestamp(), action text NOT NULL, version bigint, name text, "
            "old_checksum text, new_checksum text, reason text, by_user text NOT NULL, db_user text NOT NULL "
            "DEFAULT current_user, run_id text NOT NULL);"
            "INSERT INTO migrations_ledger.settings VALUES ('ledger_format', '1');"
            "CREATE TABLE a (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text);"
        )
        conn.execute(
            "INSERT INTO migrations_ledger.applied (version, name, checksum, status, transaction_mode, applied_by, "
            "run_id) VALUES (1, 'create_a', %s, 'applied', 'transaction', 'old@host', 'old')",
            (source.checksum(first),),
        )
    assert commands.status(target).pending == ()  # read-only on format 1: nothing written
    _file(mig_dir, "12345678901234567890_z.sql", "-- migrate:up\nCREATE TABLE z (id int);\n")
    commands.migrate(target)
    assert _ledger_files(pg_db) == [
        (1, None, "applied"),
        (12345678901234567890, "12345678901234567890_z.sql", "applied"),
    ]
    assert query(pg_db, "SELECT value FROM migrations_ledger.settings WHERE key = 'ledger_format'") == [("2",)]


# -- 7 ---------------------------------------------------------------------------------------------


def test_7_a_2mb_file_of_32k_inserts_is_applied_whole(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    rows = "".join(
        f"INSERT INTO big (id, note) VALUES ({i}, 'ligne {i} é, assez longue pour 2 Mo');\n" for i in range(32000)
    )
    _file(mig_dir, "0001_big.sql", "-- migrate:up\nCREATE TABLE big (id int PRIMARY KEY, note text);\n" + rows)
    assert (mig_dir.path / "0001_big.sql").stat().st_size > 2_000_000
    started = time.perf_counter()
    commands.migrate(target)
    print(f"32k INSERTs: parse + apply {time.perf_counter() - started:.2f}s")  # the figure is in bench/
    assert query(pg_db, "SELECT count(*), max(id) FROM big") == [(32000, 31999)]
    assert _ledger_files(pg_db) == [(1, "0001_big.sql", "applied")]


# -- 8 ---------------------------------------------------------------------------------------------


def test_8_json_errors_are_objects_on_stdout(
    pg_db: PgDatabase, mig_dir: MigrationsDir, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_db.admin_password)
    mig_dir.write(1, "bad", "CREATE TABLE half (id int);\nINSERT INTO missing VALUES (1);")
    assert main(cli_argv(pg_db, "migrate", mig_dir.path, "--json")[3:]) == 1
    doc = json.loads(capsys.readouterr().out)
    error = doc["error"]
    assert (error["type"], error["file"], error["line"], error["sqlstate"]) == (
        "MigrationError",
        "0001_bad.sql",
        3,
        "42P01",
    )
    assert error["statement"] == "INSERT INTO missing VALUES (1)"
    assert error["exit_code"] == 1
    assert not table_exists(pg_db, "half")
    assert ledger_rows(pg_db) == []


def test_8_a_closed_pipe_ends_status_quietly(pg_db: PgDatabase, mig_dir: MigrationsDir) -> None:
    for v in range(1, 4):
        mig_dir.table(v, f"t{v}")
    proc = subprocess.Popen(
        cli_argv(pg_db, "status", mig_dir.path),
        env=cli_env(pg_db),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # `status | head` after head has exited
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert err == ""
    assert ledger_rows(pg_db) == []
    assert not lock_held(pg_db)


def test_8_a_failed_single_transaction_run_says_it_was_all_rolled_back(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, capsys: pytest.CaptureFixture[str]
) -> None:
    mig_dir.table(1, "a")
    mig_dir.table(2, "b")
    mig_dir.write(3, "bad", "SELECT 1/0;")
    progress = Recorder()
    with pytest.raises(MigrationError) as failed:
        commands.migrate(with_options(target, single_transaction=True), progress=progress)
    assert "the whole --single-transaction run was rolled back: none of its 3 migration(s) is applied" in str(
        failed.value
    )
    assert not [e for e in progress.events if e[0].startswith("done")]
    assert [e[0] for e in progress.events if e[1] != "0003_bad"] == ["start-apply", "staged-apply"] * 2
    assert not table_exists(pg_db, "a")
    assert ledger_rows(pg_db) == []
    mig_dir.write(3, "bad", "SELECT 1;")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("PGPASSWORD", pg_db.admin_password)
    try:
        assert main(cli_argv(pg_db, "migrate", mig_dir.path, "--single-transaction")[3:]) == 0
    finally:
        monkey.undo()
    out = capsys.readouterr().out
    assert "0001_create_a ... staged, commits with the whole run" in out
    assert "0003_bad ... done" in out
    assert "3 migration(s) applied in one transaction" in out
    assert [r[:3] for r in ledger_rows(pg_db)] == [(v, "applied", "single-transaction") for v in (1, 2, 3)]
