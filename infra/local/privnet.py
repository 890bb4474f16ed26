"""The demo's private network: the database reachable only through the jump host, as in the cloud.

PostgreSQL starts as the first process of a network namespace of its own that holds nothing but
loopback, so its TCP port exists nowhere else on the machine. The jump host's door is the only way
in: ``socat`` listens on ``127.0.0.1:<port>`` in the machine's network and hands each connection to
``sshd -i`` started *inside* the namespace (``nsenter`` into the postmaster's namespaces), where
sshd may forward to the database's port and to nothing else.

As root the namespace is a plain network namespace (``unshare --net``) and PostgreSQL drops to its
unprivileged user inside. Without root it is a user namespace that maps the user to itself plus a
network namespace (``unshare --map-current-user --net``): the same picture, no privilege needed.
(A Unix socket alone would hide the port too, but PostgreSQL refuses TLS on Unix sockets, and the
demo's point is ``sslmode=verify-full`` through the tunnel, as against RDS or Cloud SQL.)

Restore and replica helpers place their servers with :meth:`PrivateNetwork.launch` as well and
reach them from inside with :meth:`PrivateNetwork.enter`.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TOOLS", "PrivateNetwork"]

#: The commands a private network needs, and the Debian package of each (.ci/system-packages.txt).
TOOLS: tuple[tuple[str, str], ...] = (
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("ip", "iproute2"),
    ("socat", "socat"),
)

# Inside a fresh namespace loopback is down (no 127.0.0.1): bring it up, then run the command.
_LO_UP = 'ip link set lo up && exec "$@"'


@dataclass(frozen=True)
class PrivateNetwork:
    """How to start a process in a new private network and how to enter it later."""

    user_namespace: bool  # True without root: a user namespace makes the network namespace possible

    @classmethod
    def here(cls) -> PrivateNetwork:
        return cls(user_namespace=os.geteuid() != 0)

    @staticmethod
    def missing_tools() -> list[str]:
        """One line per missing command, naming the package that provides it."""
        return [
            f"{tool!r} not found; install it (apt-get install {package})"
            for tool, package in TOOLS
            if shutil.which(tool) is None and shutil.which(tool, path="/usr/sbin:/sbin") is None
        ]

    def launch(self, argv: list[str], *, run_as: tuple[int, int] | None = None) -> list[str]:
        """``argv`` run as the first process of a new private network, loopback up.

        ``run_as`` (uid, gid): as root, the user the command runs as inside (PostgreSQL refuses root).
        Without root the command keeps the caller's uid and loses the namespace capabilities that
        bringing loopback up needed.
        """
        if self.user_namespace:
            unshare = ["unshare", "--map-current-user", "--net", "--keep-caps"]
            drop = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all"]
        else:
            unshare = ["unshare", "--net"]
            drop = []
            if run_as is not None:
                drop = ["setpriv", f"--reuid={run_as[0]}", f"--regid={run_as[1]}", "--init-groups"]
        return [*unshare, "--", "sh", "-c", _LO_UP, "sh", *drop, *argv]

    def enter(self, pid_file: Path, argv: list[str]) -> str:
        """A shell command that runs ``argv`` in the network of the process whose pid is the first
        line of ``pid_file`` (read at each run, so a restarted server is found again)."""
        target = f'"$(head -n 1 {shlex.quote(str(pid_file))})"'
        namespaces = "--user --net --preserve-credentials" if self.user_namespace else "--net"
        return f"exec nsenter --target {target} {namespaces} -- {shlex.join(argv)}"
