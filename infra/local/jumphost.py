"""A real local jump host: OpenSSH ``sshd`` with generated keys, forward-only, for the demo and tests.

Configured from the one definition of a forward-only bastion (:mod:`infra.bastion`, which the
cloud ssh-mode bastions render too): public keys only, a forced no-op command instead of any
command or shell, no TTY, local (``-L``) forwarding only and only to the database (``PermitOpen``),
no remote, agent, X11 or Unix-socket forwarding. The host key is generated and written to a
``known_hosts`` file so the client runs with ``StrictHostKeyChecking=yes``, as against a cloud bastion.

Who logs in: never root. As root, sshd admits only the unprivileged system account ``ppjump``
(created on first use, no password, ``nologin`` shell); as a normal user, sshd runs unprivileged
and admits only that user (the one thing an unprivileged sshd can do). The key holder gets a
forward to the database, not a shell: not ``/etc/shadow``, not other local ports, not the
database's Unix socket.

Two ways to listen: sshd itself on ``listen:port`` (optionally inside ``netns``), or, with
``private_network``, a door: ``socat`` on ``127.0.0.1:port`` starting ``sshd -i`` inside the
database's private network for each connection (:mod:`infra.local.privnet`).
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import pwd
import select
import shlex
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.bastion import authorized_key_line, forward_only_sshd_config
from infra.errors import ToolMissing, TunnelError
from infra.local.pg import open_for_traversal
from infra.local.privnet import PrivateNetwork
from infra.postdeploy.tunnel import SshOptions, child_environment, free_port

__all__ = ["JUMP_ACCOUNT", "JumpHost", "JumpHostFiles", "find_sshd", "jump_account", "stop_jump_host"]

_log = logging.getLogger(__name__)

#: The unprivileged account root's jump host admits (sshd never admits root itself).
JUMP_ACCOUNT = "ppjump"


def jump_account() -> str:
    """Who may log in to the jump host: ``ppjump`` when root (created if missing), else this user."""
    if os.geteuid() != 0:
        return getpass.getuser()
    try:
        pwd.getpwnam(JUMP_ACCOUNT)
    except KeyError:
        nologin = shutil.which("nologin", path="/usr/sbin:/sbin:/usr/bin:/bin") or "/usr/sbin/nologin"
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, JUMP_ACCOUNT],
            check=True,
            capture_output=True,
            env=child_environment(),
        )
        # "*": no password can match, yet not the "!" that sshd (without PAM) reads as a locked account
        subprocess.run(["usermod", "-p", "*", JUMP_ACCOUNT], check=True, capture_output=True, env=child_environment())
    return JUMP_ACCOUNT


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
        env=child_environment(),
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

    @property
    def door_script(self) -> Path:
        return self.root / "door.sh"

    @property
    def door_pid_file(self) -> Path:
        return self.root / "door.pid"


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
        private_network: tuple[PrivateNetwork, Path] | None = None,
    ) -> None:
        """``private_network``: the network and the pid file of the process whose network sshd
        enters (the database's ``postmaster.pid``); the jump host then listens through a door."""
        self.files = JumpHostFiles(root.resolve())
        self.permit_open = (permit_open,) if isinstance(permit_open, str) else tuple(permit_open)
        self.listen = listen
        self.port = port if port is not None else free_port(listen if netns is None else "127.0.0.1")
        self.netns = netns
        self.private_network = private_network
        self.user = jump_account()
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
        if os.geteuid() == 0:
            # sshd reads authorized_keys as the jump account: it may traverse (not list) this
            # directory and its parents; the private keys stay 0600
            open_for_traversal(root.parent, recursive=False)
            root.chmod(0o711)
        else:
            root.chmod(0o700)
        _keygen(self.files.host_key, "local-jump-host")
        _keygen(self.files.client_key, "local-jump-client")
        client_pub = Path(f"{self.files.client_key}.pub").read_text()
        # the key itself is restricted too: a forward to the database, a no-op for anything else
        self.files.authorized_keys.write_text(authorized_key_line(client_pub, self.permit_open) + "\n")
        self.files.authorized_keys.chmod(0o644)  # a public key; sshd reads it as the jump account
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
            "UsePAM no",  # keys only; PAM would also need root to work at all
            "PubkeyAuthentication yes",
            "PermitRootLogin no",  # as root the jump host admits the unprivileged ppjump only
            "ClientAliveInterval 15",  # a dead client's forward is closed within ~45 s
            "ClientAliveCountMax 3",
            "UseDNS no",
            "PrintMotd no",
            "LogLevel VERBOSE",  # each login's key fingerprint and each refused forward
            # the files live in a directory we created; StrictModes walks up to / and would
            # reject a world-writable /tmp (sticky 1777) that holds the test directories
            "StrictModes no",
            *forward_only_sshd_config(self.permit_open, allow_users=[self.user]),
        ]
        return "\n".join(lines) + "\n"

    def _argv(self, *flags: str) -> list[str]:
        argv = [str(find_sshd()), *flags, "-f", str(self.files.config)]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    def _door_argv(self) -> list[str]:
        """socat on 127.0.0.1:port; each connection becomes ``sshd -i`` inside the private network."""
        assert self.private_network is not None
        network, pid_file = self.private_network
        sshd = [str(find_sshd()), "-i", "-e", "-f", str(self.files.config)]
        self.files.door_script.write_text("#!/bin/sh\n" + network.enter(pid_file, sshd) + "\n")
        self.files.door_script.chmod(0o700)
        if any(c in str(self.files.door_script) for c in " ,:!\"'\\"):
            raise TunnelError(f"the demo directory {self.files.root} must not contain spaces or , : ! quotes (socat)")
        listen = f"TCP-LISTEN:{self.port},bind={self.listen},reuseaddr,fork"
        return ["socat", listen, f"EXEC:{shlex.quote(str(self.files.door_script))},nofork"]

    def start(self, timeout: float = 20.0) -> None:
        """Start sshd (or its door) and wait until it accepts connections.

        The process runs in the foreground in its own session, spawned without a ``Popen``
        object: the local demo leaves it running after this process exits, and ``stop`` (or
        ``local down``, through the pid file) ends it. Its environment is scrubbed.
        """
        self.prepare()
        if os.geteuid() == 0:
            # sshd's privilege-separation directory; a fresh container may not have it
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        check = subprocess.run(
            [str(find_sshd()), "-t", "-f", str(self.files.config)] if self.private_network else self._argv("-t"),
            capture_output=True,
            text=True,
            env=child_environment(),
        )
        if check.returncode != 0:
            raise TunnelError(f"local sshd rejected its configuration: {check.stderr.strip()[-300:]}")
        argv = self._door_argv() if self.private_network else self._argv("-D", "-e")
        if self.private_network:
            argv[0] = shutil.which("socat") or argv[0]
        self._pid = os.posix_spawnp(
            argv[0],
            argv,
            child_environment(),
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
                    if self.private_network:
                        self.files.door_pid_file.write_text(f"{self._pid}\n")
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
            stop_jump_host(self.files.root)


def stop_jump_host(root: Path) -> bool:
    """Stop the jump host whose files are under ``root`` (its door, or sshd); True if one was stopped."""
    files = JumpHostFiles(root)
    door = stop_pid_file(files.door_pid_file, expect="socat")
    return stop_pid_file(files.pid_file, expect="sshd") or door


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
