"""Lifecycle rules: what the cloud and the provider do with each resource type this program declares.

For every type: which inputs replace the resource when they change, what a delete does, whether
the cloud keeps a name (or an object named by an input) after the delete and for how long, what
a clean ``pulumi destroy`` needs, and what production must keep. Each fact names its source.

Two facts of the Pulumi bridge apply to every type (pulumi/pulumi-terraform-bridge,
``pkg/tfbridge/schema.go`` ``nameRequiresDeleteBeforeReplace``): a resource whose autonamed
field (``name``, ``identifier``, ...) is set explicitly and unchanged is replaced delete-first,
so a fixed name never collides with itself during a replacement; when the name changes, the
replacement is create-first. A name the cloud *reserves* after a delete therefore still breaks
a replacement (delete, then create the same name: refused) and a destroy followed by an up:
such names must be unique per physical instance. Here that means derived from a
``random.RandomId`` whose ``keepers`` hold every input that replaces the resource
(:mod:`infra.provision.naming`); a destroy deletes the RandomId too, so the next up draws a new one.

:func:`findings` applies the rules to a declared graph (the unit tests hand it what the project
mocks recorded, dev and production, preview and up) and returns what breaks them; no finding
means a dev stack can be destroyed and created again at once, and production keeps ``protect``
and the clouds' deletion protection.

Sources: TPA = hashicorp/terraform-provider-aws (pulumi-aws 7 bridges v6), TPG =
hashicorp/terraform-provider-google v7.45.0 (pulumi-gcp 10). "(verify)" marks a fact taken from
documentation or memory rather than read in provider source here; ``pulumi preview --diff`` on a
real stack is the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pulumi.runtime.rpc import UNKNOWN

__all__ = ["EVERY_INPUT", "RANDOM_ID", "RULES", "Declared", "Rule", "UniqueName", "findings", "rule_for"]

RANDOM_ID = "random:index/randomId:RandomId"


class Declared(Protocol):
    """A registered resource as the checks read it (``infra.provision.recording.RecordedResource`` is one)."""

    @property
    def type(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def urn(self) -> str: ...
    @property
    def protect(self) -> bool: ...
    @property
    def custom(self) -> bool: ...
    @property
    def dependencies(self) -> tuple[str, ...]: ...

    def input(self, path: str) -> Any: ...


@dataclass(frozen=True)
class UniqueName:
    """An input naming something the cloud keeps after the resource is deleted."""

    input: str
    why: str
    unless: tuple[str, object] | None = None  # (input, value) with which nothing is kept


@dataclass(frozen=True)
class Rule:
    type: str
    replaced_by: tuple[str, ...]  # inputs whose change replaces the resource (ForceNew), engine names
    on_delete: str
    source: str
    unique_names: tuple[UniqueName, ...] = ()
    destroy_needs: Mapping[str, object] = field(default_factory=dict)  # input values a clean destroy needs
    production_protect: bool = False  # `protect=True` in production
    production_true: tuple[str, ...] = ()  # inputs that are true in production and false in dev
    production_at_least: Mapping[str, int] = field(default_factory=dict)


def _rule(type_: str, replaced_by: Iterable[str], on_delete: str, source: str, **more: Any) -> Rule:
    return Rule(type_, tuple(replaced_by), on_delete, source, **more)


EVERY_INPUT = "*"  # an IAM binding has no update: any change replaces it
_FREED = "deleted at once; the name can be used again immediately"

RULES: tuple[Rule, ...] = (
    # -- AWS --------------------------------------------------------------------------------------
    _rule(
        "aws:rds/instance:Instance",
        # `identifier` is not among them: renamed in place since TPA v5.0.0 (CHANGELOG, #31232).
        (
            "availabilityZone",
            "characterSetName",
            "dbName",
            "engine",
            "kmsKeyId",
            "storageEncrypted",
            "username",
            "timezone",
            "snapshotIdentifier",
        ),
        "DeleteDBInstance takes a final snapshot named finalSnapshotIdentifier unless skipFinalSnapshot; "
        "automated backups stay when deleteAutomatedBackups=false",
        "TPA internal/service/rds/instance.go schema (ForceNew, verify against v6); botocore rds "
        "DeleteDBInstance error DBSnapshotAlreadyExists",
        unique_names=(
            UniqueName(
                "finalSnapshotIdentifier",
                "the final snapshot outlives the instance: a second delete with the same id fails "
                "DBSnapshotAlreadyExists and leaves the instance running",
                # Read replicas take none (InvalidParameterCombination: FinalDBSnapshotIdentifier can
                # not be specified when deleting a replica instance, TPA #4615); their identifier is
                # free again when the delete ends.
                unless=("skipFinalSnapshot", True),
            ),
        ),
        production_protect=True,
        production_true=("deletionProtection",),
    ),
    _rule(
        "aws:secretsmanager/secret:Secret",
        ("name", "namePrefix"),
        "DeleteSecret with RecoveryWindowInDays (7-30: the name stays scheduled for deletion), or "
        "ForceDeleteWithoutRecovery when the window is 0; create retries 'scheduled for deletion' / "
        "'was deleted' for the propagation timeout",
        "TPA internal/service/secretsmanager/secret.go (schema recovery_window_in_days, resourceSecretDelete, "
        "resourceSecretCreate retry)",
        unique_names=(
            UniqueName(
                "name",
                "a secret in its recovery window keeps its name: creating it again fails "
                "'already scheduled for deletion' until the window ends",
                unless=("recoveryWindowInDays", 0),
            ),
        ),
        production_at_least={"recoveryWindowInDays": 7},
    ),
    _rule(
        "aws:secretsmanager/secretVersion:SecretVersion",
        ("secretId",),
        "the version's AWSCURRENT label is removed; the value goes with the secret",
        "TPA internal/service/secretsmanager/secret_version.go",
    ),
    _rule(
        "aws:kms/key:Key",
        ("customerMasterKeySpec", "keyUsage", "multiRegion"),
        "ScheduleKeyDeletion with deletionWindowInDays (7-30); a key has no name to reserve",
        "TPA internal/service/kms/key.go",
        production_protect=True,
    ),
    _rule("aws:kms/alias:Alias", ("name",), f"DeleteAlias: {_FREED}", "TPA internal/service/kms/alias.go"),
    _rule(
        "aws:cloudwatch/logGroup:LogGroup",
        ("name", "namePrefix"),
        f"DeleteLogGroup (its events go with it); {_FREED}",
        "TPA internal/service/logs/group.go",
    ),
    _rule(
        "aws:ec2/instance:Instance",
        ("ami", "availabilityZone", "keyName", "subnetId", "userData"),  # userData: userDataReplaceOnChange
        "TerminateInstances; the root volume goes with it (deleteOnTermination)",
        "TPA internal/service/ec2/ec2_instance.go (user_data_replace_on_change)",
    ),
    _rule("aws:ec2/keyPair:KeyPair", ("keyName", "publicKey"), _FREED, "TPA internal/service/ec2/ec2_key_pair.go"),
    _rule("aws:ec2/vpc:Vpc", ("cidrBlock",), _FREED, "TPA internal/service/ec2/vpc_.go"),
    _rule(
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
        ("vpcId",),
        "removed from state only (the VPC owns it)",
        "TPA internal/service/ec2/vpc_default_security_group.go",
    ),
    _rule("aws:ec2/subnet:Subnet", ("vpcId", "cidrBlock", "availabilityZone"), _FREED, "TPA ec2/vpc_subnet.go"),
    _rule("aws:ec2/routeTable:RouteTable", ("vpcId",), _FREED, "TPA ec2/vpc_route_table.go"),
    _rule("aws:ec2/routeTableAssociation:RouteTableAssociation", ("subnetId",), _FREED, "TPA ec2"),
    _rule("aws:ec2/route:Route", ("routeTableId", "destinationCidrBlock"), _FREED, "TPA ec2/vpc_route.go"),
    _rule("aws:ec2/internetGateway:InternetGateway", (), _FREED, "TPA ec2/vpc_internet_gateway.go"),
    _rule(
        "aws:ec2/securityGroup:SecurityGroup",
        ("name", "namePrefix", "vpcId", "description"),
        _FREED,
        "TPA internal/service/ec2/vpc_security_group.go",
    ),
    _rule("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", ("securityGroupId",), _FREED, "TPA vpc"),
    _rule("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule", ("securityGroupId",), _FREED, "TPA vpc"),
    _rule(
        "aws:ec2/vpcEndpoint:VpcEndpoint",
        ("vpcId", "serviceName", "vpcEndpointType"),
        _FREED,
        "TPA internal/service/ec2/vpc_endpoint.go",
    ),
    _rule(
        "aws:ec2/flowLog:FlowLog",
        ("vpcId", "logDestination", "iamRoleArn", "trafficType", "maxAggregationInterval"),
        _FREED,
        "TPA internal/service/ec2/vpc_flow_log.go",
    ),
    _rule("aws:iam/role:Role", ("name", "namePrefix"), _FREED, "TPA internal/service/iam/role.go"),
    _rule("aws:iam/rolePolicy:RolePolicy", ("role", "name"), _FREED, "TPA internal/service/iam/role_policy.go"),
    _rule("aws:iam/rolePolicyAttachment:RolePolicyAttachment", ("role", "policyArn"), _FREED, "TPA iam"),
    _rule("aws:iam/instanceProfile:InstanceProfile", ("name", "namePrefix"), _FREED, "TPA iam/instance_profile.go"),
    _rule("aws:rds/parameterGroup:ParameterGroup", ("name", "family", "description"), _FREED, "TPA rds"),
    _rule("aws:rds/subnetGroup:SubnetGroup", ("name", "namePrefix"), _FREED, "TPA rds/subnet_group.go"),
    # RDS Proxy (infra.provision.aws.pooler): nothing outlives a delete, so the fixed name is fine.
    _rule(
        "aws:rds/proxy:Proxy",
        ("name", "engineFamily", "vpcSubnetIds"),
        f"DeleteDBProxy, waited for until the proxy is gone; {_FREED}",
        "TPA internal/service/rds/proxy.go (schema ForceNew on name, engine_family, vpc_subnet_ids; "
        "resourceProxyDelete waits for the deletion) (verify against v6)",
    ),
    _rule(
        "aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup",
        ("dbProxyName",),
        "removed from state only: the default target group belongs to the proxy and goes with it",
        "TPA internal/service/rds/proxy_default_target_group.go (resourceProxyDefaultTargetGroupDelete "
        "does not call the API) (verify)",
    ),
    _rule(
        "aws:rds/proxyTarget:ProxyTarget",
        ("dbProxyName", "targetGroupName", "dbInstanceIdentifier", "dbClusterIdentifier"),
        f"DeregisterDBProxyTargets: the instance stays; {_FREED}",
        "TPA internal/service/rds/proxy_target.go (every argument ForceNew) (verify)",
    ),
    # -- GCP --------------------------------------------------------------------------------------
    _rule(
        "gcp:sql/databaseInstance:DatabaseInstance",
        ("name", "region", "project", "encryptionKeyName", "masterInstanceName", "settings.collation"),
        "instances.delete; the name stays reserved for up to a week",
        "TPG google/services/sql/resource_sql_database_instance.go (schema ForceNew; `name`: 'after a name "
        "is used, it cannot be reused for up to one week')",
        unique_names=(UniqueName("name", "Cloud SQL keeps a deleted instance's name for up to a week"),),
        production_protect=True,
        production_true=("deletionProtection", "settings.deletionProtectionEnabled"),
    ),
    _rule(
        "gcp:sql/database:Database",
        ("name", "instance", "project"),
        "deletionPolicy ABANDON: removed from state only; it goes with the instance",
        "TPG google/services/sql/resource_sql_database.go",
    ),
    _rule(
        "gcp:sql/user:User",
        ("name", "instance", "host", "project"),
        "deletionPolicy ABANDON: removed from state only; it goes with the instance",
        "TPG google/services/sql/resource_sql_user.go",
    ),
    _rule(
        "gcp:servicenetworking/connection:Connection",
        ("network", "service"),
        "services.connections.deleteConnection, refused while the producer (Cloud SQL keeps a deleted "
        "instance restorable) still uses the range; REMOVE_PEERING then removes the VPC peering so the "
        "network can go; ABANDON leaves the peering and the network delete fails",
        "TPG google/services/servicenetworking/resource_service_networking_connection.go; pulumi_gcp 10.2.0 "
        "servicenetworking/connection.py ('Deleting a connection'); REMOVE_PEERING is newer than the TPG "
        "sources indexed here (verify with a preview)",
        destroy_needs={"deletionPolicy": "REMOVE_PEERING"},
    ),
    _rule(
        "gcp:compute/network:Network",
        ("name", "project", "autoCreateSubnetworks"),
        f"networks.delete, refused while a peering or subnet remains; {_FREED}",
        "TPG google/services/compute/resource_compute_network.go",
    ),
    _rule(
        "gcp:compute/subnetwork:Subnetwork",
        ("name", "network", "region", "project"),
        _FREED,
        "TPG google/services/compute/resource_compute_subnetwork.go",
    ),
    _rule(
        "gcp:compute/globalAddress:GlobalAddress",
        ("name", "network", "prefixLength", "purpose", "addressType", "address"),
        _FREED,
        "TPG compute/resource_compute_global_address.go",
    ),
    _rule("gcp:compute/address:Address", ("name", "region", "addressType"), _FREED, "TPG compute/address"),
    _rule("gcp:compute/firewall:Firewall", ("name", "network", "direction"), _FREED, "TPG compute/firewall"),
    _rule("gcp:compute/router:Router", ("name", "network", "region"), _FREED, "TPG compute/resource_compute_router.go"),
    _rule("gcp:compute/routerNat:RouterNat", ("name", "router", "region"), _FREED, "TPG compute/router_nat"),
    _rule(
        "gcp:compute/instance:Instance",
        ("name", "zone", "metadataStartupScript", "bootDisk.initializeParams.image"),
        f"instances.delete; the boot disk goes with it (autoDelete); {_FREED}",
        "TPG google/services/compute/resource_compute_instance.go (zone/name ForceNew; CustomizeDiff "
        "ForceNewIf metadata_startup_script)",
    ),
    _rule(
        "gcp:dns/managedZone:ManagedZone",
        ("name", "dnsName", "visibility"),
        _FREED,
        "TPG dns/resource_dns_managed_zone.go",
    ),
    _rule("gcp:dns/recordSet:RecordSet", ("managedZone", "name", "type"), _FREED, "TPG dns/record_set"),
    _rule(
        "gcp:secretmanager/secret:Secret",
        ("secretId", "project", "replication"),
        f"secrets.delete with every version; {_FREED} (verify: Secret Manager has no recovery window)",
        "TPG secretmanager/resource_secret_manager_secret.go",
        production_true=("deletionProtection",),
    ),
    _rule(
        "gcp:secretmanager/secretVersion:SecretVersion",
        ("secret", "secretData"),
        "the version is destroyed",
        "TPG secretmanager",
    ),
    _rule(
        "gcp:serviceaccount/account:Account",
        ("accountId", "project"),
        "serviceAccounts.delete; undeletable for 30 days, and a new account of the same id is a "
        "different principal (verify)",
        "TPG resourcemanager/resource_google_service_account.go; IAM REST reference serviceAccounts.delete",
    ),
    _rule(
        "gcp:projects/iAMCustomRole:IAMCustomRole",
        ("roleId", "project"),
        "roles.delete soft-deletes: the id is kept for 37 days, and create finds the deleted role "
        "and undeletes and updates it, so a fixed id survives destroy and up",
        "TPG google/services/resourcemanager/resource_google_project_iam_custom_role.go "
        "(resourceGoogleProjectIamCustomRoleCreate: `if r.Deleted`)",
    ),
    _rule("gcp:projects/iAMMember:IAMMember", (EVERY_INPUT,), "binding removed", "TPG iam member"),
    _rule("gcp:organizations/iAMMember:IAMMember", (EVERY_INPUT,), "binding removed", "TPG iam member"),
    _rule("gcp:serviceaccount/iAMMember:IAMMember", (EVERY_INPUT,), "binding removed", "TPG iam member"),
    _rule("gcp:compute/instanceIAMMember:InstanceIAMMember", (EVERY_INPUT,), "binding removed", "TPG iam"),
    _rule("gcp:iap/tunnelInstanceIAMMember:TunnelInstanceIAMMember", (EVERY_INPUT,), "binding removed", "TPG iam"),
    _rule("gcp:secretmanager/secretIamMember:SecretIamMember", (EVERY_INPUT,), "binding removed", "TPG iam"),
    # -- providers without a cloud object ---------------------------------------------------------
    _rule(RANDOM_ID, ("byteLength", "keepers", "prefix"), "state only", "pulumi-random (terraform-provider-random)"),
    _rule(
        "random:index/randomPassword:RandomPassword",
        ("length", "special", "overrideSpecial", "keepers"),
        "state only",
        "pulumi-random",
    ),
    _rule(
        "command:local:Command",
        ("triggers",),
        "no delete command is declared: the database is never touched on delete",
        "pulumi-command local.Command",
    ),
)

_BY_TYPE = {rule.type: rule for rule in RULES}


def rule_for(type_: str) -> Rule | None:
    return _BY_TYPE.get(type_)


def findings(resources: Sequence[Declared], *, production: bool) -> list[str]:
    """What in ``resources`` breaks the rules: empty when the graph is fine for its environment."""
    by_urn = {r.urn: r for r in resources}
    found: list[str] = []
    for resource in resources:
        if not resource.custom:
            continue  # component resources own nothing in the cloud
        rule = _BY_TYPE.get(resource.type)
        if rule is None:
            found.append(f"{resource.name}: no lifecycle rule for {resource.type}; add one to RULES")
            continue
        found += _unique_names(resource, rule, by_urn)
        for path, wanted in rule.destroy_needs.items():
            if resource.input(path) != wanted:
                found.append(f"{resource.name}: {path}={resource.input(path)!r}, a clean destroy needs {wanted!r}")
        found += _protection(resource, rule, production)
    return found


def _unique_names(resource: Declared, rule: Rule, by_urn: Mapping[str, Declared]) -> list[str]:
    found: list[str] = []
    for unique in rule.unique_names:
        if unique.unless is not None and _same(resource.input(unique.unless[0]), unique.unless[1]):
            continue
        suffixes = [by_urn[d] for d in resource.dependencies if d in by_urn and by_urn[d].type == RANDOM_ID]
        if not suffixes:
            found.append(f"{resource.name}: {unique.input} is fixed, but {unique.why}; derive it from a RandomId")
            continue
        needed = [p for p in rule.replaced_by if p != unique.input and resource.input(p) is not None]
        if not any(_keeps(suffix, resource, needed) for suffix in suffixes):
            found.append(
                f"{resource.name}: the RandomId behind {unique.input} must keep {needed} "
                "(else a replacement reuses the name)"
            )
    return found


def _keeps(suffix: Declared, resource: Declared, inputs: Sequence[str]) -> bool:
    keepers = suffix.input("keepers")
    if not isinstance(keepers, Mapping):
        return not inputs
    for path in inputs:
        if path not in keepers:
            return False
        value = resource.input(path)
        if _known(value) and _known(keepers[path]) and not _same(keepers[path], value):
            return False
    return True


def _protection(resource: Declared, rule: Rule, production: bool) -> list[str]:
    found: list[str] = []
    if rule.production_protect and resource.protect is not production:
        found.append(f"{resource.name}: protect={resource.protect} in {'production' if production else 'dev'}")
    for path in rule.production_true:
        if resource.input(path) is not production:
            found.append(f"{resource.name}: {path}={resource.input(path)!r}; want {production} here")
    if production:
        for path, minimum in rule.production_at_least.items():
            value = resource.input(path)
            if not isinstance(value, int | float) or value < minimum:
                found.append(f"{resource.name}: {path}={value!r}; production keeps at least {minimum}")
    return found


def _known(value: object) -> bool:
    return value != UNKNOWN  # the engine's marker for a value known only after apply


def _same(left: object, right: object) -> bool:
    """Equal as the engine would compare a keeper (text) with an input (any JSON value)."""

    def text(value: object) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return text(left) == text(right)
