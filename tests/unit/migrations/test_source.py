"""Migration files: parsing, directives, statement splitting, checksums, and the pure validation."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from infra.errors import MigrationParseError
from infra.migrations.ledger import AppliedMigration
from infra.migrations.locks import lock_mode
from infra.migrations.runner import check
from infra.migrations.source import checksum, load, manifest, parse, split_statements


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_sections_directives_and_statements(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "0007_add_things.sql",
        "-- header comment\n"
        "-- migrate:up\n"
        "-- migrate:lock-timeout 10s\n"
        "-- migrate:statement-timeout 2min\n"
        "-- migrate:allow prefer-bigint-over-int ban-drop-column\n"
        "CREATE TABLE a (id int, s text DEFAULT 'x;y');\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
        "CREATE FUNCTION g() RETURNS int AS $b$ select 1; -- migrate:down\n"
        " $b$ LANGUAGE sql;\n"
        "/* block ; */ INSERT INTO a VALUES (1, E'it\\'s;')\n"
        "-- migrate:down\n"
        "DROP TABLE a;\n",
    )
    mig = parse(path)
    assert (mig.version, mig.name, mig.label) == (7, "add_things", "0007_add_things")
    assert mig.directives.lock_timeout == "10s"
    assert mig.directives.statement_timeout == "2min"
    assert mig.directives.allow == {"prefer-bigint-over-int", "ban-drop-column"}
    assert not mig.directives.no_transaction
    assert [s.line for s in mig.up] == [6, 7, 8, 10]
    assert mig.up[1].text.endswith("SELECT 2; END")
    assert "-- migrate:down" in mig.up[2].text  # inside a dollar quote it is SQL, not a directive
    assert mig.up[3].text.endswith("E'it\\'s;')")
    assert [s.text for s in mig.down] == ["DROP TABLE a"]
    assert mig.reversible
    assert mig.checksum == checksum(path)


def test_checksum_ignores_bom_and_line_endings_only(tmp_path: Path) -> None:
    text = "-- migrate:up\nSELECT 1;\n"
    a = _write(tmp_path, "0001_a.sql", text)
    b = tmp_path / "0002_b.sql"
    b.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    c = _write(tmp_path, "0003_c.sql", text + " ")
    assert checksum(a) == checksum(b) == parse(b).checksum
    assert checksum(a) != checksum(c)
    assert manifest(tmp_path)[0] == f"0001_a.sql:{checksum(a)}"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("SELECT 1;\n", r"0001_x\.sql:1: no '-- migrate:up'"),
        ("SELECT 1;\n-- migrate:up\nSELECT 2;\n", r"0001_x\.sql:1: SQL before '-- migrate:up'"),
        ("-- migrate:up\n-- migrate:up\nSELECT 1;\n", r"0001_x\.sql:2: directive 'migrate:up' repeated"),
        ("-- migrate:down\nSELECT 1;\n-- migrate:up\n", r"0001_x\.sql:1: '-- migrate:down' comes before"),
        ("-- migrate:up\n-- migrate:frobnicate\nSELECT 1;\n", r"0001_x\.sql:2: unknown directive 'migrate:frobnicate'"),
        ("-- migrate:up\n-- migrate:lock-timeout soon\nSELECT 1;\n", r"0001_x\.sql:2: 'migrate:lock-timeout' needs"),
        ("-- migrate:up\n-- migrate:no-transaction yes\nSELECT 1;\n", r"0001_x\.sql:2: .* takes no argument"),
        ("-- migrate:up\n-- only a comment\n", r"0001_x\.sql:1: the up section has no SQL"),
        ("-- migrate:up\nSELECT 'open;\n", r"0001_x\.sql:2: unterminated"),
        ("-- migrate:up\nSELECT 1;\nCOMMIT;\n", r"0001_x\.sql:3: transaction control"),
        ("-- migrate:up\nBEGIN;\nSELECT 1;\n", r"0001_x\.sql:2: transaction control"),
        (
            "-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n",
            r"0001_x\.sql:2: this statement cannot run inside a transaction; add '-- migrate:no-transaction'",
        ),
        ("-- migrate:up\nVACUUM t;\n", r"0001_x\.sql:2: this statement cannot run inside a transaction"),
        ("-- migrate:up\nSELECT 1;\n\\i other.sql\n", r"0001_x\.sql:3: psql meta-commands"),
        ("-- migrate:up\n-- migrate:no-transaction\nDISCARD ALL;\n", r"0001_x\.sql:3: DISCARD and pg_advisory"),
        ("-- migrate:up\nSELECT pg_advisory_unlock_all();\n", r"0001_x\.sql:2: DISCARD and pg_advisory"),
        ("-- migrate:up\nCOPY t (a) FROM stdin;\n", r"0001_x\.sql:2: psql meta-commands and COPY FROM STDIN"),
    ],
)
def test_parse_errors_name_file_and_line(tmp_path: Path, text: str, error: str) -> None:
    with pytest.raises(MigrationParseError, match=error):
        parse(_write(tmp_path, "0001_x.sql", text))


def test_no_transaction_allows_concurrent_statements_and_rollback_to_savepoint(tmp_path: Path) -> None:
    mig = parse(
        _write(
            tmp_path,
            "0001_x.sql",
            "-- migrate:up\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\nVACUUM t;\n",
        )
    )
    assert mig.directives.no_transaction
    assert len(mig.statements) == 2
    tx = parse(_write(tmp_path, "0002_y.sql", "-- migrate:up\nSAVEPOINT s;\nSELECT 1;\nROLLBACK TO SAVEPOINT s;\n"))
    assert len(tx.up) == 3


def test_file_names_and_duplicate_versions(tmp_path: Path) -> None:
    with pytest.raises(MigrationParseError, match=r"NNNN_slug\.sql"):
        parse(_write(tmp_path, "1_Bad-Name.sql", "-- migrate:up\nSELECT 1;\n"))
    (tmp_path / "1_Bad-Name.sql").unlink()
    _write(tmp_path, "0001_a.sql", "-- migrate:up\nSELECT 1;\n")
    _write(tmp_path, "0001_b.sql", "-- migrate:up\nSELECT 1;\n")
    with pytest.raises(MigrationParseError, match=r"0001_b\.sql: version 1 is also used by 0001_a\.sql"):
        load(tmp_path)
    assert load(tmp_path / "absent") == ()


def test_split_statements_edge_cases() -> None:
    sql = (
        'SELECT ";" AS "a""b";\n'
        "/* nested /* ; */ still comment ; */ SELECT 2;\n"
        "DO $$ BEGIN PERFORM 1; END $$;\n"
        "SELECT $1::text, a$b FROM t;\n"
        "-- trailing comment only\n"
    )
    stmts = split_statements(sql)
    assert [s.line for s in stmts] == [1, 2, 3, 4]
    assert stmts[2].text == "DO $$ BEGIN PERFORM 1; END $$"
    assert stmts[0].sha256 != stmts[1].sha256


def _row(version: int, name: str, sha: str, status: str = "applied", **kw: object) -> AppliedMigration:
    return AppliedMigration(
        version=version,
        name=name,
        checksum=sha,
        status=status,
        transaction_mode=str(kw.pop("mode", "transaction")),
        applied_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        duration_ms=1.0,
        applied_by="me@host",
        db_user="admin",
        run_id="r",
        **kw,  # type: ignore[arg-type]
    )


def test_check_reports_every_problem_with_its_fix(tmp_path: Path) -> None:
    for v, name in ((1, "a"), (2, "b"), (4, "d"), (5, "e")):
        _write(tmp_path, f"{v:04d}_{name}.sql", f"-- migrate:up\nSELECT {v};\n")
    migs = load(tmp_path)
    rows = [
        _row(1, "a", migs[0].checksum),
        _row(2, "b", "0" * 64),  # changed
        _row(3, "c", "1" * 64),  # file missing
        _row(5, "e", migs[3].checksum),
    ]
    validation = check(migs, rows)
    kinds = {(p.kind, p.file) for p in validation.problems}
    assert kinds == {("changed", "0002_b.sql"), ("missing", "0003_c.sql"), ("out-of-order", "0004_d.sql")}
    text = "\n".join(p.message for p in validation.problems)
    assert "repair --version 2" in text
    assert "renumber it above 0005" in text
    assert validation.pending == ()


def test_check_resumes_partial_and_stops_on_failed_or_changed(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "-- migrate:up\n-- migrate:no-transaction\nSELECT 1;\nSELECT 2;\nSELECT 3;\n")
    (mig,) = load(tmp_path)
    done = tuple(s.sha256 for s in mig.up[:2])
    partial = _row(
        1,
        "a",
        mig.checksum,
        "partial",
        mode="no-transaction",
        statements_applied=2,
        statements_total=3,
        statement_hashes=done,
    )
    v = check([mig], [partial])
    assert v.ok
    assert v.todo() == (mig,)
    failed = _row(
        1,
        "a",
        mig.checksum,
        "failed",
        mode="no-transaction",
        statements_applied=2,
        statements_total=3,
        statement_hashes=done,
        last_error="boom",
    )
    assert [p.kind for p in check([mig], [failed]).problems] == ["failed"]
    assert check([mig], [failed], retry_failed=True).ok
    changed = _row(
        1,
        "a",
        mig.checksum,
        "partial",
        mode="no-transaction",
        statements_applied=2,
        statements_total=3,
        statement_hashes=("x", "y"),
    )
    assert [p.kind for p in check([mig], [changed]).problems] == ["partial-changed"]


@pytest.mark.parametrize(
    ("stmt", "mode", "table"),
    [
        ("CREATE INDEX CONCURRENTLY i ON app.t (a)", "SHARE UPDATE EXCLUSIVE", "app.t"),
        ("CREATE UNIQUE INDEX i ON t (a)", "SHARE", "t"),
        ("ALTER TABLE t ADD COLUMN c int", "ACCESS EXCLUSIVE", "t"),
        ("ALTER TABLE t VALIDATE CONSTRAINT c", "SHARE UPDATE EXCLUSIVE", "t"),
        ("-- why\nINSERT INTO t VALUES (1)", "ROW EXCLUSIVE", "t"),
        ("CREATE TABLE n (id bigint)", "none", None),
        ("GRANT SELECT ON t TO r", "catalog only", None),
        ("CLUSTER t", "unknown", None),
    ],
)
def test_lock_modes_for_plan(stmt: str, mode: str, table: str | None) -> None:
    got_mode, got_table, _ = lock_mode(stmt)
    assert (got_mode, got_table) == (mode, table)
