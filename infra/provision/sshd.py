"""The ssh-mode bastion's sshd settings: a key opens a tunnel to the database and nothing else.

Rendered into the bastion's first-boot script (AWS user data, GCP startup script) as a drop-in,
``/etc/ssh/sshd_config.d/00-forward-only.conf``. Debian 12 and Amazon Linux 2023 both include
that directory at the top of ``sshd_config``, sshd keeps the first value it reads for a keyword
(sshd_config(5)), and ``00-`` sorts before the distributions' own drop-ins (``50-redhat.conf``,
``50-cloud-init.conf``), so these values win.

The settings themselves are :data:`infra.bastion.FORWARD_ONLY_SSHD_SETTINGS`, the one list the
local jump host (``infra.local.jumphost``) enforces for the demo too.
"""

from __future__ import annotations

import re
import shlex

from infra import bastion

__all__ = ["DROP_IN", "forward_only_script", "forward_only_settings", "render_drop_in"]

DROP_IN = "/etc/ssh/sshd_config.d/00-forward-only.conf"
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}")


def forward_only_settings(host: str, port: int) -> tuple[tuple[str, str], ...]:
    """sshd keywords and values that allow only ``-L`` forwarding to ``host:port``.

    ``PermitOpen`` compares the destination the client asks for with ``host`` as text (no DNS
    lookup), so ``host`` is the name the tunnel forwards to: the stack output ``db_host``.
    """
    if not _HOST.fullmatch(host) or not 1 <= port <= 65535:
        raise ValueError(f"not a host name and port for PermitOpen: {host!r}:{port!r}")
    return bastion.forward_only_settings([f"{host}:{port}"])


def render_drop_in(host: str, port: int) -> str:
    lines = ["# forward-only bastion: written at first boot by the stack's user data / startup script"]
    lines += [f"{keyword} {value}" for keyword, value in forward_only_settings(host, port)]
    return "\n".join(lines) + "\n"


def forward_only_script(host: str, port: int) -> str:
    """Shell lines that install the drop-in, check the whole configuration with ``sshd -t`` and restart sshd.

    A configuration sshd rejects stops the script (``set -e``) before the restart, so the running
    sshd keeps its last good configuration and the boot log says why.
    """
    content = render_drop_in(host, port)
    return "\n".join(
        (
            "install -d -m 0755 /etc/ssh/sshd_config.d",
            f"printf '%s' {shlex.quote(content)} > {DROP_IN}",
            f"chmod 0644 {DROP_IN}",
            "/usr/sbin/sshd -t",
            "systemctl restart sshd",  # Debian's ssh.service is also reachable as sshd
        )
    )
