"""The jump host without root: sshd runs as an ordinary user and admits only that user.

The test is root (to become the unprivileged ``pglocal``) and runs a small script as ``nobody`` with the system
Python: start :class:`~infra.local.jumphost.JumpHost`, open an :class:`~infra.postdeploy.tunnel.SshTunnel`
through it to a local echo server, read the greeting.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.fixtures.requirements import missing, require_root

ROOT = Path(__file__).resolve().parents[3]
USER = "pglocal"

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
    require_root("becoming another user")
    python = shutil.which("python3", path="/usr/bin:/bin")
    setpriv = shutil.which("setpriv")
    if python is None or setpriv is None:
        missing("/usr/bin/python3 and setpriv (util-linux) are needed to run as another user")
    # an ordinary account: "nobody" is refused by sshd as locked; the embedded PostgreSQL's
    # unprivileged user is a plain system account, created the same way if it is not there yet
    try:
        user = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", USER], check=True, capture_output=True)
        user = pwd.getpwnam(USER)
    work = Path(tempfile.mkdtemp(prefix="pp-unpriv-", dir="/tmp"))  # /tmp: the user can reach it
    try:
        os.chown(work, user.pw_uid, user.pw_gid)
        script = work / "run.py"
        script.write_text(_SCRIPT.format(root=str(ROOT), work=str(work)))
        script.chmod(0o644)
        result = subprocess.run(
            [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", python, str(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)},
            check=False,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == f"hello from behind the jump host {USER}"
        config = (work / "jump" / "sshd_config").read_text()
        assert "PermitRootLogin no" in config
        assert f"AllowUsers {USER}" in config
    finally:
        shutil.rmtree(work, ignore_errors=True)
