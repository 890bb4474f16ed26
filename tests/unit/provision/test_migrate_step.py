"""``runMigrationsOnUp``: the ``local.Command`` the program declares, under the project mocks.

Its triggers are the migration manifest, so the command reruns when (and only when) a migration
file's normalised content changes, and ``pulumi preview`` names the file that changed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from infra.contract import OUTPUTS_ENV
from infra.paths import MIGRATIONS_DIR
from infra.postdeploy.outputs import parse_document
from infra.provision.program import build
from infra.provision.recording import RecordedResource, Synthesis, synthesize
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full

COMMAND = "command:local:Command"
DEPENDS = {
    "aws": ("aws:rds/instance:Instance", "aws:ec2/instance:Instance", "aws:secretsmanager/secretVersion:SecretVersion"),
    "gcp": (
        "gcp:sql/databaseInstance:DatabaseInstance",
        "gcp:compute/instance:Instance",
        "gcp:secretmanager/secretVersion:SecretVersion",
    ),
}


def _synth(migrations: Path, *, on: bool = True, base: dict[str, str] = AWS_BASE, preview: bool = False) -> Synthesis:
    config = full(base, runMigrationsOnUp="true" if on else "false")
    return synthesize(lambda: build(migrations_dir=migrations), config, preview=preview)


def _command(result: Synthesis) -> RecordedResource:
    return result.one(COMMAND)


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    copy = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, copy)
    return copy


def test_off_by_default_declares_no_command(migrations: Path) -> None:
    result = synthesize(lambda: build(migrations_dir=migrations), full(AWS_BASE))
    assert result.of_type(COMMAND) == []


@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_triggers_are_the_sorted_manifest(migrations: Path, preview: bool) -> None:
    triggers = _command(_synth(migrations, preview=preview)).input("triggers")
    names = sorted(p.name for p in migrations.glob("*.sql"))
    assert [t.split(":")[0] for t in triggers] == names
    assert triggers == sorted(triggers)
    assert all(len(t.split(":")[1]) == 64 for t in triggers)


def test_triggers_change_for_the_changed_file_only(migrations: Path) -> None:
    before = _command(_synth(migrations)).input("triggers")
    assert _command(_synth(migrations)).input("triggers") == before  # no edit, no rerun: a quiet preview
    changed = sorted(migrations.glob("*.sql"))[2]
    changed.write_text(changed.read_text() + "\n-- reviewed\n")
    after = _command(_synth(migrations)).input("triggers")
    diff = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert len(diff) == 1
    assert diff[0][0].startswith(f"{changed.name}:")
    assert diff[0][1].startswith(f"{changed.name}:")


def test_triggers_do_not_change_for_line_endings_or_mtime(migrations: Path) -> None:
    before = _command(_synth(migrations)).input("triggers")
    first = sorted(migrations.glob("*.sql"))[0]
    first.write_bytes(first.read_bytes().replace(b"\n", b"\r\n"))  # a Windows checkout
    assert _command(_synth(migrations)).input("triggers") == before


@pytest.mark.parametrize("base", [AWS_BASE, GCP_BASE], ids=["aws", "gcp"])
def test_command_is_quiet_secret_and_harmless_to_delete(migrations: Path, base: dict[str, str]) -> None:
    cmd = _command(_synth(migrations, base=base))
    create = cmd.input("create")
    # relative to the project: the same input on every machine (no diff between checkouts)
    venv = Path(sys.prefix).resolve().relative_to(Path(__file__).resolve().parents[3])
    assert create == f"{venv}/bin/python -m infra migrate --stack dev --json"
    assert not create.startswith("/")
    assert cmd.input("dir") is None
    assert cmd.input("update") == create
    assert cmd.input("delete") is None  # removing the resource never touches the database
    assert cmd.input("logging") == "none"
    assert set(cmd.additional_secret_outputs) == {"stdout", "stderr"}
    env = cmd.input("environment")
    assert set(env) == {OUTPUTS_ENV}
    # the migrate command reads exactly this document: it must satisfy the contract
    outputs = parse_document(env[OUTPUTS_ENV], OUTPUTS_ENV)
    assert outputs.migrations == tuple(cmd.input("triggers"))


@pytest.mark.parametrize(
    "base",
    [
        AWS_BASE,
        GCP_BASE,
    ],
    ids=["aws", "gcp"],
)
def test_command_waits_for_database_bastion_and_stored_secrets(migrations: Path, base: dict[str, str]) -> None:
    cmd = _command(_synth(migrations, base=base))
    needed = DEPENDS[base["private-postgres:cloud"]]
    missing = [kind for kind in needed if not any(f"${kind}::" in urn for urn in cmd.dependencies)]
    assert missing == []
