"""IAM roles that one AWS service assumes (the bastion, enhanced monitoring, VPC flow logs)."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.config import StackConfig

__all__ = ["service_role"]


def service_role(name: str, service: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> aws.iam.Role:
    """A role only ``service`` (e.g. ``ec2.amazonaws.com``) may assume; permissions are attached by the caller."""
    return aws.iam.Role(
        name,
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
            }
        ),
        tags=cfg.labels,
        opts=opts,
    )
