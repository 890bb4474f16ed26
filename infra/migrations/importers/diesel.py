"""diesel (github.com/diesel-rs/diesel, ``diesel_migrations``): one directory per migration,
``<version>_<name>/up.sql``, ``down.sql`` and an optional ``metadata.toml``.

From ``migrations_internals/src/lib.rs`` and ``file_based_migrations.rs``:

* every non-hidden directory is a migration and must hold ``up.sql``; its version is the part of
  the name before the first ``_`` with the ``-`` removed (``2017-01-01-000000_x`` -> ``20170101000000``),
  and migrations run in the order of their versions compared as strings. The ledger,
  ``__diesel_schema_migrations(version)``, records that version.
* ``metadata.toml``: ``run_in_transaction`` (default true when the file is absent). When the
  file exists without the key, serde's ``#[serde(default)]`` makes it **false**; that is kept,
  and said in the mapping. A ``metadata.toml`` diesel cannot read is silently ignored by diesel
  (run in a transaction); here it is refused, since the author meant something by it.
* without ``down.sql`` diesel cannot revert the migration: refused unless ``--allow-missing-down``.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from infra.migrations.importers.model import ImportRefused, SourceMigration

__all__ = ["read"]


def read(source: Path, *, allow_missing_down: bool = False) -> tuple[list[SourceMigration], list[str]]:
    """diesel's migrations in diesel's order, and the entries it ignores."""
    found: list[tuple[str, SourceMigration]] = []
    skipped: list[str] = []
    seen: dict[str, str] = {}
    for path in sorted(source.iterdir(), key=lambda p: p.name):
        if path.name.startswith(".") or not path.is_dir():
            skipped.append(path.name)
            continue
        up = path / "up.sql"
        if not up.is_file():
            raise ImportRefused(f"{path.name}/: no up.sql (diesel refuses the directory); fix: add it or move it away")
        prefix, _, title = path.name.partition("_")
        version = prefix.replace("-", "")
        if not version.isascii() or not version.isdigit():
            raise ImportRefused(
                f"{path.name}/: version {prefix!r} is not digits (and dashes); fix: rename the directory "
                "to <timestamp>_<name>"
            )
        if version in seen:
            raise ImportRefused(
                f"{path.name}/: version {version} is also {seen[version]}/; fix: give one of them a new version"
            )
        seen[version] = path.name
        down = path / "down.sql"
        if not down.is_file() and not allow_missing_down:
            raise ImportRefused(
                f"{path.name}/: no down.sql; fix: write one, or import it as irreversible with --allow-missing-down"
            )
        transaction, note = _run_in_transaction(path)
        sources = [f"{path.name}/up.sql"]
        if down.is_file():
            sources.append(f"{path.name}/down.sql")
        if (path / "metadata.toml").is_file():
            sources.append(f"{path.name}/metadata.toml")
        notes = tuple(n for n in (note, None if down.is_file() else "no down.sql: imported as irreversible") if n)
        found.append(
            (
                version,
                SourceMigration(
                    sources=tuple(sources),
                    version=version,
                    name=title,
                    up=_text(up, path.name),
                    down=_text(down, path.name) if down.is_file() else None,
                    up_transaction=transaction,
                    down_transaction=transaction,
                    ledger_key=version,
                    notes=notes,
                ),
            )
        )
    found.sort(key=lambda item: item[0])  # diesel sorts the versions as strings
    return [m for _, m in found], skipped


def _run_in_transaction(directory: Path) -> tuple[bool, str | None]:
    path = directory / "metadata.toml"
    if not path.is_file():
        return True, None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ImportRefused(
            f"{directory.name}/metadata.toml: not valid TOML ({exc}); diesel would ignore it and run the "
            "migration in a transaction; fix: correct it (run_in_transaction = true or false)"
        ) from None
    value = data.get("run_in_transaction")
    if value is None:
        return False, "metadata.toml has no run_in_transaction: diesel reads that as false (serde default)"
    if not isinstance(value, bool):
        raise ImportRefused(f"{directory.name}/metadata.toml: run_in_transaction must be true or false")
    return value, None


def _text(path: Path, directory: str) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ImportRefused(f"{directory}/{path.name}: not valid UTF-8; fix: save it as UTF-8") from None
