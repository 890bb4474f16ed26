"""``python -m infra import --from golang-migrate|dbmate|diesel|flyway SRC DEST``: another tool's
history, in the tool's own order, as this engine's files.

Each tool has a reader (:mod:`.dbmate`, :mod:`.golang_migrate` (with ory's popx), :mod:`.diesel`,
:mod:`.flyway`) that says what the tool itself would run, citing the tool's source. Then, for all:

* **order kept**: a file keeps the tool's version digits (padded to four) when their numeric order
  is the tool's order; otherwise, and for dotted versions (Flyway's ``1.2``), ``--renumber``
  numbers them 0001, 0002, ... in the tool's order. The import refuses rather than reorder.
* **names normalised**: ``<version>_<slug>.sql``, the slug lowercase ASCII letters, digits and ``_``.
* **transactions carried over**: a section the tool runs outside a transaction gets dbmate's
  ``transaction:false`` on its ``-- migrate:up`` / ``-- migrate:down`` line (diesel's
  ``run_in_transaction = false``, popx's ``.autocommit``, dbmate's own marker, Flyway's
  ``executeInTransaction=false``; golang-migrate and Flyway decide from the statements, and so
  does the importer). A file wrapped in its own ``BEGIN; ... COMMIT;`` loses the wrapper (the
  engine runs every migration in a transaction of its own); the mapping says so.
* **checked by the engine**: every new file is parsed by :func:`infra.migrations.source.parse`
  before anything is written, so an import that succeeds gives files ``migrate`` accepts.
* **a mapping file** (:data:`~.model.MAP_FILE`) records original names -> new file, the key the
  tool's ledger uses, the order and what was changed; ``baseline --from-ledger`` reads it.

Nothing is written unless the whole history imports: files go to a temporary directory beside
DEST, which is renamed into place at the end. DEST must not exist or be empty.
Raises :class:`~.model.ImportRefused` (a :class:`~infra.errors.MigrationError`) naming the file
and the fix.
"""

from __future__ import annotations

import itertools
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pglast.parser import ParseError

from infra.errors import MigrationParseError
from infra.migrations import source as source_files
from infra.migrations.importers import FORMATS, dbmate, diesel, flyway, golang_migrate
from infra.migrations.importers.model import ImportMap, ImportRefused, MappedMigration, SourceMigration
from infra.migrations.importers.sqltext import (
    TIMEOUT_DIRECTIVES,
    directive_lines,
    lift_timeouts,
    needs_autocommit,
    pieces,
    strip_wrapping_transaction,
)

__all__ = ["FORMATS", "ImportResult", "import_history"]

_DBMATE_SECTION = re.compile(r"(?m)^--\s*migrate:(up|down)(\s*$|\s+\S+)")


@dataclass(frozen=True)
class ImportResult:
    destination: Path
    mapping: ImportMap

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(m.file for m in self.mapping.migrations)


def import_history(
    tool: str,
    source: Path,
    destination: Path,
    *,
    renumber: bool = False,
    allow_missing_down: bool = False,
    dialect: str = "postgres",
) -> ImportResult:
    """Import ``tool``'s history from ``source`` into the new directory ``destination``."""
    if not source.is_dir():
        raise ImportRefused(f"{source}: not a directory; fix: point SRC at the {tool} migrations directory")
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ImportRefused(f"{destination}: exists and is not empty; fix: import into a new directory")
    if tool == "dbmate":
        read, skipped = dbmate.read(source)
    elif tool == "golang-migrate":
        read, skipped = golang_migrate.read(source, allow_missing_down=allow_missing_down, dialect=dialect)
    elif tool == "diesel":
        read, skipped = diesel.read(source, allow_missing_down=allow_missing_down)
    elif tool == "flyway":
        read, skipped = flyway.read(source)
    else:
        raise ImportRefused(f"unknown tool {tool!r}; known: {', '.join(FORMATS)}")
    if not read:
        raise ImportRefused(f"{source}: no {tool} migrations found; fix: point SRC at the migrations directory")
    versions = _versions(tool, read, renumber)
    written: list[tuple[str, bytes]] = []
    mapped: list[MappedMigration] = []
    for order, (mig, version) in enumerate(zip(read, versions, strict=True), start=1):
        slug = _slug(mig.name)
        filename = f"{version}_{slug}.sql" if slug else f"{version}.sql"
        text, up_tx, down_tx, notes = _compose(tool, mig)
        data = text.encode("utf-8")
        try:
            source_files.parse(Path(filename), raw=data)
        except MigrationParseError as exc:
            raise ImportRefused(f"{', '.join(mig.sources)}: the engine refuses it as {filename}: {exc}") from None
        written.append((filename, data))
        mapped.append(
            MappedMigration(
                file=filename,
                sources=mig.sources,
                ledger_key=mig.ledger_key,
                order=order,
                up_transaction=up_tx,
                down_transaction=down_tx,
                reversible=mig.down is not None or mig.whole_file,
                notes=mig.notes + tuple(notes),
            )
        )
    mapping = ImportMap(tool, str(source.resolve()), tuple(mapped), tuple(skipped))
    _write(destination, written, mapping)
    return ImportResult(destination, mapping)


