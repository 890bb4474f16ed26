"""The Cloud SQL PostgreSQL 16 instance (private IP only), its application database, the admin
user with its generated password in Secret Manager, and the private DNS record of the instance's
name. Nothing else."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi
import pulumi_gcp as gcp

from infra.config import DatabaseSettings, GcpSettings, ScaleSettings, StackMeta
from infra.enums import Edition
from infra.errors import ProvisionError
from infra.provision.gcp.pooler import pool_configs
from infra.provision.gcp.secrets import stored_secret
from infra.provision.naming import instance_suffix
from infra.provision.passwords import generated_password, secret_document

__all__ = [
    "DATABASE_FLAGS",
    "DATABASE_VERSION",
    "Database",
    "ca_bundle",
    "insights_config",
    "log_retention_days",
    "maintenance_window",
    "private_dns_name",
    "private_name_zone",
]

DATABASE_VERSION = "POSTGRES_16"  # major only: Cloud SQL applies minor versions in maintenance
BACKUP_START = "03:00"  # UTC; before the maintenance window
MAINTENANCE_DAY = 7  # Sunday
MAINTENANCE_HOUR = 4  # UTC
# Transaction logs for point-in-time recovery: ENTERPRISE keeps 1-7 days, ENTERPRISE_PLUS 1-35
# (TPG sql_database_instance `transaction_log_retention_days`).
_LOG_RETENTION_LIMIT = {Edition.ENTERPRISE: 7, Edition.ENTERPRISE_PLUS: 35}
# What pgAudit writes once the extension exists (the post-deploy bootstrap creates it): DDL and role
# changes (GRANT, CREATE/ALTER ROLE). Not read/write: volume and personal data.
PGAUDIT_LOG = "ddl,role"

# Sorted by name: the API returns flags sorted, and any other order is a change on every preview.
DATABASE_FLAGS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            ("cloudsql.enable_pgaudit", "on"),  # CIS GCP 6.2.8, with pgaudit.log and the extension
            ("pgaudit.log", PGAUDIT_LOG),  # without it pgAudit loads but records nothing
            ("log_connections", "on"),  # CIS GCP 6.2.2
            ("log_disconnections", "on"),  # CIS GCP 6.2.3
            ("log_min_duration_statement", "-1"),  # CIS GCP 6.2.7: no statement text by duration (PII)
            ("log_min_error_statement", "error"),  # CIS GCP 6.2.6
            ("log_min_messages", "warning"),  # CIS GCP 6.2.5
            ("log_statement", "ddl"),  # CIS GCP 6.2.4: schema changes audited; DML is not (volume, PII)
        )
    )
)


def maintenance_window() -> gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs:
    """The primary's and each replica's: the same weekly hour, on the stable update track."""
    return gcp.sql.DatabaseInstanceSettingsMaintenanceWindowArgs(
        day=MAINTENANCE_DAY, hour=MAINTENANCE_HOUR, update_track="stable"
    )


def insights_config() -> gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs:
    """Query Insights on the primary and each replica, without what would identify a person."""
    return gcp.sql.DatabaseInstanceSettingsInsightsConfigArgs(
        query_insights_enabled=True,
        query_string_length=1024,
        record_application_tags=False,
        record_client_address=False,  # client addresses are personal data
    )


def log_retention_days(backup_days: int, edition: Edition) -> int:
    """Days of transaction logs: fewer than the retained backups, which the API requires
    ("backup retention should be > transaction log retention"), and within the edition's limit."""
    return min(backup_days - 1, _LOG_RETENTION_LIMIT[edition])


