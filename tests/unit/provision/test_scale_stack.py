"""Read replicas and the connection pooler under the project mocks, both clouds, dev and
production, preview and up: what each replica shares with its primary, how the pooler is
reached and secured, and the contract's reader and pooler endpoints (awaited outputs)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable

import pytest

from infra.contract import Endpoint, StackOutputs
from infra.provision.aws.database import LOG_EXPORTS
from infra.provision.aws.pooler import PROXY_CA
from infra.provision.gcp.pooler import POOLER_FLAGS, POOLER_PORT
from infra.provision.lifecycle import RANDOM_ID, findings
from infra.provision.recording import UNKNOWN, RecordedResource, Synthesis
from infra.provision.synth import render_text
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full, synth

RDS = "aws:rds/instance:Instance"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
PROXY = "aws:rds/proxy:Proxy"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
BOTH = pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
ENVIRONMENTS = pytest.mark.parametrize("environment", ["dev", "production"])
GCP_PLUS = {"dbEdition": "ENTERPRISE_PLUS", "dbTier": "db-perf-optimized-N-2"}
APP_SG = "sg-0123456789abcdef0"


@functools.cache  # one synthesis per combination; the tests only read it
def aws_scaled(environment: str = "dev", preview: bool = False, **keys: str) -> Synthesis:
    config = full(AWS_BASE, environment=environment, readReplicas="2", pooler="managed", **keys)
    return synth(config, preview=preview, stack=environment)


@functools.cache
def gcp_scaled(environment: str = "dev", preview: bool = False) -> Synthesis:
    config = full(GCP_BASE, environment=environment, readReplicas="2", pooler="managed", **GCP_PLUS)
    return synth(config, preview=preview, stack=environment)


def primary_and_replicas(result: Synthesis, type_: str, source: str) -> tuple[RecordedResource, list[RecordedResource]]:
    [primary] = [r for r in result.of_type(type_) if not r.input(source)]
    # registration order is the event loop's: sort by name
    return primary, sorted((r for r in result.of_type(type_) if r.input(source)), key=lambda r: r.name)


# -- AWS ----------------------------------------------------------------------------------------


@ENVIRONMENTS
@BOTH
def test_aws_replicas_share_the_primarys_key_subnets_parameters_monitoring_and_logs(
    environment: str, preview: bool
) -> None:
    result = aws_scaled(environment, preview, replicaInstanceClass="db.t4g.small")
    primary, replicas = primary_and_replicas(result, RDS, "replicateSourceDb")
    assert [r.input("identifier") for r in replicas] == [
        f"private-postgres-{environment}-pg-replica-{i}" for i in (0, 1)
    ]
    if not preview:  # the shared values are real names, not two missing inputs comparing equal
        assert primary.input("parameterGroupName").startswith(f"private-postgres-{environment}-db-params-")
        assert primary.input("dbSubnetGroupName").startswith(f"private-postgres-{environment}-db-subnets-")
    for replica in replicas:
        assert replica.input("instanceClass") == "db.t4g.small"
        for same in (
            "kmsKeyId",
            "dbSubnetGroupName",
            "parameterGroupName",
            "vpcSecurityGroupIds",
            "monitoringRoleArn",
            "port",
            "caCertIdentifier",
            "enabledCloudwatchLogsExports",
            "deletionProtection",
        ):
            assert replica.input(same) == primary.input(same), same
        assert replica.input("publiclyAccessible") is False
        assert replica.input("storageEncrypted") is True
        assert replica.input("monitoringInterval") == 60
        assert replica.input("skipFinalSnapshot") is True  # a replica cannot take one
        assert "finalSnapshotIdentifier" not in replica.inputs
        for inherited in ("engine", "engineVersion", "username", "dbName", "allocatedStorage", "password"):
            assert inherited not in replica.inputs, inherited  # conflicts with replicate_source_db
        assert replica.input("multiAz") is False
        # the primary exists before its replica, and the replica's log groups before it exports
        assert primary.urn in replica.dependencies
        logs = [r for r in result.of_type("aws:cloudwatch/logGroup:LogGroup") if r.urn in replica.dependencies]
        assert sorted(g.input("name") for g in logs) == [
            f"/aws/rds/instance/{replica.input('identifier')}/{kind}" for kind in LOG_EXPORTS
        ]
        assert {g.input("kmsKeyId") for g in logs} == {primary.input("kmsKeyId")}  # encrypted with the stack's key
        assert replica.protect is (environment == "production")
        assert {"publiclyAccessible", "dbSubnetGroupName"} <= set(replica.inputs)
    if not preview:
        # the replica replicates this primary, named by ARN (db_subnet_group_name is set)
        assert primary.input("identifier").startswith(f"private-postgres-{environment}-pg-")  # the suffixed primary
        assert {r.input("replicateSourceDb") for r in replicas} == {
            f"arn:aws:rds:eu-west-1:123456789012:db:{primary.input('identifier')}"
        }
    assert primary.input("deletionProtection") is (environment == "production")


def secret_arn(result: Synthesis, role: str) -> str:
    [version] = [
        r for r in result.of_type("aws:secretsmanager/secretVersion:SecretVersion") if r.name.endswith(f"-users-{role}")
    ]
    arn: str = version.input("secretId")
    return arn


@BOTH
def test_aws_proxy_requires_tls_scram_and_reads_only_the_pooled_secrets(preview: bool) -> None:
    result = aws_scaled(preview=preview)
    proxy = result.one(PROXY)
    assert proxy.input("engineFamily") == "POSTGRESQL"
    assert proxy.input("requireTls") is True
    assert proxy.input("debugLogging") is False
    assert proxy.input("idleClientTimeout") == 1800
    auths = proxy.input("auths")
    assert [a["clientPasswordAuthType"] for a in auths] == ["POSTGRES_SCRAM_SHA_256"] * 2
    assert {a["authScheme"] for a in auths} == {"SECRETS"}
    assert {a["iamAuth"] for a in auths} == {"DISABLED"}
    private = [r.urn for r in result.of_type("aws:ec2/subnet:Subnet") if r.input("tags")["tier"] == "private"]
    assert len(private) == 2
    assert set(private) <= set(proxy.dependencies)
    pool = result.one("aws:rds/proxyDefaultTargetGroup:ProxyDefaultTargetGroup").input("connectionPoolConfig")
    assert pool == {"connectionBorrowTimeout": 30, "maxConnectionsPercent": 80, "maxIdleConnectionsPercent": 20}
    primary, _ = primary_and_replicas(result, RDS, "replicateSourceDb")
    target = result.one("aws:rds/proxyTarget:ProxyTarget")
    assert primary.urn in target.dependencies
    if preview:
        return
    assert target.input("dbInstanceIdentifier") == primary.input("identifier")
    pooled = sorted(secret_arn(result, role) for role in ("app", "readonly"))
    assert sorted(a["secretArn"] for a in auths) == pooled  # never the migrator's
    read, decrypt = json.loads(result.named("private-postgres-dev-pooler-proxy-secrets").input("policy"))["Statement"]
    assert (read["Action"], sorted(read["Resource"])) == ("secretsmanager:GetSecretValue", pooled)
    assert (decrypt["Action"], decrypt["Resource"]) == ("kms:Decrypt", primary.input("kmsKeyId"))
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "secretsmanager.eu-west-1.amazonaws.com"}}
    [role] = [r for r in result.of_type("aws:iam/role:Role") if r.name.endswith("-pooler-proxy")]
    assert json.loads(role.input("assumeRolePolicy"))["Statement"][0]["Principal"] == {"Service": "rds.amazonaws.com"}


def test_aws_proxy_is_reachable_only_from_the_bastion_and_the_app_groups() -> None:
    result = aws_scaled(appSecurityGroupIds=json.dumps([APP_SG]))
    proxy_sg = result.one(PROXY).input("vpcSecurityGroupIds")[0]
    primary, _ = primary_and_replicas(result, RDS, "replicateSourceDb")
    db_sg = primary.input("vpcSecurityGroupIds")[0]
    bastion_sg = result.one("aws:ec2/instance:Instance").input("vpcSecurityGroupIds")[0]
    into_proxy = [r for r in result.of_type(INGRESS) if r.input("securityGroupId") == proxy_sg]
    assert sorted(r.input("referencedSecurityGroupId") for r in into_proxy) == sorted([bastion_sg, APP_SG])
    assert {(r.input("fromPort"), r.input("toPort"), r.input("ipProtocol")) for r in into_proxy} == {
        (5432, 5432, "tcp")
    }
    assert not any("cidrIpv4" in r.inputs or "cidrIpv6" in r.inputs for r in into_proxy)
    out_of_proxy = [
        r.input("referencedSecurityGroupId") for r in result.of_type(EGRESS) if r.input("securityGroupId") == proxy_sg
    ]
    assert out_of_proxy == [db_sg]
    into_db = {
        r.input("referencedSecurityGroupId") for r in result.of_type(INGRESS) if r.input("securityGroupId") == db_sg
    }
    assert into_db == {bastion_sg, APP_SG, proxy_sg}
    bastion_out = {
        r.input("referencedSecurityGroupId") for r in result.of_type(EGRESS) if r.input("securityGroupId") == bastion_sg
    }
    assert {db_sg, proxy_sg} <= bastion_out


def test_aws_defaults_declare_no_replica_and_no_proxy() -> None:
    result = synth(AWS_BASE)
    assert len(result.of_type(RDS)) == 1
    assert result.of_type(PROXY) == []
    outputs = StackOutputs.parse(result.outputs)
    assert outputs.db_read_endpoints == ()
    assert outputs.db_pooler is None


def test_aws_outputs_name_every_reader_and_the_proxy_with_its_ca() -> None:
    result = aws_scaled()
    outputs = StackOutputs.parse(result.outputs)
    _, replicas = primary_and_replicas(result, RDS, "replicateSourceDb")
    assert [e.host.split(".")[0] for e in outputs.db_read_endpoints] == [r.input("identifier") for r in replicas]
    assert {e.port for e in outputs.db_read_endpoints} == {outputs.db_port}
    assert all(e.ca is None for e in outputs.db_read_endpoints)  # the RDS CA, as db_ca
    assert outputs.db_pooler is not None
    assert outputs.db_pooler.host.startswith("private-postgres-dev-proxy.proxy-")
    assert (outputs.db_pooler.port, outputs.db_pooler.ca) == (5432, PROXY_CA)
    assert StackOutputs.parse(outputs.to_json()) == outputs


# -- GCP ----------------------------------------------------------------------------------------


@ENVIRONMENTS
@BOTH
def test_gcp_replicas_follow_the_primary_privately_with_its_flags(environment: str, preview: bool) -> None:
    result = gcp_scaled(environment, preview)
    primary, replicas = primary_and_replicas(result, SQL, "masterInstanceName")
    if not preview:  # Cloud SQL keeps a deleted name for a week: each replica's carries its own suffix
        names = [r.input("name") for r in replicas]
        for index, replica_name in enumerate(names):
            assert re.fullmatch(f"private-postgres-{environment}-pg-replica-{index}-[0-9a-f]{{8}}", replica_name)
    for replica in replicas:
        assert primary.urn in replica.dependencies
        assert any(d.endswith(f"{replica.name}-id") for d in replica.dependencies)  # the RandomId behind the name
        if not preview:
            assert replica.input("masterInstanceName") == primary.input("name")
        assert replica.input("databaseVersion") == "POSTGRES_16"
        assert replica.input("settings.edition") == "ENTERPRISE_PLUS"
        assert replica.input("settings.tier") == "db-perf-optimized-N-2"
        assert replica.input("settings.availabilityType") == "ZONAL"
        ip, primary_ip = replica.input("settings.ipConfiguration"), primary.input("settings.ipConfiguration")
        for same in ("ipv4Enabled", "privateNetwork", "sslMode", "serverCaMode", "authorizedNetworks"):
            assert ip.get(same) == primary_ip.get(same), same
        assert ip["ipv4Enabled"] is False
        assert ip["sslMode"] == "ENCRYPTED_ONLY"
        assert replica.input("settings.databaseFlags") == primary.input("settings.databaseFlags")
        for same in ("maintenanceWindow", "insightsConfig"):  # patched in the same hour, observed alike
            assert replica.input(f"settings.{same}") == primary.input(f"settings.{same}"), same
        assert replica.input("settings.maintenanceWindow") == {"day": 7, "hour": 4, "updateTrack": "stable"}
        assert replica.input("settings.insightsConfig")["recordClientAddress"] is False
        assert replica.input("settings.backupConfiguration") == {"enabled": False}
        assert replica.input("settings.connectionPoolConfigs") is None  # pooling is the primary's
        assert replica.input("deletionProtection") is (environment == "production")
        assert replica.input("settings.deletionProtectionEnabled") is (environment == "production")
        assert "settings.diskSize" in replica.ignore_changes
    if environment == "production":
        assert primary.input("settings.availabilityType") == "REGIONAL"


@BOTH
def test_gcp_managed_pooling_is_on_the_primary_in_transaction_mode(preview: bool) -> None:
    result = gcp_scaled(preview=preview)
    primary, _ = primary_and_replicas(result, SQL, "masterInstanceName")
    [pool] = primary.input("settings.connectionPoolConfigs")
    assert pool["connectionPoolingEnabled"] is True
    flags = [(f["name"], f["value"]) for f in pool["flags"]]
    assert flags == sorted(flags) == list(POOLER_FLAGS)  # sorted: the API's order, no phantom diff
    assert ("pool_mode", "transaction") in flags
    plain = synth(GCP_BASE, preview=preview).one(SQL)
    assert plain.input("settings.connectionPoolConfigs") is None


def test_gcp_replica_names_resolve_inside_the_vpc_only() -> None:
    result = gcp_scaled()
    outputs = StackOutputs.parse(result.outputs)
    zones = {z.input("name"): z for z in result.of_type("gcp:dns/managedZone:ManagedZone")}
    records = result.of_type("gcp:dns/recordSet:RecordSet")
    for index, endpoint in enumerate(outputs.db_read_endpoints):
        zone = zones[f"private-postgres-dev-pg-replica-{index}"]
        assert zone.input("visibility") == "private"
        assert zone.input("dnsName") == f"{endpoint.host}."
        [record] = [r for r in records if r.input("name") == f"{endpoint.host}."]
        assert record.input("type") == "A"
        assert record.input("rrdatas")[0].startswith("10.91.0.")
        assert endpoint.ca is not None
        assert "BEGIN CERTIFICATE" in endpoint.ca  # the replica's own CA list
    assert len({e.host for e in outputs.db_read_endpoints} | {outputs.db_host}) == 3


def test_gcp_outputs_pooler_on_the_primarys_name_and_pooler_port() -> None:
    outputs = StackOutputs.parse(gcp_scaled().outputs)
    assert outputs.db_pooler == Endpoint(host=outputs.db_host, port=POOLER_PORT)
    assert len(outputs.db_read_endpoints) == 2
    assert StackOutputs.parse(outputs.to_json()) == outputs


@pytest.mark.parametrize("scaled", [aws_scaled, gcp_scaled], ids=["aws", "gcp"])
def test_preview_endpoints_are_unknown_until_apply(scaled: Callable[..., Synthesis]) -> None:
    # an output holding an unknown value is unknown as a whole, as the engine shows it
    result = scaled(preview=True)
    assert result.outputs["db_pooler"] == result.outputs["db_read_endpoints"] == UNKNOWN


def test_synth_with_replicas_and_pooler_is_deterministic() -> None:
    assert render_text(aws_scaled()) == render_text(aws_scaled())
    assert render_text(gcp_scaled()) == render_text(gcp_scaled())


@pytest.mark.parametrize("scaled", [aws_scaled, gcp_scaled], ids=["aws", "gcp"])
@ENVIRONMENTS
@BOTH
def test_scaled_graphs_keep_every_lifecycle_rule(
    scaled: Callable[..., Synthesis], environment: str, preview: bool
) -> None:
    result = scaled(environment, preview)
    assert findings(result.resources, production=environment == "production") == []
    if scaled is gcp_scaled and not preview:
        # the replica names' suffixes are redrawn when the primary is replaced (masterInstanceName is ForceNew)
        primary, replicas = primary_and_replicas(result, SQL, "masterInstanceName")
        suffixes = [r for r in result.of_type(RANDOM_ID) if r.name.startswith("private-postgres-")]
        kept = [s.input("keepers").get("masterInstanceName") for s in suffixes]
        assert kept.count(primary.input("name")) == len(replicas) == 2
