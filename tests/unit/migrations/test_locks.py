"""Locks read from the parse tree (infra.migrations.locks): every object a statement locks, at the
level PostgreSQL 16 takes (tests/integration/migrations/test_measure.py checks them against pg_locks)."""

from __future__ import annotations

import pytest

from infra.migrations.locks import LockMode, statement_locks

AE, SRE, EX, SHARE = LockMode.ACCESS_EXCLUSIVE, LockMode.SHARE_ROW_EXCLUSIVE, LockMode.EXCLUSIVE, LockMode.SHARE
SUE, RE, RS, AS = LockMode.SHARE_UPDATE_EXCLUSIVE, LockMode.ROW_EXCLUSIVE, LockMode.ROW_SHARE, LockMode.ACCESS_SHARE


@pytest.mark.parametrize(
    ("stmt", "expected"),
    [
        # what `plan` used to under-report (issue: SHARE ROW EXCLUSIVE, ACCESS SHARE, "catalog only", unknown)
        ("ALTER TABLE a ADD COLUMN b_id int REFERENCES b", {"a": AE, "b": SRE}),
        ("WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", {"t": RE}),
        ("DO $$ BEGIN ALTER TABLE a ADD COLUMN z int; END $$", {"a": AE}),
        ("ANALYZE app.t", {"app.t": SUE}),
        # the rest of the table
        ("ALTER TABLE a ADD CONSTRAINT f FOREIGN KEY (b_id) REFERENCES s.b NOT VALID", {"a": SRE, "s.b": SRE}),
        ("ALTER TABLE a VALIDATE CONSTRAINT f", {"a": SUE}),
        ("ALTER TABLE a ALTER COLUMN v TYPE bigint, SET (fillfactor = 70)", {"a": AE}),
        ("ALTER TABLE a SET (fillfactor = 70, autovacuum_enabled = off)", {"a": SUE}),
        ("ALTER TABLE a SET (security_barrier = true)", {"a": AE}),
        ("ALTER TABLE a DISABLE TRIGGER ALL", {"a": SRE}),
        ("ALTER TABLE p ATTACH PARTITION p2 FOR VALUES IN (2)", {"p": SUE, "p2": AE}),
        ("ALTER TABLE p DETACH PARTITION p2 CONCURRENTLY", {"p": SUE, "p2": SUE}),
        ("CREATE INDEX CONCURRENTLY i ON app.t (a)", {"app.t": SUE}),
        ("CREATE UNIQUE INDEX i ON t (a)", {"t": SHARE}),
        ("REINDEX TABLE CONCURRENTLY t", {"t": SUE}),
        ("DROP TABLE a, s.b CASCADE", {"a": AE, "s.b": AE}),
        ("DROP POLICY p ON app.t", {"app.t": AE}),
        ("CREATE POLICY p ON t USING (tenant = current_user)", {"t": AE}),
        ("CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW EXECUTE FUNCTION f()", {"t": SRE}),
        ("CREATE TABLE n (id bigint REFERENCES a, LIKE b)", {"a": SRE, "b": AS}),
        ("CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)", {"p": AE}),
        ("ALTER INDEX i RENAME TO j", {"i": SUE}),
        ("ALTER TABLE a RENAME COLUMN x TO y", {"a": AE}),
        ("COMMENT ON COLUMN app.t.c IS 'x'", {"app.t": SUE}),
        ("LOCK TABLE a IN SHARE MODE", {"a": SHARE}),
        ("VACUUM (FULL) a", {"a": AE}),
        ("CLUSTER t USING t_pkey", {"t": AE}),
        ("REFRESH MATERIALIZED VIEW CONCURRENTLY m", {"m": EX}),
        ("TRUNCATE a", {"a": AE}),
        ("ALTER TYPE app.mood ADD VALUE 'meh'", {"type app.mood": EX}),
        ("INSERT INTO t SELECT * FROM s WHERE s.id IN (SELECT id FROM u)", {"t": RE, "s": AS, "u": AS}),
        ("SELECT * FROM a JOIN b USING (id) FOR UPDATE", {"a": RS, "b": RS}),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", {"t": RE, "s": AS}),
        ("CREATE TABLE n (id bigint)", {}),
        ("GRANT SELECT ON t TO r", {}),
        ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", {}),
    ],
)
def test_every_lock_of_a_statement(stmt: str, expected: dict[str, LockMode]) -> None:
    assert {lock.relation: lock.mode for lock in statement_locks(stmt).locks} == expected


def test_summary_is_the_strongest_lock_and_what_it_blocks() -> None:
    mode, table, blocks = statement_locks("ALTER TABLE a ADD COLUMN b_id int REFERENCES b").summary()
    assert (mode, table) == ("ACCESS EXCLUSIVE", "a")
    assert blocks == "every read and write of the relation"
    assert statement_locks("CREATE TABLE n (id bigint)").summary()[0] == "none"


@pytest.mark.parametrize(
    ("stmt", "note"),
    [
        ("DO $$ BEGIN EXECUTE 'ALTER TABLE a ADD COLUMN z int'; END $$", "dynamic SQL (EXECUTE)"),
        ("DO LANGUAGE plperl $$ 1; $$", "DO block in plperl"),
        ("CALL do_it()", "CALL runs a procedure"),
        ("CREATE DATABASE x", "CreatedbStmt is not in the lock table"),
        ("SELEC 1", "not parsed"),
    ],
)
def test_what_a_parse_tree_cannot_tell_is_said_not_guessed(stmt: str, note: str) -> None:
    result = statement_locks(stmt)
    assert any(note in text for text in result.notes), result.notes
    if not result.locks:
        assert result.summary()[0] == "unknown"


def test_rewrites_are_named() -> None:
    assert statement_locks("ALTER TABLE a ALTER COLUMN v TYPE bigint").rewrites == (
        "a: ALTER COLUMN TYPE rewrites the table and its indexes (unless binary-coercible)",
    )
    assert statement_locks("ALTER TABLE a ADD COLUMN c int").rewrites == ()
    assert "volatile" in statement_locks("ALTER TABLE a ADD COLUMN c float DEFAULT random()").rewrites[0]


def test_cte_names_are_not_tables_and_locks_inside_do_blocks_keep_their_reason() -> None:
    result = statement_locks("WITH a AS (SELECT 1) SELECT * FROM a, b")
    assert {lock.relation for lock in result.locks} == {"b"}
    (lock,) = statement_locks("DO $$ BEGIN IF true THEN UPDATE t SET a = 1; END IF; END $$").locks
    assert (lock.relation, lock.mode, lock.reason) == ("t", RE, "UPDATE (in DO block)")
