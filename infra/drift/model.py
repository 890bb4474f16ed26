"""What a drift check finds: one :class:`DriftItem` per attribute that differs, and the report.

An item names the object, the attribute, the expected and the actual value, and a
:class:`Severity`, so a disabled row-level security flag does not read like a changed comment.
Items are plain values; rendering (text, JSON, markdown) is :mod:`infra.drift.report`'s job.
"""

from __future__ import annotations

import builtins
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from infra.migrations.catalog import Value

__all__ = ["Area", "DriftItem", "DriftReport", "Severity"]

#: Where an item was found: the cloud resources (Pulumi) or the database schema.
Area = Literal["infra", "schema"]


class Severity(StrEnum):
    """How much an item matters, most urgent first (the report's order)."""

    SECURITY = "security"  # who can see or change what: grants, RLS, policies, owners, definer functions, roles
    STRUCTURE = "structure"  # the shape of the schema or the resources: columns, indexes, defaults, settings
    COSMETIC = "cosmetic"  # no effect on access or behaviour: comments, tags, planner costs

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True)
class DriftItem:
    """One attribute of one object that is not what it should be.

    ``check`` is ``refresh`` | ``preview`` (infrastructure), ``ledger`` | ``catalog`` (schema);
    ``expected`` and ``actual`` are the values (``None`` where the attribute is not set), or
    ``"present"``/``"absent"`` when ``attribute`` is ``(exists)``; ``note`` says what to do.
    """

    area: Area
    check: str
    object: str
    attribute: str
    expected: Value
    actual: Value
    severity: Severity
    note: str = ""

    def sort_key(self) -> tuple[int, str, str, str, str]:
        return (self.severity.rank, self.area, self.check, self.object, self.attribute)

    def to_json(self) -> dict[str, builtins.object]:  # `object` is a field here
        return {
            "area": self.area,
            "check": self.check,
            "object": self.object,
            "attribute": self.attribute,
            "expected": self.expected,
            "actual": self.actual,
            "severity": self.severity.value,
            "note": self.note,
        }


@dataclass(frozen=True)
class DriftReport:
    """The result of ``drift`` for one stack: which checks ran, what they found, how the expected
    catalog was obtained (``expected_source``: built, or cached with its key)."""

    stack: str
    checks: tuple[str, ...]
    items: tuple[DriftItem, ...] = field(default=())
    expected_source: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(sorted(self.items, key=DriftItem.sort_key)))

    @property
    def drifted(self) -> bool:
        return bool(self.items)

    def counts(self) -> dict[str, int]:
        """Items per severity, every severity present (zeros included), in severity order."""
        found = Counter(item.severity for item in self.items)
        return {severity.value: found[severity] for severity in Severity}

    def to_json(self) -> dict[str, object]:
        return {
            "stack": self.stack,
            "checks": list(self.checks),
            "drifted": self.drifted,
            "counts": self.counts(),
            "expected_source": self.expected_source,
            "items": [item.to_json() for item in self.items],
        }
