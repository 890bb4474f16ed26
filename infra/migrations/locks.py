"""Which locks a statement takes, read from PostgreSQL's own parse tree: what ``plan`` shows a reviewer.

The statement is parsed by ``pglast`` (libpg_query, the PostgreSQL 16 grammar) and each node
kind is mapped to the lock PostgreSQL 16 takes for it. The ALTER TABLE table follows
``AlterTableGetLockLevel`` in ``src/backend/commands/tablecmds.c`` (the highest level of the
sub-commands wins); the others follow the manual (13.3 "Explicit Locking") and the command
sources named beside each rule. Everything a statement touches is listed, not only its target:
``ALTER TABLE a ADD COLUMN b_id int REFERENCES b`` is ACCESS EXCLUSIVE on ``a`` *and* SHARE ROW
EXCLUSIVE on ``b``; a CTE ``UPDATE`` is ROW EXCLUSIVE on its table; the statements inside a ``DO``
block are read through the PL/pgSQL parser.

What a parse tree cannot show is said in ``notes`` (dynamic SQL in ``EXECUTE``, function bodies,
extension scripts) instead of guessed: ``plan --measure`` (:mod:`infra.migrations.measure`) runs
the statements on a scratch PostgreSQL 16 and reads ``pg_locks`` for the truth.

The module is one table (node kind -> lock) with a handler per kind; it is longer than 500 lines
because splitting the table would scatter what a reviewer checks against the PostgreSQL sources.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pglast.parser import ParseError, parse_plpgsql_json, parse_sql_json

__all__ = ["LockMode", "RelationLock", "StatementLocks", "statement_locks"]

# A parse-tree node as libpg_query's JSON gives it (module-internal only).
_Node = dict[str, Any]


class LockMode(IntEnum):
    """PostgreSQL's table lock modes, in the order of their strength (lock.h numbering)."""

    ACCESS_SHARE = 1
    ROW_SHARE = 2
    ROW_EXCLUSIVE = 3
    SHARE_UPDATE_EXCLUSIVE = 4
    SHARE = 5
    SHARE_ROW_EXCLUSIVE = 6
    EXCLUSIVE = 7
    ACCESS_EXCLUSIVE = 8

    @property
    def label(self) -> str:
        """``SHARE ROW EXCLUSIVE``: how the manual and ``LOCK TABLE`` spell it."""
        return self.name.replace("_", " ")

    @property
    def blocks(self) -> str:
        """What this mode makes other sessions wait for."""
        return _BLOCKS[self]

    @classmethod
    def from_pg_locks(cls, mode: str) -> LockMode:
        """From ``pg_locks.mode`` (``ShareRowExclusiveLock``)."""
        return _FROM_PG[mode]


_BLOCKS = {
    LockMode.ACCESS_SHARE: "only ACCESS EXCLUSIVE (schema changes); reads and writes go on",
    LockMode.ROW_SHARE: "EXCLUSIVE and ACCESS EXCLUSIVE; reads and writes go on",
    LockMode.ROW_EXCLUSIVE: "index builds and schema changes; reads and writes go on",
    LockMode.SHARE_UPDATE_EXCLUSIVE: "other schema changes, VACUUM and ANALYZE; reads and writes go on",
    LockMode.SHARE: "writes (INSERT, UPDATE, DELETE); reads go on",
    LockMode.SHARE_ROW_EXCLUSIVE: "writes and other schema changes; reads go on",
    LockMode.EXCLUSIVE: "writes and row locks (SELECT FOR UPDATE); plain reads go on",
    LockMode.ACCESS_EXCLUSIVE: "every read and write of the relation",
}
_FROM_PG = {
    "AccessShareLock": LockMode.ACCESS_SHARE,
    "RowShareLock": LockMode.ROW_SHARE,
    "RowExclusiveLock": LockMode.ROW_EXCLUSIVE,
    "ShareUpdateExclusiveLock": LockMode.SHARE_UPDATE_EXCLUSIVE,
    "ShareLock": LockMode.SHARE,
    "ShareRowExclusiveLock": LockMode.SHARE_ROW_EXCLUSIVE,
    "ExclusiveLock": LockMode.EXCLUSIVE,
    "AccessExclusiveLock": LockMode.ACCESS_EXCLUSIVE,
}


