"""Migration files on disk: names and versions, checksums, and dbmate's file format.

A migration is ``<version>_<slug>.sql`` (or ``<version>.sql``): the version is any number of ASCII
digits, compared as a number (``9_a.sql`` runs before ``10_b.sql``, 20-digit timestamps are fine);
the slug is letters, digits, ``_`` and ``-``. Every other entry of the directory, except hidden
ones, is refused with the rename that fixes it (``0008_x.SQL``, ``٠٠٠٨_x.sql``, ``notes.txt``).

The format is dbmate's (github.com/amacneil/dbmate, ``pkg/dbmate/migration.go``)::

    -- migrate:up transaction:false
    CREATE INDEX CONCURRENTLY users_email ON users (email);
    -- migrate:down
    DROP INDEX CONCURRENTLY users_email;

Directive lines start at column 0 (``-- migrate:`` indented is a comment, as in dbmate). Before
``-- migrate:up`` only blank and ``--`` lines may stand. ``transaction:false`` on the up or the down
line runs that section statement by statement outside a transaction. An empty or comment-only
section is a no-op (recorded, and reported as one). ``-- migrate:irreversible`` marks a migration
that cannot be rolled back (so does a missing down section); ``rollback`` refuses it by name.

This engine's own directives (comments to dbmate): ``no-transaction`` (both sections run outside a
transaction), ``lock-timeout <dur>``, ``statement-timeout <dur>``, ``allow <squawk-rule>...``.

A checksum is the sha256 of the file normalised so that editors and checkouts cannot change it: a
UTF-8 BOM is dropped and CRLF / CR line endings become LF. A file with a NUL byte or invalid UTF-8
is refused with its line (libpq would end the query at the NUL and run the rest unseen).

:func:`load` never stops at a bad file: it returns the good ones and the :class:`BrokenFile` s, so
``status``/``plan``/``validate`` still show the rest and ``migrate`` stops at the broken one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import MigrationParseError
from infra.migrations.statements import SqlError, Statement, split

__all__ = [
    "FILENAME_RE",
    "BrokenFile",
    "Directives",
    "Migration",
    "Section",
    "Source",
    "Statement",
    "checksum",
    "load",
    "manifest",
    "normalize",
    "parse",
]

FILENAME_RE = re.compile(r"(?P<version>[0-9]+)(?:_(?P<slug>[A-Za-z0-9][A-Za-z0-9_-]*))?\.sql", re.ASCII)
_DIRECTIVE_RE = re.compile(r"^--[ \t]*migrate:(?P<name>\S*)(?P<rest>[^\n]*)$", re.MULTILINE)
# PostgreSQL durations for lock_timeout / statement_timeout; zero (no timeout) is not allowed.
_DURATION_RE = re.compile(r"0*[1-9][0-9]*(ms|s|min|h|d)")
_RULE_RE = re.compile(r"[a-z][a-z0-9-]*")
_KNOWN = "up, down, irreversible, no-transaction, lock-timeout, statement-timeout, allow"


def normalize(raw: bytes) -> bytes:
    """The bytes a checksum is taken of: no BOM, LF line endings."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum(path: Path) -> str:
    """Hex sha256 of the normalised file."""
    return hashlib.sha256(normalize(path.read_bytes())).hexdigest()


def manifest(directory: Path) -> tuple[str, ...]:
    """Sorted ``"<file>:<sha256>"`` entries: the ``migrations`` stack output and the post-deploy triggers."""
    files = sorted(p for p in directory.glob("*.sql") if p.is_file())
    return tuple(f"{p.name}:{checksum(p)}" for p in files)


@dataclass(frozen=True)
class Directives:
    """The engine's ``-- migrate:`` settings of one file.

    ``no_transaction`` is true when the up section runs outside a transaction (``-- migrate:no-transaction``
    or ``-- migrate:up transaction:false``); the down section's mode is on :class:`Section`.
    """

    no_transaction: bool = False
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    allow: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Section:
    """The statements of an up or down section, the line of its directive and how it runs."""

    statements: tuple[Statement, ...]
    line: int
    transaction: bool = True

    @property
    def empty(self) -> bool:
        """Only comments or nothing: a no-op."""
        return not self.statements


