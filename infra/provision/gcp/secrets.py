"""Generated passwords for the `migrator`, `app` and `readonly` login users, each stored in
Secret Manager (automatic replication) as the same secret JSON as on AWS. Operators may read
them (the post-deploy step runs with their credentials); nobody else is granted anything here."""

from __future__ import annotations

import hashlib

import pulumi
import pulumi_gcp as gcp

from infra.config import DatabaseSettings, GcpSettings, StackMeta
from infra.contract import USER_ROLES
from infra.provision.passwords import generated_password, secret_document

__all__ = ["UserSecrets", "member_suffix", "stored_secret"]


def member_suffix(member: str) -> str:
    """A stable resource-name suffix for an IAM member: reordering `operators` changes nothing."""
    return hashlib.sha256(member.encode()).hexdigest()[:8]


def stored_secret(
    name: str,
    meta: StackMeta,
    settings: GcpSettings,
    *,
    secret_id: str,
    role: str,
    document: pulumi.Input[str],
    parent: pulumi.Resource,
) -> pulumi.Output[str]:
    """One Secret Manager secret holding ``document`` (a Pulumi secret), readable by the operators.

    Returns the secret's resource name (``projects/<project>/secrets/<id>``) as an output of its
    version: whoever reads it (the in-``up`` migrate step) waits until the password is stored,
    not only until the empty secret exists.
    """
    child = pulumi.ResourceOptions(parent=parent)
    secret = gcp.secretmanager.Secret(
        name,
        secret_id=secret_id,
        project=settings.project,
        replication=gcp.secretmanager.SecretReplicationArgs(auto=gcp.secretmanager.SecretReplicationAutoArgs()),
        labels={**meta.labels, "role": role},
        deletion_protection=meta.production,  # production: `pulumi destroy` cannot drop a credential
        opts=child,
    )
    version = gcp.secretmanager.SecretVersion(
        name,
        secret=secret.id,
        secret_data=document,
        opts=pulumi.ResourceOptions(parent=parent, additional_secret_outputs=["secret_data"]),
    )
    for member in settings.operators:
        gcp.secretmanager.SecretIamMember(
            f"{name}-reader-{member_suffix(member)}",
            project=settings.project,
            secret_id=secret.secret_id,
            role="roles/secretmanager.secretAccessor",  # read only, this secret only
            member=member,
            opts=child,
        )
    return version.secret


class UserSecrets(pulumi.ComponentResource):
    """One RandomPassword and one Secret Manager secret per login user."""

    names: dict[str, pulumi.Output[str]]

    def __init__(
        self,
        name: str,
        meta: StackMeta,
        settings: GcpSettings,
        db: DatabaseSettings,
        *,
        host: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("private-postgres:gcp:UserSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.names = {}
        for role in USER_ROLES:
            password = generated_password(f"{name}-{role}", role, child)
            self.names[role] = stored_secret(
                f"{name}-{role}",
                meta,
                settings,
                secret_id=f"{meta.prefix}-postgres-{role}",
                role=role,
                document=secret_document(role, password.result, host=host, port=db.port, dbname=db.name),
                parent=self,
            )
        self.register_outputs({"names": self.names})
