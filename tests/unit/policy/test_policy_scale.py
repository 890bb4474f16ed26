"""The policy pack over the scale-out resources: read replicas pass the primary's controls (private,
encrypted, TLS, pgAudit, production protection) with only the exemptions a replica needs, and the
RDS Proxy must require TLS."""

from __future__ import annotations

import pytest

from infra.provision.recording import Synthesis, plain
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full, synth
from tests.unit.policy.test_policy import DELETE, broken, reported, run_pack

RDS = "aws:rds/instance:Instance"
SQL = "gcp:sql/databaseInstance:DatabaseInstance"
GCP_PLUS = {"dbEdition": "ENTERPRISE_PLUS", "dbTier": "db-perf-optimized-N-2"}


@pytest.mark.parametrize("environment", ["dev", "production"])
@pytest.mark.parametrize("preview", [False, True], ids=["up", "preview"])
def test_scaled_programs_have_no_violations(environment: str, preview: bool) -> None:
    aws = synth(full(AWS_BASE, environment=environment, readReplicas="2", pooler="managed"), preview=preview)
    gcp = synth(
        full(GCP_BASE, environment=environment, readReplicas="2", pooler="managed", **GCP_PLUS), preview=preview
    )
    assert len([r for r in aws.of_type(RDS) if r.input("replicateSourceDb")]) == 2
    assert len([r for r in gcp.of_type(SQL) if r.input("masterInstanceName")]) == 2
    assert run_pack(aws).violations == []
    assert run_pack(gcp).violations == []


@pytest.fixture(scope="module")
def aws_prod() -> Synthesis:
    return synth(full(AWS_BASE, environment="production", readReplicas="1"), stack="prod")


def test_an_rds_replica_is_judged_like_the_primary(aws_prod: Synthesis) -> None:
    [replica] = [r for r in aws_prod.of_type(RDS) if r.input("replicateSourceDb")]
    assert reported(RDS, plain(dict(replica.inputs))) == {}
    assert list(reported(RDS, broken(replica, publiclyAccessible=True))) == ["rds-not-public"]
    assert list(reported(RDS, broken(replica, storageEncrypted=DELETE))) == ["rds-encrypted"]
    assert list(reported(RDS, broken(replica, deletionProtection=False))) == ["rds-production-protection"]
    assert list(reported(RDS, broken(replica, autoMinorVersionUpgrade=False))) == ["rds-postgres16-major-only"]
    # The one exemption: a replica takes no backups, engine or version of its own. Without its
    # source the same inputs are a primary that lacks all three.
    orphan = reported(RDS, broken(replica, replicateSourceDb=DELETE))
    assert {"rds-backups", "rds-postgres16-major-only", "rds-admin-not-postgres"} <= set(orphan)


def test_a_cloud_sql_replica_is_judged_like_the_primary() -> None:
    result = synth(full(GCP_BASE, readReplicas="1"))
    [replica] = [r for r in result.of_type(SQL) if r.input("masterInstanceName")]
    assert reported(SQL, plain(dict(replica.inputs))) == {}
    ip = "settings__ipConfiguration__"
    assert list(reported(SQL, broken(replica, **{f"{ip}ipv4Enabled": True}))) == ["cloudsql-private-only"]
    assert list(reported(SQL, broken(replica, **{f"{ip}sslMode": "ALLOW_UNENCRYPTED_AND_ENCRYPTED"}))) == [
        "cloudsql-ssl-enforced"
    ]
    assert list(reported(SQL, broken(replica, settings__databaseFlags=[]))) == ["cloudsql-pgaudit"]
    # Backups are the primary's; a replica that stops being one must have its own.
    assert list(reported(SQL, broken(replica, masterInstanceName=DELETE))) == ["cloudsql-backups-pitr"]
