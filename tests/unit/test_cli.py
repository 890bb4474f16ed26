"""The one entry point: usage errors, error lines, --traceback, and the exit-code contract."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cli import COMMAND_MODULES, COMMANDS, build_parser, command_modules, main
from infra.errors import ExitCode
from infra.paths import PROJECT_DIR


def test_a_usage_error_is_not_read_as_drift(capsys: pytest.CaptureFixture[str]) -> None:
    # argparse would exit 2, which a scheduler reads as "drift found"
    assert main(["drift", "--stack", "dev", "--no-such-flag"]) == 64 == int(ExitCode.USAGE)
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_an_error_is_one_line_and_traceback_adds_the_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["status", "--migrations-dir", str(tmp_path / "absent"), "--host", "127.0.0.1", "--port", "1"]
    assert main(argv) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert main(["--traceback", *argv]) == ExitCode.ERROR
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.rstrip().splitlines()[-1].startswith("error: ")


def _registered(module: str) -> list[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(module).register(subparsers)
    return list(subparsers.choices)


def test_the_command_table_is_what_the_modules_register() -> None:
    # the table lets `python -m infra migrate` import one stage; a command it misses would not parse
    registered = {command: module for module in COMMAND_MODULES for command in _registered(module)}
    assert dict(COMMANDS) == registered


@pytest.mark.parametrize(
    ("argv", "modules"),
    [
        (["migrate", "--help"], ("infra.postdeploy.cli",)),
        (["-vv", "--traceback", "seed", "--stack", "dev"], ("infra.postdeploy.seed_cli",)),
        (["-h", "migrate"], COMMAND_MODULES),  # the top-level help lists every command
        (["--verb", "migrate"], COMMAND_MODULES),  # an abbreviated option: argparse decides
        (["migrat"], COMMAND_MODULES),  # a typo: the error lists every command
        (["--", "migrate"], COMMAND_MODULES),
        ([], COMMAND_MODULES),
    ],
)
def test_only_the_command_s_module_is_registered(argv: list[str], modules: tuple[str, ...]) -> None:
    assert command_modules(argv) == modules


def _help(parser: argparse.ArgumentParser, argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(argv)
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["migrate", "status", "import", "seed", "local", "drift", "restore-drill"])
def test_help_reads_the_same_with_one_module_registered(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [command, "--help"]
    lazy = build_parser(argv)
    full_help = _help(build_parser(), argv, capsys)
    assert full_help.startswith(f"usage: python -m infra {command} ")
    assert _help(lazy, argv, capsys) == full_help


def test_a_mistyped_command_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrat"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "invalid choice: 'migrat'" in err
    assert all(repr(command) in err for command in COMMANDS)


def test_a_command_imports_its_own_stage_only() -> None:
    # what start-up saves: `migrate` loads neither the other stages nor the engine modules of other verbs
    probe = "import sys; from infra.cli import build_parser; build_parser(['migrate']); print(*sorted(sys.modules))"
    run = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_DIR, check=True, capture_output=True, text=True)
    loaded = set(run.stdout.split())
    assert {"infra.postdeploy.cli", "infra.migrations.cli", "infra.migrations.commands"} <= loaded
    assert not {"infra.drift.cli", "infra.local.cli", "infra.restore.cli", "infra.acceptance.cli"} & loaded
    other_verbs = {"lint", "locks", "measure", "scratch", "importers.convert", "importers.model"}
    assert not {f"infra.migrations.{name}" for name in other_verbs} & loaded
