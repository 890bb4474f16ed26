"""The drift report in three forms: text for a terminal, JSON for machines, markdown for an issue or a PR.

All three list the items most urgent first (security, structure, cosmetic). Long values (a
function body) are shortened in text and in the markdown tables; the markdown shows them in
full as a unified diff in a collapsed block. The markdown starts with a marker comment
(``<!-- drift-report stack=NAME -->``) by which the scheduled job finds the issue it updates.
"""

from __future__ import annotations

import difflib
import hashlib
import html
import json

from infra.drift.model import DriftItem, DriftReport, Severity
from infra.migrations.catalog import Value

__all__ = ["MARKER", "format_value", "render_json", "render_markdown", "render_text"]

MARKER = "<!-- drift-report stack={stack} -->"
_SHORT = 72


def format_value(value: Value, *, short: bool = True) -> str:
    """A value as a person reads it: ``(not set)``, ``true``, ``a, b``; long text shortened."""
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(none)"
    text = str(value)
    if short and ("\n" in text or len(text) > _SHORT):
        digest = hashlib.sha256(text.encode()).hexdigest()[:12]
        lines = text.strip().splitlines() or [""]
        return f"{lines[0].strip()[:40]}… ({len(text.splitlines())} lines, sha256 {digest})"
    return text


def _long(item: DriftItem) -> bool:
    return any(isinstance(v, str) and ("\n" in v or len(v) > _SHORT) for v in (item.expected, item.actual))


def _summary(report: DriftReport) -> str:
    counts = report.counts()
    return f"{len(report.items)} difference(s): " + ", ".join(f"{n} {severity}" for severity, n in counts.items())


def render_text(report: DriftReport) -> str:
    lines = [f"drift check of stack {report.stack!r}: {', '.join(report.checks)}"]
    if report.expected_source:
        lines.append(f"expected catalog: {report.expected_source}")
    for severity in Severity:
        group = [item for item in report.items if item.severity is severity]
        if not group:
            continue
        lines.append(f"{severity.value} ({len(group)})")
        for item in group:
            lines.append(
                f"  [{item.area}/{item.check}] {item.object}  {item.attribute}: "
                f"expected {format_value(item.expected)}, actual {format_value(item.actual)}"
            )
    lines.append(_summary(report) if report.drifted else "no drift")
    return "\n".join(lines)


def render_json(report: DriftReport) -> str:
    return json.dumps(report.to_json(), indent=2, sort_keys=True)


def _cell(text: str) -> str:
    return "<code>" + html.escape(text).replace("|", "&#124;").replace("\n", " ") + "</code>"


def _diff(item: DriftItem) -> str:
    before = format_value(item.expected, short=False).splitlines()
    after = format_value(item.actual, short=False).splitlines()
    body = "\n".join(difflib.unified_diff(before, after, "expected", "actual", lineterm=""))
    fence = "````" if "```" in body else "```"
    return (
        f"<details><summary>{html.escape(item.object)} · {html.escape(item.attribute)}: full diff</summary>\n\n"
        f"{fence}diff\n{body}\n{fence}\n\n</details>"
    )


def render_markdown(report: DriftReport) -> str:
    """Markdown for an issue body or a PR comment."""
    title = f"## Drift: stack `{report.stack}`"
    out = [MARKER.format(stack=report.stack)]
    if not report.drifted:
        out.append(f"{title}: no drift")
    else:
        out.append(f"{title}: {_summary(report)}")
    facts = [f"checks: {', '.join(report.checks)}"]
    if report.expected_source:
        facts.append(f"expected catalog: {report.expected_source}")
    out.append("_" + " · ".join(facts) + "_")
    for severity in Severity:
        group = [item for item in report.items if item.severity is severity]
        if not group:
            continue
        out += ["", f"### {severity.value.capitalize()} ({len(group)})", ""]
        out += ["| object | attribute | expected | actual | found by |", "| --- | --- | --- | --- | --- |"]
        for item in group:
            out.append(
                f"| {_cell(item.object)} | {_cell(item.attribute)} | {_cell(format_value(item.expected))} "
                f"| {_cell(format_value(item.actual))} | {item.area}/{item.check} |"
            )
        details = [_diff(item) for item in group if _long(item)]
        if details:
            out += ["", *details]
    notes = sorted({item.note for item in report.items if item.note and item.check == "ledger"})
    if notes:
        out += ["", "### What to do", "", *[f"- {html.escape(note)}" for note in notes]]
    out.append("")
    return "\n".join(out)
