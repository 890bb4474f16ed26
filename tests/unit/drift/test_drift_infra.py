"""Infrastructure drift against recorded Pulumi engine events (the Automation API's event stream).

The double replays JSON documents in the engine's event format through the SDK's own
``EngineEvent.from_json`` and returns a real ``PreviewResult``, so the parsing tested here is
the SDK's; what is not exercised is the CLI run that would produce the events (no engine here).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import CommandResult, EngineEvent, OpMap, PreviewResult
from pulumi.automation.errors import CommandError

from infra.drift.cli import DriftOptions, run_drift
from infra.drift.infra import infra_drift, resource_severity
from infra.drift.model import Severity
from infra.drift.report import render_json, render_markdown, render_text
from infra.errors import AutomationError

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "automation"


def _replay(name: str, on_event: Callable[[Any], None] | None) -> PreviewResult:
    doc = json.loads((RECORDED / name).read_text())
    summary: OpMap = {}
    for raw in doc["events"]:
        event = EngineEvent.from_json(raw)
        if on_event is not None:
            on_event(event)
        if event.summary_event is not None:
            summary = dict(event.summary_event.resource_changes)
    return PreviewResult(stdout="", stderr="", change_summary=summary)


class RecordedStack:
    """Answers preview_refresh / preview from recorded event documents; counts the calls."""

    def __init__(self, refresh: str, preview: str) -> None:
        self.refresh, self.preview_doc = refresh, preview
        self.calls: list[str] = []

    def preview_refresh(self, *, on_event: Callable[[Any], None] | None = None) -> PreviewResult:
        self.calls.append("preview_refresh")
        return _replay(self.refresh, on_event)

    def preview(self, *, diff: bool | None = None, on_event: Callable[[Any], None] | None = None) -> PreviewResult:
        self.calls.append(f"preview(diff={diff})")
        return _replay(self.preview_doc, on_event)


def test_clean_stack_has_no_drift() -> None:
    stack = RecordedStack("refresh-clean.json", "preview-clean.json")
    assert infra_drift(stack) == []
    assert stack.calls == ["preview_refresh", "preview(diff=True)"]


def test_console_changes_are_named_by_urn_and_property() -> None:
    items = infra_drift(RecordedStack("refresh-drifted.json", "preview-clean.json"))
    by_type = {item.object.rsplit("$", 1)[-1].split("::")[0]: item for item in items}
    assert set(by_type) == {"aws:rds/instance:Instance", "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"}
    tags = by_type["aws:rds/instance:Instance"]
    assert (tags.attribute, tags.actual, tags.severity) == ("tags, tagsAll", "update", Severity.COSMETIC)
    rule = by_type["aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"]
    assert (rule.attribute, rule.actual, rule.severity) == ("(resource)", "delete", Severity.SECURITY)
    assert rule.expected == "as recorded in the Pulumi state"
    assert all(item.check == "refresh" for item in items)


def test_a_perpetual_diff_in_preview_is_drift() -> None:
    items = infra_drift(RecordedStack("refresh-clean.json", "preview-perpetual.json"))
    assert len(items) == 1
    assert items[0].check == "preview"
    assert "parameterGroup" in items[0].object
    assert (items[0].attribute, items[0].actual) == ("parameters", "update")
    assert items[0].severity is Severity.SECURITY  # rds.force_ssl lives in the parameters


def test_counts_without_step_events_still_report_drift() -> None:
    items = infra_drift(RecordedStack("refresh-clean.json", "preview-summary-only.json"))
    assert [(i.object, i.actual) for i in items] == [("(stack)", "1 to replace")]


def test_engine_failure_is_an_error_without_secrets() -> None:
    class Failing(RecordedStack):
        def preview_refresh(self, *, on_event: Callable[[Any], None] | None = None) -> PreviewResult:
            raise CommandError(
                CommandResult(
                    stdout="",
                    stderr="error: PGPASSWORD=hunter2 password leaked?\n"
                    "error: getting secrets manager: passphrase must be set",
                    code=255,
                )
            )

    with pytest.raises(AutomationError, match="pulumi refresh failed: error: getting secrets manager") as info:
        infra_drift(Failing("refresh-clean.json", "preview-clean.json"))
    assert "hunter2" not in str(info.value)


def test_report_json_and_exit_semantics(tmp_path: Path) -> None:
    options = DriftOptions(migrations_dir=tmp_path, check_schema=False)
    report = run_drift(
        "prod",
        options,
        stack_factory=lambda name, work_dir: RecordedStack("refresh-drifted.json", "preview-clean.json"),
    )
    assert report.drifted
    doc = json.loads(render_json(report))
    assert doc["drifted"] is True
    assert doc["checks"] == ["infra"]
    assert doc["counts"] == {"security": 1, "structure": 0, "cosmetic": 1}
    assert [i["severity"] for i in doc["items"]] == ["security", "cosmetic"]  # most urgent first
    markdown = render_markdown(report)
    assert markdown.index("### Security (1)") < markdown.index("### Cosmetic (1)")
    clean = run_drift(
        "prod",
        options,
        stack_factory=lambda name, work_dir: RecordedStack("refresh-clean.json", "preview-clean.json"),
    )
    assert not clean.drifted
    assert render_text(clean).endswith("no drift")
    assert "no drift" in render_markdown(clean).splitlines()[1]


@pytest.mark.parametrize(
    ("type_", "properties", "severity"),
    [
        ("aws:ec2/securityGroup:SecurityGroup", ["description"], Severity.SECURITY),
        ("gcp:compute/firewall:Firewall", [], Severity.SECURITY),
        ("aws:rds/instance:Instance", ["publiclyAccessible"], Severity.SECURITY),
        ("gcp:sql/databaseInstance:DatabaseInstance", ["settings.ipConfiguration"], Severity.SECURITY),
        ("aws:rds/instance:Instance", ["allocatedStorage"], Severity.STRUCTURE),
        ("aws:rds/instance:Instance", ["tags", "tagsAll"], Severity.COSMETIC),
        ("aws:rds/instance:Instance", [], Severity.STRUCTURE),
    ],
)
def test_resource_severity(type_: str, properties: list[str], severity: Severity) -> None:
    assert resource_severity(type_, properties) is severity
