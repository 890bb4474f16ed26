"""baseline --from-ledger for diesel and Flyway (dbmate and golang-migrate run on real histories in
test_import_histories.py): small hand-written histories whose ledgers are written as the tools write
them, then adopted; Flyway's failed row refused; the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main
from infra.errors import SafetyError
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from infra.migrations.importers import import_history
from infra.migrations.scratch import ScratchServer
from tests.fixtures.migrations import cli_argv, cli_env, ledger_rows, query
from tests.fixtures.pg import PgDatabase

STEPS = [
    "CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)",
    "ALTER TABLE accounts ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()",
    "CREATE TABLE sessions (id bigint PRIMARY KEY, account_id bigint REFERENCES accounts)",
]


def _run(db: PgDatabase, *statements: str) -> None:
    with db.connect_admin(autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.encode())


def test_diesel_ledger_is_adopted_then_migrated_forward(
    pg_db: PgDatabase, target: MigrationContext, scratch_server: ScratchServer, tmp_path: Path
) -> None:
    src = tmp_path / "diesel"
    for i, step in enumerate(STEPS, start=1):
        (src / f"2024-01-0{i}-000000_step_{i}").mkdir(parents=True)
        (src / f"2024-01-0{i}-000000_step_{i}" / "up.sql").write_text(step + ";\n")
        (src / f"2024-01-0{i}-000000_step_{i}" / "down.sql").write_text("SELECT 1;\n")
    import_history("diesel", src, tmp_path / "ours")
    # what diesel leaves after running the first two
    _run(
        pg_db,
        STEPS[0],
        STEPS[1],
        "CREATE TABLE __diesel_schema_migrations (version varchar(50) PRIMARY KEY, run_on timestamp NOT NULL "
        "DEFAULT CURRENT_TIMESTAMP)",
        "INSERT INTO __diesel_schema_migrations (version) VALUES ('20240101000000'), ('20240102000000')",
    )
    ours = MigrationContext(target.connection, tmp_path / "ours", options=target.options)
    result = commands.baseline(ours, from_ledger="diesel", scratch=scratch_server)
    assert result.versions == (20240101000000, 20240102000000)
    assert [s.version for s in commands.migrate(ours).applied] == [20240103000000]
    assert [r[1:3] for r in ledger_rows(pg_db)] == [("applied", "baseline")] * 2 + [("applied", "transaction")]
    assert query(pg_db, "SELECT to_regclass('public.sessions') IS NOT NULL") == [(True,)]


def _flyway_ledger(db: PgDatabase, *rows: str) -> None:
    _run(
        db,
        "CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), "
        "description varchar(200) NOT NULL, type varchar(20) NOT NULL, script varchar(1000) NOT NULL, "
        "checksum int, installed_by varchar(100) NOT NULL, installed_on timestamp NOT NULL DEFAULT now(), "
        "execution_time int NOT NULL, success boolean NOT NULL)",
        *(
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script, installed_by, "
            f"execution_time, success) VALUES {row}"
            for row in rows
        ),
    )


def test_flyway_ledger_with_a_baseline_row_is_adopted_and_a_failed_row_refused(
    pg_db: PgDatabase, target: MigrationContext, scratch_server: ScratchServer, tmp_path: Path
) -> None:
    src = tmp_path / "flyway"
    src.mkdir()
    for i, step in enumerate(STEPS, start=1):
        (src / f"V1_{i}__step_{i}.sql").write_text(step + ";\n")
    import_history("flyway", src, tmp_path / "ours", renumber=True)
    ours = MigrationContext(target.connection, tmp_path / "ours", options=target.options)
    # Flyway adopted this database at 1.1 (a BASELINE row) and then ran V1_2
    _run(pg_db, STEPS[0], STEPS[1])
    _flyway_ledger(
        pg_db,
        "(1, '1.1', '<< Flyway Baseline >>', 'BASELINE', '<< Flyway Baseline >>', 'me', 0, true)",
        "(2, '1.2', 'step 2', 'SQL', 'V1_2__step_2.sql', 'me', 5, false)",
    )
    with pytest.raises(SafetyError, match=r"flyway ledger public\.flyway_schema_history records a failed run of V1_2"):
        commands.baseline(ours, from_ledger="flyway", scratch=scratch_server)
    _run(pg_db, "UPDATE flyway_schema_history SET success = true")
    assert commands.baseline(ours, from_ledger="flyway", scratch=scratch_server).versions == (1, 2)
    assert [s.version for s in commands.migrate(ours).applied] == [3]


def test_baseline_from_ledger_cli(pg_db: PgDatabase, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "dbmate"
    src.mkdir()
    (src / "20240101000000_accounts.sql").write_text(f"-- migrate:up\n{STEPS[0]};\n-- migrate:down\n")
    import_history("dbmate", src, tmp_path / "ours")
    _run(
        pg_db,
        STEPS[0],
        "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY)",
        "INSERT INTO schema_migrations VALUES ('20240101000000')",
    )
    argv = cli_argv(pg_db, "baseline", tmp_path / "ours", "--from-ledger", "dbmate")[3:]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", cli_env(pg_db)["PGPASSWORD"])
        assert main(argv) == 0
        assert "baseline: 1 migration(s) recorded as applied, none run" in capsys.readouterr().out
        assert main([*argv[:-2], "--version", "20240101000000", "--from-ledger", "dbmate"]) == 64  # one of the two
    assert [r[:3] for r in ledger_rows(pg_db)] == [(20240101000000, "applied", "baseline")]
