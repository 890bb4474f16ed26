"""The security rules of the project as plain functions over one resource's inputs.

Each check takes the Pulumi type token and the resource's inputs *as the policy SDK presents
them*, and returns the violation messages (empty: compliant, or not a type it looks at). The
policy pack (``__main__.py``) only wires :data:`RULES` into CrossGuard; the tests call the
functions directly, with no engine.

How the SDK presents inputs (checked in ``pulumi_policy/policy.py`` 1.21.0, ``Analyze``):
``args.props`` is ``deserialize_properties(MessageToDict(request.properties))`` wrapped in an
unknown-checking proxy. So the keys are the provider schema's names, camelCase as the engine
sends them (``publiclyAccessible``, ``settings.ipConfiguration.ipv4Enabled``), never the Python
SDK's snake_case; secrets arrive as their plain value; numbers arrive as floats (``30.0``); maps and
lists are ``collections.abc.Mapping`` / ``Sequence`` proxies, not ``dict`` / ``list``; and reading a
value that is unknown during preview raises the SDK's ``UnknownValueError``, which the SDK turns
into an advisory "can't run policy during preview" note. The checks therefore never catch broad
exceptions, and read a value only once they know the resource is one they judge.

Every message starts with the control it enforces, then says what was found (``!r``) and the
Pulumi argument (snake_case, as the program writes it) that fixes it.

One module of ~800 lines, on purpose: the CLI loads the pack with its directory on ``sys.path``
(``rules`` is a top-level module there) while the tests import ``policy.rules``; a second module
would need an import that works under both names, or ``sys.path`` surgery in the pack.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

__all__ = [
    "IAP_RANGE",
    "MAX_SSH_ADDRESSES",
    "MIN_SSH_PREFIX",
    "RULES",
    "STACK_RULES",
    "Check",
    "Rule",
    "StackRule",
    "cloudsql_backups_pitr",
    "cloudsql_pgaudit",
    "cloudsql_private_only",
    "cloudsql_ssl_enforced",
    "compute_no_external_ip",
    "compute_shielded_vm",
    "ec2_imdsv2",
    "ec2_no_public_ip_unless_ssh_bastion",
    "firewall_ssh_only_from_iap",
    "no_ssh_from_anywhere",
    "rds_admin_not_postgres",
    "rds_backups",
    "rds_encrypted",
    "rds_force_ssl",
    "rds_not_public",
    "rds_postgres16_major_only",
    "rds_production_protection",
    "rds_proxy_tls",
    "secrets_kms",
    "ssh_address_space",
    "ssh_sources_narrow",
    "stack_violations",
    "subnet_flow_logs",
    "violations",
]

Check = Callable[[str, Mapping[str, Any]], list[str]]
#: A stack check sees every resource at once: ``(type, props)`` pairs.
StackCheck = Callable[[Sequence[tuple[str, Mapping[str, Any]]]], list[str]]

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
RDS_PROXY = "aws:rds/proxy:Proxy"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
SG_INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SG_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"  # the older rule resource: same exposure
EC2_INSTANCE = "aws:ec2/instance:Instance"
SECRETS_MANAGER_TYPE = "aws:secretsmanager/secret:Secret"
SQL_INSTANCE = "gcp:sql/databaseInstance:DatabaseInstance"
COMPUTE_INSTANCE = "gcp:compute/instance:Instance"
FIREWALL = "gcp:compute/firewall:Firewall"
SUBNETWORK = "gcp:compute/subnetwork:Subnetwork"

IAP_RANGE = "35.235.240.0/20"  # where IAP TCP forwarding connects from (Google-published)
MIN_BACKUP_DAYS = 7  # FSBP RDS.11 asks for backups; 7 days is the floor here (the project default is 30)
ENGINE_MAJOR = "16"
RESERVED_ADMIN_USERS = frozenset({"postgres", "admin"})  # the defaults FSBP RDS.25 looks for
SSL_MODES = frozenset({"ENCRYPTED_ONLY", "TRUSTED_CLIENT_CERTIFICATE_REQUIRED"})
SSH_PORT = 22
# The same limit as the program's config (infra/config/checks.py; a unit test keeps them equal): a
# source reaching port 22 is a /24 or narrower, and all sources together open at most 256 addresses.
MIN_SSH_PREFIX = 24
MAX_SSH_ADDRESSES = 2 ** (32 - MIN_SSH_PREFIX)
PGAUDIT_NOTHING = frozenset({"", "none"})


# -- helpers -----------------------------------------------------------------------------------


def _get(props: Mapping[str, Any], path: str) -> Any:
    """A nested input by dotted path; None where a level is missing (reads raise on unknowns)."""
    value: Any = props
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _items(value: Any) -> Sequence[Any]:
    """A list input as a sequence (None and a lone string give nothing to iterate)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        return value
    return ()


