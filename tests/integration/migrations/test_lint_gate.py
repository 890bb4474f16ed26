"""The production lint gate: only rules that take dangerous locks or rewrite tables block, only for
pending files, and a refusal writes nothing (not even the ledger schema)."""

from __future__ import annotations

import dataclasses

import pytest

from infra.enums import Environment
from infra.errors import LintBlocked
from infra.migrations import commands
from infra.migrations.commands import MigrationContext
from tests.fixtures.migrations import MigrationsDir, ledger_rows, query, table_exists
from tests.fixtures.pg import PgDatabase


def _production(target: MigrationContext) -> MigrationContext:
    return dataclasses.replace(target, environment=Environment.PRODUCTION, stack="prod")


def test_a_refusal_on_a_new_production_database_writes_nothing(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint PRIMARY KEY, v text);")
    mig_dir.write(2, "t_v", "CREATE INDEX t_v ON t (v);")
    # 0001 then 0002 in one run: the index is on a table of an earlier file, squawk flags it
    with pytest.raises(LintBlocked, match=r"0002_t_v\.sql:2:1: require-concurrent-index-creation.*blocks production"):
        commands.migrate(_production(target))
    assert query(pg_db, "SELECT to_regnamespace('migrations_ledger') IS NULL") == [(True,)]
    assert not table_exists(pg_db, "t")


def test_style_findings_do_not_block_production_but_lock_findings_do(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    prod = _production(target)
    # prefer-bigint-over-int, prefer-text-field, ban-char-field: style; nothing here locks a table in use
    mig_dir.write(1, "t", "CREATE TABLE t (id int PRIMARY KEY, code char(3), name varchar(20));")
    assert [s.version for s in commands.migrate(prod).applied] == [1]
    plan_findings = {f.rule for f in commands.lint(mig_dir.path).findings}
    assert {"prefer-bigint-over-int", "ban-char-field"} <= plan_findings
    # changing a column's type rewrites the table: blocked, and the ledger is left as it was
    mig_dir.write(2, "widen", "ALTER TABLE t ALTER COLUMN id TYPE bigint;")
    with pytest.raises(LintBlocked, match=r"changing-column-type.*rewrites the table"):
        commands.migrate(prod)
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    assert commands.plan(prod).blocking[0].rule == "changing-column-type"


def test_a_baselined_finding_does_not_block(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext
) -> None:
    mig_dir.write(1, "t", "CREATE TABLE t (id bigint PRIMARY KEY, v text);")
    commands.migrate(target)
    mig_dir.write(2, "t_v", "CREATE INDEX t_v ON t (v);")
    commands.lint(mig_dir.path, write_baseline=True)
    assert [s.version for s in commands.migrate(_production(target)).applied] == [2]
    assert query(pg_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 't_v'") == [(1,)]
