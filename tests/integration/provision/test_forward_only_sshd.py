"""The ssh-mode bastion's sshd drop-in (``infra.provision.sshd``) in a real OpenSSH ``sshd``.

The drop-in is placed first in the server's configuration, as the bastion's ``Include`` of
``sshd_config.d`` puts it, and the rest of the file is what this test needs to run sshd on a free
loopback port. The key holder can forward to the database and nowhere else, gets no shell, and
cannot open a remote (``-R``) listener on the bastion. (Each test asks for ``sshd_binary``: the
fixture plugin marks the tests that need a real sshd.)
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.postdeploy.tunnel import free_port
from infra.provision.sshd import render_drop_in


@dataclass
class Bastion:
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    config: Path

    def ssh(self, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
        argv = [
            "ssh",
            "-F",
            "none",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            *args,
            f"{self.user}@127.0.0.1",
        ]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def database() -> Iterator[int]:
    """A TCP echo server standing in for the database."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                data = conn.recv(1024)
                if data:
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    server.close()


@pytest.fixture(scope="module")
def sshd_path() -> str:
    """sshd by absolute path (it re-executes itself); skips locally, fails in CI, when not installed."""
    from tests.fixtures.requirements import require_binary

    require_binary("ssh")
    return os.path.realpath(require_binary("sshd"))


@pytest.fixture(scope="module")
def bastion(tmp_path_factory: pytest.TempPathFactory, database: int, sshd_path: str) -> Iterator[Bastion]:
    sshd = sshd_path
    root = tmp_path_factory.mktemp("forward-only")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True)
    user = getpass.getuser()
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    (root / "authorized_keys").chmod(0o600)
    port = free_port()
    host_key = (root / "host_key.pub").read_text().split()
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    config = root / "sshd_config"
    config.write_text(
        render_drop_in("127.0.0.1", database)  # first: sshd keeps the first value of each keyword
        + "\n".join(
            (
                f"ListenAddress 127.0.0.1:{port}",
                f"HostKey {root / 'host_key'}",
                f"PidFile {root / 'sshd.pid'}",
                f"AuthorizedKeysFile {root / 'authorized_keys'}",
                f"AllowUsers {user}",
                "PermitRootLogin prohibit-password" if os.geteuid() == 0 else "PermitRootLogin no",
                "UsePAM no",
                "StrictModes no",  # the files live under the test's temporary directory
                "",
            )
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    # the log goes to a file, not a pipe: sshd's per-connection children inherit it and would keep a
    # pipe open after the listener exits
    log = root / "sshd.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=log_file, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while not _accepts(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.fail(f"sshd did not start: {log.read_text()[-500:]}")
        time.sleep(0.05)
    try:
        yield Bastion(port, user, root / "client_key", root / "known_hosts", config)
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process is still there after 10 s (a loaded machine)."""
    proc.terminate()
    try:
        proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def _forward(bastion: Bastion, destination: str) -> Iterator[int]:
    local = free_port()
    argv = ["-N", "-L", f"127.0.0.1:{local}:{destination}", "-o", "ExitOnForwardFailure=yes"]
    ssh = subprocess.Popen(
        ["ssh", "-F", "none", "-p", str(bastion.port), "-i", str(bastion.client_key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={bastion.known_hosts}", "-o", "StrictHostKeyChecking=yes",
         *argv, f"{bastion.user}@127.0.0.1"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not _accepts(local):
            assert ssh.poll() is None, ssh.communicate()[1].decode()
            assert time.monotonic() < deadline, "the forward never listened"
            time.sleep(0.05)
        yield local
    finally:
        _stop(ssh)


def _echo(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(b"ping")
        conn.settimeout(5)
        try:
            return conn.recv(1024)
        except (ConnectionResetError, TimeoutError):
            return b""


def test_the_effective_configuration_is_forward_only(bastion: Bastion, database: int, sshd_binary: str) -> None:
    effective = subprocess.run(
        [os.path.realpath(sshd_binary), "-T", "-f", str(bastion.config)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    settings = dict(line.split(" ", 1) for line in effective if " " in line)
    assert settings["permitopen"] == f"127.0.0.1:{database}"
    assert settings["forcecommand"] == "/bin/false"
    assert settings["allowtcpforwarding"] == "local"
    for keyword in ("permittty", "allowagentforwarding", "x11forwarding", "permittunnel", "passwordauthentication"):
        assert settings[keyword] == "no", keyword
    assert settings["allowstreamlocalforwarding"] == "no"
    assert settings["permitlisten"] == "none"


def test_the_key_forwards_to_the_database(bastion: Bastion, database: int, sshd_binary: str) -> None:
    with _forward(bastion, f"127.0.0.1:{database}") as local:
        assert _echo(local) == b"ping"


def test_the_key_cannot_forward_anywhere_else(bastion: Bastion, database: int, sshd_binary: str) -> None:
    elsewhere = bastion.port  # the bastion's own sshd: a port that certainly listens
    with _forward(bastion, f"127.0.0.1:{elsewhere}") as local:
        assert _echo(local) == b""  # "administratively prohibited": the channel closes at once


def test_the_key_gets_no_shell_and_no_command(bastion: Bastion, sshd_binary: str) -> None:
    run = bastion.ssh("id")
    assert run.returncode != 0  # ForceCommand /bin/false
    assert "uid=" not in run.stdout


def test_the_key_cannot_listen_on_the_bastion(bastion: Bastion, sshd_binary: str) -> None:
    run = bastion.ssh("-N", "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{free_port()}:127.0.0.1:22")
    assert run.returncode != 0
    assert "remote port forwarding failed" in run.stderr
