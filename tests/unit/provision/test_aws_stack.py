"""The AWS program under the project mocks: every security, backup and quiet-preview property,
in preview and non-preview mode, for dev and production."""

from __future__ import annotations

import json
import re

import pytest

from infra.contract import RdsInstance, SshBastion, SsmBastion, StackOutputs
from infra.enums import Environment
from infra.provision.recording import Synthesis, is_secret
from infra.provision.synth import render_text
from tests.fixtures.stack import AWS_BASE, full, synth

SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0mZ9Q1bq7i8zjYb5rQx5gkY2u9d0tY0d5b0jZ3QyW ops@example"
RDS = "aws:rds/instance:Instance"
BOTH = pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])


@pytest.fixture(scope="module")
def dev() -> Synthesis:
    return synth(AWS_BASE)


@pytest.fixture(scope="module")
def prod() -> Synthesis:
    return synth(full(AWS_BASE, environment="production"), stack="prod")


@BOTH
def test_rds_is_private_encrypted_postgres16_with_managed_admin_secret(preview: bool) -> None:
    rds = synth(AWS_BASE, preview=preview).one(RDS)
    assert rds.input("engine") == "postgres"
    assert rds.input("engineVersion") == "16"  # major only: no fight with auto minor upgrades
    assert rds.input("autoMinorVersionUpgrade") is True
    assert rds.input("publiclyAccessible") is False
    assert rds.input("storageEncrypted") is True
    assert rds.input("storageType") == "gp3"
    assert rds.input("maxAllocatedStorage") == 100
    assert rds.input("allocatedStorage") == 20
    assert rds.input("manageMasterUserPassword") is True
    assert "password" not in rds.inputs
    assert rds.input("username") == "pgadmin"
    assert rds.input("iamDatabaseAuthenticationEnabled") is True
    assert rds.input("caCertIdentifier") == "rds-ca-rsa2048-g1"
    assert rds.input("enabledCloudwatchLogsExports") == ["iam-db-auth-error", "postgresql", "upgrade"]
    assert rds.input("monitoringInterval") == 60
    assert rds.input("copyTagsToSnapshot") is True
    assert rds.input("deleteAutomatedBackups") is False
    assert rds.input("backupRetentionPeriod") == 30
    assert rds.input("skipFinalSnapshot") is False
    assert rds.input("backupWindow")
    assert rds.input("maintenanceWindow")


def test_kms_key_rotates_and_encrypts_storage_secret_and_insights(dev: Synthesis) -> None:
    key = dev.one("aws:kms/key:Key")
    assert key.input("enableKeyRotation") is True
    rds = dev.one(RDS)
    key_arn = rds.input("kmsKeyId")
    assert key_arn.startswith("arn:aws:kms:eu-west-1:")
    assert rds.input("masterUserSecretKmsKeyId") == key_arn
    for secret in dev.of_type("aws:secretsmanager/secret:Secret"):
        assert secret.input("kmsKeyId") == key_arn


def test_performance_insights_on_every_class_with_the_stack_key() -> None:
    # PostgreSQL has no class restriction (the micro/small exclusion is MySQL's and MariaDB's).
    for instance_class in ("db.t4g.micro", "db.t3.small", "db.m7g.large"):
        rds = synth(full(AWS_BASE, dbInstanceClass=instance_class)).one(RDS)
        assert rds.input("performanceInsightsEnabled") is True, instance_class
        assert rds.input("performanceInsightsRetentionPeriod") == 7  # the free retention
        assert rds.input("performanceInsightsKmsKeyId") == rds.input("kmsKeyId")


def test_final_snapshot_name_is_stable_and_follows_the_instance() -> None:
    first = synth(AWS_BASE).one(RDS)
    second = synth(AWS_BASE).one(RDS)
    assert first.input("finalSnapshotIdentifier") == second.input("finalSnapshotIdentifier")  # no timestamp
    assert first.input("finalSnapshotIdentifier") == f"{first.input('identifier')}-final"
    assert re.fullmatch(r"private-postgres-dev-pg-[0-9a-f]{8}", first.input("identifier"))


def test_parameter_group_forces_tls_and_static_parameters_wait_for_reboot(dev: Synthesis) -> None:
    group = dev.one("aws:rds/parameterGroup:ParameterGroup")
    assert group.input("family") == "postgres16"
    params = {p["name"]: (p["value"], p["applyMethod"]) for p in group.input("parameters")}
    assert params["rds.force_ssl"] == ("1", "immediate")
    assert params["rds.accepted_password_auth_method"] == ("scram", "immediate")  # md5 logins refused
    assert params["log_connections"][0] == "1"
    assert params["log_disconnections"][0] == "1"
    assert params["log_statement"][0] == "ddl"
    # static: "immediate" would be read back as pending-reboot and diff on every preview
    assert params["shared_preload_libraries"] == ("pg_stat_statements", "pending-reboot")