@dataclass(frozen=True)
class Migration:
    """A parsed migration file."""

    version: int
    name: str  # the slug ('' for <version>.sql)
    path: Path
    checksum: str
    directives: Directives
    up_section: Section
    down_section: Section | None = None
    irreversible_line: int | None = None  # line of '-- migrate:irreversible'

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """``0004_add_index``: how progress lines and messages name a migration."""
        return self.path.stem

    @property
    def up(self) -> tuple[Statement, ...]:
        return self.up_section.statements

    @property
    def down(self) -> tuple[Statement, ...]:
        return self.down_section.statements if self.down_section else ()

    @property
    def down_line(self) -> int | None:
        """Line of '-- migrate:down' (lint blanks the file from there on)."""
        return self.down_section.line if self.down_section else None

    @property
    def reversible(self) -> bool:
        return self.down_section is not None and self.irreversible_line is None

    def irreversible_reason(self) -> str:
        if self.irreversible_line is not None:
            return f"{self.filename} is marked '-- migrate:irreversible' (line {self.irreversible_line})"
        return f"{self.filename} has no '-- migrate:down' section"


@dataclass(frozen=True)
class BrokenFile:
    """A file that is not a valid migration: what ``migrate`` stops at, and status reports."""

    filename: str
    version: int | None  # None when the name itself is wrong (its place in the order is unknown)
    checksum: str | None
    error: MigrationParseError

    def describe(self) -> str:
        return str(self.error)


@dataclass(frozen=True)
class Source:
    """A migrations directory: the parsed files in version order, and the broken ones."""

    directory: Path
    migrations: tuple[Migration, ...] = ()
    broken: tuple[BrokenFile, ...] = ()


# -- names ----------------------------------------------------------------------------------------


def version_of(name: str) -> int:
    """The version of a migration file name. Raises :class:`MigrationParseError` with the fix."""
    m = FILENAME_RE.fullmatch(name)
    if m is not None:
        return int(m.group("version"))
    raise MigrationParseError(_name_problem(name), file=name, fix=_name_fix(name))


def _name_problem(name: str) -> str:
    digits = re.match(r"\d+", name)  # any script's digits
    if digits and not digits.group(0).isascii():
        return "the version must be ASCII digits 0-9"
    if not name[:1].isdigit():
        return "not a migration file name (<digits>_<slug>.sql)"
    if not name.endswith(".sql"):
        return "a migration file name ends in '.sql' (lowercase)"
    return "the slug may hold only letters, digits, '_' and '-' after '<digits>_'"


def _name_fix(name: str) -> str:
    digits = re.match(r"\d+", name)
    fixed = name
    if digits:
        ascii_digits = "".join(str(unicodedata.digit(c)) for c in digits.group(0))
        fixed = ascii_digits + name[digits.end() :]
    stem, dot, ext = fixed.rpartition(".")
    if dot and ext.lower() == "sql":
        fixed = f"{stem}.sql"
    if fixed != name and FILENAME_RE.fullmatch(fixed):
        return f"rename it to {fixed!r}"
    return "rename it like 0001_create_users.sql, or move it out of the migrations directory"


# -- parsing --------------------------------------------------------------------------------------


