"""Generated passwords for the `migrator`, `app` and `readonly` login users, each stored in
Secrets Manager (KMS) as the standard RDS secret JSON. The admin password is RDS-managed."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig
from infra.contract import USER_ROLES
from infra.provision.passwords import generated_password, secret_document

__all__ = ["UserSecrets"]


class UserSecrets(pulumi.ComponentResource):
    """One RandomPassword and one Secrets Manager secret per login user."""

    arns: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        *,
        kms_key_arn: pulumi.Input[str],
        host: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:aws:UserSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.arns = {}
        for role in USER_ROLES:
            password = generated_password(f"{name}-{role}", role, child)
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name=f"{cfg.prefix}/postgres/{role}",
                description=f"{cfg.prefix}: PostgreSQL login `{role}` (RDS secret JSON)",
                kms_key_id=kms_key_arn,
                recovery_window_in_days=30 if cfg.production else 7,
                tags={**cfg.labels, "role": role},
                opts=child,
            )
            version = aws.secretsmanager.SecretVersion(
                f"{name}-{role}",
                secret_id=secret.id,
                secret_string=secret_document(
                    role, password.result, host=host, port=cfg.database.port, dbname=cfg.database.name
                ),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_string"]),
            )
            # The ARN as an output of the version: whoever reads it (the in-`up` migrate step)
            # waits until the password is stored, not only until the empty secret exists.
            self.arns[role] = version.secret_arn
        self.register_outputs({"arns": self.arns})
