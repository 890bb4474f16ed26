"""The stack-output contract: parse what `pulumi stack output --json` gives, name what is wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.contract import OUTPUT_NAMES, RdsInstance, SsmBastion, StackOutputs
from infra.enums import Cloud
from infra.errors import ContractError

SHA = "a" * 64
AWS: dict[str, Any] = {
    "cloud": "aws",
    "environment": "dev",
    "db_host": "pp-dev-pg.cabc.eu-west-1.rds.amazonaws.com",
    "db_port": 5432,
    "db_name": "app",
    "db_admin_user": "pgadmin",
    "db_admin_secret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1",
    "db_user_secrets": {"migrator": "arn:m", "app": "arn:a", "readonly": "arn:r"},
    "bastion": {"mode": "ssm", "target": "i-0123456789abcdef0", "region": "eu-west-1"},
    "db_ca": "rds-ca-rsa2048-g1",
    "migrations": [f"0001_init.sql:{SHA}"],
    "db_instance": {
        "identifier": "pp-dev-pg",
        "region": "eu-west-1",
        "subnet_group": "pp-dev-db-subnets-6d1618b",
        "security_group_ids": ["sg-0123456789abcdef0"],
        "parameter_group": "pp-dev-db-params-0b2b958",
    },
    "db_read_endpoints": [],
    "db_pooler": None,
}


def test_round_trip() -> None:
    parsed = StackOutputs.parse(AWS)
    assert parsed.cloud is Cloud.AWS
    assert isinstance(parsed.bastion, SsmBastion)
    assert parsed.to_json() == AWS
    assert tuple(AWS) == OUTPUT_NAMES


def test_outputs_are_immutable() -> None:
    parsed = StackOutputs.parse(AWS)
    with pytest.raises(TypeError):
        parsed.db_user_secrets["app"] = "x"  # type: ignore[index]


def _broken(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(AWS)
    *parents, leaf = path.split(".")
    target = doc
    for part in parents:
        target = target[part]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("db_host", KeyError, "stack output 'db_host' is missing"),
        ("db_host", "", "'db_host' must be a non-empty string"),
        ("cloud", "azure", "'cloud' is 'azure'; expected one of aws, gcp"),
        ("db_port", 0, "'db_port' must be a TCP port"),
        ("db_port", True, "'db_port' must be a TCP port"),
        ("db_user_secrets", ["arn"], "'db_user_secrets' must be a map"),
        ("db_user_secrets.app", KeyError, "no secret for 'app'"),
        ("bastion", "i-123", "'bastion' must be an object"),
        ("bastion.mode", "telnet", "'bastion.mode' is 'telnet'"),
        ("bastion.region", KeyError, "'bastion.region' is required when bastion.mode is 'ssm'"),
        ("bastion.mode", "iap", "'bastion.zone' is required"),
        ("migrations", ["0001_init.sql"], "'<file>.sql:<sha256>'"),
        ("db_instance", "pp-dev-pg", "'db_instance' must be an object"),
        ("db_instance.subnet_group", KeyError, "'db_instance.subnet_group' must be a non-empty string"),
        ("db_instance.security_group_ids", [], "'db_instance.security_group_ids' must be a non-empty list"),
    ],
)
def test_a_bad_output_is_named(path: str, value: Any, message: str) -> None:
    with pytest.raises(ContractError, match="stack output") as info:
        StackOutputs.parse(_broken(path, value))
    assert message in str(info.value)


def test_db_instance_is_optional_for_stacks_deployed_before_it() -> None:
    parsed = StackOutputs.parse(_broken("db_instance", KeyError))
    assert parsed.db_instance is None
    assert "db_instance" not in parsed.to_json()
    assert isinstance(StackOutputs.parse(AWS).db_instance, RdsInstance)


def test_ssm_on_gcp_is_refused() -> None:
    doc = _broken("cloud", "gcp")
    with pytest.raises(ContractError, match="'ssm' does not exist on gcp"):
        StackOutputs.parse(doc)
