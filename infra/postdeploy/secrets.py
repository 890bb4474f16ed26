"""Resolve the database credentials named by the stack outputs, from the cloud's secret store.

- AWS: Secrets Manager through boto3 ``get_secret_value``. The admin secret is the one RDS manages
  (``manage_master_user_password``); the user secrets are the ones provisioning wrote. Both are
  the RDS secret JSON (``{"username": ..., "password": ...}``).
- GCP: Secret Manager through the official ``google-cloud-secret-manager`` client
  (``access_secret_version``). Chosen over shelling out to ``gcloud secrets versions access``
  because the value then never passes through a child process, its argv or its output, and the
  client authenticates with Application Default Credentials, retries transient errors and returns
  the payload's CRC32C, which is checked here. A payload may be the password itself or the same
  JSON shape as on AWS.
- Local demo: :class:`StaticSecrets`, an in-memory map.

Values are wrapped in :class:`Credential`, whose ``repr`` hides the password; no message raised
here ever contains a secret value.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from infra.contract import USER_ROLES, StackOutputs
from infra.enums import Cloud
from infra.errors import SecretError

__all__ = [
    "AwsSecretsManager",
    "Credential",
    "Credentials",
    "GcpSecretManager",
    "SecretResolver",
    "StaticSecrets",
    "resolve_credentials",
    "resolver_for",
]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credential:
    """A login and its password (hidden from ``repr`` so it never lands in a log or traceback)."""

    user: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """The admin credential and one per login user (``migrator``, ``app``, ``readonly``)."""

    admin: Credential
    users: Mapping[str, Credential]

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", MappingProxyType(dict(self.users)))

    def user(self, role: str) -> Credential:
        try:
            return self.users[role]
        except KeyError:
            raise SecretError(f"no credential for role {role!r}") from None

    def passwords(self) -> dict[str, str]:
        return {role: cred.password for role, cred in self.users.items()}


class SecretResolver(Protocol):
    """Fetch one secret's payload by the id the stack outputs name (ARN or resource name)."""

    def fetch(self, secret_id: str) -> str:
        """The secret's current value as text; SecretError (without the value) on failure."""
        ...


def password_from(payload: str, secret_id: str) -> str:
    """The password in a payload: the RDS secret JSON's ``password``, or the payload itself."""
    text = payload.strip()
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError:
            raise SecretError(f"secret {secret_id!r} looks like JSON but does not parse") from None
        if isinstance(doc, dict):
            value = doc.get("password")
            if not isinstance(value, str) or not value:
                raise SecretError(f"secret {secret_id!r} has no 'password' field")
            return value
    if not text:
        raise SecretError(f"secret {secret_id!r} is empty")
    return text


class AwsSecretsManager:
    """AWS Secrets Manager through boto3; ``client`` may be injected (tests use botocore's Stubber)."""

    def __init__(self, region: str | None = None, *, client: Any = None, profile: str | None = None) -> None:
        if client is None:
            import boto3

            session = boto3.session.Session(profile_name=profile, region_name=region)
            client = session.client("secretsmanager")
        self._client = client

    def fetch(self, secret_id: str) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self._client.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            hint = {
                "ResourceNotFoundException": "check the stack outputs and the region",
                "AccessDeniedException": "the caller needs secretsmanager:GetSecretValue (and kms:Decrypt)",
            }.get(code, "check AWS credentials and permissions")
            raise SecretError(f"cannot read secret {secret_id!r}: {code}; {hint}") from None
        except BotoCoreError as exc:
            raise SecretError(
                f"cannot read secret {secret_id!r}: {type(exc).__name__}; check AWS credentials"
            ) from None
        value = response.get("SecretString")
        if not isinstance(value, str):
            raise SecretError(f"secret {secret_id!r} has no SecretString (binary secrets are not supported)")
        return value


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum Secret Manager returns with each payload."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


class GcpSecretManager:
    """GCP Secret Manager through google-cloud-secret-manager; ``client`` may be injected (tests)."""

    def __init__(self, *, client: Any = None) -> None:
        if client is None:
            from google.cloud import secretmanager

            client = secretmanager.SecretManagerServiceClient()
        self._client = client

    def fetch(self, secret_id: str) -> str:
        name = secret_id if "/versions/" in secret_id else f"{secret_id}/versions/latest"
        try:
            response = self._client.access_secret_version(request={"name": name})
        except Exception as exc:  # google.api_core raises many types; none may leak a value
            raise SecretError(
                f"cannot read secret {secret_id!r}: {type(exc).__name__}; "
                "run `gcloud auth application-default login` and check roles/secretmanager.secretAccessor"
            ) from None
        data: bytes = response.payload.data
        expected = getattr(response.payload, "data_crc32c", None)
        if expected and crc32c(data) != int(expected):
            raise SecretError(f"secret {secret_id!r} payload failed its crc32c check; retry")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretError(f"secret {secret_id!r} is not UTF-8 text") from None


class StaticSecrets:
    """In-memory secrets for the local demo and tests: ``{secret id: payload}``."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def fetch(self, secret_id: str) -> str:
        try:
            return self._values[secret_id]
        except KeyError:
            raise SecretError(f"secret {secret_id!r} not found") from None


def resolver_for(outputs: StackOutputs, *, aws_profile: str | None = None) -> SecretResolver:
    """The real resolver for the stack's cloud (AWS region taken from the bastion output)."""
    if outputs.cloud is Cloud.AWS:
        return AwsSecretsManager(
            region=outputs.bastion.region or _region_from_arn(outputs.db_admin_secret), profile=aws_profile
        )
    return GcpSecretManager()


def _region_from_arn(arn: str) -> str | None:
    parts = arn.split(":")
    return parts[3] if len(parts) > 3 and parts[0] == "arn" else None


def resolve_credentials(outputs: StackOutputs, resolver: SecretResolver) -> Credentials:
    """Fetch the admin secret and one secret per login user named in the outputs."""
    admin_payload = resolver.fetch(outputs.db_admin_secret)
    admin = Credential(outputs.db_admin_user, password_from(admin_payload, outputs.db_admin_secret))
    users: dict[str, Credential] = {}
    for role in USER_ROLES:
        secret_id = outputs.db_user_secrets[role]
        users[role] = Credential(role, password_from(resolver.fetch(secret_id), secret_id))
    _log.info("resolved %d credentials from the %s secret store", len(users) + 1, outputs.cloud.value)
    return Credentials(admin=admin, users=users)
