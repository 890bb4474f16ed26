"""``plan --measure``: the locks PostgreSQL 16 takes (pg_locks on a scratch server) for the kinds of
statement the parse-tree reading used to get wrong, and the live database left untouched."""

from __future__ import annotations

import pytest

from infra.cli import main
from infra.migrations import commands
from infra.migrations.commands import MigrationContext, PlanResult
from infra.migrations.locks import LockMode
from infra.migrations.scratch import ScratchServer
from tests.fixtures.migrations import MigrationsDir, cli_argv, cli_env, ledger_rows, query
from tests.fixtures.pg import PgDatabase

AE, SRE, SUE = LockMode.ACCESS_EXCLUSIVE, LockMode.SHARE_ROW_EXCLUSIVE, LockMode.SHARE_UPDATE_EXCLUSIVE
RE, RS, EX = LockMode.ROW_EXCLUSIVE, LockMode.ROW_SHARE, LockMode.EXCLUSIVE

SCHEMA = """
CREATE TYPE mood AS ENUM ('ok', 'bad');
CREATE TABLE b (id bigint PRIMARY KEY);
CREATE TABLE a (id bigint PRIMARY KEY, v text, n integer, m mood);
CREATE TABLE c (id bigint PRIMARY KEY, b_id bigint, CONSTRAINT c_positive CHECK (id > 0) NOT VALID);
ALTER TABLE c ADD CONSTRAINT c_b_fk FOREIGN KEY (b_id) REFERENCES b NOT VALID;
CREATE TABLE p (k int, v text) PARTITION BY LIST (k);
CREATE TABLE p2 (k int, v text);
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE INDEX a_n ON a (n);
INSERT INTO b VALUES (1);
INSERT INTO a SELECT g, 'v' || g, g, 'ok' FROM generate_series(1, 100) g;
"""

# (file slug, statement, transactional, what PostgreSQL 16 locks by the manual (13.3) and tablecmds.c,
#  tables it rewrites)
KINDS: list[tuple[str, str, bool, dict[str, LockMode], set[str]]] = [
    ("add_fk_column", "ALTER TABLE a ADD COLUMN b_id bigint REFERENCES b", True, {"a": AE, "b": SRE}, set()),
    (
        "cte_update",
        "WITH x AS (UPDATE a SET v = 'w' WHERE id < 10 RETURNING id) SELECT count(*) FROM x",
        True,
        {"a": RE},
        set(),
    ),
    ("do_block", "DO $$ BEGIN ALTER TABLE a ADD COLUMN z int; END $$", True, {"a": AE}, set()),
    ("cic", "CREATE INDEX CONCURRENTLY a_v ON a (v)", False, {"a": SUE}, set()),
    ("analyze", "ANALYZE a", True, {"a": SUE}, set()),
    ("column_type", "ALTER TABLE a ALTER COLUMN n TYPE bigint", True, {"a": AE}, {"a"}),
    ("enum_value", "ALTER TYPE mood ADD VALUE 'meh'", True, {"type mood": EX}, set()),
    ("validate_check", "ALTER TABLE c VALIDATE CONSTRAINT c_positive", True, {"c": SUE}, set()),
    ("validate_fk", "ALTER TABLE c VALIDATE CONSTRAINT c_b_fk", True, {"c": SUE, "b": RS}, set()),
    # and the rest of the parse-tree table that is easy to get wrong
    ("comment", "COMMENT ON TABLE a IS 'x'", True, {"a": SUE}, set()),
    ("grant", "GRANT SELECT ON a TO PUBLIC", True, {}, set()),
    ("attach", "ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)", True, {"p": SUE, "p2": AE}, set()),
    ("partition", "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)", True, {"p": AE}, set()),
    (
        "trigger",
        "CREATE TRIGGER a_touch BEFORE UPDATE ON a FOR EACH ROW EXECUTE FUNCTION touch()",
        True,
        {"a": SRE},
        set(),
    ),
    ("rename_index", "ALTER INDEX a_n RENAME TO a_n2", True, {"a_n": SUE}, set()),
]


def _write(mig_dir: MigrationsDir) -> None:
    mig_dir.write(1, "schema", SCHEMA, "SELECT 1;")
    for i, (slug, stmt, transactional, _, _) in enumerate(KINDS, start=2):
        mig_dir.write(i, slug, stmt + ";", head="" if transactional else "-- migrate:no-transaction\n")


def _plan(target: MigrationContext, scratch: ScratchServer, mig_dir: MigrationsDir) -> PlanResult:
    _write(mig_dir)
    commands.migrate(target, to=1)
    return commands.plan(target, measure=True, scratch=scratch)