def parse(path: Path, raw: bytes | None = None) -> Migration:
    """Parse one migration file. Raises :class:`MigrationParseError` naming the file and the line."""
    name = path.name
    version = version_of(name)
    raw = path.read_bytes() if raw is None else raw
    # the checksum ignores the BOM and the line endings; the SQL is the file's own bytes (BOM aside), as
    # psql and dbmate send it: a CRLF inside a string literal is data (zabbix's data.sql has 34,834 of them)
    data = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    nul = data.find(b"\x00")
    if nul >= 0:
        raise MigrationParseError(
            "nul byte in the file", file=name, line=data.count(b"\n", 0, nul) + 1, fix="remove it"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise MigrationParseError("not valid utf-8", file=name, line=line, fix="save the file as UTF-8") from None
    try:
        return _parse_text(path, version, text, hashlib.sha256(normalize(data)).hexdigest())
    except SqlError as exc:
        raise MigrationParseError(exc.message, file=name, line=exc.line, fix=exc.fix) from None


@dataclass
class _Directive:
    line: int
    start: int  # offset of the line
    end: int  # offset just after the line (and its newline)
    name: str
    rest: str


def _directives(text: str) -> list[_Directive]:
    found: list[_Directive] = []
    line, pos = 1, 0
    for m in _DIRECTIVE_RE.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        end = m.end() + 1 if m.end() < len(text) else m.end()
        found.append(_Directive(line, m.start(), end, m.group("name").lower(), m.group("rest").strip()))
    return found


def _parse_text(path: Path, version: int, text: str, digest: str) -> Migration:
    up: _Directive | None = None
    down: _Directive | None = None
    options: dict[str, bool | None] = {}
    no_tx_line: int | None = None
    irreversible_line: int | None = None
    timeouts: dict[str, str] = {}
    allow: set[str] = set()
    seen: dict[str, int] = {}
    for d in _directives(text):
        if d.name != "allow" and d.name in seen:
            raise SqlError(d.line, f"directive 'migrate:{d.name}' repeated (first on line {seen[d.name]})")
        seen[d.name] = d.line
        if d.name in ("up", "down"):
            if d.name == "down" and up is None:
                raise SqlError(d.line, "'-- migrate:down' comes before '-- migrate:up'")
            options[d.name] = _transaction_option(d)
            up, down = (d, down) if d.name == "up" else (up, d)
        elif d.name in ("no-transaction", "irreversible"):
            if d.name == "no-transaction":
                _no_argument(d)
                no_tx_line = d.line
            else:
                irreversible_line = d.line  # the rest of the line is the reviewer's reason
        elif d.name in ("lock-timeout", "statement-timeout"):
            if not _DURATION_RE.fullmatch(d.rest):
                raise SqlError(
                    d.line, f"'migrate:{d.name}' needs a duration above zero like 5s, 500ms or 2min, got {d.rest!r}"
                )
            timeouts[d.name] = d.rest
        elif d.name == "allow":
            rules = d.rest.split()
            if not rules or not all(_RULE_RE.fullmatch(r) for r in rules):
                raise SqlError(d.line, f"'migrate:allow' needs squawk rule names, got {d.rest!r}")
            allow.update(rules)
        else:
            raise SqlError(d.line, f"unknown directive 'migrate:{d.name}'; known: {_KNOWN}")
    if up is None:
        raise SqlError(1, "no '-- migrate:up' line; every migration has one", "add '-- migrate:up' before its SQL")
    _check_header(text[: up.start])
    if no_tx_line is not None and (options.get("up") is not None or options.get("down") is not None):
        raise SqlError(no_tx_line, "'-- migrate:no-transaction' and a transaction: option both given; keep one")
    up_tx = no_tx_line is None and options.get("up") is not False
    down_tx = no_tx_line is None and options.get("down") is not False
    up_section = _section(text[up.end : down.start if down else len(text)], up.line, up_tx, "up")
    down_section = _section(text[down.end :], down.line, down_tx, "down") if down else None
    if irreversible_line is not None and down_section is not None and not down_section.empty:
        raise SqlError(
            irreversible_line,
            "marked '-- migrate:irreversible' but its down section has SQL",
            "remove the marker or the down section",
        )
    m = FILENAME_RE.fullmatch(path.name)
    return Migration(
        version=version,
        name=(m.group("slug") if m else None) or "",
        path=path,
        checksum=digest,
        directives=Directives(
            no_transaction=not up_tx,
            lock_timeout=timeouts.get("lock-timeout"),
            statement_timeout=timeouts.get("statement-timeout"),
            allow=frozenset(allow),
        ),
        up_section=up_section,
        down_section=down_section,
        irreversible_line=irreversible_line,
    )


def _transaction_option(d: _Directive) -> bool | None:
    """dbmate's ``transaction:false`` (options are ``key:value`` words on the up/down line)."""
    value: bool | None = None
    for word in d.rest.split():
        key, sep, raw = word.partition(":")
        if key != "transaction" or not sep:
            raise SqlError(d.line, f"unknown option {word!r} on '-- migrate:{d.name}'; known: transaction:false")
        if raw not in ("true", "false"):
            raise SqlError(
                d.line,
                f"{word!r} is neither transaction:true nor transaction:false (dbmate reads it as true)",
                "write transaction:false in lowercase",
            )
        value = raw == "true"
    return value


def _no_argument(d: _Directive) -> None:
    if d.rest:
        raise SqlError(d.line, f"'migrate:{d.name}' takes no argument, got {d.rest!r}")


def _check_header(head: str) -> None:
    """Only blank and ``--`` lines before the up section (dbmate refuses anything else)."""
    for number, text in enumerate(head.split("\n"), start=1):
        stripped = text.strip()
        if stripped and not stripped.startswith("--"):
            raise SqlError(number, "SQL before '-- migrate:up'", "move it into the up section")


def _section(text: str, line: int, transaction: bool, which: str) -> Section:
    statements = split(text, line + 1)
    if transaction:
        for stmt in statements:
            if stmt.autocommit:
                raise SqlError(
                    stmt.line,
                    "this statement cannot run inside a transaction",
                    f"add transaction:false to its '-- migrate:{which}' line",
                )
    else:
        for stmt in statements:
            if stmt.kind == "TransactionStmt":  # only savepoints get this far (statements.py refuses the rest)
                raise SqlError(
                    stmt.line,
                    "a savepoint needs a transaction, and this section runs outside one (transaction:false)",
                    f"remove it, or drop transaction:false from its '-- migrate:{which}' line",
                )
    return Section(statements, line, transaction)


# -- a directory ----------------------------------------------------------------------------------


def load(directory: Path) -> Source:
    """Parse every migration in ``directory`` (absent means none), in version order.

    Never raises for a file: a bad one (its name, its content, a version another file also has)
    becomes a :class:`BrokenFile`. Raises :class:`MigrationParseError` only if ``directory`` is a file.
    """
    if not directory.exists():
        return Source(directory)
    if not directory.is_dir():
        raise MigrationParseError("not a directory", file=str(directory), fix="pass the migrations directory")
    good: list[Migration] = []
    broken: list[BrokenFile] = []
    for path in sorted(p for p in directory.iterdir() if not p.name.startswith(".")):
        digest = checksum(path) if path.is_file() else None
        try:
            if not path.is_file():
                raise MigrationParseError(
                    "not a migration file", file=path.name, fix="move it out of the migrations directory"
                )
            good.append(parse(path))
        except MigrationParseError as exc:
            match = FILENAME_RE.fullmatch(path.name)
            broken.append(BrokenFile(path.name, int(match.group("version")) if match else None, digest, exc))
    by_version: defaultdict[int, list[str]] = defaultdict(list)
    for version, filename in [*((m.version, m.filename) for m in good), *((b.version, b.filename) for b in broken)]:
        if version is not None:
            by_version[version].append(filename)
    clashes = {v: names for v, names in by_version.items() if len(names) > 1}
    for mig in [m for m in good if m.version in clashes]:
        good.remove(mig)
        others = ", ".join(n for n in clashes[mig.version] if n != mig.filename)
        error = MigrationParseError(
            f"version {mig.version} is also used by {others}", file=mig.filename, fix="renumber one of them"
        )
        broken.append(BrokenFile(mig.filename, mig.version, mig.checksum, error))
    good.sort(key=lambda m: m.version)
    broken.sort(key=lambda b: (b.version is not None, b.version or 0, b.filename))
    return Source(directory, tuple(good), tuple(broken))
