"""SQL statements from PostgreSQL's own parser, and the statements a migration may not contain.

The parser is libpg_query through ``pglast`` 6.17, the release line whose grammar is PostgreSQL 16's
(``pglast.parser.get_postgresql_version() == (16, 1)``; 7.x is PostgreSQL 17, 8.x PostgreSQL 18).
:func:`split` is linear in the size of the text: ``pglast.parser.split`` cuts the section into
statements, each statement is parsed on its own (``parse_sql_json``), and only the few kinds that
need a closer look are decoded. (``parse_sql`` or ``scan`` over a whole file are quadratic on
non-ASCII text: never call them on more than one statement.)

A :class:`Statement` is the text exactly as written, without its ``;``: what the runner sends, on
lines of its own, so nothing is ever appended to a user's line (a statement may end in a
``-- comment``). Its ``line`` is the line of its first token in the file.

The runner owns some of its session: the settings that decide how the server reads the next SQL
(:data:`PINNED`), its timeouts (:data:`RUNNER_TIMEOUTS`), its advisory lock and its transactions.
A statement that would change them is refused here, before anything runs, with its line; the
runner also checks them again at the end of every migration (a ``DO`` block can hide a ``SET``).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from pglast import parser as pg

__all__ = [
    "GRAMMAR",
    "PINNED",
    "RUNNER_TIMEOUTS",
    "SqlError",
    "Statement",
    "concurrent_index",
    "leading_comments",
    "split",
]

#: The PostgreSQL grammar pglast parses with (major, minor of libpg_query's source).
GRAMMAR: tuple[int, int] = pg.get_postgresql_version()

#: Settings pinned on the runner's connection (libpq ``options``/``client_encoding``): they change
#: how the server reads the SQL after them, and the whole of a message is read before any of it runs.
PINNED: dict[str, str] = {
    "standard_conforming_strings": "on",  # a backslash in '...' is a character, as pglast reads it
    "client_encoding": "UTF8",  # files are UTF-8 (checked) and sent as UTF-8
    "backslash_quote": "safe_encoding",  # the server's default: \' only inside E'...'
}

#: The runner's timeouts; the value is the directive that sets one per file (None: not per file).
RUNNER_TIMEOUTS: dict[str, str | None] = {
    "lock_timeout": "lock-timeout",
    "statement_timeout": "statement-timeout",
    "idle_in_transaction_session_timeout": None,
    "client_connection_check_interval": None,
}

# Statements whose $1 are their own parameters (a SQL-standard function body, PREPARE).
_TAKES_PARAMETERS = frozenset({"CreateFunctionStmt", "PrepareStmt"})
_TX_ALLOWED = frozenset({"TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE", "TRANS_STMT_ROLLBACK_TO"})
# Statement kinds PostgreSQL refuses inside a transaction block, whatever their options.
_ALWAYS_AUTOCOMMIT = frozenset(
    {"CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt"}
)
# Kinds decoded from JSON for a closer look; every other statement is classified from its kind alone.
_INSPECT = frozenset(
    {
        "TransactionStmt",
        "CopyStmt",
        "DiscardStmt",
        "VariableSetStmt",
        "IndexStmt",
        "DropStmt",
        "ReindexStmt",
        "AlterTableStmt",
        "VacuumStmt",
    }
)
# Statements whose bodies are code in a string (DO, CREATE FUNCTION/PROCEDURE).
_BODIES = frozenset({"DoStmt", "CreateFunctionStmt"})
_KIND_AT = '{"stmt":{"'
_NON_ASCII = re.compile(r"[^\x00-\x7f]")


class SqlError(Exception):
    """A statement that cannot be parsed or may not run; ``line`` is in the file (the caller names it)."""

    def __init__(self, line: int, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.fix = fix


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement as written (no ``;``, no surrounding blanks; leading comments kept)."""

    text: str
    line: int  # line of the first token
    text_line: int  # line where ``text`` starts (a leading comment's), to place server error positions
    kind: str  # the parse node: CreateStmt, IndexStmt, ...
    autocommit: bool = False  # PostgreSQL refuses it inside a transaction block

    @property
    def sha256(self) -> str:
        """Hash of the text (what a resumed no-transaction migration checks), line endings ignored as the
        file's checksum ignores them."""
        return hashlib.sha256(self.text.strip().replace("\r\n", "\n").encode()).hexdigest()

    def line_at(self, offset: int) -> int:
        """The file line of character ``offset`` within :attr:`text`."""
        return self.text_line + self.text.count("\n", 0, max(0, min(offset, len(self.text))))


