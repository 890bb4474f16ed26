"""Schema drift on a real PostgreSQL 16: the ledger against the files, and the catalog snapshot
recorded after a migration run against the catalog now."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.drift.cli import run_drift, schema_drift
from infra.migrations import catalog, commands
from infra.migrations.connection import ConnectionSpec
from tests.fixtures.pg import PgDatabase

FILES = {
    "0001_accounts.sql": """-- migrate:up
CREATE SCHEMA app;
CREATE TABLE app.accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL);
CREATE INDEX accounts_email_idx ON app.accounts (email);
-- migrate:down
DROP SCHEMA app CASCADE;
""",
    "0002_notes.sql": """-- migrate:up
CREATE TABLE app.notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL);
-- migrate:down
DROP TABLE app.notes;
""",
}


def _spec(db: PgDatabase) -> ConnectionSpec:
    params = db.cluster.tcp_params(db.admin_user, db.name)
    return ConnectionSpec(
        host=params["host"],
        hostaddr=params["hostaddr"],
        port=int(params["port"]),
        dbname=db.name,
        user=db.admin_user,
        sslmode="verify-full",
        sslrootcert=params["sslrootcert"],
        password=lambda: db.admin_password,
    )


@pytest.fixture
def migrated(pg_db: PgDatabase, tmp_path: Path) -> tuple[PgDatabase, Path]:
    directory = tmp_path / "migrations"
    directory.mkdir()
    for name, text in FILES.items():
        (directory / name).write_text(text)
    commands.migrate(commands.MigrationContext(connection=_spec(pg_db), migrations_dir=directory))
    return pg_db, directory


def _opener(db: PgDatabase) -> Callable[[str], AbstractContextManager[psycopg.Connection[Any]]]:
    @contextmanager
    def open_(run_id: str) -> Iterator[psycopg.Connection[Any]]:
        with db.connect_admin(autocommit=True) as conn:
            yield conn

    return open_


def test_a_migration_run_records_the_catalog_and_a_fresh_check_is_clean(migrated: tuple[PgDatabase, Path]) -> None:
    db, directory = migrated
    with db.connect_admin(autocommit=True) as conn:
        stored = catalog.stored(conn)
        assert stored is not None
        assert "app.accounts" in stored["relation"]
        assert "app.accounts.email" in stored["column"]
        assert schema_drift(conn, directory) == []
    report = run_drift("local", migrations_dir=directory, check_infra=False, database=_opener(db))
    assert report.checks == ("schema",)
    assert not report.drifted


def test_hand_made_changes_are_named(migrated: tuple[PgDatabase, Path]) -> None:
    db, directory = migrated
    with db.connect_admin(autocommit=True) as conn:
        conn.execute("ALTER TABLE app.accounts ADD COLUMN nickname text")
        conn.execute("DROP INDEX app.accounts_email_idx")
        conn.execute("ALTER TABLE app.notes ALTER COLUMN body DROP NOT NULL")
        items = schema_drift(conn, directory)
    found = {(i.check, i.subject, i.detail) for i in items}
    assert ("catalog", "column app.accounts.nickname", "added outside the migrations") in found
    assert ("catalog", "index app.accounts_email_idx", "removed outside the migrations") in found
    assert ("catalog", "column app.notes.body", "changed outside the migrations") in found
    assert len(items) == 3


def test_pending_and_changed_files_are_ledger_drift(migrated: tuple[PgDatabase, Path]) -> None:
    db, directory = migrated
    (directory / "0003_tags.sql").write_text("-- migrate:up\nCREATE TABLE app.tags (name text PRIMARY KEY);\n")
    first = directory / "0001_accounts.sql"
    first.write_text(first.read_text().replace("NOT NULL);", "NOT NULL, extra int);"))
    with db.connect_admin(autocommit=True) as conn:
        items = schema_drift(conn, directory)
    by_file = {i.subject: i.detail for i in items if i.check == "ledger"}
    assert by_file["0003_tags.sql"] == "pending: not applied"
    assert by_file["0001_accounts.sql"].startswith("changed")


def test_a_database_never_migrated_by_us_reports_the_missing_snapshot(pg_db: PgDatabase, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path, ignore_errors=True)
    tmp_path.mkdir()
    with pg_db.connect_admin(autocommit=True) as conn:
        items = schema_drift(conn, tmp_path)
    assert [(i.check, i.detail.split(":")[0]) for i in items] == [("catalog", "no catalog snapshot in the ledger")]


def test_drift_local_through_the_demo_jump_host(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`drift --local` after `local up`: clean (exit 0), then a hand-made column (exit 2)."""
    import json

    from infra.cli import main
    from infra.local.demo import DemoState, LocalDemo

    root = demo_dir
    assert main(["local", "up", "--dir", str(root), "--no-seed"]) == 0
    try:
        capsys.readouterr()
        assert main(["drift", "--local", "--dir", str(root)]) == 0
        assert capsys.readouterr().out.rstrip().endswith("no drift")

        state = DemoState.load(root)
        assert state is not None
        pg = LocalDemo(root).postgres(state.pg_port)
        with psycopg.connect(pg.superuser_conninfo(state.db_name), autocommit=True) as conn:
            conn.execute("ALTER TABLE app.tenants ADD COLUMN hacked text")
        assert main(["drift", "--local", "--dir", str(root), "--json"]) == 2
        report = json.loads(capsys.readouterr().out)
        assert report["drifted"] is True
        assert [i["subject"] for i in report["items"]] == ["column app.tenants.hacked"]
    finally:
        assert main(["local", "down", "--dir", str(root)]) == 0
