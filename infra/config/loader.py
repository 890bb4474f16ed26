"""Turn raw config into validated settings: the only place that reads ``pulumi.Config``.

:func:`load` validates every key before any resource is declared; a bad value raises
:class:`~infra.errors.ConfigError` naming the key, the value, what is allowed and the
``pulumi config set`` that fixes it. :func:`from_pulumi` reads the running program's config.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping

from infra.config._reader import Reader, cidr, fix
from infra.config.checks import (
    MAX_SSH_ADDRESSES,
    MIN_SSH_PREFIX,
    address_count,
    is_rfc1918,
    ssh_key_problem,
)
from infra.config.keys import KEY_NAMES, NAMESPACE
from infra.config.settings import (
    AwsSettings,
    BastionSettings,
    CloudSettings,
    DatabaseSettings,
    GcpSettings,
    PoolerMode,
    ScaleSettings,
    StackConfig,
    StackMeta,
)
from infra.enums import BastionMode, Cloud, Edition, Environment
from infra.errors import ConfigError

__all__ = ["from_pulumi", "load"]

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
_IAM_MEMBER = re.compile(r"^(user|group|serviceAccount|domain):[^\s@]*@?[A-Za-z0-9.-]+\.[a-z]{2,}$", re.ASCII)
_CLOUD_MODES: dict[Cloud, tuple[BastionMode, ...]] = {
    Cloud.AWS: (BastionMode.SSM, BastionMode.SSH),
    Cloud.GCP: (BastionMode.IAP, BastionMode.SSH),
}
# GCP starts at 2: Cloud SQL keeps point-in-time logs for fewer days than it keeps backups
# (transactionLogRetentionDays < retainedBackups), and the logs need at least one day.
_RETENTION = {Cloud.AWS: (1, 35), Cloud.GCP: (2, 365)}
_CUSTOM_TIER = re.compile(r"^db-custom-\d+-\d+$", re.ASCII)
_AWS_REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$", re.ASCII)
_RDS_CA = frozenset({"rds-ca-rsa2048-g1", "rds-ca-rsa4096-g1", "rds-ca-ecc384-g1"})
_CLOUDWATCH_RETENTION = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
_SSH_CIDR_FIX = "pulumi config set --path 'sshAllowedCidrs[0]' 203.0.113.10/32"


def load(values: Mapping[str, str], *, project: str = NAMESPACE, stack: str = "dev") -> StackConfig:
    """Validate raw config (fully-qualified keys such as ``private-postgres:cloud``, ``aws:region``)."""
    _reject_unknown_keys(values)
    read = Reader(values)
    cloud = read.choice("cloud", Cloud)
    environment = read.choice("environment", Environment)
    production = environment is Environment.PRODUCTION

    database = _database(read, cloud, production)
    bastion = _bastion(read, cloud)
    settings: CloudSettings = _aws(read, values, bastion) if cloud is Cloud.AWS else _gcp(read, values)
    return StackConfig(
        meta=StackMeta(project=project, stack=stack, environment=environment),
        database=database,
        bastion=bastion,
        settings=settings,
        run_migrations_on_up=read.boolean("runMigrationsOnUp"),
        scale=_scale(read, settings),
    )


def _reject_unknown_keys(values: Mapping[str, str]) -> None:
    for full_key in sorted(values):
        namespace, _, key = full_key.partition(":")
        if namespace == NAMESPACE and key.split(".")[0].split("[")[0] not in KEY_NAMES:
            close = difflib.get_close_matches(key, sorted(KEY_NAMES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                key,
                values[full_key],
                f"{hint}known keys are listed in Pulumi.yaml",
                f"pulumi config rm {key}",
            )


def _database(read: Reader, cloud: Cloud, production: bool) -> DatabaseSettings:
    name = read.text("dbName")
    if not _IDENT.match(name) or name in ("postgres", "template0", "template1", "rdsadmin", "cloudsqladmin"):
        raise ConfigError(
            "dbName",
            name,
            "a lowercase identifier (a-z, 0-9, _), not a system database",
            fix("dbName", "app"),
        )
    admin = read.text("dbAdminUser")
    if not _IDENT.match(admin) or admin in _RESERVED_USERS or admin.startswith("pg_"):
        raise ConfigError(
            "dbAdminUser",
            admin,
            "a lowercase identifier, not reserved (postgres, rdsadmin, cloudsqladmin, our role names, pg_*)",
            fix("dbAdminUser", "pgadmin"),
        )
    storage = read.integer("dbStorageGb", 20, 65536)
    max_storage = read.integer("dbMaxStorageGb", 20, 65536)
    if max_storage < storage:
        raise ConfigError(
            "dbMaxStorageGb",
            max_storage,
            f"at least dbStorageGb ({storage})",
            fix("dbMaxStorageGb", str(max(storage * 5, 100))),
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


def _bastion(read: Reader, cloud: Cloud) -> BastionSettings:
    allowed_modes = _CLOUD_MODES[cloud]
    raw_mode = read.text("bastionMode").lower()
    by_name: dict[str, BastionMode] = {m.value: m for m in allowed_modes}
    if raw_mode == "auto":
        mode = allowed_modes[0]
    elif raw_mode in by_name:
        mode = by_name[raw_mode]
    else:
        allowed = " | ".join(by_name)
        raise ConfigError("bastionMode", raw_mode, f"{allowed} | auto on {cloud.value}", fix("bastionMode", "auto"))
    cidrs = _ssh_sources(tuple(cidr("sshAllowedCidrs", item) for item in read.array("sshAllowedCidrs")))
    key = read.text("sshPublicKey") or None
    if mode is BastionMode.SSH:
        if not cidrs:
            raise ConfigError("sshAllowedCidrs", [], "at least one CIDR in ssh mode", _SSH_CIDR_FIX)
        problem = "an OpenSSH public key in ssh mode" if key is None else ssh_key_problem(key)
        if problem is not None:
            raise ConfigError("sshPublicKey", key, problem, fix("sshPublicKey", '"$(cat ~/.ssh/id_ed25519.pub)"'))
    elif cidrs:
        raise ConfigError(
            "sshAllowedCidrs",
            list(map(str, cidrs)),
            f"empty unless bastionMode is ssh (it is {mode.value})",
            "pulumi config rm sshAllowedCidrs",
        )
    return BastionSettings(mode=mode, ssh_allowed_cidrs=cidrs, ssh_public_key=key)


def _ssh_sources(cidrs: tuple[ipaddress.IPv4Network, ...]) -> tuple[ipaddress.IPv4Network, ...]:
    """Port 22 opens to at most one /24's worth of addresses, each source a /24 or narrower (EC2.13, CIS GCP 3.6)."""
    for net in cidrs:
        if net.prefixlen < MIN_SSH_PREFIX:
            raise ConfigError(
                "sshAllowedCidrs",
                str(net),
                f"sources of /{MIN_SSH_PREFIX} or narrower ({net} opens {net.num_addresses} addresses to port 22; "
                "EC2.13 / CIS GCP 3.6)",
                _SSH_CIDR_FIX,
            )
    total = address_count(cidrs)
    if total > MAX_SSH_ADDRESSES:
        raise ConfigError(
            "sshAllowedCidrs",
            [str(net) for net in cidrs],
            f"at most {MAX_SSH_ADDRESSES} addresses in all (these open {total} to port 22)",
            _SSH_CIDR_FIX,
        )
    return cidrs


