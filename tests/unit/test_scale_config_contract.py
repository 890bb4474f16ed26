"""Scale-out config (readReplicas, replicaInstanceClass, replicaTier, pooler) and the contract's
reader and pooler endpoints: defaults, one clear line per mistake, nothing declared on refusal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from infra.config import PoolerMode, load
from infra.contract import OPTIONAL_OUTPUTS, Endpoint, StackOutputs
from infra.errors import ContractError
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full, refused
from tests.unit.test_contract import AWS

PLUS = {"dbEdition": "ENTERPRISE_PLUS", "dbTier": "db-perf-optimized-N-2"}


def test_defaults_are_no_replica_and_no_pooler() -> None:
    for base in (AWS_BASE, GCP_BASE):
        scale = load(base).scale
        assert (scale.read_replicas, scale.replica_class, scale.pooler) == (0, "", PoolerMode.NONE)


def test_replica_class_defaults_to_the_primarys() -> None:
    assert load(full(AWS_BASE, readReplicas="2")).scale.replica_class == "db.t4g.micro"
    assert load(full(AWS_BASE, readReplicas="1", replicaInstanceClass="db.r7g.large")).scale.replica_class == (
        "db.r7g.large"
    )
    assert load(full(GCP_BASE, readReplicas="1")).scale.replica_class == "db-custom-1-3840"
    gcp = load(full(GCP_BASE, readReplicas="3", pooler="managed", **PLUS)).scale
    assert (gcp.read_replicas, gcp.replica_class, gcp.pooled) == (3, "db-perf-optimized-N-2", True)


@pytest.mark.parametrize(
    ("config", "key", "fix"),
    [
        (full(AWS_BASE, readReplicas="16"), "readReplicas", "pulumi config set readReplicas 15"),
        (full(GCP_BASE, readReplicas="11"), "readReplicas", "pulumi config set readReplicas 10"),
        (full(AWS_BASE, readReplicas="-1"), "readReplicas", "pulumi config set readReplicas 0"),
        (full(AWS_BASE, readReplicas="two"), "readReplicas", "pulumi config set readReplicas 0"),
        (full(AWS_BASE, pooler="pgbouncer"), "pooler", "pulumi config set pooler managed"),
        (full(AWS_BASE, readReplicas="1", replicaInstanceClass="m5.large"), "replicaInstanceClass", "db.t4g.micro"),
        (full(AWS_BASE, replicaTier="db-custom-1-3840"), "replicaTier", "pulumi config rm replicaTier"),
        (full(GCP_BASE, replicaInstanceClass="db.t4g.micro"), "replicaInstanceClass", "rm replicaInstanceClass"),
        (full(GCP_BASE, readReplicas="1", replicaTier="db-perf-optimized-N-4"), "replicaTier", "db-custom-1-3840"),
        (full(GCP_BASE, readReplicas="1", replicaTier="db-custom-2-7680", **PLUS), "replicaTier", "db-perf-optimized"),
        (full(GCP_BASE, pooler="managed"), "pooler", "pulumi config set dbEdition ENTERPRISE_PLUS"),
    ],
)
def test_each_mistake_is_one_line_naming_key_and_fix_and_declares_nothing(
    config: dict[str, str], key: str, fix: str
) -> None:
    error, monitor = refused(config)
    message = str(error)
    assert error.key == key
    assert "\n" not in message
    assert message.startswith(f"config {key}=")
    assert fix in message
    assert monitor.recorded == []


def test_pooler_on_enterprise_says_why() -> None:
    error, _ = refused(full(GCP_BASE, pooler="managed"))
    assert "ENTERPRISE_PLUS" in error.allowed
    assert "db-perf-optimized-N-*" in error.allowed


# -- the contract ---------------------------------------------------------------------------------


def test_outputs_without_scale_fields_still_parse() -> None:
    older = {k: v for k, v in AWS.items() if k not in ("db_read_endpoints", "db_pooler")}
    outputs = StackOutputs.parse(older)
    assert outputs.db_read_endpoints == ()
    assert outputs.db_pooler is None
    assert {"db_read_endpoints", "db_pooler"} <= OPTIONAL_OUTPUTS


def test_endpoints_round_trip() -> None:
    raw = {
        **AWS,
        "db_read_endpoints": [{"host": "r0.example", "port": 5432}, {"host": "r1.example", "port": "5433"}],
        "db_pooler": {"host": "proxy.example", "port": 5432, "ca": "AmazonRootCA1"},
    }
    outputs = StackOutputs.parse(raw)
    assert outputs.db_read_endpoints == (Endpoint("r0.example", 5432), Endpoint("r1.example", 5433))
    assert outputs.db_pooler == Endpoint("proxy.example", 5432, "AmazonRootCA1")
    assert StackOutputs.parse(outputs.to_json()) == outputs


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("db_read_endpoints", {"host": "r0"}, "must be a list"),
        ("db_read_endpoints", [{"host": "", "port": 5432}], "'db_read_endpoints[0].host'"),
        ("db_read_endpoints", [{"host": "r0", "port": 0}], "'db_read_endpoints[0].port'"),
        ("db_read_endpoints", ["r0:5432"], "'db_read_endpoints[0]' must be an object"),
        ("db_pooler", {"host": "p", "port": True}, "'db_pooler.port'"),
        ("db_pooler", {"host": "p", "port": 5432, "ca": ""}, "'db_pooler.ca'"),
    ],
)
def test_malformed_endpoints_name_the_output(field: str, value: Any, named: str) -> None:
    raw = copy.deepcopy(AWS)
    raw[field] = value
    with pytest.raises(ContractError, match=named.replace("[", r"\[").replace("]", r"\]")):
        StackOutputs.parse(raw)