@BOTH
def test_dev_vs_production_protection(preview: bool) -> None:
    dev_rds = synth(AWS_BASE, preview=preview).one(RDS)
    prod_rds = synth(full(AWS_BASE, environment="production"), preview=preview).one(RDS)
    assert (dev_rds.input("deletionProtection"), dev_rds.input("multiAz"), dev_rds.protect) == (False, False, False)
    assert (prod_rds.input("deletionProtection"), prod_rds.input("multiAz"), prod_rds.protect) == (True, True, True)
    assert prod_rds.input("skipFinalSnapshot") is False


def test_security_groups_have_no_inline_rules_and_db_port_only_from_bastion(dev: Synthesis) -> None:
    for group in dev.of_type("aws:ec2/securityGroup:SecurityGroup"):
        assert "ingress" not in group.inputs or group.input("ingress") in (None, [])
        assert "egress" not in group.inputs or group.input("egress") in (None, [])
    db_sg_id = dev.one(RDS).input("vpcSecurityGroupIds")[0]
    rules = dev.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    into_db = [r for r in rules if r.input("securityGroupId") == db_sg_id]
    assert len(into_db) == 1
    assert into_db[0].input("fromPort") == into_db[0].input("toPort") == 5432
    assert into_db[0].input("referencedSecurityGroupId") != db_sg_id
    assert "cidrIpv4" not in into_db[0].inputs
    # ssm mode: nothing may come in to the bastion
    bastion_sg_id = dev.one("aws:ec2/instance:Instance").input("vpcSecurityGroupIds")[0]
    assert [r for r in rules if r.input("securityGroupId") == bastion_sg_id] == []


def test_app_security_groups_get_db_port_only() -> None:
    result = synth(full(AWS_BASE, appSecurityGroupIds='["sg-0123456789abcdef0"]'))
    rules = result.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    app = [r for r in rules if r.input("referencedSecurityGroupId") == "sg-0123456789abcdef0"]
    assert len(app) == 1
    assert app[0].input("fromPort") == 5432


def test_ssh_mode_opens_22_only_to_the_configured_cidrs() -> None:
    result = synth(
        full(AWS_BASE, bastionMode="ssh", sshAllowedCidrs='["203.0.113.0/28","198.51.100.7/32"]', sshPublicKey=SSH_KEY)
    )
    rules = result.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    ssh_rules = [r for r in rules if r.input("fromPort") == 22]
    assert sorted(r.input("cidrIpv4") for r in ssh_rules) == ["198.51.100.7/32", "203.0.113.0/28"]
    instance = result.one("aws:ec2/instance:Instance")
    assert instance.input("associatePublicIpAddress") is True
    assert instance.input("keyName")
    outputs = StackOutputs.parse(result.outputs)
    assert isinstance(outputs.bastion, SshBastion)
    assert outputs.bastion.host
    assert outputs.bastion.user == "ec2-user"


def test_private_subnets_span_two_azs_and_never_route_to_the_internet(dev: Synthesis) -> None:
    subnets = dev.of_type("aws:ec2/subnet:Subnet")
    assert len(subnets) == 2
    assert {s.input("availabilityZone") for s in subnets} == {"eu-west-1a", "eu-west-1b"}
    assert all(s.input("mapPublicIpOnLaunch") is False for s in subnets)
    assert dev.of_type("aws:ec2/internetGateway:InternetGateway") == []
    assert dev.of_type("aws:ec2/route:Route") == []
    rt = dev.one("aws:ec2/routeTable:RouteTable")
    assert not rt.input("routes")
    endpoints = {e.input("serviceName"): e for e in dev.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert set(endpoints) == {f"com.amazonaws.eu-west-1.{s}" for s in ("ssm", "ssmmessages", "ec2messages", "s3")}
    interface = [e for e in endpoints.values() if e.input("vpcEndpointType") == "Interface"]
    assert len(interface) == 3
    assert all(e.input("privateDnsEnabled") is True for e in interface)
    assert endpoints["com.amazonaws.eu-west-1.s3"].input("vpcEndpointType") == "Gateway"  # a route, not an ENI
    assert dev.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").input("ingress") in (None, [])


def test_existing_vpc_declares_no_network_of_its_own() -> None:
    result = synth(
        full(
            AWS_BASE,
            existingVpcId="vpc-0123456789abcdef0",
            existingPrivateSubnetIds='["subnet-0123456789abcdef0","subnet-0fedcba9876543210"]',
        )
    )
    assert result.of_type("aws:ec2/vpc:Vpc") == []
    assert result.of_type("aws:ec2/subnet:Subnet") == []
    group = result.one("aws:rds/subnetGroup:SubnetGroup")
    assert group.input("subnetIds") == ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]


