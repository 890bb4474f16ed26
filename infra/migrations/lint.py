"""SQL lint by squawk (PyPI ``squawk-cli``): run it, read its JSON, map findings to our files.

We write no rules of our own. squawk sees each file's up section only (the down section is
blanked, line numbers kept): transactional files with ``--assume-in-transaction`` (that is how
the runner runs them), ``no-transaction`` files without it. Two rules are always excluded because
the runner itself satisfies them for every migration: ``require-lock-timeout`` and
``require-statement-timeout`` (it sets both, per file overridable).

**squawk's own configuration is honoured**: the first ``.squawk.toml`` found in the migrations
directory or above it (squawk's own search, from where the files are) gives ``excluded_rules``,
``included_rules``, ``pg_version`` (default 16) and ``excluded_paths`` (globs matched against the
file name and against its path from the config's directory). ``assume_in_transaction`` is decided
per file as above, since the engine knows how it runs each one.

Three ways a finding stops counting, each recorded in a reviewed file:

* ``-- migrate:allow <rule>`` in the migration (part of its checksum);
* the **lint baseline**, ``.lint-baseline.json`` in the migrations directory
  (``lint --write-baseline``): per file and rule, how many findings an adopted history already
  had; findings beyond those counts still count;
* not being in :data:`PRODUCTION_BLOCKING` — on production, ``migrate`` blocks only on the rules
  that take a dangerous lock or rewrite a table, for the pending files, before anything is written.
  The others (``prefer-bigint-over-int`` and other style rules, ``ban-drop-column`` and other
  compatibility rules) are shown by ``plan`` and fail ``lint``, but do not stop a deployment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import LintBlocked, MigrationError
from infra.migrations.source import Migration, normalize

__all__ = [
    "BASELINE_FILE",
    "EXCLUDED_RULES",
    "PRODUCTION_BLOCKING",
    "Finding",
    "SquawkConfig",
    "gate",
    "lint",
    "squawk_binary",
    "write_baseline",
]

EXCLUDED_RULES = ("require-lock-timeout", "require-statement-timeout")
PG_VERSION = "16"
BASELINE_FILE = ".lint-baseline.json"
_BASELINE_FORMAT = "infra-lint-baseline/1"

#: The squawk rules that block ``migrate`` on production, and why: each takes a lock that stops
#: the application's reads or writes for as long as the statement runs, or rewrites the table.
PRODUCTION_BLOCKING: dict[str, str] = {
    "adding-field-with-default": "a volatile default rewrites the table under ACCESS EXCLUSIVE",
    "adding-foreign-key-constraint": "SHARE ROW EXCLUSIVE on both tables while every row is checked",
    "adding-not-nullable-field": "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
    "adding-serial-primary-key-field": "builds the index (and fills the column) under ACCESS EXCLUSIVE",
    "ban-alter-domain-with-add-constraint": "checks every column of the domain while holding its tables",
    "changing-column-type": "rewrites the table and its indexes under ACCESS EXCLUSIVE",
    "constraint-missing-not-valid": "checks every row while holding the table (use NOT VALID, then VALIDATE)",
    "disallowed-unique-constraint": "builds the unique index under ACCESS EXCLUSIVE",
    "prefer-repack": "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE",
    "require-concurrent-index-creation": "CREATE INDEX holds SHARE, blocking writes, for the whole build",
    "require-concurrent-index-deletion": "DROP INDEX takes ACCESS EXCLUSIVE on the table",
    "require-concurrent-partition-detach": "DETACH PARTITION takes ACCESS EXCLUSIVE on the parent",
    "require-concurrent-reindex": "REINDEX blocks writes (and reads through the index) for the whole build",
}


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
    allowed: bool  # by the file's -- migrate:allow
    baselined: bool = False  # counted in the lint baseline

    @property
    def counts(self) -> bool:
        """Neither allowed by the file nor in the baseline: fails ``lint``."""
        return not self.allowed and not self.baselined

    @property
    def blocks_production(self) -> bool:
        """Counts and takes a dangerous lock or rewrites a table: blocks ``migrate`` on production."""
        return self.counts and self.rule in PRODUCTION_BLOCKING

    def describe(self) -> str:
        tag = " (allowed by -- migrate:allow)" if self.allowed else " (in the lint baseline)" if self.baselined else ""
        text = f"{self.file}:{self.line}:{self.column}: {self.rule}: {self.message}{tag}"
        if self.blocks_production:
            text += f" [blocks production: {PRODUCTION_BLOCKING[self.rule]}]"
        return text + (f" help: {self.help}" if self.help else "")


@dataclass(frozen=True)
class SquawkConfig:
    """The settings of a ``.squawk.toml`` (``path`` None: none found, squawk's defaults)."""

    path: Path | None = None
    excluded_rules: tuple[str, ...] = ()
    included_rules: tuple[str, ...] = ()
    pg_version: str = PG_VERSION
    excluded_paths: tuple[str, ...] = ()

    @classmethod
    def find(cls, directory: Path) -> SquawkConfig:
        """The first ``.squawk.toml`` in ``directory`` or a parent. Raises :class:`MigrationError` if unreadable."""
        for place in [directory.resolve(), *directory.resolve().parents]:
            path = place / ".squawk.toml"
            if path.is_file():
                return cls.read(path)
        return cls()

    @classmethod
    def read(cls, path: Path) -> SquawkConfig:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise MigrationError(f"{path}: not a readable squawk configuration ({exc})") from None

        def strings(key: str) -> tuple[str, ...]:
            value = data.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise MigrationError(f"{path}: {key} must be a list of strings")
            return tuple(value)

        version = data.get("pg_version", PG_VERSION)
        return cls(
            path=path,
            excluded_rules=strings("excluded_rules"),
            included_rules=strings("included_rules"),
            pg_version=str(version),
            excluded_paths=strings("excluded_paths"),
        )

    def excludes(self, file: Path) -> bool:
        """``excluded_paths`` matches the file's name or its path from the config's directory."""
        candidates = [file.name]
        if self.path is not None:
            with contextlib.suppress(ValueError):
                candidates.append(file.resolve().relative_to(self.path.parent).as_posix())
        return any(fnmatch.fnmatch(c, pattern) for c in candidates for pattern in self.excluded_paths)


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


@dataclass
class _Baseline:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)

    @classmethod
    def read(cls, directory: Path) -> _Baseline:
        path = directory / BASELINE_FILE
        if not path.is_file():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != _BASELINE_FORMAT:
                raise ValueError(f"format is not {_BASELINE_FORMAT!r}")
            counts: Counter[tuple[str, str]] = Counter()
            for file, rules in data["findings"].items():
                for rule, count in rules.items():
                    counts[(str(file), str(rule))] = int(count)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MigrationError(
                f"{path}: not a readable lint baseline ({exc}); fix: python -m infra lint --write-baseline"
            ) from None
        return cls(counts)


