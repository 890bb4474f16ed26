"""Which catalog differences matter how much (:func:`severity`), and which are the managed
service's own doing and never reported (:class:`IgnoreList`, :data:`MANAGED_SERVICE`).

Security covers every attribute that decides who can see or change what: grants (``acl:*``,
to PUBLIC or any role) and default privileges, owners, row-level security enabled/forced,
policies (their roles, command and expressions), ``SECURITY DEFINER`` functions (the flag, their
body, ``search_path`` and other settings), triggers (enabled, disabled, added or dropped: the
ledger's append-only guard is a trigger), role attributes and memberships, database grants.
Comments and planner costs are cosmetic; everything else is structure.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.drift.model import Severity
from infra.migrations.catalog import EXISTS, Value

__all__ = ["MANAGED_SERVICE", "IgnoreList", "severity"]

# Kinds where any difference, including an object added or removed, is a security matter.
_SECURITY_KINDS = frozenset({"policy", "membership", "default privileges", "role", "database", "trigger"})
_SECURITY_ATTRIBUTES = frozenset({"owner", "rls_enabled", "rls_forced", "security_definer", "search_path", "leakproof"})
# Attributes of a function that only matter for access when it runs as its owner (SECURITY DEFINER).
_DEFINER_ATTRIBUTES = frozenset({"body", "config", "language", EXISTS})
_COSMETIC_ATTRIBUTES = frozenset({"comment", "cost", "connection_limit"})
_FUNCTION_KINDS = frozenset({"function", "procedure", "aggregate"})

Attributes = Mapping[str, Value]


def severity(kind: str, attribute: str, expected: Attributes | None, actual: Attributes | None) -> Severity:
    """The severity of one difference; ``expected``/``actual`` are the object's attributes on each
    side (``None`` where the object does not exist)."""
    if attribute.startswith("acl:") or kind in _SECURITY_KINDS or attribute in _SECURITY_ATTRIBUTES:
        return Severity.SECURITY
    if kind in _FUNCTION_KINDS and attribute in _DEFINER_ATTRIBUTES:
        definer = any(side is not None and side.get("security_definer") is True for side in (expected, actual))
        return Severity.SECURITY if definer else Severity.STRUCTURE
    if attribute == "options" and any(
        side is not None and "security_" in str(side.get("options") or "") for side in (expected, actual)
    ):
        return Severity.SECURITY  # a view's security_barrier / security_invoker
    if attribute in _COSMETIC_ATTRIBUTES:
        return Severity.COSMETIC
    return Severity.STRUCTURE


@dataclass(frozen=True)
class IgnoreList:
    """What the database's host adds or owns by itself, left out of every comparison.

    ``roles`` are name patterns (``fnmatch``): a role matching one is not reported as a role, in
    a membership (either side), nor as a grantee (``acl:<role>``). ``extensions`` are extension
    names. ``provider_roles`` are roles whose attributes the provider sets (the managed admin:
    RDS and Cloud SQL decide what their master user may do); their grants and memberships are
    still compared.
    """

    roles: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    provider_roles: tuple[str, ...] = field(default=())

    def role(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.roles)

    def ignores(self, kind: str, name: str, attribute: str) -> bool:
        if attribute.startswith("acl:") and self.role(attribute.removeprefix("acl:")):
            return True
        if kind == "role":
            return self.role(name) or (name in self.provider_roles and attribute != EXISTS)
        if kind == "membership":
            member, _, group = name.partition(" in ")
            return self.role(member) or self.role(group)
        return kind == "extension" and name in self.extensions

    def with_provider_roles(self, *roles: str) -> IgnoreList:
        return IgnoreList(self.roles, self.extensions, tuple(sorted({*self.provider_roles, *roles})))


#: What RDS and Cloud SQL add on their own. Sources: "Understanding PostgreSQL roles and
#: permissions" (Amazon RDS User Guide: rds_superuser, rds_replication, rds_password, rds_iam,
#: rds_ad and the internal rdsadmin, rdsrepladmin, rdstopmgr), "About PostgreSQL users and roles"
#: (Cloud SQL docs: cloudsqlsuperuser, cloudsqladmin, cloudsqlagent, cloudsqlreplica,
#: cloudsqlimportexport, cloudsqliamuser, cloudsqliamserviceaccount, ...); pg_stat_statements
#: (loaded by Performance Insights / Query Insights) and pgaudit (CIS GCP 6.2.8,
#: ``cloudsql.enable_pgaudit``) are created by operators on managed instances.
MANAGED_SERVICE = IgnoreList(
    roles=("rds_*", "rdsadmin", "rdsrepladmin", "rdstopmgr", "cloudsql*", "alloydb*"),
    extensions=("pg_stat_statements", "pgaudit", "pg_buffercache"),
)