@dataclass(frozen=True)
class RelationLock:
    """One lock: on a relation as the statement names it (``a``, ``app.a``), or on a type (``type app.e``)."""

    relation: str
    mode: LockMode
    reason: str


@dataclass(frozen=True)
class StatementLocks:
    """The locks one statement takes (strongest per object, in order of appearance), what may rewrite
    a table, and what a parse tree cannot tell (``notes``)."""

    locks: tuple[RelationLock, ...] = ()
    notes: tuple[str, ...] = ()
    rewrites: tuple[str, ...] = ()  # relations the statement may rewrite (and when)

    @property
    def strongest(self) -> RelationLock | None:
        return max(self.locks, key=lambda lock: lock.mode, default=None)

    def summary(self) -> tuple[str, str | None, str]:
        """``(mode label, relation, what it blocks)`` of the strongest lock, for one plan line."""
        top = self.strongest
        if top is not None:
            return top.mode.label, top.relation, top.mode.blocks
        if self.notes:
            return "unknown", None, self.notes[0]
        return "none", None, "no lock on an existing table"


# -- ALTER TABLE: AlterTableGetLockLevel (tablecmds.c, PostgreSQL 16) --------------------------------

_SUE = LockMode.SHARE_UPDATE_EXCLUSIVE
# fmt: off
_AT_SHARE_UPDATE_EXCLUSIVE = frozenset({
    "AT_SetStatistics", "AT_ClusterOn", "AT_DropCluster", "AT_SetOptions", "AT_ResetOptions",
    "AT_ValidateConstraint", "AT_AttachPartition", "AT_DetachPartitionFinalize",
})
_AT_SHARE_ROW_EXCLUSIVE = frozenset({
    "AT_EnableTrig", "AT_EnableAlwaysTrig", "AT_EnableReplicaTrig", "AT_EnableTrigAll", "AT_EnableTrigUser",
    "AT_DisableTrig", "AT_DisableTrigAll", "AT_DisableTrigUser",
})
# fmt: on
_AT_REWRITES = {
    "AT_AlterColumnType": "ALTER COLUMN TYPE rewrites the table and its indexes (unless binary-coercible)",
    "AT_SetTableSpace": "SET TABLESPACE copies the table",
    "AT_SetAccessMethod": "SET ACCESS METHOD rewrites the table",
    "AT_SetLogged": "SET LOGGED rewrites the table",
    "AT_SetUnLogged": "SET UNLOGGED rewrites the table",
    "AT_AddIdentity": "ADD IDENTITY on a new column rewrites the table",
}
# reloptions.c: the options whose change takes SHARE UPDATE EXCLUSIVE; every other one ACCESS EXCLUSIVE.
# fmt: off
_RELOPTIONS_SUE = frozenset({
    "fillfactor", "parallel_workers", "toast_tuple_target", "vacuum_index_cleanup", "vacuum_truncate",
    "log_autovacuum_min_duration", "autovacuum_enabled", "autovacuum_vacuum_threshold",
    "autovacuum_vacuum_insert_threshold", "autovacuum_analyze_threshold", "autovacuum_vacuum_cost_delay",
    "autovacuum_vacuum_cost_limit", "autovacuum_freeze_min_age", "autovacuum_freeze_max_age",
    "autovacuum_freeze_table_age", "autovacuum_multixact_freeze_min_age",
    "autovacuum_multixact_freeze_max_age", "autovacuum_multixact_freeze_table_age",
    "autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_scale_factor",
    "autovacuum_analyze_scale_factor",
})
# fmt: on


def _alter_table_cmd_mode(cmd: _Node) -> LockMode:
    subtype = str(cmd.get("subtype", ""))
    if subtype in _AT_SHARE_UPDATE_EXCLUSIVE:
        return _SUE
    if subtype in _AT_SHARE_ROW_EXCLUSIVE:
        return LockMode.SHARE_ROW_EXCLUSIVE
    if subtype == "AT_AddConstraint":
        constraint = _unwrap(cmd.get("def"), "Constraint")
        if constraint is not None and constraint.get("contype") == "CONSTR_FOREIGN":
            # "we add triggers to both tables ... at least as strong as CREATE TRIGGER"
            return LockMode.SHARE_ROW_EXCLUSIVE
        return LockMode.ACCESS_EXCLUSIVE
    if subtype == "AT_DetachPartition":
        part = _unwrap(cmd.get("def"), "PartitionCmd") or {}
        return _SUE if part.get("concurrent") else LockMode.ACCESS_EXCLUSIVE
    if subtype in ("AT_SetRelOptions", "AT_ResetRelOptions"):
        names = {str(d.get("defname", "")).removeprefix("toast.") for d in _defelems(cmd.get("def"))}
        return _SUE if names and names <= _RELOPTIONS_SUE else LockMode.ACCESS_EXCLUSIVE
    if subtype == "AT_CheckNotNull":
        return LockMode.ACCESS_SHARE
    return LockMode.ACCESS_EXCLUSIVE  # every other sub-command (ADD COLUMN, SET NOT NULL, TYPE, ...)


