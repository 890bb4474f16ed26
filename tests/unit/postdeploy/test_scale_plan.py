"""A stack with replicas and a pooler, as post-deploy reads it (recorded `pulumi stack output --json`
documents): one tunnel through the bastion per endpoint, to the endpoint's host and port, and the CA
each endpoint's certificate chains to. No cloud, no secret store: the credentials are stubbed."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.contract import Endpoint
from infra.errors import ContractError
from infra.postdeploy import ca, stack
from infra.postdeploy.outputs import load_outputs_file
from infra.postdeploy.scale import ScaleReport
from infra.postdeploy.secrets import Credential, Credentials
from infra.postdeploy.tunnel import IapTunnel, SsmTunnel
from infra.postdeploy.verify import Check, VerifyResult

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Credentials stubbed; every CA download recorded and answered with a real PEM bundle."""
    fetched: list[str] = []
    pem = load_outputs_file(FIXTURES / "gcp-dev.json").db_ca.encode()

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return pem

    creds = Credentials(
        admin=Credential("pgadmin", "x"), users={r: Credential(r, "x") for r in ("migrator", "app", "readonly")}
    )
    monkeypatch.setattr(stack, "resolve_credentials", lambda outputs, resolver: creds)
    monkeypatch.setattr(stack, "resolver_for", lambda outputs, aws_profile=None: None)
    monkeypatch.setattr(stack, "snapshotter_for", lambda outputs, aws_profile=None: None)
    monkeypatch.setattr(ca, "_https_get", fetch)
    monkeypatch.setattr(ca, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return fetched


def test_aws_replicas_and_proxy_each_get_an_ssm_tunnel_and_their_ca(offline: list[str], tmp_path: Path) -> None:
    rds_ca = tmp_path / "rds.pem"
    rds_ca.write_bytes(load_outputs_file(FIXTURES / "gcp-dev.json").db_ca.encode())
    ctx = stack.stack_context("dev", outputs_file=FIXTURES / "aws-scale.json", ca_file=rds_ca)
    assert ctx.scale is not None
    hops = [*ctx.scale.replicas, ctx.scale.pooler]
    assert [h.name for h in hops if h] == ["replica-0", "replica-1", "pooler"]
    for hop, endpoint in zip(hops, [*ctx.outputs.db_read_endpoints, ctx.outputs.db_pooler], strict=True):
        assert hop is not None
        assert endpoint is not None
        assert isinstance(hop.tunnel, SsmTunnel)
        assert (hop.tunnel.remote_host, hop.tunnel.remote_port) == (endpoint.host, endpoint.port)
        assert hop.tunnel.target == ctx.outputs.bastion.target
        assert hop.tls_name == endpoint.host
    replica, _, pooler = hops
    assert replica is not None
    assert pooler is not None
    assert replica.ca_file == rds_ca  # the RDS CA, as for the primary
    assert pooler.ca_file.name == "AmazonRootCA1.pem"  # RDS Proxy's ACM chain
    assert offline == ["https://www.amazontrust.com/repository/AmazonRootCA1.pem"]
    assert len({h.tunnel.local_port for h in hops if h} | {ctx.tunnel.local_port}) == 4  # no port shared


def test_gcp_pooler_is_the_primarys_name_on_its_own_port_through_iap(offline: list[str]) -> None:
    ctx = stack.stack_context("gcp-dev", outputs_file=FIXTURES / "gcp-scale.json")
    assert ctx.scale is not None
    assert ctx.scale.pooler is not None
    assert isinstance(ctx.scale.pooler.tunnel, IapTunnel)
    assert (ctx.scale.pooler.tunnel.remote_host, ctx.scale.pooler.tunnel.remote_port) == (ctx.outputs.db_host, 6432)
    assert ctx.scale.pooler.ca_file.read_text() == ctx.outputs.db_ca  # same certificate as the primary
    [replica] = ctx.scale.replicas
    assert replica.ca_file.read_text() == ctx.outputs.db_read_endpoints[0].ca  # the replica's own CA list
    assert offline == []


def test_a_stack_without_scale_outputs_has_no_plan(offline: list[str]) -> None:
    assert stack.stack_context("gcp-dev", outputs_file=FIXTURES / "gcp-dev.json").scale is None


def test_an_unknown_ca_name_is_refused(tmp_path: Path) -> None:
    outputs = load_outputs_file(FIXTURES / "aws-scale.json")
    with pytest.raises(ContractError, match="names CA 'LetsEncrypt'; known: AmazonRootCA1"):
        ca.endpoint_ca_file(outputs, Endpoint("p.example", 5432, "LetsEncrypt"), cache_dir=tmp_path)


def test_the_report_fails_when_a_replica_did_not_replay() -> None:
    from infra.postdeploy.scale import PoolerCheck, ReplicaCheck

    good = VerifyResult((Check("tls", True, "ssl in use: True"),))
    late = ReplicaCheck("replica-0", "r0.example", "0010 x (run r, applied)", False, 300.0, 4096, good)
    report = ScaleReport((late,), PoolerCheck("pooler", "p.example", good))
    assert not report.ok
    assert "NOT replayed after 300s, lag 4096 bytes" in "\n".join(report.lines())
    assert report.to_json()["replicas"] == [
        {
            "name": "replica-0",
            "host": "r0.example",
            "replayed": False,
            "newest_ledger_row": "0010 x (run r, applied)",
            "waited_seconds": 300.0,
            "lag_bytes": 4096,
            "checks": [{"name": "tls", "ok": True, "detail": "ssl in use: True"}],
            "ok": False,
        }
    ]
