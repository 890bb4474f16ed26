"""SQL lint by squawk (PyPI ``squawk-cli``): run it, read its JSON, map findings to our files.

We write no rules of our own. squawk sees each file's up section only (the down section is
blanked, line numbers kept): transactional files with ``--assume-in-transaction`` (that is how
the runner runs them), ``no-transaction`` files without it. Two rules are excluded because the
runner itself satisfies them for every migration: ``require-lock-timeout`` and
``require-statement-timeout`` (it sets both, per file overridable).

A finding whose rule the file names in ``-- migrate:allow <rule>`` is reported as allowed and
blocks nothing; the directive is part of the reviewed file (and of its checksum).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.errors import MigrationError
from infra.migrations.source import Migration, normalize

__all__ = ["EXCLUDED_RULES", "Finding", "lint", "squawk_binary"]

EXCLUDED_RULES = ("require-lock-timeout", "require-statement-timeout")
PG_VERSION = "16"


@dataclass(frozen=True)
class Finding:
    """One squawk finding in a migration file (1-based line)."""

    file: str
    version: int
    line: int
    column: int
    rule: str
    level: str
    message: str
    help: str | None
    allowed: bool

    def describe(self) -> str:
        tag = " (allowed by -- migrate:allow)" if self.allowed else ""
        text = f"{self.file}:{self.line}:{self.column}: {self.rule}: {self.message}{tag}"
        return text + (f" help: {self.help}" if self.help else "")


def squawk_binary() -> str:
    """The squawk executable: next to this Python (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.exists():
        return str(beside)
    found = shutil.which("squawk")
    if found is None:
        raise MigrationError("squawk not found; fix: pip install squawk-cli (pinned in requirements.txt)")
    return found


def _up_only(mig: Migration) -> str:
    """The file with its down section blanked (line numbers kept, so findings point at the file)."""
    text = normalize(mig.path.read_bytes()).decode("utf-8")
    if mig.down_line is None:
        return text
    lines = text.split("\n")
    keep = mig.down_line - 1
    return "\n".join(lines[:keep] + [""] * (len(lines) - keep))


def lint(migrations: Sequence[Migration]) -> tuple[Finding, ...]:
    """Lint the up sections of ``migrations``. Raises :class:`MigrationError` if squawk fails."""
    if not migrations:
        return ()
    by_name = {m.filename: m for m in migrations}
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="squawk-") as tmp:
        root = Path(tmp)
        groups: dict[bool, list[str]] = {True: [], False: []}
        for mig in migrations:
            (root / mig.filename).write_text(_up_only(mig), encoding="utf-8")
            groups[not mig.directives.no_transaction].append(mig.filename)
        for in_transaction, names in groups.items():
            if names:
                findings += _run(root, names, in_transaction, by_name)
    findings.sort(key=lambda f: (f.version, f.line, f.column, f.rule))
    return tuple(findings)


def _run(root: Path, names: list[str], in_transaction: bool, by_name: dict[str, Migration]) -> list[Finding]:
    argv = [
        squawk_binary(),
        "--reporter",
        "json",
        "--pg-version",
        PG_VERSION,
        "--exclude",
        ",".join(EXCLUDED_RULES),
        "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction",
        *names,
    ]
    result = subprocess.run(argv, cwd=root, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode not in (0, 1):
        raise MigrationError(f"squawk failed (exit {result.returncode}): {result.stderr.strip()[:500]}")
    try:
        raw = json.loads(result.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise MigrationError(f"squawk printed no JSON: {result.stdout[:200]!r}") from exc
    if not isinstance(raw, list):
        raise MigrationError("squawk printed unexpected JSON (not a list)")
    out: list[Finding] = []
    for item in raw:
        name = Path(str(item.get("file", ""))).name
        mig = by_name.get(name)
        if mig is None:
            continue
        rule = str(item.get("rule_name", "unknown"))
        help_text = item.get("help")
        out.append(
            Finding(
                file=name,
                version=mig.version,
                line=int(item.get("line", 0)) + 1,  # squawk's JSON lines are 0-based
                column=int(item.get("column", 0)) + 1,
                rule=rule,
                level=str(item.get("level", "Warning")).lower(),
                message=str(item.get("message", "")),
                help=None if help_text is None else str(help_text),
                allowed=rule in mig.directives.allow,
            )
        )
    return out
