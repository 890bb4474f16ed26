"""The demo's private network without root (issue 11.3): a user namespace, the door, sshd inside.

As ``pglocal`` (an ordinary account) with the system Python: a small TCP service starts as the
first process of a :class:`~infra.local.privnet.PrivateNetwork` (the place PostgreSQL takes in the
demo), a :class:`~infra.local.jumphost.JumpHost` opens its door into that network, and an
:class:`~infra.postdeploy.tunnel.SshTunnel` reaches the service through it; a direct connection
to the service's port from the machine's network is refused.
"""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.unprivileged import USER, as_ordinary_user

_SCRIPT = """
import os, socket, subprocess, sys, time
sys.path.insert(0, {root!r})
from pathlib import Path
from infra.local.jumphost import JumpHost
from infra.local.privnet import PrivateNetwork
from infra.postdeploy.tunnel import SshTunnel, free_port

work = Path({work!r})
port = free_port()
pid_file = work / "service.pid"
service = (
    "import os, socket\\n"
    f"open({{str(pid_file)!r}}, 'w').write(str(os.getpid()))\\n"
    "srv = socket.socket(); srv.bind(('127.0.0.1', {{port}})); srv.listen()\\n"
    "while True:\\n"
    "    conn, _ = srv.accept(); conn.sendall(b'hello from the private network'); conn.close()\\n"
).replace("{{port}}", str(port))
network = PrivateNetwork(user_namespace=True)
proc = subprocess.Popen(network.launch([sys.executable, "-c", service]))
try:
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    time.sleep(0.2)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        print("DIRECT CONNECTION WORKED")
    except OSError as exc:
        print("direct:", type(exc).__name__)
    host = JumpHost(work / "jump", permit_open=f"127.0.0.1:{{port}}", private_network=(network, pid_file))
    host.start()
    try:
        with SshTunnel(host.ssh_options(), "127.0.0.1", port) as tunnel:
            with socket.create_connection(("127.0.0.1", tunnel.local_port)) as sock:
                print(sock.recv(64).decode(), host.user)
    finally:
        host.stop()
finally:
    proc.kill()
"""


def test_private_network_and_door_as_an_ordinary_user(tmp_path: Path, sshd_binary: str) -> None:
    with as_ordinary_user("pp-privnet-", "socat") as (_work, run):
        result = run(_SCRIPT, 90)
        assert result.returncode == 0, result.stderr[-2000:]
        direct, through_the_door = result.stdout.splitlines()
        assert direct == "direct: ConnectionRefusedError"
        assert through_the_door == f"hello from the private network {USER}"
