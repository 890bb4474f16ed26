"""Stage 3, drift: what changed outside ``pulumi up`` and outside the migrations.

Owns the infrastructure check (Pulumi Automation API refresh and preview) and the schema check
(the ledger against the files, the live catalog against the expected one), and ``python -m infra
drift`` with its exit codes (0 clean, 2 drift, 1 could not check). Imports the stages before it.
"""

from __future__ import annotations

__all__: list[str] = []
