"""Cloud SQL Managed Connection Pooling on the primary: the pooler's settings, and its endpoint.

Only Enterprise Plus instances have it (Cloud SQL "Managed Connection Pooling overview",
Requirements: "Your instance must be a Cloud SQL Enterprise Plus edition instance"); the config
refuses ``pooler=managed`` on ENTERPRISE, and README "Pooling on GCP" says why we do not run a
PgBouncer VM instead. pulumi_gcp 10.2.0 calls the block ``settings.connection_pool_configs``
(TF ``connection_pool_config``, a set; the provider sends ``databaseVersion`` with the patch).
The provider's own example pairs it with ``edition="ENTERPRISE_PLUS"`` and a
``db-perf-optimized-N-*`` tier (TPG website/docs/r/sql_database_instance.html.markdown).

Flag names are Cloud SQL's ("Configure Managed Connection Pooling"; memory, verify with a
preview): ``pool_mode``, ``client_connection_idle_timeout``, ``query_wait_timeout``.
"""

from __future__ import annotations

import pulumi_gcp as gcp

from infra.config import ScaleSettings

__all__ = ["POOLER_FLAGS", "POOLER_PORT", "pool_configs"]

# With pooling on, the pooler listens beside the server on the same private address (Cloud SQL
# "Managed Connection Pooling overview", ports; memory, verify): direct connections stay on 5432.
POOLER_PORT = 6432

# Sorted by name: the API returns them sorted, and another order is a change on every preview.
POOLER_FLAGS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            ("pool_mode", "transaction"),  # a server connection per transaction (the tenant check relies on it)
            ("client_connection_idle_timeout", "1800"),  # s: as RDS Proxy's idle client timeout
            ("query_wait_timeout", "30"),  # s: as RDS Proxy's borrow timeout
        )
    )
)


def pool_configs(scale: ScaleSettings) -> list[gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigArgs] | None:
    """``settings.connection_pool_configs`` for the primary; None (the block absent) without a pooler."""
    if not scale.pooled:
        return None
    return [
        gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigArgs(
            connection_pooling_enabled=True,
            flags=[
                gcp.sql.DatabaseInstanceSettingsConnectionPoolConfigFlagArgs(name=name, value=value)
                for name, value in POOLER_FLAGS
            ],
        )
    ]
