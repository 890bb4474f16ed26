"""RDS Proxy in front of the primary, for the application: TLS required, SCRAM logins from the
stored `app` and `readonly` secrets, private subnets, reachable only from the app security
groups and the bastion. Nothing else.

Facts (pulumi_aws 7.51.1 ``rds.Proxy`` / ``ProxyAuthArgs`` / ``ProxyDefaultTargetGroup`` docs;
RDS User Guide "rds-proxy-setup" and "rds-proxy-secrets-arns"):

- the proxy reads each login's ``username``/``password`` from its Secrets Manager secret, so its
  role needs ``secretsmanager:GetSecretValue`` on those secrets and ``kms:Decrypt`` on their key
  through Secrets Manager only;
- a PostgreSQL proxy listens on 5432 whatever the instance's port, and is never public;
- its certificate comes from ACM (Amazon Root CA 1), not the RDS CA: clients verify it with
  the Amazon Trust Services root (the contract says so in ``db_pooler.ca``);
- session state (a session-level ``SET``) pins the client to its server connection, so one
  client's setting never reaches another client (RDS User Guide "rds-proxy-pinning").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import pulumi
import pulumi_aws as aws

from infra.config import AwsSettings, DatabaseSettings, StackMeta
from infra.provision.aws.iam import service_role

__all__ = ["POOLED_ROLES", "PROXY_CA", "PROXY_PORT", "Pooler"]

PROXY_PORT = 5432  # fixed for engine family POSTGRESQL
PROXY_CA = "AmazonRootCA1"  # the ACM chain's root; infra.postdeploy.ca fetches it
POOLED_ROLES = ("app", "readonly")  # migrations go direct: DDL and advisory locks want one session
IDLE_CLIENT_TIMEOUT = 1800  # s: an idle app connection is closed after 30 minutes (the API default)
BORROW_TIMEOUT = 30  # s: a client waits this long for a pooled connection, then gets an error
MAX_CONNECTIONS_PERCENT = 80  # of max_connections: leaves room for migrator, admin and replicas' walsenders
MAX_IDLE_PERCENT = 20  # idle server connections kept warm, of max_connections


class Pooler(pulumi.ComponentResource):
    """The proxy, its security group and rules, its secret-reading role, its target."""

    proxy: aws.rds.Proxy
    security_group: aws.ec2.SecurityGroup

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: AwsSettings,
        db: DatabaseSettings,
        *,
        vpc_id: pulumi.Input[str],
        subnet_ids: Sequence[pulumi.Input[str]],
        db_security_group_id: pulumi.Input[str],
        bastion_security_group_id: pulumi.Input[str],
        instance_identifier: pulumi.Input[str],
        secret_arns: Mapping[str, pulumi.Input[str]],
        kms_key_arn: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:Pooler", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        db_port = db.port
        region = settings.region

        self.security_group = aws.ec2.SecurityGroup(
            f"{name}-proxy",
            vpc_id=vpc_id,
            description="RDS Proxy: reachable only from the bastion and the app security groups",
            # No inline rules: separate rule resources only (inline + rule resources fight, FSBP EC2.19).
            tags={**meta.labels, "Name": f"{meta.prefix}-proxy"},
            opts=child,
        )
        sources: list[tuple[str, pulumi.Input[str], str]] = [("bastion", bastion_security_group_id, "the bastion")]
        sources += [
            (f"app-{i}", group, f"application security group {group}")
            for i, group in enumerate(settings.app_security_group_ids)
        ]
        for suffix, group, what in sources:
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-proxy-from-{suffix}",
                security_group_id=self.security_group.id,
                referenced_security_group_id=group,
                ip_protocol="tcp",
                from_port=PROXY_PORT,
                to_port=PROXY_PORT,
                description=f"PostgreSQL through the proxy from {what}",
                opts=child,
            )
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-proxy-to-db",
            security_group_id=self.security_group.id,
            referenced_security_group_id=db_security_group_id,
            ip_protocol="tcp",
            from_port=db_port,
            to_port=db_port,
            description="PostgreSQL to the database only",
            opts=child,
        )
        aws.vpc.SecurityGroupIngressRule(
            f"{name}-db-from-proxy",
            security_group_id=db_security_group_id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=db_port,
            to_port=db_port,
            description="PostgreSQL from the RDS Proxy",
            opts=child,
        )
        # The bastion's egress is limited to the database; the post-deploy checks also reach the proxy.
        aws.vpc.SecurityGroupEgressRule(
            f"{name}-bastion-to-proxy",
            security_group_id=bastion_security_group_id,
            referenced_security_group_id=self.security_group.id,
            ip_protocol="tcp",
            from_port=PROXY_PORT,
            to_port=PROXY_PORT,
            description="PostgreSQL to the RDS Proxy",
            opts=child,
        )

        role = service_role(f"{name}-proxy", "rds.amazonaws.com", meta, child)
        pooled = [secret_arns[r] for r in POOLED_ROLES]
        aws.iam.RolePolicy(
            f"{name}-proxy-secrets",
            role=role.id,
            # Exactly the pooled logins' secrets, and their key only through Secrets Manager (least privilege).
            policy=pulumi.Output.all(kms_key_arn, *pooled).apply(
                lambda values: _secrets_policy(values[0], values[1:], region)
            ),
            opts=child,
        )
        self.proxy = aws.rds.Proxy(
            f"{name}-proxy",
            name=f"{meta.prefix}-proxy",
            engine_family="POSTGRESQL",
            require_tls=True,  # FSBP RDS.43 / Config rds-proxy-tls-encryption: no plaintext client connections
            debug_logging=False,  # it would log statement text (personal data)
            idle_client_timeout=IDLE_CLIENT_TIMEOUT,
            role_arn=role.arn,
            vpc_subnet_ids=list(subnet_ids),  # the private subnets (two AZs)
            vpc_security_group_ids=[self.security_group.id],
            auths=[
                aws.rds.ProxyAuthArgs(
                    auth_scheme="SECRETS",
                    secret_arn=secret_arns[role_name],
                    # Passwords (SCRAM) as the logins use them directly; IAM tokens would need rds-db:connect
                    # policies for every caller. "REQUIRED" switches a login to IAM only.
                    iam_auth="DISABLED",
                    client_password_auth_type="POSTGRES_SCRAM_SHA_256",  # noqa: S106 - an auth method; no md5
                    description=f"PostgreSQL login {role_name}",
                )
                for role_name in POOLED_ROLES
            ],
            tags=meta.labels,
            opts=child,
        )
        target_group = aws.rds.ProxyDefaultTargetGroup(
            f"{name}-proxy",
            db_proxy_name=self.proxy.name,
            connection_pool_config=aws.rds.ProxyDefaultTargetGroupConnectionPoolConfigArgs(
                max_connections_percent=MAX_CONNECTIONS_PERCENT,
                max_idle_connections_percent=MAX_IDLE_PERCENT,
                connection_borrow_timeout=BORROW_TIMEOUT,
            ),
            opts=child,
        )
        aws.rds.ProxyTarget(
            f"{name}-proxy",
            db_proxy_name=self.proxy.name,
            target_group_name=target_group.name,
            db_instance_identifier=instance_identifier,
            opts=child,
        )
        self.register_outputs({"endpoint": self.proxy.endpoint, "arn": self.proxy.arn})


def _secrets_policy(key_arn: str, secret_arns: Sequence[str], region: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": sorted(secret_arns)},
                {
                    "Effect": "Allow",
                    "Action": "kms:Decrypt",
                    "Resource": key_arn,
                    "Condition": {"StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}},
                },
            ],
        }
    )
