"""The catalog of the application schema, attribute by attribute: what drift compares, what a run records.

One introspection, :func:`introspect`, used for every side of a comparison: the live database,
and the expected catalog that drift builds by applying the migrations to a throwaway PostgreSQL
16 (``infra.drift.expected``). After a successful run the engine also records it in the ledger
(``settings`` key ``catalog_snapshot``, :func:`stamp_sql`, inside the run's last transaction).

What it holds, per object of the ``app`` schema (tables, views, sequences, columns, constraints,
indexes, policies, triggers, functions, types, extensions, the schema itself) and per role that
the schema names (``role``, ``membership``): each attribute a person could change by hand
(owner, RLS enabled/forced, every grant as ``acl:<grantee>``, a policy's roles and expressions,
a function's body, ``SECURITY DEFINER`` and ``search_path``, a trigger's enabled state, ...).
Definitions only, never data; no OIDs or timestamps, so two databases built the same way give
equal catalogs.

The whole catalog is **one statement** (one round trip) whatever the schema's size: every
object kind is a subquery aggregated server-side into one ``jsonb`` document.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from infra.migrations import ledger
from infra.migrations.ledger import LEDGER_SCHEMA

__all__ = [
    "APP_SCHEMAS",
    "EXISTS",
    "FORMAT",
    "SNAPSHOT_KEY",
    "Catalog",
    "CatalogDifference",
    "compare",
    "introspect",
    "introspect_sql",
    "stamp_sql",
    "stored",
]

APP_SCHEMAS: tuple[str, ...] = ("app",)
SNAPSHOT_KEY = "catalog_snapshot"
#: Version of the document's shape; a stored snapshot of another format is not compared.
FORMAT = 2
#: The pseudo-attribute of an object that exists on one side only.
EXISTS = "(exists)"

#: An attribute's value as JSON gives it back.
Value = str | int | bool | list[str] | None
Objects = Mapping[str, Mapping[str, Mapping[str, Value]]]

# `acl:<grantee>` attributes from an aclitem[] (NULL means the type's default, so pass
# acldefault(...) for objects whose default grants something): one attribute per grantee,
# the privileges sorted, `*` marking WITH GRANT OPTION. Grantors are left out on purpose:
# who granted does not change what the grantee can do.
_ACL = """(SELECT coalesce(jsonb_object_agg('acl:' || g.who, g.privs), jsonb_build_object()) FROM (
    SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END AS who,
           string_agg(a.privilege_type || CASE WHEN a.is_grantable THEN '*' ELSE '' END, ','
                      ORDER BY a.privilege_type) AS privs
    FROM aclexplode({acl}) a {where} GROUP BY 1) g)"""


def _acl(expr: str, where: str = "") -> str:
    return _ACL.format(acl=expr, where=where)


_NOT_EXTENSION_MEMBER = (
    "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{cat}'::regclass AND d.objid = {oid} AND d.deptype = 'e')"
)

# Roles the schema names: owners, grantees, policy roles, default-privilege roles; then, through
# pg_auth_members, every role that holds their privileges by membership (the login users, the
# admin). Memberships and role attributes are reported for these roles only: roles are
# cluster-wide, and other databases' roles are none of this schema's business.
_CTES = """
nsp AS (SELECT oid, nspname, nspowner, nspacl FROM pg_namespace WHERE nspname = ANY({schemas})),
rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relowner, c.relacl, c.relrowsecurity, c.relforcerowsecurity,
           c.reloptions, n.nspname
    FROM pg_class c JOIN nsp n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND """
_CTES += _NOT_EXTENSION_MEMBER.format(cat="pg_class", oid="c.oid")
_CTES += """),
fn AS (
    SELECT p.oid, p.proname, p.prokind, p.proowner, p.proacl, p.prosecdef, p.proconfig, p.prosrc, p.prolang,
           p.provolatile, p.proisstrict, p.proleakproof, p.proparallel, p.procost, n.nspname
    FROM pg_proc p JOIN nsp n ON n.oid = p.pronamespace
    WHERE p.prokind IN ('f', 'p', 'a', 'w') AND """
_CTES += _NOT_EXTENSION_MEMBER.format(cat="pg_proc", oid="p.oid")
_CTES += """),
typ AS (
    SELECT t.oid, t.typname, t.typtype, t.typowner, t.typacl, t.typbasetype, t.typtypmod, t.typnotnull,
           t.typdefault, n.nspname
    FROM pg_type t JOIN nsp n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd', 'r', 'm') AND """
_CTES += _NOT_EXTENSION_MEMBER.format(cat="pg_type", oid="t.oid")
_CTES += """),
dacl AS (
    SELECT d.defaclrole, d.defaclobjtype, d.defaclacl, n.nspname
    FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
),
named(r) AS (
    SELECT relowner FROM rel
    UNION SELECT (aclexplode(relacl)).grantee FROM rel WHERE relacl IS NOT NULL
    UNION SELECT (aclexplode(a.attacl)).grantee FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid
          WHERE a.attacl IS NOT NULL
    UNION SELECT proowner FROM fn
    UNION SELECT (aclexplode(proacl)).grantee FROM fn WHERE proacl IS NOT NULL
    UNION SELECT typowner FROM typ
    UNION SELECT nspowner FROM nsp
    UNION SELECT (aclexplode(nspacl)).grantee FROM nsp WHERE nspacl IS NOT NULL
    UNION SELECT unnest(pol.polroles) FROM pg_policy pol JOIN rel ON rel.oid = pol.polrelid
    UNION SELECT defaclrole FROM dacl WHERE nspname = ANY({schemas})
    UNION SELECT (aclexplode(defaclacl)).grantee FROM dacl WHERE nspname = ANY({schemas})
),
managed(r) AS (
    SELECT r FROM named WHERE r <> 0
    UNION
    SELECT m.member FROM pg_auth_members m JOIN managed ON m.roleid = managed.r
)"""

# Each part returns rows (kind, name, attributes jsonb).
_PARTS: tuple[str, ...] = (
    # the schema itself
    """SELECT 'schema', nspname, jsonb_build_object('owner', pg_get_userbyid(nspowner),
              'comment', obj_description(oid, 'pg_namespace')) || """
    + _acl("coalesce(nspacl, acldefault('n', nspowner))")
    + " FROM nsp",
    # tables, views, sequences ...
    """SELECT CASE relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                  WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END,
              nspname || '.' || relname,
              jsonb_build_object('owner', pg_get_userbyid(relowner),
                  'rls_enabled', CASE WHEN relkind IN ('r', 'p') THEN relrowsecurity END,
                  'rls_forced', CASE WHEN relkind IN ('r', 'p') THEN relforcerowsecurity END,
                  'partitioned', CASE WHEN relkind = 'p' THEN true END,
                  'options', (SELECT string_agg(o, ',' ORDER BY o) FROM unnest(reloptions) o),
                  'definition', CASE WHEN relkind IN ('v', 'm') THEN pg_get_viewdef(oid) END,
                  'comment', obj_description(oid, 'pg_class')) || """
    + _acl("coalesce(relacl, acldefault(CASE WHEN relkind = 'S' THEN 's' ELSE 'r' END::\"char\", relowner))")
    + " FROM rel",
    # columns (of tables, views, foreign tables)
    """SELECT 'column', rel.nspname || '.' || rel.relname || '.' || a.attname,
              jsonb_build_object('type', format_type(a.atttypid, a.atttypmod), 'not_null', a.attnotnull,
                  'default', pg_get_expr(d.adbin, d.adrelid),
                  'identity', CASE a.attidentity WHEN 'a' THEN 'always' WHEN 'd' THEN 'by default' END,
                  'generated', CASE WHEN a.attgenerated = 's' THEN 'stored' END,
                  'collation', CASE WHEN a.attcollation <> t.typcollation THEN
                      (SELECT collname FROM pg_collation WHERE oid = a.attcollation) END,
                  'comment', col_description(a.attrelid, a.attnum)) || """
    + _acl("a.attacl")
    + """ FROM pg_attribute a JOIN rel ON rel.oid = a.attrelid JOIN pg_type t ON t.oid = a.atttypid
         LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
         WHERE a.attnum > 0 AND NOT a.attisdropped AND rel.relkind IN ('r', 'p', 'v', 'm', 'f')""",
    # constraints of tables and of domains
    """SELECT 'constraint', coalesce(rel.nspname || '.' || rel.relname, typ.nspname || '.' || typ.typname)
                            || '.' || k.conname,
              jsonb_build_object('definition', pg_get_constraintdef(k.oid), 'validated', k.convalidated,
                  'comment', obj_description(k.oid, 'pg_constraint'))
         FROM pg_constraint k LEFT JOIN rel ON rel.oid = k.conrelid LEFT JOIN typ ON typ.oid = k.contypid
         WHERE rel.oid IS NOT NULL OR typ.oid IS NOT NULL""",
    # indexes
    """SELECT 'index', n.nspname || '.' || i.relname,
              jsonb_build_object('definition', pg_get_indexdef(i.oid), 'valid', x.indisvalid,
                  'comment', obj_description(i.oid, 'pg_class'))
         FROM pg_index x JOIN rel ON rel.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
         JOIN pg_namespace n ON n.oid = i.relnamespace""",
    # row-level security policies
    """SELECT 'policy', rel.nspname || '.' || rel.relname || '.' || pol.polname,
              jsonb_build_object('permissive', pol.polpermissive,
                  'command', CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                                 WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
                  'roles', (SELECT jsonb_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END
                                             ORDER BY CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(r) END)
                            FROM unnest(pol.polroles) r),
                  'using', pg_get_expr(pol.polqual, pol.polrelid),
                  'with_check', pg_get_expr(pol.polwithcheck, pol.polrelid))
         FROM pg_policy pol JOIN rel ON rel.oid = pol.polrelid""",
    # triggers (not the internal ones behind foreign keys)
    """SELECT 'trigger', rel.nspname || '.' || rel.relname || '.' || t.tgname,
              jsonb_build_object('definition', pg_get_triggerdef(t.oid),
                  'enabled', CASE t.tgenabled WHEN 'O' THEN 'enabled' WHEN 'D' THEN 'disabled'
                                 WHEN 'R' THEN 'replica only' WHEN 'A' THEN 'always' END,
                  'comment', obj_description(t.oid, 'pg_trigger'))
         FROM pg_trigger t JOIN rel ON rel.oid = t.tgrelid WHERE NOT t.tgisinternal""",
    # functions and procedures
    """SELECT CASE prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END,
              nspname || '.' || proname || '(' || pg_get_function_identity_arguments(oid) || ')',
              jsonb_build_object('owner', pg_get_userbyid(proowner), 'security_definer', prosecdef,
                  'search_path', (SELECT substr(c, 13) FROM unnest(proconfig) c WHERE left(c, 12) = 'search_path='),
                  'config', (SELECT string_agg(c, ', ' ORDER BY c) FROM unnest(proconfig) c
                             WHERE left(c, 12) <> 'search_path='),
                  'body', prosrc, 'language', (SELECT lanname FROM pg_language WHERE oid = prolang),
                  'returns', CASE WHEN prokind <> 'p' THEN pg_get_function_result(oid) END,
                  'volatility', CASE provolatile WHEN 'i' THEN 'immutable' WHEN 's' THEN 'stable' ELSE 'volatile' END,
                  'strict', proisstrict, 'leakproof', proleakproof,
                  'parallel', CASE proparallel WHEN 's' THEN 'safe' WHEN 'r' THEN 'restricted' ELSE 'unsafe' END,
                  'cost', procost::text, 'comment', obj_description(oid, 'pg_proc')) || """
    + _acl("coalesce(proacl, acldefault('f', proowner))")
    + " FROM fn",
    # enum, domain and range types
    """SELECT 'type', nspname || '.' || typname,
              jsonb_build_object('owner', pg_get_userbyid(typowner),
                  'definition', CASE typtype
                      WHEN 'e' THEN 'enum (' || (SELECT string_agg(quote_literal(enumlabel), ', '
                                                                   ORDER BY enumsortorder)
                                                 FROM pg_enum WHERE enumtypid = typ.oid) || ')'
                      WHEN 'd' THEN 'domain ' || format_type(typbasetype, typtypmod)
                                    || CASE WHEN typnotnull THEN ' NOT NULL' ELSE '' END
                                    || coalesce(' DEFAULT ' || typdefault, '')
                      ELSE 'range' END,
                  'comment', obj_description(oid, 'pg_type')) || """
    + _acl("coalesce(typacl, acldefault('T', typowner))")
    + " FROM typ",
    # extensions installed into the schema
    """SELECT 'extension', e.extname, jsonb_build_object('version', e.extversion, 'owner', pg_get_userbyid(e.extowner))
         FROM pg_extension e JOIN nsp ON nsp.oid = e.extnamespace""",
    # default privileges: in the schema, and global ones (no schema) of the roles the schema names
    """SELECT 'default privileges',
              'for ' || pg_get_userbyid(defaclrole) || coalesce(' in schema ' || nspname, '') || ' on '
              || CASE defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                                    WHEN 'T' THEN 'types' ELSE 'schemas' END,
              """
    + _acl("defaclacl")
    + """ FROM dacl WHERE nspname = ANY({schemas}) OR (nspname IS NULL AND defaclrole IN (SELECT r FROM managed))""",
    # the database's grants (CONNECT, CREATE, TEMPORARY), without the owner's own
    """SELECT 'database', 'current database', """
    + _acl("coalesce(datacl, acldefault('d', datdba))", "WHERE a.grantee <> datdba")
    + """ FROM pg_database WHERE datname = current_database()""",
    # roles that own, are granted, or hold by membership anything in the schema
    """SELECT 'role', rolname, jsonb_build_object('login', rolcanlogin, 'superuser', rolsuper,
              'createrole', rolcreaterole, 'createdb', rolcreatedb, 'replication', rolreplication,
              'bypassrls', rolbypassrls, 'inherit', rolinherit, 'connection_limit', rolconnlimit)
         FROM pg_roles WHERE oid IN (SELECT r FROM managed)""",
    # memberships in either direction (PostgreSQL 16 may hold one row per grantor: merged)
    """SELECT 'membership', pg_get_userbyid(member) || ' in ' || pg_get_userbyid(roleid),
              jsonb_build_object('admin_option', bool_or(admin_option), 'inherit', bool_or(inherit_option),
                                 'set', bool_or(set_option))
         FROM pg_auth_members
         WHERE member IN (SELECT r FROM managed) OR roleid IN (SELECT r FROM managed)
         GROUP BY member, roleid""",
)


def introspect_sql(schemas: tuple[str, ...] = APP_SCHEMAS) -> sql.Composed:
    """One scalar subquery giving the whole catalog as a ``jsonb`` document (one round trip)."""
    union = "\n    UNION ALL\n".join(f"({part})" for part in _PARTS)
    text = (
        "(WITH RECURSIVE"
        + _CTES
        + ",\nitems(kind, name, attrs) AS (\n"
        + union
        + "\n),\nper_kind AS (SELECT kind, jsonb_object_agg(name, jsonb_strip_nulls(attrs)) AS objects"
        " FROM items GROUP BY kind)\n"
        "SELECT jsonb_build_object('format', {format}, 'server_version_num',"
        " current_setting('server_version_num')::int,"
        " 'objects', coalesce((SELECT jsonb_object_agg(kind, objects) FROM per_kind), jsonb_build_object())))"
    )
    return sql.SQL(text).format(schemas=sql.Literal(list(schemas)), format=sql.Literal(FORMAT))


@dataclass(frozen=True)
class Catalog:
    """A database's catalog: ``objects[kind][name][attribute] = value``, and the server it came from."""

    server_version_num: int
    objects: Objects

    @property
    def server_major(self) -> int:
        return self.server_version_num // 10000

    def to_json(self) -> dict[str, object]:
        return {"format": FORMAT, "server_version_num": self.server_version_num, "objects": _sorted(self.objects)}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Catalog | None:
        """The catalog of a stored document; ``None`` for another format (an older engine's snapshot)."""
        if document.get("format") != FORMAT or not isinstance(document.get("objects"), Mapping):
            return None
        return cls(int(document.get("server_version_num", 0)), _sorted(document["objects"]))

    def count(self) -> int:
        return sum(len(objects) for objects in self.objects.values())


def _sorted(objects: Mapping[str, Mapping[str, Mapping[str, Value]]]) -> dict[str, dict[str, dict[str, Value]]]:
    return {
        kind: {name: dict(sorted(attrs.items())) for name, attrs in sorted(items.items())}
        for kind, items in sorted(objects.items())
    }


def introspect(conn: psycopg.Connection[Any], schemas: tuple[str, ...] = APP_SCHEMAS) -> Catalog:
    """The catalog of ``schemas`` as ``conn`` sees it, in one statement."""
    row = conn.execute(sql.SQL("SELECT {}::text").format(introspect_sql(schemas))).fetchone()
    assert row is not None  # a SELECT of one expression always returns one row
    catalog = Catalog.from_json(json.loads(row[0]))
    assert catalog is not None  # built by this module, in this format
    return catalog


@dataclass(frozen=True)
class CatalogDifference:
    """One attribute of one object that differs; ``attribute`` is :data:`EXISTS` for a whole object."""

    kind: str
    name: str
    attribute: str
    expected: Value
    actual: Value

    def describe(self) -> str:
        """``column app.t.c added``, ``table app.t rls_enabled changed: True -> False``."""
        if self.attribute == EXISTS:
            return f"{self.kind} {self.name} {'added' if self.actual == 'present' else 'removed'}"
        return f"{self.kind} {self.name} {self.attribute} changed: {self.expected!r} -> {self.actual!r}"


def compare(expected: Catalog, actual: Catalog) -> list[CatalogDifference]:
    """Every attribute that differs, sorted by kind, object and attribute.

    An object on one side only is one difference (attribute :data:`EXISTS`, ``"present"`` /
    ``"absent"``), not one per attribute; an attribute missing on one side compares as ``None``.
    """
    found: list[CatalogDifference] = []
    for kind in sorted(set(expected.objects) | set(actual.objects)):
        old, new = expected.objects.get(kind, {}), actual.objects.get(kind, {})
        for name in sorted(set(old) | set(new)):
            if name not in new or name not in old:
                found.append(
                    CatalogDifference(
                        kind,
                        name,
                        EXISTS,
                        "present" if name in old else "absent",
                        "present" if name in new else "absent",
                    )
                )
                continue
            before, after = old[name], new[name]
            for attribute in sorted(set(before) | set(after)):
                if before.get(attribute) != after.get(attribute):
                    found.append(CatalogDifference(kind, name, attribute, before.get(attribute), after.get(attribute)))
    return found


def stamp_sql(schemas: tuple[str, ...] = APP_SCHEMAS) -> sql.Composed:
    """One statement that records the current catalog in the ledger.

    The migration runner appends it to the message of the last migration it applies or rolls back,
    inside that migration's transaction: the record is exactly what the run committed, at no extra
    round trip.
    """
    return ledger.put_setting(SNAPSHOT_KEY, introspect_sql(schemas))


def stored(conn: psycopg.Connection[Any]) -> Catalog | None:
    """The catalog recorded by the last migration run; ``None`` when there is none, no ledger,
    or it was recorded in an older format."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{LEDGER_SCHEMA}.settings",)).fetchone()
    if row is None or not row[0]:
        return None
    found = conn.execute(
        sql.SQL("SELECT value FROM {}.settings WHERE key = %s").format(sql.Identifier(LEDGER_SCHEMA)), (SNAPSHOT_KEY,)
    ).fetchone()
    if found is None:
        return None
    return Catalog.from_json(json.loads(found[0]))
