"""AWS stacks that survive the real cloud (issue 12, items 10-15 and the AWS half of 17), on the
synthesized graphs: dev and production, up and preview.

Values known only after apply are UNKNOWN in preview; there the tests check what a preview can
show (the input is computed from the right resource) and, after apply, the value itself.
"""

from __future__ import annotations

import json
import re

import pytest

from infra.provision.aws.database import LOG_EXPORTS
from infra.provision.aws.network import patch_buckets
from infra.provision.mocks import ACCOUNT
from infra.provision.recording import UNKNOWN, RecordedResource, Synthesis
from infra.provision.sshd import DROP_IN
from tests.fixtures.stack import AWS_BASE, ENVIRONMENTS_AND_MODES, full, graph, synth

RDS = "aws:rds/instance:Instance"
SECRET = "aws:secretsmanager/secret:Secret"
EC2 = "aws:ec2/instance:Instance"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
RANDOM_ID = "random:index/randomId:RandomId"
EACH = pytest.mark.parametrize(("environment", "preview"), ENVIRONMENTS_AND_MODES)


def _aws(environment: str, preview: bool, mode: str = "default") -> Synthesis:
    return graph("aws", environment, preview, mode)


def _suffix_of(result: Synthesis, resource: RecordedResource) -> RecordedResource:
    [suffix] = [r for r in result.of_type(RANDOM_ID) if r.urn in resource.dependencies]
    return suffix


# -- 10: Secrets Manager names and recovery windows ------------------------------------------------


@EACH
def test_10_each_secret_name_is_unique_per_secret_and_dev_deletes_at_once(environment: str, preview: bool) -> None:
    result = _aws(environment, preview)
    secrets = result.of_type(SECRET)
    assert len(secrets) == 3
    for secret in secrets:
        role = secret.input("tags")["role"]
        assert _suffix_of(result, secret).input("keepers") == {"role": role}
        if preview:
            assert secret.input("name") == UNKNOWN  # drawn at the first apply, then kept in state
        else:
            assert re.fullmatch(rf"private-postgres-{environment}/postgres/{role}-[0-9a-f]{{8}}", secret.input("name"))
        # 0: ForceDeleteWithoutRecovery, the name is free again at once; production keeps 30 days to restore
        assert secret.input("recoveryWindowInDays") == (30 if environment == "production" else 0)


# -- 11: RDS identifier and final snapshot ----------------------------------------------------------


@EACH
def test_11_the_final_snapshot_is_named_after_an_identifier_unique_per_physical_instance(
    environment: str, preview: bool
) -> None:
    result = _aws(environment, preview)
    rds = result.one(RDS)
    keepers = _suffix_of(result, rds).input("keepers")
    # every input that replaces the instance (TPA schema ForceNew) draws a new identifier
    assert set(keepers) == {"dbName", "engine", "kmsKeyId", "storageEncrypted", "username"}
    assert (keepers["dbName"], keepers["engine"], keepers["username"]) == ("app", "postgres", "pgadmin")
    assert rds.input("skipFinalSnapshot") is False
    if preview:
        assert rds.input("identifier") == rds.input("finalSnapshotIdentifier") == UNKNOWN
    else:
        assert keepers["kmsKeyId"] == rds.input("kmsKeyId")
        assert re.fullmatch(rf"private-postgres-{environment}-pg-[0-9a-f]{{8}}", rds.input("identifier"))
        assert rds.input("finalSnapshotIdentifier") == f"{rds.input('identifier')}-final"


def test_11_a_replacement_gets_a_new_identifier_and_a_new_final_snapshot_name() -> None:
    before = synth(AWS_BASE).one(RDS)
    after = synth(full(AWS_BASE, dbName="billing")).one(RDS)  # db_name is ForceNew: a replacement
    assert after.input("identifier") != before.input("identifier")
    assert after.input("finalSnapshotIdentifier") != before.input("finalSnapshotIdentifier")
    same = synth(full(AWS_BASE, dbInstanceClass="db.m7g.large")).one(RDS)  # modified in place
    assert same.input("identifier") == before.input("identifier")


# -- 12: the bastion boots after the SSM endpoints ---------------------------------------------------


