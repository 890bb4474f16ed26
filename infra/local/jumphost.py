"""A real local jump host: OpenSSH ``sshd`` on a free port with generated keys, for the demo and tests.

It is configured like a hardened bastion: public-key authentication only, no TTY, no agent or X11
forwarding, local (``-L``) forwarding only and only to the database (``PermitOpen``). The host key
is generated and written to a ``known_hosts`` file so the client runs with
``StrictHostKeyChecking=yes``, exactly as against a cloud bastion.

Who logs in: sshd can only switch to another user when it runs as root. So the login user is
always the user running this code: as root, sshd runs as root and admits root by key only
(``PermitRootLogin prohibit-password``); as a normal user, sshd runs unprivileged and admits
only that user (the one thing an unprivileged sshd can do). sshd refuses an account it sees as
locked (e.g. ``nobody``), so the unprivileged user must be an ordinary account.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.errors import ToolMissing, TunnelError
from infra.postdeploy.tunnel import SshOptions, free_port

__all__ = ["JumpHost", "JumpHostFiles", "find_sshd"]

_log = logging.getLogger(__name__)


def find_sshd() -> Path:
    """Absolute path of sshd (it must be started by absolute path to re-exec itself)."""
    found = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin:/usr/local/sbin")
    if found is None:
        raise ToolMissing("'sshd' not found; install the OpenSSH server (apt-get install openssh-server)")
    return Path(found).resolve()


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    if shutil.which("ssh-keygen") is None:
        raise ToolMissing("'ssh-keygen' not found; install the OpenSSH client (apt-get install openssh-client)")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


@dataclass(frozen=True)
class JumpHostFiles:
    """The files of one jump host under its directory."""

    root: Path

    @property
    def host_key(self) -> Path:
        return self.root / "ssh_host_ed25519_key"

    @property
    def client_key(self) -> Path:
        return self.root / "client_ed25519_key"

    @property
    def authorized_keys(self) -> Path:
        return self.root / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def config(self) -> Path:
        return self.root / "sshd_config"

    @property
    def pid_file(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"


class JumpHost:
    """One sshd listening on ``listen:port`` that may forward only to ``permit_open`` (``host:port`` entries)."""

    def __init__(
        self,
        root: Path,
        *,
        permit_open: str | Sequence[str],
        listen: str = "127.0.0.1",
        port: int | None = None,
        netns: str | None = None,
    ) -> None:
        self.files = JumpHostFiles(root.resolve())
        self.permit_open = (permit_open,) if isinstance(permit_open, str) else tuple(permit_open)
        self.listen = listen
        self.port = port if port is not None else free_port(listen if netns is None else "127.0.0.1")
        self.netns = netns
        self.user = getpass.getuser()
        self._pid: int | None = None

    def ssh_options(self) -> SshOptions:
        """How a client reaches this jump host (our key, our known_hosts, no user ssh config)."""
        return SshOptions(
            host=self.listen,
            user=self.user,
            port=self.port,
            identity_file=self.files.client_key,
            known_hosts=self.files.known_hosts,
            config_file="none",
        )

    def prepare(self) -> None:
        """Generate keys, authorized_keys, known_hosts and sshd_config (idempotent)."""
        root = self.files.root
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o700)
        _keygen(self.files.host_key, "local-jump-host")
        _keygen(self.files.client_key, "local-jump-client")
        client_pub = Path(f"{self.files.client_key}.pub").read_text().strip()
        # restrict the key itself too: forwarding to the database only, nothing else
        permits = ",".join(f'permitopen="{p}"' for p in self.permit_open)
        self.files.authorized_keys.write_text(f"restrict,port-forwarding,{permits} {client_pub}\n")
        self.files.authorized_keys.chmod(0o600)
        host_pub = Path(f"{self.files.host_key}.pub").read_text().split()
        host_id = self.listen if self.port == 22 else f"[{self.listen}]:{self.port}"
        self.files.known_hosts.write_text(f"{host_id} {host_pub[0]} {host_pub[1]}\n")
        self.files.config.write_text(self._config())

    def _config(self) -> str:
        lines = [
            f"ListenAddress {self.listen}:{self.port}",
            f"HostKey {self.files.host_key}",
            f"PidFile {self.files.pid_file}",
            f"AuthorizedKeysFile {self.files.authorized_keys}",
            f"AllowUsers {self.user}",
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password" if os.geteuid() == 0 else "PermitRootLogin no",
            "UsePAM no",  # keys only; PAM would also need root to work at all
            # the files live in a 0700 directory we created; StrictModes walks up to / and would
            # reject a world-writable /tmp (sticky 1777) that holds the test directories
            "StrictModes no",
            "AllowTcpForwarding local",
            f"PermitOpen {' '.join(self.permit_open)}",
            "GatewayPorts no",
            "PermitTTY no",
            "X11Forwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "PermitTunnel no",
            "PermitUserEnvironment no",
            "ClientAliveInterval 15",
            "ClientAliveCountMax 3",
            "UseDNS no",
            "PrintMotd no",
            "LogLevel VERBOSE",
        ]
        return "\n".join(lines) + "\n"

    def _argv(self, *flags: str) -> list[str]:
        argv = [str(find_sshd()), *flags, "-f", str(self.files.config)]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def start(self, timeout: float = 20.0) -> None:
        """Start sshd and wait until it accepts connections.

        sshd runs in the foreground (``-D``) in its own session, spawned without a ``Popen``
        object: the local demo leaves it running after this process exits, and ``stop`` (or
        ``local down``, through the pid file) ends it.
        """
        self.prepare()
        if os.geteuid() == 0:
            # sshd's privilege-separation directory; a fresh container may not have it
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        check = subprocess.run(self._argv("-t"), capture_output=True, text=True)
        if check.returncode != 0:
            raise TunnelError(f"local sshd rejected its configuration: {check.stderr.strip()[-300:]}")
        argv = self._argv("-D", "-e")
        self._pid = os.posix_spawnp(
            argv[0],
            argv,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.files.log), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        deadline = time.monotonic() + timeout
        pidfd = os.pidfd_open(self._pid)
        try:
            while True:
                if self._accepts():
                    _log.info("local jump host listening on %s:%d (pid %d)", self.listen, self.port, self._pid)
                    return
                # wait on the process itself: wakes at once if sshd exits, else after one interval
                exited, _, _ = select.select([pidfd], [], [], 0.05)
                if exited:
                    _, status = os.waitpid(self._pid, 0)
                    self._pid = None
                    tail = self.files.log.read_text(errors="replace").strip().splitlines()[-3:]
                    code = os.waitstatus_to_exitcode(status)
                    raise TunnelError(f"local sshd exited with code {code}: {' | '.join(tail)}")
                if time.monotonic() >= deadline:
                    self.stop()
                    raise TunnelError(f"local sshd not listening on {self.listen}:{self.port} after {timeout:.0f}s")
        finally:
            os.close(pidfd)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection((self.listen, self.port), timeout=1.0) as sock:
                # sshd speaks first: its banner proves it is sshd and not another listener
                sock.settimeout(2.0)
                return sock.recv(4).startswith(b"SSH-")
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return self._pid

    def stop(self) -> None:
        """Stop sshd (ours, or the one named in the pid file) and wait until it is gone."""
        pid, self._pid = self._pid, None
        if pid is not None:
            _stop_pid(pid)
        else:
            stop_pid_file(self.files.pid_file)


def stop_pid_file(pid_file: Path, *, expect: str = "sshd", timeout: float = 10.0) -> bool:
    """SIGTERM the process named in ``pid_file`` and wait until it is gone; True if one was stopped.

    The process must still be ``expect`` (its command line is checked), so a stale pid file
    never kills an unrelated process that reused the pid.
    """
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return False
    if expect not in cmdline:
        return False
    return _stop_pid(pid, timeout)


def _stop_pid(pid: int, timeout: float = 10.0) -> bool:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        os.kill(pid, signal.SIGTERM)
        # the pidfd becomes readable when the process exits: an event, not a polling loop
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            select.select([fd], [], [], timeout)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # our own child (same process started it): reap the zombie
    return True
