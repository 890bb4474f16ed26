"""The cloud acceptance run and the teardown, driven by a recorded-CLI double.

No Pulumi CLI, no cloud here: :class:`RecordedCli` stands in for the processes. It holds a
recorded session (each argv the driver must run, in order, with the exit code and output the
real tool gave) and fails the test on any other argv. What this checks is the driver's command
logic: the order of the steps, their exact command lines, when it stops, what it cleans up, and
the GCP peering fallback. What it cannot check is the tools themselves (README says so).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from infra.acceptance.driver import (
    PEERING,
    Completed,
    Target,
    acceptance,
    peering_blocks_destroy,
    subprocess_runner,
    target_of,
    teardown,
)
from infra.cli import main
from infra.enums import Cloud, Environment
from infra.errors import AutomationError, SafetyError

PY = "venv/bin/python"
AWS = Target("dev", Cloud.AWS, Environment.DEV, "private-postgres-dev")
GCP = Target("gcp-dev", Cloud.GCP, Environment.DEV, "private-postgres-gcp-dev", "acme-data-dev-123")
# What `pulumi destroy` prints when Cloud SQL still holds the connection (the provider's error, as
# quoted in hashicorp/terraform-provider-google#16275).
PRODUCER_STILL_USING = (
    "error: deleting urn:pulumi:gcp-dev::private-postgres::gcp:servicenetworking/connection:Connection::"
    "private-postgres-gcp-dev-net-psa: Error waiting for Delete Service Networking Connection: Error code 9, "
    "message: Failed to delete connection; Producer services (e.g. CloudSQL, Cloud Memstore, etc.) are still "
    "using this connection.\n"
)


@dataclass
class RecordedCli:
    """Replays a recorded session: each expected argv with the exit code and output it had."""

    script: list[tuple[list[str], Completed]]
    calls: list[list[str]] = field(default_factory=list)

    def __call__(self, argv: Sequence[str]) -> Completed:
        assert self.script, f"unexpected command after the recorded session: {list(argv)}"
        expected, result = self.script.pop(0)
        assert list(argv) == expected
        self.calls.append(list(argv))
        return result

    def done(self) -> bool:
        return not self.script


def pulumi(stack: str, *args: str) -> list[str]:
    return ["pulumi", *args, "--stack", stack, "--non-interactive"]


def infra(stack: str, *args: str) -> list[str]:
    return [PY, "-m", "infra", *args, "--stack", stack]


OK = Completed(0, "")


def happy(stack: str) -> list[tuple[list[str], Completed]]:
    return [
        (pulumi(stack, "up", "--yes"), OK),
        (infra(stack, "migrate", "--json"), OK),
        (infra(stack, "drift"), OK),
        (pulumi(stack, "preview", "--expect-no-changes"), OK),
        (pulumi(stack, "destroy", "--yes"), OK),
        (pulumi(stack, "up", "--yes"), OK),
        (infra(stack, "migrate", "--json"), OK),
        (pulumi(stack, "destroy", "--yes"), OK),
    ]


def test_the_run_deploys_migrates_checks_destroys_and_does_it_again() -> None:
    cli = RecordedCli(happy("dev"))
    steps = acceptance(AWS, cli, confirm="dev", python=PY)
    assert cli.done()
    assert [s.name for s in steps] == ["up", "migrate", "drift", "preview", "destroy", "up", "migrate", "destroy"]
    assert all(s.ok and not s.cleanup for s in steps)


@pytest.mark.parametrize(
    ("failing", "code", "step"),
    [
        (2, 2, "step 3 (drift)"),  # drift found
        (3, 255, "step 4 (preview)"),  # --expect-no-changes: the second preview was not quiet
        (1, 1, "step 2 (migrate)"),
    ],
)
def test_a_failed_check_stops_the_run_and_destroys_what_it_made(failing: int, code: int, step: str) -> None:
    script = happy("dev")[: failing + 1]
    script[failing] = (script[failing][0], Completed(code, "boom\n"))
    script.append((pulumi("dev", "destroy", "--yes"), OK))  # the cleanup
    cli = RecordedCli(script)
    with pytest.raises(AutomationError) as info:
        acceptance(AWS, cli, confirm="dev", python=PY)
    assert str(info.value) == f"cloud acceptance of stack 'dev' failed at {step}"
    assert cli.done()


def test_keep_on_failure_leaves_the_stack_for_a_look() -> None:
    script = happy("dev")[:3]
    script[2] = (script[2][0], Completed(2, "drift\n"))
    cli = RecordedCli(script)
    with pytest.raises(AutomationError, match="the stack was kept"):
        acceptance(AWS, cli, confirm="dev", keep_on_failure=True, python=PY)
    assert cli.done()  # no destroy


def test_a_failed_first_up_is_still_cleaned_up() -> None:
    cli = RecordedCli(
        [(pulumi("dev", "up", "--yes"), Completed(255, "quota\n")), (pulumi("dev", "destroy", "--yes"), OK)]
    )
    with pytest.raises(AutomationError, match="failed at step 1 \\(up\\)"):
        acceptance(AWS, cli, confirm="dev", python=PY)
    assert cli.done()


def test_on_gcp_a_destroy_stopped_by_the_peering_deletes_it_and_destroys_again() -> None:
    script = happy("gcp-dev")
    first_destroy = 4
    script[first_destroy : first_destroy + 1] = [
        (pulumi("gcp-dev", "destroy", "--yes"), Completed(255, PRODUCER_STILL_USING)),
        (
            [
                "gcloud",
                "compute",
                "networks",
                "peerings",
                "delete",
                PEERING,
                "--network=private-postgres-gcp-dev",
                "--project=acme-data-dev-123",
                "--quiet",
            ],
            OK,
        ),
        (pulumi("gcp-dev", "destroy", "--yes"), OK),
    ]
    cli = RecordedCli(script)
    steps = acceptance(GCP, cli, confirm="gcp-dev", python=PY)
    assert cli.done()
    assert [s.name for s in steps][4:7] == ["destroy", "delete-peering", "destroy"]
    assert [s.ok for s in steps][4:7] == [False, True, True]


def test_a_destroy_that_fails_for_another_reason_is_not_papered_over() -> None:
    script = happy("gcp-dev")[:5]
    script[4] = (script[4][0], Completed(255, "error: googleapi: Error 403: permission denied\n"))
    cli = RecordedCli(script)
    with pytest.raises(
        AutomationError, match="failed at step 5 \\(destroy\\); resources may remain: python -m infra teardown"
    ):
        acceptance(GCP, cli, confirm="gcp-dev", python=PY)
    assert cli.done()  # no gcloud, no second destroy


def test_on_aws_there_is_no_peering_to_blame() -> None:
    cli = RecordedCli([(pulumi("dev", "destroy", "--yes"), Completed(255, PRODUCER_STILL_USING))])
    with pytest.raises(AutomationError, match="pulumi destroy of stack 'dev' failed"):
        teardown(AWS, cli, confirm="dev")
    assert cli.done()


def test_the_markers_of_a_peering_that_blocks_the_destroy() -> None:
    assert peering_blocks_destroy(PRODUCER_STILL_USING)
    network_in_use = (
        "The network resource 'projects/p/global/networks/n' is already being used by "
        f"'projects/p/global/networks/n/peerings/{PEERING}'"
    )
    assert peering_blocks_destroy(network_in_use)
    assert not peering_blocks_destroy("Error 403: permission denied")


@pytest.mark.parametrize(
    ("target", "confirm", "message"),
    [
        (Target("prod", Cloud.AWS, Environment.PRODUCTION, "x"), "prod", "refusing to destroy production stack 'prod'"),
        (AWS, None, "needs --confirm dev"),
        (AWS, "gcp-dev", "needs --confirm dev"),
    ],
)
def test_production_and_an_unconfirmed_stack_are_refused_before_any_command(
    target: Target, confirm: str | None, message: str
) -> None:
    cli = RecordedCli([])
    with pytest.raises(SafetyError, match=message):
        acceptance(target, cli, confirm=confirm, python=PY)
    with pytest.raises(SafetyError, match=message):
        teardown(target, cli, confirm=confirm)
    assert cli.calls == []


def test_the_target_comes_from_the_stack_file() -> None:
    assert target_of("gcp-dev") == GCP
    assert target_of("dev") == AWS


def test_the_cli_refuses_without_confirm_and_runs_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["teardown", "--stack", "dev"]) == 1
    assert "needs --confirm dev" in capsys.readouterr().err
    assert main(["acceptance", "--stack", "nope", "--confirm", "nope"]) == 1
    assert "Pulumi.nope.yaml" in capsys.readouterr().err


def test_the_real_runner_returns_the_code_and_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    run = subprocess_runner()
    done = run([sys.executable, "-c", "import sys; print('hello'); sys.exit(3)"])
    assert (done.returncode, done.output) == (3, "hello\n")
    assert "hello" in capsys.readouterr().err  # echoed for the CI log
    with pytest.raises(AutomationError, match="'no-such-tool-here' not found on PATH"):
        run(["no-such-tool-here"])
