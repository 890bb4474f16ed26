"""Statements from PostgreSQL's own parser (pglast 6.17): exact lines, text as written, refusals, linear time."""

from __future__ import annotations

import time

import pytest

from infra.migrations.statements import GRAMMAR, SqlError, split


def test_the_parser_is_postgresql_16s() -> None:
    assert GRAMMAR[0] == 16


def test_statements_keep_their_text_and_first_token_line() -> None:
    sql = (
        'SELECT ";" AS "a""b";\n'
        "/* nested /* ; */ still comment ; */ SELECT 2;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
        "CREATE TABLE t (a int) -- note\n"
        ";\n"
        "SELECT 'é', $q$;$q$::text, a$b FROM t;  -- belongs to the next statement\n"
        "ALTER TABLE t ADD b int\n"
        "-- trailing comment of a last statement without ;\n"
    )
    stmts = split(sql, first_line=10)
    assert [s.line for s in stmts] == [10, 11, 12, 13, 15, 16]
    assert stmts[2].text == "DO $$ BEGIN PERFORM 1; END $$"
    assert stmts[3].text == "CREATE TABLE t (a int) -- note"  # ends in a comment: never append to it
    assert stmts[5].text_line == 15  # the comment after `;` on line 15 leads the ALTER on line 16
    assert stmts[5].text.endswith("-- trailing comment of a last statement without ;")
    kinds = ["SelectStmt", "SelectStmt", "DoStmt", "CreateStmt", "SelectStmt", "AlterTableStmt"]
    assert [s.kind for s in stmts] == kinds
    assert stmts[0].sha256 != stmts[1].sha256
    assert split("-- only a comment\n/* and another */\n") == ()


@pytest.mark.parametrize(
    ("sql", "line", "message"),
    [
        ("SELECT 'é';\nSELECT 'éé';\nSELEC 3;", 3, 'syntax error at or near "SELEC"'),
        ("SELECT 'ééé';\n\\set x 1\n", 2, "psql meta-commands are not SQL"),
        ("SELECT 1;\nSET lock_timeout = 0;", 2, "lock_timeout is the runner's"),
        ("RESET ALL", 1, "reset all would undo the runner's timeouts"),
        ("SET standard_conforming_strings = off", 1, "standard_conforming_strings changes how the server reads"),
        ("SET backslash_quote = on", 1, "backslash_quote changes how the server reads"),
        ("SET NAMES 'LATIN1'", 1, "client_encoding changes how the server reads"),
        ("SELECT set_config('statement_timeout', '0', false)", 1, "statement_timeout is the runner's"),
        ("SELECT pg_advisory_unlock(1836673906, 1)", 1, "pg_advisory_unlock\\(\\) would release"),
        ("DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$", 1, "pg_advisory_unlock\\(\\) would release"),
        ("COPY t TO STDOUT", 1, "copy from stdin / to stdout"),
        ("SELECT 1;\nUPDATE t SET a = $1;", 2, r"a parameter placeholder \(\$1\) has no value here"),
    ],
)
def test_refusals_name_the_line(sql: str, line: int, message: str) -> None:
    with pytest.raises(SqlError, match=message) as caught:
        split(sql)
    assert caught.value.line == line


def test_a_runner_timeout_in_a_file_points_at_the_directive() -> None:
    with pytest.raises(SqlError) as caught:
        split("SET LOCAL lock_timeout = '10s'")
    assert caught.value.fix == "replace it with the line '-- migrate:lock-timeout 10s'"


def test_statements_that_need_autocommit() -> None:
    stmts = split(
        "CREATE INDEX CONCURRENTLY i ON t (a); CREATE INDEX j ON t (a); VACUUM t; ANALYZE t; "
        "REINDEX TABLE CONCURRENTLY t; DROP INDEX CONCURRENTLY i; ALTER TABLE p DETACH PARTITION c CONCURRENTLY; "
        "CREATE DATABASE d; ALTER TYPE e ADD VALUE 'x'"
    )
    assert [s.autocommit for s in stmts] == [True, False, True, False, True, True, True, True, False]


def _inserts(n: int) -> str:
    return "".join(f"INSERT INTO t (id, name) VALUES ({i}, 'ligne {i} é');\n" for i in range(n))


def test_splitting_is_linear_in_the_size_of_the_text() -> None:
    # Not a speed threshold (bench/ has the figures): 8x the statements must cost about 8x, far from
    # the 64x of a quadratic parser. Interleaved best-of-5, so load from other processes hits both sizes.
    small, large = _inserts(1000), _inserts(8000)
    best = {"small": float("inf"), "large": float("inf")}
    for _ in range(5):
        for name, text in (("small", small), ("large", large)):
            started = time.perf_counter()
            assert len(split(text)) == text.count(";")
            best[name] = min(best[name], time.perf_counter() - started)
    ratio = best["large"] / best["small"]
    assert ratio < 24, f"8x the input took {ratio:.1f}x the time"


def test_placeholders_that_belong_to_a_function_body_or_a_prepare_pass() -> None:
    stmts = split(
        "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql RETURN $1 + 1;\n"
        "CREATE FUNCTION g(a int) RETURNS int LANGUAGE sql AS $$ SELECT $1 $$;\n"
        "PREPARE p(int) AS SELECT $1;\nSELECT '$1', '{\"ParamRef\":';"
    )
    assert [s.kind for s in stmts] == ["CreateFunctionStmt", "CreateFunctionStmt", "PrepareStmt", "SelectStmt"]
