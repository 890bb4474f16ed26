"""Generated passwords for the `migrator`, `app` and `readonly` login users, each stored in
Secrets Manager (KMS) as the standard RDS secret JSON. The admin password is RDS-managed.

Rotation (FSBP SecretsManager.1/.4): these passwords are not rotated by Secrets Manager. The
post-deploy step owns the roles' passwords and sets the stored one when a login fails, so a
rotation is `pulumi up --replace <RandomPassword URN>` followed by `python -m infra migrate`
(README, "Rotating the login passwords"). The RDS-managed admin secret is rotated by RDS.
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.config import DatabaseSettings, StackMeta
from infra.contract import USER_ROLES
from infra.provision.naming import instance_suffix
from infra.provision.passwords import generated_password, secret_document

__all__ = ["UserSecrets", "recovery_window_days"]


def recovery_window_days(meta: StackMeta) -> int:
    """Production: 30 days to restore a deleted secret. Elsewhere 0: deleted at once
    (ForceDeleteWithoutRecovery), so a destroyed stack can be created again the same minute."""
    return 30 if meta.production else 0


class UserSecrets(pulumi.ComponentResource):
    """One RandomPassword and one Secrets Manager secret per login user."""

    arns: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        db: DatabaseSettings,
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
            # A secret in its recovery window keeps its name (lifecycle rules): the name carries a
            # suffix drawn per physical secret, so a replacement or a new stack never meets it.
            suffix = instance_suffix(f"{name}-{role}-id", {"role": role}, child)
            secret = aws.secretsmanager.Secret(
                f"{name}-{role}",
                name=pulumi.Output.concat(f"{meta.prefix}/postgres/{role}-", suffix),
                description=f"{meta.prefix}: PostgreSQL login `{role}` (RDS secret JSON)",
                kms_key_id=kms_key_arn,
                recovery_window_in_days=recovery_window_days(meta),
                tags={**meta.labels, "role": role},
                opts=child,
            )
            version = aws.secretsmanager.SecretVersion(
                f"{name}-{role}",
                secret_id=secret.id,
                secret_string=secret_document(role, password.result, host=host, port=db.port, dbname=db.name),
                opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["secret_string"]),
            )
            # The ARN as an output of the version: whoever reads it (the in-`up` migrate step)
            # waits until the password is stored, not only until the empty secret exists.
            self.arns[role] = version.secret_arn
        self.register_outputs({"arns": self.arns})
