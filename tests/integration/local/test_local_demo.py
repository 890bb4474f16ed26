"""``python -m infra local up|down`` and ``tunnel --local``: the README's demo, end to end, in a temp dir."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.cli import main
from infra.local.demo import DemoState

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_local_up_twice_tunnel_and_down(demo_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    demo = demo_dir
    try:
        assert main(["local", "up", "--dir", str(demo), "--json"]) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["ok"] is True
        assert first["tunnel"] == "ssh"
        assert first["migrations_applied"] == sorted(p.stem for p in (ROOT / "schema/migrations").glob("*.sql"))
        assert first["seeded"] is True
        assert "create login role app" in first["bootstrap"]
        for name in ("secrets.json", "pgpass"):
            assert stat.S_IMODE((demo / name).stat().st_mode) == 0o600
        passwords = json.loads((demo / "secrets.json").read_text()).values()

        # a second `up` reuses everything: no role change, nothing to migrate, seed is idempotent
        assert main(["local", "up", "--dir", str(demo)]) == 0
        out = capsys.readouterr().out
        assert "bootstrap:  roles in place, nothing changed" in out
        assert "migrations: up to date" in out
        assert "verify:     ok" in out
        assert f"tunnel --local --dir {demo}" in out
        assert not any(p in out for p in passwords)

        state = DemoState.load(demo)
        assert state is not None
        assert state.sshd_pid is not None
        assert _alive(state.sshd_pid)
        _tunnel_and_psql_parameters(demo, passwords)
    finally:
        assert main(["local", "down", "--dir", str(demo)]) == 0
    assert "stopped the jump host (sshd)" in capsys.readouterr().out
    assert not _alive(state.sshd_pid)
    assert not demo.exists()
    assert main(["local", "down", "--dir", str(demo)]) == 0
    assert capsys.readouterr().out.strip() == "nothing to stop"


def _tunnel_and_psql_parameters(demo: Path, passwords: Collection[str]) -> None:
    """``tunnel --local`` prints libpq parameters that work (password from the pgpass file)."""
    with subprocess.Popen(
        [sys.executable, "-m", "infra", "tunnel", "--local", "--dir", str(demo), "--role", "readonly"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            for line in proc.stdout:  # blocks until the tunnel is up and the parameters are printed
                lines.append(line.rstrip("\n"))
                if line.startswith("PGPASSFILE="):
                    break
            params: dict[str, Any] = dict(ln.strip().split("=", 1) for ln in lines if ln.startswith("  ") and "=" in ln)
            assert params["sslmode"] == "verify-full"
            assert params["hostaddr"] == "127.0.0.1"
            assert params["host"] == "db.demo.internal"
            with psycopg.connect(**params, passfile=str(demo / "pgpass")) as conn:
                assert conn.execute("SELECT current_user").fetchone() == ("readonly",)
                assert conn.pgconn.ssl_in_use
            assert not any(p in "\n".join(lines) for p in passwords)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 130  # Ctrl-C: the documented exit code, tunnel closed
