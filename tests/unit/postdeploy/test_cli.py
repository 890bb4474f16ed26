"""Post-deploy CLI pieces that need no database: report output, --stack dispatch, secret hygiene."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from infra.cli import build_parser, main
from infra.enums import Environment
from infra.errors import ExitCode, InfraError
from infra.postdeploy.cli import format_report, stack_aware
from infra.postdeploy.run import PostDeployReport, Route
from infra.postdeploy.secrets import Credential
from infra.postdeploy.verify import Check, VerifyResult


def _report(ok: bool = True) -> PostDeployReport:
    return PostDeployReport(
        stack="dev",
        platform="aws",
        environment=Environment.DEV,
        tunnel="ssm",
        bootstrap=("create login role app",),
        snapshot=None,
        migrations_applied=("0001_roles_schema_grants", "0002_tenants_users_rbac"),
        migrations_pending=(),
        seeded=False,
        verification=VerifyResult((Check("tls", True, "ssl in use: True"), Check("rls-read", ok, "visible: 0"))),
        duration_seconds=3.14159,
    )


def test_summary_names_migrations_checks_and_duration() -> None:
    text = format_report(_report())
    assert "post-deploy dev (aws, dev) through the ssm tunnel" in text
    assert "migrations: 2 applied" in text
    assert "    0002_tenants_users_rbac" in text
    assert "verify:     ok" in text
    assert "duration:   3.1s" in text


def test_json_report_is_machine_readable_and_carries_failure() -> None:
    doc = json.loads(json.dumps(_report(ok=False).to_json()))
    assert doc["ok"] is False
    assert doc["verification"]["checks"][1] == {"name": "rls-read", "ok": False, "detail": "visible: 0"}
    assert doc["migrations_applied"] == ["0001_roles_schema_grants", "0002_tenants_users_rbac"]
    assert doc["duration_seconds"] == 3.142


def test_passwords_stay_out_of_reprs_and_printable_parameters() -> None:
    spec = Route("db.internal", 6543, "app", Path("/ca.pem")).params(Credential("app", "s3cr3t-pw"))
    assert "s3cr3t-pw" not in repr(spec)
    assert "s3cr3t-pw" not in json.dumps(spec.public())
    assert "s3cr3t-pw" not in json.dumps(spec.params("run"))
    assert spec.public()["sslmode"] == "verify-full"
    assert spec.public()["hostaddr"] == "127.0.0.1"
    assert spec.password is not None
    assert spec.password() == "s3cr3t-pw"
    assert "s3cr3t-pw" not in repr(Credential("app", "s3cr3t-pw"))


def _args(**values: object) -> argparse.Namespace:
    base: dict[str, object] = {"stack": None, "host": None, "dsn": None, "pending": False, "target": None}
    return argparse.Namespace(**(base | values))


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("status", {}),  # no --stack: the engine's own connection options
        ("status", {"stack": "dev", "host": "db.internal"}),  # explicit connection wins
        ("lint", {"stack": "dev"}),  # lint reads files only
        ("synth", {"stack": "dev"}),  # not an engine verb
    ],
)
def test_stack_aware_leaves_direct_connections_to_the_engine(name: str, values: dict[str, object]) -> None:
    calls: list[str] = []

    def engine_handler(args: argparse.Namespace) -> int:
        calls.append(name)
        return 0

    handler = stack_aware(name, engine_handler)
    assert handler(_args(**values)) == 0
    assert calls == [name]


def test_migrate_stack_refuses_a_target_version() -> None:
    handler = stack_aware("migrate", lambda args: 0)
    with pytest.raises(InfraError, match="migrate --stack applies every pending migration"):
        handler(_args(stack="dev", target=3))


def test_the_commands_are_registered() -> None:
    parser = build_parser()
    args = parser.parse_args(["migrate", "--stack", "dev", "--skip-snapshot", "--outputs-file", "o.json"])
    assert args.stack == "dev"
    assert args.skip_snapshot is True
    args = parser.parse_args(["tunnel", "--stack", "prod", "--role", "readonly"])
    assert args.role == "readonly"
    args = parser.parse_args(["local", "up", "--no-seed"])
    assert args.no_seed is True
    assert main(["tunnel"]) == ExitCode.USAGE  # --stack or --local is required
