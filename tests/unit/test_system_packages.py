"""Issue 11.1: `make demo` / `make install` install the demo's system packages, from the one list .ci/run uses.

The installer runs for real with a recording ``apt-get`` first on PATH, so nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "install-system-packages"
LIST = ROOT / ".ci" / "system-packages.txt"


def _entries() -> dict[str, str]:
    out: dict[str, str] = {}
    for line in LIST.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            cmd, pkg, *_ = line.split()
            out[cmd] = pkg
    return out


@pytest.fixture
def fake_apt(tmp_path: Path) -> tuple[Path, Path]:
    """A bin directory whose ``apt-get`` and ``sudo`` only record their arguments."""
    bin_dir, record = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name in ("apt-get", "sudo"):
        tool = bin_dir / name
        tool.write_text(f'#!/bin/sh\necho "{name} $*" >> {record}\n' + ('exec "$@"\n' if name == "sudo" else ""))
        tool.chmod(0o755)
    return bin_dir, record


def _run(bin_dir: Path, listing: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(["bash", str(SCRIPT), str(listing)], env=env, capture_output=True, text=True, check=False)


def test_a_missing_command_installs_its_package(fake_apt: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, record = fake_apt
    listing = tmp_path / "list.txt"
    # the situation of the issue: no sshd on the machine (a command name that exists nowhere stands for it)
    listing.write_text("# comment\npp-absent-sshd openssh-server\nsh dash\npp-absent-keygen openssh-client\n")
    result = _run(bin_dir, listing)
    assert result.returncode == 0, result.stderr
    # as root apt-get runs directly; otherwise through sudo (which records itself, then runs apt-get)
    calls = [c for c in record.read_text().splitlines() if c.startswith("apt-get ")]
    assert calls == [
        "apt-get update -qq",
        "apt-get install -y -qq --no-install-recommends openssh-server openssh-client",
    ]


def test_nothing_is_installed_when_every_command_is_there(fake_apt: tuple[Path, Path], tmp_path: Path) -> None:
    bin_dir, record = fake_apt
    listing = tmp_path / "list.txt"
    listing.write_text("sh dash\nbash bash\n")
    assert _run(bin_dir, listing).returncode == 0
    assert not record.exists()


def test_the_list_names_what_the_demo_needs() -> None:
    entries = _entries()
    assert entries["sshd"] == "openssh-server"
    assert entries["ssh"] == "openssh-client"
    assert entries["socat"] == "socat"
    assert entries["ip"] == "iproute2"
    assert {"unshare", "nsenter", "setpriv"} <= entries.keys()
    assert entries["pgbouncer"] == "pgbouncer"  # local up --pooler, bench/pooler_bench.py


def test_make_install_and_ci_use_the_one_list() -> None:
    if shutil.which("make") is None:
        pytest.skip("make not installed")
    # dry run: the first thing `make demo` (through install) does is the system packages
    # a clean environment for the dry run: under `make test`, MAKEFLAGS/MAKELEVEL make it print
    # "Entering directory" first
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    dry = subprocess.run(["make", "-n", "demo"], cwd=ROOT, capture_output=True, text=True, check=True, env=env)
    assert dry.stdout.splitlines()[0] == "bash .ci/install-system-packages"
    ci = (ROOT / ".ci" / "run").read_text()
    assert ci.index("bash .ci/install-system-packages") < ci.rindex("make test")
    assert "apt-get" not in ci  # no second list
