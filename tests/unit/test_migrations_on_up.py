"""runMigrationsOnUp: the in-`pulumi up` migrate step, under the project mocks."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.migrations.source import manifest
from infra.mocking import Synthesis, synthesize
from infra.program import build
from tests.fixtures.stack import AWS_BASE, full

COMMAND = "command:local:Command"


def _run(migrations: Path, *, on: bool = True, preview: bool = False) -> Synthesis:
    config = full(AWS_BASE, runMigrationsOnUp="true" if on else "false")
    return synthesize(lambda: build(migrations_dir=migrations), config, preview=preview)


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    directory = tmp_path / "migrations"
    directory.mkdir()
    (directory / "0001_a.sql").write_text("-- migrate:up\nCREATE TABLE a (id int);\n")
    (directory / "0002_b.sql").write_text("-- migrate:up\nCREATE TABLE b (id int);\n")
    return directory


def test_off_by_default_declares_no_command(migrations: Path) -> None:
    assert _run(migrations, on=False).of_type(COMMAND) == []


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_triggers_are_the_sorted_file_checksums(migrations: Path, preview: bool) -> None:
    command = _run(migrations, preview=preview).one(COMMAND)
    assert command.input("triggers") == list(manifest(migrations))
    assert [t.split(":")[0] for t in command.input("triggers")] == ["0001_a.sql", "0002_b.sql"]
    assert "migrate --stack dev" in command.input("create")
    assert "delete" not in command.inputs  # removing the step never touches the database
    assert set(command.additional_secret_outputs) == {"stdout", "stderr"}
    assert command.input("logging") == "none"


def test_trigger_list_changes_when_one_file_changes_and_only_then(migrations: Path) -> None:
    before = _run(migrations).one(COMMAND).input("triggers")
    again = _run(migrations).one(COMMAND).input("triggers")
    assert again == before  # nothing changed: no rerun, a quiet preview

    (migrations / "0002_b.sql").write_text("-- migrate:up\nCREATE TABLE b (id bigint);\n")
    after = _run(migrations).one(COMMAND).input("triggers")
    changed = [(old, new) for old, new in zip(before, after, strict=True) if old != new]
    assert len(changed) == 1
    assert changed[0][0].startswith("0002_b.sql:")
    assert changed[0][1].startswith("0002_b.sql:")

    (migrations / "0002_b.sql").write_bytes(b"-- migrate:up\r\nCREATE TABLE b (id bigint);\r\n")
    assert _run(migrations).one(COMMAND).input("triggers") == after  # CRLF is not a change


def test_command_waits_for_database_bastion_and_stored_secrets(migrations: Path) -> None:
    result = _run(migrations)
    command = result.one(COMMAND)
    waited_for = {urn.rsplit("::", 1)[-1] for urn in command.dependencies}
    assert "private-postgres-dev-db-instance" in waited_for
    assert "private-postgres-dev-bastion-instance" in waited_for
    versions = {r.name for r in result.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    assert versions <= waited_for
