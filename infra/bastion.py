"""What an SSH jump host allows: forwarding to the database, and nothing else. One definition.

The local demo's jump host (:mod:`infra.local.jumphost`) writes these settings into its
``sshd_config``; the cloud ssh-mode bastions render the same ones into their user data (an
``sshd_config.d`` drop-in), so the demo shows what the cloud runs. Part of the shared
vocabulary: provisioning may import it, and it imports nothing from any stage.

By construction a key holder can open a local (``-L``) forward to the database and nothing
else: no command or shell (a forced no-op command, no TTY), no other forward target
(``PermitOpen``), no remote forward, agent, X11, Unix-socket or tun forwarding, no user
environment or rc file. The authorized key repeats the restrictions (``restrict`` plus only
``port-forwarding`` and ``permitopen``), so a config that drifted would still not open a shell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = [
    "FORWARD_ONLY_SSHD_SETTINGS",
    "NO_OP_COMMAND",
    "authorized_key_line",
    "forward_only_sshd_config",
]

#: What runs instead of any command or shell a client asks for: nothing, and a failing exit status.
NO_OP_COMMAND = "/bin/false"

#: ``(keyword, value)`` pairs of sshd_config (OpenSSH >= 7.8 for PermitListen), in order.
FORWARD_ONLY_SSHD_SETTINGS: tuple[tuple[str, str], ...] = (
    ("AuthenticationMethods", "publickey"),  # keys only: no password to guess or phish
    ("PubkeyAuthentication", "yes"),
    ("PasswordAuthentication", "no"),
    ("KbdInteractiveAuthentication", "no"),
    ("PermitRootLogin", "no"),  # the forwarding account is an unprivileged one
    ("PermitEmptyPasswords", "no"),
    ("ForceCommand", NO_OP_COMMAND),  # a command or a shell on stdin runs this instead
    ("PermitTTY", "no"),
    ("AllowTcpForwarding", "local"),  # -L only: no remote (-R) forwards
    ("PermitListen", "none"),  # and no listener on the bastion, whatever the client asks
    ("GatewayPorts", "no"),
    ("AllowAgentForwarding", "no"),
    ("AllowStreamLocalForwarding", "no"),  # no Unix sockets on the bastion (e.g. the system bus)
    ("X11Forwarding", "no"),
    ("PermitTunnel", "no"),
    ("PermitUserEnvironment", "no"),
    ("PermitUserRC", "no"),
    ("ClientAliveInterval", "15"),  # a dead client's forward is closed within ~45 s
    ("ClientAliveCountMax", "3"),
    ("UseDNS", "no"),
    ("PrintMotd", "no"),
    ("LogLevel", "VERBOSE"),  # logs the key fingerprint of each login and each refused forward
)


def forward_only_sshd_config(permit_open: Sequence[str], *, allow_users: Iterable[str] = ()) -> list[str]:
    """The settings as sshd_config lines, with ``PermitOpen`` set to ``permit_open`` (``host:port``).

    ``allow_users`` adds an ``AllowUsers`` line (the one account that forwards). Raises
    ValueError when ``permit_open`` is empty: "forward anywhere" is never the default.
    """
    targets = [t.strip() for t in permit_open if t.strip()]
    if not targets:
        raise ValueError("a forward-only bastion needs at least one PermitOpen target (host:port of the database)")
    users = " ".join(allow_users)
    lines = [f"{keyword} {value}" for keyword, value in FORWARD_ONLY_SSHD_SETTINGS]
    lines.append(f"PermitOpen {' '.join(targets)}")
    if users:
        lines.append(f"AllowUsers {users}")
    return lines


def authorized_key_line(public_key: str, permit_open: Sequence[str]) -> str:
    """An ``authorized_keys`` line for ``public_key`` that may only forward to ``permit_open``."""
    permits = ",".join(f'permitopen="{target}"' for target in permit_open)
    return f'restrict,port-forwarding,{permits},command="{NO_OP_COMMAND}" {public_key.strip()}'
