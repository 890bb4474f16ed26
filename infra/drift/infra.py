"""Infrastructure drift through the Pulumi Automation API: what changed outside ``pulumi up``.

* ``preview_refresh`` (a refresh dry run): cloud resources changed outside Pulumi (a console
  edit, a deleted security-group rule);
* ``preview --diff``: the program and the state disagree (an undeployed change, or a setting
  that diffs on every run, which the quiet-preview rule forbids).

Each changing resource is one item: its URN, the properties that differ, the operation the
engine would run, and a severity from its type and properties (network rules, IAM, keys and
secrets are security; tag-only changes are cosmetic). The engine's events carry property names,
not values, so ``expected`` says where the value lives and ``actual`` what the engine would do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

from infra.drift.model import DriftItem, Severity
from infra.errors import AutomationError

__all__ = ["PreviewingStack", "infra_drift", "resource_severity", "select_stack"]

# Step operations that mean "something would change". `same` and `read` do not.
_CHANGING_OPS = frozenset(
    {
        "create",
        "update",
        "delete",
        "replace",
        "create-replacement",
        "delete-replaced",
        "import",
        "import-replacement",
        "discard",
        "discard-replaced",
        "remove-pending-replace",
    }
)
# Resource types whose every change is about access: network reachability, identities, keys, secrets.
_SECURITY_TYPE_PARTS = (
    "securityGroup",
    "SecurityGroup",
    "compute/firewall",
    "iam/",
    "iAM",
    "IAM",
    "kms/",
    "secretsmanager/",
    "secretmanager/",
    "iap/",
    "networkAcl",
)
# Properties that are about access on any resource type.
_SECURITY_PROPERTIES = frozenset(
    {
        "publiclyAccessible",
        "storageEncrypted",
        "kmsKeyId",
        "iamDatabaseAuthenticationEnabled",
        "vpcSecurityGroupIds",
        "deletionProtection",
        "settings",  # Cloud SQL: ip configuration, SSL mode and database flags live here
        "metadataOptions",
        "associatePublicIpAddress",
        "networkInterfaces",
        "serviceAccount",
        "shieldedInstanceConfig",
        "parameters",  # RDS parameter group: rds.force_ssl
    }
)
_COSMETIC_PROPERTIES = frozenset({"tags", "tagsAll", "labels", "description"})


def resource_severity(type_: str, properties: Iterable[str]) -> Severity:
    """Severity of a change to a resource of ``type_`` touching ``properties`` (top-level names)."""
    names = {p.split(".", 1)[0].split("[", 1)[0] for p in properties}
    if any(part in type_ for part in _SECURITY_TYPE_PARTS) or names & _SECURITY_PROPERTIES:
        return Severity.SECURITY
    if names and names <= _COSMETIC_PROPERTIES:
        return Severity.COSMETIC
    return Severity.STRUCTURE


class PreviewingStack(Protocol):
    """What drift needs of ``pulumi.automation.Stack`` (a recorded double in tests)."""

    def preview(self, *, diff: bool | None = ..., on_event: Callable[[Any], None] | None = ...) -> Any: ...

    def preview_refresh(self, *, on_event: Callable[[Any], None] | None = ...) -> Any: ...


_WHERE = {"refresh": "as recorded in the Pulumi state", "preview": "as declared by the program"}


def _step_items(events: Iterable[Any], check: str) -> list[DriftItem]:
    """Changing steps from engine events (``ResourcePreEvent``), one item per URN."""
    seen: dict[str, DriftItem] = {}
    for event in events:
        pre = getattr(event, "resource_pre_event", None)
        if pre is None:
            continue
        meta = pre.metadata
        op = str(getattr(meta.op, "value", meta.op))
        diffs = list(meta.diffs or []) or sorted((meta.detailed_diff or {}).keys())
        # In a refresh, a resource whose cloud state moved is a `refresh` step with diffs
        # (older engines) or an `update`/`delete` step (newer ones).
        changing = op in _CHANGING_OPS or (op == "refresh" and bool(diffs))
        if not changing or meta.type == "pulumi:pulumi:Stack":
            continue
        seen[meta.urn] = DriftItem(
            "infra",
            check,
            meta.urn,
            ", ".join(diffs) if diffs else "(resource)",
            _WHERE[check],
            op,
            resource_severity(meta.type, diffs),
            "changed in the cloud outside Pulumi" if check == "refresh" else "the program and the state disagree",
        )
    return list(seen.values())


def _summary_changes(result: Any) -> dict[str, int]:
    summary: Mapping[Any, int] = getattr(result, "change_summary", None) or {}
    return {
        str(getattr(op, "value", op)): int(n)
        for op, n in summary.items()
        if str(getattr(op, "value", op)) != "same" and n
    }


def infra_drift(stack: PreviewingStack) -> list[DriftItem]:
    """Run a refresh preview and a preview; return every resource that would change.

    Raises AutomationError when the engine fails (not logged in, no credentials, ...).
    """
    from pulumi.automation import errors as auto_errors

    items: list[DriftItem] = []
    for check in ("refresh", "preview"):
        events: list[Any] = []
        try:
            if check == "refresh":
                result = stack.preview_refresh(on_event=events.append)
            else:
                result = stack.preview(diff=True, on_event=events.append)
        except auto_errors.CommandError as exc:
            lines = [ln for ln in str(exc).splitlines() if ln.strip() and "password" not in ln.lower()]
            raise AutomationError(f"pulumi {check} failed: {(lines[-1] if lines else 'no detail')[:300]}") from None
        found = _step_items(events, check)
        counted = _summary_changes(result)
        if counted and not found:
            # The summary says something changes but no step event named it: report the counts.
            detail = ", ".join(f"{n} to {op}" for op, n in sorted(counted.items()))
            found = [
                DriftItem(
                    "infra",
                    check,
                    "(stack)",
                    "(resources)",
                    _WHERE[check],
                    detail,
                    Severity.STRUCTURE,
                    "no step named it",
                )
            ]
        items.extend(found)
    return items


def select_stack(stack: str, work_dir: Path) -> PreviewingStack:
    """The real stack through the Automation API (needs the Pulumi CLI and a backend login)."""
    from pulumi import automation as auto

    try:
        selected: PreviewingStack = auto.select_stack(stack_name=stack, work_dir=str(work_dir))
    except auto.errors.StackNotFoundError:
        raise AutomationError(f"stack {stack!r} not found; check `pulumi stack ls` and the backend login") from None
    except (auto.errors.CommandError, FileNotFoundError) as exc:
        raise AutomationError(f"pulumi could not select stack {stack!r}: {str(exc).splitlines()[-1][:300]}") from None
    return selected
