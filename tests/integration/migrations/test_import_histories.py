"""Real histories (installed from PyPI at test time) through the importers, the engine and dbmate on
PostgreSQL 16: a round trip import -> migrate equals dbmate's own result, and databases that another
tool migrated are adopted from its ledger and migrated forward."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from infra.errors import MigrationError, SafetyError
from infra.migrations import catalog, commands
from infra.migrations.commands import MigrationContext
from infra.migrations.importers import ImportRefused, import_history
from infra.migrations.scratch import ScratchServer
from tests.fixtures.corpora import litellm_as_dbmate, procrastinate_as, procrastinate_files
from tests.fixtures.migrations import ledger_rows, query, spec_for
from tests.fixtures.pg import ADMIN_USER, AdminCluster, PgDatabase

# The five litellm migrations that are a lone CREATE INDEX CONCURRENTLY (the research notes name them)
LITELLM_CONCURRENT = {
    "2026041512000000_health_check_latest_per_model_index",
    "2026100300000000_add_managed_file_flat_ids_gin_index",
    "2026100523000000_lens_trace_findings_indexes",
    "2026100523010000_lens_current_findings_index",
    "2026100800010000_lens_due_at_index",
}


@pytest.fixture
def databases(pg_cluster: AdminCluster) -> Iterator[Callable[[], PgDatabase]]:
    """More fresh databases owned by the managed-style admin, dropped after the test."""
    made: list[str] = []

    def make() -> PgDatabase:
        name = f"t_{secrets.token_hex(6)}"
        with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ADMIN_USER))
            )
        made.append(name)
        return PgDatabase(pg_cluster, name, ADMIN_USER, pg_cluster.admin_password)

    yield make
    with psycopg.connect(pg_cluster.superuser_conninfo(), autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _context(db: PgDatabase, migrations: Path) -> MigrationContext:
    return MigrationContext(connection=spec_for(db), migrations_dir=migrations)


def _dbmate(binary: Path, db: PgDatabase, migrations: Path) -> None:
    params = db.cluster.tcp_params(db.admin_user, db.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["PGPASSWORD"] = db.admin_password  # lib/pq reads it; never in argv
    env["DATABASE_URL"] = (
        f"postgres://{db.admin_user}@{params['hostaddr']}:{params['port']}/{db.name}"
        f"?sslmode=verify-ca&sslrootcert={params['sslrootcert']}"
    )
    result = subprocess.run(
        [str(binary), "--migrations-dir", str(migrations), "--no-dump-schema", "up"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def _schema(db: PgDatabase, *leave_out: str) -> dict[str, dict[str, dict[str, object]]]:
    """The catalog of the public schema, without the named relations (a tool's ledger) and their parts."""
    with db.connect_admin() as conn:
        found = catalog.introspect(conn, ("public",))
    drop = tuple(f"public.{name}" for name in leave_out)
    return {
        kind: {k: dict(v) for k, v in items.items() if not k.startswith(drop)} for kind, items in found.objects.items()
    }


def test_litellm_round_trip_with_dbmate_then_adoption_from_its_ledger(
    corpora: Callable[[str], Path],
    dbmate_binary: Path,
    databases: Callable[[], PgDatabase],
    scratch_server: ScratchServer,
    tmp_path: Path,
) -> None:
    # litellm's own timestamps: ten of them are shared by two migrations, which dbmate cannot tell apart
    litellm_as_dbmate(corpora("litellm"), tmp_path / "as-is", unique=False)
    with pytest.raises(
        ImportRefused,
        match=r"20260305000000_add_rate_limits_to_agents\.sql: version 20260305000000 is also "
        r"20260305000000_add_agent_headers\.sql; .* fix: give one of them a new version",
    ):
        import_history("dbmate", tmp_path / "as-is", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    # renamed as the fix says (a counter after each timestamp, Prisma's order kept); one migration has
    # an 8-digit stamp (20260108_...) that dbmate sorts after 20260107111013 as a string but that is
    # the smaller number: refused, and --renumber keeps dbmate's order
    layout = tmp_path / "dbmate"
    names = litellm_as_dbmate(corpora("litellm"), layout)
    assert len(names) == 220
    with pytest.raises(ImportRefused, match=r"before 2026010800_add_user_email_lower_idx\.sql .* fix: --renumber"):
        import_history("dbmate", layout, tmp_path / "refused")
    imported = import_history("dbmate", layout, tmp_path / "ours", renumber=True)
    assert imported.files[0] == "0001_baseline.sql"
    assert [m.sources[0] for m in imported.mapping.migrations] == names
    outside = {m.sources[0].removesuffix(".sql") for m in imported.mapping.migrations if not m.up_transaction}
    assert outside == LITELLM_CONCURRENT

    # dbmate applies the history to one database, the engine the imported files to another: same schema
    by_dbmate, by_us = databases(), databases()
    _dbmate(dbmate_binary, by_dbmate, layout)
    result = commands.migrate(_context(by_us, tmp_path / "ours"))
    assert len(result.applied) == 220
    assert _schema(by_us) == _schema(by_dbmate, "schema_migrations")
    modes = [r[2] for r in ledger_rows(by_us)]
    assert modes.count("no-transaction") == 5
    assert modes.count("transaction") == 215

    # a database dbmate took to migration 150 is adopted from dbmate's ledger, then migrated forward
    partial_layout = tmp_path / "dbmate-150"
    litellm_as_dbmate(corpora("litellm"), partial_layout, limit=150)
    adopted = databases()
    _dbmate(dbmate_binary, adopted, partial_layout)
    ours = _context(adopted, tmp_path / "ours")
    baseline = commands.baseline(ours, from_ledger="dbmate", scratch=scratch_server)
    assert len(baseline.versions) == 150
    assert [r[2] for r in ledger_rows(adopted)] == ["baseline"] * 150
    (tmp_path / "ours" / "0221_forward.sql").write_text(
        '-- migrate:up\nALTER TABLE "LiteLLM_SpendLogs" ADD COLUMN adopted_by text;\n'
        '-- migrate:down\nALTER TABLE "LiteLLM_SpendLogs" DROP COLUMN adopted_by;\n'
    )
    assert len(commands.migrate(ours).applied) == 71
    assert query(adopted, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'adopted_by'") == [(1,)]
    commands.rollback(ours, to=220)
    assert _schema(adopted, "schema_migrations") == _schema(by_us)


def _apply_like_golang_migrate(db: PgDatabase, files: list[Path], *, dirty_at: int | None = None) -> None:
    """What golang-migrate's PostgreSQL driver does: each file as one query, then its one-row ledger."""
    with db.connect_admin(autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)")
        for number, path in enumerate(files, start=1):
            conn.execute(path.read_bytes())
            conn.execute("TRUNCATE schema_migrations")
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (number, number == dirty_at))


def test_a_golang_migrate_database_is_adopted_migrated_forward_and_a_dirty_one_refused(
    corpora: Callable[[str], Path],
    databases: Callable[[], PgDatabase],
    scratch_server: ScratchServer,
    tmp_path: Path,
) -> None:
    files = procrastinate_files(corpora("procrastinate"))
    procrastinate_as("golang-migrate", corpora("procrastinate"), tmp_path / "gm")
    import_history("golang-migrate", tmp_path / "gm", tmp_path / "ours")
    reference = databases()
    commands.migrate(_context(reference, tmp_path / "ours"))

    adopted = databases()
    _apply_like_golang_migrate(adopted, files[:20])
    ours = _context(adopted, tmp_path / "ours")
    assert commands.baseline(ours, from_ledger="golang-migrate", scratch=scratch_server).versions == tuple(range(1, 21))
    assert len(commands.migrate(ours).applied) == 18
    assert _schema(adopted, "schema_migrations") == _schema(reference)

    # dirty: a migration failed half-way; nothing is recorded, not even our ledger's schema
    dirty = databases()
    _apply_like_golang_migrate(dirty, files[:5], dirty_at=5)
    with pytest.raises(SafetyError, match=r"golang-migrate ledger public\.schema_migrations is dirty at version 5"):
        commands.baseline(_context(dirty, tmp_path / "ours"), from_ledger="golang-migrate", scratch=scratch_server)
    assert query(dirty, "SELECT to_regnamespace('migrations_ledger') IS NULL") == [(True,)]

    # a ledger that says 5 over a schema that is not what files 1..5 make: the catalog check refuses
    drifted = databases()
    _apply_like_golang_migrate(drifted, files[:5])
    with drifted.connect_admin(autocommit=True) as conn:
        conn.execute("ALTER TABLE procrastinate_jobs ADD COLUMN added_by_hand text")
    with pytest.raises(SafetyError, match=r"column public\.procrastinate_jobs\.added_by_hand added"):
        commands.baseline(_context(drifted, tmp_path / "ours"), from_ledger="golang-migrate", scratch=scratch_server)
    assert query(drifted, "SELECT to_regnamespace('migrations_ledger') IS NULL") == [(True,)]

    # a ledger version no imported file stands for
    with drifted.connect_admin(autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET version = 99")
    with pytest.raises(MigrationError, match=r"records version 99, which no imported file stands for"):
        commands.baseline(_context(drifted, tmp_path / "ours"), from_ledger="golang-migrate", scratch=scratch_server)
