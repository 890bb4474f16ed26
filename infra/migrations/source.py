"""Migration files on disk: discovery, normalisation, checksums and parsing.

A checksum is the sha256 of the file normalised so that editors and checkouts cannot change it:
a UTF-8 BOM is dropped and CRLF / CR line endings become LF.

A migration file is ``NNNN_slug.sql``::

    -- migrate:up
    -- migrate:lock-timeout 10s
    CREATE TABLE ...;
    -- migrate:down
    DROP TABLE ...;

Directives are ``-- migrate:<name> [argument]`` lines anywhere in the file (outside strings and
dollar-quoted bodies) and apply to the whole file: ``up``, ``down``, ``no-transaction``,
``lock-timeout <dur>``, ``statement-timeout <dur>``, ``allow <squawk-rule> [...]``.
Every parse error names the file and the line.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.errors import MigrationParseError

__all__ = [
    "FILENAME_RE",
    "Directives",
    "Migration",
    "Statement",
    "checksum",
    "discover",
    "load",
    "manifest",
    "normalize",
    "parse",
    "split_statements",
]

FILENAME_RE = re.compile(r"^(?P<version>\d{4,})_(?P<slug>[a-z0-9][a-z0-9_]*)\.sql$")

# PostgreSQL duration literals accepted by lock_timeout / statement_timeout.
_DURATION_RE = re.compile(r"^\d+(us|ms|s|min|h|d)$")
_DIRECTIVE_RE = re.compile(r"^--\s*migrate:(?P<name>[A-Za-z-]*)\s*(?P<arg>.*?)\s*$")
_RULE_RE = re.compile(r"^[a-z][a-z0-9-]*$")

# Statements PostgreSQL refuses inside a transaction block: a file holding one must say
# `-- migrate:no-transaction`, which we check before anything runs rather than letting the
# server fail half-way through a run.
_NEEDS_AUTOCOMMIT = re.compile(
    r"^(create\s+(unique\s+)?index\s+concurrently"
    r"|drop\s+index\s+concurrently"
    r"|reindex\b.*\bconcurrently"
    r"|alter\s+table\b.*\bdetach\s+partition\b.*\bconcurrently"
    r"|vacuum\b|create\s+database\b|drop\s+database\b|alter\s+system\b"
    r"|create\s+tablespace\b|drop\s+tablespace\b)",
    re.IGNORECASE | re.DOTALL,
)
# Transaction control: the runner owns transactions (one per migration, or autocommit
# statement by statement), so a file that opens or ends one would break both guarantees.
_TX_CONTROL = re.compile(
    r"^(begin|start\s+transaction|commit|end|abort|rollback(?!\s+to\b)|prepare\s+transaction)\b",
    re.IGNORECASE,
)


_RELEASES_LOCK = re.compile(r"^discard\b|\bpg_advisory_unlock_all\s*\(", re.IGNORECASE)
_COPY_STDIN = re.compile(r"^copy\b.*\bfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)


def normalize(raw: bytes) -> bytes:
    """The bytes a checksum is taken of: no BOM, LF line endings."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    return raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def checksum(path: Path) -> str:
    """Hex sha256 of the normalised file."""
    return hashlib.sha256(normalize(path.read_bytes())).hexdigest()


def discover(directory: Path) -> list[Path]:
    """The ``*.sql`` files of ``directory``, sorted by name (files that do not match are not migrations)."""
    return sorted(p for p in directory.glob("*.sql") if p.is_file())


def manifest(directory: Path) -> tuple[str, ...]:
    """Sorted ``"<file>:<sha256>"`` entries: the ``migrations`` stack output and the post-deploy triggers."""
    return tuple(f"{p.name}:{checksum(p)}" for p in discover(directory))


@dataclass(frozen=True)
class Statement:
    """One SQL statement of a section: its text (no trailing ``;``), first line in the file, hash."""

    text: str
    line: int

    @property
    def sha256(self) -> str:
        """Hash of the statement with surrounding whitespace removed (what resume verifies)."""
        return hashlib.sha256(self.text.strip().encode()).hexdigest()