# -- the walk -----------------------------------------------------------------------------------------


class _Collector:
    def __init__(self) -> None:
        self.locks: dict[str, RelationLock] = {}
        self.notes: list[str] = []
        self.rewrites: list[str] = []

    def add(self, relation: str | None, mode: LockMode, reason: str) -> None:
        if not relation:
            return
        old = self.locks.get(relation)
        if old is None or mode > old.mode:
            self.locks[relation] = RelationLock(relation, mode, reason)

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def result(self) -> StatementLocks:
        return StatementLocks(tuple(self.locks.values()), tuple(self.notes), tuple(self.rewrites))


_Handler = Callable[[_Node, _Collector], None]


def statement_locks(statement: str) -> StatementLocks:
    """The locks one SQL statement takes (several statements: the union, strongest per object)."""
    out = _Collector()
    try:
        tree = json.loads(parse_sql_json(statement))
    except ParseError as exc:
        out.note(f"not parsed ({exc}): locks unknown")
        return out.result()
    for raw in tree.get("stmts", ()):
        _statement(raw.get("stmt", {}), out)
    return out.result()


def _statement(wrapper: _Node, out: _Collector) -> None:
    if not wrapper:
        return
    kind, node = next(iter(wrapper.items()))
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(node, out)
    elif kind in _CATALOG_ONLY:
        pass
    else:
        out.note(f"{kind} is not in the lock table: see plan --measure")


def _alter_table(node: _Node, out: _Collector) -> None:
    target = _relname(node.get("relation"))
    cmds = [c for c in (_unwrap(x, "AlterTableCmd") for x in node.get("cmds", ())) if c is not None]
    mode = max((_alter_table_cmd_mode(c) for c in cmds), default=_SUE)
    subtypes = ", ".join(sorted({str(c.get("subtype", "?")).removeprefix("AT_") for c in cmds}))
    out.add(target, mode, f"ALTER {str(node.get('objtype', 'OBJECT_TABLE')).removeprefix('OBJECT_')} {subtypes}")
    for cmd in cmds:
        subtype = str(cmd.get("subtype", ""))
        definition = cmd.get("def")
        for fk in _foreign_keys(definition):
            out.add(_relname(fk.get("pktable")), LockMode.SHARE_ROW_EXCLUSIVE, f"foreign key from {target}")
        if subtype == "AT_ValidateConstraint":
            out.note("VALIDATE of a foreign key also takes ROW SHARE on the referenced table")
        if subtype in ("AT_AttachPartition", "AT_DetachPartition"):
            part = _unwrap(definition, "PartitionCmd") or {}
            concurrent = bool(part.get("concurrent"))
            out.add(
                _relname(part.get("name")),
                _SUE if concurrent else LockMode.ACCESS_EXCLUSIVE,
                "partition being " + ("attached" if subtype == "AT_AttachPartition" else "detached"),
            )
        if subtype in _AT_REWRITES and target:
            out.rewrites.append(f"{target}: {_AT_REWRITES[subtype]}")
        if subtype == "AT_AddColumn":
            column = _unwrap(definition, "ColumnDef") or {}
            kinds = {c.get("contype") for c in _constraints(column)}
            if target and kinds & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}:
                out.rewrites.append(
                    f"{target}: ADD COLUMN rewrites the table when its value is volatile or computed "
                    "(random(), clock_timestamp(), identity, stored generated)"
                )


def _index(node: _Node, out: _Collector) -> None:
    concurrent = bool(node.get("concurrent"))
    out.add(
        _relname(node.get("relation")),
        _SUE if concurrent else LockMode.SHARE,
        "CREATE INDEX CONCURRENTLY" if concurrent else "CREATE INDEX",
    )


