"""Item 12: the SSM tunnel starts only once the bastion is a managed node that is Online.

DescribeInstanceInformation through botocore's Stubber (the real client, its request validation
and its error parsing); the clock and the sleep are injected, so no test waits.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from infra.contract import StackOutputs
from infra.enums import Cloud
from infra.errors import ToolMissing, TunnelError
from infra.postdeploy.run import Deployment, audit_extensions
from infra.postdeploy.ssm import wait_until_online
from infra.postdeploy.tunnel import SsmTunnel, tunnel_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"
INSTANCE = "i-0123456789abcdef0"
FILTER = {"Filters": [{"Key": "InstanceIds", "Values": [INSTANCE]}]}


@pytest.fixture
def ssm() -> Any:
    return boto3.client("ssm", region_name="eu-west-1", aws_access_key_id="t", aws_secret_access_key="t")


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _status(status: str | None) -> dict[str, Any]:
    nodes = [] if status is None else [{"InstanceId": INSTANCE, "PingStatus": status}]
    return {"InstanceInformationList": nodes}


def test_it_polls_until_the_agent_has_registered_and_is_online(ssm: Any) -> None:
    clock = _Clock()
    with Stubber(ssm) as stub:
        for status in (None, "ConnectionLost", "Online"):
            stub.add_response("describe_instance_information", _status(status), FILTER)
        wait_until_online(INSTANCE, "eu-west-1", client=ssm, sleep=clock.sleep, clock=clock, interval=10)
        stub.assert_no_pending_responses()
    assert clock.sleeps == [10, 10]


def test_a_bastion_that_never_comes_online_is_one_clear_error(ssm: Any) -> None:
    clock = _Clock()
    with Stubber(ssm) as stub:
        for _ in range(4):
            stub.add_response("describe_instance_information", _status("Inactive"), FILTER)
        with pytest.raises(TunnelError) as info:
            wait_until_online(
                INSTANCE, "eu-west-1", client=ssm, sleep=clock.sleep, clock=clock, timeout=30, interval=10
            )
    message = str(info.value)
    assert "not Online in SSM after 30s (status: Inactive)" in message
    assert "AmazonSSMManagedInstanceCore" in message
    assert "\n" not in message


def test_a_denied_status_call_names_the_code_not_the_response(ssm: Any) -> None:
    with Stubber(ssm) as stub:
        stub.add_client_error("describe_instance_information", "AccessDeniedException", "not allowed", 400)
        with pytest.raises(
            TunnelError, match=r"cannot read the SSM status of bastion 'i-0123456789abcdef0' \(AccessDeniedException\)"
        ):
            wait_until_online(INSTANCE, "eu-west-1", client=ssm)


def test_the_tunnel_waits_for_the_agent_after_the_tool_check_and_before_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    tunnel = SsmTunnel(INSTANCE, "eu-west-1", "db.internal", 5432, agent_online=lambda: calls.append("online"))
    with pytest.raises(ToolMissing):
        tunnel.open(timeout=1)  # no aws CLI: reported before any waiting
    assert calls == []

    for name, body in (("aws", "#!/bin/sh\nexit 3\n"), ("session-manager-plugin", "#!/bin/sh\nexit 0\n")):
        (bindir / name).write_text(body)
        (bindir / name).chmod(0o755)

    def offline() -> None:
        calls.append("online")
        raise TunnelError("bastion is not Online in SSM")

    tunnel = SsmTunnel(INSTANCE, "eu-west-1", "db.internal", 5432, agent_online=offline)
    with pytest.raises(TunnelError, match="not Online"):
        tunnel.open(timeout=1)
    assert calls == ["online"]
    assert tunnel.pid is None  # no session was started


def test_tunnel_for_an_ssm_stack_waits_for_that_instance_in_its_region() -> None:
    outputs = StackOutputs.parse(json.loads((FIXTURES / "aws-dev.json").read_text()))
    tunnel = tunnel_for(outputs, aws_profile="ops")
    assert isinstance(tunnel, SsmTunnel)
    wait = tunnel.agent_online
    assert isinstance(wait, functools.partial)
    assert wait.func is wait_until_online
    assert (wait.args, wait.keywords) == ((outputs.bastion.target, "eu-west-1"), {"profile": "ops"})


@pytest.mark.parametrize(("cloud", "extensions"), [(Cloud.GCP, ("pgaudit",)), (Cloud.AWS, ())])
def test_item_6_gcp_deployments_create_pgaudit_in_the_bootstrap(cloud: Cloud, extensions: tuple[str, ...]) -> None:
    name = "gcp-dev.json" if cloud is Cloud.GCP else "aws-dev.json"
    outputs = StackOutputs.parse(json.loads((FIXTURES / name).read_text()))
    assert Deployment.of("dev", outputs).extensions == audit_extensions(cloud) == extensions
