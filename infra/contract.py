"""The stack outputs: what provisioning promises the post-deploy step, one shape for AWS and GCP.

``pulumi up`` exports exactly the fields of :class:`StackOutputs` (see ``infra.provision.program``);
``migrate``, ``tunnel``, ``drift`` and ``restore-drill`` read them back only through
:meth:`StackOutputs.parse`, which names the output that is missing or malformed.

``db_instance`` (what a point-in-time restore needs: the instance and, on AWS, the subnet group,
security groups and parameter group a copy goes into) is optional when parsing, so stacks
deployed before it existed still migrate; ``restore-drill`` asks for it by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import ClassVar, TypeVar

from infra.enums import BastionMode, Cloud, Environment
from infra.errors import ContractError

__all__ = [
    "OPTIONAL_OUTPUTS",
    "OUTPUTS_ENV",
    "OUTPUT_NAMES",
    "USER_ROLES",
    "Bastion",
    "CloudSqlInstance",
    "DbInstance",
    "Endpoint",
    "IapBastion",
    "RdsInstance",
    "SshBastion",
    "SsmBastion",
    "StackOutputs",
]

#: Environment variable through which ``pulumi up`` hands the outputs to the in-up migrate command
#: (the stack's outputs are only written at the end of the update, after the command ran).
OUTPUTS_ENV = "INFRA_STACK_OUTPUTS"

#: Login users the post-deploy step creates; each has a generated password in the secret store.
USER_ROLES: tuple[str, ...] = ("migrator", "app", "readonly")

_MIGRATION_ENTRY = re.compile(r"^[^:/\s]+\.sql:[0-9a-f]{64}$")


@dataclass(frozen=True)
class SsmBastion:
    """AWS Systems Manager: no inbound port; ``target`` is the instance id."""

    target: str
    region: str
    mode: ClassVar[BastionMode] = BastionMode.SSM


@dataclass(frozen=True)
class IapBastion:
    """GCP Identity-Aware Proxy TCP forwarding with OS Login; ``target`` is the instance name."""

    target: str
    zone: str
    project: str
    region: str | None = None
    mode: ClassVar[BastionMode] = BastionMode.IAP


@dataclass(frozen=True)
class SshBastion:
    """Plain OpenSSH to a public address, on either cloud (``region``/``project`` locate the cloud's APIs)."""

    target: str
    host: str  # public address of the bastion
    user: str  # login user on the bastion
    region: str | None = None
    zone: str | None = None
    project: str | None = None
    mode: ClassVar[BastionMode] = BastionMode.SSH


@dataclass(frozen=True)
class Endpoint:
    """Another way into the same database: a read replica or the connection pooler.

    ``host`` is the name the server certificate carries (verify-full checks it), reached through
    the bastion like ``db_host``. ``ca`` is the CA that signed that certificate when it is not
    ``db_ca``: AWS RDS Proxy presents an ACM certificate (``"AmazonRootCA1"``), a GCP replica
    lists its own server CA (PEM); ``None`` means ``db_ca``.
    """

    host: str
    port: int
    ca: str | None = None

    def to_json(self) -> dict[str, object]:
        doc: dict[str, object] = {"host": self.host, "port": self.port}
        if self.ca is not None:
            doc["ca"] = self.ca
        return doc


#: How to reach the jump host: one of three shapes, each with exactly the fields its tunnel needs
#: (validated once, by :meth:`StackOutputs.parse`); consumers ``match`` on the class.
Bastion = SsmBastion | IapBastion | SshBastion


@dataclass(frozen=True)
class RdsInstance:
    """AWS: the RDS instance and where a point-in-time copy of it goes (its private subnets and SGs)."""

    identifier: str
    region: str
    subnet_group: str
    security_group_ids: tuple[str, ...]
    parameter_group: str


@dataclass(frozen=True)
class CloudSqlInstance:
    """GCP: the Cloud SQL instance (a clone inherits its private network)."""

    name: str
    project: str
    region: str


#: The database instance itself, per cloud (``restore-drill`` matches on the class).
DbInstance = RdsInstance | CloudSqlInstance


@dataclass(frozen=True)
class StackOutputs:
    """The contract. Secret ids are ARNs (AWS Secrets Manager) or resource names (GCP Secret Manager)."""

    cloud: Cloud
    environment: Environment
    db_host: str
    db_port: int
    db_name: str
    db_admin_user: str
    db_admin_secret: str
    db_user_secrets: Mapping[str, str]
    bastion: Bastion
    db_ca: str  # AWS: CA identifier (e.g. rds-ca-rsa2048-g1); GCP: the server CA certificate (PEM)
    migrations: tuple[str, ...] = field(default=())
    db_instance: DbInstance | None = None
    # Scale-out (optional: stacks from before it, and stacks without replicas or a pooler).
    db_read_endpoints: tuple[Endpoint, ...] = ()  # one per read replica, in replica order
    db_pooler: Endpoint | None = None  # the application's pooled endpoint (RDS Proxy / managed pooling)

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_user_secrets", MappingProxyType(dict(self.db_user_secrets)))

    @classmethod
    def parse(cls, raw: Mapping[str, object]) -> StackOutputs:
        """Validate a ``pulumi stack output --json --show-secrets`` document.

        Raises ContractError naming the first output that is missing or malformed.
        """
        missing = [name for name in OUTPUT_NAMES if name not in raw and name not in OPTIONAL_OUTPUTS]
        if missing:
            raise ContractError(
                f"stack output {missing[0]!r} is missing (missing: {', '.join(missing)}); "
                "run `pulumi up` with this version of the program, then retry"
            )
        cloud = _enum(Cloud, raw, "cloud")
        environment = _enum(Environment, raw, "environment")
        port = raw["db_port"]
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise ContractError(f"stack output 'db_port' must be a TCP port, got {port!r}")
        secrets = raw["db_user_secrets"]
        if not isinstance(secrets, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v for k, v in secrets.items()
        ):
            raise ContractError("stack output 'db_user_secrets' must be a map of role name to secret id")
        absent = [role for role in USER_ROLES if role not in secrets]
        if absent:
            raise ContractError(f"stack output 'db_user_secrets' has no secret for {absent[0]!r}")
        migrations = raw["migrations"]
        if not isinstance(migrations, list | tuple) or not all(
            isinstance(m, str) and _MIGRATION_ENTRY.match(m) for m in migrations
        ):
            raise ContractError("stack output 'migrations' must be a list of '<file>.sql:<sha256>' strings")
        return cls(
            cloud=cloud,
            environment=environment,
            db_host=_text(raw, "db_host"),
            db_port=port,
            db_name=_text(raw, "db_name"),
            db_admin_user=_text(raw, "db_admin_user"),
            db_admin_secret=_text(raw, "db_admin_secret"),
            db_user_secrets={str(k): str(v) for k, v in secrets.items()},
            bastion=_bastion(raw["bastion"], cloud),
            db_ca=_text(raw, "db_ca"),
            migrations=tuple(str(m) for m in migrations),
            db_instance=_db_instance(raw["db_instance"], cloud) if raw.get("db_instance") is not None else None,
            db_read_endpoints=_endpoints(raw.get("db_read_endpoints")),
            db_pooler=None if raw.get("db_pooler") is None else _endpoint(raw["db_pooler"], "db_pooler"),
        )

    def to_json(self) -> dict[str, object]:
        """The outputs as plain JSON values (the inverse of :meth:`parse`)."""
        bastion: dict[str, str] = {k: v for k, v in asdict(self.bastion).items() if v is not None}
        bastion["mode"] = self.bastion.mode.value
        return {
            "cloud": self.cloud.value,
            "environment": self.environment.value,
            "db_host": self.db_host,
            "db_port": self.db_port,
            "db_name": self.db_name,
            "db_admin_user": self.db_admin_user,
            "db_admin_secret": self.db_admin_secret,
            "db_user_secrets": dict(self.db_user_secrets),
            "bastion": bastion,
            "db_ca": self.db_ca,
            "migrations": list(self.migrations),
            **({} if self.db_instance is None else {"db_instance": _db_instance_json(self.db_instance)}),
            "db_read_endpoints": [e.to_json() for e in self.db_read_endpoints],
            "db_pooler": None if self.db_pooler is None else self.db_pooler.to_json(),
        }


OUTPUT_NAMES: tuple[str, ...] = tuple(f.name for f in fields(StackOutputs))
#: Outputs a stack deployed by an earlier version of the program may lack (the command that needs one
#: says so; the scale-out outputs default to no replicas and no pooler).
OPTIONAL_OUTPUTS: frozenset[str] = frozenset({"db_instance", "db_read_endpoints", "db_pooler"})


def _endpoints(value: object) -> tuple[Endpoint, ...]:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ContractError(f"stack output 'db_read_endpoints' must be a list, got {type(value).__name__}")
    return tuple(_endpoint(item, f"db_read_endpoints[{i}]") for i, item in enumerate(value))


def _endpoint(value: object, name: str) -> Endpoint:
    if not isinstance(value, Mapping):
        raise ContractError(f"stack output {name!r} must be an object with host and port, got {value!r}")
    host, port, ca = value.get("host"), value.get("port"), value.get("ca")
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(host, str) or not host.strip():
        raise ContractError(f"stack output '{name}.host' must be a non-empty string, got {host!r}")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise ContractError(f"stack output '{name}.port' must be a TCP port, got {port!r}")
    if ca is not None and (not isinstance(ca, str) or not ca.strip()):
        raise ContractError(f"stack output '{name}.ca' must be a CA identifier or PEM, got {ca!r}")
    return Endpoint(host=host, port=port, ca=ca)


def _text(raw: Mapping[str, object], name: str) -> str:
    value = raw[name]
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"stack output {name!r} must be a non-empty string, got {value!r}")
    return value


