"""Tunnels through the bastion to the private database endpoint: ``ssm``, ``iap`` and ``ssh``.

Every kind runs one child process that listens on ``127.0.0.1:<free port>`` and forwards to
``<remote host>:<remote port>`` from the bastion's side of the network:

- :class:`SsmTunnel`: ``aws ssm start-session --document-name AWS-StartPortForwardingSessionToRemoteHost``
  (needs the AWS CLI and the session-manager-plugin; no SSH key, no inbound port on the bastion).
- :class:`IapTunnel`: ``gcloud compute ssh --tunnel-through-iap`` (IAP TCP forwarding to the bastion's
  port 22, OS Login for the key) with OpenSSH ``-N -L`` to the private address behind it.
- :class:`SshTunnel`: OpenSSH ``-N -L`` with ``ExitOnForwardFailure``, keep-alives and strict host keys.

Readiness is waited for: :meth:`open` returns once the local port accepts a connection (the
forwarder only listens after the session is authenticated), and fails as soon as the child
exits. :meth:`close` always stops the child; the tunnels are context managers so every exit
path (error, Ctrl-C) tears them down, and on Linux the child also dies with this process.

No argv here ever contains a password: the tunnels carry TLS, the credentials travel inside it.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Protocol

from infra.contract import IapBastion, SshBastion, SsmBastion, StackOutputs
from infra.enums import BastionMode
from infra.errors import ToolMissing, TunnelError
from infra.postdeploy.ssm import wait_until_online

__all__ = [
    "INSTALL_HINTS",
    "IapTunnel",
    "SshOptions",
    "SshTunnel",
    "SsmTunnel",
    "Tunnel",
    "child_environment",
    "free_port",
    "tunnel_for",
]

_log = logging.getLogger(__name__)

#: How to install each tool a tunnel needs; a missing tool raises ToolMissing with this hint.
INSTALL_HINTS: dict[str, str] = {
    "ssh": "install the OpenSSH client (apt-get install openssh-client)",
    "aws": "install the AWS CLI v2 (https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html)",
    "session-manager-plugin": (
        "install the Session Manager plugin "
        "(https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html)"
    ),
    "gcloud": "install the Google Cloud CLI (https://cloud.google.com/sdk/docs/install) and run `gcloud auth login`",
}

_DEFAULT_READY_TIMEOUT = 60.0  # SSM and IAP sessions can take tens of seconds to establish
_POLL = 0.05


#: What every child process may inherit; anything else (PGPASSWORD, cloud credentials...) only by prefix.
_BASE_ENV = frozenset({"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR"})


def child_environment(*prefixes: str, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child process: the basics (PATH, HOME, locale...) plus the variables
    whose names start with one of ``prefixes`` (``AWS_`` for the AWS CLI, ``SSH_AUTH_SOCK`` for ssh).

    A tunnel or a server never sees ``PGPASSWORD`` or another tool's credentials.
    """
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if k in _BASE_ENV or k.startswith(("LC_", *prefixes))}


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class Tunnel(Protocol):
    """An open-able forwarder from ``127.0.0.1:local_port`` to the database behind the bastion."""

    kind: BastionMode
    local_port: int

    def argv(self) -> list[str]:
        """The child's command line (contains no secret)."""
        ...

    def open(self, timeout: float = _DEFAULT_READY_TIMEOUT) -> None:
        """Start the child and wait until the local port accepts connections; TunnelError otherwise."""
        ...

    def check(self) -> None:
        """Raise TunnelError if the tunnel was lost (the child exited)."""
        ...

    def close(self) -> None:
        """Stop the child; harmless when not open."""
        ...

    def wait(self) -> None:
        """Block until the tunnel ends (Ctrl-C interrupts); TunnelError when it ends by itself."""
        ...

    def __enter__(self) -> Tunnel: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


