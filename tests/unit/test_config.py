"""Config: defaults by environment, Pulumi.yaml in step with infra/config.py, bad input refused."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from infra.config import KEYS, NAMESPACE, load
from infra.enums import BastionMode, Cloud, Environment
from infra.errors import ConfigError
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full, refused

ROOT = Path(__file__).resolve().parents[2]
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0mZ9Q1bq7i8zjYb5rQx5gkY2u9d0tY0d5b0jZ3QyW ops@example"


def test_pulumi_yaml_declares_every_key_with_type_description_and_the_same_default() -> None:
    declared = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert declared["name"] == NAMESPACE
    assert declared["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    schema = declared["config"]
    assert set(schema) == {spec.name for spec in KEYS}
    for spec in KEYS:
        entry = schema[spec.name]
        assert entry["type"] == spec.type, spec.name
        assert entry["description"] == spec.description, spec.name
        default = list(spec.default) if isinstance(spec.default, tuple) else spec.default
        assert entry["default"] == default, spec.name


def test_dev_defaults() -> None:
    cfg = load(AWS_BASE)
    assert cfg.cloud is Cloud.AWS
    assert cfg.environment is Environment.DEV
    assert cfg.database.backup_retention_days == 30
    assert cfg.database.high_availability is False
    assert cfg.database.deletion_protection is False
    assert cfg.database.admin_user == "pgadmin"
    assert cfg.bastion.mode is BastionMode.SSM
    assert cfg.aws is not None
    assert cfg.aws.vpc_cidr == ipaddress.IPv4Network("10.40.0.0/16")
    assert cfg.run_migrations_on_up is False


def test_production_turns_on_protection_and_ha_unless_overridden() -> None:
    cfg = load(full(AWS_BASE, environment="production"))
    assert cfg.production
    assert cfg.database.high_availability is True
    assert cfg.database.deletion_protection is True
    override = load(full(AWS_BASE, environment="production", highAvailability="false"))
    assert override.database.high_availability is False
    assert override.database.deletion_protection is True


def test_gcp_defaults_to_iap_and_derives_the_zone() -> None:
    cfg = load(GCP_BASE)
    assert cfg.bastion.mode is BastionMode.IAP
    assert cfg.gcp is not None
    assert cfg.gcp.zone == "europe-west1-b"
    assert cfg.aws is None


def test_arrays_arrive_as_json_text_like_the_engine_sends_them() -> None:
    cfg = load(full(AWS_BASE, bastionMode="ssh", sshAllowedCidrs='["203.0.113.0/24"]', sshPublicKey=SSH_KEY))
    assert cfg.bastion.ssh_allowed_cidrs == (ipaddress.IPv4Network("203.0.113.0/24"),)


BAD_CASES = [
    pytest.param(full(AWS_BASE, cloud="azure"), "cloud", "aws | gcp", id="unknown-cloud"),
    pytest.param(full(AWS_BASE, environment="prod"), "environment", "dev | staging | production", id="unknown-env"),
    pytest.param(full(AWS_BASE, backupRetentionDays="0"), "backupRetentionDays", "from 1 to 35", id="retention-0"),
    pytest.param(full(AWS_BASE, backupRetentionDays="40"), "backupRetentionDays", "from 1 to 35", id="retention-40"),
    pytest.param(full(AWS_BASE, vpcCidr="10.40.0.0/33"), "vpcCidr", "IPv4 CIDR", id="malformed-cidr"),
    pytest.param(full(AWS_BASE, vpcCidr="10.40.1.0/16"), "vpcCidr", "host bits zero", id="host-bits"),
    pytest.param(
        full(AWS_BASE, bastionMode="ssh", sshAllowedCidrs='["0.0.0.0/0"]', sshPublicKey=SSH_KEY),
        "sshAllowedCidrs",
        "/24 or narrower",
        id="ssh-open-to-world",
    ),
    pytest.param(full(AWS_BASE, dbAdminUser="postgres"), "dbAdminUser", "not reserved", id="admin-postgres"),
    pytest.param(full(AWS_BASE, dbAdminUser="rdsadmin"), "dbAdminUser", "not reserved", id="admin-rdsadmin"),
    pytest.param(
        full(AWS_BASE, dbStorageGb="200", dbMaxStorageGb="100"),
        "dbMaxStorageGb",
        "at least dbStorageGb",
        id="max<storage",
    ),
    pytest.param(
        full(AWS_BASE, existingVpcId="vpc-0123456789abcdef0"),
        "existingPrivateSubnetIds",
        "two or more private subnet ids",
        id="vpc-without-subnets",
    ),
    pytest.param(full(AWS_BASE, bastionMode="iap"), "bastionMode", "ssm | ssh", id="iap-on-aws"),
    pytest.param(full(AWS_BASE, bastionMode="ssh"), "sshAllowedCidrs", "at least one CIDR", id="ssh-no-cidrs"),
    pytest.param(full(AWS_BASE, dbStorageGb="lots"), "dbStorageGb", "whole number", id="not-a-number"),
    pytest.param(full(AWS_BASE, dbStorageGB="50"), "dbStorageGB", "did you mean 'dbStorageGb'", id="typo-key"),
    pytest.param({"private-postgres:cloud": "aws"}, "aws:region", "AWS region", id="no-region"),
    pytest.param(full(GCP_BASE, backupRetentionDays="1"), "backupRetentionDays", "from 2 to 365", id="gcp-retention-1"),
    pytest.param(
        full(GCP_BASE, dbEdition="ENTERPRISE_PLUS"), "dbEdition", "ENTERPRISE with custom tier", id="gcp-edition"
    ),
    pytest.param(full(GCP_BASE, bastionMode="ssm"), "bastionMode", "iap | ssh", id="gcp-ssm"),
    pytest.param(full(GCP_BASE, operators='["ana@example.com"]'), "operators", "IAM members", id="gcp-operator"),
]


@pytest.mark.parametrize(("config", "key", "allowed"), BAD_CASES)
def test_bad_input_names_key_value_allowed_and_fix_and_declares_nothing(
    config: dict[str, str], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(config)
    message = str(info.value)
    assert info.value.key == key
    assert f"config {key}=" in message
    assert allowed in message
    assert "fix: pulumi config" in message
    assert "\n" not in message

    error, monitor = refused(config)
    assert error.key == key
    assert monitor.recorded == []  # not one resource declared before the refusal