def split(text: str, first_line: int = 1) -> tuple[Statement, ...]:
    """The statements of ``text``, whose first line is line ``first_line`` of its file.

    Raises :class:`SqlError` for a syntax error (at its line) or a statement a migration may not hold.
    """
    try:
        slices = pg.split(text, with_parser=True, only_slices=True)
    except pg.ParseError as exc:
        raise _syntax_error(text, exc, first_line) from None
    statements: list[Statement] = []
    line, pos = first_line, 0
    for piece in slices:
        start, stop = piece.start, piece.stop
        line += text.count("\n", pos, start)
        pos = start
        body = text[start:stop]
        lead = leading_comments(body) if body[0] in "-/" else 0
        statements.append(_classify(body, line + body.count("\n", 0, lead), line))
    return tuple(statements)


def leading_comments(text: str) -> int:
    """Length of the comments and blanks before the first token (``split`` hands a comment to the next statement)."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while depth and i < n:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    return i


def _syntax_error(text: str, exc: pg.ParseError, first_line: int) -> SqlError:
    message = str(exc.args[0]) if exc.args else "syntax error"
    offset = _error_offset(text, exc)
    line = first_line + text.count("\n", 0, offset)
    if text.startswith("\\", offset):
        return SqlError(
            line,
            "psql meta-commands are not SQL; the runner sends the file to the server as it is",
            "write it in SQL (e.g. INSERT instead of \\copy, literal values instead of \\set variables)",
        )
    return SqlError(line, message)


def _error_offset(text: str, exc: pg.ParseError) -> int:
    """The character offset of a parse error.

    pglast 6.17 reports it wrongly after a non-ASCII character, so the text is parsed again with
    every non-ASCII character replaced by 'x' (the scanner treats both as identifier letters; offsets
    are kept) and that error's offset, exact in pure ASCII, is used.
    """
    reported = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
    if text.isascii():
        return max(0, min(reported, len(text)))
    try:
        pg.split(_NON_ASCII.sub("x", text), with_parser=True, only_slices=True)
    except pg.ParseError as again:
        if len(again.args) > 1 and isinstance(again.args[1], int):
            return max(0, min(again.args[1], len(text)))
    return max(0, min(reported, len(text)))


def _classify(text: str, line: int, text_line: int) -> Statement:
    doc = pg.parse_sql_json(text)
    at = doc.find(_KIND_AT) + len(_KIND_AT)
    kind = doc[at : doc.index('"', at)]
    autocommit = kind in _ALWAYS_AUTOCOMMIT
    if kind in _INSPECT:
        node: dict[str, Any] = json.loads(doc)["stmts"][0]["stmt"][kind]
        _refuse(kind, node, line)
        autocommit = _needs_autocommit(kind, node)
    # Outside bodies the parser has already folded unquoted names to lowercase (a quoted
    # "PG_ADVISORY_UNLOCK" is another function); procedural bodies are strings, written in any case.
    lowered = doc.lower() if kind in _BODIES else doc
    if "pg_advisory_unlock" in lowered:
        raise SqlError(
            line,
            "pg_advisory_unlock() would release the runner's migration lock (it lives in this session)",
            "remove it",
        )
    if '{"ParamRef":' in doc and kind not in _TAKES_PARAMETERS:
        raise SqlError(
            line,
            "a parameter placeholder ($1) has no value here: the runner sends plain SQL, as psql does",
            "write the value itself ($1 belongs in a function body or a PREPARE)",
        )
    if "set_config" in lowered:
        for name in _set_config_names(json.loads(doc)):
            _refuse_setting(name, None, line)
    return Statement(text, line, text_line, kind, autocommit)


def _refuse(kind: str, node: dict[str, Any], line: int) -> None:
    if kind == "TransactionStmt" and node.get("kind") not in _TX_ALLOWED:
        raise SqlError(
            line,
            "transaction control in a migration; the runner owns transactions (one per section)",
            "remove it; a section that must run outside a transaction says '-- migrate:up transaction:false'",
        )
    if kind == "CopyStmt" and "filename" not in node and not node.get("is_program"):
        raise SqlError(
            line,
            "copy from stdin / to stdout needs psql's data stream; the runner sends plain SQL",
            "use INSERT, or COPY from a file on the server",
        )
    if kind == "DiscardStmt":
        raise SqlError(
            line,
            "discard would release the runner's lock or state; the runner drops temporary objects "
            "between migrations itself",
            "remove it",
        )
    if kind == "VariableSetStmt":
        if node.get("kind") == "VAR_RESET_ALL":
            raise SqlError(line, "reset all would undo the runner's timeouts", "reset only what the migration set")
        _refuse_setting(str(node.get("name", "")), node, line)


def _refuse_setting(name: str, node: dict[str, Any] | None, line: int) -> None:
    name = name.lower()
    if name in PINNED:
        raise SqlError(
            line,
            f"{name} changes how the server reads the SQL that follows; the runner pins it to {PINNED[name]!r}",
            "remove it",
        )
    if name in RUNNER_TIMEOUTS:
        directive = RUNNER_TIMEOUTS[name]
        value = _set_value(node) if node is not None else None
        if directive is None:
            fix = "remove it"
        elif value:
            fix = f"replace it with the line '-- migrate:{directive} {value}'"
        else:
            fix = f"remove it; '-- migrate:{directive} <duration>' sets it for this file"
        raise SqlError(line, f"{name} is the runner's: it sets it for every migration", fix)


def _set_value(node: dict[str, Any]) -> str | None:
    """The duration of ``SET x = '10s'`` / ``SET x = 500`` (milliseconds), for the fix line."""
    args = node.get("args") or []
    if node.get("kind") != "VAR_SET_VALUE" or len(args) != 1:
        return None
    const = args[0].get("A_Const", {})
    if "sval" in const:
        value = str(const["sval"].get("sval", ""))
        return value if re.fullmatch(r"0*[1-9][0-9]*(ms|s|min|h|d)", value) else None
    if "ival" in const and const["ival"].get("ival"):  # 0 (no timeout at all) is omitted in the JSON
        return f"{int(const['ival']['ival'])}ms"
    return None


def _set_config_names(tree: object) -> list[str]:
    """First arguments of ``set_config('name', ...)`` calls with a constant name."""
    found: list[str] = []
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            call = item.get("FuncCall")
            if isinstance(call, dict):
                names = [n.get("String", {}).get("sval") for n in call.get("funcname", [])]
                args = call.get("args") or []
                if names and names[-1] == "set_config" and args:
                    value = args[0].get("A_Const", {}).get("sval", {}).get("sval")
                    if isinstance(value, str):
                        found.append(value)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _needs_autocommit(kind: str, node: dict[str, Any]) -> bool:
    if kind in ("IndexStmt", "DropStmt"):
        return bool(node.get("concurrent"))
    if kind == "ReindexStmt":
        params = [p.get("DefElem", {}).get("defname") for p in node.get("params") or []]
        whole = node.get("kind") in ("REINDEX_OBJECT_SCHEMA", "REINDEX_OBJECT_SYSTEM", "REINDEX_OBJECT_DATABASE")
        return whole or "concurrently" in params
    if kind == "AlterTableStmt":
        for cmd in node.get("cmds") or []:
            body = cmd.get("AlterTableCmd", {})
            if body.get("subtype") == "AT_DetachPartition" and body.get("def", {}).get("PartitionCmd", {}).get(
                "concurrent"
            ):
                return True
        return False
    if kind == "VacuumStmt":
        return bool(node.get("is_vacuumcmd"))
    return False


def concurrent_index(stmt: Statement) -> tuple[str | None, str, str] | None:
    """``(schema, table, index)`` of a ``CREATE INDEX CONCURRENTLY`` with a name, else None.

    What the runner looks for in pg_index when such a build was interrupted (an INVALID index).
    """
    if stmt.kind != "IndexStmt" or not stmt.autocommit:
        return None
    node = json.loads(pg.parse_sql_json(stmt.text))["stmts"][0]["stmt"]["IndexStmt"]
    relation = node.get("relation", {})
    if not node.get("idxname") or not relation.get("relname"):
        return None
    return relation.get("schemaname"), str(relation["relname"]), str(node["idxname"])
