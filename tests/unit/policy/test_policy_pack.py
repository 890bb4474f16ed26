"""The policy pack as the engine drives it: the real ``pulumi_policy`` analyzer server, started the
way the CLI starts a Python pack (``python -m pulumi.policy <engine> <pack dir>`` in the pack's own
virtualenv), spoken to over the analyzer gRPC protocol with the program's recorded inputs.

This checks what the rule tests cannot: the wiring in ``policy/__main__.py``, the enforcement
level and config schema the CLI sees, that the engine's camelCase properties reach the rules
unchanged, and that an unknown value in preview is an advisory note, not a violation.

The pack needs its own venv (pulumi-policy pins protobuf 5.29, the program's venv has 6.x):
``python3.11 -m venv policy/venv && policy/venv/bin/pip install -r policy/requirements.txt``
(the same venv ``pulumi preview --policy-pack policy`` creates). Without it the tests skip
locally and fail in CI.
"""

from __future__ import annotations

import dataclasses
import os
import select
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.provision.recording import UNKNOWN, RecordedResource, Synthesis
from policy.rules import RULES, STACK_RULES
from tests.fixtures.requirements import missing
from tests.fixtures.stack import AWS_BASE, GCP_BASE, full, synth

ROOT = Path(__file__).resolve().parents[3]
PACK = ROOT / "policy"
PACK_PYTHON = PACK / "venv" / "bin" / "python"
MANDATORY = analyzer_pb2.EnforcementLevel.MANDATORY
ADVISORY = analyzer_pb2.EnforcementLevel.ADVISORY
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0mZ9Q1bq7i8zjYb5rQx5gkY2u9d0tY0d5b0jZ3QyW ops@example"


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    if not PACK_PYTHON.exists():
        missing(
            "policy/venv (python3.11 -m venv policy/venv && policy/venv/bin/pip install -r policy/requirements.txt)"
        )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # The engine address is not used by a policy pack; the CLI passes one, so do we.
    proc = subprocess.Popen(
        [str(PACK_PYTHON), "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(PACK)],
        cwd=PACK,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline().decode().strip() if ready else ""
        if not line.isdigit():
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"policy pack did not start (stdout {line!r}): {err.decode()[-2000:]}")
        with grpc.insecure_channel(f"127.0.0.1:{line}") as channel:
            grpc.channel_ready_future(channel).result(timeout=30)
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def analyze(
    stub: analyzer_pb2_grpc.AnalyzerStub, type_: str, inputs: Mapping[str, Any], name: str = "r"
) -> list[analyzer_pb2.AnalyzeDiagnostic]:
    properties = struct_pb2.Struct()
    json_format.ParseDict(dict(inputs), properties)
    request = analyzer_pb2.AnalyzeRequest(
        type=type_,
        properties=properties,
        urn=f"urn:pulumi:dev::private-postgres::{type_}::{name}",
        name=name,
        options=analyzer_pb2.AnalyzerResourceOptions(),
    )
    return list(stub.Analyze(request, timeout=30).diagnostics)


def analyze_all(stub: analyzer_pb2_grpc.AnalyzerStub, result: Synthesis) -> list[tuple[str, str, int, str]]:
    return [
        (r.name, d.policyName, d.enforcementLevel, d.message)
        for r in result.resources
        for d in analyze(stub, r.type, r.inputs, r.name)
    ]


def configure(stub: analyzer_pb2_grpc.AnalyzerStub, config: Mapping[str, Mapping[str, Any]]) -> None:
    request = analyzer_pb2.ConfigureAnalyzerRequest()
    for policy, properties in config.items():
        entry = request.policyConfig[policy]
        entry.enforcementLevel = MANDATORY
        json_format.ParseDict(dict(properties), entry.properties)
    stub.Configure(request, timeout=30)


def test_the_cli_sees_every_rule_as_a_mandatory_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "private-postgres-security"
    assert info.supportsConfig
    policies = {p.name: p for p in info.policies}
    assert list(policies) == [rule.name for rule in RULES] + [rule.name for rule in STACK_RULES]
    described = [(rule.name, rule.description) for rule in RULES] + [(r.name, r.description) for r in STACK_RULES]
    for name, description in described:
        assert policies[name].description == description
        assert policies[name].enforcementLevel == MANDATORY
    schema = json_format.MessageToDict(policies["firewall-ssh-only-from-iap"].configSchema.properties)
    assert schema["extraSshSourceRanges"]["type"] == "array"


@pytest.mark.parametrize(
    ("base", "environment"),
    [(AWS_BASE, "dev"), (AWS_BASE, "production"), (GCP_BASE, "dev"), (GCP_BASE, "production")],
    ids=["aws-dev", "aws-production", "gcp-dev", "gcp-production"],
)
def test_the_program_passes_the_running_pack(
    analyzer: analyzer_pb2_grpc.AnalyzerStub, base: Mapping[str, str], environment: str
) -> None:
    result = synth(full(base, environment=environment), stack=environment)
    assert analyze_all(analyzer, result) == []


def _rds(result: Synthesis) -> RecordedResource:
    return result.one("aws:rds/instance:Instance")


def test_a_public_database_is_a_mandatory_violation_naming_the_control(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    rds = _rds(synth(AWS_BASE))
    diagnostics = analyze(analyzer, rds.type, {**rds.inputs, "publiclyAccessible": True})
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [("rds-not-public", MANDATORY)]
    # The SDK sends the policy's description, a newline, then the rule's message.
    description, message = diagnostics[0].message.split("\n", 1)
    assert description == diagnostics[0].description
    assert message.startswith("FSBP RDS.2: publiclyAccessible is True")
    assert diagnostics[0].policyPackName == "private-postgres-security"


def test_ssh_from_anywhere_is_refused(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    rule = synth(AWS_BASE).named("private-postgres-dev-net-endpoints-https")
    bad = {**rule.inputs, "cidrIpv4": "0.0.0.0/0", "fromPort": 22, "toPort": 22}
    diagnostics = analyze(analyzer, rule.type, bad)
    assert [d.policyName for d in diagnostics] == ["no-ssh-from-anywhere"]
    assert "FSBP EC2.13" in diagnostics[0].message


def test_an_unknown_value_in_preview_is_advisory_not_a_violation(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    secret = synth(AWS_BASE, preview=True).of_type("aws:secretsmanager/secret:Secret")[0]
    assert secret.inputs["kmsKeyId"] == UNKNOWN  # the key's ARN is known after apply
    diagnostics = analyze(analyzer, secret.type, secret.inputs)
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [("secrets-kms", ADVISORY)]
    assert "can't be known during preview" in diagnostics[0].message


def test_gcp_ssh_mode_passes_once_its_ranges_are_configured(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    result = synth(
        full(GCP_BASE, bastionMode="ssh", sshAllowedCidrs='["203.0.113.0/28"]', sshPublicKey=SSH_KEY),
    )
    before = analyze_all(analyzer, result)
    assert {(policy, level) for _, policy, level, _ in before} == {("firewall-ssh-only-from-iap", MANDATORY)}
    configure(analyzer, {"firewall-ssh-only-from-iap": {"extraSshSourceRanges": ["203.0.113.0/28"]}})
    try:
        assert analyze_all(analyzer, result) == []
    finally:
        configure(analyzer, {})  # module-scoped server: leave it as the other tests expect


def analyze_stack(stub: analyzer_pb2_grpc.AnalyzerStub, resources: list[RecordedResource]) -> list[str]:
    request = analyzer_pb2.AnalyzeStackRequest()
    for r in resources:
        properties = struct_pb2.Struct()
        json_format.ParseDict(dict(r.inputs), properties)
        request.resources.append(
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=properties,
                urn=r.urn,
                name=r.name,
                options=analyzer_pb2.AnalyzerResourceOptions(),
            )
        )
    return [d.policyName for d in stub.AnalyzeStack(request, timeout=30).diagnostics]


def test_the_stack_policy_adds_up_ssh_sources_across_rule_resources(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    result = synth(full(AWS_BASE, bastionMode="ssh", sshAllowedCidrs='["203.0.113.0/28"]', sshPublicKey=SSH_KEY))
    assert analyze_stack(analyzer, result.resources) == []
    rule = result.named("private-postgres-dev-net-bastion-ssh-0")
    # AWS declares one rule per CIDR: five /26 rules on the bastion's group open 320 addresses together
    wider = [
        dataclasses.replace(
            rule, name=f"extra-{i}", urn=f"{rule.urn}-{i}", inputs={**rule.inputs, "cidrIpv4": f"198.51.{i}.0/26"}
        )
        for i in range(5)
    ]
    assert analyze_stack(analyzer, [*result.resources, *wider]) == ["ssh-address-space"]
