"""What an SSH jump host allows: forwarding to the database, and nothing else. One definition.

The local demo's jump host (:mod:`infra.local.jumphost`) writes these settings into its
``sshd_config``; the cloud ssh-mode bastions render the same ones into their user data (the
``sshd_config.d`` drop-in of :mod:`infra.provision.sshd`), so the demo shows what the cloud runs. Part of the shared
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
    "forward_only_settings",
    "forward_only_sshd_config",
]

#: What runs instead of any command or shell a client asks for: nothing, and a failing exit status.
NO_OP_COMMAND = "/bin/false"

#: ``(keyword, value)`` pairs of sshd_config (OpenSSH >= 7.8 for PermitListen), in order;
#: :func:`forward_only_settings` adds ``PermitOpen`` after ``AllowTcpForwarding``. Who may log in
#: (root, which users) is the host's business: the cloud images' own sshd_config and the local
#: jump host's (``PermitRootLogin no``, ``AllowUsers``).
FORWARD_ONLY_SSHD_SETTINGS: tuple[tuple[str, str], ...] = (
    ("AuthenticationMethods", "publickey"),  # keys only: no password to guess or phish
    ("PasswordAuthentication", "no"),
    ("KbdInteractiveAuthentication", "no"),
    ("ForceCommand", NO_OP_COMMAND),  # a session (shell or command) ends at once; -N opens none
    ("PermitTTY", "no"),
    ("AllowTcpForwarding", "local"),  # -L only: no remote (-R) listeners on the bastion
    ("PermitListen", "none"),  # and no listener on the bastion, whatever the client asks
    ("GatewayPorts", "no"),
    ("AllowAgentForwarding", "no"),
    ("AllowStreamLocalForwarding", "no"),  # no Unix sockets on the bastion (e.g. the system bus)
    ("X11Forwarding", "no"),
    ("PermitTunnel", "no"),
    ("PermitUserRC", "no"),
    ("PermitUserEnvironment", "no"),
)


def forward_only_settings(permit_open: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """The settings with ``PermitOpen`` set to ``permit_open`` (``host:port`` entries), in order.

    ``PermitOpen`` compares the destination the client asks for with these entries as text (no
    DNS lookup). Raises ValueError when ``permit_open`` is empty: "forward anywhere" is never the
    default.
    """
    targets = [t.strip() for t in permit_open if t.strip()]
    if not targets:
        raise ValueError("a forward-only bastion needs at least one PermitOpen target (host:port of the database)")
    out: list[tuple[str, str]] = []
    for keyword, value in FORWARD_ONLY_SSHD_SETTINGS:
        out.append((keyword, value))
        if keyword == "AllowTcpForwarding":
            out.append(("PermitOpen", " ".join(targets)))  # and only to the database
    return tuple(out)


def forward_only_sshd_config(permit_open: Sequence[str], *, allow_users: Iterable[str] = ()) -> list[str]:
    """:func:`forward_only_settings` as sshd_config lines, plus ``AllowUsers`` when ``allow_users``."""
    lines = [f"{keyword} {value}" for keyword, value in forward_only_settings(permit_open)]
    users = " ".join(allow_users)
    if users:
        lines.append(f"AllowUsers {users}")
    return lines


def authorized_key_line(public_key: str, permit_open: Sequence[str]) -> str:
    """An ``authorized_keys`` line for ``public_key`` that may only forward to ``permit_open``."""
    permits = ",".join(f'permitopen="{target}"' for target in permit_open)
    return f'restrict,port-forwarding,{permits},command="{NO_OP_COMMAND}" {public_key.strip()}'
