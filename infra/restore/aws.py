"""AWS: an RDS point-in-time restore into a temporary instance beside the source, then its deletion.

The API facts, from botocore's RDS service model (``botocore/data/rds/2014-10-31/service-2.json``,
botocore 1.43.127) and waiter model (``waiters-2.json``):

- ``RestoreDBInstanceToPointInTime``: only ``TargetDBInstanceIdentifier`` is required;
  ``RestoreTime`` ("must be before the latest restorable time") or ``UseLatestRestorableTime``,
  never both. There is no ``KmsKeyId`` member: an encrypted source restores with the source's KMS
  key. ``DBSubnetGroupName`` / ``VpcSecurityGroupIds`` place the copy (default: the default VPC
  security group), ``DBParameterGroupName`` defaults to the engine's default group,
  ``DeletionProtection`` defaults to off, ``ManageMasterUserPassword`` "applies to RDS for Oracle
  only" (the copy's admin password is the one in the backup). Faults include
  ``PointInTimeRestoreNotEnabled`` ("a DB instance with BackupRetentionPeriod equal to 0").
- ``DescribeDBInstances``: ``LatestRestorableTime`` ("the latest time to which a database in this
  DB instance can be restored"), absent until the first automated backup exists;
  ``DescribeDBInstanceAutomatedBackups``: ``RestoreWindow.EarliestTime``.
- Waiter ``DBInstanceAvailable``: ``DescribeDBInstances`` every 30 s, 60 attempts, success when
  ``available``, failure on ``deleted``, ``deleting``, ``failed``, ``incompatible-restore``,
  ``incompatible-parameters``.
- ``DeleteDBInstance``: ``SkipFinalSnapshot``, ``DeleteAutomatedBackups``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from infra.contract import RdsInstance
from infra.errors import RestoreError
from infra.postdeploy.verify import Check
from infra.restore.restorer import CopyEndpoint
from infra.restore.window import RestoreWindow

__all__ = ["RdsRestore"]

_log = logging.getLogger(__name__)


def _code(exc: Exception) -> str:
    response: Mapping[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Code", type(exc).__name__))


def _message(exc: Exception) -> str:
    response: Mapping[str, Any] = getattr(exc, "response", {}) or {}
    return str(response.get("Error", {}).get("Message", "")).splitlines()[0][:300] if response else ""


class RdsRestore:
    """Point-in-time copies of one RDS instance (the stack's ``db_instance`` output)."""

    platform = "aws"

    def __init__(
        self,
        instance: RdsInstance,
        *,
        ca_identifier: str | None = None,
        client: Any = None,
        profile: str | None = None,
        wait_delay: int = 30,
        wait_attempts: int = 120,
    ) -> None:
        self.instance = instance
        self.source = instance.identifier
        self.ca_identifier = ca_identifier
        self._client = client
        self._profile = profile
        self.wait_delay = wait_delay
        self.wait_attempts = wait_attempts
        self._source_kms: str | None = None

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            session = boto3.session.Session(profile_name=self._profile, region_name=self.instance.region)
            self._client = session.client("rds")
        return self._client

    def copy_name(self, started_at: dt.datetime) -> str:
        # 1-63 letters, digits or hyphens, starting with a letter, no "--", no trailing "-"
        suffix = f"-drill-{started_at:%Y%m%d%H%M}"
        return (self.source[: 63 - len(suffix)].rstrip("-") + suffix).replace("--", "-")

    def window(self) -> RestoreWindow:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            found = self.client.describe_db_instances(DBInstanceIdentifier=self.source)["DBInstances"]
        except ClientError as exc:
            if _code(exc) == "DBInstanceNotFound":
                raise RestoreError(
                    f"rds instance {self.source!r} not found in {self.instance.region}; "
                    "check the stack and --aws-profile"
                ) from None
            raise RestoreError(f"cannot describe rds instance {self.source!r}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise RestoreError(f"cannot reach the rds api: {type(exc).__name__}") from None
        source = found[0]
        if not source.get("BackupRetentionPeriod"):
            raise RestoreError(
                f"point-in-time recovery is off for {self.source!r} (backup retention 0 days); "
                "set backupRetentionDays and run `pulumi up`"
            )
        newest = source.get("LatestRestorableTime")
        if newest is None:
            raise RestoreError(
                f"no backup of {self.source!r} yet: rds has no restorable time until its first automated backup "
                "completes; retry after the backup window"
            )
        self._source_kms = source.get("KmsKeyId")
        earliest: dt.datetime | None = None
        try:
            backups = self.client.describe_db_instance_automated_backups(DBInstanceIdentifier=self.source)
        except ClientError as exc:
            _log.warning("no restore window start for %s: %s", self.source, _code(exc))
        else:
            times = [
                b["RestoreWindow"]["EarliestTime"]
                for b in backups.get("DBInstanceAutomatedBackups", [])
                if b.get("RestoreWindow", {}).get("EarliestTime")
            ]
            earliest = min(times) if times else None
        return RestoreWindow(earliest, newest)

    def restore(self, copy: str, when: dt.datetime | None, tags: Mapping[str, str]) -> None:
        from botocore.exceptions import ClientError

        request: dict[str, Any] = {
            "SourceDBInstanceIdentifier": self.source,
            "TargetDBInstanceIdentifier": copy,
            "DBSubnetGroupName": self.instance.subnet_group,  # the stack's private subnets
            "VpcSecurityGroupIds": list(self.instance.security_group_ids),  # reachable from the bastion only
            "DBParameterGroupName": self.instance.parameter_group,  # rds.force_ssl=1, as on the source
            "PubliclyAccessible": False,  # FSBP RDS.2, like the source
            "DeletionProtection": False,  # a drill copy must be deletable by the drill
            "MultiAZ": False,  # a copy for verification needs no standby
            "EnableIAMDatabaseAuthentication": True,  # FSBP RDS.10, like the source
            # No automated backups of a copy that lives for minutes, and no log exports: RDS would
            # create the copy's log groups itself, with no retention, and leave them behind.
            "BackupRetentionPeriod": 0,
            "CopyTagsToSnapshot": True,
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }
        if self.ca_identifier:
            request["CACertificateIdentifier"] = self.ca_identifier  # the CA bundle verify-full trusts
        if when is None:
            request["UseLatestRestorableTime"] = True
        else:
            request["RestoreTime"] = when
        _log.info("restoring %s to %s as %s", self.source, when.isoformat() if when else "latest", copy)
        try:
            self.client.restore_db_instance_to_point_in_time(**request)
        except ClientError as exc:
            code = _code(exc)
            if code == "PointInTimeRestoreNotEnabled":
                raise RestoreError(
                    f"point-in-time recovery is off for {self.source!r} (backup retention 0 days); "
                    "set backupRetentionDays and run `pulumi up`"
                ) from None
            if code in ("InvalidParameterValue", "InvalidParameterCombination") and when is not None:
                raise RestoreError(
                    f"rds refused the restore time {when.isoformat()}: {_message(exc)}; pick a time inside the window"
                ) from None
            raise RestoreError(f"rds refused the restore of {self.source!r}: {code}: {_message(exc)}") from None

    def wait(self, copy: str) -> CopyEndpoint:
        from botocore.exceptions import ClientError, WaiterError

        timeout = self.wait_delay * self.wait_attempts
        try:
            self.client.get_waiter("db_instance_available").wait(
                DBInstanceIdentifier=copy, WaiterConfig={"Delay": self.wait_delay, "MaxAttempts": self.wait_attempts}
            )
        except WaiterError as exc:
            last = getattr(exc, "last_response", {}) or {}
            status = next((i.get("DBInstanceStatus") for i in last.get("DBInstances", [])), None)
            raise RestoreError(
                f"restored instance {copy!r} did not become available within {timeout // 60} min "
                f"({self.wait_attempts} polls every {self.wait_delay}s; last status {status or 'unknown'})"
            ) from None
        try:
            found = self.client.describe_db_instances(DBInstanceIdentifier=copy)["DBInstances"][0]
        except ClientError as exc:
            raise RestoreError(f"cannot describe restored instance {copy!r}: {_code(exc)}") from None
        endpoint = found.get("Endpoint") or {}
        address = endpoint.get("Address")
        if not address:
            raise RestoreError(f"restored instance {copy!r} is available but has no endpoint")
        return CopyEndpoint(
            name=copy,
            address=address,
            tls_name=address,  # the RDS server certificate names the instance endpoint
            port=int(endpoint.get("Port") or 5432),
            placement=self._placement(found),
        )

    def _placement(self, found: Mapping[str, Any]) -> Check:
        """Where and how the copy runs, as described by RDS: the issue's conditions, checked."""
        groups = sorted(g.get("VpcSecurityGroupId", "") for g in found.get("VpcSecurityGroups", []))
        facts = {
            "not public": found.get("PubliclyAccessible") is False,
            "no deletion protection": found.get("DeletionProtection") is False,
            "encrypted with the source's key": bool(found.get("StorageEncrypted"))
            and found.get("KmsKeyId") == self._source_kms,
            "in the stack's subnet group": (found.get("DBSubnetGroup") or {}).get("DBSubnetGroupName")
            == self.instance.subnet_group,
            "in the stack's security groups": groups == sorted(self.instance.security_group_ids),
        }
        failed = [name for name, ok in facts.items() if not ok]
        detail = ", ".join(facts) if not failed else "expected but not found: " + ", ".join(failed)
        return Check("placement", not failed, detail)

    def delete(self, copy: str) -> str:
        from botocore.exceptions import ClientError

        try:
            self.client.delete_db_instance(
                DBInstanceIdentifier=copy, SkipFinalSnapshot=True, DeleteAutomatedBackups=True
            )
        except ClientError as exc:
            if _code(exc) == "DBInstanceNotFound":
                return "not created"
            raise RestoreError(
                f"could not delete the drill copy {copy!r}: {_code(exc)}; delete it by hand "
                f"(aws rds delete-db-instance --db-instance-identifier {copy} --skip-final-snapshot)"
            ) from None
        return "deleting"
