"""dbmate (github.com/amacneil/dbmate, ``pkg/dbmate``): one ``.sql`` file per migration.

What dbmate does, and so what is read here:

* ``db.go``: a migration is a file matching ``^(\\d+).*\\.sql$`` (Go's ``\\d`` is ASCII); its version
  is the leading digits, kept as a string; other files are ignored. Files run in the order of
  their names compared as strings (``10_b.sql`` before ``9_a.sql``).
* ``migration.go``: the file is cut at ``-- migrate:up`` and ``-- migrate:down`` lines (column 0);
  each needs exactly one up and one down, and only blank or ``--`` lines may come before the up.
  ``transaction:false`` on either line runs that section outside a transaction.
* The ledger, ``schema_migrations(version)``, records the version string.

dbmate's format is the engine's, so a file is copied byte for byte under its new name. Refused,
with the fix: two files with one version (dbmate runs the first and then fails on the ledger's
primary key, or skips the second once the first is recorded), and a file with several
up/down sections (dbmate records the version once per section: the second fails after its SQL ran).
"""

from __future__ import annotations

import re
from pathlib import Path

from infra.migrations.importers.model import ImportRefused, SourceMigration

__all__ = ["read"]

_FILE = re.compile(r"^([0-9]+)(.*)\.sql$")
_UP = re.compile(r"(?m)^--\s*migrate:up(\s*$|\s+\S+)")
_DOWN = re.compile(r"(?m)^--\s*migrate:down(\s*$|\s+\S+)")


def read(source: Path) -> tuple[list[SourceMigration], list[str]]:
    """dbmate's migrations in dbmate's order, and the files dbmate ignores."""
    migrations: list[SourceMigration] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted(source.iterdir(), key=lambda p: p.name):
        m = _FILE.match(path.name)
        if not path.is_file() or m is None:
            skipped.append(path.name)
            continue
        version, rest = m.group(1), m.group(2)
        if version in seen:
            raise ImportRefused(
                f"{path.name}: version {version} is also {seen[version]}; dbmate records one version once, "
                "so it runs only one of them; fix: give one of them a new version (rename the file), "
                "or merge the two files"
            )
        seen[version] = path.name
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ImportRefused(f"{path.name}: not valid UTF-8; fix: save it as UTF-8") from None
        ups, downs = len(_UP.findall(text)), len(_DOWN.findall(text))
        if ups != 1 or downs > 1:
            raise ImportRefused(
                f"{path.name}: {ups} '-- migrate:up' and {downs} '-- migrate:down' lines; dbmate on PostgreSQL "
                "records the version once per section and fails on the second; fix: split it into one file per "
                "up/down pair"
            )
        if downs == 0:
            raise ImportRefused(
                f"{path.name}: no '-- migrate:down' line (dbmate refuses the file: ErrParseMissingDown); "
                "fix: add '-- migrate:down' at the end (an empty down section)"
            )
        migrations.append(
            SourceMigration(
                sources=(path.name,),
                version=version,
                name=rest.lstrip("_-. "),
                up=text,
                down=None,
                ledger_key=version,
                whole_file=True,
            )
        )
    return migrations, skipped