def _which(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        raise ToolMissing(f"{tool!r} not found on PATH; {INSTALL_HINTS.get(tool, 'install it')}")
    return found


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux: the forwarder gets SIGTERM when we die, even by SIGKILL, so no tunnel outlives us.
    # (The signal follows the *thread* that started the child: open tunnels from a thread that
    # lives as long as the tunnel, as the CLI does from its main thread.)
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class _ProcessTunnel:
    """Common life cycle: start a child, wait for the local port, stop the child."""

    kind: BastionMode
    tool_names: tuple[str, ...] = ()
    env_prefixes: tuple[str, ...] = ()  # what the child inherits beyond the basics (child_environment)

    def __init__(self, remote_host: str, remote_port: int, *, local_port: int | None = None) -> None:
        self.remote_host = remote_host
        self.remote_port = remote_port
        self.local_port = local_port if local_port is not None else free_port()
        self._fixed_port = local_port is not None
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    def argv(self) -> list[str]:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def check_tools(self) -> None:
        """Raise ToolMissing for the first tool this kind needs that is not installed."""
        for tool in self.tool_names:
            _which(tool)

    def open(self, timeout: float = _DEFAULT_READY_TIMEOUT) -> None:
        self.check_tools()
        # The free port can be taken between choosing and binding; ExitOnForwardFailure (or the
        # plugin's bind error) makes the child exit, and we retry once on a new port.
        attempts = 1 if self._fixed_port else 2
        for attempt in range(attempts):
            try:
                self._start_and_wait(timeout)
                return
            except TunnelError:
                if attempt + 1 >= attempts or self._port_free():
                    raise
                self.local_port = free_port()
        raise AssertionError("unreachable")  # pragma: no cover

    def _port_free(self) -> bool:
        with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
            try:
                sock.bind(("127.0.0.1", self.local_port))
            except OSError:
                return False
            return True

    def _start_and_wait(self, timeout: float) -> None:
        argv = self.argv()
        _log.info("opening %s tunnel: 127.0.0.1:%d -> %s:%d", self.kind.value, self.local_port, *self._remote())
        _log.debug("tunnel argv: %s", argv)
        # a file, not a pipe: a chatty child never blocks on it; closed in close()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._stderr,
                stderr=self._stderr,
                env=child_environment(*self.env_prefixes),
                preexec_fn=_die_with_parent,
                start_new_session=True,  # Ctrl-C reaches us; we, not the terminal, stop the child
            )
        except OSError as exc:
            raise TunnelError(f"could not start the {self.kind.value} tunnel ({argv[0]}): {exc.strerror}") from None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                detail = self._tail()
                self.close()
                raise TunnelError(
                    f"{self.kind.value} tunnel exited with code {code} before it was ready"
                    + (f": {detail}" if detail else "")
                )
            if self._accepts():
                _log.info("tunnel ready on 127.0.0.1:%d", self.local_port)
                return
            if time.monotonic() >= deadline:
                self.close()
                raise TunnelError(
                    f"{self.kind.value} tunnel to {self._remote()[0]} not ready after {timeout:.0f}s; "
                    "check the bastion is running and reachable"
                )
            # wait on the child itself: returns at once if it dies, else after one poll interval
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=_POLL)

    def _remote(self) -> tuple[str, int]:
        return self.remote_host, self.remote_port

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.local_port), timeout=1.0):
                return True
        except OSError:
            return False

    def _tail(self) -> str:
        """What the child said about its failure: its error lines if it marked any, else its last lines."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = [ln.strip() for ln in self._stderr.read().decode(errors="replace").splitlines() if ln.strip()]
        marked = [ln for ln in lines if ln.startswith(("ERROR", "error", "An error occurred", "ssh:"))]
        chosen = marked[-2:] if marked else lines[-3:]
        return " | ".join(chosen)[-500:]

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def check(self) -> None:
        if self._proc is None:
            raise TunnelError(f"{self.kind.value} tunnel is not open")
        code = self._proc.poll()
        if code is not None:
            detail = self._tail()
            raise TunnelError(
                f"{self.kind.value} tunnel was lost (exit code {code})" + (f": {detail}" if detail else "")
            )

    def wait(self) -> None:
        if self._proc is None:
            raise TunnelError(f"{self.kind.value} tunnel is not open")
        self._proc.wait()
        self.check()

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            _log.info("%s tunnel closed", self.kind.value)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> _ProcessTunnel:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass(frozen=True)
class SshOptions:
    """How OpenSSH reaches the jump host. ``config_file="none"`` ignores ~/.ssh/config (tests, demo)."""

    host: str
    user: str
    port: int | None = None  # None: ssh's default or the ssh_config's Port
    identity_file: Path | None = None
    known_hosts: Path | None = None
    config_file: str | None = None
    keepalive_seconds: int = 15
    connect_timeout: int = 15


def _ssh_forward_options(local_port: int, remote_host: str, remote_port: int, keepalive: int) -> list[str]:
    return [
        "-N",  # no remote command: forwarding only
        "-L",
        f"127.0.0.1:{local_port}:{remote_host}:{remote_port}",
        "-o",
        "ExitOnForwardFailure=yes",  # a port that cannot be bound is an error, not a silent no-op
        "-o",
        f"ServerAliveInterval={keepalive}",  # a dead bastion is noticed within ~3 intervals
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "BatchMode=yes",  # never prompt for a password or a host key
        "-o",
        "StrictHostKeyChecking=yes",  # an unknown or changed host key is refused
    ]


class SshTunnel(_ProcessTunnel):
    """OpenSSH local forwarding through a bastion reachable by SSH."""

    kind = BastionMode.SSH
    tool_names = ("ssh",)
    env_prefixes = ("SSH_AUTH_SOCK",)  # a key held by the user's agent

    def __init__(self, ssh: SshOptions, remote_host: str, remote_port: int, *, local_port: int | None = None) -> None:
        super().__init__(remote_host, remote_port, local_port=local_port)
        self.ssh = ssh

    def argv(self) -> list[str]:
        s = self.ssh
        argv = ["ssh"]
        if s.config_file is not None:
            argv += ["-F", s.config_file]
        argv += _ssh_forward_options(self.local_port, self.remote_host, self.remote_port, s.keepalive_seconds)
        argv += ["-o", f"ConnectTimeout={s.connect_timeout}"]
        if s.port is not None:
            argv += ["-p", str(s.port)]
        if s.known_hosts is not None:
            argv += ["-o", f"UserKnownHostsFile={s.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        if s.identity_file is not None:
            argv += ["-i", str(s.identity_file), "-o", "IdentitiesOnly=yes"]
        argv += ["-l", s.user, s.host]
        return argv


class SsmTunnel(_ProcessTunnel):
    """AWS Systems Manager port forwarding to a remote host through the bastion instance.

    ``agent_online`` (if given) runs before the session starts and returns once the bastion is a
    managed node that is Online (:func:`infra.postdeploy.ssm.wait_until_online`): on a first
    deploy the agent registers minutes after the instance exists.
    """

    kind = BastionMode.SSM
    tool_names = ("aws", "session-manager-plugin")
    env_prefixes = ("AWS_",)  # the CLI's credentials, profile and region

    def __init__(
        self,
        target: str,
        region: str,
        remote_host: str,
        remote_port: int,
        *,
        local_port: int | None = None,
        profile: str | None = None,
        agent_online: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(remote_host, remote_port, local_port=local_port)
        self.target = target
        self.region = region
        self.profile = profile
        self.agent_online = agent_online

    def open(self, timeout: float = _DEFAULT_READY_TIMEOUT) -> None:
        self.check_tools()  # a missing tool is reported before any waiting
        if self.agent_online is not None:
            self.agent_online()
        super().open(timeout)

    def argv(self) -> list[str]:
        parameters = {
            "host": [self.remote_host],
            "portNumber": [str(self.remote_port)],
            "localPortNumber": [str(self.local_port)],
        }
        argv = [
            "aws",
            "ssm",
            "start-session",
            "--target",
            self.target,
            "--document-name",
            "AWS-StartPortForwardingSessionToRemoteHost",
            "--parameters",
            json.dumps(parameters, separators=(",", ":")),
            "--region",
            self.region,
        ]
        if self.profile:
            argv += ["--profile", self.profile]
        return argv


class IapTunnel(_ProcessTunnel):
    """GCP: IAP TCP forwarding to the bastion's SSH port (OS Login), then ``-L`` to the private address."""

    kind = BastionMode.IAP
    tool_names = ("gcloud", "ssh")
    env_prefixes = ("CLOUDSDK_", "SSH_AUTH_SOCK")  # gcloud's configuration and account; ssh's agent

    def __init__(
        self,
        instance: str,
        zone: str,
        project: str,
        remote_host: str,
        remote_port: int,
        *,
        local_port: int | None = None,
        keepalive_seconds: int = 15,
    ) -> None:
        super().__init__(remote_host, remote_port, local_port=local_port)
        self.instance = instance
        self.zone = zone
        self.project = project
        self.keepalive_seconds = keepalive_seconds

    def argv(self) -> list[str]:
        # gcloud manages the OS Login key and the host key: its own known-hosts file, keyed by
        # instance id, filled from the instance's guest attributes. gcloud puts its own
        # "-o StrictHostKeyChecking=no" (first connection) before our "--" options and ssh keeps
        # the first value, so strictness is asked of gcloud itself. Everything after "--" goes
        # to OpenSSH.
        return [
            "gcloud",
            "compute",
            "ssh",
            self.instance,
            "--tunnel-through-iap",
            f"--zone={self.zone}",
            f"--project={self.project}",
            "--strict-host-key-checking=yes",
            "--quiet",  # no interactive prompts (key generation is non-interactive)
            "--",
            *_ssh_forward_options(self.local_port, self.remote_host, self.remote_port, self.keepalive_seconds),
        ]


