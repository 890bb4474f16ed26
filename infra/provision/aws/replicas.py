"""Read replicas of the RDS instance: same KMS key, private subnet group, security group,
parameter group, monitoring and log exports as the primary. Nothing else.

Replica rules (pulumi_aws ``rds.Instance`` docstrings; TPA ``instance.go`` ConflictsWith lists):
``engine``, ``engine_version``, ``username``, ``db_name``, passwords and ``allocated_storage`` are
inherited and must not be set; with ``db_subnet_group_name`` set, ``replicate_source_db`` must be
the source's ARN; a replica cannot take a final snapshot (``InvalidParameterCombination:
FinalDBSnapshotIdentifier can not be specified when deleting a replica instance``, TPA #4615).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, DatabaseSettings, ScaleSettings, StackMeta
from infra.provision.aws.database import LOG_EXPORTS, MAINTENANCE_WINDOW, PERFORMANCE_INSIGHTS_DAYS, Database

__all__ = ["Replicas", "replica_identifier"]


def replica_identifier(meta: StackMeta, index: int) -> str:
    # Fixed: a replica takes no final snapshot, and RDS frees an identifier when the delete ends
    # (lifecycle rule for aws:rds/instance:Instance, skipFinalSnapshot=true).
    return f"{meta.prefix}-pg-replica-{index}"


class Replicas(pulumi.ComponentResource):
    """``scale.read_replicas`` read replicas of ``primary``, in the primary's private subnets."""

    instances: list[aws.rds.Instance]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: AwsSettings,
        db: DatabaseSettings,
        scale: ScaleSettings,
        *,
        primary: Database,
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Replicas", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.instances = []
        for index in range(scale.read_replicas):
            identifier = replica_identifier(meta, index)
            # As for the primary: RDS would create these on first export with no retention.
            log_groups = [
                aws.cloudwatch.LogGroup(
                    f"{name}-{index}-log-{kind}",
                    name=f"/aws/rds/instance/{identifier}/{kind}",
                    retention_in_days=settings.log_retention_days,
                    kms_key_id=kms_key_arn,  # the stack's key (Config rule cloudwatch-log-group-encrypted)
                    tags=meta.labels,
                    opts=child,
                )
                for kind in LOG_EXPORTS
            ]
            replica = aws.rds.Instance(
                f"{name}-{index}",
                identifier=identifier,
                # The ARN, not the identifier: required when db_subnet_group_name is set (pulumi_aws docs).
                replicate_source_db=primary.instance.arn,
                instance_class=scale.replica_class,
                storage_type="gp3",
                max_allocated_storage=db.max_storage_gb,  # storage autoscaling, as on the primary
                storage_encrypted=True,  # FSBP RDS.3 (inherited; stated so the policy pack sees it)
                kms_key_id=kms_key_arn,  # the primary's key: the same key ARN reads back, no diff (ForceNew)
                port=db.port,
                iam_database_authentication_enabled=True,  # FSBP RDS.10
                publicly_accessible=False,  # FSBP RDS.2
                db_subnet_group_name=primary.subnet_group.name,  # the private subnets only
                vpc_security_group_ids=[security_group_id],  # reachable as the primary is: bastion, app SGs
                parameter_group_name=primary.parameter_group.name,  # same TLS and logging parameters
                ca_cert_identifier=settings.ca_cert_identifier,  # pinned: the default moves and would diff
                auto_minor_version_upgrade=True,  # FSBP RDS.13; the version follows the source
                # One AZ: a replica is itself the spare; Multi-AZ stays on the primary (FSBP RDS.5).
                multi_az=False,
                copy_tags_to_snapshot=True,  # FSBP RDS.17
                deletion_protection=db.deletion_protection,  # FSBP RDS.8 in production
                skip_final_snapshot=True,  # a replica cannot take one (InvalidParameterCombination)
                # As on the primary: no class restriction for RDS for PostgreSQL; 7 days are free.
                performance_insights_enabled=True,
                performance_insights_kms_key_id=kms_key_arn,
                performance_insights_retention_period=PERFORMANCE_INSIGHTS_DAYS,
                monitoring_interval=60,  # enhanced monitoring (FSBP RDS.6), the primary's role
                monitoring_role_arn=primary.monitoring_role.arn,
                enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),  # FSBP RDS.9 / RDS.36
                maintenance_window=MAINTENANCE_WINDOW,
                apply_immediately=False,
                tags={**meta.labels, "Name": identifier, "role": "read-replica"},
                opts=pulumi.ResourceOptions(
                    parent=self,
                    depends_on=[*log_groups, primary.instance],
                    # Production keeps `protect` on every RDS instance (lifecycle rules): removing a
                    # replica there takes `pulumi state unprotect` first, like the primary.
                    protect=meta.production,
                ),
            )
            self.instances.append(replica)
        self.register_outputs({"addresses": [r.address for r in self.instances]})
