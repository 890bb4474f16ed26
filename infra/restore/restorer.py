"""What the drill asks of a cloud: the restore window, a point-in-time copy, and its deletion."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from infra.postdeploy.verify import Check
from infra.restore.window import RestoreWindow

__all__ = ["CopyEndpoint", "Restorer"]


@dataclass(frozen=True)
class CopyEndpoint:
    """A restored copy that is available: where the bastion forwards to, and the name TLS checks."""

    name: str
    address: str  # what the bastion connects to (an endpoint name or a private address)
    tls_name: str  # the name in the copy's server certificate (verify-full checks it)
    port: int
    placement: Check  # where and how the copy runs, as the cloud describes it
    ca_pem: str = ""  # extra CA certificates the copy's certificate may chain to


class Restorer(Protocol):
    """One cloud's point-in-time copies of the stack's database instance."""

    platform: str
    source: str

    def copy_name(self, started_at: dt.datetime) -> str: ...

    def window(self) -> RestoreWindow:
        """The restore window; RestoreError when there is no backup yet or PITR is off."""
        ...

    def restore(self, copy: str, when: dt.datetime | None, tags: Mapping[str, str]) -> None:
        """Request the copy (``when`` None: the newest restorable time); RestoreError when refused."""
        ...

    def wait(self, copy: str) -> CopyEndpoint:
        """Wait until the copy is available; RestoreError naming the timeout used otherwise."""
        ...

    def delete(self, copy: str) -> str:
        """Delete the copy; a word for the report ("deleting", "deleted")."""
        ...
