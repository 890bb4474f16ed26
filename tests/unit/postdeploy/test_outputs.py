"""Reading stack outputs: recorded ``pulumi stack output --json --show-secrets`` documents, both clouds.

The CLI reader runs a fake ``pulumi`` executable that prints a recorded document, so the
subprocess path (argv, working directory, exit codes) is exercised for real.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from infra.contract import OUTPUTS_ENV, IapBastion, SsmBastion
from infra.enums import Cloud, Environment
from infra.errors import AutomationError, ContractError
from infra.postdeploy.outputs import automation_reader, cli_reader, load_outputs_file, parse_document, read_outputs
from infra.postdeploy.stack import load_stack_outputs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "outputs"


def _fake_pulumi(bindir: Path, document: Path, code: int = 0, stderr: str = "") -> Path:
    log = bindir.parent / "pulumi.argv"
    script = bindir / "pulumi"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], 'cwd': os.getcwd()}}))\n"
        f"sys.stderr.write({stderr!r})\n"
        f"sys.stdout.write(open({str(document)!r}).read() if {code} == 0 else '')\n"
        f"sys.exit({code})\n"
    )
    script.chmod(0o755)
    return log


def test_aws_recorded_document_parses() -> None:
    outputs = load_outputs_file(FIXTURES / "aws-dev.json")
    assert outputs.cloud is Cloud.AWS
    assert outputs.environment is Environment.DEV
    assert isinstance(outputs.bastion, SsmBastion)
    assert outputs.bastion.region == "eu-west-1"
    assert outputs.db_port == 5432
    assert outputs.db_host.endswith(".rds.amazonaws.com")
    assert set(outputs.db_user_secrets) == {"migrator", "app", "readonly"}
    assert outputs.db_admin_secret.startswith("arn:aws:secretsmanager:eu-west-1:")
    assert all(entry.split(":")[0].endswith(".sql") for entry in outputs.migrations)


def test_gcp_recorded_document_parses_with_its_ca() -> None:
    outputs = load_outputs_file(FIXTURES / "gcp-dev.json")
    assert outputs.cloud is Cloud.GCP
    assert isinstance(outputs.bastion, IapBastion)
    assert (outputs.bastion.zone, outputs.bastion.project) == ("europe-west1-b", "acme-data-123")
    assert outputs.db_ca.startswith("-----BEGIN CERTIFICATE-----\n")
    assert outputs.db_user_secrets["app"] == "projects/acme-data-123/secrets/private-postgres-gcp-dev-postgres-app"


def test_masked_secret_output_names_the_output_and_the_fix() -> None:
    with pytest.raises(ContractError, match=r"'db_admin_secret' .* masked as \[secret\].*--show-secrets"):
        load_outputs_file(FIXTURES / "aws-dev-masked.json")


@pytest.mark.parametrize("name", ["db_host", "bastion", "db_user_secrets", "migrations"])
def test_missing_output_is_named(name: str) -> None:
    doc = json.loads((FIXTURES / "aws-dev.json").read_text())
    del doc[name]
    with pytest.raises(ContractError, match=f"stack output '{name}' is missing"):
        parse_document(json.dumps(doc), "test")


def test_malformed_output_is_named() -> None:
    doc = json.loads((FIXTURES / "gcp-dev.json").read_text())
    doc["bastion"]["zone"] = ""
    with pytest.raises(ContractError, match=r"'bastion\.zone'"):
        parse_document(json.dumps(doc), "test")


def test_not_json_is_a_contract_error(tmp_path: Path) -> None:
    bad = tmp_path / "outputs.json"
    bad.write_text("Current stack outputs (11):\n    OUTPUT  VALUE\n")
    with pytest.raises(ContractError, match=r"is not JSON.*pulumi stack output --json"):
        load_outputs_file(bad)


def test_cli_reader_runs_pulumi_with_show_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = _fake_pulumi(bindir, FIXTURES / "gcp-dev.json")
    monkeypatch.setenv("PATH", str(bindir))
    workdir = tmp_path / "project"
    workdir.mkdir()
    doc = cli_reader("gcp-dev", workdir)
    call = json.loads(log.read_text())
    assert call["argv"] == ["stack", "output", "--json", "--show-secrets", "--stack", "gcp-dev", "--non-interactive"]
    assert call["cwd"] == str(workdir)
    assert doc["cloud"] == "gcp"


def test_read_outputs_falls_back_to_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_pulumi(bindir, FIXTURES / "aws-dev.json")
    monkeypatch.setenv("PATH", str(bindir))
    tried: list[str] = []

    def automation(stack: str, work_dir: Path) -> Mapping[str, object]:
        tried.append(stack)
        raise AutomationError("automation api unavailable")

    outputs = read_outputs("dev", tmp_path, readers=(automation, cli_reader))
    assert tried == ["dev"]
    assert outputs.cloud is Cloud.AWS


def test_pulumi_failure_is_an_automation_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_pulumi(bindir, FIXTURES / "aws-dev.json", code=255, stderr="error: no stack named 'nope' found\n")
    monkeypatch.setenv("PATH", str(bindir))
    with pytest.raises(AutomationError, match="failed for stack 'nope': error: no stack named 'nope' found"):
        read_outputs("nope", tmp_path, readers=(cli_reader,))


def test_no_pulumi_cli_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(AutomationError, match="install the Pulumi CLI"):
        read_outputs("dev", tmp_path)


def test_outputs_from_the_environment_inside_pulumi_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # inside `pulumi up` the command gets the outputs as JSON in $INFRA_STACK_OUTPUTS
    monkeypatch.setenv(OUTPUTS_ENV, (FIXTURES / "gcp-dev.json").read_text())
    assert load_stack_outputs("gcp-dev").cloud is Cloud.GCP


class _FakeStack:
    def __init__(self, doc: Mapping[str, object]) -> None:
        self.doc = doc

    def outputs(self) -> dict[str, object]:
        from pulumi import automation as auto

        # what the Automation API returns: OutputValue(value, secret) per output, secrets in clear
        return {k: auto.OutputValue(value=v, secret=k == "db_admin_secret") for k, v in self.doc.items()}


def test_automation_reader_selects_the_stack_in_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    doc = json.loads((FIXTURES / "aws-dev.json").read_text())
    calls: list[tuple[str, str | None]] = []

    def select_stack(stack_name: str, work_dir: str | None = None, **kwargs: object) -> _FakeStack:
        calls.append((stack_name, work_dir))
        return _FakeStack(doc)

    monkeypatch.setattr(auto, "select_stack", select_stack)
    outputs = read_outputs("dev", tmp_path, readers=(automation_reader,))
    assert calls == [("dev", str(tmp_path))]
    assert outputs.db_admin_secret == doc["db_admin_secret"]


def test_automation_reader_missing_stack_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi import automation as auto

    def select_stack(stack_name: str, **kwargs: object) -> _FakeStack:
        raise auto.errors.StackNotFoundError(auto.CommandResult(stdout="", stderr="no stack named 'qa'", code=255))

    monkeypatch.setattr(auto, "select_stack", select_stack)
    with pytest.raises(AutomationError, match=r"stack 'qa' not found; check `pulumi stack ls`"):
        read_outputs("qa", tmp_path, readers=(automation_reader,))