def _versions(tool: str, read: Sequence[SourceMigration], renumber: bool) -> list[str]:
    """The new files' versions: the tool's own where that keeps its order, else 1..N with --renumber."""
    if renumber:
        width = max(4, len(str(len(read))))
        return [str(i).zfill(width) for i in range(1, len(read) + 1)]
    for mig in read:
        if not (mig.version.isascii() and mig.version.isdigit()):
            raise ImportRefused(
                f"{mig.sources[0]}: version {mig.version!r} is not a whole number; fix: --renumber "
                "(numbers the files 0001, 0002, ... in the order the tool runs them)"
            )
    for before, after in itertools.pairwise(read):
        if int(before.version) == int(after.version):
            raise ImportRefused(
                f"{after.sources[0]}: version {after.version} is the same number as {before.sources[0]}'s "
                f"({before.version}) for this engine, which compares versions as numbers; fix: --renumber"
            )
        if int(before.version) > int(after.version):
            raise ImportRefused(
                f"{tool} runs {before.sources[0]} before {after.sources[0]} (it compares names as strings) but "
                f"version {after.version} is the smaller number; fix: --renumber (keeps {tool}'s order)"
            )
    return [mig.version.zfill(4) for mig in read]


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", ascii_name.lower()).strip("_")


def _compose(tool: str, mig: SourceMigration) -> tuple[str, bool, bool, list[str]]:
    """Our file's text, the up and down transaction modes, and what was changed."""
    notes: list[str] = []
    timeouts: dict[str, str] = {}
    if mig.whole_file:
        return _compose_dbmate(mig, notes, timeouts)
    up, up_tx = _section(mig, mig.up, mig.up_transaction, "up", notes, timeouts)
    lines = ["-- migrate:up" + _option(up_tx), up]
    down_tx = True
    if mig.down is not None:
        down, down_tx = _section(mig, mig.down, mig.down_transaction, "down", notes, timeouts)
        lines += ["-- migrate:down" + _option(down_tx), down]
    head = [f"-- imported from {tool}: {', '.join(mig.sources)}", *_timeout_lines(timeouts)]
    return "\n".join(line.rstrip("\n") for line in [*head, *lines]) + "\n", up_tx, down_tx, notes


def _compose_dbmate(
    mig: SourceMigration, notes: list[str], timeouts: dict[str, str]
) -> tuple[str, bool, bool, list[str]]:
    """dbmate's file is already in our format: kept as is, except a wrapping BEGIN/COMMIT in a section
    and the runner's timeouts set in SQL (they become directives before ``-- migrate:up``)."""
    text = mig.up
    marks = list(_DBMATE_SECTION.finditer(text))
    modes = {m.group(1): "transaction:false" not in m.group(2).split() for m in marks}
    out, last = [], 0
    for i, mark in enumerate(marks):
        out.append(text[last : mark.end()])
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        body, stripped = _strip(mig, text[mark.end() : end])
        if stripped:
            notes.append(f"wrapping BEGIN/COMMIT removed from the {mark.group(1)} section")
        out.append(_lift(mig, body, mark.group(1), notes, timeouts))
        last = end
    lifted = "".join(out)
    if timeouts:
        up_at = marks[0].start()
        lifted = lifted[:up_at] + "".join(f"{line}\n" for line in _timeout_lines(timeouts)) + lifted[up_at:]
    return lifted, modes.get("up", True), modes.get("down", True), notes


def _section(
    mig: SourceMigration,
    text: str,
    transaction: bool | None,
    which: str,
    notes: list[str],
    timeouts: dict[str, str],
) -> tuple[str, bool]:
    for line in directive_lines(text):
        raise ImportRefused(
            f"{_source_for(mig, which)}:{line}: a line starting '-- migrate:' would be read as a directive; "
            "fix: indent it or reword the comment"
        )
    body, stripped = _strip(mig, text)
    if stripped:
        notes.append(f"wrapping BEGIN/COMMIT removed from the {which} section")
    body = _lift(mig, body, which, notes, timeouts)
    if transaction is None:  # the tool decides from the statements: so do we
        try:
            transaction = not any(needs_autocommit(p) for p in pieces(body))
        except ParseError as exc:
            raise ImportRefused(f"{_source_for(mig, which)}: not valid PostgreSQL 16 SQL: {exc}") from None
        if not transaction:
            notes.append(f"{which} section runs outside a transaction (a statement PostgreSQL refuses in one)")
    return body, transaction


def _strip(mig: SourceMigration, text: str) -> tuple[str, bool]:
    try:
        return strip_wrapping_transaction(text)
    except ParseError:
        return text, False  # the engine's parse reports the syntax error with its line


def _lift(mig: SourceMigration, text: str, which: str, notes: list[str], timeouts: dict[str, str]) -> str:
    """The runner owns lock_timeout and statement_timeout: a SET of either becomes the file's directive."""
    try:
        body, found = lift_timeouts(text)
    except ParseError:
        return text  # the engine's parse reports the syntax error with its line
    except ValueError as exc:
        raise ImportRefused(f"{_source_for(mig, which)}: {exc}; fix: set it to a duration like 10s") from None
    for name, value in found.items():
        if timeouts.setdefault(name, value) != value:
            raise ImportRefused(
                f"{', '.join(mig.sources)}: {name} is {timeouts[name]} in one section and {value} in the other; "
                "the engine sets one value per migration; fix: use one value"
            )
        notes.append(
            f"SET {name} = {value} in the {which} section became '-- migrate:{TIMEOUT_DIRECTIVES[name]} {value}'"
        )
    return body


def _timeout_lines(timeouts: dict[str, str]) -> list[str]:
    return [f"-- migrate:{TIMEOUT_DIRECTIVES[name]} {value}" for name, value in sorted(timeouts.items())]


def _source_for(mig: SourceMigration, which: str) -> str:
    if which == "down" and len(mig.sources) > 1:
        return mig.sources[1]
    return mig.sources[0]


def _option(transaction: bool) -> str:
    return "" if transaction else " transaction:false"


def _write(destination: Path, files: Sequence[tuple[str, bytes]], mapping: ImportMap) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}-", dir=destination.parent))
    try:
        for name, data in files:
            (staging / name).write_bytes(data)
        mapping.write(staging)
        if destination.exists():
            destination.rmdir()  # empty (checked): replaced by the finished directory
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