_E = TypeVar("_E", Cloud, Environment, BastionMode)


def _enum(kind: type[_E], raw: Mapping[str, object], name: str) -> _E:
    value = raw[name]
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ContractError(f"stack output {name!r} is {value!r}; expected one of {allowed}") from None


def _bastion(value: object, cloud: Cloud) -> Bastion:
    if not isinstance(value, Mapping):
        raise ContractError(f"stack output 'bastion' must be an object, got {type(value).__name__}")
    mode = _enum(BastionMode, {"bastion.mode": value.get("mode")}, "bastion.mode")
    target = value.get("target")
    if not isinstance(target, str) or not target:
        raise ContractError("stack output 'bastion.target' must be the bastion instance id or name")

    def needed(key: str) -> str:
        item = _opt(value, key)
        if item is None:
            raise ContractError(f"stack output 'bastion.{key}' is required when bastion.mode is {mode.value!r}")
        return item

    bastion: Bastion
    match mode:
        case BastionMode.SSM:
            bastion = SsmBastion(target=target, region=needed("region"))
        case BastionMode.IAP:
            bastion = IapBastion(
                target=target, zone=needed("zone"), project=needed("project"), region=_opt(value, "region")
            )
        case BastionMode.SSH:
            bastion = SshBastion(
                target=target,
                host=needed("host"),
                user=needed("user"),
                region=_opt(value, "region"),
                zone=_opt(value, "zone"),
                project=_opt(value, "project"),
            )
    if (mode is BastionMode.SSM and cloud is not Cloud.AWS) or (mode is BastionMode.IAP and cloud is not Cloud.GCP):
        raise ContractError(f"stack output 'bastion.mode' {mode.value!r} does not exist on {cloud.value}")
    return bastion