def _reindex(node: _Node, out: _Collector) -> None:
    concurrent = any(d.get("defname") == "concurrently" for d in _defelems(node.get("params")))
    kind = str(node.get("kind", ""))
    name = _relname(node.get("relation"))
    if kind == "REINDEX_OBJECT_TABLE":
        out.add(name, _SUE if concurrent else LockMode.SHARE, "REINDEX TABLE")
    elif kind == "REINDEX_OBJECT_INDEX":
        out.add(name, _SUE if concurrent else LockMode.ACCESS_EXCLUSIVE, "REINDEX INDEX")
        out.note("REINDEX INDEX also locks the index's table: " + ("SHARE UPDATE EXCLUSIVE" if concurrent else "SHARE"))
    else:
        out.note(f"{kind.removeprefix('REINDEX_OBJECT_')} reindex locks every table it covers")


_DROP_RELATIONS = {
    "OBJECT_TABLE",
    "OBJECT_VIEW",
    "OBJECT_MATVIEW",
    "OBJECT_SEQUENCE",
    "OBJECT_FOREIGN_TABLE",
    "OBJECT_INDEX",
}
# DROP POLICY / TRIGGER / RULE: objects are [table..., name]; RemovePolicyById, RemoveTriggerById and
# RemoveRewriteRuleById open the table with AccessExclusiveLock.
_DROP_ON_TABLE = {"OBJECT_POLICY", "OBJECT_TRIGGER", "OBJECT_RULE"}


def _drop(node: _Node, out: _Collector) -> None:
    kind = str(node.get("removeType", ""))
    objects = [_names(o) for o in node.get("objects", ())]
    if kind in _DROP_RELATIONS:
        concurrent = bool(node.get("concurrent"))
        for name in objects:
            out.add(".".join(name), _SUE if concurrent else LockMode.ACCESS_EXCLUSIVE, f"DROP {kind[7:]}")
        if kind == "OBJECT_INDEX":
            mode = "SHARE UPDATE EXCLUSIVE" if concurrent else "ACCESS EXCLUSIVE"
            out.note(f"DROP INDEX also takes {mode} on the index's table")
    elif kind in _DROP_ON_TABLE:
        for name in objects:
            out.add(".".join(name[:-1]), LockMode.ACCESS_EXCLUSIVE, f"DROP {kind[7:]}")
    elif kind == "OBJECT_TYPE" or kind == "OBJECT_DOMAIN":
        pass  # dependent columns would make the drop fail without CASCADE
    if node.get("behavior") == "DROP_CASCADE":
        out.note("CASCADE drops dependent objects, each under its own lock")


def _truncate(node: _Node, out: _Collector) -> None:
    for rel in node.get("relations", ()):
        out.add(_relname(rel), LockMode.ACCESS_EXCLUSIVE, "TRUNCATE")
    if node.get("behavior") == "DROP_CASCADE":
        out.note("TRUNCATE CASCADE also takes ACCESS EXCLUSIVE on every referencing table")


def _create_table(node: _Node, out: _Collector) -> None:
    created = _relname(node.get("relation"))
    partition = node.get("partbound") is not None
    for parent in node.get("inhRelations", ()):
        if partition:  # DefineRelation: the parent of a new partition is opened AccessExclusiveLock
            out.add(_relname(parent), LockMode.ACCESS_EXCLUSIVE, f"new partition {created}")
        else:  # MergeAttributes: ShareUpdateExclusiveLock on each INHERITS parent
            out.add(_relname(parent), _SUE, f"inherited by {created}")
    for element in node.get("tableElts", ()):
        like = _unwrap(element, "TableLikeClause")
        if like is not None:
            out.add(_relname(like.get("relation")), LockMode.ACCESS_SHARE, f"LIKE in {created}")
    for fk in _foreign_keys(node):
        out.add(_relname(fk.get("pktable")), LockMode.SHARE_ROW_EXCLUSIVE, f"foreign key from {created}")


def _create_trigger(node: _Node, out: _Collector) -> None:
    out.add(_relname(node.get("relation")), LockMode.SHARE_ROW_EXCLUSIVE, "CREATE TRIGGER")


