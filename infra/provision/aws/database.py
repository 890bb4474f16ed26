"""The RDS PostgreSQL 16 instance with its parameter group, subnet group, log groups and
enhanced-monitoring role. Nothing else."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.config import StackConfig
from infra.provision.aws.iam import service_role

__all__ = ["Database", "performance_insights"]

ENGINE_MAJOR = "16"
BACKUP_WINDOW = "03:00-03:30"  # UTC; must not overlap the maintenance window
MAINTENANCE_WINDOW = "sun:04:00-sun:05:00"
LOG_EXPORTS = ("postgresql", "upgrade")
# Performance Insights is not offered on the smallest burstable classes.
_NO_PERFORMANCE_INSIGHTS = ("micro", "small")

# (name, value, apply_method). Static parameters must say pending-reboot: RDS reads them back that
# way, and "immediate" would show as a change on every preview.
PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("rds.force_ssl", "1", "immediate"),  # TLS for every connection (policy rds-force-ssl)
    ("log_connections", "1", "immediate"),
    ("log_disconnections", "1", "immediate"),
    ("log_statement", "ddl", "immediate"),  # schema changes are audited; DML is not (volume, PII)
    ("log_min_duration_statement", "1000", "immediate"),
    ("password_encryption", "scram-sha-256", "immediate"),
    ("shared_preload_libraries", "pg_stat_statements", "pending-reboot"),  # static parameter
)


def performance_insights(instance_class: str) -> bool:
    return not instance_class.endswith(_NO_PERFORMANCE_INSIGHTS)


class Database(pulumi.ComponentResource):
    """One private, encrypted, backed-up RDS PostgreSQL 16 instance."""

    instance: aws.rds.Instance
    admin_secret_arn: pulumi.Output[str]
    # what read replicas share with the primary (infra.provision.aws.replicas)
    parameter_group: aws.rds.ParameterGroup
    subnet_group: aws.rds.SubnetGroup
    monitoring_role: aws.iam.Role

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        subnet_ids: list[pulumi.Output[str]],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Database", name, None, opts)
        assert cfg.aws is not None
        settings = cfg.aws
        db = cfg.database
        child = pulumi.ResourceOptions(parent=self)
        identifier = f"{cfg.prefix}-pg"

        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{ENGINE_MAJOR}",
            description=f"{cfg.prefix}: TLS only, connection and DDL logging",
            parameters=[aws.rds.ParameterGroupParameterArgs(name=p, value=v, apply_method=m) for p, v, m in PARAMETERS],
            tags=cfg.labels,
            opts=child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=subnet_ids,
            description=f"{cfg.prefix}: private subnets only",
            tags=cfg.labels,
            opts=child,
        )
        # RDS would create these on first export with no retention: create them first, with one.
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{kind}",
                name=f"/aws/rds/instance/{identifier}/{kind}",
                retention_in_days=settings.log_retention_days,
                tags=cfg.labels,
                opts=child,
            )
            for kind in LOG_EXPORTS
        ]
        monitoring_role = service_role(f"{name}-monitoring", "monitoring.rds.amazonaws.com", cfg, child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=monitoring_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child,
        )
        # Stable across runs (keepers), unlike a timestamp, so the final snapshot name never diffs.
        snapshot_suffix = random.RandomId(
            f"{name}-final-snapshot", byte_length=4, keepers={"identifier": identifier}, opts=child
        )
        insights = performance_insights(settings.instance_class)
        self.parameter_group, self.subnet_group, self.monitoring_role = params, subnets, monitoring_role
        self.instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=identifier,
            engine="postgres",
            engine_version=ENGINE_MAJOR,  # major only: a minor version fights auto minor upgrades (perpetual diff)
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            instance_class=settings.instance_class,
            storage_type="gp3",
            allocated_storage=db.storage_gb,
            max_allocated_storage=db.max_storage_gb,  # storage autoscaling
            storage_encrypted=True,  # FSBP RDS.3
            kms_key_id=kms_key_arn,
            db_name=db.name,
            port=db.port,
            username=db.admin_user,  # not `postgres` (FSBP RDS.25)
            manage_master_user_password=True,  # RDS keeps the admin password in Secrets Manager: never in state
            master_user_secret_kms_key_id=kms_key_arn,
            iam_database_authentication_enabled=True,  # FSBP RDS.10
            publicly_accessible=False,  # FSBP RDS.2
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[security_group_id],
            parameter_group_name=params.name,
            ca_cert_identifier=settings.ca_cert_identifier,  # pinned: the default moves and would diff
            multi_az=db.high_availability,  # FSBP RDS.5 in production
            backup_retention_period=db.backup_retention_days,  # FSBP RDS.11; PITR within the window
            backup_window=BACKUP_WINDOW,
            maintenance_window=MAINTENANCE_WINDOW,
            copy_tags_to_snapshot=True,  # FSBP RDS.17
            delete_automated_backups=False,  # keep PITR backups after a delete
            deletion_protection=db.deletion_protection,  # FSBP RDS.8 in production
            skip_final_snapshot=False,
            final_snapshot_identifier=snapshot_suffix.hex.apply(lambda h: f"{identifier}-final-{h}"),
            performance_insights_enabled=insights,
            performance_insights_kms_key_id=kms_key_arn if insights else None,
            performance_insights_retention_period=7 if insights else None,
            monitoring_interval=60,  # enhanced monitoring (FSBP RDS.6)
            monitoring_role_arn=monitoring_role.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),  # FSBP RDS.9
            apply_immediately=False,  # changes wait for the maintenance window
            tags={**cfg.labels, "Name": identifier},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*log_groups, attachment],
                protect=cfg.production,  # `pulumi destroy` cannot take the production database
            ),
        )
        self.admin_secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: (secrets[0].secret_arn or "") if secrets else ""
        )
        self.register_outputs(
            {"address": self.instance.address, "arn": self.instance.arn, "admin_secret_arn": self.admin_secret_arn}
        )