def _truthy(value: Any) -> bool:
    """Inputs may come as bools or, from YAML / older state, as "true"/"false" strings."""
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _is_anywhere(cidr: Any) -> bool:
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False


def _covers_port(from_port: Any, to_port: Any, protocol: Any, port: int) -> bool:
    """Does an AWS rule (ip_protocol, from_port..to_port) let ``port``/tcp in?"""
    proto = str(protocol).lower() if protocol is not None else ""
    if proto in ("-1", "all"):
        return True  # every protocol, every port
    if proto not in ("tcp", "6"):
        return False
    if from_port is None or to_port is None:
        return True
    low, high = int(from_port), int(to_port)
    if low == -1 and high == -1:
        return True
    return low <= port <= high


def _network(cidr: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if not isinstance(cidr, str):
        return None
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError:
        return None


def _ssh_sources(resource_type: str, props: Mapping[str, Any]) -> tuple[str, list[str]] | None:
    """(what the sources open, its CIDRs outside IAP's range) for a resource that lets tcp/22 in, else None.

    The first item groups sources that add up: the security group of an AWS rule, all GCP firewalls.
    IAP's own range is not counted: only Google's forwarders connect from it.
    """
    if resource_type == SG_INGRESS_RULE:
        if not _covers_port(props.get("fromPort"), props.get("toPort"), props.get("ipProtocol"), SSH_PORT):
            return None
        sources = [c for c in (props.get("cidrIpv4"), props.get("cidrIpv6")) if isinstance(c, str)]
        return f"security group {props.get('securityGroupId')}", sources
    if resource_type == SG_RULE and props.get("type") == "ingress":
        if not _covers_port(props.get("fromPort"), props.get("toPort"), props.get("protocol"), SSH_PORT):
            return None
        sources = [str(c) for c in (*_items(props.get("cidrBlocks")), *_items(props.get("ipv6CidrBlocks")))]
        return f"security group {props.get('securityGroupId')}", sources
    if resource_type == FIREWALL and str(props.get("direction") or "INGRESS").upper() == "INGRESS":
        allows = [a for a in _items(props.get("allows")) if isinstance(a, Mapping)]
        if not any(_gcp_allows_port(a, SSH_PORT) for a in allows):
            return None
        iap = ipaddress.ip_network(IAP_RANGE)
        sources = [str(s) for s in _items(props.get("sourceRanges"))]
        outside = [s for s in sources if (net := _network(s)) is None or not _within(net, iap)]
        # one key for every firewall: a stack has one network, and reading `network` (an id known
        # only after apply) would turn the whole stack policy into an advisory note in preview
        return "the stack's firewall rules", outside
    return None


def _breadth(sources: Sequence[str]) -> tuple[list[str], int]:
    """The sources broader than /24 (IPv4) or /120 (IPv6), and how many addresses they all open."""
    nets = [n for n in (_network(s) for s in sources) if n is not None]
    broad = [str(n) for n in nets if n.num_addresses > MAX_SSH_ADDRESSES]
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    total = sum(n.num_addresses for n in ipaddress.collapse_addresses(v4))
    total += sum(n.num_addresses for n in ipaddress.collapse_addresses(v6))
    return broad, total


# -- AWS: RDS ----------------------------------------------------------------------------------


def rds_not_public(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.2: the instance has no public endpoint."""
    if resource_type != RDS_INSTANCE:
        return []
    value = props.get("publiclyAccessible")
    if _truthy(value):
        return [f"FSBP RDS.2: publiclyAccessible is {value!r}; keep the database private (publicly_accessible=False)"]
    return []


def rds_encrypted(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.3: storage (and so snapshots and backups) encrypted at rest."""
    if resource_type != RDS_INSTANCE:
        return []
    value = props.get("storageEncrypted")
    if not _truthy(value):
        return [f"FSBP RDS.3: storageEncrypted is {value!r}; encrypt storage at rest (storage_encrypted=True)"]
    return []


def rds_backups(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.11: automated backups kept at least 7 days (point-in-time recovery lives in that window)."""
    if resource_type != RDS_INSTANCE:
        return []
    if props.get("replicateSourceDb"):
        return []  # a read replica is recovered from its source's backups (PostgreSQL replicas keep none)
    value = props.get("backupRetentionPeriod")
    # Unset means the provider default (1 day for the API, 0 for some engines): not enough.
    days = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
    if days < MIN_BACKUP_DAYS:
        return [
            f"FSBP RDS.11: backupRetentionPeriod is {value!r}; keep automated backups at least "
            f"{MIN_BACKUP_DAYS} days (backup_retention_period, default 30 in this project)"
        ]
    return []


def rds_admin_not_postgres(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.25: the master user is not the well-known default name."""
    if resource_type != RDS_INSTANCE:
        return []
    if props.get("replicateSourceDb"):
        return []  # a replica inherits its source's master user and takes no username
    value = props.get("username")
    if not isinstance(value, str) or not value.strip():
        return ["FSBP RDS.25: no username set; the engine default `postgres` would be used (set username)"]
    if value.strip().lower() in RESERVED_ADMIN_USERS:
        return [f"FSBP RDS.25: username is {value!r}; use a custom administrator name (config dbAdminUser)"]
    return []


def rds_postgres16_major_only(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Project rule (DESIGN: PostgreSQL 16, quiet previews) and FSBP RDS.13 (automatic minor upgrades).

    The version is pinned to the major only: a pinned minor version fights the automatic minor
    upgrades and shows as a change on every preview after the first maintenance window.
    """
    if resource_type != RDS_INSTANCE:
        return []
    found: list[str] = []
    if props.get("replicateSourceDb"):
        # A read replica takes its engine and version from its source and may not set them
        # (pulumi_aws rds.Instance: they conflict with replicate_source_db); only upgrades are judged.
        upgrades = props.get("autoMinorVersionUpgrade")
        if upgrades is not None and not _truthy(upgrades):
            found.append(
                f"FSBP RDS.13: autoMinorVersionUpgrade is {upgrades!r}; keep minor upgrades automatic "
                "(auto_minor_version_upgrade=True)"
            )
        return found
    engine = props.get("engine")
    if engine != "postgres":
        found.append(f"project rule (PostgreSQL 16): engine is {engine!r}; use engine='postgres'")
    version = props.get("engineVersion")
    if version is None or str(version) != ENGINE_MAJOR:
        found.append(
            f"project rule (PostgreSQL 16, major only): engineVersion is {version!r}; set "
            f"engine_version={ENGINE_MAJOR!r} (a minor version diffs after every automatic minor upgrade)"
        )
    upgrades = props.get("autoMinorVersionUpgrade")
    if upgrades is not None and not _truthy(upgrades):
        found.append(
            f"FSBP RDS.13: autoMinorVersionUpgrade is {upgrades!r}; keep minor upgrades automatic "
            "(auto_minor_version_upgrade=True)"
        )
    return found


def rds_force_ssl(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Project rule (DESIGN: TLS verify-full everywhere): a postgres16 parameter group sets rds.force_ssl=1."""
    if resource_type != RDS_PARAMETER_GROUP or props.get("family") != f"postgres{ENGINE_MAJOR}":
        return []
    values = [
        p.get("value")
        for p in _items(props.get("parameters"))
        if isinstance(p, Mapping) and p.get("name") == "rds.force_ssl"
    ]
    if not values:
        return ["project rule (TLS only): rds.force_ssl is not set; add the parameter rds.force_ssl=1"]
    if any(str(v).strip() != "1" for v in values):
        return [f"project rule (TLS only): rds.force_ssl is {values[-1]!r}; set it to '1'"]
    return []


def rds_production_protection(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.8: deletion protection on every instance tagged environment=production."""
    if resource_type != RDS_INSTANCE:
        return []
    tags = props.get("tags")
    environment = tags.get("environment") if isinstance(tags, Mapping) else None
    if environment != "production":
        return []
    value = props.get("deletionProtection")
    if not _truthy(value):
        return [
            f"FSBP RDS.8: deletionProtection is {value!r} on a production database; set "
            "deletion_protection=True (config deletionProtection auto/true)"
        ]
    return []


def rds_proxy_tls(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP RDS.43 (Config rule rds-proxy-tls-encryption): an RDS Proxy refuses connections without TLS."""
    if resource_type != RDS_PROXY:
        return []
    value = props.get("requireTls")
    if not _truthy(value):
        return [f"FSBP RDS.43: requireTls is {value!r}; the proxy must refuse plaintext clients (require_tls=True)"]
    return []


# -- AWS: network and compute ------------------------------------------------------------------


def no_ssh_from_anywhere(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP EC2.13 (no SSH from 0.0.0.0/0 or ::/0), EC2.18 (no other port open to the internet),
    and no inline rules on security groups (separate rule resources only)."""
    if resource_type in (SECURITY_GROUP, DEFAULT_SECURITY_GROUP):
        # Inline rules and rule resources on one group overwrite each other on every update, and an
        # inline rule is invisible to the per-rule checks below.
        if _items(props.get("ingress")):
            return [
                "project rule (separate rule resources): security group has inline ingress rules; "
                "declare aws.vpc.SecurityGroupIngressRule resources instead"
            ]
        return []
    if resource_type == SG_INGRESS_RULE:
        sources = [props.get("cidrIpv4"), props.get("cidrIpv6")]
        ports = (props.get("fromPort"), props.get("toPort"), props.get("ipProtocol"))
    elif resource_type == SG_RULE and props.get("type") == "ingress":
        sources = [*_items(props.get("cidrBlocks")), *_items(props.get("ipv6CidrBlocks"))]
        ports = (props.get("fromPort"), props.get("toPort"), props.get("protocol"))
    else:
        return []
    open_to = [s for s in sources if _is_anywhere(s)]
    if not open_to:
        return []
    if _covers_port(*ports, port=SSH_PORT):
        return [
            f"FSBP EC2.13: ingress from {open_to[0]!r} reaches port 22 (ports {ports[0]!r}-{ports[1]!r}, "
            f"protocol {ports[2]!r}); allow SSH only from named CIDRs (config sshAllowedCidrs) or use SSM"
        ]
    return [
        f"FSBP EC2.18: ingress from {open_to[0]!r} (ports {ports[0]!r}-{ports[1]!r}, protocol {ports[2]!r}); "
        "nothing in this stack is open to the internet"
    ]


def _is_ssh_bastion(props: Mapping[str, Any]) -> bool:
    """The ssh-mode bastion: tagged Name=<prefix>-bastion and given a key pair (ssm mode has none)."""
    tags = props.get("tags")
    name = tags.get("Name") if isinstance(tags, Mapping) else None
    key = props.get("keyName")
    return isinstance(name, str) and name.endswith("-bastion") and isinstance(key, str) and bool(key)


def ec2_imdsv2(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP EC2.8: instance metadata only through IMDSv2 session tokens."""
    if resource_type != EC2_INSTANCE:
        return []
    value = _get(props, "metadataOptions.httpTokens")
    if value != "required":
        return [
            f"FSBP EC2.8: metadataOptions.httpTokens is {value!r}; require IMDSv2 "
            "(metadata_options=InstanceMetadataOptionsArgs(http_tokens='required'))"
        ]
    return []


def ec2_no_public_ip_unless_ssh_bastion(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP EC2.9: no public IPv4 address, except the ssh-mode bastion (Name tag *-bastion and a key pair)."""
    if resource_type != EC2_INSTANCE:
        return []
    value = props.get("associatePublicIpAddress")
    if value is None:
        # Unset lets the subnet's map_public_ip_on_launch decide, which this policy cannot see.
        return ["FSBP EC2.9: associatePublicIpAddress is not set; say associate_public_ip_address=False explicitly"]
    if _truthy(value) and not _is_ssh_bastion(props):
        return [
            f"FSBP EC2.9: associatePublicIpAddress is {value!r}; only the ssh-mode bastion (Name tag "
            "'<prefix>-bastion' with a key pair) may have a public address"
        ]
    return []


def secrets_kms(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """Project rule (DESIGN: one customer-managed KMS key, FSBP KMS.4 rotation): every secret uses it."""
    if resource_type != SECRETS_MANAGER_TYPE:
        return []
    value = props.get("kmsKeyId")
    if not isinstance(value, str) or not value.strip():
        return [
            "project rule (customer-managed KMS): kmsKeyId is not set, so the AWS-managed key would be "
            "used; set kms_key_id to the stack's data key"
        ]
    return []


# -- GCP ---------------------------------------------------------------------------------------


def cloudsql_private_only(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 6.6 (no public IP) and 6.5 (no authorized networks)."""
    if resource_type != SQL_INSTANCE:
        return []
    found: list[str] = []
    ip = _get(props, "settings.ipConfiguration")
    ipv4 = ip.get("ipv4Enabled") if isinstance(ip, Mapping) else None
    # Absent means the API default, which is a public address.
    if ipv4 is None or _truthy(ipv4):
        found.append(
            f"CIS GCP 6.6: settings.ipConfiguration.ipv4Enabled is {ipv4!r}; private IP only (ipv4_enabled=False)"
        )
    networks = _items(ip.get("authorizedNetworks")) if isinstance(ip, Mapping) else ()
    if networks:
        values = [n.get("value") for n in networks if isinstance(n, Mapping)]
        found.append(f"CIS GCP 6.5: authorized networks {values!r}; allow none (authorized_networks=[])")
    return found


def cloudsql_ssl_enforced(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 6.4: every connection encrypted (ssl_mode), and the removed require_ssl never set."""
    if resource_type != SQL_INSTANCE:
        return []
    ip = _get(props, "settings.ipConfiguration")
    ip = ip if isinstance(ip, Mapping) else {}
    found: list[str] = []
    mode = ip.get("sslMode")
    if mode not in SSL_MODES:
        found.append(
            f"CIS GCP 6.4: settings.ipConfiguration.sslMode is {mode!r}; use one of {sorted(SSL_MODES)!r} "
            "(ssl_mode='ENCRYPTED_ONLY')"
        )
    if "requireSsl" in ip:
        # Deprecated, then removed from the API; set together with ssl_mode the two fight on every update.
        found.append("CIS GCP 6.4: requireSsl is set; remove it and use ssl_mode only")
    return found


def cloudsql_backups_pitr(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 6.7: automated backups on, with point-in-time recovery."""
    if resource_type != SQL_INSTANCE:
        return []
    if props.get("masterInstanceName"):
        return []  # a read replica cannot have backups of its own; its primary's cover it
    backup = _get(props, "settings.backupConfiguration")
    backup = backup if isinstance(backup, Mapping) else {}
    found: list[str] = []
    enabled = backup.get("enabled")
    if not _truthy(enabled):
        found.append(f"CIS GCP 6.7: backupConfiguration.enabled is {enabled!r}; turn automated backups on")
    pitr = backup.get("pointInTimeRecoveryEnabled")
    if not _truthy(pitr):
        found.append(
            f"CIS GCP 6.7: backupConfiguration.pointInTimeRecoveryEnabled is {pitr!r}; "
            "turn point-in-time recovery on (point_in_time_recovery_enabled=True)"
        )
    return found


def cloudsql_pgaudit(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 6.2.8: PostgreSQL instances load pgAudit (cloudsql.enable_pgaudit=on) and say what it
    records (pgaudit.log); without pgaudit.log the extension loads and audits nothing."""
    if resource_type != SQL_INSTANCE:
        return []
    version = props.get("databaseVersion")
    if not isinstance(version, str) or not version.startswith("POSTGRES"):
        return []
    flags = {
        f.get("name"): f.get("value") for f in _items(_get(props, "settings.databaseFlags")) if isinstance(f, Mapping)
    }
    found: list[str] = []
    enabled = flags.get("cloudsql.enable_pgaudit")
    if str(enabled).lower() != "on":
        found.append(f"CIS GCP 6.2.8: database flag cloudsql.enable_pgaudit is {enabled!r}; set it to 'on'")
    audited = flags.get("pgaudit.log")
    if str(audited or "").strip().lower() in PGAUDIT_NOTHING:
        found.append(
            f"CIS GCP 6.2.8: database flag pgaudit.log is {audited!r}; pgAudit records nothing without it "
            "(e.g. 'ddl,role')"
        )
    return found


def subnet_flow_logs(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 3.8: every subnet logs its flows, all of them (flow sampling 1.0)."""
    if resource_type != SUBNETWORK:
        return []
    config = props.get("logConfig")
    if not isinstance(config, Mapping):
        return ["CIS GCP 3.8: the subnet has no logConfig; turn VPC flow logs on (log_config=...)"]
    sampling = config.get("flowSampling")
    if not isinstance(sampling, int | float) or isinstance(sampling, bool) or float(sampling) != 1.0:
        return [f"CIS GCP 3.8: logConfig.flowSampling is {sampling!r}; log every flow (flow_sampling=1.0)"]
    return []


def ssh_sources_narrow(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """FSBP EC2.13 / CIS GCP 3.6, measured: a rule that lets tcp/22 in names sources of /24 or
    narrower, 256 addresses at most together (["0.0.0.0/1", "128.0.0.0/1"] is the internet too)."""
    found = _ssh_sources(resource_type, props)
    if found is None:
        return []
    # 0.0.0.0/0 and ::/0 are reported by no-ssh-from-anywhere / firewall-ssh-only-from-iap already
    sources = [c for c in found[1] if not _is_anywhere(c)]
    broad, total = _breadth(sources)
    if broad:
        return [
            f"FSBP EC2.13 / CIS GCP 3.6: SSH (tcp/22) from {broad[0]!r}; each source must be a /{MIN_SSH_PREFIX} "
            "or narrower (config sshAllowedCidrs)"
        ]
    if total > MAX_SSH_ADDRESSES:
        return [
            f"FSBP EC2.13 / CIS GCP 3.6: SSH (tcp/22) from {total} addresses; at most {MAX_SSH_ADDRESSES} "
            "in all (config sshAllowedCidrs)"
        ]
    return []


def ssh_address_space(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """FSBP EC2.13 / CIS GCP 3.6 across resources: the SSH sources of all rules on one security group
    (AWS declares one rule resource per CIDR) or in all GCP firewalls add up to at most 256 addresses."""
    by_target: dict[str, list[str]] = {}
    for resource_type, props in resources:
        found = _ssh_sources(resource_type, props)
        if found is not None:
            by_target.setdefault(found[0], []).extend(found[1])
    messages: list[str] = []
    for target, sources in sorted(by_target.items()):
        _, total = _breadth(sources)
        if total > MAX_SSH_ADDRESSES:
            messages.append(
                f"FSBP EC2.13 / CIS GCP 3.6: SSH (tcp/22) into {target} from {total} addresses in all "
                f"({', '.join(sorted(set(sources)))}); at most {MAX_SSH_ADDRESSES} (config sshAllowedCidrs)"
            )
    return messages


def _is_gcp_ssh_bastion(props: Mapping[str, Any]) -> bool:
    """The ssh-mode bastion: named <prefix>-bastion with an ssh-keys metadata entry (iap mode has none)."""
    name = props.get("name")
    metadata = props.get("metadata")
    keys = metadata.get("ssh-keys") if isinstance(metadata, Mapping) else None
    return isinstance(name, str) and name.endswith("-bastion") and isinstance(keys, str) and bool(keys)


def compute_no_external_ip(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 4.9: no external address, except the ssh-mode bastion (named *-bastion with ssh-keys)."""
    if resource_type != COMPUTE_INSTANCE:
        return []
    found: list[str] = []
    for index, interface in enumerate(_items(props.get("networkInterfaces"))):
        if not isinstance(interface, Mapping):
            continue
        if _items(interface.get("accessConfigs")) and not _is_gcp_ssh_bastion(props):
            found.append(
                f"CIS GCP 4.9: networkInterfaces[{index}] has an access config (external IPv4); "
                "reach the instance through IAP instead (access_configs=[])"
            )
        if _items(interface.get("ipv6AccessConfigs")):
            found.append(
                f"CIS GCP 4.9: networkInterfaces[{index}] has an IPv6 access config (external IPv6); remove it"
            )
    return found


def compute_shielded_vm(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """CIS GCP 4.8: Shielded VM with secure boot, vTPM and integrity monitoring."""
    if resource_type != COMPUTE_INSTANCE:
        return []
    config = props.get("shieldedInstanceConfig")
    config = config if isinstance(config, Mapping) else {}
    found: list[str] = []
    # Secure boot defaults to off; vTPM and integrity monitoring default to on, so only an explicit False fails.
    if not _truthy(config.get("enableSecureBoot")):
        found.append(
            f"CIS GCP 4.8: shieldedInstanceConfig.enableSecureBoot is {config.get('enableSecureBoot')!r}; "
            "set enable_secure_boot=True"
        )
    for key in ("enableVtpm", "enableIntegrityMonitoring"):
        value = config.get(key)
        if value is not None and not _truthy(value):
            found.append(f"CIS GCP 4.8: shieldedInstanceConfig.{key} is {value!r}; leave it on")
    return found


def _gcp_allows_port(allow: Mapping[str, Any], port: int) -> bool:
    protocol = str(allow.get("protocol", "")).lower()
    if protocol not in ("tcp", "all", "6"):
        return False
    ports = _items(allow.get("ports"))
    if not ports:
        return True  # no ports listed: every port of the protocol
    for spec in ports:
        low, _, high = str(spec).partition("-")
        try:
            if int(low) <= port <= int(high or low):
                return True
        except ValueError:
            return True  # a port the API would refuse anyway: judge the rule as if it opened 22
    return False


def _within(network: ipaddress.IPv4Network | ipaddress.IPv6Network, outer: Any) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(outer, ipaddress.IPv4Network):
        return network.subnet_of(outer)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(outer, ipaddress.IPv6Network):
        return network.subnet_of(outer)
    return False


def firewall_ssh_only_from_iap(
    resource_type: str, props: Mapping[str, Any], *, extra_ranges: Sequence[str] = ()
) -> list[str]:
    """CIS GCP 3.10 (SSH only through IAP) and 3.6 (never SSH from the internet).

    An ingress rule that allows tcp/22 may have source ranges only inside 35.235.240.0/20, or
    inside ``extra_ranges`` (the pack's ``extraSshSourceRanges`` config, for an ssh-mode bastion);
    ``0.0.0.0/0`` and ``::/0`` are refused whatever the config says.
    """
    if resource_type != FIREWALL:
        return []
    direction = props.get("direction") or "INGRESS"
    if str(direction).upper() != "INGRESS":
        return []
    allows = [a for a in _items(props.get("allows")) if isinstance(a, Mapping)]
    if not any(_gcp_allows_port(a, SSH_PORT) for a in allows):
        return []
    sources = [str(s) for s in _items(props.get("sourceRanges"))]
    if not sources and not _items(props.get("sourceTags")) and not _items(props.get("sourceServiceAccounts")):
        sources = ["0.0.0.0/0"]  # GCP's default when a rule names no source at all
    allowed = [ipaddress.ip_network(r.strip(), strict=False) for r in (IAP_RANGE, *extra_ranges)]
    found: list[str] = []
    for source in sources:
        if _is_anywhere(source):
            found.append(f"CIS GCP 3.6: SSH (tcp/22) allowed from {source!r}; never from the internet")
            continue
        try:
            network = ipaddress.ip_network(source, strict=False)
        except ValueError:
            found.append(f"CIS GCP 3.10: SSH source range {source!r} is not a CIDR")
            continue
        if not any(_within(network, a) for a in allowed):
            found.append(
                f"CIS GCP 3.10: SSH (tcp/22) allowed from {source!r}; only IAP TCP forwarding "
                f"({IAP_RANGE}) may reach port 22 (or list the range in the pack config extraSshSourceRanges)"
            )
    return found


# -- the pack's table --------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One policy: its name, the control in its description, and the check."""

    name: str
    description: str
    check: Check
    # JSON schema of the policy's config properties (CrossGuard `config_schema`), if it takes any.
    config_schema: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Builds the check from the policy config the engine hands over (``args.get_config()``).
    configure: Callable[[Mapping[str, Any]], Check] | None = None

    def evaluate(
        self, resource_type: str, props: Mapping[str, Any], config: Mapping[str, Any] | None = None
    ) -> list[str]:
        check = self.configure(config or {}) if self.configure is not None else self.check
        return check(resource_type, props)


def _firewall_from_config(config: Mapping[str, Any]) -> Check:
    ranges = tuple(str(r) for r in _items(config.get("extraSshSourceRanges")))
    return partial(firewall_ssh_only_from_iap, extra_ranges=ranges)


RULES: tuple[Rule, ...] = (
    Rule("rds-not-public", "FSBP RDS.2: RDS instances are not publicly accessible.", rds_not_public),
    Rule("rds-encrypted", "FSBP RDS.3: RDS storage is encrypted at rest.", rds_encrypted),
    Rule("rds-backups", "FSBP RDS.11: RDS automated backups are kept at least 7 days.", rds_backups),
    Rule(
        "rds-admin-not-postgres",
        "FSBP RDS.25: the RDS master user has a custom name, not `postgres` (or `admin`).",
        rds_admin_not_postgres,
    ),
    Rule(
        "rds-postgres16-major-only",
        "Project rule (PostgreSQL 16, quiet previews) and FSBP RDS.13: engine postgres, engine_version '16' "
        "with no minor pinned, automatic minor upgrades on.",
        rds_postgres16_major_only,
    ),
    Rule(
        "rds-force-ssl",
        "Project rule (TLS only): every postgres16 RDS parameter group sets rds.force_ssl=1.",
        rds_force_ssl,
    ),
    Rule(
        "rds-production-protection",
        "FSBP RDS.8: RDS instances tagged environment=production have deletion protection on.",
        rds_production_protection,
    ),
    Rule(
        "rds-proxy-tls",
        "FSBP RDS.43: RDS Proxies require TLS for every client connection.",
        rds_proxy_tls,
    ),
    Rule(
        "no-ssh-from-anywhere",
        "FSBP EC2.13 / EC2.18: no security group ingress from 0.0.0.0/0 or ::/0 (SSH or any other port); "
        "no inline security group ingress rules.",
        no_ssh_from_anywhere,
    ),
    Rule("ec2-imdsv2", "FSBP EC2.8: EC2 instances require IMDSv2 (http_tokens=required).", ec2_imdsv2),
    Rule(
        "ec2-no-public-ip-unless-ssh-bastion",
        "FSBP EC2.9: EC2 instances have no public IPv4 address, except the ssh-mode bastion "
        "(Name tag '<prefix>-bastion' with a key pair).",
        ec2_no_public_ip_unless_ssh_bastion,
    ),
    Rule(
        "secrets-kms",
        "Project rule (customer-managed KMS key with rotation, FSBP KMS.4): Secrets Manager secrets set kms_key_id.",
        secrets_kms,
    ),
    Rule(
        "cloudsql-private-only",
        "CIS GCP 6.6 / 6.5: Cloud SQL has no public IP (ipv4_enabled=False) and no authorized networks.",
        cloudsql_private_only,
    ),
    Rule(
        "cloudsql-ssl-enforced",
        "CIS GCP 6.4: Cloud SQL ssl_mode is ENCRYPTED_ONLY or TRUSTED_CLIENT_CERTIFICATE_REQUIRED; require_ssl unset.",
        cloudsql_ssl_enforced,
    ),
    Rule(
        "cloudsql-backups-pitr",
        "CIS GCP 6.7: Cloud SQL automated backups and point-in-time recovery are on.",
        cloudsql_backups_pitr,
    ),
    Rule(
        "cloudsql-pgaudit",
        "CIS GCP 6.2.8: Cloud SQL for PostgreSQL sets the database flags cloudsql.enable_pgaudit=on and pgaudit.log.",
        cloudsql_pgaudit,
    ),
    Rule(
        "subnet-flow-logs",
        "CIS GCP 3.8: every subnet has VPC flow logs with flow sampling 1.0.",
        subnet_flow_logs,
    ),
    Rule(
        "ssh-sources-narrow",
        f"FSBP EC2.13 / CIS GCP 3.6: a rule that lets tcp/22 in names sources of /{MIN_SSH_PREFIX} or narrower, "
        f"{MAX_SSH_ADDRESSES} addresses at most.",
        ssh_sources_narrow,
    ),
    Rule(
        "compute-no-external-ip",
        "CIS GCP 4.9: Compute instances have no external IP, except the ssh-mode bastion (named "
        "'<prefix>-bastion' with ssh-keys metadata).",
        compute_no_external_ip,
    ),
    Rule(
        "compute-shielded-vm",
        "CIS GCP 4.8: Compute instances are Shielded VMs (secure boot, vTPM, integrity monitoring).",
        compute_shielded_vm,
    ),
    Rule(
        "firewall-ssh-only-from-iap",
        "CIS GCP 3.10 / 3.6: firewall ingress to tcp/22 only from IAP (35.235.240.0/20) or the configured "
        "extraSshSourceRanges; never from 0.0.0.0/0.",
        firewall_ssh_only_from_iap,
        config_schema={
            "extraSshSourceRanges": {
                "type": "array",
                "items": {"type": "string"},
                "default": [],
                "description": "ssh-mode bastion only: CIDRs besides IAP that may reach tcp/22 (never 0.0.0.0/0)",
            }
        },
        configure=_firewall_from_config,
    ),
)


@dataclass(frozen=True)
class StackRule:
    """One stack policy: it judges every resource of the stack at once."""

    name: str
    description: str
    check: StackCheck


STACK_RULES: tuple[StackRule, ...] = (
    StackRule(
        "ssh-address-space",
        "FSBP EC2.13 / CIS GCP 3.6: all SSH sources into one security group (AWS) or through the stack's "
        f"firewall rules (GCP) add up to at most {MAX_SSH_ADDRESSES} addresses.",
        ssh_address_space,
    ),
)


def stack_violations(resources: Sequence[tuple[str, Mapping[str, Any]]]) -> Iterator[tuple[str, str]]:
    """Every (policy name, message) the pack's stack policies report."""
    for rule in STACK_RULES:
        for message in rule.check(resources):
            yield rule.name, message


def violations(
    resource_type: str, props: Mapping[str, Any], config: Mapping[str, Mapping[str, Any]] | None = None
) -> Iterator[tuple[str, str]]:
    """Every (policy name, message) the pack reports for one resource; ``config`` is keyed by policy name."""
    for rule in RULES:
        for message in rule.evaluate(resource_type, props, (config or {}).get(rule.name)):
            yield rule.name, message
