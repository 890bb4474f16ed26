"""Wait until the SSM bastion is a managed node that is Online, before a session is started.

On a first deploy the instance exists minutes before its SSM Agent has registered through the
VPC endpoints; ``start-session`` then fails with ``TargetNotConnected`` (botocore ssm model,
StartSession errors). ``DescribeInstanceInformation`` reports ``PingStatus``
(Online | ConnectionLost | Inactive) once the agent has registered; there is no boto3 waiter for
it, so it is polled. The caller needs ``ssm:DescribeInstanceInformation``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from infra.errors import TunnelError

__all__ = ["ONLINE", "wait_until_online"]

_log = logging.getLogger(__name__)

ONLINE = "Online"
DEFAULT_TIMEOUT = 600.0  # a fresh instance registers within a few minutes
DEFAULT_INTERVAL = 10.0


def wait_until_online(
    instance_id: str,
    region: str,
    *,
    profile: str | None = None,
    client: Any | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Return once ``instance_id`` is Online in Systems Manager; TunnelError after ``timeout`` seconds.

    ``client`` may be injected (tests use botocore's Stubber); ``sleep``/``clock`` too.
    """
    if client is None:
        import boto3

        client = boto3.session.Session(profile_name=profile, region_name=region).client("ssm")
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = clock() + timeout
    while True:
        try:
            response = client.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise TunnelError(f"cannot read the SSM status of bastion {instance_id!r} ({code})") from None
        except BotoCoreError as exc:
            raise TunnelError(f"cannot read the SSM status of bastion {instance_id!r}: {exc}") from None
        nodes = response.get("InstanceInformationList") or []
        status = nodes[0].get("PingStatus") if nodes else None
        if status == ONLINE:
            return
        if clock() >= deadline:
            raise TunnelError(
                f"bastion {instance_id!r} is not Online in SSM after {timeout:.0f}s "
                f"(status: {status or 'not registered'}); check its instance profile "
                "(AmazonSSMManagedInstanceCore) and the VPC's ssm, ssmmessages and ec2messages endpoints"
            )
        _log.info("waiting for bastion %s to be Online in SSM (now: %s)", instance_id, status or "not registered")
        sleep(interval)