@dataclass(frozen=True)
class Directives:
    """The ``-- migrate:`` settings of one file."""

    no_transaction: bool = False
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    allow: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Migration:
    """A parsed migration file. ``up`` and ``down`` are the statements of each section."""

    version: int
    name: str
    path: Path
    checksum: str
    up_sql: str
    down_sql: str | None
    directives: Directives
    up: tuple[Statement, ...]
    down: tuple[Statement, ...]
    down_line: int | None = None  # line of '-- migrate:down' (lint blanks from there on)

    @property
    def filename(self) -> str:
        return self.path.name

    @property
    def label(self) -> str:
        """``0004_add_index``: how progress lines and messages name a migration."""
        return self.path.stem

    @property
    def statements(self) -> tuple[Statement, ...]:
        """The up statements, run one by one for a ``no-transaction`` file."""
        return self.up

    @property
    def reversible(self) -> bool:
        return bool(self.down)


# -- lexing ---------------------------------------------------------------------------------------

_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$]")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9$]*")


def _scan(text: str) -> Iterator[tuple[int, str]]:
    """Yield ``(offset, kind)`` for the structure of ``text``.

    Kinds: ``";"`` a top-level semicolon, ``"nl"`` a newline outside any literal or block
    comment (where a directive line may start), ``"word:<lower>"`` a bare keyword. Literals
    (quotes, E-strings, quoted identifiers, dollar quotes) and comments are skipped whole, so a
    ``;`` or ``-- migrate:down`` inside a function body is never mistaken for structure.
    Raises ``ValueError(offset)`` on an unterminated literal or comment.
    """
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            yield i, "nl"
            i += 1
        elif c == "-" and text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and text.startswith("/*", i):
            depth, j = 1, i + 2
            while depth and j < n:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            if depth:
                raise ValueError(i)
            i = j
        elif c == "'":
            escapes = i > 0 and text[i - 1] in "eE" and (i < 2 or not _IDENT_CHAR.match(text[i - 2]))
            j = i + 1
            while True:
                if j >= n:
                    raise ValueError(i)
                if escapes and text[j] == "\\":
                    j += 2
                    continue
                if text[j] == "'":
                    if j + 1 < n and text[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == '"':
            j = i + 1
            while True:
                j = text.find('"', j)
                if j < 0:
                    raise ValueError(i)
                if text.startswith('""', j):
                    j += 2
                    continue
                break
            i = j + 1
        elif c == "$" and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
            m = _DOLLAR_TAG.match(text, i)
            if m is None:
                i += 1
                continue
            end = text.find(m.group(0), m.end())
            if end < 0:
                raise ValueError(i)
            i = end + len(m.group(0))
        elif c == ";":
            yield i, ";"
            i += 1
        elif (c.isalpha() or c == "_") and (i == 0 or not _IDENT_CHAR.match(text[i - 1])):
            m = _WORD.match(text, i)
            assert m is not None
            yield i, "word:" + m.group(0).lower()
            i = m.end()
        else:
            i += 1


def _line_of(text: str, offset: int, first_line: int) -> int:
    return first_line + text.count("\n", 0, offset)


def _has_code(chunk: str) -> bool:
    """True when ``chunk`` holds anything but whitespace and comments."""
    stripped = re.sub(r"--[^\n]*", "", chunk)
    stripped = re.sub(r"/\*.*?\*/", "", stripped, flags=re.DOTALL)
    return bool(stripped.strip())


def split_statements(text: str, first_line: int = 1) -> tuple[Statement, ...]:
    """Split SQL into statements on top-level ``;`` (comments and literals respected).

    Inside ``CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END`` the semicolons belong to the
    body, as psql treats them. Raises ``ValueError(offset)`` on an unterminated literal.
    """
    statements: list[Statement] = []
    start = 0
    words: list[str] = []
    depth = 0
    for offset, kind in _scan(text):
        if kind.startswith("word:"):
            word = kind[5:]
            words.append(word)
            is_routine = len(words) >= 2 and words[0] == "create" and ({"function", "procedure"} & set(words[1:5]))
            if is_routine and word in ("begin", "case"):
                depth += 1
            elif is_routine and word == "end" and depth:
                depth -= 1
        elif kind == ";" and depth == 0:
            chunk = text[start:offset]
            if _has_code(chunk):
                statements.append(_statement(chunk, text, start, first_line))
            start, words = offset + 1, []
    tail = text[start:]
    if _has_code(tail):
        statements.append(_statement(tail, text, start, first_line))
    return tuple(statements)


def _statement(chunk: str, text: str, start: int, first_line: int) -> Statement:
    # the statement starts at its first non-blank character; leading comments stay with it
    lead = len(chunk) - len(chunk.lstrip())
    return Statement(text=chunk.strip(), line=_line_of(text, start + lead, first_line))


def _first_keywords(stmt: Statement) -> str:
    """The statement with leading comments removed, for classifying it."""
    body = re.sub(r"^(\s*(--[^\n]*|/\*.*?\*/))*\s*", "", stmt.text, flags=re.DOTALL)
    return body


# -- parsing --------------------------------------------------------------------------------------


def parse(path: Path, raw: bytes | None = None) -> Migration:
    """Parse one migration file. Raises :class:`MigrationParseError` naming the file and line."""
    name = path.name
    m = FILENAME_RE.match(name)
    if m is None:
        raise MigrationParseError(f"{name}: file name must be NNNN_slug.sql (digits, '_', lowercase slug)")
    data = normalize(path.read_bytes() if raw is None else raw)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MigrationParseError(f"{name}:{line}: not valid utf-8") from exc

    def fail(line: int, message: str) -> MigrationParseError:
        return MigrationParseError(f"{name}:{line}: {message}")

    # Directive lines are found only at top-level line starts (never inside a literal or body).
    line_starts = [0] + [off + 1 for off, kind in _safe_scan(text, name) if kind == "nl"]
    up_at: tuple[int, int] | None = None  # (line number, offset of the directive line's end)
    down_at: tuple[int, int] | None = None
    down_start = len(text)
    no_tx = False
    lock_timeout: str | None = None
    statement_timeout: str | None = None
    allow: set[str] = set()
    seen: dict[str, int] = {}
    directive_spans: list[tuple[int, int]] = []
    for start in line_starts:
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line_text = text[start:end].strip()
        if not line_text.startswith("--"):
            continue
        dm = _DIRECTIVE_RE.match(line_text)
        if dm is None:
            continue
        lineno = text.count("\n", 0, start) + 1
        directive, arg = dm.group("name").lower(), dm.group("arg")
        directive_spans.append((start, end))
        if directive != "allow" and directive in seen:
            raise fail(lineno, f"directive 'migrate:{directive}' repeated (first on line {seen[directive]})")
        seen[directive] = lineno
        if directive == "up":
            _no_arg(arg, directive, lineno, fail)
            up_at = (lineno, end)
        elif directive == "down":
            _no_arg(arg, directive, lineno, fail)
            if up_at is None:
                raise fail(lineno, "'-- migrate:down' comes before '-- migrate:up'")
            down_at = (lineno, end)
            down_start = start
        elif directive == "no-transaction":
            _no_arg(arg, directive, lineno, fail)
            no_tx = True
        elif directive in ("lock-timeout", "statement-timeout"):
            if not _DURATION_RE.match(arg):
                raise fail(lineno, f"'migrate:{directive}' needs a duration like 5s, 500ms or 2min, got {arg!r}")
            if directive == "lock-timeout":
                lock_timeout = arg
            else:
                statement_timeout = arg
        elif directive == "allow":
            rules = arg.split()
            if not rules or not all(_RULE_RE.match(r) for r in rules):
                raise fail(lineno, f"'migrate:allow' needs squawk rule names, got {arg!r}")
            allow.update(rules)
        else:
            raise fail(
                lineno,
                f"unknown directive 'migrate:{directive}'; known: up, down, no-transaction, "
                "lock-timeout, statement-timeout, allow",
            )
    if up_at is None:
        raise fail(1, "no '-- migrate:up' line; every migration starts with one")

    # Only comments and directives may precede the up section.
    if _has_code(_blank_spans(text[: up_at[1]], directive_spans)):
        first = next(
            i + 1 for i, ln in enumerate(text[: up_at[1]].split("\n")) if ln.strip() and not ln.strip().startswith("--")
        )
        raise fail(first, "SQL before '-- migrate:up'; move it into the up section")

    up_sql = _blank_spans_in(text, up_at[1], down_start, directive_spans)
    down_sql = _blank_spans_in(text, down_at[1], len(text), directive_spans) if down_at else None
    up_first = up_at[0]
    up = _split(up_sql, up_first, name)
    down = _split(down_sql, down_at[0], name) if down_sql is not None and down_at else ()
    if not up:
        raise fail(up_at[0], "the up section has no SQL")
    for stmt in (*up, *down):
        head = _first_keywords(stmt)
        if _TX_CONTROL.match(head):
            raise fail(
                stmt.line,
                "transaction control in a migration; the runner owns transactions "
                "(one per file, or autocommit with '-- migrate:no-transaction'): remove it",
            )
        if head.startswith("\\") or _COPY_STDIN.match(head):
            raise fail(
                stmt.line,
                "psql meta-commands and COPY FROM STDIN are not plain SQL; the runner sends the file "
                "to the server as is: use INSERT or COPY from a server-side file",
            )
        if _RELEASES_LOCK.search(head):
            raise fail(
                stmt.line,
                "DISCARD and pg_advisory_unlock_all() would release the runner's migration lock "
                "(it lives in the same session); remove it",
            )
        if not no_tx and _needs_autocommit(head):
            raise fail(
                stmt.line,
                "this statement cannot run inside a transaction; "
                "add '-- migrate:no-transaction' to the file (and keep the file to such statements)",
            )
    return Migration(
        version=int(m.group("version")),
        name=m.group("slug"),
        path=path,
        checksum=hashlib.sha256(data).hexdigest(),
        up_sql=up_sql.strip("\n"),
        down_sql=down_sql.strip("\n") if down_sql is not None else None,
        directives=Directives(
            no_transaction=no_tx,
            lock_timeout=lock_timeout,
            statement_timeout=statement_timeout,
            allow=frozenset(allow),
        ),
        up=up,
        down=down,
        down_line=down_at[0] if down_at else None,
    )


def _needs_autocommit(head: str) -> bool:
    return bool(_NEEDS_AUTOCOMMIT.match(head))


def _no_arg(arg: str, directive: str, lineno: int, fail: Callable[[int, str], MigrationParseError]) -> None:
    if arg:
        raise fail(lineno, f"'migrate:{directive}' takes no argument, got {arg!r}")


def _safe_scan(text: str, name: str) -> list[tuple[int, str]]:
    try:
        return list(_scan(text))
    except ValueError as exc:
        offset = int(exc.args[0])
        line = text.count("\n", 0, offset) + 1
        raise MigrationParseError(
            f"{name}:{line}: unterminated string, quoted identifier, dollar quote or comment"
        ) from exc


def _split(sql_text: str, directive_line: int, name: str) -> tuple[Statement, ...]:
    # sql_text starts right after the directive line's newline, i.e. on the next line
    try:
        return split_statements(sql_text, directive_line)
    except ValueError as exc:  # pragma: no cover - the whole file was scanned already
        raise MigrationParseError(f"{name}: cannot split statements") from exc


def _blank_spans(chunk: str, spans: Sequence[tuple[int, int]]) -> str:
    return _blank_spans_in(chunk, 0, len(chunk), spans)


def _blank_spans_in(text: str, start: int, end: int, spans: Sequence[tuple[int, int]]) -> str:
    """``text[start:end]`` with directive lines emptied (line numbers are kept)."""
    out = list(text[start:end])
    for s, e in spans:
        for k in range(max(s, start), min(e, end)):
            out[k - start] = " "
    return "".join(out)


def load(directory: Path) -> tuple[Migration, ...]:
    """Parse every migration in ``directory`` (absent means none), in version order.

    Raises :class:`MigrationParseError` for a bad file, a file name that is not ``NNNN_slug.sql``
    or two files with the same version.
    """
    if not directory.exists():
        return ()
    if not directory.is_dir():
        raise MigrationParseError(f"{directory}: not a directory")
    migrations = [parse(p) for p in discover(directory)]
    migrations.sort(key=lambda mig: mig.version)
    for prev, cur in itertools.pairwise(migrations):
        if prev.version == cur.version:
            raise MigrationParseError(
                f"{cur.filename}: version {cur.version} is also used by {prev.filename}; renumber one of them"
            )
    return tuple(migrations)
