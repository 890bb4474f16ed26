"""The drill's report: what was restored where, the checks, and the two figures that matter.

- **RPO** (recovery point objective, as measured): how much would be lost if the database died at
  the start of the drill: the start time minus the newest restorable time the backups offered.
- **RTO** (recovery time, as measured): from the restore request to a copy that is available,
  reachable through the bastion with ``verify-full``, and verified.

Rendered as text (stdout), ``--json`` (a scheduler reads it) or ``--markdown`` (a job summary).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from infra.postdeploy.verify import Check
from infra.restore.checks import RowCount

__all__ = ["DrillReport", "render"]


@dataclass(frozen=True)
class DrillReport:
    target: str  # the stack, or "local"
    platform: str  # aws | gcp | local
    source: str  # the source instance (or cluster)
    copy: str  # the restored instance (or cluster)
    requested: str  # "latest" or the requested time
    restored_to: dt.datetime  # the point the copy was restored to (latest: the newest restorable time read)
    earliest: dt.datetime | None
    newest: dt.datetime
    started_at: dt.datetime
    rpo_seconds: float
    rto_seconds: float
    checks: tuple[Check, ...]
    row_counts: tuple[RowCount, ...]
    cleanup: str

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        return {
            "target": self.target,
            "platform": self.platform,
            "source": self.source,
            "copy": self.copy,
            "requested": self.requested,
            "restored_to": self.restored_to.isoformat(),
            "window": {
                "earliest": self.earliest.isoformat() if self.earliest else None,
                "newest": self.newest.isoformat(),
            },
            "started_at": self.started_at.isoformat(),
            "rpo_seconds": round(self.rpo_seconds, 3),
            "rto_seconds": round(self.rto_seconds, 3),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "row_counts": [
                {"table": r.table, "copy": r.copy, "source": r.source, "source_exact": r.exact} for r in self.row_counts
            ],
            "cleanup": self.cleanup,
            "ok": self.ok,
        }


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def _source_count(r: RowCount) -> str:
    if r.source is None:
        return "-"
    return str(r.source) if r.exact else f"~{r.source}"


def _text(report: DrillReport) -> str:
    status = "passed" if report.ok else "FAILED"
    earliest = report.earliest.isoformat() if report.earliest else "unknown"
    lines = [
        f"restore drill {report.target} ({report.platform}): {status}",
        f"  source:      {report.source}",
        f"  copy:        {report.copy} ({report.cleanup})",
        f"  window:      {earliest} .. {report.newest.isoformat()}",
        f"  restored to: {report.restored_to.isoformat()} (requested: {report.requested})",
        f"  RPO:         {_duration(report.rpo_seconds)} (newest restorable time vs the drill's start)",
        f"  RTO:         {_duration(report.rto_seconds)} (restore request to a verified copy)",
        "  checks:",
    ]
    lines += [f"    {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in report.checks]
    if report.row_counts:
        lines.append("  rows (copy / source now):")
        lines += [f"    app.{r.table}: {r.copy} / {_source_count(r)}" for r in report.row_counts]
    return "\n".join(lines)


def _markdown(report: DrillReport) -> str:
    status = "passed" if report.ok else "**FAILED**"
    earliest = report.earliest.isoformat() if report.earliest else "unknown"
    lines = [
        f"### Restore drill `{report.target}` ({report.platform}): {status}",
        "",
        "| | |",
        "| --- | --- |",
        f"| RPO | {_duration(report.rpo_seconds)} |",
        f"| RTO | {_duration(report.rto_seconds)} |",
        f"| restored to | {report.restored_to.isoformat()} (requested: {report.requested}) |",
        f"| window | {earliest} .. {report.newest.isoformat()} |",
        f"| source → copy | `{report.source}` → `{report.copy}` ({report.cleanup}) |",
        "",
        "| check | result | detail |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {c.name} | {'ok' if c.ok else 'FAIL'} | {c.detail.replace('|', '/')} |" for c in report.checks]
    if report.row_counts:
        lines += ["", "| table | copy | source now |", "| --- | ---: | ---: |"]
        lines += [f"| app.{r.table} | {r.copy} | {_source_count(r)} |" for r in report.row_counts]
    return "\n".join(lines)


def render(report: DrillReport, *, as_json: bool = False, markdown: bool = False) -> str:
    if as_json:
        return json.dumps(report.to_json(), indent=2)
    if markdown:
        return _markdown(report)
    return _text(report)
