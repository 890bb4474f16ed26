"""The acceptance steps and the teardown, as argv lists run by an injectable runner.

:func:`acceptance` runs, for one non-production stack::

    pulumi up → migrate → drift (expects 0) → pulumi preview --expect-no-changes → teardown
    → pulumi up → migrate → teardown

stopping at the first step that fails and then tearing down what it created (unless asked to
keep it). :func:`teardown` is ``pulumi destroy``, and on GCP the one step a destroy can leave
undone: Cloud SQL keeps a deleted instance's producer resources, the service networking API then
refuses to delete the connection ("Producer services ... are still using this connection",
hashicorp/terraform-provider-google#16275) and the network cannot go while the peering exists.
The program asks the provider to remove the peering itself (``deletion_policy=REMOVE_PEERING``);
if a destroy still stops on it, the peering is deleted with ``gcloud`` and the destroy rerun.

Nothing here can run on a machine without the Pulumi CLI and cloud credentials; the unit tests
drive it with a recorded-CLI double (a runner that checks each argv and replays a recorded exit
code and output).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from infra.config import GcpSettings, load
from infra.enums import Cloud, Environment
from infra.errors import AutomationError, SafetyError
from infra.paths import PROJECT_DIR, project_python_in
from infra.provision.synth import load_stack_config

__all__ = [
    "PEERING",
    "PLAN",
    "Completed",
    "Runner",
    "StepKind",
    "StepResult",
    "Target",
    "acceptance",
    "peering_blocks_destroy",
    "subprocess_runner",
    "target_of",
    "teardown",
]

_log = logging.getLogger(__name__)

#: The VPC peering that the service networking connection creates (its name is fixed by Google).
PEERING = "servicenetworking-googleapis-com"
# What a destroy says when that peering (or the producer behind it) blocks it.
_PEERING_MARKERS = ("are still using this connection", PEERING)


@dataclass(frozen=True)
class Completed:
    """One finished child process: its exit code and its output (stdout and stderr, merged)."""

    returncode: int
    output: str = ""


#: Runs one argv in the project directory and returns how it ended.
Runner = Callable[[Sequence[str]], Completed]
StepKind = Literal["up", "migrate", "drift", "preview", "destroy"]


@dataclass(frozen=True)
class StepResult:
    name: str
    argv: tuple[str, ...]
    returncode: int
    seconds: float
    ok: bool
    cleanup: bool = False


@dataclass(frozen=True)
class Target:
    """The stack under test, from its ``Pulumi.<stack>.yaml``."""

    stack: str
    cloud: Cloud
    environment: Environment
    network: str  # GCP: the VPC's name (peering fallback)
    gcp_project: str | None = None


def target_of(stack: str, root: Path = PROJECT_DIR) -> Target:
    """Read and validate the stack's config (the same validation ``pulumi up`` runs)."""
    cfg = load(load_stack_config(stack, root=root), stack=stack)
    project = cfg.settings.project if isinstance(cfg.settings, GcpSettings) else None
    return Target(stack, cfg.cloud, cfg.environment, cfg.prefix, project)


def subprocess_runner(cwd: Path = PROJECT_DIR) -> Runner:
    """The real runner: the child's output is echoed to stderr as it comes and kept for the checks."""

    def run(argv: Sequence[str]) -> Completed:
        _log.info("running: %s", " ".join(argv))
        try:
            proc = subprocess.Popen(
                list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
            )
        except FileNotFoundError:
            raise AutomationError(f"{argv[0]!r} not found on PATH; install it (README, cloud acceptance)") from None
        lines: list[str] = []
        with proc:  # closes the pipe and waits, whatever happens while reading
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stderr.write(line)
                lines.append(line)
        return Completed(proc.returncode, "".join(lines))

    return run


@dataclass
class _Session:
    target: Target
    run: Runner
    python: str
    results: list[StepResult] = field(default_factory=list)
    cleanup: bool = False

    def step(self, name: str, argv: Sequence[str]) -> Completed:
        started = time.monotonic()
        done = self.run(argv)
        self.results.append(
            StepResult(
                name, tuple(argv), done.returncode, time.monotonic() - started, done.returncode == 0, self.cleanup
            )
        )
        return done

    def pulumi(self, *args: str) -> list[str]:
        return ["pulumi", *args, "--stack", self.target.stack, "--non-interactive"]

    def infra(self, *args: str) -> list[str]:
        return [self.python, "-m", "infra", *args, "--stack", self.target.stack]


