"""The jump host without root: sshd runs as an ordinary user and admits only that user.

The test is root (to become the unprivileged ``pglocal``) and runs a small script as ``nobody`` with the system
Python: start :class:`~infra.local.jumphost.JumpHost`, open an :class:`~infra.postdeploy.tunnel.SshTunnel`
through it to a local echo server, read the greeting.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.unprivileged import USER, as_ordinary_user

_SCRIPT = """
import socket, sys, threading
sys.path.insert(0, {root!r})
from pathlib import Path
from infra.local.jumphost import JumpHost
from infra.postdeploy.tunnel import SshTunnel

srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
port = srv.getsockname()[1]

def serve():
    while True:
        conn, _ = srv.accept()
        conn.sendall(b"hello from behind the jump host")
        conn.close()

threading.Thread(target=serve, daemon=True).start()
host = JumpHost(Path({work!r}) / "jump", permit_open=f"127.0.0.1:{{port}}")
host.start()
try:
    with SshTunnel(host.ssh_options(), "127.0.0.1", port) as tunnel:
        with socket.create_connection(("127.0.0.1", tunnel.local_port)) as sock:
            print(sock.recv(64).decode(), host.user)
finally:
    host.stop()
"""


def test_sshd_as_an_ordinary_user(tmp_path: Path, sshd_binary: str) -> None:
    with as_ordinary_user("pp-unpriv-") as (work, run):
        result = run(_SCRIPT, 60)
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == f"hello from behind the jump host {USER}"
        config = (work / "jump" / "sshd_config").read_text()
        assert "PermitRootLogin no" in config
        assert f"AllowUsers {USER}" in config
