"""What an importer needs to know about a section's SQL, from PostgreSQL's own parser (pglast 6.17).

* whether it holds a statement PostgreSQL refuses inside a transaction block (tools that decide
  per file, golang-migrate and Flyway, run such a file outside one);
* whether it is wrapped in its own ``BEGIN; ... COMMIT;`` (common in golang-migrate histories,
  which run files without a transaction): the wrapper is removed, since the engine runs each
  migration in its own transaction, and the file keeps its line numbers;
* whether a line would read as one of our directives (``-- migrate:...`` at column 0).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pglast import parser as pg

from infra.migrations.statements import leading_comments

__all__ = [
    "TIMEOUT_DIRECTIVES",
    "Piece",
    "directive_lines",
    "lift_timeouts",
    "needs_autocommit",
    "pieces",
    "strip_wrapping_transaction",
]

#: The settings the runner owns and the directive that sets each for a whole file.
TIMEOUT_DIRECTIVES = {"lock_timeout": "lock-timeout", "statement_timeout": "statement-timeout"}
_DURATION = re.compile(r"^\s*([0-9]+)\s*(ms|s|min|h|d)?\s*$")

_DIRECTIVE = re.compile(r"^--[ \t]*migrate:", re.MULTILINE)
_ALWAYS_AUTOCOMMIT = frozenset(
    {"CreatedbStmt", "DropdbStmt", "AlterSystemStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt"}
)


@dataclass(frozen=True)
class Piece:
    """One statement: its character span in the text (without the ``;``), parse-node kind and node."""

    start: int
    stop: int
    kind: str
    node: dict[str, Any]


def pieces(text: str) -> list[Piece]:
    """The statements of ``text`` (raises ``pglast.parser.ParseError`` on a syntax error)."""
    out: list[Piece] = []
    for span in pg.split(text, with_parser=True, only_slices=True):
        tree = json.loads(pg.parse_sql_json(text[span]))
        kind, node = next(iter(tree["stmts"][0]["stmt"].items()))
        out.append(Piece(span.start, span.stop, kind, node))
    return out


def needs_autocommit(piece: Piece) -> bool:
    """PostgreSQL refuses this statement inside a transaction block."""
    node = piece.node
    if piece.kind in _ALWAYS_AUTOCOMMIT:
        return True
    if piece.kind == "IndexStmt" or (piece.kind == "DropStmt" and node.get("removeType") == "OBJECT_INDEX"):
        return bool(node.get("concurrent"))
    if piece.kind == "ReindexStmt":
        return any(p.get("DefElem", {}).get("defname") == "concurrently" for p in node.get("params", ()))
    if piece.kind == "VacuumStmt":
        return bool(node.get("is_vacuumcmd"))  # VACUUM; a lone ANALYZE may run in a transaction
    if piece.kind == "AlterTableStmt":
        return any(
            c.get("AlterTableCmd", {}).get("def", {}).get("PartitionCmd", {}).get("concurrent")
            for c in node.get("cmds", ())
        )
    return False


def _transaction(piece: Piece) -> str | None:
    return str(piece.node.get("kind")) if piece.kind == "TransactionStmt" else None


def strip_wrapping_transaction(text: str) -> tuple[str, bool]:
    """``text`` without an outer ``BEGIN;`` ... ``COMMIT;`` pair (line numbers kept), and whether
    one was removed. Transaction control anywhere else is left for the engine to refuse."""
    found = pieces(text)
    if len(found) < 2:
        return text, False
    first, last = _transaction(found[0]), _transaction(found[-1])
    if first not in ("TRANS_STMT_BEGIN", "TRANS_STMT_START") or last != "TRANS_STMT_COMMIT":
        return text, False
    if any(_transaction(p) not in (None, "TRANS_STMT_SAVEPOINT", "TRANS_STMT_RELEASE") for p in found[1:-1]):
        return text, False
    out = text
    for piece in (found[-1], found[0]):  # the later one first, so the earlier offsets stay valid
        out = _blank(out, piece)
    return out, True


def _blank(text: str, piece: Piece) -> str:
    """``text`` without the statement (and its ``;``), its newlines kept; a comment before it stays."""
    end = piece.stop + (1 if text.startswith(";", piece.stop) else 0)
    begin = piece.start + leading_comments(text[piece.start : piece.stop])
    return text[:begin] + "".join(ch for ch in text[begin:end] if ch == "\n") + text[end:]


def lift_timeouts(text: str) -> tuple[str, dict[str, str]]:
    """``SET [LOCAL] lock_timeout|statement_timeout = ...`` taken out of ``text``, as the
    ``-- migrate:lock-timeout`` / ``statement-timeout`` values that set them for the migration
    (the runner owns both settings and refuses a file that changes them). Raises ``ValueError``
    for a value that is not a duration above zero, and for one setting given twice differently."""
    found: dict[str, str] = {}
    for piece in reversed(pieces(text)):
        name = str(piece.node.get("name", ""))
        if (
            piece.kind != "VariableSetStmt"
            or piece.node.get("kind") != "VAR_SET_VALUE"
            or name not in TIMEOUT_DIRECTIVES
        ):
            continue
        (arg,) = piece.node.get("args", [{}])
        const = arg.get("A_Const", {})
        raw = str(const.get("sval", {}).get("sval", const.get("ival", {}).get("ival", "")))
        m = _DURATION.match(raw)
        if m is None or int(m.group(1)) == 0:
            raise ValueError(f"{name} = {raw!r} is not a duration above zero")
        value = f"{int(m.group(1))}{m.group(2) or 'ms'}"  # a bare number is milliseconds
        if found.setdefault(name, value) != value:
            raise ValueError(f"{name} is set twice, to {found[name]} and {value}")
        text = _blank(text, piece)
    return text, found


def directive_lines(text: str) -> list[int]:
    """1-based numbers of the lines that the engine would read as ``-- migrate:`` directives."""
    return [text.count("\n", 0, m.start()) + 1 for m in _DIRECTIVE.finditer(text)]
