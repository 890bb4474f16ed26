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


# -- item 16: the address space port 22 opens, keys, integers, private subnets ------------------------

SSH = {"bastionMode": "ssh", "sshPublicKey": SSH_KEY}
MEASURED = [
    pytest.param('["0.0.0.0/1","128.0.0.0/1"]', "/24 or narrower", id="two-halves-of-the-internet"),
    pytest.param('["0.0.0.0/2","64.0.0.0/2","128.0.0.0/2","192.0.0.0/2"]', "/24 or narrower", id="four-quarters"),
    pytest.param('["203.0.112.0/23"]', "/24 or narrower", id="one-/23"),
    pytest.param(
        '["198.51.100.0/24","203.0.113.0/28"]', "at most 256 addresses in all (these open 272", id="adds-up-to-more"
    ),
]


@pytest.mark.parametrize(("cidrs", "allowed"), MEASURED)
@pytest.mark.parametrize("base", [AWS_BASE, GCP_BASE], ids=["aws", "gcp"])
@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_16_ssh_sources_are_measured_not_just_compared_with_the_whole_internet(
    base: dict[str, str], cidrs: str, allowed: str, preview: bool
) -> None:
    error, monitor = refused(full(base, sshAllowedCidrs=cidrs, **SSH), preview=preview)
    assert error.key == "sshAllowedCidrs"
    assert allowed in str(error)
    assert monitor.recorded == []


def test_16_overlapping_sources_count_once_and_a_full_slash_24_is_allowed() -> None:
    cfg = load(full(AWS_BASE, sshAllowedCidrs='["198.51.100.0/24","198.51.100.128/25","198.51.100.7/32"]', **SSH))
    assert len(cfg.bastion.ssh_allowed_cidrs) == 3  # 256 addresses together: the limit, not over it


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        pytest.param(f"{SSH_KEY}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttacker x", "line break", id="second-key"),
        pytest.param(f"{SSH_KEY}\rssh-rsa AAAA", "line break", id="carriage-return"),
        pytest.param(f"{SSH_KEY}\u2028more", "line break", id="unicode-line-separator"),
        pytest.param("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0mZ9Q1bq7i8z", "decodes to that key type", id="truncated"),
        pytest.param("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "a key of type", id="dsa"),
        pytest.param("ssh-ed25519 AAAA ops\x00x", "printable ASCII", id="control-character"),
    ],
)
def test_16_the_public_key_is_one_valid_key_on_one_line(key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(full(GCP_BASE, sshAllowedCidrs='["203.0.113.0/28"]', bastionMode="ssh", sshPublicKey=key))
    assert info.value.key == "sshPublicKey"
    assert problem in str(info.value)
    assert "\n" not in str(info.value).replace(repr(key), "")  # the message itself is one line


def test_16_a_short_rsa_key_is_refused_and_a_long_one_accepted() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def rsa_key(bits: int) -> str:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits).public_key()
        return key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()

    with pytest.raises(ConfigError, match="at least 3072 bits"):
        load(full(AWS_BASE, sshAllowedCidrs='["203.0.113.0/28"]', bastionMode="ssh", sshPublicKey=rsa_key(2048)))
    cfg = load(full(AWS_BASE, sshAllowedCidrs='["203.0.113.0/28"]', bastionMode="ssh", sshPublicKey=rsa_key(3072)))
    assert cfg.bastion.ssh_public_key is not None


@pytest.mark.parametrize(
    "value", ["٣٠", "5_432", " 30", "30 ", "+30.0", "3e1", "\uff13\uff10"]
)  # the last: fullwidth digits
def test_16_integers_are_ascii_digits_only(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(full(AWS_BASE, backupRetentionDays=value))
    assert info.value.key == "backupRetentionDays"
    assert "ASCII digits" in str(info.value)
    assert load(full(AWS_BASE, backupRetentionDays="30")).database.backup_retention_days == 30


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("subnetCidr", "8.8.8.0/24"),
        ("subnetCidr", "0.0.0.0/0"),
        ("subnetCidr", "100.64.0.0/24"),  # shared address space (RFC 6598), not RFC 1918
        ("subnetCidr", "192.0.2.0/24"),  # documentation range: ipaddress calls it private
        ("subnetCidr", "10.0.0.0/30"),  # too small for a subnet
    ],
)
def test_16_subnets_are_private_rfc1918_ranges(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(full(GCP_BASE, **{key: value}))
    assert info.value.key == key
    assert "RFC 1918" in str(info.value)


@pytest.mark.parametrize("value", ["8.8.0.0/16", "192.0.2.0/24", "100.64.0.0/16"])
def test_16_the_vpc_is_a_private_rfc1918_range(value: str) -> None:
    with pytest.raises(ConfigError, match="RFC 1918"):
        load(full(AWS_BASE, vpcCidr=value))


def test_16_the_organization_id_is_numeric() -> None:
    with pytest.raises(ConfigError, match="numeric organization id"):
        load(full(GCP_BASE, operatorsOrganization="organizations/123"))
    assert load(full(GCP_BASE, operatorsOrganization="123456789012")).gcp is not None