@EACH
def test_12_the_bastion_depends_on_the_ssm_and_s3_endpoints_and_its_egress_to_them(
    environment: str, preview: bool
) -> None:
    result = _aws(environment, preview)
    bastion = result.one(EC2)
    endpoints = {e.input("serviceName").rsplit(".", 1)[-1]: e.urn for e in result.of_type(ENDPOINT)}
    assert set(endpoints) == {"ssm", "ssmmessages", "ec2messages", "s3"}
    assert set(endpoints.values()) <= set(bastion.dependencies)
    https = result.named("private-postgres-" + environment + "-net-bastion-https")
    s3_rule = result.named("private-postgres-" + environment + "-net-bastion-s3")
    assert {https.urn, s3_rule.urn} <= set(bastion.dependencies)


# -- 13: the flow-log role ----------------------------------------------------------------------------


@EACH
def test_13_the_flow_log_role_may_create_and_describe_its_group_and_only_flow_logs_of_this_account_assume_it(
    environment: str, preview: bool
) -> None:
    result = _aws(environment, preview)
    role = result.named(f"private-postgres-{environment}-net-flow-logs", "aws:iam/role:Role")
    trust = json.loads(role.input("assumeRolePolicy"))["Statement"][0]  # account and region come from invokes
    assert trust["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert trust["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:eu-west-1:{ACCOUNT}:vpc-flow-log/*"},
    }
    policy = result.one("aws:iam/rolePolicy:RolePolicy").input("policy")
    if preview:
        assert policy == UNKNOWN  # the log group's ARN is known after apply
        return
    statements = json.loads(policy)["Statement"]
    actions = {a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])}
    assert actions == {
        "logs:CreateLogGroup",
        "logs:CreateLogStream",
        "logs:DescribeLogGroups",
        "logs:DescribeLogStreams",
        "logs:PutLogEvents",
    }
    assert all(resource != "*" for s in statements for resource in [s["Resource"]])  # never all of Logs


# -- 14: the bastion can be patched without NAT -----------------------------------------------------------


@EACH
def test_14_an_s3_gateway_endpoint_reaches_only_the_package_and_agent_buckets(environment: str, preview: bool) -> None:
    result = _aws(environment, preview)
    [s3] = [e for e in result.of_type(ENDPOINT) if e.input("serviceName") == "com.amazonaws.eu-west-1.s3"]
    assert s3.input("vpcEndpointType") == "Gateway"
    private_rt = result.named(f"private-postgres-{environment}-net-private")
    assert private_rt.urn in s3.dependencies  # a route in the private subnets' table
    if not preview:
        association = result.named(
            f"private-postgres-{environment}-net-private-0", "aws:ec2/routeTableAssociation:RouteTableAssociation"
        )
        assert s3.input("routeTableIds") == [association.input("routeTableId")]
    statement = json.loads(s3.input("policy"))["Statement"]
    assert [s["Action"] for s in statement] == ["s3:GetObject"]
    assert statement[0]["Resource"] == [f"arn:aws:s3:::{b}/*" for b in patch_buckets("eu-west-1")]
    assert "arn:aws:s3:::al2023-repos-eu-west-1-de612dc2/*" in statement[0]["Resource"]
    rule = result.named(f"private-postgres-{environment}-net-bastion-s3")
    assert (rule.input("ipProtocol"), rule.input("fromPort"), rule.input("toPort")) == ("tcp", 443, 443)
    assert s3.urn in rule.dependencies
    assert rule.input("prefixListId") == UNKNOWN if preview else rule.input("prefixListId").startswith("pl-")
    assert "cidrIpv4" not in rule.inputs  # the S3 prefix list, not the internet


@EACH
def test_14_user_data_points_dnf_at_s3_and_turns_on_daily_updates(environment: str, preview: bool) -> None:
    bastion = _aws(environment, preview).one(EC2)
    script = bastion.input("userData")
    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "echo latest > /etc/dnf/vars/releasever" in script
    assert "printf '' > /etc/dnf/vars/dualstack" in script
    assert "systemctl enable --now dnf-automatic-install.timer" in script
    assert DROP_IN not in script  # ssm mode: no sshd to lock down, port 22 is closed
    assert bastion.input("userDataReplaceOnChange") is True
    assert bastion.ignore_changes == ("ami",)


def test_14_in_ssh_mode_the_public_route_table_also_reaches_s3_through_the_endpoint() -> None:
    result = _aws("dev", False, "ssh")
    [s3] = [e for e in result.of_type(ENDPOINT) if e.input("vpcEndpointType") == "Gateway"]
    tables = [r for r in result.of_type("aws:ec2/routeTable:RouteTable")]
    assert len(tables) == 2
    assert len(s3.input("routeTableIds")) == 2


# -- 15: Performance Insights, SCRAM, log exports, encrypted log groups -------------------------------------


@EACH
def test_15_insights_scram_every_log_exported_and_every_log_group_encrypted(environment: str, preview: bool) -> None:
    result = _aws(environment, preview)
    rds = result.one(RDS)
    assert rds.input("performanceInsightsEnabled") is True  # db.t4g.micro: PostgreSQL has no class limit
    assert rds.input("enabledCloudwatchLogsExports") == list(LOG_EXPORTS)
    assert "iam-db-auth-error" in LOG_EXPORTS  # IAM authentication is on: its failures are exported too
    params = {p["name"]: p["value"] for p in result.one("aws:rds/parameterGroup:ParameterGroup").input("parameters")}
    assert params["rds.accepted_password_auth_method"] == "scram"
    groups = result.of_type(LOG_GROUP)
    assert len(groups) == len(LOG_EXPORTS) + 1  # one per export, and the flow logs
    key = result.one("aws:kms/key:Key")
    for group in groups:
        assert group.input("kmsKeyId") == (UNKNOWN if preview else rds.input("kmsKeyId"))
        assert key.urn in group.dependencies
    if not preview:
        names = sorted(g.input("name") for g in groups)
        assert names[:3] == [f"/aws/rds/instance/{rds.input('identifier')}/{kind}" for kind in LOG_EXPORTS]


@EACH
def test_15_the_key_lets_cloudwatch_logs_encrypt_only_this_accounts_groups(environment: str, preview: bool) -> None:
    policy = json.loads(_aws(environment, preview).one("aws:kms/key:Key").input("policy"))
    by_sid = {s["Sid"]: s for s in policy["Statement"]}
    assert by_sid["AccountIamPoliciesDecide"]["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    logs = by_sid["CloudWatchLogsEncryptsThisAccountsGroups"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:*"}
    }


def test_15_a_non_default_port_meets_rds_23_end_to_end() -> None:
    result = synth(full(AWS_BASE, dbPort="5433"))
    assert result.one(RDS).input("port") == 5433
    into_db = [
        r for r in result.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") if "db-from" in r.name
    ]
    assert {(r.input("fromPort"), r.input("toPort")) for r in into_db} == {(5433, 5433)}
    assert result.outputs["db_port"] == 5433


# -- 17 (AWS): the ssh-mode bastion forwards to the database only -----------------------------------------


@EACH
def test_17_the_ssh_mode_user_data_makes_sshd_forward_only_before_anything_else(
    environment: str, preview: bool
) -> None:
    result = _aws(environment, preview, "ssh")
    script = result.one(EC2).input("userData")
    if preview:
        assert script == UNKNOWN  # it names the database address, known after apply
        return
    address = result.outputs["db_host"]
    assert script.index(DROP_IN) < script.index("dnf")  # locked down before anything that may fail
    for line in (f"PermitOpen {address}:5432", "ForceCommand /bin/false", "PermitTTY no", "AllowTcpForwarding local"):
        assert line in script
    assert "/usr/sbin/sshd -t" in script


def test_17_egress_to_the_bastion_stays_narrow_in_ssh_mode() -> None:
    result = _aws("dev", False, "ssh")
    egress = {r.name.rsplit("-", 1)[-1]: r for r in result.of_type(EGRESS)}
    assert set(egress) == {"db", "https", "s3"}
    assert egress["https"].input("cidrIpv4") == "10.40.0.0/16"  # the VPC's endpoints, not the internet
