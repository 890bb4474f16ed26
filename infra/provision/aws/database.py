"""The RDS PostgreSQL 16 instance with its parameter group, subnet group, log groups and
enhanced-monitoring role. Nothing else."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, DatabaseSettings, StackMeta
from infra.provision.aws.iam import service_role
from infra.provision.naming import instance_suffix

__all__ = ["LOG_EXPORTS", "PARAMETERS", "Database"]

ENGINE = "postgres"
ENGINE_MAJOR = "16"
BACKUP_WINDOW = "03:00-03:30"  # UTC; must not overlap the maintenance window
MAINTENANCE_WINDOW = "sun:04:00-sun:05:00"
# FSBP RDS.9 / RDS.36: the server log and upgrade log; iam-db-auth-error because IAM authentication
# is on (RDS for PostgreSQL's exportable logs: postgresql | upgrade | iam-db-auth-error, botocore rds
# CreateDBInstance EnableCloudwatchLogsExports; the provider's own validation error lists
# "iam-db-auth-error" among the accepted values).
LOG_EXPORTS = ("iam-db-auth-error", "postgresql", "upgrade")
PERFORMANCE_INSIGHTS_DAYS = 7  # the free retention

# (name, value, apply_method). Static parameters must say pending-reboot: RDS reads them back that
# way, and "immediate" would show as a change on every preview.
PARAMETERS: tuple[tuple[str, str, str], ...] = (
    ("rds.force_ssl", "1", "immediate"),  # TLS for every connection (policy rds-force-ssl)
    # SCRAM only: md5-hashed passwords stop working (RDS User Guide, "Using SCRAM for PostgreSQL
    # password encryption"; the default md5+scram still accepts md5). Dynamic (verify).
    ("rds.accepted_password_auth_method", "scram", "immediate"),
    ("log_connections", "1", "immediate"),
    ("log_disconnections", "1", "immediate"),
    ("log_statement", "ddl", "immediate"),  # schema changes are audited; DML is not (volume, PII)
    ("log_min_duration_statement", "1000", "immediate"),
    ("password_encryption", "scram-sha-256", "immediate"),
    ("shared_preload_libraries", "pg_stat_statements", "pending-reboot"),  # static parameter
)


class Database(pulumi.ComponentResource):
    """One private, encrypted, backed-up RDS PostgreSQL 16 instance."""

    instance: aws.rds.Instance
    admin_secret_arn: pulumi.Output[str]
    subnet_group_name: pulumi.Output[str]
    parameter_group_name: pulumi.Output[str]
    # what read replicas share with the primary (infra.provision.aws.replicas)
    parameter_group: aws.rds.ParameterGroup
    subnet_group: aws.rds.SubnetGroup
    monitoring_role: aws.iam.Role

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: AwsSettings,
        db: DatabaseSettings,
        *,
        subnet_ids: list[pulumi.Output[str]],
        security_group_id: pulumi.Input[str],
        kms_key_arn: pulumi.Output[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # The identifier (and the final snapshot named after it) is unique per physical instance:
        # the suffix is redrawn when an input that replaces the instance changes (lifecycle rules),
        # so a replacement's final snapshot never meets the last one's (DBSnapshotAlreadyExists), and
        # after a destroy. Renaming is in place (TPA >= 5.0), so a new suffix alone replaces nothing.
        suffix = instance_suffix(
            f"{name}-id",
            {
                "dbName": db.name,
                "engine": ENGINE,
                "kmsKeyId": kms_key_arn,
                "storageEncrypted": "true",
                "username": db.admin_user,
            },
            child,
        )
        identifier = suffix.apply(lambda hex_: f"{meta.prefix}-pg-{hex_}")

        params = aws.rds.ParameterGroup(
            f"{name}-params",
            family=f"postgres{ENGINE_MAJOR}",
            description=f"{meta.prefix}: TLS and SCRAM only, connection and DDL logging",
            parameters=[aws.rds.ParameterGroupParameterArgs(name=p, value=v, apply_method=m) for p, v, m in PARAMETERS],
            tags=meta.labels,
            opts=child,
        )
        subnets = aws.rds.SubnetGroup(
            f"{name}-subnets",
            subnet_ids=subnet_ids,
            description=f"{meta.prefix}: private subnets only",
            tags=meta.labels,
            opts=child,
        )
        # RDS would create these on first export, unencrypted and kept forever: create them first.
        log_groups = [
            aws.cloudwatch.LogGroup(
                f"{name}-log-{kind}",
                name=pulumi.Output.concat("/aws/rds/instance/", identifier, f"/{kind}"),
                retention_in_days=settings.log_retention_days,
                kms_key_id=kms_key_arn,  # the stack's key (Config rule cloudwatch-log-group-encrypted)
                tags=meta.labels,
                opts=child,
            )
            for kind in LOG_EXPORTS
        ]
        monitoring_role = service_role(f"{name}-monitoring", "monitoring.rds.amazonaws.com", meta, child)
        attachment = aws.iam.RolePolicyAttachment(
            f"{name}-monitoring",
            role=monitoring_role.name,
            policy_arn="arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole",
            opts=child,
        )
        self.parameter_group, self.subnet_group, self.monitoring_role = params, subnets, monitoring_role
        self.instance = aws.rds.Instance(
            f"{name}-instance",
            identifier=identifier,
            engine=ENGINE,
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
            port=db.port,  # 5432 by default; another dbPort meets FSBP RDS.23 (README)
            username=db.admin_user,  # not `postgres` (FSBP RDS.25)
            # RDS keeps the admin password in Secrets Manager and rotates it (7 days by default):
            # never in state, and FSBP SecretsManager.1/.4 are met for this secret.
            manage_master_user_password=True,
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
            final_snapshot_identifier=identifier.apply(lambda ident: f"{ident}-final"),
            # Performance Insights has no class restriction for RDS for PostgreSQL (the micro/small
            # exclusion is MySQL's and MariaDB's: RDS User Guide, "Amazon RDS DB engine, Region, and
            # instance class support for Performance Insights"); 7 days are free.
            performance_insights_enabled=True,
            performance_insights_kms_key_id=kms_key_arn,
            performance_insights_retention_period=PERFORMANCE_INSIGHTS_DAYS,
            monitoring_interval=60,  # enhanced monitoring (FSBP RDS.6)
            monitoring_role_arn=monitoring_role.arn,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),  # FSBP RDS.9
            apply_immediately=False,  # changes wait for the maintenance window
            tags={**meta.labels, "Name": f"{meta.prefix}-pg"},
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[*log_groups, attachment],
                protect=meta.production,  # `pulumi destroy` cannot take the production database
            ),
        )
        # a point-in-time copy (restore-drill) goes into the same private subnets with the same parameters
        self.subnet_group_name = subnets.name
        self.parameter_group_name = params.name
        self.admin_secret_arn = self.instance.master_user_secrets.apply(
            lambda secrets: (secrets[0].secret_arn or "") if secrets else ""
        )
        self.register_outputs(
            {"address": self.instance.address, "arn": self.instance.arn, "admin_secret_arn": self.admin_secret_arn}
        )
