"""``local up`` on a machine that lacks something: one error naming each missing part and its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli import main


def test_missing_tools_are_listed_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("PG16_BINDIR", str(tmp_path / "no-pg16"))
    demo = tmp_path / "demo"
    assert main(["local", "up", "--dir", str(demo)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: the local demo cannot start: ")
    assert "'ssh' not found; install it (apt-get install openssh-client)" in err
    assert "'ssh-keygen' not found" in err
    assert "postgresql 16 binary 'postgres' not found" in err
    assert "run `make install`" in err
    assert not demo.exists()  # nothing was started or written


def test_the_server_processes_get_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.local.pg import server_env

    monkeypatch.setenv("AWS_SESSION_TOKEN", "aws-secret")
    monkeypatch.setenv("PULUMI_ACCESS_TOKEN", "pul-secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    env = server_env()
    assert env["LANG"] == "C.UTF-8"
    assert "AWS_SESSION_TOKEN" not in env
    assert "PULUMI_ACCESS_TOKEN" not in env
