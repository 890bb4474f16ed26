"""Flyway (flywaydb.org, SQL-based migrations): ``V<version>__<description>.sql`` anywhere under the
location, ``U<version>__...`` undo scripts, ``R__...`` repeatable ones.

What Flyway does with them (its documented defaults):

* the version is digits separated by ``.`` or ``_`` (``V1_2__x.sql`` is version 1.2); versions
  compare part by part as numbers, trailing zero parts ignored (1.0 = 1); two files with one
  version are an error; the description is the rest with ``_`` read as a space.
* ``<script>.conf`` may say ``executeInTransaction=false``; otherwise Flyway runs a script in a
  transaction unless its statements cannot run in one (``CREATE INDEX CONCURRENTLY``), which it
  detects itself, so the importer decides the same way.
* ``${name}`` placeholders are replaced by Flyway before it runs a script.
* the ledger is ``flyway_schema_history``: one row per applied script, ``version`` and ``script``
  (its path), ``success``.

A ``V`` script becomes the up section, its ``U`` script (if any) the down section; without one the
migration is irreversible, as it is in Flyway. Refused, with the fix: repeatable (``R__``) and
baseline (``B``) scripts, which have no place in an ordered history, placeholders, an undo without
its migration, and two scripts for one version.
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.migrations.importers.model import ImportRefused, SourceMigration

__all__ = ["read", "version_key"]

_SCRIPT = re.compile(r"^(?P<kind>[VUB])(?P<version>[0-9]+(?:[._][0-9]+)*)__(?P<desc>.+)\.sql$")
_REPEATABLE = re.compile(r"^R__.+\.sql$")
_PLACEHOLDER = re.compile(r"\$\{[^}\n]+\}")


def version_key(version: str) -> tuple[int, ...]:
    """Flyway's version order: numeric parts, trailing zeros dropped (``1.0`` sorts as ``1``)."""
    parts = [int(p) for p in re.split(r"[._]", version)]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def read(source: Path) -> tuple[list[SourceMigration], list[str]]:
    """Flyway's versioned migrations in Flyway's order, and the files it ignores."""
    scripts: dict[tuple[str, tuple[int, ...]], tuple[Path, str, str]] = {}
    skipped: list[str] = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source).as_posix()
        if _REPEATABLE.match(path.name):
            raise ImportRefused(
                f"{rel}: a repeatable migration (R__) reruns whenever it changes and has no place in an "
                "ordered history; fix: turn it into a versioned migration (V<n>__...) or remove it"
            )
        m = _SCRIPT.match(path.name)
        if m is None:
            if not path.name.endswith(".sql.conf"):
                skipped.append(rel)
            continue
        if m.group("kind") == "B":
            raise ImportRefused(
                f"{rel}: a baseline migration (B) replaces the history below it; fix: import the history "
                "without it, or only what comes after it"
            )
        version = m.group("version").replace("_", ".")
        key = (m.group("kind"), version_key(version))
        if key in scripts:
            raise ImportRefused(
                f"{rel}: version {version} is also {scripts[key][1]}; Flyway refuses that; "
                "fix: give one of them a new version"
            )
        scripts[key] = (path, rel, m.group("desc"))
    migrations: list[SourceMigration] = []
    for (kind, number), (path, rel, desc) in sorted(scripts.items(), key=lambda item: item[0][1]):
        if kind != "V":
            if ("V", number) not in scripts:
                raise ImportRefused(f"{rel}: an undo script without its migration; fix: remove it")
            continue
        version = path.name[1:].split("__", 1)[0].replace("_", ".")
        undo = scripts.get(("U", number))
        up = _text(path, rel)
        down = _text(undo[0], undo[1]) if undo else None
        sources = (rel,) + ((undo[1],) if undo else ())
        transaction = _conf_transaction(path, rel)
        migrations.append(
            SourceMigration(
                sources=sources,
                version=version,
                name=desc.replace("_", " "),
                up=up,
                down=down,
                up_transaction=transaction,
                down_transaction=_conf_transaction(undo[0], undo[1]) if undo else True,
                ledger_key=version,
                notes=() if undo else ("no undo script: imported as irreversible",),
            )
        )
    return migrations, skipped


def _conf_transaction(script: Path, rel: str) -> bool | None:
    """``executeInTransaction`` from ``<script>.conf``; None: Flyway decides from the statements."""
    conf = script.with_name(script.name + ".conf")
    if not conf.is_file():
        return None
    for line in conf.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "executeInTransaction":
            if value.strip().lower() not in ("true", "false"):
                raise ImportRefused(f"{rel}.conf: executeInTransaction must be true or false, got {value.strip()!r}")
            return value.strip().lower() == "true"
    return None


def _text(path: Path, rel: str) -> str:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRefused(f"{rel}: not valid UTF-8; fix: save it as UTF-8") from None
    found = _PLACEHOLDER.search(text)
    if found:
        line = text.count("\n", 0, found.start()) + 1
        raise ImportRefused(
            f"{rel}:{line}: Flyway placeholder {found.group(0)}; Flyway replaces it before running the script; "
            "fix: write the value in its place"
        )
    return text
