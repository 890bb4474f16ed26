"""``restore-drill --local`` on real PostgreSQL 16: the demo's base backup and archived WAL, recovered
into a second cluster to a point in time, and verified there.

One history is built once for the module: ``local up`` migrating to 0006 (run 1), a moment T1, a
second ``local up`` applying 0007 and the seed (run 2), a hand-made ``ALTER TABLE`` on the source, a
moment T2, and the WAL archived.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from infra.cli import main
from infra.drift.expected import ExpectedCatalogs
from infra.drift.schema import schema_drift
from infra.local import backup
from infra.local.demo import ADMIN_USER, DB_NAME, TLS_NAME, LocalDemo
from infra.local.pg import LocalPostgres
from infra.migrations.commands import MigrationContext, migrate
from infra.migrations.connection import ConnectionSpec
from infra.paths import MIGRATIONS_DIR
from infra.postdeploy.run import Route
from infra.restore.local import COPY_DIR, remove_copy, run_local_drill

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class History:
    demo: LocalDemo
    between_runs: dt.datetime  # after run 1 (0001-0006) committed, before run 2 (0007 + seed)
    after_change: dt.datetime  # after the hand-made ALTER TABLE on the source


def _up_to_0006(spec: ConnectionSpec) -> Sequence[str]:
    return tuple(f"{s.version:04d}_{s.name}" for s in migrate(MigrationContext(spec, MIGRATIONS_DIR), to=6).applied)


def _clock(conn: psycopg.Connection[tuple[object, ...]]) -> dt.datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    assert isinstance(row[0], dt.datetime)
    return row[0]


@pytest.fixture(scope="module")
def history(module_demo_dir: Path) -> Iterator[History]:
    demo = LocalDemo(module_demo_dir)
    try:
        first = demo.up(seed=False, migrate=_up_to_0006)
        assert first.migrations_applied == tuple(f"{p.stem}" for p in sorted(MIGRATIONS_DIR.glob("000[1-6]_*.sql")))
        state = demo.state()
        assert state is not None
        source = demo.postgres(state.pg_port)
        with psycopg.connect(source.superuser_conninfo(DB_NAME), autocommit=True) as conn:
            between = _clock(conn)
        second = demo.up(seed=True)
        later = tuple(p.stem for p in sorted(MIGRATIONS_DIR.glob("*.sql")) if int(p.stem[:4]) > 6)
        assert second.migrations_applied == later
        with psycopg.connect(source.superuser_conninfo(DB_NAME), autocommit=True) as conn:
            conn.execute("SET ROLE app_owner")
            conn.execute("ALTER TABLE app.users ADD COLUMN nickname text")  # by hand, outside the migrations
            conn.execute("RESET ROLE")
            after = _clock(conn)
        backup.switch_wal(source)  # ship the WAL now instead of waiting for archive_timeout
        yield History(demo, between, after)
    finally:
        remove_copy(demo.root)
        demo.down()


def _copy_route(root: Path) -> tuple[LocalPostgres, Route]:
    """The kept copy (its port is in the configuration the drill wrote) and the route to it."""
    conf = (root / COPY_DIR / "data" / "postgresql.auto.conf").read_text().splitlines()
    port = int(next(line for line in conf if line.startswith("port ")).split("=")[1])
    copy = LocalPostgres(root / COPY_DIR, port=port)
    return copy, Route(TLS_NAME, port, DB_NAME, copy.tls.ca_cert)


def test_a_restore_between_two_migrations_holds_exactly_the_first_run(history: History) -> None:
    report = run_local_drill(history.demo.root, history.between_runs, keep=True)
    try:
        copy, _route = _copy_route(history.demo.root)
        with psycopg.connect(copy.superuser_conninfo(DB_NAME)) as conn:
            versions = [r[0] for r in conn.execute("SELECT version FROM migrations_ledger.applied ORDER BY 1")]
            tenants = conn.execute("SELECT count(*) FROM app.tenants").fetchone()
            in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    finally:
        remove_copy(history.demo.root)
    assert versions == [1, 2, 3, 4, 5, 6]  # 0007 came in run 2, after the restore time
    assert tenants == (0,)  # the seed came in run 2 as well
    assert in_recovery == (False,)  # promoted: a usable database, not a standby
    assert report.ok, [c for c in report.checks if not c.ok]
    checks = {c.name: c for c in report.checks}
    assert "6 migration(s)" in checks["ledger"].detail
    assert checks["catalog"].ok
    counts = {r.table: (r.copy, r.source) for r in report.row_counts}
    assert counts["tenants"] == (0, 2)  # the source has the seed now; the copy is the past
    assert report.restored_to == history.between_runs
    assert report.earliest is not None
    assert report.earliest < history.between_runs <= report.newest
    assert report.rto_seconds > 0
    assert not (history.demo.root / COPY_DIR).exists()


def test_a_hand_made_change_before_the_restore_time_shows_as_drift_on_the_copy(history: History) -> None:
    report = run_local_drill(history.demo.root, history.after_change, keep=True)
    try:
        _copy, route = _copy_route(history.demo.root)
        migrator = history.demo.credentials().user("migrator")
        with route.params(migrator).connect(autocommit=True) as conn:
            items, _source = schema_drift(conn, MIGRATIONS_DIR, ExpectedCatalogs(ADMIN_USER, cache_dir=None))
    finally:
        remove_copy(history.demo.root)
    assert [(i.check, i.object, i.attribute) for i in items] == [("catalog", "column app.users.nickname", "(exists)")]
    checks = {c.name: c for c in report.checks}
    assert checks["ledger"].ok
    assert f"{len(list(MIGRATIONS_DIR.glob('*.sql')))} migration(s)" in checks["ledger"].detail
    assert not checks["catalog"].ok
    assert "column app.users.nickname added" in checks["catalog"].detail
    assert checks["row-counts"].ok  # the data restored fine: only the schema differs from its record
    assert not report.ok


def test_the_command_reports_rpo_rto_and_exits_1_when_a_check_fails(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["restore-drill", "--local", "--dir", str(history.demo.root), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1  # latest includes the hand-made change: the catalog check fails
    assert doc["requested"] == "latest"
    assert doc["rpo_seconds"] >= 0
    assert doc["rto_seconds"] > 0
    assert doc["window"]["newest"] == doc["restored_to"]
    assert [c["name"] for c in doc["checks"] if not c["ok"]] == ["catalog"]
    assert doc["cleanup"] == "removed"
    assert not (history.demo.root / COPY_DIR).exists()


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("2000-01-01T00:00:00Z", "is outside the restore window"),
        ("2999-01-01T00:00:00Z", "is outside the restore window"),
        ("2026-11-30 12:00", "has no UTC offset"),
        ("yesterday", "is not a time"),
    ],
)
def test_a_time_the_backups_cannot_give_is_one_line_and_creates_nothing(
    history: History, capsys: pytest.CaptureFixture[str], to: str, message: str
) -> None:
    code = main(["restore-drill", "--local", "--dir", str(history.demo.root), "--to", to])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert not (history.demo.root / COPY_DIR).exists()
