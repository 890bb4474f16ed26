"""``python -m infra local up|down`` and ``tunnel --local``: the README's demo, end to end, in a temp dir."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import psycopg
import pytest

from infra.cli import main
from infra.local.demo import DemoState, LocalDemo
from infra.postdeploy.secrets import Credential
from infra.postdeploy.tunnel import free_port

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


def _ssh(demo: Path, state: DemoState, *args: str, user: str | None = None, stdin: str = "") -> tuple[int, str]:
    """Run the OpenSSH client against the demo's jump host with its key; (exit code, stdout+stderr)."""
    jump = LocalDemo(demo).jump_host(state.pg_port, state.sshd_port)
    argv = [
        "ssh", "-F", "none", "-i", str(jump.files.client_key), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={jump.files.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-p", str(state.sshd_port),
        "-l", user or jump.user, "127.0.0.1", *args,
    ]  # fmt: skip
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    return done.returncode, done.stdout + done.stderr


def _environ(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b"\n").decode(errors="replace")


def test_the_jump_host_only_forwards_and_the_database_is_private(
    demo_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 11.2 and 11.3 as written, against the running demo: each attack refused, the tunnel works."""
    for name in ("PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.setenv(name, f"sentinel-{name}")
    demo = demo_dir
    marker = tmp_path / "the-command-ran"
    try:
        assert main(["local", "up", "--dir", str(demo), "--no-seed", "--json"]) == 0
        capsys.readouterr()
        state = DemoState.load(demo)
        assert state is not None
        assert state.sshd_pid is not None
        jump = LocalDemo(demo).jump_host(state.pg_port, state.sshd_port)
        assert jump.user != "root"

        # 2. the key gives no command, no shell on stdin, no root login, no remote forward
        code, out = _ssh(demo, state, f"id; touch {marker}")
        assert code != 0
        assert "uid=" not in out
        code, out = _ssh(demo, state, stdin=f"id\ntouch {marker}\n")
        assert code != 0
        assert "uid=" not in out
        assert not marker.exists()
        code, out = _ssh(demo, state, "id", user="root")
        assert code == 255
        assert "Permission denied" in out
        code, out = _ssh(demo, state, "-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22")
        assert code == 255
        assert "remote port forwarding failed" in out

        # 2. another forward target is refused by the jump host itself (PermitOpen)
        port = free_port()
        with subprocess.Popen(
            [*_ssh_argv_for_forward(demo, state), "-L", f"127.0.0.1:{port}:127.0.0.1:{state.sshd_port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as forward:
            try:
                _wait_listening(port)
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    assert sock.recv(64) == b""  # closed at once: no SSH banner, no answer
            finally:
                forward.terminate()
            out, _ = forward.communicate(timeout=10)
        assert "administratively prohibited" in out
        # nor the database's Unix socket (trust for its superuser): no Unix-socket forwarding at all
        local_socket = tmp_path / "pg.sock"
        server_socket = demo / "pg" / "run" / f".s.PGSQL.{state.pg_port}"
        with subprocess.Popen(
            [*_ssh_argv_for_forward(demo, state), "-L", f"{local_socket}:{server_socket}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as forward:
            try:
                _wait_for(local_socket.exists)
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(5)
                    sock.connect(str(local_socket))
                    assert sock.recv(64) == b""
            finally:
                forward.terminate()
            out, _ = forward.communicate(timeout=10)
        assert "open failed" in out  # no stream-local forwarding; the socket directory is the server user's alone

        # 3. the database's port is not on this machine's network; the tunnel reaches it with TLS
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", state.pg_port), timeout=3).close()
        demo_obj = LocalDemo(demo)
        passwords = json.loads((demo / "secrets.json").read_text())
        with demo_obj.tunnel(state) as tunnel:
            params = demo_obj.route(state, tunnel.local_port).params(Credential("readonly", passwords["readonly"]))
            with params.connect() as conn:
                assert conn.pgconn.ssl_in_use
                # 7. readonly stores no large object, even after turning read-write back on
                conn.execute("SET default_transaction_read_only = off")
                conn.rollback()
                with pytest.raises(psycopg.errors.InsufficientPrivilege, match="lo_create"):
                    conn.execute("SELECT lo_create(0)")
            assert tunnel.pid is not None
            children = [_environ(tunnel.pid), _environ(state.sshd_pid)]
        postmaster = int((demo / "pg" / "data" / "postmaster.pid").read_text().split()[0])
        children.append(_environ(postmaster))
        for environ in children:
            assert "sentinel-" not in environ
        # 3. logs for their owner only
        for log in (demo / "pg" / "postgres.log", demo / "jumphost" / "sshd.log"):
            assert stat.S_IMODE(log.stat().st_mode) == 0o600, log
    finally:
        assert main(["local", "down", "--dir", str(demo)]) == 0


def _ssh_argv_for_forward(demo: Path, state: DemoState) -> list[str]:
    jump = LocalDemo(demo).jump_host(state.pg_port, state.sshd_port)
    return [
        "ssh", "-F", "none", "-N", "-i", str(jump.files.client_key), "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={jump.files.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes", "-p", str(state.sshd_port),
        "-l", jump.user, "127.0.0.1",
    ]  # fmt: skip


def _wait_for(ready: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() >= deadline:
            raise AssertionError("the forward never listened")
        time.sleep(0.05)


def _wait_listening(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the forward on port {port} never listened")