class Database(pulumi.ComponentResource):
    """One private, TLS-only, backed-up Cloud SQL PostgreSQL 16 instance."""

    instance: gcp.sql.DatabaseInstance
    host: pulumi.Output[str]
    ca_pem: pulumi.Output[str]
    admin_secret_name: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: GcpSettings,
        db: DatabaseSettings,
        *,
        network_id: pulumi.Input[str],
        private_access: pulumi.Resource,
        scale: ScaleSettings,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:gcp:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        production = meta.production

        # Cloud SQL keeps a deleted instance's name for up to a week (lifecycle rules): the name
        # carries a suffix redrawn when an input that replaces the instance changes, and after a
        # destroy, so neither a replacement nor destroy-then-up meets the old name. Drawn once and
        # kept in state: no perpetual diff.
        suffix = instance_suffix(f"{name}-id", {"project": settings.project, "region": settings.region}, child)
        self.instance = gcp.sql.DatabaseInstance(
            f"{name}-instance",
            name=suffix.apply(lambda hex_: f"{meta.prefix}-pg-{hex_}"),
            project=settings.project,
            region=settings.region,
            database_version=DATABASE_VERSION,
            deletion_protection=db.deletion_protection,  # Pulumi side: refuse to delete in state
            settings=gcp.sql.DatabaseInstanceSettingsArgs(
                # Explicit: PostgreSQL 16 defaults to ENTERPRISE_PLUS, which rejects custom tiers.
                edition=settings.edition,
                tier=settings.tier,
                availability_type="REGIONAL" if db.high_availability else "ZONAL",
                deletion_protection_enabled=db.deletion_protection,  # API side: no delete from any client
                disk_type="PD_SSD",
                disk_size=db.storage_gb,  # initial size only: see ignore_changes below
                disk_autoresize=True,
                disk_autoresize_limit=db.max_storage_gb,
                ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                    ipv4_enabled=False,  # CIS GCP 6.6: no public IP
                    private_network=network_id,
                    authorized_networks=[],  # CIS GCP 6.5: no authorized networks
                    ssl_mode="ENCRYPTED_ONLY",  # CIS GCP 6.4; never require_ssl (removed, and rejected with ssl_mode)
                    # Shared CA: the server certificate carries the instance DNS name, so sslmode=verify-full
                    # can check db_host (the per-instance CA's certificate names only project:instance).
                    server_ca_mode="GOOGLE_MANAGED_CAS_CA",
                    # The server certificate renews itself in maintenance; the CA (db_ca) stays the same.
                    server_certificate_rotation_mode="AUTOMATIC_ROTATION_DURING_MAINTENANCE",
                ),
                backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(
                    enabled=True,  # CIS GCP 6.7
                    point_in_time_recovery_enabled=True,
                    start_time=BACKUP_START,
                    transaction_log_retention_days=log_retention_days(db.backup_retention_days, settings.edition),
                    backup_retention_settings=gcp.sql.DatabaseInstanceSettingsBackupConfigurationBackupRetentionSettingsArgs(
                        retained_backups=db.backup_retention_days,  # one automated backup a day
                        retention_unit="COUNT",
                    ),
                ),
                # Production: a final backup when the instance is deleted, and the automated ones kept.
                final_backup_config=gcp.sql.DatabaseInstanceSettingsFinalBackupConfigArgs(
                    enabled=production,
                    retention_days=db.backup_retention_days if production else None,
                ),
                retain_backups_on_delete=production,
                maintenance_window=maintenance_window(),
                insights_config=insights_config(),
                database_flags=[
                    gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=flag, value=value)
                    for flag, value in DATABASE_FLAGS
                ],
                user_labels=meta.labels,
                connection_pool_configs=pool_configs(scale),  # managed pooling (infra.provision.gcp.pooler)
            ),
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[private_access],  # the private IP comes from the peering range
                protect=production,  # `pulumi destroy` cannot take the production database
                # Autoresize grows the disk; a fixed disk_size would then plan a shrink (refused) on
                # every preview, so the size is only read at creation.
                ignore_changes=["settings.diskSize"],
            ),
        )
        # The name the server certificate carries, without the trailing dot of a DNS record.
        self.host = pulumi.Output.all(self.instance.dns_names, self.instance.dns_name).apply(
            lambda values: _private_dns_name(values[0], values[1])
        )
        # Every CA certificate the instance lists (the shared CA's chain, and both during a rotation) as
        # one PEM bundle for sslrootcert. The provider marks the list secret; CA certificates are public.
        self.ca_pem = pulumi.Output.unsecret(self.instance.server_ca_certs.apply(_ca_bundle))

        # Cloud SQL does not publish the instance name in DNS for private service access: a private
        # zone for exactly that name lets the bastion resolve db_host to the private address.
        private_name_zone(
            f"{name}-dns",
            zone_name=f"{meta.prefix}-pg",
            host=self.host,
            address=self.instance.private_ip_address,
            description=f"{meta.prefix}: the Cloud SQL instance name, inside the VPC only",
            project=settings.project,
            network_id=network_id,
            labels=meta.labels,
            opts=child,
        )

        gcp.sql.Database(
            f"{name}-database",
            name=db.name,
            project=settings.project,
            instance=self.instance.name,
            # The API cannot drop a database other roles hold grants on (the post-deploy roles do):
            # the database goes with the instance instead, which deletion protection guards.
            deletion_policy="ABANDON",
            opts=child,
        )
        admin_password = generated_password(f"{name}-admin", db.admin_user, child)
        gcp.sql.User(
            f"{name}-admin",
            name=db.admin_user,  # not `postgres` (reserved names refused by config)
            project=settings.project,
            instance=self.instance.name,
            type="BUILT_IN",
            password=admin_password.result,
            # DROP ROLE fails while the role owns objects; the role goes with the instance instead.
            deletion_policy="ABANDON",
            opts=child,
        )
        self.admin_secret_name = stored_secret(
            f"{name}-admin",
            meta,
            settings,
            secret_id=f"{meta.prefix}-postgres-admin",
            role=db.admin_user,
            document=secret_document(
                db.admin_user, admin_password.result, host=self.host, port=db.port, dbname=db.name
            ),
            parent=self,
        )
        self.register_outputs(
            {
                "connection_name": self.instance.connection_name,
                "host": self.host,
                "private_ip": self.instance.private_ip_address,
                "admin_secret": self.admin_secret_name,
            }
        )


