"""squawk through infra.migrations.lint: findings mapped to our files and lines, allow directives."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main
from infra.migrations import commands


def _write(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(text)


def test_findings_name_file_line_and_rule_and_skip_down_sections(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "0001_idx.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN c bigint;\nCREATE INDEX t_id ON t (id);\n"
        "-- migrate:down\nDROP TABLE t;\n",
    )
    result = commands.lint(tmp_path)
    rules = {(f.file, f.line, f.rule) for f in result.findings}
    assert ("0001_idx.sql", 3, "require-concurrent-index-creation") in rules
    assert all(f.line < 4 for f in result.findings)  # the down section is not linted
    # the runner sets both timeouts itself, so those rules would only be noise
    assert not {"require-lock-timeout", "require-statement-timeout"} & {f.rule for f in result.findings}
    assert result.blocking


def test_allow_directive_marks_findings_allowed(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "0001_idx.sql",
        "-- migrate:up\n-- migrate:allow require-concurrent-index-creation\nCREATE INDEX t_id ON t (id);\n",
    )
    result = commands.lint(tmp_path)
    assert result.findings
    assert all(f.allowed for f in result.findings if f.rule == "require-concurrent-index-creation")
    assert not [f for f in result.blocking if f.rule == "require-concurrent-index-creation"]


def test_no_transaction_files_are_linted_as_autocommit(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "0001_cic.sql",
        "-- migrate:up\n-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS t_id ON t (id);\n",
    )
    _write(tmp_path, "0002_plain.sql", "-- migrate:up\nCREATE TABLE u (id bigint PRIMARY KEY);\n")
    result = commands.lint(tmp_path)
    assert result.files == ("0001_cic.sql", "0002_plain.sql")
    assert not [f for f in result.findings if f.rule == "ban-concurrent-index-creation-in-transaction"]
    assert result.blocking == ()


@pytest.mark.parametrize("layout", ["absent", "empty"])
def test_lint_cli_succeeds_on_absent_or_empty_dir(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "migrations"
    if layout == "empty":
        directory.mkdir()
    assert main(["lint", "--migrations-dir", str(directory)]) == 0
    assert "0 file(s) linted" in capsys.readouterr().out


def test_lint_cli_exit_code_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "0001_idx.sql", "-- migrate:up\nCREATE INDEX t_id ON t (id);\n")
    assert main(["lint", "--migrations-dir", str(tmp_path)]) == 1
    assert "0001_idx.sql:2:1: require-concurrent-index-creation" in capsys.readouterr().out
    assert main(["lint", "--migrations-dir", str(tmp_path), "--json"]) == 1
    assert '"rule": "require-concurrent-index-creation"' in capsys.readouterr().out


def test_migrations_dir_absent_lints_and_plans_nothing(tmp_path: Path) -> None:
    assert commands.lint(tmp_path / "absent").files == ()
