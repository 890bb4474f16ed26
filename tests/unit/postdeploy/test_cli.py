"""Post-deploy CLI pieces that need no database: report output, --stack dispatch, secret hygiene."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from infra.cli import build_parser, main
from infra.enums import Environment
from infra.errors import ExitCode, InfraError
from infra.migrations.cli import Common
from infra.postdeploy.cli import format_report, route_through_stack
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


def _common(argv: list[str]) -> tuple[argparse.Namespace, Common]:
    args = build_parser().parse_args(argv)
    return args, Common.from_namespace(args)


@pytest.mark.parametrize(
    ("verb", "argv"),
    [
        ("status", ["status"]),  # no --stack: the engine's own connection options
        ("status", ["status", "--stack", "dev", "--host", "db.internal"]),  # explicit connection wins
        ("plan", ["plan", "--stack", "dev", "--dsn", "host=db.internal"]),
    ],
)
def test_route_leaves_direct_connections_to_the_engine(verb: str, argv: list[str]) -> None:
    namespace, common = _common(argv)
    seen: list[Common] = []

    def run(routed: Common) -> int:
        seen.append(routed)
        return 0

    assert route_through_stack(verb, namespace, common, run) == 0
    assert seen == [common]


def test_lint_without_pending_never_reaches_the_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # lint reads files only: with --stack it must not try to open a tunnel (no outputs here)
    assert main(["lint", "--stack", "dev", "--migrations-dir", str(tmp_path)]) == ExitCode.OK
    assert "0 file(s) linted" in capsys.readouterr().out


def test_migrate_stack_refuses_a_target_version() -> None:
    namespace, common = _common(["migrate", "--stack", "dev", "--target", "3"])
    with pytest.raises(InfraError, match="migrate --stack applies every pending migration"):
        route_through_stack("migrate", namespace, common, lambda routed: 0)


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
