"""The forward-only sshd definition (infra/bastion.py) and the scrubbed child environment.

``sshd -t`` checks the rendered configuration with the real OpenSSH server; the integration tests
(tests/integration/local/test_local_demo.py) run the attacks against it.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infra.bastion import NO_OP_COMMAND, authorized_key_line, forward_only_sshd_config
from infra.postdeploy.tunnel import child_environment


def test_the_settings_forward_to_the_database_only() -> None:
    lines = forward_only_sshd_config(["10.0.1.5:5432"], allow_users=["ppjump"])
    assert f"ForceCommand {NO_OP_COMMAND}" in lines
    assert "PermitOpen 10.0.1.5:5432" in lines
    assert "AllowTcpForwarding local" in lines
    assert "PermitTTY no" in lines
    assert "AllowUsers ppjump" in lines


def test_no_target_means_no_bastion() -> None:
    with pytest.raises(ValueError, match="at least one PermitOpen target"):
        forward_only_sshd_config([" "])


def test_openssh_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    sshd = shutil.which("sshd") or shutil.which("sshd", path="/usr/sbin:/sbin")
    if sshd is None:
        pytest.skip("sshd not installed")
    key = tmp_path / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "sshd_config"
    config.write_text("\n".join([f"HostKey {key}", *forward_only_sshd_config(["127.0.0.1:5432"])]) + "\n")
    checked = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    effective = subprocess.run(
        [sshd, "-T", "-f", str(config), "-C", "user=ppjump,host=h,addr=127.0.0.1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "permitlisten none" in effective
    assert f"forcecommand {NO_OP_COMMAND}" in effective


def test_the_authorized_key_is_restricted_too() -> None:
    line = authorized_key_line("ssh-ed25519 AAAAC3 me@host\n", ["db:5432"])
    assert line == 'restrict,port-forwarding,permitopen="db:5432",command="/bin/false" ssh-ed25519 AAAAC3 me@host'


def test_children_get_no_password_or_foreign_credentials() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LC_ALL": "C.UTF-8",
        "PGPASSWORD": "secret",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "GOOGLE_APPLICATION_CREDENTIALS": "/key.json",
        "SSH_AUTH_SOCK": "/agent",
    }
    assert child_environment(environ=environ) == {"PATH": "/usr/bin", "HOME": "/root", "LC_ALL": "C.UTF-8"}
    ssm = child_environment("AWS_", environ=environ)
    assert ssm["AWS_SECRET_ACCESS_KEY"] == "aws-secret"
    assert "PGPASSWORD" not in ssm
    assert "GOOGLE_APPLICATION_CREDENTIALS" not in ssm
