"""Cloud SQL read replicas of the primary: same private network, TLS mode, CA mode and flags,
each with the private DNS record of its own name. Nothing else.

Replica rules (TPG ``resource_sql_database_instance.go``; pulumi_gcp ``sql`` docs):
``master_instance_name`` names the primary (ForceNew), users and databases are inherited
("Users in a replica instance are inherited from the master instance"), backups and
point-in-time recovery are the primary's (a replica cannot have its own), the version follows
the primary's, and its edition is the primary's (the tier is validated against it in config).
"""

from __future__ import annotations

import functools

import pulumi
import pulumi_gcp as gcp

from infra.config import DatabaseSettings, GcpSettings, ScaleSettings, StackMeta
from infra.provision.gcp.database import (
    DATABASE_FLAGS,
    DATABASE_VERSION,
    Database,
    ca_bundle,
    insights_config,
    maintenance_window,
    private_dns_name,
    private_name_zone,
)
from infra.provision.naming import instance_suffix

__all__ = ["Replicas"]


class Replicas(pulumi.ComponentResource):
    """``scale.read_replicas`` read replicas of ``primary``; ``hosts`` and ``ca_pems`` in order."""

    instances: list[gcp.sql.DatabaseInstance]
    hosts: list[pulumi.Output[str]]
    ca_pems: list[pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: GcpSettings,
        db: DatabaseSettings,
        scale: ScaleSettings,
        *,
        primary: Database,
        network_id: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:gcp:Replicas", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.instances, self.hosts, self.ca_pems = [], [], []
        for index in range(scale.read_replicas):
            # Cloud SQL keeps a deleted instance's name for up to a week (lifecycle rules), as for the
            # primary: a suffix drawn once (no perpetual diff), redrawn with every input that replaces it.
            suffix = instance_suffix(
                f"{name}-{index}-id",
                {"project": settings.project, "region": settings.region, "masterInstanceName": primary.instance.name},
                child,
            )
            base = f"{meta.prefix}-pg-replica-{index}"
            replica = gcp.sql.DatabaseInstance(
                f"{name}-{index}",
                name=suffix.apply(functools.partial(_suffixed, base)),
                project=settings.project,
                region=settings.region,
                database_version=DATABASE_VERSION,
                master_instance_name=primary.instance.name,
                deletion_protection=db.deletion_protection,
                settings=gcp.sql.DatabaseInstanceSettingsArgs(
                    edition=settings.edition,  # the primary's; explicit, as on the primary
                    tier=scale.replica_class,
                    availability_type="ZONAL",  # a replica is itself the spare; REGIONAL stays on the primary
                    deletion_protection_enabled=db.deletion_protection,
                    disk_type="PD_SSD",
                    disk_autoresize=True,
                    disk_autoresize_limit=db.max_storage_gb,
                    ip_configuration=gcp.sql.DatabaseInstanceSettingsIpConfigurationArgs(
                        ipv4_enabled=False,  # CIS GCP 6.6: no public IP
                        private_network=network_id,
                        authorized_networks=[],  # CIS GCP 6.5
                        ssl_mode="ENCRYPTED_ONLY",  # CIS GCP 6.4
                        server_ca_mode="GOOGLE_MANAGED_CAS_CA",  # its certificate names its own DNS name
                        server_certificate_rotation_mode="AUTOMATIC_ROTATION_DURING_MAINTENANCE",
                    ),
                    # A replica has no backups of its own (the primary's cover it); stated so the
                    # API's read-back matches and no diff appears.
                    backup_configuration=gcp.sql.DatabaseInstanceSettingsBackupConfigurationArgs(enabled=False),
                    maintenance_window=maintenance_window(),
                    insights_config=insights_config(),
                    database_flags=[  # the primary's flags (CIS GCP 6.2.x), sorted: no phantom diff
                        gcp.sql.DatabaseInstanceSettingsDatabaseFlagArgs(name=flag, value=value)
                        for flag, value in DATABASE_FLAGS
                    ],
                    user_labels={**meta.labels, "role": "read-replica"},
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # Production keeps `protect` on every Cloud SQL instance (lifecycle rules): removing
                    # a replica there takes `pulumi state unprotect` first, like the primary.
                    protect=meta.production,
                    # Autoresize grows the disk; the size is the primary's at creation (no shrink plan).
                    ignore_changes=["settings.diskSize"],
                ),
            )
            host = pulumi.Output.all(replica.dns_names, replica.dns_name).apply(
                lambda values: private_dns_name(values[0], values[1])
            )
            private_name_zone(
                f"{name}-{index}-dns",
                zone_name=f"{meta.prefix}-pg-replica-{index}",
                host=host,
                address=replica.private_ip_address,
                description=f"{meta.prefix}: read replica {index}'s name, inside the VPC only",
                project=settings.project,
                network_id=network_id,
                labels=meta.labels,
                opts=child,
            )
            self.instances.append(replica)
            self.hosts.append(host)
            self.ca_pems.append(pulumi.Output.unsecret(replica.server_ca_certs.apply(ca_bundle)))
        self.register_outputs({"hosts": self.hosts})


def _suffixed(base: str, hex_: str) -> str:
    return f"{base}-{hex_}"
