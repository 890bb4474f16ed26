"""The RDS side of the drill against botocore's own RDS model, through ``botocore.stub.Stubber``:
every request is validated against the service model (an unknown parameter, such as a
``KmsKeyId`` that RestoreDBInstanceToPointInTime does not have, fails the test)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.contract import RdsInstance
from infra.errors import RestoreError
from infra.restore.aws import RdsRestore

INSTANCE = RdsInstance(
    identifier="pp-dev-pg",
    region="eu-west-1",
    subnet_group="pp-dev-db-subnets-6d1618b",
    security_group_ids=("sg-0123456789abcdef0",),
    parameter_group="pp-dev-db-params-0b2b958",
)
KMS = "arn:aws:kms:eu-west-1:123456789012:key/1111aaaa-2222-bbbb-3333-cccc4444dddd"
NEWEST = dt.datetime(2026, 11, 30, 12, 55, tzinfo=dt.UTC)
EARLIEST = dt.datetime(2026, 10, 31, 3, 10, tzinfo=dt.UTC)
COPY = "pp-dev-pg-drill-202611301300"


@pytest.fixture
def rds() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.session.Session(
        aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="example", region_name="eu-west-1"
    ).client("rds")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _source(**overrides: Any) -> dict[str, Any]:
    return {
        "DBInstanceIdentifier": "pp-dev-pg",
        "DBInstanceStatus": "available",
        "BackupRetentionPeriod": 30,
        "LatestRestorableTime": NEWEST,
        "StorageEncrypted": True,
        "KmsKeyId": KMS,
        **overrides,
    }


def _copy(status: str = "available", **overrides: Any) -> dict[str, Any]:
    return {
        "DBInstanceIdentifier": COPY,
        "DBInstanceStatus": status,
        "Endpoint": {"Address": f"{COPY}.cabc123def45.eu-west-1.rds.amazonaws.com", "Port": 5432},
        "PubliclyAccessible": False,
        "DeletionProtection": False,
        "StorageEncrypted": True,
        "KmsKeyId": KMS,
        "DBSubnetGroup": {"DBSubnetGroupName": INSTANCE.subnet_group},
        "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-0123456789abcdef0", "Status": "active"}],
        **overrides,
    }


def _window(stub: Stubber, **source: Any) -> None:
    stub.add_response(
        "describe_db_instances", {"DBInstances": [_source(**source)]}, {"DBInstanceIdentifier": "pp-dev-pg"}
    )
    stub.add_response(
        "describe_db_instance_automated_backups",
        {"DBInstanceAutomatedBackups": [{"RestoreWindow": {"EarliestTime": EARLIEST, "LatestTime": NEWEST}}]},
        {"DBInstanceIdentifier": "pp-dev-pg"},
    )


def test_the_window_comes_from_rds(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    _window(stub)
    window = RdsRestore(INSTANCE, client=client).window()
    assert (window.earliest, window.newest) == (EARLIEST, NEWEST)


def test_no_restorable_time_yet_is_no_backup_yet(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    source = _source()
    del source["LatestRestorableTime"]
    stub.add_response("describe_db_instances", {"DBInstances": [source]})
    with pytest.raises(RestoreError, match=r"^no backup of 'pp-dev-pg' yet: .*retry after the backup window$"):
        RdsRestore(INSTANCE, client=client).window()


def test_retention_zero_is_pitr_off(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    stub.add_response("describe_db_instances", {"DBInstances": [_source(BackupRetentionPeriod=0)]})
    with pytest.raises(RestoreError, match=r"point-in-time recovery is off for 'pp-dev-pg'.*backupRetentionDays"):
        RdsRestore(INSTANCE, client=client).window()


def test_the_copy_goes_into_the_stacks_private_subnets_and_sg_not_public_deletable_tagged(
    rds: tuple[Any, Stubber],
) -> None:
    client, stub = rds
    when = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
    stub.add_response(
        "restore_db_instance_to_point_in_time",
        {"DBInstance": _copy("creating")},
        {
            "SourceDBInstanceIdentifier": "pp-dev-pg",
            "TargetDBInstanceIdentifier": COPY,
            "RestoreTime": when,
            "DBSubnetGroupName": INSTANCE.subnet_group,
            "VpcSecurityGroupIds": ["sg-0123456789abcdef0"],
            "DBParameterGroupName": INSTANCE.parameter_group,
            "PubliclyAccessible": False,
            "DeletionProtection": False,
            "MultiAZ": False,
            "EnableIAMDatabaseAuthentication": True,
            "BackupRetentionPeriod": 0,
            "CopyTagsToSnapshot": True,
            "CACertificateIdentifier": "rds-ca-rsa2048-g1",
            "Tags": [{"Key": "purpose", "Value": "restore-drill"}, {"Key": "stack", "Value": "dev"}],
        },
    )
    restorer = RdsRestore(INSTANCE, client=client, ca_identifier="rds-ca-rsa2048-g1")
    restorer.restore(COPY, when, {"stack": "dev", "purpose": "restore-drill"})


def test_latest_asks_rds_for_its_latest_restorable_time(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    stub.add_response(
        "restore_db_instance_to_point_in_time",
        {"DBInstance": _copy("creating")},
        {
            "SourceDBInstanceIdentifier": "pp-dev-pg",
            "TargetDBInstanceIdentifier": COPY,
            "UseLatestRestorableTime": True,
            "DBSubnetGroupName": INSTANCE.subnet_group,
            "VpcSecurityGroupIds": ["sg-0123456789abcdef0"],
            "DBParameterGroupName": INSTANCE.parameter_group,
            "PubliclyAccessible": False,
            "DeletionProtection": False,
            "MultiAZ": False,
            "EnableIAMDatabaseAuthentication": True,
            "BackupRetentionPeriod": 0,
            "CopyTagsToSnapshot": True,
            "Tags": [],
        },
    )
    RdsRestore(INSTANCE, client=client).restore(COPY, None, {})


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("PointInTimeRestoreNotEnabled", "point-in-time recovery is off for 'pp-dev-pg'"),
        (
            "InvalidParameterValue",
            r"rds refused the restore time 2026-11-30T12:00:00\+00:00: no; pick a time inside the window",
        ),
        ("DBInstanceAlreadyExists", "rds refused the restore of 'pp-dev-pg': DBInstanceAlreadyExists"),
    ],
)
def test_a_refused_restore_is_one_line(rds: tuple[Any, Stubber], code: str, message: str) -> None:
    client, stub = rds
    stub.add_client_error("restore_db_instance_to_point_in_time", service_error_code=code, service_message="no")
    with pytest.raises(RestoreError, match=message) as info:
        RdsRestore(INSTANCE, client=client).restore(COPY, dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC), {})
    assert "\n" not in str(info.value)


def test_an_available_copy_is_described_and_its_placement_checked(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    _window(stub)
    stub.add_response("describe_db_instances", {"DBInstances": [_copy("available")]}, {"DBInstanceIdentifier": COPY})
    stub.add_response("describe_db_instances", {"DBInstances": [_copy("available")]}, {"DBInstanceIdentifier": COPY})
    restorer = RdsRestore(INSTANCE, client=client, wait_delay=0, wait_attempts=2)
    restorer.window()  # learns the source's KMS key
    endpoint = restorer.wait(COPY)
    assert endpoint.address == endpoint.tls_name == f"{COPY}.cabc123def45.eu-west-1.rds.amazonaws.com"
    assert endpoint.placement.ok, endpoint.placement.detail
    assert "encrypted with the source's key" in endpoint.placement.detail


def test_a_public_copy_with_another_key_fails_the_placement_check(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    _window(stub)
    wrong = _copy("available", PubliclyAccessible=True, KmsKeyId=KMS.replace("1111", "9999"))
    stub.add_response("describe_db_instances", {"DBInstances": [wrong]})
    stub.add_response("describe_db_instances", {"DBInstances": [wrong]})
    restorer = RdsRestore(INSTANCE, client=client, wait_delay=0, wait_attempts=1)
    restorer.window()
    placement = restorer.wait(COPY).placement
    assert not placement.ok
    assert placement.detail == "expected but not found: not public, encrypted with the source's key"


def test_a_copy_that_never_becomes_available_names_the_timeout_used(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    for _ in range(3):
        stub.add_response("describe_db_instances", {"DBInstances": [_copy("creating")]})
    restorer = RdsRestore(INSTANCE, client=client, wait_delay=0, wait_attempts=3)
    with pytest.raises(RestoreError) as info:
        restorer.wait(COPY)
    assert str(info.value) == (
        f"restored instance {COPY!r} did not become available within 0 min (3 polls every 0s; last status creating)"
    )


def test_a_failed_restore_stops_the_wait_with_its_status(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    stub.add_response("describe_db_instances", {"DBInstances": [_copy("incompatible-restore")]})
    restorer = RdsRestore(INSTANCE, client=client, wait_delay=0, wait_attempts=40)
    with pytest.raises(RestoreError, match="last status incompatible-restore"):
        restorer.wait(COPY)


def test_the_copy_is_deleted_without_a_final_snapshot_or_retained_backups(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    stub.add_response(
        "delete_db_instance",
        {"DBInstance": _copy("deleting")},
        {"DBInstanceIdentifier": COPY, "SkipFinalSnapshot": True, "DeleteAutomatedBackups": True},
    )
    assert RdsRestore(INSTANCE, client=client).delete(COPY) == "deleting"


def test_a_failed_delete_names_the_command_to_run(rds: tuple[Any, Stubber]) -> None:
    client, stub = rds
    stub.add_client_error("delete_db_instance", service_error_code="InvalidDBInstanceState")
    with pytest.raises(RestoreError, match=f"aws rds delete-db-instance --db-instance-identifier {COPY}"):
        RdsRestore(INSTANCE, client=client).delete(COPY)


def test_copy_names_fit_rds_identifier_rules() -> None:
    long = RdsInstance("p" * 63, "eu-west-1", "s", ("sg-1",), "g")
    name = RdsRestore(long).copy_name(dt.datetime(2026, 11, 30, 13, 0, tzinfo=dt.UTC))
    assert len(name) <= 63
    assert name.endswith("-drill-202611301300")
    assert RdsRestore(INSTANCE).copy_name(dt.datetime(2026, 11, 30, 13, 0, tzinfo=dt.UTC)) == COPY
