"""The config surface: every key with its type, default and description.

``Pulumi.yaml`` declares the same keys; a unit test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["KEYS", "KEY_NAMES", "NAMESPACE", "KeySpec", "KeyType"]

NAMESPACE = "private-postgres"

KeyType = Literal["string", "integer", "boolean", "array"]


@dataclass(frozen=True)
class KeySpec:
    name: str
    type: KeyType
    default: str | int | bool | tuple[str, ...]
    description: str


# "auto" defaults depend on `environment` (true only in production) or on `cloud`.
KEYS: tuple[KeySpec, ...] = (
    KeySpec("cloud", "string", "aws", "Cloud to deploy to: aws | gcp"),
    KeySpec("environment", "string", "dev", "dev | staging | production (production: protection, HA, no seed)"),
    KeySpec("dbName", "string", "app", "Name of the application database"),
    KeySpec("dbAdminUser", "string", "pgadmin", "Admin (master) user name; never `postgres` (FSBP RDS.25)"),
    KeySpec("dbPort", "integer", 5432, "Database port (AWS: another port meets FSBP RDS.23; GCP: 5432 only)"),
    KeySpec("dbStorageGb", "integer", 20, "Initial storage in GiB"),
    KeySpec("dbMaxStorageGb", "integer", 100, "Storage autoscaling / autoresize limit in GiB"),
    KeySpec("backupRetentionDays", "integer", 30, "Automated backup retention in days (AWS 1-35, GCP 2-365)"),
    KeySpec("highAvailability", "string", "auto", "Multi-AZ / REGIONAL: true | false | auto (true in production)"),
    KeySpec(
        "deletionProtection",
        "string",
        "auto",
        "Deletion protection: true | false | auto (true in production)",
    ),
    KeySpec("bastionMode", "string", "auto", "ssm (AWS) | iap (GCP) | ssh; auto = ssm on AWS, iap on GCP"),
    KeySpec(
        "sshAllowedCidrs",
        "array",
        (),
        "ssh mode only: CIDRs allowed to reach port 22 (each /24 or narrower, 256 addresses in all)",
    ),
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
    KeySpec("subnetCidr", "string", "10.40.0.0/24", "GCP: CIDR of the bastion subnet (a private RFC 1918 range)"),
    KeySpec("pscRangePrefix", "integer", 16, "GCP: prefix length of the private service access range"),
    KeySpec("operators", "array", (), "GCP: IAM members allowed to open the IAP tunnel (user:a@b.c, group:...)"),
    KeySpec(
        "operatorsOrganization",
        "string",
        "",
        "GCP: organization id; operators get roles/compute.osLoginExternalUser there (accounts from outside it)",
    ),
    KeySpec("bastionZone", "string", "", "GCP: zone of the bastion; empty = <region>-b"),
    # Scale-out (read replicas, connection pooler): validated together by the loader's _scale()
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

KEY_NAMES = frozenset(spec.name for spec in KEYS)
