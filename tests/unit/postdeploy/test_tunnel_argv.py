"""SSM and IAP tunnels: their argv, readiness and errors, with fake ``aws`` / ``gcloud`` on PATH.

The fakes are real executables: one listens on the local port the tunnel asked for (as the
session-manager-plugin does once the session is up), another fails like the AWS CLI does.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import pytest

from infra.contract import IapBastion, StackOutputs
from infra.errors import ToolMissing, TunnelError
from infra.postdeploy.tunnel import IapTunnel, SshTunnel, SsmTunnel, tunnel_for

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"

# Listens on the port given in --parameters (ssm) or -L (iap), answers "ok", until killed.
_LISTENER = """#!{python}
import json, socket, sys
argv = sys.argv[1:]
open({log!r}, "a").write(json.dumps(argv) + "\\n")
if "--parameters" in argv:
    port = int(json.loads(argv[argv.index("--parameters") + 1])["localPortNumber"][0])
else:
    port = int(argv[argv.index("-L") + 1].split(":")[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen()
print("Waiting for connections...", flush=True)
while True:
    conn, _ = srv.accept()
    conn.sendall(b"ok")
    conn.close()
"""

_FAILING = """#!/bin/sh
echo "An error occurred (TargetNotConnected) when calling the StartSession operation: i-0abc is not connected." >&2
exit 254
"""


def _tool(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text(body)
    path.chmod(0o755)
    return path


@pytest.fixture
def fake_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty bin directory that is the whole PATH."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    monkeypatch.setenv("PATH", str(bindir))
    return bindir


def _listener(bindir: Path, name: str) -> Path:
    log = bindir.parent / f"{name}.argv"
    _tool(bindir, name, _LISTENER.format(python=sys.executable, log=str(log)))
    return log


def test_ssm_argv_uses_the_remote_host_document_and_no_secret() -> None:
    tunnel = SsmTunnel("i-0123456789abcdef0", "eu-west-1", "db.abc.eu-west-1.rds.amazonaws.com", 5432, local_port=6543)
    argv = tunnel.argv()
    assert argv[:5] == ["aws", "ssm", "start-session", "--target", "i-0123456789abcdef0"]
    assert argv[argv.index("--document-name") + 1] == "AWS-StartPortForwardingSessionToRemoteHost"
    assert json.loads(argv[argv.index("--parameters") + 1]) == {
        "host": ["db.abc.eu-west-1.rds.amazonaws.com"],
        "portNumber": ["5432"],
        "localPortNumber": ["6543"],
    }
    assert argv[argv.index("--region") + 1] == "eu-west-1"
    assert not any("password" in a.lower() for a in argv)


def test_iap_argv_forwards_through_iap_to_the_private_address() -> None:
    tunnel = IapTunnel("pg-bastion", "europe-west1-b", "acme-data-123", "10.20.0.3", 5432, local_port=6000)
    argv = tunnel.argv()
    assert argv[:4] == ["gcloud", "compute", "ssh", "pg-bastion"]
    assert "--tunnel-through-iap" in argv
    assert "--zone=europe-west1-b" in argv
    assert "--project=acme-data-123" in argv
    assert "--strict-host-key-checking=yes" in argv  # gcloud's own -o would win over ours
    ssh_part = argv[argv.index("--") + 1 :]
    assert ssh_part[:3] == ["-N", "-L", "127.0.0.1:6000:10.20.0.3:5432"]
    assert "ExitOnForwardFailure=yes" in ssh_part
    assert "StrictHostKeyChecking=yes" in ssh_part
    assert any(o.startswith("ServerAliveInterval=") for o in ssh_part)


def test_tunnel_for_picks_the_kind_from_the_outputs() -> None:
    aws = StackOutputs.parse(json.loads((FIXTURES / "aws-dev.json").read_text()))
    gcp = StackOutputs.parse(json.loads((FIXTURES / "gcp-dev.json").read_text()))
    ssm = tunnel_for(aws)
    assert isinstance(ssm, SsmTunnel)
    assert ssm.target == aws.bastion.target
    assert ssm.remote_host == aws.db_host
    iap = tunnel_for(gcp)
    assert isinstance(iap, IapTunnel)
    assert gcp.bastion == IapBastion(
        target="private-postgres-gcp-dev-bastion", zone="europe-west1-b", project="acme-data-123", region="europe-west1"
    )
    assert (iap.zone, iap.project, iap.remote_host) == ("europe-west1-b", "acme-data-123", gcp.db_host)
    ssh_doc = {**aws.to_json(), "bastion": {"mode": "ssh", "target": "i-1", "host": "203.0.113.7", "user": "tunnel"}}
    ssh = tunnel_for(StackOutputs.parse(ssh_doc))
    assert isinstance(ssh, SshTunnel)
    assert ssh.argv()[-3:] == ["-l", "tunnel", "203.0.113.7"]


@pytest.mark.parametrize(
    ("present", "absent", "hint"),
    [
        ((), "aws", "install the AWS CLI"),
        (("aws",), "session-manager-plugin", "install the Session Manager plugin"),
    ],
)
def test_ssm_missing_tool_says_how_to_install(
    fake_path: Path, present: tuple[str, ...], absent: str, hint: str
) -> None:
    for name in present:
        _tool(fake_path, name, "#!/bin/sh\nexit 0\n")
    with pytest.raises(ToolMissing, match=f"'{absent}' not found on PATH; {hint}"):
        SsmTunnel("i-1", "eu-west-1", "db", 5432).open(timeout=5)


def test_iap_missing_gcloud_says_how_to_install(fake_path: Path) -> None:
    with pytest.raises(ToolMissing, match="'gcloud' not found on PATH; install the Google Cloud CLI"):
        IapTunnel("b", "z", "p", "10.0.0.3", 5432).open(timeout=5)


def test_ssm_waits_for_the_plugin_to_listen_then_closes_it(fake_path: Path) -> None:
    log = _listener(fake_path, "aws")
    _tool(fake_path, "session-manager-plugin", "#!/bin/sh\nexit 0\n")
    tunnel = SsmTunnel("i-0123456789abcdef0", "eu-west-1", "db.internal", 5432)
    with tunnel:
        with socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=5) as sock:
            assert sock.recv(2) == b"ok"
        pid = tunnel.pid
        assert pid is not None
    assert json.loads(log.read_text().splitlines()[0]) == tunnel.argv()[1:]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_iap_waits_for_gcloud_to_listen(fake_path: Path) -> None:
    log = _listener(fake_path, "gcloud")
    _tool(fake_path, "ssh", "#!/bin/sh\nexit 0\n")
    with (
        IapTunnel("pg-bastion", "europe-west1-b", "acme-data-123", "10.20.0.3", 5432) as tunnel,
        socket.create_connection(("127.0.0.1", tunnel.local_port), timeout=5) as sock,
    ):
        assert sock.recv(2) == b"ok"
    assert "--tunnel-through-iap" in json.loads(log.read_text().splitlines()[0])


def test_a_failing_session_is_a_clear_error(fake_path: Path) -> None:
    _tool(fake_path, "aws", _FAILING)
    _tool(fake_path, "session-manager-plugin", "#!/bin/sh\nexit 0\n")
    tunnel = SsmTunnel("i-0abc", "eu-west-1", "db.internal", 5432, local_port=None)
    with pytest.raises(TunnelError, match=r"ssm tunnel exited with code 254 before it was ready: .*TargetNotConnected"):
        tunnel.open(timeout=10)
    assert tunnel.pid is None


def test_a_tunnel_that_never_listens_times_out(fake_path: Path) -> None:
    _tool(fake_path, "aws", "#!/bin/sh\nexec /bin/sleep 30\n")
    _tool(fake_path, "session-manager-plugin", "#!/bin/sh\nexit 0\n")
    tunnel = SsmTunnel("i-0abc", "eu-west-1", "db.internal", 5432)
    with pytest.raises(TunnelError, match="not ready after 1s; check the bastion"):
        tunnel.open(timeout=1)
    assert tunnel.pid is None
