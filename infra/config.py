"""Stack configuration: the only module that reads ``pulumi.Config``.

:data:`KEYS` is the config surface (name, type, default, description); ``Pulumi.yaml`` declares
the same keys and a unit test keeps the two equal. :func:`load` turns raw values into frozen,
validated settings before any resource is declared. A bad value raises
:class:`~infra.errors.ConfigError` naming the key, the value, what is allowed and the
``pulumi config set`` that fixes it.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, TypeVar

from infra.enums import BastionMode, Cloud, Environment
from infra.errors import ConfigError

__all__ = [
    "KEYS",
    "NAMESPACE",
    "AwsSettings",
    "BastionSettings",
    "DatabaseSettings",
    "GcpSettings",
    "KeySpec",
    "PoolerMode",
    "ScaleSettings",
    "StackConfig",
    "from_pulumi",
    "load",
]

NAMESPACE = "private-postgres"

KeyType = Literal["string", "integer", "boolean", "array"]


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: KeyType
    default: str | int | bool | tuple[str, ...]
    description: str


# ---- scale-out (read replicas, connection pooler): one block, validated by _scale() ----------------
SCALE_KEYS: tuple[KeySpec, ...] = (
    KeySpec("readReplicas", "integer", 0, "Read replicas of the database (AWS 0-15, GCP 0-10)"),
    KeySpec("replicaInstanceClass", "string", "", "AWS: RDS class of the read replicas; empty = dbInstanceClass"),
    KeySpec("replicaTier", "string", "", "GCP: Cloud SQL tier of the read replicas; empty = dbTier"),
    KeySpec(
        "pooler",
        "string",
        "none",
        "Connection pooler for the app: none | managed (AWS RDS Proxy; GCP managed pooling, ENTERPRISE_PLUS)",
    ),
)
# ------------------------------------------------------------------------------------------------------

# The config surface. "auto" defaults depend on `environment` (true only in production) or on `cloud`.
KEYS: tuple[KeySpec, ...] = (
    KeySpec("cloud", "string", "aws", "Cloud to deploy to: aws | gcp"),
    KeySpec("environment", "string", "dev", "dev | staging | production (production: protection, HA, no seed)"),
    KeySpec("dbName", "string", "app", "Name of the application database"),
    KeySpec("dbAdminUser", "string", "pgadmin", "Admin (master) user name; never `postgres` (FSBP RDS.25)"),
    KeySpec("dbPort", "integer", 5432, "Database port"),
    KeySpec("dbStorageGb", "integer", 20, "Initial storage in GiB"),
    KeySpec("dbMaxStorageGb", "integer", 100, "Storage autoscaling / autoresize limit in GiB"),
    KeySpec("backupRetentionDays", "integer", 30, "Automated backup retention in days (AWS 1-35, GCP 1-365)"),
    KeySpec("highAvailability", "string", "auto", "Multi-AZ / REGIONAL: true | false | auto (true in production)"),
    KeySpec(
        "deletionProtection",
        "string",
        "auto",
        "Deletion protection: true | false | auto (true in production)",
    ),
    KeySpec("bastionMode", "string", "auto", "ssm (AWS) | iap (GCP) | ssh; auto = ssm on AWS, iap on GCP"),
    KeySpec("sshAllowedCidrs", "array", (), "ssh mode only: CIDRs allowed to reach the bastion on port 22"),
    KeySpec("sshPublicKey", "string", "", "ssh mode only: OpenSSH public key installed on the bastion"),
    KeySpec("runMigrationsOnUp", "boolean", False, "Run the bundled migrations through the bastion in `pulumi up`"),
    # AWS
    KeySpec("dbInstanceClass", "string", "db.t4g.micro", "AWS: RDS instance class"),
    KeySpec("vpcCidr", "string", "10.40.0.0/16", "AWS: CIDR of the new VPC (ignored with existingVpcId)"),
    KeySpec("existingVpcId", "string", "", "AWS: deploy into this VPC instead of creating one"),
    KeySpec("existingPrivateSubnetIds", "array", (), "AWS: private subnets (two AZs at least) of existingVpcId"),
    KeySpec("existingPublicSubnetId", "string", "", "AWS, ssh mode with existingVpcId: subnet for the bastion"),
    KeySpec("appSecurityGroupIds", "array", (), "AWS: extra security groups allowed to reach the database"),
    KeySpec("caCertIdentifier", "string", "rds-ca-rsa2048-g1", "AWS: RDS server certificate authority"),
    KeySpec("logRetentionDays", "integer", 30, "AWS: CloudWatch retention of the exported PostgreSQL logs"),
    # GCP
    KeySpec("dbTier", "string", "db-custom-1-3840", "GCP: Cloud SQL machine tier"),
    KeySpec(
        "dbEdition",
        "string",
        "ENTERPRISE",
        "GCP: ENTERPRISE | ENTERPRISE_PLUS (custom tiers need ENTERPRISE)",
    ),
    KeySpec("subnetCidr", "string", "10.40.0.0/24", "GCP: CIDR of the bastion subnet"),
    KeySpec("pscRangePrefix", "integer", 16, "GCP: prefix length of the private service access range"),
    KeySpec("operators", "array", (), "GCP: IAM members allowed to open the IAP tunnel (user:a@b.c, group:...)"),
    KeySpec("bastionZone", "string", "", "GCP: zone of the bastion; empty = <region>-b"),
    *SCALE_KEYS,
)

_KEY_NAMES = {spec.name for spec in KEYS}

# Names the clouds or our own schema reserve; the admin may not take them (FSBP RDS.25: not `postgres`).
_RESERVED_USERS = frozenset(
    {
        "postgres",
        "rdsadmin",
        "rds_superuser",
        "rdsrepladmin",
        "rds_iam",
        "cloudsqladmin",
        "cloudsqlsuperuser",
        "cloudsqlagent",
        "cloudsqlreplica",
        "admin",
        "root",
        "app_owner",
        "app_readwrite",
        "app_readonly",
        "platform_admin",
        "migrator",
        "app",
        "readonly",
        "public",
    }
)
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_IAM_MEMBER = re.compile(r"^(user|group|serviceAccount|domain):[^\s@]*@?[A-Za-z0-9.-]+\.[a-z]{2,}$")
_CLOUD_MODES: dict[Cloud, tuple[BastionMode, ...]] = {
    Cloud.AWS: (BastionMode.SSM, BastionMode.SSH),
    Cloud.GCP: (BastionMode.IAP, BastionMode.SSH),
}
_RETENTION = {Cloud.AWS: (1, 35), Cloud.GCP: (1, 365)}
_CUSTOM_TIER = re.compile(r"^db-custom-\d+-\d+$")
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
_RDS_CA = frozenset({"rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"})


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


@dataclass(frozen=True)
class GcpSettings:
    project: str
    region: str
    zone: str
    tier: str
    edition: str
    subnet_cidr: ipaddress.IPv4Network
    psc_range_prefix: int
    operators: tuple[str, ...]


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


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. ``aws`` or ``gcp`` is set, by ``cloud``."""

    project: str
    stack: str
    cloud: Cloud
    environment: Environment
    database: DatabaseSettings
    bastion: BastionSettings
    run_migrations_on_up: bool
    aws: AwsSettings | None = None
    gcp: GcpSettings | None = None
    scale: ScaleSettings = ScaleSettings()

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


