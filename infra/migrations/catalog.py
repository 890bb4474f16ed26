"""A canonical snapshot of the application schema's catalog, for schema drift detection.

After a successful migration run the snapshot is stored in the ledger (``settings`` key
``catalog_snapshot``). ``drift`` takes a fresh snapshot and compares: any table, column,
constraint, index, policy, trigger, function, grant or RLS flag that differs was changed
outside the migrations (a hand-run ``ALTER``, a console change, a restore of an old dump).

The snapshot holds definitions, never data; it is plain JSON, stable across runs (sorted, no
OIDs or timestamps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from infra.migrations import ledger
from infra.migrations.ledger import LEDGER_SCHEMA

__all__ = [
    "APP_SCHEMAS",
    "SNAPSHOT_KEY",
    "CatalogChange",
    "compare",
    "snapshot",
    "stamp",
    "stamp_sql",
    "stored",
]

APP_SCHEMAS: tuple[str, ...] = ("app",)
SNAPSHOT_KEY = "catalog_snapshot"

# One query per object kind; each returns (key, definition) rows for the schemas in %(schemas)s.
_QUERIES: dict[str, str] = {
    "relation": """
        SELECT n.nspname || '.' || c.relname,
               json_build_object('kind', c.relkind, 'rls', c.relrowsecurity, 'force_rls', c.relforcerowsecurity,
                                 'owner', pg_get_userbyid(c.relowner), 'acl', c.relacl::text[])::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')""",
    "column": """
        SELECT n.nspname || '.' || c.relname || '.' || a.attname,
               json_build_object('type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                                 'default', pg_get_expr(d.adbin, d.adrelid), 'identity', a.attidentity,
                                 'generated', a.attgenerated)::text
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE n.nspname = ANY(%(schemas)s) AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    "constraint": """
        SELECT n.nspname || '.' || c.relname || '.' || k.conname, pg_get_constraintdef(k.oid)
        FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)""",
    "index": """
        SELECT n.nspname || '.' || i.relname,
               pg_get_indexdef(i.oid) || CASE WHEN x.indisvalid THEN '' ELSE ' INVALID' END
        FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
        WHERE n.nspname = ANY(%(schemas)s)""",
    "policy": """
        SELECT schemaname || '.' || tablename || '.' || policyname,
               json_build_object('permissive', permissive, 'roles', roles, 'cmd', cmd,
                                 'qual', qual, 'with_check', with_check)::text
        FROM pg_policies WHERE schemaname = ANY(%(schemas)s)""",
    "trigger": """
        SELECT n.nspname || '.' || c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = ANY(%(schemas)s) AND NOT t.tgisinternal""",
    "function": """
        SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
               md5(pg_get_functiondef(p.oid)) || ' ' || coalesce(p.proacl::text, '') || ' '
               || pg_get_userbyid(p.proowner) || CASE WHEN p.prosecdef THEN ' SECURITY DEFINER' ELSE '' END
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = ANY(%(schemas)s) AND p.prokind IN ('f', 'p')""",
    "schema": """
        SELECT nspname, json_build_object('owner', pg_get_userbyid(nspowner), 'acl', nspacl::text[])::text
        FROM pg_namespace WHERE nspname = ANY(%(schemas)s)""",
    "default_acl": """
        SELECT coalesce(n.nspname, '*') || '.' || pg_get_userbyid(d.defaclrole) || '.' || d.defaclobjtype::text,
               d.defaclacl::text
        FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
        WHERE n.nspname = ANY(%(schemas)s)""",
}


@dataclass(frozen=True)
class CatalogChange:
    """One object that differs from the stored snapshot."""

    kind: str  # a key of the snapshot: relation, column, constraint, index, policy, trigger, function, ...
    name: str
    change: Literal["added", "removed", "changed"]

    def describe(self) -> str:
        return f"{self.kind} {self.name} {self.change}"


Snapshot = Mapping[str, Mapping[str, str]]


def _snapshot_expr(schemas: tuple[str, ...]) -> sql.Composed:
    """One SQL expression that builds the whole snapshot server-side (a single round trip)."""
    parts: list[sql.Composable] = []
    for kind, query in _QUERIES.items():
        body = sql.SQL(query.replace("%(schemas)s", "{schemas}")).format(schemas=sql.Literal(list(schemas)))
        parts.append(
            sql.SQL("{kind}, (SELECT coalesce(jsonb_object_agg(k, v), '{{}}') FROM ({body}) AS q(k, v))").format(
                kind=sql.Literal(kind), body=body
            )
        )
    return sql.SQL("jsonb_build_object({})").format(sql.SQL(", ").join(parts))


def snapshot(conn: psycopg.Connection[Any], schemas: tuple[str, ...] = APP_SCHEMAS) -> dict[str, dict[str, str]]:
    """The catalog of ``schemas`` as ``{kind: {object: definition}}`` (sorted, JSON-ready)."""
    row = conn.execute(sql.SQL("SELECT {}::text").format(_snapshot_expr(schemas))).fetchone()
    assert row is not None
    loaded: dict[str, dict[str, str]] = json.loads(row[0])
    return {kind: dict(sorted(items.items())) for kind, items in sorted(loaded.items())}


def stamp_sql(schemas: tuple[str, ...] = APP_SCHEMAS) -> sql.Composed:
    """One statement that records the current snapshot in the ledger.

    The migration runner appends it to the message of the last migration it applies, inside that
    migration's transaction: the snapshot is exactly what the run committed, at no extra round trip.
    """
    return ledger.put_setting(SNAPSHOT_KEY, _snapshot_expr(schemas))


def compare(expected: Snapshot, actual: Snapshot) -> list[CatalogChange]:
    """What differs between two snapshots, sorted by kind and name."""
    changes: list[CatalogChange] = []
    for kind in sorted(set(expected) | set(actual)):
        old, new = expected.get(kind, {}), actual.get(kind, {})
        for name in sorted(set(old) | set(new)):
            if name not in new:
                changes.append(CatalogChange(kind, name, "removed"))
            elif name not in old:
                changes.append(CatalogChange(kind, name, "added"))
            elif old[name] != new[name]:
                changes.append(CatalogChange(kind, name, "changed"))
    return changes


def stamp(conn: psycopg.Connection[Any], schemas: tuple[str, ...] = APP_SCHEMAS) -> None:
    """Record the current snapshot in the ledger now (after a rollback, baseline or repair)."""
    conn.execute(stamp_sql(schemas))


def stored(conn: psycopg.Connection[Any]) -> dict[str, dict[str, str]] | None:
    """The snapshot stored by the last migration run, or None when there is none (or no ledger)."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{LEDGER_SCHEMA}.settings",)).fetchone()
    if row is None or not row[0]:
        return None
    found = conn.execute(
        sql.SQL("SELECT value FROM {}.settings WHERE key = %s").format(sql.Identifier(LEDGER_SCHEMA)), (SNAPSHOT_KEY,)
    ).fetchone()
    if found is None:
        return None
    value: dict[str, dict[str, str]] = json.loads(found[0])
    return value
