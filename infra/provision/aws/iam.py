"""IAM roles that one AWS service assumes (the bastion, enhanced monitoring, VPC flow logs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.config import StackMeta

__all__ = ["service_role"]


def service_role(
    name: str,
    service: str,
    meta: StackMeta,
    opts: pulumi.ResourceOptions,
    *,
    conditions: pulumi.Input[Mapping[str, Any]] | None = None,
) -> aws.iam.Role:
    """A role only ``service`` (e.g. ``ec2.amazonaws.com``) may assume; permissions are attached by the caller.

    ``conditions`` (an IAM ``Condition`` block) narrow who may pass the role to the service, e.g.
    ``aws:SourceAccount`` / ``aws:SourceArn`` against the confused-deputy problem.
    """
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    if conditions is not None:
        statement["Condition"] = conditions
    return aws.iam.Role(
        name,
        assume_role_policy=pulumi.Output.json_dumps({"Version": "2012-10-17", "Statement": [statement]}),
        tags=meta.labels,
        opts=opts,
    )
