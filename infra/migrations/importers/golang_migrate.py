"""golang-migrate (github.com/golang-migrate/migrate) and ory's popx: ``<version>_<name>.up.sql``
with its ``.down.sql``.

golang-migrate (``source/parse.go``): ``^([0-9]+)_(.*)\\.(down|up)\\.(.*)$``; the version is an
unsigned integer and files run in numeric order; a repeated version is an error. The PostgreSQL
driver sends a file as one query and does not open a transaction: a file of several statements
runs as one implicit transaction, and a file holding ``CREATE INDEX CONCURRENTLY`` alone runs
outside any, so the importer decides per section from its statements. Its ledger,
``schema_migrations(version bigint, dirty boolean)``, holds one row: the last version applied.

popx (``github.com/ory/x/popx``, ``match.go`` and ``migration_info.go``):
``^(\\d+)_([^.]+)(\\.[a-z0-9]+)?(|\\.autocommit)\\.(up|down)\\.(sql|fizz)$``. The optional middle part
is a dialect (``postgres``, ``cockroach``, ``mysql``, ``sqlite3``); a file for another dialect is
skipped, and for one version a file for the dialect wins over a file without one. ``.autocommit``
runs the file outside a transaction; every other file runs inside one. Versions compare as
strings. Fizz files are not SQL and are refused. Its ledger (pop's ``schema_migration``) records
one row per version.

Refused, with the fix: an up without its down (``--allow-missing-down`` imports it as
irreversible), a down without its up, two files for one version and direction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from infra.migrations.importers.model import ImportRefused, SourceMigration

__all__ = ["read"]

_GOLANG = re.compile(r"^([0-9]+)_(.*)\.(down|up)\.(.*)$")
_POPX = re.compile(r"^([0-9]+)_([^.]+)(\.[a-z0-9]+)?(|\.autocommit)\.(up|down)\.(sql|fizz)$")
_DIALECTS = frozenset(
    {"postgres", "postgresql", "pg", "cockroach", "cockroachdb", "crdb", "mysql", "sqlite3", "sqlite"}
)
_SAME_AS_POSTGRES = frozenset({"postgres", "postgresql", "pg"})


@dataclass
class _File:
    name: str
    version: str
    title: str
    direction: str
    dialect: str  # "all" when the file names none
    autocommit: bool
    popx: bool


def _match(name: str) -> _File | None:
    m = _POPX.match(name)
    if m and (m.group(3) or m.group(4)) and (m.group(4) or m.group(3)[1:] in _DIALECTS):
        dialect = m.group(3)[1:] if m.group(3) else "all"
        return _File(name, m.group(1), m.group(2), m.group(5), dialect, bool(m.group(4)), True)
    g = _GOLANG.match(name)
    if g:
        return _File(name, g.group(1), g.group(2), g.group(3), "all", False, False)
    return None


def _for(file_dialect: str, wanted: str) -> bool:
    if file_dialect in ("all", wanted):
        return True
    return file_dialect in _SAME_AS_POSTGRES and wanted in _SAME_AS_POSTGRES


def read(
    source: Path, *, allow_missing_down: bool = False, dialect: str = "postgres"
) -> tuple[list[SourceMigration], list[str]]:
    """The migrations in the tool's order, and the files it ignores."""
    candidates: dict[tuple[str, str], list[_File]] = {}
    skipped: list[str] = []
    for path in sorted(source.iterdir(), key=lambda p: p.name):
        found = _match(path.name) if path.is_file() else None
        if found is None or not _for(found.dialect, dialect):
            skipped.append(path.name)  # not a migration, or another database's file
            continue
        if found.name.endswith(".fizz"):
            raise ImportRefused(f"{found.name}: a fizz migration is not SQL; fix: write it as a .sql migration first")
        # golang-migrate parses the version as a number (01 and 1 are one version); popx keeps the string
        number = found.version if found.popx else str(int(found.version))
        candidates.setdefault((number, found.direction), []).append(found)
    files: dict[tuple[str, str], _File] = {}
    for key, group in candidates.items():
        specific = [f for f in group if f.dialect != "all"]
        chosen = specific or group  # popx: the dialect's own file wins over the one for all dialects
        if len(chosen) > 1:
            raise ImportRefused(
                f"{chosen[1].name}: version {key[0]} has a second {key[1]} file ({chosen[0].name}); "
                "fix: give one of them a new version"
            )
        files[key] = chosen[0]
        skipped += [f.name for f in group if f is not chosen[0]]
    popx = any(f.popx for f in files.values())
    versions = sorted({v for v, _ in files}, key=(str if popx else int))
    migrations: list[SourceMigration] = []
    for version in versions:
        up, down = files.get((version, "up")), files.get((version, "down"))
        if up is None:
            assert down is not None
            raise ImportRefused(f"{down.name}: a down migration without its up; fix: add the up file or remove it")
        if down is None and not allow_missing_down:
            raise ImportRefused(
                f"{up.name}: no {up.version}_{up.title}.down.sql; fix: write one, or import it as irreversible "
                "with --allow-missing-down"
            )
        # golang-migrate decides nothing: a file is one query (None: decide from the statements)
        up_tx: bool | None = not up.autocommit if popx else None
        down_tx: bool | None = (not down.autocommit if popx else None) if down else True
        ledger_key = version if popx else str(int(version))
        migrations.append(
            SourceMigration(
                sources=(up.name,) + ((down.name,) if down else ()),
                version=version,
                name=up.title,
                up=_text(source / up.name),
                down=_text(source / down.name) if down else None,
                up_transaction=up_tx,
                down_transaction=down_tx,
                ledger_key=ledger_key,
                notes=() if down else ("no down file: imported as irreversible",),
            )
        )
    return migrations, skipped


def _text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRefused(f"{path.name}: not valid UTF-8; fix: save it as UTF-8") from None