def test_measured_locks_match_postgresql_for_each_kind(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, scratch_server: ScratchServer
) -> None:
    result = _plan(target, scratch_server, mig_dir)
    assert result.measured
    assert [item.label for item in result.items] == [f"{i:04d}_{k[0]}" for i, k in enumerate(KINDS, start=2)]
    for item, (slug, _, transactional, expected, rewrites) in zip(result.items, KINDS, strict=True):
        (stmt,) = item.statements
        measured = stmt.measured
        assert measured is not None, slug
        named = {lock.relation.replace("public.", ""): lock for lock in measured.locks}
        tables = {name: lock.mode for name, lock in named.items() if lock.kind in ("table", "type") or name in expected}
        assert tables == expected, slug
        assert {r.replace("public.", "") for r in measured.rewrites} & {"a", "b", "c"} == rewrites, slug
        assert measured.how == ("transaction, rolled back" if transactional else "autocommit"), slug
        # the parse-tree reading agrees with pg_locks, except where it cannot know: a VALIDATE does
        # not say whether the constraint is a foreign key (it then says so in a note)
        if slug == "validate_fk":
            assert measured.disagreements == ("public.b: ROW SHARE taken, not derived",)
            assert any("ROW SHARE on the referenced table" in note for note in stmt.notes)
        else:
            assert measured.disagreements == (), slug
            assert {lock.relation: lock.mode for lock in stmt.locks} == expected, slug


def test_measure_changes_nothing_on_the_live_database(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, scratch_server: ScratchServer
) -> None:
    _plan(target, scratch_server, mig_dir)
    assert [r[0] for r in ledger_rows(pg_db)] == [1]
    columns = query(pg_db, "SELECT attname FROM pg_attribute WHERE attrelid = 'public.a'::regclass AND attnum > 0")
    assert sorted(c[0] for c in columns) == ["id", "m", "n", "v"]
    assert query(pg_db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'a_v'") == [(0,)]
    assert query(pg_db, "SELECT enum_range(NULL::mood)::text") == [("{ok,bad}",)]
    assert query(pg_db, "SELECT count(*) FROM a WHERE v = 'w'") == [(0,)]


def test_plan_measure_cli_prints_measured_locks(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, capsys: pytest.CaptureFixture[str]
) -> None:
    mig_dir.write(1, "schema", SCHEMA, "SELECT 1;")
    mig_dir.write(2, "add_fk_column", KINDS[0][1] + ";")
    commands.migrate(target, to=1)
    argv = cli_argv(pg_db, "plan", mig_dir.path, "--measure")[3:]  # main() takes the arguments after -m infra
    env = cli_env(pg_db)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", env["PGPASSWORD"])
        assert main(argv) == 0
    out = capsys.readouterr().out
    assert "-- line 2: lock ACCESS EXCLUSIVE on a; blocks every read and write of the relation" in out
    assert "--   also: SHARE ROW EXCLUSIVE on b" in out
    assert (
        "--   measured (transaction, rolled back): ACCESS EXCLUSIVE on public.a; SHARE ROW EXCLUSIVE on public.b" in out
    )


def test_each_statement_of_a_migration_shows_its_own_locks_and_the_migration_what_it_holds(
    pg_db: PgDatabase, mig_dir: MigrationsDir, target: MigrationContext, scratch_server: ScratchServer
) -> None:
    mig_dir.write(1, "schema", SCHEMA, "SELECT 1;")
    # the second statement takes ACCESS EXCLUSIVE on a again (and rewrites it): in one transaction the
    # first statement's lock would hide it; SET LOCAL still holds for the statements after it
    mig_dir.write(
        2,
        "two",
        "SET LOCAL search_path = public;\nALTER TABLE a ADD COLUMN b_id bigint REFERENCES b;\n"
        "ALTER TABLE a ALTER COLUMN n TYPE bigint;",
    )
    commands.migrate(target, to=1)
    (item,) = commands.plan(target, measure=True, scratch=scratch_server).items
    measured = [s.measured for s in item.statements]
    assert all(m is not None for m in measured)
    tables = [{lock.relation: lock.mode for lock in m.locks if lock.kind == "table"} for m in measured if m]
    assert tables == [{}, {"public.a": AE, "public.b": SRE}, {"public.a": AE}]
    assert "public.a" in (measured[2].rewrites if measured[2] else ())
    held = {lock.relation: lock.mode for lock in item.held if lock.kind == "table"}
    assert held == {"public.a": AE, "public.b": SRE}