def lint(migrations: Sequence[Migration], directory: Path | None = None) -> tuple[Finding, ...]:
    """Lint the up sections of ``migrations`` (from ``directory``, default their own), with the
    ``.squawk.toml`` above it and its lint baseline. Raises :class:`MigrationError` if squawk fails."""
    if not migrations:
        return ()
    directory = directory or migrations[0].path.parent
    config = SquawkConfig.find(directory)
    by_name = {m.filename: m for m in migrations if not config.excludes(m.path)}
    findings: list[Finding] = []
    with tempfile.TemporaryDirectory(prefix="squawk-") as tmp:
        root = Path(tmp)
        groups: dict[bool, list[str]] = {True: [], False: []}
        for mig in by_name.values():
            (root / mig.filename).write_text(_up_only(mig), encoding="utf-8")
            groups[not mig.directives.no_transaction].append(mig.filename)
        for in_transaction, names in groups.items():
            if names:
                findings += _run(root, names, in_transaction, by_name, config)
    findings.sort(key=lambda f: (f.version, f.file, f.line, f.column, f.rule))
    budget = _Baseline.read(directory).counts
    marked: list[Finding] = []
    for finding in findings:
        key = (finding.file, finding.rule)
        if not finding.allowed and budget[key] > 0:
            budget[key] -= 1
            finding = dataclasses.replace(finding, baselined=True)
        marked.append(finding)
    return tuple(marked)


def gate(migrations: Sequence[Migration]) -> None:
    """Production's gate: raise :class:`LintBlocked` for findings of :data:`PRODUCTION_BLOCKING` in
    ``migrations`` (the pending files) that their files do not allow and the baseline does not hold."""
    if migrations:
        blocking = tuple(f for f in lint(migrations) if f.blocks_production)
        if blocking:
            raise LintBlocked(blocking)


def write_baseline(directory: Path, findings: Sequence[Finding]) -> Path:
    """Record ``findings`` (those the files do not allow) as the lint baseline of ``directory``."""
    counts: dict[str, dict[str, int]] = {}
    for finding in findings:
        if not finding.allowed:
            rules = counts.setdefault(finding.file, {})
            rules[finding.rule] = rules.get(finding.rule, 0) + 1
    data = {
        "format": _BASELINE_FORMAT,
        "findings": {file: dict(sorted(rules.items())) for file, rules in sorted(counts.items())},
    }
    path = directory / BASELINE_FILE
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def _run(
    root: Path, names: list[str], in_transaction: bool, by_name: dict[str, Migration], config: SquawkConfig
) -> list[Finding]:
    argv = [
        squawk_binary(),
        "--reporter",
        "json",
        "--pg-version",
        config.pg_version,
        # a command-line --exclude replaces the file's list in squawk: pass the union
        "--exclude",
        ",".join(dict.fromkeys((*EXCLUDED_RULES, *config.excluded_rules))),
        "--assume-in-transaction" if in_transaction else "--no-assume-in-transaction",
    ]
    if config.included_rules:
        argv += ["--include", ",".join(config.included_rules)]
    result = subprocess.run([*argv, *names], cwd=root, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode not in (0, 1) or (result.returncode == 1 and not result.stdout.strip()):
        where = f" (settings from {config.path})" if config.path else ""
        raise MigrationError(f"squawk failed (exit {result.returncode}){where}: {result.stderr.strip()[:500]}")
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
