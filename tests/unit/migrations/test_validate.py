"""Files against ledger rows, without a database: every problem with its fix, broken files stop a run there."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

from infra.migrations.ledger import AppliedMigration, LedgerStatus, TransactionMode
from infra.migrations.source import load
from infra.migrations.validate import ProblemKind, check


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _row(
    version: int,
    name: str,
    sha: str,
    status: LedgerStatus = LedgerStatus.APPLIED,
    *,
    filename: str | None = None,
    mode: TransactionMode = TransactionMode.TRANSACTION,
    applied: int | None = None,
    total: int | None = None,
    hashes: tuple[str, ...] = (),
    error: str | None = None,
) -> AppliedMigration:
    return AppliedMigration(
        version=version,
        filename=filename if filename is not None else f"{version:04d}_{name}.sql",
        name=name,
        checksum=sha,
        status=status,
        transaction_mode=mode,
        applied_at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        duration_ms=1.0,
        applied_by="me@host",
        db_user="admin",
        run_id="r",
        statements_applied=applied,
        statements_total=total,
        statement_hashes=hashes,
        last_error=error,
    )


def test_check_reports_every_problem_with_its_fix(tmp_path: Path) -> None:
    for v, name in ((1, "a"), (2, "b"), (4, "d"), (5, "e")):
        _write(tmp_path, f"{v:04d}_{name}.sql", f"-- migrate:up\nSELECT {v};\n")
    source = load(tmp_path)
    migs = source.migrations
    rows = [
        _row(1, "a", migs[0].checksum),
        _row(2, "b", "0" * 64),  # changed
        _row(3, "c", "1" * 64),  # file missing
        _row(5, "e", migs[3].checksum, filename="05_e.sql"),  # applied under another name
    ]
    validation = check(source, rows)
    kinds = {(p.kind, p.file) for p in validation.problems}
    assert kinds == {
        (ProblemKind.CHANGED, "0002_b.sql"),
        (ProblemKind.MISSING, "0003_c.sql"),
        (ProblemKind.OUT_OF_ORDER, "0004_d.sql"),
        (ProblemKind.RENAMED, "0005_e.sql"),
    }
    text = "\n".join(p.describe() for p in validation.problems)
    assert "repair --version 2" in text
    assert "renumber it above 0005" in text
    assert "was applied as 05_e.sql but the file is now 0005_e.sql" in text
    assert validation.pending == ()


def test_format_one_rows_without_a_file_name_match_by_slug(tmp_path: Path) -> None:
    _write(tmp_path, "000001_a.sql", "-- migrate:up\nSELECT 1;\n")
    source = load(tmp_path)
    legacy = dataclasses.replace(_row(1, "a", source.migrations[0].checksum), filename=None)
    assert check(source, [legacy]).ok
    assert legacy.display_name == "0001_a.sql"


def test_a_broken_file_stops_the_run_there_and_hides_nothing_else(tmp_path: Path) -> None:
    a = _write(tmp_path, "0001_a.sql", "-- migrate:up\nSELECT 1;\n")
    _write(tmp_path, "0002_b.sql", "-- migrate:up\nSELECT 2;\n")
    _write(tmp_path, "0003_c.sql", "-- migrate:up\nSELEC 3;\n")
    _write(tmp_path, "0004_d.sql", "-- migrate:up\nSELECT 4;\n")
    source = load(tmp_path)
    validation = check(source, [_row(1, "a", source.migrations[0].checksum)])
    assert validation.ok  # nothing refuses the run before its first statement
    assert [m.filename for m in validation.todo()] == ["0002_b.sql"]
    assert validation.stop is not None
    assert validation.stop.filename == "0003_c.sql"
    assert [p.describe() for p in validation.later] == [
        '0003_c.sql:2: syntax error at or near "SELEC"; fix: correct the file'
    ]
    # an applied file that no longer parses is fine while unchanged (only a rollback needs it)
    a.write_text("-- migrate:up\nSELEC 1;\n")
    source = load(tmp_path)
    broken_a = next(b for b in source.broken if b.filename == "0001_a.sql")
    assert check(source, [_row(1, "a", broken_a.checksum or "")]).ok
    assert [p.kind for p in check(source, [_row(1, "a", "f" * 64)]).problems] == [ProblemKind.BROKEN]


def test_a_misnamed_file_blocks_the_run_from_the_start(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "-- migrate:up\nSELECT 1;\n")
    _write(tmp_path, "0002_b.SQL", "-- migrate:up\nSELECT 2;\n")
    validation = check(load(tmp_path), [])
    assert [p.describe() for p in validation.problems] == [
        "0002_b.SQL: a migration file name ends in '.sql' (lowercase); fix: rename it to '0002_b.sql'"
    ]


def test_twenty_digit_versions_compare_as_numbers(tmp_path: Path) -> None:
    _write(tmp_path, "9_a.sql", "-- migrate:up\nSELECT 1;\n")
    _write(tmp_path, "20240101000000000000_b.sql", "-- migrate:up\nSELECT 2;\n")
    _write(tmp_path, "100_c.sql", "-- migrate:up\nSELECT 3;\n")
    todo = check(load(tmp_path), []).todo()
    assert [m.version for m in todo] == [9, 100, 20240101000000000000]


def test_check_resumes_partial_and_stops_on_failed_or_changed(tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "-- migrate:up transaction:false\nSELECT 1;\nSELECT 2;\nSELECT 3;\n")
    source = load(tmp_path)
    (mig,) = source.migrations
    done = tuple(s.sha256 for s in mig.up[:2])

    def row(status: LedgerStatus, hashes: tuple[str, ...], error: str | None = None) -> AppliedMigration:
        no_tx = TransactionMode.NO_TRANSACTION
        return _row(1, "a", mig.checksum, status, mode=no_tx, applied=2, total=3, hashes=hashes, error=error)

    partial = row(LedgerStatus.PARTIAL, done)
    v = check(source, [partial])
    assert v.ok
    assert v.todo() == (mig,)
    failed = row(LedgerStatus.FAILED, done, "boom")
    assert [p.kind for p in check(source, [failed]).problems] == [ProblemKind.FAILED]
    assert check(source, [failed], retry_failed=True).ok
    changed = row(LedgerStatus.PARTIAL, ("x", "y"))
    assert [p.kind for p in check(source, [changed]).problems] == [ProblemKind.PARTIAL_CHANGED]
