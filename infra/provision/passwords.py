"""The one password policy for every generated database password, and the one secret document
that stores it (AWS Secrets Manager and GCP Secret Manager alike).

A ``pulumi_random.RandomPassword`` per login, kept stable by its keepers: a new password only
when the role it belongs to changes, never on a plain ``pulumi up``.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

__all__ = ["PASSWORD_LENGTH", "PASSWORD_SPECIALS", "generated_password", "secret_document"]

PASSWORD_LENGTH = 32
# RDS rejects `/`, `"`, `@` and space in passwords; Cloud SQL accepts all of these. The intersection
# keeps one policy for both clouds and keeps passwords safe in libpq connection strings.
PASSWORD_SPECIALS = "!#$%&*()-_=+[]{}<>:?"  # noqa: S105 (a character set, not a password)


def generated_password(name: str, role: str, opts: pulumi.ResourceOptions) -> random.RandomPassword:
    """A RandomPassword for ``role``; its result is a Pulumi secret in state and outputs."""
    return random.RandomPassword(
        name,
        length=PASSWORD_LENGTH,
        special=True,
        override_special=PASSWORD_SPECIALS,
        min_lower=2,
        min_upper=2,
        min_numeric=2,
        keepers={"role": role},  # stable: a new password only when the role changes
        opts=opts,
    )


def secret_document(
    username: str,
    password: pulumi.Input[str],
    *,
    host: pulumi.Input[str],
    port: int,
    dbname: str,
) -> pulumi.Output[str]:
    """The RDS secret JSON (``username``, ``password``, ``engine``, ``host``, ``port``, ``dbname``).

    The post-deploy step reads ``password`` from it (``infra.postdeploy.secrets.password_from``); the result
    is a Pulumi secret because the password is.
    """
    return pulumi.Output.json_dumps(
        {
            "username": username,
            "password": password,
            "engine": "postgres",
            "host": host,
            "port": port,
            "dbname": dbname,
        }
    )