def peering_blocks_destroy(output: str) -> bool:
    """Did a failed ``pulumi destroy`` stop on the service networking peering?"""
    return any(marker in output for marker in _PEERING_MARKERS)


def _teardown(session: _Session) -> bool:
    target = session.target
    destroy = session.pulumi("destroy", "--yes")
    done = session.step("destroy", destroy)
    if done.returncode == 0:
        return True
    if target.cloud is not Cloud.GCP or target.gcp_project is None or not peering_blocks_destroy(done.output):
        return False
    _log.warning(
        "the destroy stopped on the %s peering of %s; deleting it and destroying again", PEERING, target.network
    )
    removed = session.step(
        "delete-peering",
        [
            "gcloud",
            "compute",
            "networks",
            "peerings",
            "delete",
            PEERING,
            f"--network={target.network}",
            f"--project={target.gcp_project}",
            "--quiet",
        ],
    )
    if removed.returncode != 0:
        return False
    return session.step("destroy", destroy).returncode == 0


def _refuse_production(target: Target, confirm: str | None) -> None:
    if target.environment is Environment.PRODUCTION:
        raise SafetyError(f"refusing to destroy production stack {target.stack!r}; use a dev or staging stack")
    if confirm != target.stack:
        raise SafetyError(f"destroying stack {target.stack!r} needs --confirm {target.stack}")


def teardown(target: Target, run: Runner, *, confirm: str | None) -> list[StepResult]:
    """``pulumi destroy`` for a non-production stack, finishing GCP's peering; raises AutomationError if it fails."""
    _refuse_production(target, confirm)
    session = _Session(target, run, project_python_in(PROJECT_DIR))
    if not _teardown(session):
        raise AutomationError(f"pulumi destroy of stack {target.stack!r} failed; see the output above")
    return session.results


#: The run, in order: what the issue asks of a stack that survives the real cloud.
PLAN: tuple[StepKind, ...] = ("up", "migrate", "drift", "preview", "destroy", "up", "migrate", "destroy")


def acceptance(
    target: Target,
    run: Runner,
    *,
    confirm: str | None,
    keep_on_failure: bool = False,
    python: str | None = None,
) -> list[StepResult]:
    """The whole run (:data:`PLAN`); returns every step. Raises AutomationError naming the first
    failed step (after the cleanup teardown) and SafetyError for production or a missing ``--confirm``."""
    _refuse_production(target, confirm)
    session = _Session(target, run, python or project_python_in(PROJECT_DIR))
    deployed = False  # from the start of an `up` (even a failed one creates resources) to a good destroy
    for number, kind in enumerate(PLAN, start=1):
        if kind == "up":
            deployed = True
        ok = _do(session, kind)
        if kind == "destroy":
            if not ok:
                raise AutomationError(
                    f"cloud acceptance of stack {target.stack!r} failed at step {number} (destroy); resources may "
                    f"remain: python -m infra teardown --stack {target.stack} --confirm {target.stack}"
                )
            deployed = False
        elif not ok:
            kept = deployed and keep_on_failure
            if deployed and not keep_on_failure:
                session.cleanup = True
                _teardown(session)
            raise AutomationError(
                f"cloud acceptance of stack {target.stack!r} failed at step {number} ({kind})"
                + ("; the stack was kept (--keep-on-failure)" if kept else "")
            )
    return session.results


def _do(session: _Session, kind: StepKind) -> bool:
    match kind:
        case "up":
            argv = session.pulumi("up", "--yes")
        case "migrate":
            argv = session.infra("migrate", "--json")
        case "drift":
            argv = session.infra("drift")  # exit 0: no drift; 2: drift found; 1: could not check
        case "preview":
            argv = session.pulumi("preview", "--expect-no-changes")  # a second preview must be quiet
        case "destroy":
            return _teardown(session)
    return session.step(kind, argv).returncode == 0
