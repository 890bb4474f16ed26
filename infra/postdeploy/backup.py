"""Pre-migration snapshots for production stacks.

- AWS: ``rds.create_db_snapshot`` then the ``db_snapshot_available`` waiter. The instance
  identifier is the first label of the RDS endpoint (``<identifier>.<hash>.<region>.rds.amazonaws.com``).
- GCP: an on-demand backup with ``gcloud sql backups create`` (it waits for the operation). The
  Cloud SQL instance is the one whose DNS name is ``db_host`` (``gcloud sql instances list``).

The snapshot name is deterministic per run (stack, UTC time to the second) and returned so the
report can name it; restoring is a manual, documented step.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import subprocess
from typing import Any, Protocol

from infra.contract import SsmBastion, StackOutputs
from infra.enums import Cloud
from infra.errors import ContractError, InfraError, ToolMissing

__all__ = ["AwsSnapshotter", "GcpBackup", "Snapshotter", "snapshotter_for"]

_log = logging.getLogger(__name__)


class Snapshotter(Protocol):
    def create(self, label: str) -> str:
        """Take a snapshot, wait until it is usable, return its identifier."""
        ...


def _stamp(now: dt.datetime | None = None) -> str:
    return (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")


class AwsSnapshotter:
    def __init__(
        self,
        instance_id: str,
        *,
        client: Any = None,
        region: str | None = None,
        profile: str | None = None,
        wait_delay: int = 30,
        wait_attempts: int = 120,
    ) -> None:
        self._client = client  # created on first use: only production runs need it
        self._region = region
        self._profile = profile
        self.instance_id = instance_id
        self._wait = {"Delay": wait_delay, "MaxAttempts": wait_attempts}

    def create(self, label: str, now: dt.datetime | None = None) -> str:
        from botocore.exceptions import BotoCoreError, ClientError, WaiterError

        if self._client is None:
            import boto3

            session = boto3.session.Session(profile_name=self._profile, region_name=self._region)
            self._client = session.client("rds")
        snapshot_id = f"{label}-{_stamp(now)}"[:255]
        _log.info("creating rds snapshot %s of %s", snapshot_id, self.instance_id)
        try:
            self._client.create_db_snapshot(
                DBInstanceIdentifier=self.instance_id,
                DBSnapshotIdentifier=snapshot_id,
                Tags=[{"Key": "purpose", "Value": "pre-migration"}],
            )
            self._client.get_waiter("db_snapshot_available").wait(
                DBSnapshotIdentifier=snapshot_id, WaiterConfig=self._wait
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise InfraError(
                f"rds snapshot {snapshot_id!r} of {self.instance_id!r} failed: {code}; fix it or pass --skip-snapshot"
            ) from None
        except (WaiterError, BotoCoreError) as exc:
            raise InfraError(f"rds snapshot {snapshot_id!r} did not become available: {type(exc).__name__}") from None
        _log.info("rds snapshot %s available", snapshot_id)
        return snapshot_id


class GcpBackup:
    def __init__(self, project: str, *, db_host: str | None = None, instance: str | None = None) -> None:
        self.project = project
        self.db_host = db_host
        self.instance = instance

    def find_instance(self) -> str:
        """The instance whose private DNS name is ``db_host`` (the contract names the endpoint, not the instance)."""
        if self.instance is not None:
            return self.instance
        listing = subprocess.run(
            ["gcloud", "sql", "instances", "list", f"--project={self.project}", "--format=json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if listing.returncode != 0:
            raise InfraError(f"cannot list cloud sql instances in {self.project!r}; or pass --skip-snapshot")
        host = (self.db_host or "").rstrip(".")
        for item in json.loads(listing.stdout or "[]"):
            names = [item.get("dnsName", "")] + [d.get("name", "") for d in item.get("dnsNames", []) or []]
            if host and host in (n.rstrip(".") for n in names if n):
                self.instance = str(item["name"])
                return self.instance
        raise InfraError(
            f"no cloud sql instance in {self.project!r} has the dns name {host!r}; or pass --skip-snapshot"
        )

    def argv(self, label: str) -> list[str]:
        assert self.instance is not None
        return [
            "gcloud",
            "sql",
            "backups",
            "create",
            f"--instance={self.instance}",
            f"--project={self.project}",
            f"--description={label}",
        ]

    def create(self, label: str, now: dt.datetime | None = None) -> str:
        if shutil.which("gcloud") is None:
            raise ToolMissing("'gcloud' not found on PATH; install the Google Cloud CLI or pass --skip-snapshot")
        description = f"{label}-{_stamp(now)}"
        self.find_instance()
        result = subprocess.run(self.argv(description), capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or ["no detail"]
            raise InfraError(f"cloud sql backup of {self.instance!r} failed: {tail[0][:300]}; or pass --skip-snapshot")
        return description


def snapshotter_for(outputs: StackOutputs, *, aws_profile: str | None = None) -> Snapshotter:
    if outputs.cloud is Cloud.AWS:
        instance = outputs.db_host.split(".", 1)[0]  # <identifier>.<hash>.<region>.rds.amazonaws.com
        # the region: the bastion's (ssm mode) or the admin secret ARN's (arn:aws:secretsmanager:<region>:...)
        arn = outputs.db_admin_secret.split(":")
        region = outputs.bastion.region or (arn[3] if len(arn) > 3 and arn[0] == "arn" else None)
        return AwsSnapshotter(instance, region=region, profile=aws_profile)
    project = None if isinstance(outputs.bastion, SsmBastion) else outputs.bastion.project
    if project is None:
        raise ContractError(
            "stack output 'bastion.project' is needed for a cloud sql backup; set it or pass --skip-snapshot"
        )
    return GcpBackup(project, db_host=outputs.db_host)
