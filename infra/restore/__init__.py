"""Stage 3 (beside drift), the restore drill: a backup is proven only by restoring it.

``python -m infra restore-drill --stack S [--to TIMESTAMP|latest] [--keep]`` restores the stack's
database to a point in time into a temporary copy (AWS: ``restore_db_instance_to_point_in_time``
into the stack's private subnets and security group; GCP: a Cloud SQL clone with
``pointInTime``), reaches it through the bastion with ``verify-full``, verifies it, reports RPO and
RTO, and deletes it. ``restore-drill --local [--to TIMESTAMP]`` does the same for real on the local
demo: its PostgreSQL 16 archives WAL and keeps a base backup (:mod:`infra.local.backup`), and the
drill recovers a second cluster to the requested time.

Modules: :mod:`~infra.restore.checks` (what a restored copy must satisfy: the ledger as of the
restore time, the catalog recorded with that ledger, plausible row counts, the read-only checks),
:mod:`~infra.restore.report`, :mod:`~infra.restore.aws`, :mod:`~infra.restore.gcp`,
:mod:`~infra.restore.local`, :mod:`~infra.restore.drill` (the cloud orchestration) and
:mod:`~infra.restore.cli`.

Placement: beside drift, as an independent layer (``drift | restore`` in ``pyproject.toml``). The
drill needs the post-deploy stage (stack context, tunnel, ``Route``, ``verify``), the local demo
(``--local``) and the migration engine's ledger and catalog, so it sits above ``local``; it needs
nothing from drift (the catalog comparison is the engine's, :mod:`infra.migrations.catalog`), and
drift needs nothing from it, so neither loads the other's cloud clients. Nothing is imported here.
"""

from __future__ import annotations

__all__: list[str] = []