@BOTH
def test_bastion_is_ssm_only_imdsv2_encrypted_and_ignores_ami_moves(preview: bool) -> None:
    result = synth(AWS_BASE, preview=preview)
    bastion = result.one("aws:ec2/instance:Instance")
    assert bastion.input("instanceType") == "t4g.nano"
    assert bastion.input("associatePublicIpAddress") is False
    assert "keyName" not in bastion.inputs
    assert bastion.input("metadataOptions.httpTokens") == "required"
    assert bastion.input("metadataOptions.httpPutResponseHopLimit") == 1
    assert bastion.input("rootBlockDevice.encrypted") is True
    assert bastion.ignore_changes == ("ami",)
    policies = [p.input("policyArn") for p in result.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore" in policies
    assert len([p for p in policies if "SSM" in p]) == 1


def test_user_passwords_are_generated_stored_in_secrets_manager_and_secret(dev: Synthesis) -> None:
    passwords = dev.of_type("random:index/randomPassword:RandomPassword")
    assert sorted(p.input("keepers")["role"] for p in passwords) == ["app", "migrator", "readonly"]
    for password in passwords:
        allowed = password.input("overrideSpecial")
        assert not set('/"@ ') & set(allowed)
        assert password.input("length") >= 32
    for version in dev.of_type("aws:secretsmanager/secretVersion:SecretVersion"):
        assert is_secret(version.inputs["secretString"])
        document = json.loads(version.input("secretString"))
        assert set(document) == {"username", "password", "engine", "host", "port", "dbname"}
        assert document["host"].endswith(".rds.amazonaws.com")


def test_outputs_satisfy_the_contract_and_hold_no_password(dev: Synthesis) -> None:
    outputs = StackOutputs.parse(dev.outputs)
    assert outputs.environment is Environment.DEV
    assert outputs.db_host.endswith(".eu-west-1.rds.amazonaws.com")
    assert outputs.db_admin_secret.startswith("arn:aws:secretsmanager:eu-west-1:")
    assert set(outputs.db_user_secrets) == {"migrator", "app", "readonly"}
    assert isinstance(outputs.bastion, SsmBastion)
    assert outputs.bastion.target.startswith("i-")
    assert outputs.db_ca == "rds-ca-rsa2048-g1"
    # a restore-drill copy goes exactly where the instance is: its subnet group, SGs and parameters
    rds = dev.one("aws:rds/instance:Instance")
    assert isinstance(outputs.db_instance, RdsInstance)
    assert outputs.db_instance.identifier == rds.input("identifier")
    assert outputs.db_instance.subnet_group == rds.input("dbSubnetGroupName")
    assert list(outputs.db_instance.security_group_ids) == rds.input("vpcSecurityGroupIds")
    assert outputs.db_instance.parameter_group == rds.input("parameterGroupName")
    assert outputs.db_instance.region == "eu-west-1"
    text = json.dumps(dev.outputs)
    assert "Mock" not in text  # every mock password result starts with "Mock"


def test_preview_outputs_are_unknown_until_apply() -> None:
    result = synth(AWS_BASE, preview=True)
    assert result.outputs["db_host"] == "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    assert result.outputs["cloud"] == "aws"


def test_migrations_output_lists_the_bundled_files(dev: Synthesis) -> None:
    from infra.migrations.source import manifest
    from infra.paths import MIGRATIONS_DIR

    assert dev.outputs["migrations"] == list(manifest(MIGRATIONS_DIR))


def test_synth_is_deterministic_and_masks_secrets() -> None:
    first = render_text(synth(AWS_BASE))
    second = render_text(synth(AWS_BASE))
    assert first == second
    assert "Mock" not in first  # no generated password value, even from the mocks
    assert "[secret]" in first


def test_vpc_flow_logs_capture_all_traffic_to_a_retained_group(dev: Synthesis) -> None:
    flow = dev.one("aws:ec2/flowLog:FlowLog")
    assert flow.input("trafficType") == "ALL"  # FSBP EC2.6
    assert flow.input("vpcId").startswith("vpc-")
    assert flow.input("logDestinationType") == "cloud-watch-logs"
    groups = {g.input("name"): g for g in dev.of_type("aws:cloudwatch/logGroup:LogGroup")}
    group = groups["/vpc/private-postgres-dev/flow-logs"]
    assert group.input("retentionInDays") == 30
    role_policy = dev.one("aws:iam/rolePolicy:RolePolicy")
    statement = json.loads(role_policy.input("policy"))["Statement"][0]
    assert statement["Resource"] == [
        "arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/private-postgres-dev/flow-logs",
        "arn:aws:logs:eu-west-1:123456789012:log-group:/vpc/private-postgres-dev/flow-logs:*",
    ]
    assert flow.input("logDestination") == statement["Resource"][0]
    assert flow.input("iamRoleArn").startswith("arn:aws:iam::")


def test_existing_vpc_gets_no_flow_logs_of_ours() -> None:
    result = synth(
        full(
            AWS_BASE,
            existingVpcId="vpc-0123456789abcdef0",
            existingPrivateSubnetIds='["subnet-0123456789abcdef0","subnet-0fedcba9876543210"]',
        )
    )
    assert result.of_type("aws:ec2/flowLog:FlowLog") == []
