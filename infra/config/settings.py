"""The validated settings, as frozen values. Only :func:`infra.config.load` builds them.

Components receive the parts they need, typed: :class:`StackMeta` (names, labels, environment)
and the settings of their concern (:class:`DatabaseSettings`, :class:`BastionSettings`, and the
cloud's own :class:`AwsSettings` or :class:`GcpSettings`), never the whole :class:`StackConfig`.
New capabilities (read replicas, a pooler) add their own settings type next to these and a field
on :class:`StackConfig`, so existing components keep their signatures.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from infra.enums import BastionMode, Cloud, Edition, Environment

__all__ = [
    "AwsSettings",
    "BastionSettings",
    "CloudSettings",
    "DatabaseSettings",
    "GcpSettings",
    "PoolerMode",
    "ScaleSettings",
    "StackConfig",
    "StackMeta",
]


@dataclass(frozen=True)
class StackMeta:
    """Who the stack is: the names and labels every resource takes, and its environment."""

    project: str
    stack: str
    environment: Environment

    @property
    def production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def prefix(self) -> str:
        """Stable name prefix for resources (no timestamps or random parts: they diff forever)."""
        return re.sub(r"[^a-z0-9-]", "-", f"{self.project}-{self.stack}".lower())[:40].strip("-")

    @property
    def labels(self) -> dict[str, str]:
        """Tags (AWS) / labels (GCP) put on every resource that takes them."""
        return {
            "project": self.project,
            "stack": self.stack,
            "environment": self.environment.value,
            "managed-by": "pulumi",
        }


@dataclass(frozen=True)
class DatabaseSettings:
    name: str
    admin_user: str
    port: int
    storage_gb: int
    max_storage_gb: int
    backup_retention_days: int
    high_availability: bool
    deletion_protection: bool


@dataclass(frozen=True)
class BastionSettings:
    mode: BastionMode
    ssh_allowed_cidrs: tuple[ipaddress.IPv4Network, ...]
    ssh_public_key: str | None


@dataclass(frozen=True)
class AwsSettings:
    region: str
    instance_class: str
    vpc_cidr: ipaddress.IPv4Network
    existing_vpc_id: str | None
    existing_private_subnet_ids: tuple[str, ...]
    existing_public_subnet_id: str | None
    app_security_group_ids: tuple[str, ...]
    ca_cert_identifier: str
    log_retention_days: int
    cloud: ClassVar[Cloud] = Cloud.AWS


@dataclass(frozen=True)
class GcpSettings:
    project: str
    region: str
    zone: str
    tier: str
    edition: Edition
    subnet_cidr: ipaddress.IPv4Network
    psc_range_prefix: int
    operators: tuple[str, ...]
    operators_organization: str | None = None
    cloud: ClassVar[Cloud] = Cloud.GCP


class PoolerMode(StrEnum):
    NONE = "none"
    MANAGED = "managed"  # RDS Proxy (AWS) / Cloud SQL Managed Connection Pooling (GCP)


@dataclass(frozen=True)
class ScaleSettings:
    """Read replicas and the connection pooler (``readReplicas``, ``replica*``, ``pooler``)."""

    read_replicas: int = 0
    replica_class: str = ""  # AWS instance class / GCP tier of the replicas, resolved (never empty if replicas)
    pooler: PoolerMode = PoolerMode.NONE

    @property
    def pooled(self) -> bool:
        return self.pooler is PoolerMode.MANAGED


#: One cloud's settings; ``match`` on the class picks the cloud.
CloudSettings = AwsSettings | GcpSettings


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated; ``settings`` is the chosen cloud's."""

    meta: StackMeta
    database: DatabaseSettings
    bastion: BastionSettings
    settings: CloudSettings
    run_migrations_on_up: bool
    scale: ScaleSettings = ScaleSettings()

    @property
    def cloud(self) -> Cloud:
        return self.settings.cloud

    @property
    def project(self) -> str:
        return self.meta.project

    @property
    def stack(self) -> str:
        return self.meta.stack

    @property
    def environment(self) -> Environment:
        return self.meta.environment

    @property
    def production(self) -> bool:
        return self.meta.production

    @property
    def prefix(self) -> str:
        return self.meta.prefix

    @property
    def labels(self) -> dict[str, str]:
        return self.meta.labels

    @property
    def aws(self) -> AwsSettings | None:
        return self.settings if isinstance(self.settings, AwsSettings) else None

    @property
    def gcp(self) -> GcpSettings | None:
        return self.settings if isinstance(self.settings, GcpSettings) else None
