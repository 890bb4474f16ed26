"""Which table lock a statement takes, for ``plan``: what a reviewer must know before it runs.

A static reading of the statement's first words against the lock table of the PostgreSQL 16
manual (13.3 "Explicit Locking"). It is a guide for review, not a promise: when a statement is
not recognised the answer says so instead of guessing.
"""

from __future__ import annotations

import re

__all__ = ["lock_mode"]

_NAME = r"(?:only\s+)?(?:if\s+(?:not\s+)?exists\s+)?(?P<t>(?:\"[^\"]+\"|[\w$]+)(?:\.(?:\"[^\"]+\"|[\w$]+))?)"

# (pattern on the statement with comments stripped, lock mode, what it blocks)
_RULES: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(p, re.IGNORECASE | re.DOTALL), mode, blocks)
    for p, mode, blocks in (
        (
            r"^create\s+(unique\s+)?index\s+concurrently\b.*?\bon\s+" + _NAME,
            "SHARE UPDATE EXCLUSIVE",
            "other schema changes and VACUUM; reads and writes go on",
        ),
        (r"^create\s+(unique\s+)?index\b.*?\bon\s+" + _NAME, "SHARE", "writes (reads go on)"),
        (r"^drop\s+index\s+concurrently\b", "SHARE UPDATE EXCLUSIVE", "other schema changes"),
        (r"^drop\s+index\b", "ACCESS EXCLUSIVE", "everything on the index's table"),
        (r"^reindex\b.*\bconcurrently\b", "SHARE UPDATE EXCLUSIVE", "other schema changes"),
        (r"^reindex\b", "SHARE", "writes"),
        (
            r"^alter\s+table\s+" + _NAME + r".*\bvalidate\s+constraint\b",
            "SHARE UPDATE EXCLUSIVE",
            "other schema changes; reads and writes go on",
        ),
        (
            r"^alter\s+table\s+" + _NAME + r".*\b(foreign\s+key|references)\b",
            "SHARE ROW EXCLUSIVE",
            "writes on this table and the referenced one (NOT VALID then VALIDATE avoids the long hold)",
        ),
        (
            r"^alter\s+table\s+" + _NAME + r".*\battach\s+partition\b",
            "SHARE UPDATE EXCLUSIVE",
            "other schema changes on the parent",
        ),
        (
            r"^alter\s+table\s+" + _NAME + r"\s+(set\s+statistics|set\s*\(|reset\s*\(|cluster\s+on)",
            "SHARE UPDATE EXCLUSIVE",
            "other schema changes",
        ),
        (r"^alter\s+table\s+" + _NAME, "ACCESS EXCLUSIVE", "every read and write of the table"),
        (r"^(drop|truncate)\s+(table\s+)?" + _NAME, "ACCESS EXCLUSIVE", "every read and write of the table"),
        (
            r"^create\s+(or\s+replace\s+)?(constraint\s+)?trigger\b.*?\bon\s+" + _NAME,
            "SHARE ROW EXCLUSIVE",
            "writes on the table",
        ),
        (r"^(create|alter|drop)\s+policy\b.*?\bon\s+" + _NAME, "ACCESS EXCLUSIVE", "every read and write of the table"),
        (r"^refresh\s+materialized\s+view\s+concurrently\s+" + _NAME, "EXCLUSIVE", "writes (reads go on)"),
        (r"^refresh\s+materialized\s+view\s+" + _NAME, "ACCESS EXCLUSIVE", "every read of the view"),
        (r"^vacuum\b", "SHARE UPDATE EXCLUSIVE", "schema changes"),
        (
            r"^(insert\s+into|update|delete\s+from|merge\s+into)\s+" + _NAME,
            "ROW EXCLUSIVE",
            "schema changes; rows it changes stay locked until commit",
        ),
        (r"^(lock\s+(table\s+)?)" + _NAME, "as written", "see the LOCK statement"),
        (r"^create\s+(unlogged\s+|temp\s+|temporary\s+)?table\b(?!.*\breferences\b)", "none", "nothing (new table)"),
        (
            r"^create\s+(unlogged\s+|temp\s+|temporary\s+)?table\b",
            "SHARE ROW EXCLUSIVE",
            "writes on the referenced tables (foreign keys)",
        ),
        (r"^(select|with)\b", "ACCESS SHARE", "only ACCESS EXCLUSIVE (schema changes)"),
        (
            r"^(create|alter|drop|comment|grant|revoke|set|reset|do|security\s+label)\b",
            "catalog only",
            "no table lock of note",
        ),
    )
)


def _strip_comments(text: str) -> str:
    text = re.sub(r"--[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL).strip()


def lock_mode(statement: str) -> tuple[str, str | None, str]:
    """``(lock mode, table or None, what it blocks)`` for one statement."""
    body = _strip_comments(statement)
    for pattern, mode, blocks in _RULES:
        m = pattern.match(body)
        if m:
            table = m.groupdict().get("t")
            return mode, table, blocks
    return "unknown", None, "not recognised: check the PostgreSQL manual, 13.3 Explicit Locking"