def tunnel_for(
    outputs: StackOutputs,
    *,
    local_port: int | None = None,
    ssh_identity: Path | None = None,
    ssh_known_hosts: Path | None = None,
    ssh_config: Path | None = None,
    aws_profile: str | None = None,
    remote_host: str | None = None,
    remote_port: int | None = None,
) -> Tunnel:
    """The tunnel kind the stack's ``bastion.mode`` asks for, forwarding to the database endpoint.

    ``remote_host`` / ``remote_port`` override where the bastion forwards to (default: ``db_host``,
    which the bastion resolves through the VPC's private DNS, and ``db_port``): a read replica or
    the pooler (``db_read_endpoints``, ``db_pooler``).
    """
    host = remote_host or outputs.db_host
    port = remote_port or outputs.db_port
    match outputs.bastion:
        case SsmBastion(target=instance_id, region=region):
            online = functools.partial(wait_until_online, instance_id, region, profile=aws_profile)
            return SsmTunnel(
                instance_id,
                region,
                host,
                port,
                local_port=local_port,
                profile=aws_profile,
                agent_online=online,
            )
        case IapBastion(target=instance, zone=zone, project=project):
            return IapTunnel(instance, zone, project, host, port, local_port=local_port)
        case SshBastion(host=public_host, user=user):
            options = SshOptions(
                host=public_host,
                user=user,
                identity_file=ssh_identity,
                known_hosts=ssh_known_hosts,
                config_file=str(ssh_config) if ssh_config is not None else None,
            )
            return SshTunnel(options, host, port, local_port=local_port)
