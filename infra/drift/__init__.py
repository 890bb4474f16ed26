"""Stage 3, drift: what changed outside ``pulumi up`` and outside the migrations.

* :mod:`~infra.drift.infra`: the infrastructure check (Pulumi Automation API refresh and preview);
* :mod:`~infra.drift.expected`: the expected catalog, built by applying the migrations to a
  throwaway PostgreSQL 16 and cached by key;
* :mod:`~infra.drift.schema`: the ledger against the files, the live catalog against the expected one;
* :mod:`~infra.drift.rules`: severities, and what the managed service adds by itself (ignored);
* :mod:`~infra.drift.model` and :mod:`~infra.drift.report`: the items and their text, JSON and markdown;
* :mod:`~infra.drift.cli`: ``python -m infra drift`` with its exit codes (0 clean, 2 drift, 1 could not check).

Imports the stages before it (the local embedded PostgreSQL, the post-deploy bootstrap, the engine).
"""

from __future__ import annotations

from infra.drift.model import DriftItem, DriftReport, Severity

__all__ = ["DriftItem", "DriftReport", "Severity"]