def _fix(key: str, example: str) -> str:
    return f"pulumi config set {key} {example}"


_Choice = TypeVar("_Choice", Cloud, Environment)


class _Reader:
    """Typed access to raw config values with the defaults of :data:`KEYS`."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values
        self.specs = {spec.name: spec for spec in KEYS}

    def raw(self, key: str) -> str | None:
        value = self.values.get(f"{NAMESPACE}:{key}")
        return None if value is None else str(value)

    def text(self, key: str) -> str:
        value = self.raw(key)
        default = self.specs[key].default
        return str(default) if value is None else value.strip()

    def integer(self, key: str, low: int, high: int) -> int:
        value = self.raw(key)
        if value is None:
            default = self.specs[key].default
            assert isinstance(default, int)
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(key, value, f"a whole number from {low} to {high}", _fix(key, str(low))) from None
        if not low <= number <= high:
            raise ConfigError(
                key,
                number,
                f"a whole number from {low} to {high}",
                _fix(key, str(min(max(number, low), high))),
            )
        return number

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if value is None:
            default = self.specs[key].default
            assert isinstance(default, bool)
            return default
        lowered = value.strip().lower()
        if lowered not in ("true", "false"):
            raise ConfigError(key, value, "true or false", _fix(key, "true"))
        return lowered == "true"

    def tristate(self, key: str, production: bool) -> bool:
        value = self.text(key).lower()
        if value == "auto":
            return production
        if value not in ("true", "false"):
            raise ConfigError(key, value, "true, false or auto (auto = true only in production)", _fix(key, "auto"))
        return value == "true"

    def array(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if value is None or not value.strip():
            return ()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise ConfigError(key, value, "a list of strings", f"pulumi config set --path '{key}[0]' <value>")
        return tuple(parsed)

    def choice(self, key: str, kind: type[_Choice]) -> _Choice:
        value = self.text(key)
        try:
            return kind(value.lower())
        except ValueError:
            allowed = " | ".join(member.value for member in kind)
            raise ConfigError(key, value, allowed, _fix(key, next(iter(kind)).value)) from None


def load(values: Mapping[str, str], *, project: str = NAMESPACE, stack: str = "dev") -> StackConfig:
    """Validate raw config (fully-qualified keys such as ``private-postgres:cloud``, ``aws:region``)."""
    _reject_unknown_keys(values)
    read = _Reader(values)
    cloud = read.choice("cloud", Cloud)
    environment = read.choice("environment", Environment)
    production = environment is Environment.PRODUCTION

    database = _database(read, cloud, production)
    bastion = _bastion(read, cloud)
    aws = _aws(read, values, bastion) if cloud is Cloud.AWS else None
    gcp = _gcp(read, values) if cloud is Cloud.GCP else None
    return StackConfig(
        project=project,
        stack=stack,
        cloud=cloud,
        environment=environment,
        database=database,
        bastion=bastion,
        run_migrations_on_up=read.boolean("runMigrationsOnUp"),
        aws=aws,
        gcp=gcp,
        scale=_scale(read, cloud, aws, gcp),
    )


def _reject_unknown_keys(values: Mapping[str, str]) -> None:
    for full_key in sorted(values):
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key.split(".")[0].split("[")[0] not in _KEY_NAMES:
            close = difflib.get_close_matches(key, sorted(_KEY_NAMES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                key,
                values[full_key],
                f"{hint}known keys are listed in Pulumi.yaml",
                f"pulumi config rm {key}",
            )


def _database(read: _Reader, cloud: Cloud, production: bool) -> DatabaseSettings:
    name = read.text("dbName")
    if not _IDENT.match(name) or name in ("postgres", "template0", "template1", "rdsadmin", "cloudsqladmin"):
        raise ConfigError(
            "dbName",
            name,
            "a lowercase identifier (a-z, 0-9, _), not a system database",
            _fix("dbName", "app"),
        )
    admin = read.text("dbAdminUser")
    if not _IDENT.match(admin) or admin in _RESERVED_USERS or admin.startswith("pg_"):
        raise ConfigError(
            "dbAdminUser",
            admin,
            "a lowercase identifier, not reserved (postgres, rdsadmin, cloudsqladmin, our role names, pg_*)",
            _fix("dbAdminUser", "pgadmin"),
        )
    storage = read.integer("dbStorageGb", 20, 65536)
    max_storage = read.integer("dbMaxStorageGb", 20, 65536)
    if max_storage < storage:
        raise ConfigError(
            "dbMaxStorageGb",
            max_storage,
            f"at least dbStorageGb ({storage})",
            _fix("dbMaxStorageGb", str(max(storage * 5, 100))),
        )
    low, high = _RETENTION[cloud]
    return DatabaseSettings(
        name=name,
        admin_user=admin,
        port=read.integer("dbPort", 1150, 65535),
        storage_gb=storage,
        max_storage_gb=max_storage,
        backup_retention_days=read.integer("backupRetentionDays", low, high),
        high_availability=read.tristate("highAvailability", production),
        deletion_protection=read.tristate("deletionProtection", production),
    )


def _bastion(read: _Reader, cloud: Cloud) -> BastionSettings:
    allowed_modes = _CLOUD_MODES[cloud]
    raw_mode = read.text("bastionMode").lower()
    by_name: dict[str, BastionMode] = {m.value: m for m in allowed_modes}
    if raw_mode == "auto":
        mode = allowed_modes[0]
    elif raw_mode in by_name:
        mode = by_name[raw_mode]
    else:
        allowed = " | ".join(by_name)
        raise ConfigError("bastionMode", raw_mode, f"{allowed} | auto on {cloud.value}", _fix("bastionMode", "auto"))
    cidrs = tuple(_cidr("sshAllowedCidrs", item) for item in read.array("sshAllowedCidrs"))
    for net in cidrs:
        if net.prefixlen == 0:
            raise ConfigError(
                "sshAllowedCidrs",
                str(net),
                "specific CIDRs, never the whole internet (EC2.13 / CIS GCP 3.6)",
                "pulumi config set --path 'sshAllowedCidrs[0]' 203.0.113.10/32",
            )
    key = read.text("sshPublicKey") or None
    if mode is BastionMode.SSH:
        if not cidrs:
            raise ConfigError(
                "sshAllowedCidrs",
                [],
                "at least one CIDR in ssh mode",
                "pulumi config set --path 'sshAllowedCidrs[0]' 203.0.113.10/32",
            )
        if key is None or not re.match(r"^(ssh-ed25519|ecdsa-sha2-nistp\d+|ssh-rsa) [A-Za-z0-9+/=]+", key):
            raise ConfigError(
                "sshPublicKey",
                key,
                "an OpenSSH public key in ssh mode",
                _fix("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"'),
            )
    elif cidrs:
        raise ConfigError(
            "sshAllowedCidrs",
            list(map(str, cidrs)),
            f"empty unless bastionMode is ssh (it is {mode.value})",
            "pulumi config rm sshAllowedCidrs",
        )
    return BastionSettings(mode=mode, ssh_allowed_cidrs=cidrs, ssh_public_key=key)


def _cidr(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError:
        raise ConfigError(
            key, value, "an IPv4 CIDR such as 10.40.0.0/16 (host bits zero)", _fix(key, "10.40.0.0/16")
        ) from None


def _aws(read: _Reader, values: Mapping[str, str], bastion: BastionSettings) -> AwsSettings:
    region = values.get("aws:region", "").strip()
    if not _AWS_REGION.match(region):
        raise ConfigError(
            "aws:region",
            region or None,
            "an AWS region such as eu-west-1",
            "pulumi config set aws:region eu-west-1",
        )
    instance_class = read.text("dbInstanceClass")
    if not re.match(r"^db\.[a-z0-9]+\.[a-z0-9]+$", instance_class):
        raise ConfigError(
            "dbInstanceClass",
            instance_class,
            "an RDS class such as db.t4g.micro",
            _fix("dbInstanceClass", "db.t4g.micro"),
        )
    vpc_cidr = _cidr("vpcCidr", read.text("vpcCidr"))
    if not 16 <= vpc_cidr.prefixlen <= 24 or not vpc_cidr.is_private:
        raise ConfigError(
            "vpcCidr", str(vpc_cidr), "a private IPv4 range from /16 to /24", _fix("vpcCidr", "10.40.0.0/16")
        )
    vpc_id = read.text("existingVpcId") or None
    subnets = read.array("existingPrivateSubnetIds")
    public_subnet = read.text("existingPublicSubnetId") or None
    if vpc_id is not None and not re.match(r"^vpc-[0-9a-f]{8,17}$", vpc_id):
        raise ConfigError(
            "existingVpcId",
            vpc_id,
            "a VPC id such as vpc-0123456789abcdef0",
            "pulumi config rm existingVpcId",
        )
    if vpc_id is not None and len(subnets) < 2:
        raise ConfigError(
            "existingPrivateSubnetIds",
            list(subnets),
            "two or more private subnet ids (in different AZs) when existingVpcId is set",
            "pulumi config set --path 'existingPrivateSubnetIds[0]' subnet-... (and [1])",
        )
    if vpc_id is None and (subnets or public_subnet):
        raise ConfigError(
            "existingPrivateSubnetIds",
            list(subnets),
            "empty unless existingVpcId is set",
            _fix("existingVpcId", "vpc-..."),
        )
    for subnet in (*subnets, *([public_subnet] if public_subnet else [])):
        if not re.match(r"^subnet-[0-9a-f]{8,17}$", subnet):
            raise ConfigError(
                "existingPrivateSubnetIds",
                subnet,
                "subnet ids such as subnet-0123456789abcdef0",
                "pulumi config set --path 'existingPrivateSubnetIds[0]' subnet-...",
            )
    if vpc_id is not None and bastion.mode is BastionMode.SSH and public_subnet is None:
        raise ConfigError(
            "existingPublicSubnetId",
            None,
            "a public subnet for the ssh-mode bastion in an existing VPC",
            _fix("existingPublicSubnetId", "subnet-..."),
        )
    groups = read.array("appSecurityGroupIds")
    for group in groups:
        if not re.match(r"^sg-[0-9a-f]{8,17}$", group):
            raise ConfigError(
                "appSecurityGroupIds",
                group,
                "security group ids such as sg-0123456789abcdef0",
                "pulumi config set --path 'appSecurityGroupIds[0]' sg-...",
            )
    ca = read.text("caCertIdentifier")
    if ca not in _RDS_CA:
        raise ConfigError(
            "caCertIdentifier", ca, " | ".join(sorted(_RDS_CA)), _fix("caCertIdentifier", "rds-ca-rsa2048-g1")
        )
    retention = read.integer("logRetentionDays", 1, 3653)
    if retention not in _CLOUDWATCH_RETENTION:
        raise ConfigError(
            "logRetentionDays",
            retention,
            f"a CloudWatch retention: {', '.join(map(str, sorted(_CLOUDWATCH_RETENTION)))}",
            _fix("logRetentionDays", "30"),
        )
    return AwsSettings(
        region=region,
        instance_class=instance_class,
        vpc_cidr=vpc_cidr,
        existing_vpc_id=vpc_id,
        existing_private_subnet_ids=subnets,
        existing_public_subnet_id=public_subnet,
        app_security_group_ids=groups,
        ca_cert_identifier=ca,
        log_retention_days=retention,
    )


_CLOUDWATCH_RETENTION = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)


def _gcp(read: _Reader, values: Mapping[str, str]) -> GcpSettings:
    project = values.get("gcp:project", "").strip()
    if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", project):
        raise ConfigError(
            "gcp:project",
            project or None,
            "a GCP project id such as my-project-123",
            "pulumi config set gcp:project my-project-123",
        )
    region = values.get("gcp:region", "").strip()
    if not re.match(r"^[a-z]+-[a-z]+\d$", region):
        raise ConfigError(
            "gcp:region",
            region or None,
            "a GCP region such as europe-west1",
            "pulumi config set gcp:region europe-west1",
        )
    zone = read.text("bastionZone") or f"{region}-b"
    if not zone.startswith(f"{region}-") or not re.match(r"^[a-z]+-[a-z]+\d-[a-z]$", zone):
        raise ConfigError(
            "bastionZone", zone, f"a zone of {region} such as {region}-b", _fix("bastionZone", f"{region}-b")
        )
    edition = read.text("dbEdition").upper()
    if edition not in ("ENTERPRISE", "ENTERPRISE_PLUS"):
        raise ConfigError("dbEdition", edition, "ENTERPRISE | ENTERPRISE_PLUS", _fix("dbEdition", "ENTERPRISE"))
    tier = read.text("dbTier")
    if not re.match(r"^db-[a-z0-9]+(-[A-Za-z0-9]+)*$", tier):  # db-perf-optimized-N-2 has a capital N
        raise ConfigError(
            "dbTier", tier, "a Cloud SQL tier such as db-custom-1-3840", _fix("dbTier", "db-custom-1-3840")
        )
    if _CUSTOM_TIER.match(tier) and edition != "ENTERPRISE":
        raise ConfigError(
            "dbEdition",
            edition,
            f"ENTERPRISE with custom tier {tier} (ENTERPRISE_PLUS needs db-perf-optimized-N-*)",
            _fix("dbEdition", "ENTERPRISE"),
        )
    if tier.startswith("db-perf-optimized-") and edition != "ENTERPRISE_PLUS":
        raise ConfigError(
            "dbEdition", edition, f"ENTERPRISE_PLUS with tier {tier}", _fix("dbEdition", "ENTERPRISE_PLUS")
        )
    if edition == "ENTERPRISE_PLUS" and not tier.startswith("db-perf-optimized-"):
        # Shared-core tiers (db-f1-micro, db-g1-small) and n1 tiers are ENTERPRISE only, like custom ones.
        raise ConfigError(
            "dbEdition",
            edition,
            f"ENTERPRISE with tier {tier} (ENTERPRISE_PLUS needs db-perf-optimized-N-*)",
            _fix("dbEdition", "ENTERPRISE"),
        )
    port = read.integer("dbPort", 1150, 65535)
    if port != 5432:
        # Cloud SQL always listens on 5432; another dbPort would put a wrong port in the outputs.
        raise ConfigError("dbPort", port, "5432 on gcp (Cloud SQL's fixed port)", "pulumi config rm dbPort")
    operators = read.array("operators")
    for member in operators:
        if not _IAM_MEMBER.match(member):
            raise ConfigError(
                "operators",
                member,
                "IAM members such as user:ana@example.com or group:dba@example.com",
                "pulumi config set --path 'operators[0]' user:ana@example.com",
            )
    return GcpSettings(
        project=project,
        region=region,
        zone=zone,
        tier=tier,
        edition=edition,
        subnet_cidr=_cidr("subnetCidr", read.text("subnetCidr")),
        psc_range_prefix=read.integer("pscRangePrefix", 8, 24),
        operators=operators,
    )


# ---- scale-out validation ----------------------------------------------------------------------------
# Replicas per primary: RDS for PostgreSQL allows 15 in one region (RDS User Guide, "Working with
# read replicas": "up to 15 read replicas"); Cloud SQL allows 10 (Cloud SQL "About replication":
# "up to 10 read replicas per primary") (memory, verify).
_MAX_REPLICAS = {Cloud.AWS: 15, Cloud.GCP: 10}


def _scale(read: _Reader, cloud: Cloud, aws: AwsSettings | None, gcp: GcpSettings | None) -> ScaleSettings:
    replicas = read.integer("readReplicas", 0, _MAX_REPLICAS[cloud])
    raw_pooler = read.text("pooler").lower()
    try:
        pooler = PoolerMode(raw_pooler)
    except ValueError:
        raise ConfigError("pooler", raw_pooler, "none | managed", _fix("pooler", "managed")) from None
    aws_class = read.text("replicaInstanceClass")
    gcp_tier = read.text("replicaTier")
    replica_class = ""
    if aws is not None:
        if gcp_tier:
            raise ConfigError(
                "replicaTier", gcp_tier, "empty on aws (use replicaInstanceClass)", "pulumi config rm replicaTier"
            )
        replica_class = aws_class or aws.instance_class
        if not re.match(r"^db\.[a-z0-9]+\.[a-z0-9]+$", replica_class):
            raise ConfigError(
                "replicaInstanceClass",
                replica_class,
                "an RDS class such as db.t4g.micro",
                _fix("replicaInstanceClass", "db.t4g.micro"),
            )
    if gcp is not None:
        if aws_class:
            raise ConfigError(
                "replicaInstanceClass",
                aws_class,
                "empty on gcp (use replicaTier)",
                "pulumi config rm replicaInstanceClass",
            )
        replica_class = gcp_tier or gcp.tier
        # A replica has the primary's edition, so its tier must fit that edition like the primary's.
        perf = replica_class.startswith("db-perf-optimized-")
        if not re.match(r"^db-[a-z0-9]+(-[A-Za-z0-9]+)*$", replica_class) or perf != (gcp.edition == "ENTERPRISE_PLUS"):
            example = gcp.tier
            raise ConfigError(
                "replicaTier",
                replica_class,
                f"a Cloud SQL tier of edition {gcp.edition} (the primary's), such as {example}",
                _fix("replicaTier", example),
            )
        if pooler is PoolerMode.MANAGED and gcp.edition != "ENTERPRISE_PLUS":
            # Managed Connection Pooling exists only on Enterprise Plus (Cloud SQL "Managed Connection
            # Pooling overview", Requirements). We do not run a PgBouncer VM instead: README "Pooling on GCP".
            raise ConfigError(
                "pooler",
                "managed",
                "none on dbEdition ENTERPRISE (managed pooling needs ENTERPRISE_PLUS, tier db-perf-optimized-N-*)",
                "pulumi config set dbEdition ENTERPRISE_PLUS && pulumi config set dbTier db-perf-optimized-N-2",
            )
    return ScaleSettings(read_replicas=replicas, replica_class=replica_class if replicas else "", pooler=pooler)


# ------------------------------------------------------------------------------------------------------


def from_pulumi() -> StackConfig:
    """Read the running program's config (Pulumi engine or mocks) and validate it."""
    import pulumi
    from pulumi.runtime import config as runtime_config

    # Every key of this project's namespace plus the two provider keys we use.
    # The engine passes config in PULUMI_CONFIG; mocks and synth use set_all_config.
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    raw: dict[str, str] = {}
    for full_key in sorted(keys):
        if full_key.startswith(f"{NAMESPACE}:") or full_key in ("aws:region", "gcp:project", "gcp:region"):
            value = runtime_config.get_config(full_key)
            if value is not None:
                raw[full_key] = str(value)
    return load(raw, project=pulumi.get_project(), stack=pulumi.get_stack())
