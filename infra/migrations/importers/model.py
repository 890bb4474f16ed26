"""What every importer reads a history into, and the mapping file it leaves behind.

A reader (one module per tool) returns the tool's migrations in the order the tool runs them, as
:class:`SourceMigration` values: the original file names, the SQL of each section as written, how
the tool runs each section (in a transaction or not, or "decide from the statements" where the tool
itself decides so), and the key the tool's own ledger records for it (``ledger_key``).

:class:`ImportMap` is the JSON file ``.import-map.json`` written beside the imported files (hidden,
so the engine does not take it for a migration): original names -> new file, ledger key, order,
transaction modes and what the importer changed. ``baseline --from-ledger`` reads it to map the
old tool's ledger rows onto the new files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.errors import MigrationError

__all__ = ["MAP_FILE", "ImportMap", "ImportRefused", "MappedMigration", "SourceMigration"]

#: The mapping file's name in the destination directory.
MAP_FILE = ".import-map.json"
_MAP_FORMAT = "infra-import-map/1"


class ImportRefused(MigrationError):
    """The history cannot be imported without a human decision; the message names the file and the fix."""


@dataclass(frozen=True)
class SourceMigration:
    """One migration as the source tool sees it."""

    sources: tuple[str, ...]  # original file names, relative to the source directory
    version: str  # the tool's version digits ("20200101120000", "1", "001"); flyway: "1.2"
    name: str  # the tool's name part, before normalisation
    up: str  # SQL text of the up section (for dbmate: the whole file)
    down: str | None  # None: the tool has no down for it
    up_transaction: bool | None = True  # None: the tool decides from the statements (golang-migrate, flyway)
    down_transaction: bool | None = True
    ledger_key: str = ""  # what the tool's ledger stores for it
    whole_file: bool = False  # dbmate: ``up`` is the whole file in our format already
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MappedMigration:
    """One line of the mapping: where a source migration went and what was changed on the way."""

    file: str
    sources: tuple[str, ...]
    ledger_key: str
    order: int
    up_transaction: bool
    down_transaction: bool
    reversible: bool
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ImportMap:
    """The mapping file: which tool, from where, and one :class:`MappedMigration` per migration in order."""

    tool: str
    source: str
    migrations: tuple[MappedMigration, ...]
    skipped: tuple[str, ...] = field(default_factory=tuple)  # source files the tool itself ignores

    def by_key(self) -> dict[str, MappedMigration]:
        return {m.ledger_key: m for m in self.migrations}

    def dump(self) -> str:
        data: dict[str, Any] = {"format": _MAP_FORMAT, **asdict(self)}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    def write(self, directory: Path) -> Path:
        path = directory / MAP_FILE
        path.write_text(self.dump(), encoding="utf-8")
        return path

    @classmethod
    def read(cls, path: Path) -> ImportMap:
        """Raises :class:`MigrationError` for a missing or malformed file, naming it and the fix."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MigrationError(
                f"{path}: no import mapping; fix: import the history first (python -m infra import --from TOOL "
                "SRC DEST), or pass --mapping"
            ) from None
        except (OSError, ValueError) as exc:
            raise MigrationError(f"{path}: not a readable import mapping ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != _MAP_FORMAT:
            raise MigrationError(f"{path}: not an import mapping of format {_MAP_FORMAT!r}")
        try:
            migrations = tuple(
                MappedMigration(
                    file=str(m["file"]),
                    sources=tuple(str(s) for s in m["sources"]),
                    ledger_key=str(m["ledger_key"]),
                    order=int(m["order"]),
                    up_transaction=bool(m["up_transaction"]),
                    down_transaction=bool(m["down_transaction"]),
                    reversible=bool(m["reversible"]),
                    notes=tuple(str(n) for n in m.get("notes", ())),
                )
                for m in data["migrations"]
            )
            return cls(str(data["tool"]), str(data["source"]), migrations, tuple(data.get("skipped", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise MigrationError(f"{path}: malformed import mapping ({exc!r})") from None
