"""The lifecycle rules applied to the synthesized graphs: both clouds, dev and production, preview and up.

No finding means: every declared type has a rule, every name the cloud keeps after a delete is
unique per physical instance (derived from a RandomId that keeps every replacing input), a dev
stack can be destroyed and created again at once, and production keeps ``protect`` and the
clouds' deletion protection. Each negative case breaks one of those on the program's own graph.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from infra.provision.lifecycle import RANDOM_ID, RULES, findings, rule_for
from infra.provision.recording import RecordedResource, Synthesis
from tests.fixtures.stack import GRAPHS, graph

RDS = "aws:rds/instance:Instance"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
SECRET = "aws:secretsmanager/secret:Secret"
CONNECTION = "gcp:servicenetworking/connection:Connection"


def _with(resource: RecordedResource, **changes: Any) -> RecordedResource:
    """The resource with some inputs replaced (None removes one) or some fields changed."""
    inputs = {k: v for k, v in {**resource.inputs, **changes.pop("inputs", {})}.items() if v is not None}
    return dataclasses.replace(resource, inputs=inputs, **changes)


def _swap(result: Synthesis, old: RecordedResource, new: RecordedResource) -> list[RecordedResource]:
    return [new if r is old else r for r in result.resources]


@pytest.mark.parametrize(("cloud", "environment", "preview"), GRAPHS)
def test_the_graph_keeps_every_lifecycle_rule(cloud: str, environment: str, preview: bool) -> None:
    result = graph(cloud, environment, preview)
    assert findings(result.resources, production=environment == "production") == []


@pytest.mark.parametrize("cloud", ["aws", "gcp"])
def test_ssh_mode_keeps_every_lifecycle_rule(cloud: str) -> None:
    for preview in (False, True):
        assert findings(graph(cloud, "dev", preview, "ssh").resources, production=False) == []


def test_every_type_the_program_declares_has_one_rule() -> None:
    declared = {
        r.type
        for cloud in ("aws", "gcp")
        for mode in ("default", "ssh")
        for r in graph(cloud, "dev", False, mode).resources
    }
    declared = {t for t in declared if not t.startswith("private-postgres:")}  # components own nothing
    assert declared <= {rule.type for rule in RULES}
    assert len({rule.type for rule in RULES}) == len(RULES)  # one rule per type
    unknown = _with(graph("aws", "dev", False).one(RDS), type="aws:rds/cluster:Cluster")
    assert findings([unknown], production=False) == [
        f"{unknown.name}: no lifecycle rule for aws:rds/cluster:Cluster; add one to RULES"
    ]


def test_every_rule_names_its_source_and_what_a_delete_does() -> None:
    for rule in RULES:
        assert rule.source, rule.type
        assert rule.on_delete, rule.type


@pytest.mark.parametrize(("cloud", "type_", "field"), [("aws", RDS, "finalSnapshotIdentifier"), ("gcp", SQL, "name")])
def test_a_reserved_name_without_a_random_suffix_is_found(cloud: str, type_: str, field: str) -> None:
    result = graph(cloud, "dev", False)
    resource = result.one(type_)
    suffixes = {r.urn for r in result.of_type(RANDOM_ID)}
    fixed = _with(resource, dependencies=tuple(d for d in resource.dependencies if d not in suffixes))
    found = findings(_swap(result, resource, fixed), production=False)
    assert len(found) == 1
    assert f"{field} is fixed" in found[0]


def test_a_suffix_that_does_not_keep_a_replacing_input_is_found() -> None:
    result = graph("aws", "dev", False)
    rds = result.one(RDS)
    suffix = next(r for r in result.of_type(RANDOM_ID) if r.urn in rds.dependencies)
    keepers = {k: v for k, v in suffix.input("keepers").items() if k != "kmsKeyId"}
    found = findings(_swap(result, suffix, _with(suffix, inputs={"keepers": keepers})), production=False)
    assert len(found) == 1
    assert "must keep" in found[0]
    assert "kmsKeyId" in found[0]


def test_a_secret_with_a_recovery_window_needs_its_suffix_but_an_immediate_delete_does_not() -> None:
    result = graph("aws", "dev", False)
    secret = result.of_type(SECRET)[0]
    suffixes = {r.urn for r in result.of_type(RANDOM_ID)}
    bare = tuple(d for d in secret.dependencies if d not in suffixes)
    windowed = _with(secret, dependencies=bare, inputs={"recoveryWindowInDays": 7})
    assert len(findings(_swap(result, secret, windowed), production=False)) == 1
    immediate = _with(secret, dependencies=bare, inputs={"recoveryWindowInDays": 0})
    assert findings(_swap(result, secret, immediate), production=False) == []


def test_a_connection_that_abandons_the_peering_blocks_the_destroy() -> None:
    result = graph("gcp", "dev", False)
    connection = result.one(CONNECTION)
    abandoned = _with(connection, inputs={"deletionPolicy": "ABANDON"})
    assert findings(_swap(result, connection, abandoned), production=False) == [
        f"{connection.name}: deletionPolicy='ABANDON', a clean destroy needs 'REMOVE_PEERING'"
    ]


@pytest.mark.parametrize(("cloud", "type_"), [("aws", RDS), ("gcp", SQL)])
def test_production_keeps_protect_and_deletion_protection_and_dev_does_not(cloud: str, type_: str) -> None:
    prod = graph(cloud, "production", False)
    database = prod.one(type_)
    unprotected = _with(database, protect=False, inputs={"deletionProtection": False})
    found = findings(_swap(prod, database, unprotected), production=True)
    assert sorted(f.split(": ", 1)[1].split("=")[0] for f in found) == ["deletionProtection", "protect"]
    dev = graph(cloud, "dev", False)
    protected = _with(dev.one(type_), protect=True)
    assert findings(_swap(dev, dev.one(type_), protected), production=False) == [
        f"{protected.name}: protect=True in dev"
    ]


def test_production_secrets_stay_recoverable() -> None:
    prod = graph("aws", "production", False)
    secret = prod.of_type(SECRET)[0]
    assert secret.input("recoveryWindowInDays") == 30
    instant = _with(secret, inputs={"recoveryWindowInDays": 0})
    assert findings(_swap(prod, secret, instant), production=True) == [
        f"{secret.name}: recoveryWindowInDays=0; production keeps at least 7"
    ]


def test_rule_lookup() -> None:
    rule = rule_for(SQL)
    assert rule is not None
    assert "name" in rule.replaced_by
    assert rule_for("aws:nothing/here:Here") is None
