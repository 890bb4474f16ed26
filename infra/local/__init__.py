"""The local stand-in for a cloud stack: embedded PostgreSQL 16, an OpenSSH jump host, the demo.

Owns the embedded PostgreSQL 16 server from the npm build (:mod:`~infra.local.pg`), the private
network that only the jump host reaches (:mod:`~infra.local.privnet`), the forward-only jump host
(:mod:`~infra.local.jumphost`), the demo's WAL archive, base backup and point-in-time recovery
(:mod:`~infra.local.backup`, used by ``restore-drill --local``) and ``python -m infra local up|down``
(:mod:`~infra.local.demo`), which runs the same post-deploy path as a cloud stack. Imports the
shared vocabulary, the migration engine and the post-deploy stage; nothing below imports it.
"""

from __future__ import annotations

__all__: list[str] = []