def _policy(node: _Node, out: _Collector) -> None:
    out.add(_relname(node.get("table")), LockMode.ACCESS_EXCLUSIVE, "policy change")
    _reads(node, out, skip={_relname(node.get("table"))})


def _rule(node: _Node, out: _Collector) -> None:
    out.add(_relname(node.get("relation")), LockMode.ACCESS_EXCLUSIVE, "CREATE RULE")


def _rename(node: _Node, out: _Collector) -> None:
    kind = str(node.get("renameType", ""))
    target = _relname(node.get("relation"))
    if target is None:
        return
    # RenameRelation: ShareUpdateExclusiveLock for an index (PostgreSQL 12+), else AccessExclusiveLock
    out.add(target, _SUE if kind == "OBJECT_INDEX" else LockMode.ACCESS_EXCLUSIVE, f"RENAME {kind[7:]}")


def _set_schema(node: _Node, out: _Collector) -> None:
    out.add(_relname(node.get("relation")), LockMode.ACCESS_EXCLUSIVE, "SET SCHEMA")


def _lock(node: _Node, out: _Collector) -> None:
    mode = LockMode(int(node.get("mode", LockMode.ACCESS_EXCLUSIVE)))
    for rel in node.get("relations", ()):
        out.add(_relname(rel), mode, "LOCK TABLE")


def _vacuum(node: _Node, out: _Collector) -> None:
    vacuum = bool(node.get("is_vacuumcmd"))
    full = any(d.get("defname") == "full" for d in _defelems(node.get("options")))
    mode = LockMode.ACCESS_EXCLUSIVE if full else _SUE
    what = "VACUUM FULL" if full else "VACUUM" if vacuum else "ANALYZE"
    rels = [_unwrap(r, "VacuumRelation") or {} for r in node.get("rels", ())]
    if not rels:
        out.note(f"{what} without a table processes every table, one at a time, each under {mode.label}")
    for rel in rels:
        out.add(_relname(rel.get("relation")), mode, what)
        if full and rel:
            out.rewrites.append(f"{_relname(rel.get('relation'))}: VACUUM FULL rewrites the table")


def _cluster(node: _Node, out: _Collector) -> None:
    target = _relname(node.get("relation"))
    out.add(target, LockMode.ACCESS_EXCLUSIVE, "CLUSTER")
    if target:
        out.rewrites.append(f"{target}: CLUSTER rewrites the table")


def _refresh(node: _Node, out: _Collector) -> None:
    concurrent = bool(node.get("concurrent"))
    out.add(
        _relname(node.get("relation")),
        LockMode.EXCLUSIVE if concurrent else LockMode.ACCESS_EXCLUSIVE,
        "REFRESH MATERIALIZED VIEW" + (" CONCURRENTLY" if concurrent else ""),
    )


def _comment(node: _Node, out: _Collector) -> None:
    # CommentObject: get_object_address(..., ShareUpdateExclusiveLock) for a relation or its column
    kind = str(node.get("objtype", ""))
    names = _names(node.get("object"))
    if kind in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_SEQUENCE"):
        out.add(".".join(names), _SUE, "COMMENT")
    elif kind == "OBJECT_COLUMN" and len(names) > 1:
        out.add(".".join(names[:-1]), _SUE, "COMMENT ON COLUMN")


def _alter_sequence(node: _Node, out: _Collector) -> None:
    # AlterSequence: ShareRowExclusiveLock on the sequence (PostgreSQL 10+)
    out.add(_relname(node.get("sequence")), LockMode.SHARE_ROW_EXCLUSIVE, "ALTER SEQUENCE")


def _alter_enum(node: _Node, out: _Collector) -> None:
    # AddEnumLabel / RenameEnumLabel: LockDatabaseObject(TypeRelationId, ..., ExclusiveLock)
    name = ".".join(_string_list(node.get("typeName")))
    out.add(f"type {name}", LockMode.EXCLUSIVE, "ALTER TYPE " + ("RENAME VALUE" if node.get("oldVal") else "ADD VALUE"))


def _view(node: _Node, out: _Collector) -> None:
    view = _relname(node.get("view"))
    if node.get("replace"):
        out.add(view, LockMode.ACCESS_EXCLUSIVE, "CREATE OR REPLACE VIEW (when the view exists)")
    _reads(node.get("query", {}), out, skip={view})


