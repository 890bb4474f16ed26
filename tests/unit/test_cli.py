"""The one entry point: usage errors, error lines, --traceback, and the exit-code contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main
from infra.errors import ExitCode


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