def _aws(read: Reader, values: Mapping[str, str], bastion: BastionSettings) -> AwsSettings:
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
            fix("dbInstanceClass", "db.t4g.micro"),
        )
    vpc_cidr = cidr("vpcCidr", read.text("vpcCidr"))
    if not 16 <= vpc_cidr.prefixlen <= 24 or not is_rfc1918(vpc_cidr):
        raise ConfigError(
            "vpcCidr", str(vpc_cidr), "a private (RFC 1918) range from /16 to /24", fix("vpcCidr", "10.40.0.0/16")
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
            fix("existingVpcId", "vpc-..."),
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
            fix("existingPublicSubnetId", "subnet-..."),
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
            "caCertIdentifier", ca, " | ".join(sorted(_RDS_CA)), fix("caCertIdentifier", "rds-ca-rsa2048-g1")
        )
    retention = read.integer("logRetentionDays", 1, 3653)
    if retention not in _CLOUDWATCH_RETENTION:
        raise ConfigError(
            "logRetentionDays",
            retention,
            f"a CloudWatch retention: {', '.join(map(str, sorted(_CLOUDWATCH_RETENTION)))}",
            fix("logRetentionDays", "30"),
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


def _gcp(read: Reader, values: Mapping[str, str]) -> GcpSettings:
    project = values.get("gcp:project", "").strip()
    if not re.match(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$", project):
        raise ConfigError(
            "gcp:project",
            project or None,
            "a GCP project id such as my-project-123",
            "pulumi config set gcp:project my-project-123",
        )
    region = values.get("gcp:region", "").strip()
    if not re.match(r"^[a-z]+-[a-z]+\d$", region, re.ASCII):
        raise ConfigError(
            "gcp:region",
            region or None,
            "a GCP region such as europe-west1",
            "pulumi config set gcp:region europe-west1",
        )
    zone = read.text("bastionZone") or f"{region}-b"
    if not zone.startswith(f"{region}-") or not re.match(r"^[a-z]+-[a-z]+\d-[a-z]$", zone, re.ASCII):
        raise ConfigError(
            "bastionZone", zone, f"a zone of {region} such as {region}-b", fix("bastionZone", f"{region}-b")
        )
    edition = read.choice("dbEdition", Edition, upper=True)
    tier = _tier(read.text("dbTier"), edition)
    port = read.integer("dbPort", 1150, 65535)
    if port != 5432:
        # Cloud SQL always listens on 5432; another dbPort would put a wrong port in the outputs.
        raise ConfigError("dbPort", port, "5432 on gcp (Cloud SQL's fixed port)", "pulumi config rm dbPort")
    subnet = cidr("subnetCidr", read.text("subnetCidr"))
    if not 8 <= subnet.prefixlen <= 29 or not is_rfc1918(subnet):
        raise ConfigError(
            "subnetCidr", str(subnet), "a private (RFC 1918) range from /8 to /29", fix("subnetCidr", "10.40.0.0/24")
        )
    operators = read.array("operators")
    for member in operators:
        if not _IAM_MEMBER.match(member):
            raise ConfigError(
                "operators",
                member,
                "IAM members such as user:ana@example.com or group:dba@example.com",
                "pulumi config set --path 'operators[0]' user:ana@example.com",
            )
    organization = read.text("operatorsOrganization") or None
    if organization is not None and not re.fullmatch(r"[1-9][0-9]{5,24}", organization):
        raise ConfigError(
            "operatorsOrganization",
            organization,
            "a numeric organization id (gcloud organizations list)",
            fix("operatorsOrganization", "123456789012"),
        )
    return GcpSettings(
        project=project,
        region=region,
        zone=zone,
        tier=tier,
        edition=edition,
        subnet_cidr=subnet,
        psc_range_prefix=read.integer("pscRangePrefix", 8, 24),
        operators=operators,
        operators_organization=organization,
    )


def _tier(tier: str, edition: Edition) -> str:
    if not re.match(r"^db-[a-z0-9]+(-[A-Za-z0-9]+)*$", tier):  # db-perf-optimized-N-2 has a capital N
        raise ConfigError(
            "dbTier", tier, "a Cloud SQL tier such as db-custom-1-3840", fix("dbTier", "db-custom-1-3840")
        )
    if _CUSTOM_TIER.match(tier) and edition is not Edition.ENTERPRISE:
        raise ConfigError(
            "dbEdition",
            edition.value,
            f"ENTERPRISE with custom tier {tier} (ENTERPRISE_PLUS needs db-perf-optimized-N-*)",
            fix("dbEdition", "ENTERPRISE"),
        )
    if tier.startswith("db-perf-optimized-") and edition is not Edition.ENTERPRISE_PLUS:
        raise ConfigError(
            "dbEdition", edition.value, f"ENTERPRISE_PLUS with tier {tier}", fix("dbEdition", "ENTERPRISE_PLUS")
        )
    if edition is Edition.ENTERPRISE_PLUS and not tier.startswith("db-perf-optimized-"):
        # Shared-core tiers (db-f1-micro, db-g1-small) and n1 tiers are ENTERPRISE only, like custom ones.
        raise ConfigError(
            "dbEdition",
            edition.value,
            f"ENTERPRISE with tier {tier} (ENTERPRISE_PLUS needs db-perf-optimized-N-*)",
            fix("dbEdition", "ENTERPRISE"),
        )
    return tier


# ---- scale-out validation ----------------------------------------------------------------------------
# Replicas per primary: RDS for PostgreSQL allows 15 in one region (RDS User Guide, "Working with
# read replicas": "up to 15 read replicas"); Cloud SQL allows 10 (Cloud SQL "About replication":
# "up to 10 read replicas per primary") (memory, verify).
_MAX_REPLICAS = {Cloud.AWS: 15, Cloud.GCP: 10}


def _scale(read: Reader, settings: CloudSettings) -> ScaleSettings:
    aws = settings if isinstance(settings, AwsSettings) else None
    gcp = settings if isinstance(settings, GcpSettings) else None
    replicas = read.integer("readReplicas", 0, _MAX_REPLICAS[settings.cloud])
    raw_pooler = read.text("pooler").lower()
    try:
        pooler = PoolerMode(raw_pooler)
    except ValueError:
        raise ConfigError("pooler", raw_pooler, "none | managed", fix("pooler", "managed")) from None
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
                fix("replicaInstanceClass", "db.t4g.micro"),
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
        if not re.match(r"^db-[a-z0-9]+(-[A-Za-z0-9]+)*$", replica_class) or perf != (
            gcp.edition is Edition.ENTERPRISE_PLUS
        ):
            example = gcp.tier
            raise ConfigError(
                "replicaTier",
                replica_class,
                f"a Cloud SQL tier of edition {gcp.edition.value} (the primary's), such as {example}",
                fix("replicaTier", example),
            )
        if pooler is PoolerMode.MANAGED and gcp.edition is not Edition.ENTERPRISE_PLUS:
            # Managed Connection Pooling exists only on Enterprise Plus (Cloud SQL "Managed Connection
            # Pooling overview", Requirements). We do not run a PgBouncer VM instead: README "Pooling on GCP".
            raise ConfigError(
                "pooler",
                "managed",
                "none on dbEdition ENTERPRISE (managed pooling needs ENTERPRISE_PLUS, tier db-perf-optimized-N-*)",
                "pulumi config set dbEdition ENTERPRISE_PLUS && pulumi config set dbTier db-perf-optimized-N-2",
            )
    return ScaleSettings(read_replicas=replicas, replica_class=replica_class if replicas else "", pooler=pooler)


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
