"""The cloud acceptance run, for people with cloud accounts: deploy, migrate, check, destroy, twice.

Owns :mod:`~infra.acceptance.driver` (the steps, run through the Pulumi CLI and this project's
own commands as child processes, with the one fallback GCP needs to finish a destroy) and
:mod:`~infra.acceptance.cli` (``python -m infra acceptance`` and ``python -m infra teardown``;
``make cloud-acceptance STACK=...``; ``.github/workflows/cloud-acceptance.yml``).

The top stage: it drives every other one from the outside (as processes) and imports only the
shared vocabulary and the provisioning stage's stack-file reader.
"""

from __future__ import annotations

__all__: list[str] = []
