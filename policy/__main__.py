"""The CrossGuard policy pack: wires :data:`rules.RULES` into ``PolicyPack``. No rule logic here.

The CLI runs this file with ``runpy.run_path(<pack dir>)``, so the pack directory is on
``sys.path`` and ``rules`` imports as a top-level module. ``PolicyPack(...)`` starts the analyzer's
gRPC server and never returns, so it runs only as ``__main__``; :func:`policies` is importable.
"""

from __future__ import annotations

from collections.abc import Callable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from rules import RULES, STACK_RULES, Rule, StackRule

PACK_NAME = "private-postgres-security"

Validate = Callable[[ResourceValidationArgs, ReportViolation], None]
ValidateStack = Callable[[StackValidationArgs, ReportViolation], None]


def _validate(rule: Rule) -> Validate:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        # args.props: camelCase inputs, secrets unwrapped; an unknown value raises during preview
        # and the SDK reports "can't run policy during preview" instead of a violation.
        for message in rule.evaluate(args.resource_type, args.props, args.get_config()):
            report_violation(message, None)

    return validate


def _validate_stack(rule: StackRule) -> ValidateStack:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [(r.resource_type, r.props) for r in args.resources]
        for message in rule.check(resources):
            report_violation(message, None)

    return validate


def policies() -> list[Policy]:
    """One mandatory resource policy per rule, then one mandatory stack policy per stack rule."""
    resource_policies: list[Policy] = [
        ResourceValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validate(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=dict(rule.config_schema)) if rule.config_schema else None,
        )
        for rule in RULES
    ]
    stack_policies: list[Policy] = [
        StackValidationPolicy(
            name=rule.name,
            description=rule.description,
            validate=_validate_stack(rule),
            enforcement_level=EnforcementLevel.MANDATORY,
        )
        for rule in STACK_RULES
    ]
    return resource_policies + stack_policies


if __name__ == "__main__":
    PolicyPack(name=PACK_NAME, policies=policies(), enforcement_level=EnforcementLevel.MANDATORY)