def _create_table_as(node: _Node, out: _Collector) -> None:
    into = (node.get("into") or {}).get("rel")
    _reads(node.get("query", {}), out, skip={_relname(into)})


def _call(node: _Node, out: _Collector) -> None:
    out.note("CALL runs a procedure whose body is not read here: see plan --measure")


def _do(node: _Node, out: _Collector) -> None:
    body, language = None, "plpgsql"
    for arg in _defelems(node.get("args")):
        if arg.get("defname") == "as":
            body = _string(arg.get("arg"))
        elif arg.get("defname") == "language":
            language = _string(arg.get("arg")) or language
    if body is None or language.lower() != "plpgsql":
        out.note(f"DO block in {language}: its statements are not read here; see plan --measure")
        return
    try:
        tree = json.loads(
            parse_plpgsql_json(
                f"CREATE FUNCTION pg_temp.do_block() RETURNS void AS $__do__${body}$__do__$ LANGUAGE plpgsql"
            )
        )
    except ParseError as exc:
        out.note(f"DO block not parsed ({exc}): locks unknown")
        return
    for stmt_kind, expr in _plpgsql_exprs(tree):
        if stmt_kind == "PLpgSQL_stmt_dynexecute":
            out.note("DO block runs dynamic SQL (EXECUTE): not derivable; see plan --measure")
            continue
        query = str(expr.get("query", ""))
        # parseMode 0 is a whole SQL statement; other modes are expressions (IF conditions, assignments)
        inner = statement_locks(query if expr.get("parseMode", 0) == 0 else f"SELECT {query}")
        for lock in inner.locks:
            out.add(lock.relation, lock.mode, f"{lock.reason} (in DO block)")
        for text in inner.notes:
            out.note(text)
        out.rewrites.extend(inner.rewrites)


def _query(kind: str) -> _Handler:
    def handler(node: _Node, out: _Collector) -> None:
        _reads({kind: node}, out, skip=set())  # wrapped again, so the walk sees the top statement too

    return handler


def _reads(node: object, out: _Collector, *, skip: set[str | None]) -> None:
    """Locks of a query tree: ROW EXCLUSIVE on what it writes (also in CTEs), ROW SHARE under FOR
    UPDATE/SHARE, ACCESS SHARE on what it reads. CTE names are not tables."""
    ctes = {str(c.get("ctename")) for c in _find(node, "CommonTableExpr")}
    for kind in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt"):
        for stmt in _find(node, kind):
            out.add(_relname(stmt.get("relation")), LockMode.ROW_EXCLUSIVE, kind.removesuffix("Stmt").upper())
    for select in _find(node, "SelectStmt"):
        if select.get("lockingClause"):
            for rel in _range_vars(select.get("fromClause")):
                name = _relname(rel)
                if name not in ctes:
                    out.add(name, LockMode.ROW_SHARE, "SELECT FOR UPDATE/SHARE")
    for rel in _range_vars(node):
        name = _relname(rel)
        if name not in skip and not (name in ctes and "schemaname" not in rel):
            out.add(name, LockMode.ACCESS_SHARE, "read")


_HANDLERS: dict[str, _Handler] = {
    "AlterTableStmt": _alter_table,
    "IndexStmt": _index,
    "ReindexStmt": _reindex,
    "DropStmt": _drop,
    "TruncateStmt": _truncate,
    "CreateStmt": _create_table,
    "CreateTrigStmt": _create_trigger,
    "CreatePolicyStmt": _policy,
    "AlterPolicyStmt": _policy,
    "RuleStmt": _rule,
    "RenameStmt": _rename,
    "AlterObjectSchemaStmt": _set_schema,
    "LockStmt": _lock,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "RefreshMatViewStmt": _refresh,
    "CommentStmt": _comment,
    "AlterSeqStmt": _alter_sequence,
    "AlterEnumStmt": _alter_enum,
    "ViewStmt": _view,
    "CreateTableAsStmt": _create_table_as,
    "CallStmt": _call,
    "DoStmt": _do,
    "InsertStmt": _query("InsertStmt"),
    "UpdateStmt": _query("UpdateStmt"),
    "DeleteStmt": _query("DeleteStmt"),
    "MergeStmt": _query("MergeStmt"),
    "SelectStmt": _query("SelectStmt"),
    "ExplainStmt": _query("ExplainStmt"),
}
# Statements that change catalog rows only: no lock on an existing table worth a reviewer's time.
# fmt: off
_CATALOG_ONLY = frozenset({
    "CreateSchemaStmt", "CreateFunctionStmt", "AlterFunctionStmt", "CreateSeqStmt", "CreateEnumStmt",
    "CompositeTypeStmt", "CreateDomainStmt", "DefineStmt", "CreateRoleStmt", "AlterRoleStmt", "DropRoleStmt",
    "GrantStmt", "GrantRoleStmt", "AlterDefaultPrivilegesStmt", "AlterOwnerStmt", "VariableSetStmt",
    "CreateExtensionStmt", "AlterExtensionStmt", "CreateCastStmt", "CreateOpClassStmt",
    "CreateConversionStmt", "CreateStatsStmt", "CreateEventTrigStmt", "SecLabelStmt",
})
# fmt: on


