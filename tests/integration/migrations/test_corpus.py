"""Real histories (tests/fixtures/corpus.py) through ``python -m infra``, compared with psql's result.

For each history: psql applies the files to one fresh database, ``python -m infra migrate`` to
another, dbmate (the same files, with the empty down section it insists on) to a third; the dumps
(schema and data, ledgers aside) must be identical and our ledger must name every file exactly
with its checksum. None of these histories ships a down migration, so rolling
back is refused before anything changes, and a second ``migrate`` finds nothing to do.
"""

from __future__ import annotations

import difflib
import subprocess
from pathlib import Path

import pytest

from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from tests.fixtures.corpus import (
    HISTORIES,
    PgTools,
    Upstream,
    dump,
    layout,
    require_history,
    run_dbmate,
    run_psql,
    sha256,
)
from tests.fixtures.migrations import cli_argv, cli_env, spec_for
from tests.fixtures.pg import PgDatabase

# (files in the chain, of which non-transactional, of which with a timeout SET turned into a directive):
# a loader or a layout that silently lost or changed a file fails here
EXPECTED = {
    "procrastinate": (38, 0, 0),
    "graphile-worker": (21, 0, 0),  # the runner's bootstrap + 000001..000020
    "matrix-synapse": (127, 0, 0),  # schema_version + 3 full schemas (72) + 123 deltas 73..94
    "litellm": (220, 5, 4),  # 5 single-statement CREATE INDEX CONCURRENTLY; 4 open with SET LOCAL lock_timeout
    "zabbix": (4, 0, 0),  # schema, images, data (its CRLF literals stored as psql stores them), double
    "kamailio": (44, 0, 0),  # standard-create + one file per module
}


def same(actual: list[str], expected: list[str], what: str) -> None:
    if actual != expected:
        diff = "\n".join(list(difflib.unified_diff(expected, actual, "psql", what, lineterm=""))[:80])
        pytest.fail(f"{what}: the dumps differ\n{diff}", pytrace=False)


def infra(db: PgDatabase, verb: str, migrations: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv(db, verb, migrations, *extra), env=cli_env(db), capture_output=True, text=True, check=False
    )


def ledger(db: PgDatabase, migrations: Path) -> list[tuple[str | None, str, str, str]]:
    result = commands.status(MigrationContext(connection=spec_for(db), migrations_dir=migrations))
    assert result.pending == ()
    assert result.problems == ()
    return [(r.filename, r.checksum, r.status, r.transaction_mode) for r in result.applied]


def expected_ledger(paths: list[Path], files: list[Upstream]) -> list[tuple[str | None, str, str, str]]:
    return [
        (p.name, sha256(p), "applied", "transaction" if f.transactional else "no-transaction")
        for p, f in zip(paths, files, strict=True)
    ]


@pytest.mark.parametrize("name", list(HISTORIES))
def test_history_applies_as_psql_does(
    name: str,
    pg_db: PgDatabase,
    oracle_db: PgDatabase,
    dbmate_db: PgDatabase,
    pg_tools: PgTools,
    dbmate: Path,
    tmp_path: Path,
) -> None:
    files = require_history(name)
    migrations = tmp_path / "migrations"
    paths = layout(files, migrations)
    directives = sum("\n-- migrate:lock-timeout " in p.read_text() for p in paths)
    assert (len(files), sum(not f.transactional for f in files), directives) == EXPECTED[name]

    run_psql(pg_tools, oracle_db, paths, [f.transactional for f in files])
    expected = dump(pg_tools, oracle_db, HISTORIES[name].volatile)
    assert len(expected) > len(files)  # the oracle built something

    dbmate_dir = tmp_path / "dbmate"
    layout(files, dbmate_dir, down="")
    versions = run_dbmate(dbmate, dbmate_db, dbmate_dir)
    assert versions == [p.name.split("_", 1)[0] for p in paths]
    same(dump(pg_tools, dbmate_db, HISTORIES[name].volatile), expected, f"{name} applied by dbmate")

    applied = infra(pg_db, "migrate", migrations)
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    same(dump(pg_tools, pg_db, HISTORIES[name].volatile), expected, f"{name} after migrate")
    assert ledger(pg_db, migrations) == expected_ledger(paths, files)

    # no down sections: the last file cannot be rolled back; refused before any SQL, nothing changes
    below_last = paths[-2].name.split("_", 1)[0]
    refused = infra(pg_db, "rollback", migrations, "--to", below_last)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert paths[-1].name in refused.stderr
    same(dump(pg_tools, pg_db, HISTORIES[name].volatile), expected, f"{name} after the refused rollback")
    assert ledger(pg_db, migrations) == expected_ledger(paths, files)

    # re-apply: nothing pending, nothing run, still identical
    again = infra(pg_db, "migrate", migrations)
    assert again.returncode == 0, again.stderr[-2000:]
    same(dump(pg_tools, pg_db, HISTORIES[name].volatile), expected, f"{name} after a second migrate")
    assert ledger(pg_db, migrations) == expected_ledger(paths, files)
