"""squawk through infra.migrations.lint: findings mapped to our files and lines, allow directives."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.cli import main
from infra.errors import MigrationError
from infra.migrations import commands
from infra.migrations.lint import PRODUCTION_BLOCKING, squawk_binary


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


# -- squawk's configuration, the lint baseline, what blocks production ------------------------------


def test_squawk_toml_above_the_migrations_is_honoured(tmp_path: Path) -> None:
    migrations = tmp_path / "schema" / "migrations"
    migrations.parent.mkdir()
    _write(migrations, "0001_t.sql", "-- migrate:up\nCREATE TABLE t (id int PRIMARY KEY, at timestamp);\n")
    _write(migrations, "0002_generated.sql", "-- migrate:up\nCREATE TABLE u (id int PRIMARY KEY);\n")
    before = {f.rule for f in commands.lint(migrations).findings}
    assert {"prefer-bigint-over-int", "prefer-timestamp-tz"} <= before
    (tmp_path / ".squawk.toml").write_text(
        'excluded_rules = ["prefer-bigint-over-int"]\nexcluded_paths = ["schema/migrations/0002_*.sql"]\n'
    )
    after = commands.lint(migrations)
    assert "prefer-bigint-over-int" not in {f.rule for f in after.findings}
    assert "prefer-timestamp-tz" in {f.rule for f in after.findings}
    assert {f.file for f in after.findings} == {"0001_t.sql"}  # 0002 is an excluded path
    # our own exclusions still hold with a file of its own (squawk replaces, not merges, --exclude)
    assert not {"require-lock-timeout", "require-statement-timeout"} & {f.rule for f in after.findings}


def test_a_bad_squawk_toml_names_itself(tmp_path: Path) -> None:
    _write(tmp_path, "0001_t.sql", "-- migrate:up\nCREATE TABLE t (id bigint PRIMARY KEY);\n")
    (tmp_path / ".squawk.toml").write_text('excluded_rules = ["no-such-rule"]\n')
    with pytest.raises(MigrationError, match=r"squawk failed .*settings from .*\.squawk\.toml.*no-such-rule"):
        commands.lint(tmp_path)


def test_lint_baseline_accepts_todays_findings_and_counts_new_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, "0001_old.sql", "-- migrate:up\nCREATE TABLE t (id int PRIMARY KEY);\n")
    _write(tmp_path, "0002_old.sql", "-- migrate:up\nCREATE INDEX t_i ON t (id);\n")
    assert main(["lint", "--migrations-dir", str(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["lint", "--migrations-dir", str(tmp_path), "--write-baseline"]) == 0
    assert f"lint baseline written: {tmp_path / '.lint-baseline.json'}" in capsys.readouterr().out
    result = commands.lint(tmp_path)
    assert result.findings
    assert all(f.baselined for f in result.findings)
    assert result.blocking == ()
    # one more index in the same file: the baseline counted one, the second counts
    _write(tmp_path, "0002_old.sql", "-- migrate:up\nCREATE INDEX t_i ON t (id);\nCREATE INDEX t_j ON t (id);\n")
    (new,) = commands.lint(tmp_path).blocking
    assert (new.line, new.rule, new.blocks_production) == (3, "require-concurrent-index-creation", True)


def test_only_lock_and_rewrite_rules_block_production(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "0001_t.sql",
        "-- migrate:up\nCREATE TABLE t (id int PRIMARY KEY, c char(3));\nALTER TABLE t ALTER COLUMN id TYPE bigint;\n",
    )
    findings = commands.lint(tmp_path).findings
    by_rule = {f.rule: f.blocks_production for f in findings}
    assert by_rule["prefer-bigint-over-int"] is False
    assert by_rule["ban-char-field"] is False
    assert by_rule["changing-column-type"] is True


def test_production_blocking_rules_are_squawk_rules() -> None:
    # squawk refuses an unknown rule name in --exclude: every name of the documented list exists
    result = subprocess.run(
        [squawk_binary(), "--exclude", ",".join(PRODUCTION_BLOCKING), "--stdin-filepath", "x.sql"],
        input="SELECT 1;\n",
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