def private_name_zone(
    name: str,
    *,
    zone_name: str,
    host: pulumi.Output[str],
    address: pulumi.Input[str],
    description: str,
    project: str,
    network_id: pulumi.Input[str],
    labels: Mapping[str, str],
    opts: pulumi.ResourceOptions,
) -> gcp.dns.ManagedZone:
    """A private zone for exactly ``host`` with its A record: the bastion resolves the instance's name.

    Cloud SQL does not publish the instance name in DNS for private service access; the zone is
    visible only inside ``network_id``. Used for the primary and for each read replica.
    """
    zone = gcp.dns.ManagedZone(
        name,
        name=zone_name,
        project=project,
        dns_name=host.apply(lambda h: f"{h}."),
        visibility="private",
        description=description,
        private_visibility_config=gcp.dns.ManagedZonePrivateVisibilityConfigArgs(
            networks=[gcp.dns.ManagedZonePrivateVisibilityConfigNetworkArgs(network_url=network_id)],
        ),
        labels=dict(labels),
        opts=opts,
    )
    gcp.dns.RecordSet(
        f"{name}-a",
        project=project,
        managed_zone=zone.name,
        name=zone.dns_name,
        type="A",
        ttl=300,
        rrdatas=[address],
        opts=opts,
    )
    return zone


def _private_dns_name(names: Sequence[object] | None, fallback: str | None) -> str:
    """The instance's private-service-access DNS name (``dns_names``), else ``dns_name``; no trailing dot.

    Raises ProvisionError when the instance reports neither: an empty name would become a private
    zone for "." (every name in the VPC) and an empty host in the stored secrets.
    """
    for entry in names or ():
        if _field(entry, "connection_type", "connectionType") == "PRIVATE_SERVICES_ACCESS":
            name = _field(entry, "name", "name")
            if name and name.strip("."):
                return name.rstrip(".")
    if fallback and fallback.strip("."):
        return fallback.rstrip(".")
    raise ProvisionError(
        "the Cloud SQL instance reports no private DNS name (dns_names, dns_name); verify-full needs one: "
        "keep server_ca_mode GOOGLE_MANAGED_CAS_CA and check the instance in the console"
    )


def _ca_bundle(certs: Sequence[object] | None) -> str:
    return "".join(_field(cert, "cert", "cert") or "" for cert in certs or ())


def _field(entry: object, attribute: str, key: str) -> str | None:
    """A field of a nested output: a typed object from the engine, a plain mapping from some runtimes."""
    value = entry.get(key) if isinstance(entry, dict) else getattr(entry, attribute, None)
    return value if isinstance(value, str) else None


# Read replicas name and trust their own endpoints the same way (infra.provision.gcp.replicas).
private_dns_name = _private_dns_name
ca_bundle = _ca_bundle