def _opt(value: Mapping[str, object], key: str) -> str | None:
    item = value.get(key)
    if item is None:
        return None
    if not isinstance(item, str) or not item:
        raise ContractError(f"stack output 'bastion.{key}' must be a non-empty string, got {item!r}")
    return item


def _db_instance(value: object, cloud: Cloud) -> DbInstance:
    if not isinstance(value, Mapping):
        raise ContractError(f"stack output 'db_instance' must be an object, got {type(value).__name__}")

    def text(key: str) -> str:
        item = value.get(key)
        if not isinstance(item, str) or not item:
            raise ContractError(f"stack output 'db_instance.{key}' must be a non-empty string, got {item!r}")
        return item

    if cloud is Cloud.GCP:
        return CloudSqlInstance(name=text("name"), project=text("project"), region=text("region"))
    groups = value.get("security_group_ids")
    if not isinstance(groups, list | tuple) or not groups or not all(isinstance(g, str) and g for g in groups):
        raise ContractError("stack output 'db_instance.security_group_ids' must be a non-empty list of ids")
    return RdsInstance(
        identifier=text("identifier"),
        region=text("region"),
        subnet_group=text("subnet_group"),
        security_group_ids=tuple(str(g) for g in groups),
        parameter_group=text("parameter_group"),
    )


def _db_instance_json(instance: DbInstance) -> dict[str, object]:
    doc: dict[str, object] = dict(asdict(instance))
    if isinstance(instance, RdsInstance):
        doc["security_group_ids"] = list(instance.security_group_ids)
    return doc