# -- tree helpers -------------------------------------------------------------------------------------


def _unwrap(node: object, kind: str) -> _Node | None:
    """``{"Kind": {...}}`` -> ``{...}``. A typed field comes bare (lowercase keys) and is returned as is;
    a wrapper of another kind (``{"ColumnDef": ...}`` when asking for ``Constraint``) gives ``None``."""
    if not isinstance(node, dict):
        return None
    inner = node.get(kind)
    if isinstance(inner, dict):
        return inner
    wrapped = len(node) == 1 and next(iter(node))[:1].isupper()
    return None if wrapped else node


def _items(node: object) -> list[object]:
    """The elements of a list field, bare (``[...]``) or wrapped (``{"List": {"items": [...]}}``)."""
    if isinstance(node, dict):
        node = node.get("List", {}).get("items", [])
    return list(node) if isinstance(node, list) else []


def _defelems(node: object) -> list[_Node]:
    return [d for d in (_unwrap(x, "DefElem") for x in _items(node)) if d is not None]


def _relname(node: object) -> str | None:
    """``schema.name`` of a RangeVar (wrapped or bare), as written."""
    rel = _unwrap(node, "RangeVar")
    if rel is None or "relname" not in rel:
        return None
    name = str(rel["relname"])
    return f"{rel['schemaname']}.{name}" if rel.get("schemaname") else name


def _string(node: object) -> str | None:
    inner = _unwrap(node, "String")
    return None if inner is None or "sval" not in inner else str(inner["sval"])


def _string_list(node: object) -> list[str]:
    return [s for s in (_string(x) for x in _items(node)) if s is not None]


def _names(node: object) -> list[str]:
    return _string_list(node)


def _find(node: object, kind: str) -> Iterator[_Node]:
    """Every ``{"kind": {...}}`` node below ``node`` (including ``node`` itself)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == kind and isinstance(value, dict):
                yield value
            yield from _find(value, kind)
    elif isinstance(node, list):
        for item in node:
            yield from _find(item, kind)


def _range_vars(node: object) -> Iterator[_Node]:
    """Every RangeVar below ``node``, wrapped (``{"RangeVar": ...}``) or as a typed field (has ``relname``)."""
    if isinstance(node, dict):
        if "relname" in node:
            yield node
            return
        for value in node.values():
            yield from _range_vars(value)
    elif isinstance(node, list):
        for item in node:
            yield from _range_vars(item)


def _constraints(column: _Node) -> list[_Node]:
    return [c for c in (_unwrap(x, "Constraint") for x in column.get("constraints", ())) if c is not None]


def _foreign_keys(node: object) -> Iterator[_Node]:
    for constraint in _find(node, "Constraint"):
        if constraint.get("contype") == "CONSTR_FOREIGN":
            yield constraint
    if isinstance(node, dict) and node.get("contype") == "CONSTR_FOREIGN":
        yield node


def _plpgsql_exprs(node: object, stmt_kind: str = "") -> Iterator[tuple[str, _Node]]:
    """``(enclosing PL/pgSQL statement kind, PLpgSQL_expr)`` for every expression of a function tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            kind = key if key.startswith("PLpgSQL_stmt_") else stmt_kind
            if key == "PLpgSQL_expr" and isinstance(value, dict):
                yield stmt_kind, value
            else:
                yield from _plpgsql_exprs(value, kind)
    elif isinstance(node, list):
        for item in node:
            yield from _plpgsql_exprs(item, stmt_kind)
